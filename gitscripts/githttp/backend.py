"""Git's smart HTTP protocol, served by git's own `git http-backend` as a CGI program.

Request and response bodies stream through in chunks both ways, so a large pack is never held in
memory; git itself inflates gzip-encoded request bodies and speaks protocol v2 when the client asks
(the `Git-Protocol` header). When the client goes away mid-transfer the child process is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import structlog
from starlette.requests import Request

log = structlog.get_logger("gitscripts.git")

_CHUNK = 64 * 1024


@dataclass
class BackendResponse:
    status: int
    headers: dict[str, str]
    body: AsyncIterator[bytes]


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
    errors = asyncio.create_task(process.stderr.read()) if process.stderr else None
    try:
        status, headers = await _read_cgi_headers(process.stdout)
    except BaseException:
        await _stop(process, feeder)
        raise

    async def body() -> AsyncIterator[bytes]:
        assert process.stdout is not None
        finished = False
        try:
            while chunk := await process.stdout.read(_CHUNK):
                yield chunk
            await feeder
            await process.wait()
            finished = True
        finally:
            if not finished:  # the client went away (or we failed): do not leave git running
                await _stop(process, feeder)
            if errors is not None:
                stderr = (await errors).decode("utf-8", "replace").strip()
                if stderr:
                    log.info("git_http_backend_stderr", stderr=stderr[-2000:])

    return BackendResponse(status=status, headers=headers, body=body())


async def _feed(request: Request, stdin: asyncio.StreamWriter) -> None:
    try:
        async for chunk in request.stream():
            stdin.write(chunk)
            await stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass  # git stopped reading (it answers an error): its answer still streams back
    finally:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
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


async def _stop(process: asyncio.subprocess.Process, feeder: asyncio.Task[None]) -> None:
    feeder.cancel()
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
