"""An environment's state over HTTP: GET /api/v1/environments/{key}, for any logged-in user (the
web UI shows it beside a script: ready, building, or failed with its log)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from gitscripts.auth.deps import CurrentUser
from gitscripts.services import Envs

router = APIRouter(prefix="/api/v1/environments", tags=["environments"])


@router.get("/{key}")
def environment(
    key: str, user: CurrentUser, environments: Envs, worker: str | None = None
) -> dict[str, Any]:
    """Its state (`ready`, `building`, `failed`), size in bytes, when it was built and last
    used, and its build's log; with `?worker=NAME` (EXECUTOR=dask), that worker's own."""
    return environments.info(key, worker).public()
