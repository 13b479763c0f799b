from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import APIRouter, Query, Request, Response

from gitscripts import errors
from gitscripts.auth.deps import OptionalUser
from gitscripts.services import RunLog

router = APIRouter(prefix="/api/v1/scripts", tags=["execution"])

T = TypeVar("T")


def parse_input(body: bytes) -> Any:
    """The seed's two body forms: `{"data": {...}}` is unwrapped, anything else is passed as is."""
    if not body.strip():
        return {}
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise errors.ValidationError(f"The request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise errors.JSONTooDeep() from None
    if (
        isinstance(document, dict)
        and set(document) == {"data"}
        and isinstance(document["data"], dict)
    ):
        return document["data"]
    return document


async def _until_disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def unless_client_leaves(request: Request, work: Coroutine[Any, Any, T]) -> T | None:
    """What `work` returns; or None once the client has gone away, with `work` cancelled (its
    runs are stopped then: nobody is left to read their answers)."""
    execution = asyncio.create_task(work)
    disconnect = asyncio.create_task(_until_disconnected(request))
    try:
        done, _ = await asyncio.wait({execution, disconnect}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        disconnect.cancel()
    if execution not in done:
        execution.cancel()
        return None
    return execution.result()


@router.post("/{logical_path:path}")
async def execute_script(
    logical_path: str,
    request: Request,
    user: OptionalUser,
    service: RunLog,
    rev: Annotated[
        str | None, Query(description="commit id (full or short), tag or branch")
    ] = None,
    timeout: Annotated[
        float | None,
        Query(gt=0, allow_inf_nan=False, description="seconds; at most MAX_SCRIPT_EXECUTION_TIME"),
    ] = None,
) -> Response:
    """Run `main(data)` of the script at `logical_path`, as it is at `rev` (default: main); the
    run is recorded in the run log (its id is the answer's `run_id`)."""
    data = parse_input(await request.body())
    outcome = await unless_client_leaves(
        request, service.execute(user, logical_path, data, rev, timeout)
    )
    return json_or_gone(outcome)


def json_or_gone(outcome: dict[str, Any] | None) -> Response:
    """The answer of a run, or 499 when its client went away."""
    if outcome is None:
        # Nobody is left to read an answer, and nothing failed: the run's own log line says
        # `cancelled`. 499 is the status proxies log for a client that closed the request.
        return Response(status_code=499)
    # Serialized directly: the service has checked that the script's result can be (see
    # `service._with_answer`), and there is nothing to validate or convert.
    return Response(orjson.dumps(outcome), media_type="application/json")
