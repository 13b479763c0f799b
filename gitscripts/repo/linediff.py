"""git's line diff of two buffers: bytes in, hunks of numbered lines out.

libgit2's xdiff, run on the two buffers, gives the hunks `git diff` shows, in C. A pure-Python
matcher (difflib) goes quadratic on files with many equal lines, blank ones say: minutes for a
5,000-line file. Both buffers must be UTF-8 text (`gitscripts.history.diffs` decides what is).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pygit2

LineKind = Literal["context", "added", "deleted"]


@dataclass(frozen=True)
class Line:
    kind: LineKind
    old_line: int | None
    new_line: int | None
    content: str  # without its line ending
    no_newline: bool = False  # the file's last line, without a final newline


@dataclass(frozen=True)
class Hunk:
    old_start: int
    old_lines: int
    new_start: int
    new_lines: int
    lines: tuple[Line, ...]

    @property
    def header(self) -> str:
        return f"@@ -{_range(self.old_start, self.old_lines)} +{_range(self.new_start, self.new_lines)} @@"


def _range(start: int, count: int) -> str:
    return str(start) if count == 1 else f"{start},{count}"


_KINDS: dict[str, LineKind] = {" ": "context", "+": "added", "-": "deleted"}
# "\ No newline at end of file", as libgit2 marks it: said of the line just before it.
_END_OF_FILE_MARKS = ("=", ">", "<")


def line_hunks(old: bytes, new: bytes, context_lines: int) -> list[Hunk]:
    patch = pygit2.Patch.create_from(old, new, context_lines=context_lines)
    hunks: list[Hunk] = []
    for diff_hunk in patch.hunks:
        lines: list[Line] = []
        for line in diff_hunk.lines:
            if line.origin in _END_OF_FILE_MARKS:
                if lines:
                    last = lines[-1]
                    lines[-1] = Line(last.kind, last.old_line, last.new_line, last.content, True)
                continue
            kind = _KINDS[line.origin]
            lines.append(
                Line(
                    kind=kind,
                    old_line=line.old_lineno if kind != "added" else None,
                    new_line=line.new_lineno if kind != "deleted" else None,
                    content=line.raw_content.decode("utf-8").removesuffix("\n"),
                )
            )
        hunks.append(
            Hunk(
                old_start=diff_hunk.old_start,
                old_lines=diff_hunk.old_lines,
                new_start=diff_hunk.new_start,
                new_lines=diff_hunk.new_lines,
                lines=tuple(lines),
            )
        )
    return hunks
