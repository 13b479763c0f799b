"""Runs over HTTP: submit, read (and wait for), cancel and list them (parse, call `RunService`,
shape the reply)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from gitscripts import errors
from gitscripts.auth.deps import CurrentUser, OptionalUser
from gitscripts.executor.routes import json_or_gone, unless_client_leaves
from gitscripts.runs.records import Run, Status
from gitscripts.services import RunLog

router = APIRouter(prefix="/api/v1/runs", tags=["runs"])

# The longest `?wait=` (seconds): a client waiting longer asks again.
MAX_WAIT = 60.0


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
    batch: Annotated[str | None, Query(description="a batch's id: the runs of that batch")] = None,
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
        batch_id=batch,
        limit=limit,
    )


class Submission(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="the script's logical path")
    rev: str | None = Field(default=None, description="commit id, tag or branch (default main)")
    data: Any = Field(default_factory=dict, description="what main(data) is given")
    timeout: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description="seconds; at most MAX_ASYNC_EXECUTION_TIME",
    )


class Batch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="the script's logical path")
    rev: str | None = Field(default=None, description="commit id, tag or branch (default main)")
    inputs: list[Any] = Field(description="one main(data) input per run")
    timeout: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description="seconds, for each run; at most MAX_SCRIPT_EXECUTION_TIME",
    )


@router.post("/batch")
async def run_batch(
    batch: Batch, request: Request, user: OptionalUser, service: RunLog
) -> Response:
    """Run one script at one revision once per input, each in its own process, in parallel:
    `{"revision", "batch_id", "results"}`, the results in the inputs' order; every run of the
    batch carries its `batch_id`."""
    outcome = await unless_client_leaves(
        request, service.batch(user, batch.path, batch.inputs, batch.rev, batch.timeout)
    )
    return json_or_gone(outcome)


@router.post("/{run_id}/replay", status_code=202)
async def replay_run(
    run_id: str, user: CurrentUser, service: RunLog, response: Response
) -> dict[str, Any]:
    """Run a run's input again at the commit it ran: a new asynchronous run (`replay_of`)."""
    return _started(await service.replay(user, run_id), response)


@router.post("", status_code=202)
async def submit_run(
    submission: Submission,
    user: CurrentUser,
    service: RunLog,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(max_length=200, description="a retried submit with it returns the first run"),
    ] = None,
) -> dict[str, Any]:
    """Start a run and answer at once, with the run (`queued`) and its URL."""
    run = await service.submit(
        user,
        submission.path,
        submission.data,
        submission.rev,
        submission.timeout,
        idempotency_key,
    )
    return _started(run, response)


@router.get("/limits")
def run_limits(user: CurrentUser, service: RunLog) -> dict[str, Any]:
    """What a run may ask for, and whether the log keeps its input and result: the default (and
    longest) timeout of a synchronous and of an asynchronous run, in seconds."""
    return dict(service.limits())


@router.get("/{run_id}")
async def get_run(
    run_id: str,
    user: CurrentUser,
    service: RunLog,
    wait: Annotated[
        float, Query(ge=0, le=MAX_WAIT, description="seconds to wait for the run to end")
    ] = 0,
) -> dict[str, Any]:
    """One run, with its input, result, output, error and timings."""
    return (await service.get(user, run_id, wait)).public()


@router.post("/{run_id}/cancel")
async def cancel_run(run_id: str, user: CurrentUser, service: RunLog) -> dict[str, Any]:
    """Stop a queued or running asynchronous run (its processes are killed)."""
    return (await service.cancel(user, run_id)).public()


def _started(run: Run, response: Response) -> dict[str, Any]:
    """A run just started (or found by its idempotency key), with its URL."""
    url = f"{router.prefix}/{run.id}"
    response.headers["Location"] = url
    return {**run.public(), "url": url}


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
