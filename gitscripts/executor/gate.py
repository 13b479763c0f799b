"""Refuse a run while the executor is full, before any work is done for it.

A refused run used to cost what an admitted one costs up to the moment of refusal: its body read and
parsed, its token checked, its revision resolved and its script found. Under a crowd of clients
retrying at once, refusing took the CPU that the admitted runs needed (128 clients retrying cut
successful runs from about 420/s to 74/s). This ASGI middleware sits in front of the app and counts
the run requests it lets through until they are answered: at most `Admission.capacity` of them,
the runs it would hold (running, waiting, or still being read and checked). Beyond that it
refuses `POST /api/v1/scripts/...` with the route's own 429 (unified error shape, `Retry-After`
from the queue's pace), reading nothing of the request. Counting from the door, not from
`Admission`, matters: a place that frees up is taken by one request, not by every request that
arrives while the first is still being checked.

The refusal is decided at once but answered after a pause, about as long as a place takes to free
up (0.25 to 1 s). Cheap as a refusal is, a crowd retrying the moment it is refused would otherwise
keep the event loop busy answering it, and the admitted runs, whose every step waits for a turn of
that loop, would crawl. A client that honours Retry-After waits longer than the pause anyway.

What it cannot know then, it does not say: such a refusal names no user and no revision, and a
request for an unknown script, or without a token, is told the queue is full rather than 404 or 401.
A run that passes the gate is still admitted or refused by `Admission` itself, as before.
"""

from __future__ import annotations

import asyncio

import structlog
from starlette.types import ASGIApp, Receive, Scope, Send

from gitscripts.executor.service import Admission
from gitscripts.http_errors import error_response

# Seconds a refusal is held before it is answered (see `AdmissionGate.__call__`).
MIN_REFUSAL_PAUSE = 0.25
MAX_REFUSAL_PAUSE = 1.0
# The execution route's prefix (`gitscripts.executor.routes`), with its slash: not scripts-manager.
RUN_PREFIX = "/api/v1/scripts/"

log = structlog.get_logger("gitscripts.executor")


class AdmissionGate:
    def __init__(self, app: ASGIApp, admission: Admission) -> None:
        self.app = app
        self.admission = admission
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"].startswith(RUN_PREFIX)
        ):
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.admission.capacity:
            # Every run is logged, a refused one too: with what is known before any work.
            log.info("execution", script=scope["path"][len(RUN_PREFIX) :], outcome="refused")
            pause = min(MAX_REFUSAL_PAUSE, max(MIN_REFUSAL_PAUSE, self.admission.expected_wait()))
            refusal = self.admission.refusal(answered_in=pause)
            await asyncio.sleep(pause)
            await error_response(refusal)(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
