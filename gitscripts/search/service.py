"""Code search at a revision: git's matches, each with the id of the script it is in.

A path at an older revision shows the id of what it became on `main` (the same path, or where
git's rename detection says it moved), as the tree at that revision does; a file that is gone
since, or a helper without an id, has `script_id` null.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gitscripts.index import Index
from gitscripts.index.lookups import Lookups
from gitscripts.repo import Repository, layout
from gitscripts.search.grep import grep_tree

# A search that takes longer than this answers with what it found so far.
SEARCH_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class CodeMatch:
    path: str
    script_id: int | None
    line: int
    text: str


@dataclass(frozen=True)
class CodeSearch:
    revision: str
    matches: list[CodeMatch]
    truncated: bool
    timed_out: bool
    elapsed_ms: float


def search_code(
    lookups: Lookups,
    repo: Repository,
    index: Index,
    repo_path: Path,
    query: str,
    revision: str | None,
    *,
    regex: bool,
    case_sensitive: bool,
    limit: int,
) -> CodeSearch:
    lookups.ensure_synced()
    head = repo.head()
    commit = head if revision is None else repo.resolve(revision)
    found = grep_tree(
        repo_path,
        str(commit.id),
        query,
        regex=regex,
        ignore_case=not case_sensitive,
        limit=limit,
        timeout=SEARCH_TIMEOUT_SECONDS,
    )
    matches = [match for match in found.matches if layout.is_script_path(match.path)]
    moves = repo.detected_moves(commit, head) if matches and commit.id != head.id else {}

    def script_id(path: str) -> int | None:
        return index.scripts.id_at(moves.get(path, path))

    return CodeSearch(
        revision=str(commit.id),
        matches=[
            CodeMatch(path=m.path, script_id=script_id(m.path), line=m.line, text=m.text)
            for m in matches
        ],
        truncated=found.truncated,
        timed_out=found.timed_out,
        elapsed_ms=round(found.elapsed_ms, 1),
    )
