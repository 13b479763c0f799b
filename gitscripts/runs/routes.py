"""The run log over HTTP: read a run, list runs (parse, call `RunService`, shape the reply)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from gitscripts import errors
from gitscripts.auth.deps import CurrentUser
from gitscripts.runs.records import Status
from gitscripts.services import RunLog

router = APIRouter(prefix="/api/v1/runs", tags=["runs"])


@router.get("")
def list_runs(
    user: CurrentUser,
    service: RunLog,
    script_id: int | None = None,
    path: Annotated[str | None, Query(description="the script's path when it ran")] = None,
    status: Status | None = None,
    user_login: Annotated[str | None, Query(alias="user", description="who ran it")] = None,
    since: Annotated[
        str | None, Query(description="ISO 8601 time: runs queued then or later")
    ] = None,
    before: Annotated[
        str | None, Query(description="a run id: runs older than it (paging)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """The runs the caller may see (admins: everyone's), newest first."""
    return service.list(
        user,
        script_id=script_id,
        path=path,
        status=status,
        login=user_login,
        since=_moment(since),
        before=before,
        limit=limit,
    )


@router.get("/{run_id}")
def get_run(run_id: str, user: CurrentUser, service: RunLog) -> dict[str, Any]:
    """One run, with its input, result, output, error and timings."""
    return service.get(user, run_id)


def _moment(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise errors.ValidationError("since must be an ISO 8601 time", since=text) from None
    if moment.tzinfo is None:
        raise errors.ValidationError("since must name its time zone (Z for UTC)", since=text)
    return moment.timestamp()
