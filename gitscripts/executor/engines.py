"""How the service hands a job to a worker process and gets its report back.

Both engines run the same supervisor (`worker.supervise`); they differ in where it comes from:
- `ForkServerEngine` (default): a warm zygote forks it, so a run costs a fork, not an interpreter
  start and the imports of PRELOAD_MODULES;
- `SubprocessEngine`: a fresh `python -m gitscripts.executor.worker` per run (the original design).
Cancelling the awaiting task (client gone, service stopping) terminates the supervisor, which kills
the script's whole process group. Every wait on a worker has a deadline: a fork server that does not
answer within the run's timeout (plus a grace) is killed and started anew; the run it owed fails
with a clear error and the next one is served by the new fork server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Protocol, cast

import structlog

from gitscripts.executor import protocol
from gitscripts.executor.packages import Packages
from gitscripts.executor.protocol import Job, Report
from gitscripts.executor.sandbox import SandboxConfig

log = structlog.get_logger("gitscripts.executor")


# How long past a run's own timeout its supervisor may take to report (kill, drain, clean up).
REPORT_GRACE_SECONDS = 10.0


class EngineUnresponsive(RuntimeError):
    """The worker process did not report in time; it was killed (and, if warm, restarted)."""


class Engine(Protocol):
    async def start(self) -> None: ...

    async def run(self, job: Job) -> Report: ...

    async def stop(self) -> None: ...


async def _read_report(reader: asyncio.StreamReader) -> Report:
    header = await reader.readexactly(protocol.HEADER_SIZE)
    body = await reader.readexactly(protocol.decode_length(header))
    report = json.loads(body)
    return cast(Report, report)  # written by a supervisor (`worker.Run.report`)


def _terminate(pid: int | None) -> None:
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGTERM)


class ForkServerEngine:
    def __init__(
        self,
        socket_path: Path,
        preload: list[str],
        env: dict[str, str],
        sandbox: SandboxConfig,
        packages: Packages | None = None,
    ) -> None:
        self.socket_path = socket_path
        self.preload = preload
        self.env = env
        self.sandbox = sandbox
        self.packages = packages or Packages()
        self._zygote: asyncio.subprocess.Process | None = None
        self._ready: asyncio.Future[None] | None = None
        self._starting = asyncio.Lock()

    async def start(self) -> None:
        async with self._starting:
            if self._zygote is not None and self._zygote.returncode is None:
                return
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()
            self._zygote = await asyncio.create_subprocess_exec(
                sys.executable,
                "-I",
                "-m",
                "gitscripts.executor.zygote",
                str(self.socket_path),
                ",".join(self.preload),
                self.sandbox.to_json(),
                self.packages.to_json(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                env=self.env,
            )
            assert self._zygote.stdout is not None
            line = await asyncio.wait_for(self._zygote.stdout.readline(), timeout=120)
            if line.strip() != b"ready":
                code = await self._zygote.wait()
                raise RuntimeError(
                    f"the fork server did not start (exit status {code}); "
                    f"check PRELOAD_MODULES={','.join(self.preload)!r}"
                )
            log.info("fork_server_started", pid=self._zygote.pid, preload=self.preload)

    async def run(self, job: Job) -> Report:
        if self._zygote is None or self._zygote.returncode is not None:
            await self.start()
        zygote = self._zygote
        try:
            reader, writer = await asyncio.open_unix_connection(str(self.socket_path))
        except (ConnectionRefusedError, FileNotFoundError):
            # The fork server is gone (nothing was sent yet, so nothing ran): start a new one.
            await self._restart(zygote)
            reader, writer = await asyncio.open_unix_connection(str(self.socket_path))
        try:
            writer.write(protocol.encode(job))
            await writer.drain()
            deadline = float(job["timeout"]) + REPORT_GRACE_SECONDS
            try:
                return await asyncio.wait_for(_read_report(reader), timeout=deadline)
            except (TimeoutError, asyncio.IncompleteReadError, ConnectionError) as exc:
                # Stopped, crashed or stuck: it cannot be trusted with the next run either.
                await self._restart(zygote)
                raise EngineUnresponsive(
                    "The execution engine stopped answering during this run and was restarted"
                ) from exc
        finally:
            # Hanging up before the report (a cancelled request) makes the fork server kill the run.
            writer.close()

    async def _restart(self, failed: asyncio.subprocess.Process | None) -> None:
        async with self._starting:
            if self._zygote is not failed:
                return  # another request has restarted it already
            log.warning("fork_server_restart", pid=failed.pid if failed else None)
            if failed is not None and failed.returncode is None:
                failed.kill()
                await failed.wait()
            self._zygote = None
        await self.start()

    async def stop(self) -> None:
        if self._zygote is not None and self._zygote.returncode is None:
            self._zygote.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._zygote.wait(), timeout=5)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()


class SubprocessEngine:
    def __init__(
        self, env: dict[str, str], sandbox: SandboxConfig, packages: Packages | None = None
    ) -> None:
        self.env = env
        self.sandbox = sandbox
        self.packages = packages or Packages()

    async def start(self) -> None:
        return None

    async def run(self, job: Job) -> Report:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            "-m",
            "gitscripts.executor.worker",
            self.sandbox.to_json(),
            self.packages.to_json(),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=self.env,
        )
        assert process.stdin is not None and process.stdout is not None
        try:
            process.stdin.write(protocol.encode(job))
            await process.stdin.drain()
            process.stdin.close()
            deadline = float(job["timeout"]) + REPORT_GRACE_SECONDS
            try:
                report = await asyncio.wait_for(_read_report(process.stdout), timeout=deadline)
            except (TimeoutError, asyncio.IncompleteReadError) as exc:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                raise EngineUnresponsive(
                    "The execution's worker process stopped answering and was killed"
                ) from exc
            await process.wait()
            return report
        except asyncio.CancelledError:
            _terminate(process.pid)
            raise

    async def stop(self) -> None:
        return None
