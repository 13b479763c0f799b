"""Diff rendering: two versions of a file (bytes) in, a unified patch and structured hunks out.

Plain bytes in, no repository objects: the repository facade says which files changed and hands
over their contents; this module only decides how the difference reads. Lines are compared by
git's own diff algorithm (`gitscripts.repo.linediff`) and grouped into hunks with three lines
of context, exactly as `git diff` shows them. A file that is not UTF-8 text (or holds a NUL byte,
or is too large) is reported as binary, with no hunks, as git does.

Within a hunk, a run of deleted lines followed by a run of added lines is paired line by line (as
a side-by-side view shows them), and each pair is compared word by word: the words that differ are
given as `changed_ranges`, [start, end) offsets in Unicode code points into each line's content.
Computed here rather than in the browser so that every view of a diff (a script's, a commit's, any
client's) marks the same words, and so that the rule is tested once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any

from gitscripts.repo import modes
from gitscripts.repo.linediff import Hunk, line_hunks

CONTEXT_LINES = 3
# Past this, a line diff would cost more than a request may; git's own limit is far higher, but
# scripts are capped at 1 MB and anything bigger was pushed as data, not code.
MAX_TEXT_BYTES = 4 * 1024 * 1024
NO_NEWLINE = "\\ No newline at end of file"
# A word: letters, digits and underscores; any other character stands alone; runs of spaces too.
WORD = re.compile(r"\w+|\s+|[^\w\s]")
# Past these, pairing words costs more than it shows (a minified line, a data blob).
MAX_WORD_LINE = 1_000
# Below this share of unchanged text, a pair of lines was rewritten, not edited: marking most of
# both lines says nothing the line colours do not.
MIN_WORD_SIMILARITY = 0.3

Range = tuple[int, int]


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
        words = [word_changes(hunk) for hunk in self.hunks]
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
                            **(
                                {"changed_ranges": [list(r) for r in changed[index]]}
                                if index in changed
                                else {}
                            ),
                        }
                        for index, line in enumerate(hunk.lines)
                    ],
                }
                for hunk, changed in zip(self.hunks, words, strict=True)
            ],
        }


_MARKS = {"context": " ", "added": "+", "deleted": "-"}


def word_changes(hunk: Hunk) -> dict[int, list[Range]]:
    """The changed words of the paired lines of a hunk, by the line's index in the hunk."""
    found: dict[int, list[Range]] = {}
    deleted: list[int] = []
    added: list[int] = []

    def pair() -> None:
        for old, new in zip(deleted, added, strict=False):
            ranges = _changed_words(hunk.lines[old].content, hunk.lines[new].content)
            if ranges is not None:
                found[old], found[new] = ranges
        deleted.clear()
        added.clear()

    for index, line in enumerate(hunk.lines):
        if line.kind == "deleted":
            if added:
                pair()
            deleted.append(index)
        elif line.kind == "added":
            added.append(index)
        else:
            pair()
    pair()
    return found


def _changed_words(old: str, new: str) -> tuple[list[Range], list[Range]] | None:
    """The ranges of `old` and of `new` whose words differ; None when the lines are too long to
    compare or too different for words to matter."""
    if len(old) > MAX_WORD_LINE or len(new) > MAX_WORD_LINE:
        return None
    old_words, new_words = WORD.findall(old), WORD.findall(new)
    matcher = SequenceMatcher(None, old_words, new_words, autojunk=False)
    opcodes = matcher.get_opcodes()
    # Shared by what they say, not by their indentation and spacing.
    kept = sum(
        len(word.strip())
        for tag, i1, i2, _, _ in opcodes
        if tag == "equal"
        for word in old_words[i1:i2]
    )
    visible = len("".join(old.split())) + len("".join(new.split()))
    if not visible or 2 * kept / visible < MIN_WORD_SIMILARITY:
        return None
    old_ranges: list[Range] = []
    new_ranges: list[Range] = []
    old_starts = _offsets(old_words)
    new_starts = _offsets(new_words)
    for tag, i1, i2, j1, j2 in opcodes:
        if tag == "equal":
            continue
        if i2 > i1:
            _add_range(old_ranges, old_starts[i1], old_starts[i2])
        if j2 > j1:
            _add_range(new_ranges, new_starts[j1], new_starts[j2])
    return old_ranges, new_ranges


def _offsets(words: list[str]) -> list[int]:
    """Where each word starts, and the end of the last."""
    starts = [0]
    for word in words:
        starts.append(starts[-1] + len(word))
    return starts


def _add_range(ranges: list[Range], start: int, end: int) -> None:
    """Append [start, end), merged with the last range when they touch."""
    if ranges and ranges[-1][1] == start:
        ranges[-1] = (ranges[-1][0], end)
    else:
        ranges.append((start, end))


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
