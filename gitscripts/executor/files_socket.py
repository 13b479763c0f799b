"""The file API on a Unix socket, for runs that have no network (EXECUTION_NETWORK=none).

A sandboxed run lives in its own network namespace with nothing but a loopback, so it cannot reach
the service's TCP port. Its sandbox binds this socket in instead (see `sandbox._build_skeleton`), and
`gitscripts.runtime.files` talks HTTP over it. Only the file endpoints answer here: the socket is
a way to the file store with the run's own token, not a way round the missing network.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from gitscripts import errors
from gitscripts.http_errors import error_response

_FILES_PREFIX = "/api/v1/files"


def files_only(app: ASGIApp) -> ASGIApp:
    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not (
            scope["path"] == _FILES_PREFIX or scope["path"].startswith(_FILES_PREFIX + "/")
        ):
            response = error_response(
                errors.NotFound("Only the file API is served to running scripts")
            )
            await response(scope, receive, send)
            return
        await app(scope, receive, send)

    return guarded


class FilesSocket:
    """An HTTP server for `app` on a Unix socket, inside the service's own event loop."""

    def __init__(self, app: ASGIApp, path: Path) -> None:
        config = uvicorn.Config(
            files_only(app), uds=str(path), lifespan="off", log_config=None, access_log=False
        )
        self._server = uvicorn.Server(config)
        self._loop: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # startup/main_loop rather than serve(): serve() would take over the process's signal
        # handlers, which belong to the server that runs the app. What serve() prepares before
        # startup is done here (with lifespan="off" the lifespan does nothing).
        config = self._server.config
        config.load()
        self._server.lifespan = config.lifespan_class(config)
        await self._server.startup()
        self._loop = asyncio.create_task(self._server.main_loop())

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._loop is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
        await self._server.shutdown()
