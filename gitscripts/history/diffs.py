"""Diff rendering: two versions of a file (bytes) in, a unified patch and structured hunks out.

Pure Python on plain bytes, no Git objects: the repository facade says which files changed and
hands over their contents; this module only decides how the difference reads. Lines are compared
with difflib and grouped into hunks with three lines of context, like `git diff`. A file that is not
UTF-8 text (or holds a NUL byte, or is too large to diff quickly) is reported as binary, with no
hunks, as git does.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

CONTEXT_LINES = 3
# Past this, a line diff would cost more than a request may; git's own limit is far higher, but
# scripts are capped at 1 MB and anything bigger was pushed as data, not code.
MAX_TEXT_BYTES = 4 * 1024 * 1024
NO_NEWLINE = "\\ No newline at end of file"
AUTOJUNK_LINES = 10_000


@dataclass
class Line:
    kind: str  # "context", "added" or "deleted"
    old_line: int | None
    new_line: int | None
    content: str  # without its line ending
    no_newline: bool = False  # the file's last line, without a final newline


@dataclass
class Hunk:
    old_start: int
    old_lines: int
    new_start: int
    new_lines: int
    lines: list[Line] = field(default_factory=list)

    @property
    def header(self) -> str:
        return f"@@ -{_range(self.old_start, self.old_lines)} +{_range(self.new_start, self.new_lines)} @@"


@dataclass
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
            out.append("new file mode 100644")
        elif self.status == "deleted":
            out.append("deleted file mode 100644")
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


def _range(start: int, count: int) -> str:
    return str(start) if count == 1 else f"{start},{count}"


def is_binary(data: bytes) -> bool:
    if len(data) > MAX_TEXT_BYTES or b"\0" in data[:8000]:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _lines(data: bytes) -> list[str]:
    # Split on "\n" only, as git does: str.splitlines would also break at form feeds and the like.
    parts = data.decode("utf-8").split("\n")
    return [part + "\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def diff_file(
    status: str, old_path: str | None, new_path: str | None, old: bytes | None, new: bytes | None
) -> FileDiff:
    """The difference between two versions of one file (None: the file is absent on that side)."""
    old_data, new_data = old or b"", new or b""
    if is_binary(old_data) or is_binary(new_data):
        binary = old_data != new_data
        return FileDiff(status, old_path, new_path, binary=binary, hunks=[])
    return FileDiff(status, old_path, new_path, binary=False, hunks=_hunks(old_data, new_data))


def _hunks(old: bytes, new: bytes) -> list[Hunk]:
    a, b = _lines(old), _lines(new)
    # autojunk off: in a 2,000-line script, blank lines and `return` are frequent but still lines
    # the reader expects to be matched. In very long files matching every popular line can go
    # quadratic, so there they are set aside (the hunks may then pair lines less tidily).
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=max(len(a), len(b)) > AUTOJUNK_LINES)
    hunks: list[Hunk] = []
    for group in matcher.get_grouped_opcodes(CONTEXT_LINES):
        first, last = group[0], group[-1]
        old_count, new_count = last[2] - first[1], last[4] - first[3]
        # As in unified diff: an empty range starts at the line before it.
        hunk = Hunk(
            old_start=first[1] + 1 if old_count else first[1],
            old_lines=old_count,
            new_start=first[3] + 1 if new_count else first[3],
            new_lines=new_count,
        )
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                for offset in range(i2 - i1):
                    hunk.lines.append(_line("context", a, i1 + offset, b, j1 + offset))
                continue
            if tag in ("replace", "delete"):
                hunk.lines += [_line("deleted", a, i, None, None) for i in range(i1, i2)]
            if tag in ("replace", "insert"):
                hunk.lines += [_line("added", None, None, b, j) for j in range(j1, j2)]
        hunks.append(hunk)
    return hunks


def _line(
    kind: str, a: list[str] | None, i: int | None, b: list[str] | None, j: int | None
) -> Line:
    text = a[i] if a is not None and i is not None else b[j]  # type: ignore[index]
    return Line(
        kind=kind,
        old_line=i + 1 if i is not None else None,
        new_line=j + 1 if j is not None else None,
        content=text.removesuffix("\n"),
        # Only a file's last line can lack its newline.
        no_newline=not text.endswith("\n"),
    )


def unified_patch(files: list[FileDiff]) -> str:
    return "".join(file.patch() for file in files)
