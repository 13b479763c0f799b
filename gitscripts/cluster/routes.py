"""The service's door for cluster workers: trees by id, and each worker's WebSocket (runs
started, cancelled, and their results), for the worker credential only.

Not part of the public API (absent from its schema). Without WORKER_TOKEN set it answers 404, as
if it did not exist; a wrong credential is 401 (a WebSocket's handshake: 403). The credential is
compared in constant time.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from typing import Annotated, Any

from fastapi import APIRouter, Header, Response, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from gitscripts import errors
from gitscripts.cluster.trees import OBJECT_ID, pack
from gitscripts.repo.trees import TreeReader
from gitscripts.services import AppSettings, Executor, Repo

router = APIRouter(prefix="/internal/v1", include_in_schema=False)


class Have(BaseModel):
    have: list[str] = Field(default_factory=list, max_length=1_000_000)


def _is_worker(expected: str | None, authorization: str | None) -> bool:
    scheme, _, given = (authorization or "").partition(" ")
    return (
        bool(expected)
        and scheme.lower() == "bearer"
        and hmac.compare_digest(given.encode(), (expected or "").encode())
    )


def _check_worker(expected: str | None, authorization: str | None) -> None:
    if not expected:
        raise errors.NotFound("Not found")
    if not _is_worker(expected, authorization):
        raise errors.InvalidToken("This endpoint is for cluster workers, with WORKER_TOKEN")


@router.post("/trees/{tree_id}")
async def tree(
    tree_id: str,
    body: Have,
    settings: AppSettings,
    repo: Repo,
    authorization: Annotated[str | None, Header()] = None,
) -> Response:
    """The tree and what it reaches, less what the worker has (`cluster.trees.pack`)."""
    _check_worker(settings.worker_token, authorization)
    if not OBJECT_ID.fullmatch(tree_id) or not all(OBJECT_ID.fullmatch(t) for t in body.have):
        raise errors.ValidationError("Tree ids are hexadecimal object ids")
    try:
        content = await run_in_threadpool(pack, TreeReader(repo.git), tree_id, set(body.have))
    except (KeyError, ValueError, AssertionError):  # no such object, or not a tree
        raise errors.NotFound(f"No tree {tree_id}", tree_id=tree_id) from None
    return Response(content, media_type="application/octet-stream")


@router.websocket("/results")
async def results(socket: WebSocket, settings: AppSettings, executor: Executor) -> None:
    """A worker's two-way channel. From the worker: `{"worker": address}` (its address as the
    scheduler knows it, again whenever it changes), then one JSON message per ended run,
    `{"key", "secret", "result"}`, handed to the run waiting for it
    (`cluster.dispatch.Cluster.deliver`, which checks the run's secret). To the worker:
    `{"start": job}`, `{"cancel": key}` and `{"release": slot}` (`Cluster._start_in_slot`,
    `_in_slot`, `_release`)."""
    cluster = executor.cluster
    authorization = socket.headers.get("authorization")
    if cluster is None or not _is_worker(settings.worker_token, authorization):
        await socket.close(code=1008)  # before the handshake: refused with 403
        return
    await socket.accept()
    sending = asyncio.Lock()  # one message at a time, from whichever run sends

    async def send(message: dict[str, Any]) -> None:
        async with sending:
            await socket.send_text(json.dumps(message))

    address: str | None = None
    try:
        while True:
            try:
                message = json.loads(await socket.receive_text())
            except (KeyError, ValueError):  # binary, or not JSON: not a worker of ours
                await socket.close(code=1003)
                return
            if isinstance(message, dict) and isinstance(message.get("worker"), str):
                if address is not None:
                    cluster.detach(address, send)
                address = message["worker"]
                cluster.attach(address, send)
            else:
                cluster.deliver(message)
    except WebSocketDisconnect:
        return
    finally:
        if address is not None:
            cluster.detach(address, send)
