"""`GET /api/v1/scripts-manager/search`: the lines of the scripts' code that hold some text."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Query

from gitscripts.auth.deps import CurrentUser
from gitscripts.search.service import search_code
from gitscripts.services import AppSettings, Lookup, Repo, Store

router = APIRouter(prefix="/api/v1/scripts-manager", tags=["scripts-manager"])


@router.get("/search")
def search(
    user: CurrentUser,
    lookups: Lookup,
    repo: Repo,
    index: Store,
    settings: AppSettings,
    q: Annotated[str, Query(min_length=1, max_length=1000, description="the text to find")],
    rev: Annotated[
        str | None, Query(description="a commit id (full or abbreviated), a tag or a branch")
    ] = None,
    regex: Annotated[bool, Query(description="`q` is a POSIX extended regular expression")] = False,
    case_sensitive: Annotated[
        bool, Query(description="match upper and lower case exactly")
    ] = False,
    limit: Annotated[int, Query(ge=1, le=1000, description="at most this many lines")] = 200,
) -> dict[str, Any]:
    """Every line of a script (`*.py`) at `rev` (default `main`) that contains `q`, found by
    `git grep` over that revision's tree: `{"revision", "matches": [{"path", "script_id", "line",
    "text"}], "truncated", "timed_out", "elapsed_ms"}`. `truncated`: there were more than
    `limit`; `timed_out`: the search stopped after 5 seconds with what it had found."""
    found = search_code(
        lookups,
        repo,
        index,
        settings.repo_path,
        q,
        rev,
        regex=regex,
        case_sensitive=case_sensitive,
        limit=limit,
    )
    return asdict(found)
