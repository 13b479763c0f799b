"""Reading the documentation as the tests check it: sections, fenced blocks, shown output.

A shell block's output, when the docs show it, is the `text` block right after it. In shown output
`...` stands for anything within a line (a time, a commit id), and a line that is only `...` for
any number of lines; everything else must be exactly what the block printed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Block:
    language: str
    body: str
    line: int  # where the block starts in its document, for failure messages
    output: str | None = None  # the `text` block that follows directly, if any


def blocks(markdown: str) -> list[Block]:
    """The fenced blocks of `markdown` in order, each shell block with the output shown after it."""
    found: list[Block] = []
    previous_end = -1
    for match in _FENCE.finditer(markdown):
        language = match[1].strip().split(" ")[0]
        line = markdown.count("\n", 0, match.start()) + 1
        follows = found and not markdown[previous_end : match.start()].strip()
        if language == "text" and follows and found[-1].language == "bash":
            found[-1] = Block(found[-1].language, found[-1].body, found[-1].line, match[2])
        else:
            found.append(Block(language, match[2], line))
        previous_end = match.end()
    return found


def section(markdown: str, heading: str) -> str:
    """The text under the heading `## heading` (with its subsections), up to the next `## `."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", markdown, re.M | re.S)
    assert match, f"no section '## {heading}'"
    return match[1]


def output_pattern(shown: str) -> re.Pattern[str]:
    parts = []
    for line in shown.rstrip("\n").split("\n"):
        if line == "...":
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append("[^\\n]*?".join(re.escape(piece) for piece in line.split("...")) + r"\n")
    return re.compile("".join(parts), re.DOTALL)


def matches(shown: str, printed: str) -> bool:
    """Whether `printed` is what `shown` says, trailing spaces of each line aside."""
    lines = [line.rstrip() for line in printed.rstrip("\n").split("\n")]
    return output_pattern(shown).fullmatch("\n".join(lines) + "\n") is not None
