"""Structured logs: JSON lines in production, a readable console in development.

Request-scoped facts (request id, user) live in structlog's contextvars so every line logged while a
request is handled carries them without being passed around.
"""

from __future__ import annotations

import logging
import sys
import time
import uuid
from collections.abc import MutableMapping
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Keys whose values must never reach a log line, whatever logged them.
_SECRET_KEYS = frozenset({"password", "token", "access_token", "authorization", "secret", "jwt"})


def _redact_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in event.keys() & _SECRET_KEYS:
        event[key] = "[redacted]"
    return event


def configure_logging(level: str = "INFO", json_lines: bool = False) -> None:
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json_lines
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    numeric_level = logging.getLevelName(level.upper())
    if not isinstance(numeric_level, int):
        numeric_level = logging.INFO
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        # Resolved per call, so a redirected stderr (a test capturing logs) is honoured.
        logger_factory=lambda *_: structlog.PrintLogger(sys.stderr),
        cache_logger_on_first_use=False,
    )
    # Uvicorn's own access log would duplicate (and not redact) what the middleware logs.
    logging.getLogger("uvicorn.access").disabled = True


def bind_user(scope: Scope, login: str) -> None:
    """Name the caller in the request's log line and in every line logged while it is handled.

    The request state carries it back to the middleware: a contextvar set in a dependency that
    runs in a worker thread would not be seen there.
    """
    scope.setdefault("state", {})["user"] = login
    structlog.contextvars.bind_contextvars(user=login)


_QUIET_PREFIXES = ("/ui/", "/static-offline-docs/")


class RequestLogMiddleware:
    """One log line per HTTP request: request id, user, method, path, status, duration.

    The query string is left out on purpose: it may carry tokens.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.log = structlog.get_logger("gitscripts.request")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex[:16]
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_request_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        finally:
            # The web UI's own files would bury the API's lines at every page load: they are
            # logged only at DEBUG, unless something went wrong with them.
            quiet = scope["path"].startswith(_QUIET_PREFIXES) and status < 400
            (self.log.debug if quiet else self.log.info)(
                "request",
                user=scope.get("state", {}).get("user"),
                method=scope["method"],
                path=scope["path"],
                status=status,
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
            )
            structlog.contextvars.clear_contextvars()
