"""Diff rendering: two versions of a file (bytes) in, a unified patch and structured hunks out.

Plain bytes in, no repository objects: the repository facade says which files changed and hands
over their contents; this module only decides how the difference reads. Lines are compared by
git's own diff algorithm (`gitscripts.repo.linediff`) and grouped into hunks with three lines
of context, exactly as `git diff` shows them. A file that is not UTF-8 text (or holds a NUL byte,
or is too large) is reported as binary, with no hunks, as git does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gitscripts.repo import modes
from gitscripts.repo.linediff import Hunk, line_hunks

CONTEXT_LINES = 3
# Past this, a line diff would cost more than a request may; git's own limit is far higher, but
# scripts are capped at 1 MB and anything bigger was pushed as data, not code.
MAX_TEXT_BYTES = 4 * 1024 * 1024
NO_NEWLINE = "\\ No newline at end of file"


@dataclass(frozen=True)
class FileDiff:
    status: str  # "added", "modified", "renamed" or "deleted"
    old_path: str | None
    new_path: str | None
    binary: bool
    hunks: list[Hunk]

    @property
    def additions(self) -> int:
        return sum(line.kind == "added" for hunk in self.hunks for line in hunk.lines)

    @property
    def deletions(self) -> int:
        return sum(line.kind == "deleted" for hunk in self.hunks for line in hunk.lines)

    def patch(self) -> str:
        """This file's part of a unified diff, in the form `git diff` writes (and `git apply` reads)."""
        a = f"a/{self.old_path or self.new_path}"
        b = f"b/{self.new_path or self.old_path}"
        out = [f"diff --git {a} {b}"]
        if self.status == "added":
            out.append(f"new file mode {modes.FILE:o}")
        elif self.status == "deleted":
            out.append(f"deleted file mode {modes.FILE:o}")
        elif self.status == "renamed":
            out += [f"rename from {self.old_path}", f"rename to {self.new_path}"]
        old_name = a if self.old_path else "/dev/null"
        new_name = b if self.new_path else "/dev/null"
        if self.binary:
            out.append(f"Binary files {old_name} and {new_name} differ")
        elif self.hunks:
            out += [f"--- {old_name}", f"+++ {new_name}"]
            for hunk in self.hunks:
                out.append(hunk.header)
                for line in hunk.lines:
                    out.append(_MARKS[line.kind] + line.content)
                    if line.no_newline:
                        out.append(NO_NEWLINE)
        return "\n".join(out) + "\n"

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "old_path": self.old_path,
            "new_path": self.new_path,
            "binary": self.binary,
            "additions": self.additions,
            "deletions": self.deletions,
            "hunks": [
                {
                    "header": hunk.header,
                    "old_start": hunk.old_start,
                    "old_lines": hunk.old_lines,
                    "new_start": hunk.new_start,
                    "new_lines": hunk.new_lines,
                    "lines": [
                        {
                            "kind": line.kind,
                            "old_line": line.old_line,
                            "new_line": line.new_line,
                            "content": line.content,
                            **({"no_newline": True} if line.no_newline else {}),
                        }
                        for line in hunk.lines
                    ],
                }
                for hunk in self.hunks
            ],
        }


_MARKS = {"context": " ", "added": "+", "deleted": "-"}


def is_binary(data: bytes) -> bool:
    if len(data) > MAX_TEXT_BYTES or b"\0" in data[:8000]:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def diff_file(
    status: str, old_path: str | None, new_path: str | None, old: bytes | None, new: bytes | None
) -> FileDiff:
    """The difference between two versions of one file (None: the file is absent on that side)."""
    old_data, new_data = old or b"", new or b""
    if is_binary(old_data) or is_binary(new_data):
        binary = old_data != new_data
        return FileDiff(status, old_path, new_path, binary=binary, hunks=[])
    return FileDiff(
        status,
        old_path,
        new_path,
        binary=False,
        hunks=line_hunks(old_data, new_data, CONTEXT_LINES),
    )


def unified_patch(files: list[FileDiff]) -> str:
    return "".join(file.patch() for file in files)
