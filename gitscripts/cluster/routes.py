"""The service's door for cluster workers: trees by id, for the worker credential only.

Not part of the public API (absent from its schema). Without WORKER_TOKEN set it answers 404, as
if it did not exist; a wrong credential is 401. The credential is compared in constant time.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Header, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from gitscripts import errors
from gitscripts.cluster.trees import OBJECT_ID, pack
from gitscripts.repo.trees import TreeReader
from gitscripts.services import AppSettings, Repo

router = APIRouter(prefix="/internal/v1", include_in_schema=False)


class Have(BaseModel):
    have: list[str] = Field(default_factory=list, max_length=1_000_000)


def _check_worker(expected: str | None, authorization: str | None) -> None:
    if not expected:
        raise errors.NotFound("Not found")
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), expected.encode()):
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
