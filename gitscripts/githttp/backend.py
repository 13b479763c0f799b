"""Git's smart HTTP protocol, served by git's own `git http-backend` as a CGI program.

Request and response bodies stream through in chunks both ways, so a large pack is never held in
memory; git itself inflates gzip-encoded request bodies and speaks protocol v2 when the client asks
(the `Git-Protocol` header). When the client goes away mid-transfer the child processes are stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping
from pathlib import Path

import anyio
import structlog
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

log = structlog.get_logger("gitscripts.git")

_CHUNK = 64 * 1024
# How long git gets to exit on its own once its input has ended, when the client went away.
_EOF_GRACE_SECONDS = 2.0
# How long git gets to exit on SIGTERM before SIGKILL.
_TERM_GRACE_SECONDS = 5.0
# How long git may take to exit after its whole answer was sent (it never needs long).
_FINISH_SECONDS = 600.0


class BackendResponse(Response):
    """The ASGI response of one `git http-backend` run; it owns the process until it has exited.

    Not Starlette's StreamingResponse: under ASGI < 2.4 that one listens for a disconnect by
    calling `receive()` while the body streams, and would swallow request body chunks of a push
    that git is still reading. Here the disconnect is watched only once the request body is in.
    """

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        feeder: asyncio.Task[None],
        status: int,
        headers: dict[str, str],
    ) -> None:
        self.process = process
        self.feeder = feeder
        self.status_code = status
        self.raw_headers = [(k.lower().encode(), v.encode("latin-1")) for k, v in headers.items()]
        self.background = None
        assert process.stderr is not None
        self._errors = asyncio.create_task(process.stderr.read())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.process.stdout is not None
        completed = False
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(self._watch_for_disconnect, receive, tasks.cancel_scope)
                while chunk := await self.process.stdout.read(_CHUNK):
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                # Set here, not after the block: a disconnect cancels the block and ends it quietly.
                completed = True
                tasks.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self.close(completed)

    async def _watch_for_disconnect(self, receive: Receive, scope: anyio.CancelScope) -> None:
        # The feeder reads the request body; only after it is done may we call `receive()`.
        with contextlib.suppress(Exception):
            await asyncio.shield(self.feeder)
        if self.feeder.cancelled() or self.feeder.exception() is not None:
            # ClientDisconnect: the client went away while sending
            scope.cancel()
            return
        while (await receive())["type"] != "http.disconnect":
            pass
        scope.cancel()

    async def close(self, completed: bool = False) -> None:
        """Reap git; stop it first unless it answered in full (the client went away, or we
        failed). After a full answer git may still be finishing up, and is left to."""
        # The feeder ends git's input: a push cut short sees the end of its pack and exits, and
        # only an exit removes its quarantine (a signal leaves it behind), so it gets a moment.
        self.feeder.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                self.process.wait(), _FINISH_SECONDS if completed else _EOF_GRACE_SECONDS
            )
        if self.process.returncode is None:
            # Still running (a clone writing a pack nobody reads): SIGTERM, then SIGKILL.
            _signal_group(self.process, signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), _TERM_GRACE_SECONDS)
            except TimeoutError:
                _signal_group(self.process, signal.SIGKILL)
                await self.process.wait()
        stderr = (await self._errors).decode("utf-8", "replace").strip()
        if stderr:
            log.info("git_http_backend_stderr", stderr=stderr[-2000:])


async def run_http_backend(
    request: Request, project_root: Path, path_info: str, extra_env: Mapping[str, str]
) -> BackendResponse:
    env = {
        **extra_env,
        "GIT_PROJECT_ROOT": str(project_root),
        "GIT_HTTP_EXPORT_ALL": "1",
        "PATH_INFO": path_info,
        "REQUEST_METHOD": request.method,
        "QUERY_STRING": request.url.query,
        "CONTENT_TYPE": request.headers.get("content-type", ""),
        "REMOTE_ADDR": request.client.host if request.client else "",
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_PROTOCOL": "HTTP/1.1",
    }
    # No CONTENT_LENGTH: git reads the body to its end, which also covers chunked uploads.
    for header, variable in (
        ("content-encoding", "HTTP_CONTENT_ENCODING"),
        ("git-protocol", "GIT_PROTOCOL"),
    ):
        if header in request.headers:
            env[variable] = request.headers[header]
    process = await asyncio.create_subprocess_exec(
        "git",
        "http-backend",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        # Its own process group: git http-backend starts upload-pack/receive-pack as children,
        # and a client that goes away must take all of them down.
        start_new_session=True,
    )
    assert process.stdin is not None and process.stdout is not None
    feeder = asyncio.create_task(_feed(request, process.stdin))
    try:
        status, headers = await _read_cgi_headers(process.stdout)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await BackendResponse(process, feeder, 500, {}).close()
        raise
    return BackendResponse(process, feeder, status, headers)


async def _feed(request: Request, stdin: asyncio.StreamWriter) -> None:
    """Copy the request body to git's stdin; ClientDisconnect when the client goes away."""
    try:
        async for chunk in request.stream():
            if not chunk:
                continue
            if stdin.is_closing():
                break  # git stopped reading (it answers an error): its answer still streams back
            stdin.write(chunk)
            await stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass  # as above
    finally:
        # End of input: git sees EOF (and, for a push cut short, gives up and cleans up).
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, RuntimeError):
            stdin.close()


async def _read_cgi_headers(stdout: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    status = 200
    headers: dict[str, str] = {}
    while True:
        line = (await stdout.readline()).rstrip(b"\r\n")
        if not line:
            return status, headers
        name, _, value = line.decode("latin-1").partition(":")
        if name.lower() == "status":
            status = int(value.strip().split()[0])
        else:
            headers[name.strip()] = value.strip()


def _signal_group(process: asyncio.subprocess.Process, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)
