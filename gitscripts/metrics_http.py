"""The metrics over HTTP: the middleware that counts requests (and the file API's bytes), and
`GET /metrics`.

`/metrics` is open to clients on this machine (loopback) when METRICS_TOKEN is empty; with a token,
to whoever presents it as `Authorization: Bearer <token>`, from anywhere.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gitscripts import errors
from gitscripts.metrics import Metrics
from gitscripts.services import AppSettings, services_of

# The file API's routes: its request and response bodies are the bytes in and out.
_FILES_PREFIX = "/api/v1/files"

router = APIRouter(tags=["health"])


class MetricsMiddleware:
    """Counts every HTTP request by method, route template and status class."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        files = scope["path"].startswith(_FILES_PREFIX)
        received = sent = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            return message

        async def counted_send(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, counted_receive if files else receive, counted_send)
        finally:
            # The template the router matched (FastAPI leaves it in the scope); never the path.
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.http_requests.labels(scope["method"], template, f"{status // 100}xx").inc()
            if files:
                self.metrics.file_bytes.labels("in").inc(received)
                self.metrics.file_bytes.labels("out").inc(sent)


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request, settings: AppSettings) -> Response:
    """The service's metrics in Prometheus' text format."""
    token = settings.metrics_token
    if token:
        presented = request.headers.get("authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(presented.encode(), token.encode()):
            raise errors.InvalidToken("The metrics need METRICS_TOKEN as a Bearer token")
    elif not _loopback(request.client.host if request.client else None):
        raise errors.PermissionDenied(
            "The metrics are open only on this machine; set METRICS_TOKEN to open them elsewhere"
        )
    return Response(
        services_of(request).metrics.render(),
        media_type="text/plain; version=0.0.4; charset=utf-8",
    )


def _loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
