"""The worker's side of EXECUTOR=dask: the gitscripts runtime inside a Dask worker process.

`gitscripts worker` (`cluster.commands`) makes one `WorkerRuntime` per process and then serves a
Dask worker with as many threads as the runtime has slots. The runtime is the service's own
(`ExecutionService`, with its checkout cache, warm fork server, sandbox, limits, clean environment,
captured output and fresh process per run): only its source of trees differs, the service's
internal tree endpoint (`cluster.trees.RemoteTrees`), with the worker credential.

A run reaches the file API as it would on the service, with the run's own token: sandboxed runs
without network through a Unix socket bound into their sandbox, which here forwards to the
service's HTTP (file endpoints only, `executor.files_socket.files_only`). The worker credential is
never in a run's environment; the worker process is not dumpable (`ExecutionService`), so a run
cannot read it from the worker's memory either.

Scripts with dependencies run in environments the worker builds itself, from the lock the job
carries (exact versions; for packages from an index, their files' hashes, which uv checks), from
its own package sources (the PACKAGES_* variables, as on the service), kept in its data directory
across restarts.

The worker's WebSocket to the service (`ReplyChannel`, with the worker credential) goes both ways.
Down it come runs to start and to cancel: a run the service sent there starts at once under its
task's key, and its Dask task, which the service bound to this worker, attaches to it when it comes
(to its result, if it ended already: ended runs are kept until their task collects them); whichever
comes first starts the run, once. A cancel for a run not started yet keeps it from starting. Up it
go the worker's address (as its scheduler knows it) and each run's result: at once, with the run's
own secret (see `cluster.dispatch`), and again as the Dask task's result (which the service reads
when the first did not reach it). The socket is opened in the background and again after a pause
when it fails: a run never waits for it, and without it runs come through Dask alone.

`run_job` is the Dask task; `cancel_run`, run on every worker by the service, stops one;
`prepare_environment` and `environment_info` are how the service builds ahead and asks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any

import aiohttp
import structlog
from starlette.types import Receive, Scope, Send

from gitscripts import errors
from gitscripts.cluster.jobs import ClusterJob, from_message
from gitscripts.cluster.trees import RemoteTrees
from gitscripts.config import Settings
from gitscripts.deps.environments import Environments
from gitscripts.executor.files_socket import FilesSocket
from gitscripts.executor.service import ExecutionService, RunResult
from gitscripts.files.grants import FileGrants

log = structlog.get_logger("gitscripts.cluster")

# Hop-by-hop headers (RFC 9110 7.6.1) and the host: each connection has its own.
_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
                  "proxy-authorization", "proxy-connection", "host"})  # fmt: skip


class FilesForwarder:
    """An ASGI app that forwards each request to the service, streaming both ways."""

    def __init__(self, service_url: str) -> None:
        self.service_url = service_url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
            self._session = aiohttp.ClientSession(timeout=timeout, auto_decompress=False)
        url = self.service_url + scope["raw_path"].decode("latin-1")
        if scope["query_string"]:
            url += "?" + scope["query_string"].decode("latin-1")
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]
                   if k.decode("latin-1").lower() not in _HOP]  # fmt: skip
        has_body = any(k.lower() in ("content-length", "transfer-encoding") and v != "0"
                       for k, v in headers)  # fmt: skip

        async def body() -> Any:
            while True:
                message = await receive()
                if message.get("body"):
                    yield message["body"]
                if not message.get("more_body"):
                    return

        async with self._session.request(
            scope["method"], url, headers=headers, data=body() if has_body else None,
            allow_redirects=False,
        ) as response:  # fmt: skip
            await send({
                "type": "http.response.start",
                "status": response.status,
                "headers": [(k, v) for k, v in response.raw_headers
                            if k.decode("latin-1").lower() not in _HOP],
            })  # fmt: skip
            async for chunk in response.content.iter_chunked(1 << 16):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})


# Seconds before the way back to the service is tried again, after it failed or closed.
REPLY_RECONNECT_PAUSE = 5.0


class ReplyChannel:
    """The worker's own channel to the service: one WebSocket to its `/internal/v1/results`,
    with the worker credential. Up: the worker's address (`announce`) and the runs' results
    (`send`); down: runs to start and to cancel, handed to `on_message`."""

    def __init__(
        self, service_url: str, token: str, on_message: Callable[[dict[str, Any]], None]
    ) -> None:
        self.url = "ws" + service_url.removeprefix("http") + "/internal/v1/results"
        self._headers = {"Authorization": f"Bearer {token}"}
        self._on_message = on_message
        self._socket: aiohttp.ClientWebSocketResponse | None = None
        self._keeper: asyncio.Task[None] | None = None
        self._address: str | None = None  # this worker's, as its scheduler knows it

    def start(self) -> None:
        self._keeper = asyncio.create_task(self._keep())

    async def stop(self) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper

    async def announce(self, address: str | None) -> None:
        """Tell the service this worker's address (at each connection to a scheduler): it
        starts runs directly only on a worker it knows by that address."""
        self._address = address
        await self._say_address()

    async def _say_address(self) -> None:
        if self._address is not None:
            await self._send({"worker": self._address})

    async def _keep(self) -> None:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            failing = False
            while True:
                try:
                    # Uncompressed: deflating each message costs time at both ends, and time is
                    # what this socket is for.
                    connecting = session.ws_connect(self.url, headers=self._headers, compress=0)
                    async with connecting as socket:
                        self._socket, failing = socket, False
                        await self._say_address()
                        async for message in socket:
                            if message.type == aiohttp.WSMsgType.TEXT:
                                self._received(message.data)
                except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                    if not failing:  # once, not at every attempt
                        log.warning("reply_channel_unavailable", url=self.url, error=str(exc))
                    failing = True
                finally:
                    self._socket = None
                await asyncio.sleep(REPLY_RECONNECT_PAUSE)

    def _received(self, text: str) -> None:
        try:
            self._on_message(json.loads(text))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:  # not a message of ours
            log.warning("worker_channel_message_refused", error=repr(exc))

    async def send(self, key: str, secret: str, result: RunResult) -> None:
        """Send a run's result, if the socket is open; a failure here loses nothing."""
        await self._send({"key": key, "secret": secret, "result": asdict(result)})

    async def _send(self, message: dict[str, Any]) -> None:
        socket = self._socket
        if socket is None or socket.closed:
            return
        with contextlib.suppress(aiohttp.ClientError, OSError, TypeError, ValueError):
            await socket.send_str(json.dumps(message))


# Runs' keys kept after their runs ended: for their Dask task to collect the result (it may come
# after its run, started directly, ended), then so that a start for them never runs them again;
# beyond that many, the oldest ended ones are forgotten.
ENDED_KEPT = 1024


class WorkerRuntime:
    def __init__(self, settings: Settings, service_url: str, token: str, name: str) -> None:
        self.name = name
        self.trees = RemoteTrees(service_url, token)
        self.replies = ReplyChannel(service_url, token, self._received)
        self.environments = Environments(settings)
        self.executor = ExecutionService(
            settings, None, FileGrants(), self.environments, trees=self.trees
        )
        self._forwarder = FilesForwarder(service_url)
        self._files_socket = FilesSocket(self._forwarder, self.executor.files_socket)
        # Runs by task key: running, or ended and not yet collected by their Dask task; None once
        # collected, or for a run cancelled before it started (it never starts then).
        self._runs: dict[str, asyncio.Task[RunResult] | None] = {}
        self._active = 0  # runs not ended

    async def start(self) -> None:
        # The socket first: the sandbox's start-up probe binds it into a run.
        await self._files_socket.start()
        await self.executor.start()
        self.replies.start()

    async def stop(self) -> None:
        tasks = [task for task in self._runs.values() if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.replies.stop()
        await self.executor.stop()
        await self._files_socket.stop()
        await self._forwarder.close()
        self.environments.close()

    def _received(self, message: dict[str, Any]) -> None:
        """A message from the service, down this worker's own authenticated socket."""
        if "start" in message:
            self._start_directly(from_message(message["start"]))
        elif "cancel" in message:
            self.cancel(str(message["cancel"]))

    def _start_directly(self, job: ClusterJob) -> None:
        """Start a run the service sent straight here; its Dask task, bound to this worker,
        attaches to it when it comes (`run`). Not if it started (or was cancelled) already, nor
        when every slot is taken here (then its task starts it, once it has a thread)."""
        if (
            job["key"] in self._runs
            or self._active >= self.executor.settings.max_concurrent_executions
        ):
            return
        self._start(job)

    def _start(self, job: ClusterJob) -> asyncio.Task[RunResult]:
        key = job["key"]
        task = asyncio.create_task(self._execute(job))
        self._runs[key] = task
        self._active += 1
        task.add_done_callback(self._ended)
        return task

    def _ended(self, task: asyncio.Task[RunResult]) -> None:
        self._active -= 1
        if not task.cancelled():
            task.exception()  # its task reads it; if none comes, it is not an unread error
        if len(self._runs) > ENDED_KEPT:
            for key in [k for k, t in self._runs.items() if t is None or t.done()]:
                del self._runs[key]
                if len(self._runs) <= ENDED_KEPT // 2:
                    break

    async def _execute(self, job: ClusterJob) -> RunResult:
        result = replace(await self.executor.run_job(job), worker=self.name)
        if "reply" in job:
            await self.replies.send(job["key"], job["reply"], result)
        return result

    async def run(self, job: ClusterJob) -> RunResult:
        """The run of the Dask task `job`: started now, or the one started directly under its key
        (running, or ended)."""
        key = job["key"]
        task = self._runs.get(key) if key in self._runs else self._start(job)
        try:
            if task is None or task.cancelled():  # cancelled: the service gave up on it
                return RunResult(False, 0.0, "", "", False, error="cancelled", worker=self.name)
            try:
                return await asyncio.shield(task)
            except asyncio.CancelledError:
                if not task.cancelled():  # the Dask task was cancelled, not the run: stop it too
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
                    raise
                # Cancelled by `cancel`: the service gave up on it, nobody reads this.
                return RunResult(False, 0.0, "", "", False, error="cancelled", worker=self.name)
        finally:
            # Its result is collected; the key stays known (as None) so that a start for it that
            # comes late down the socket does not run it again (forgotten with the oldest ones).
            self._runs[key] = None

    def cancel(self, key: str) -> bool:
        """Stop the run of the task `key`, if it runs here (its process tree is killed); one not
        started yet never starts here."""
        task = self._runs.get(key)
        if task is None:
            if len(self._runs) <= ENDED_KEPT:
                self._runs.setdefault(key, None)
            return False
        if task.done():
            return False
        task.cancel()
        log.info("run_cancelled", key=key)
        return True


# The runtime of this worker process, set by `gitscripts worker` before its Dask worker starts.
runtime: WorkerRuntime | None = None


def _runtime() -> WorkerRuntime:
    if runtime is None:
        raise RuntimeError("this Dask worker has no gitscripts runtime: start it with "
                           "`gitscripts worker`")  # fmt: skip
    return runtime


async def run_job(job: ClusterJob) -> RunResult:
    """The Dask task of one run (a coroutine: it runs in the worker's event loop)."""
    return await _runtime().run(job)


async def prepare_environment(lock: bytes) -> None:
    """Run on every worker by the service when a write brings a new lock: the build starts
    here, so the first run finds the environment ready (`Environments.prepare`)."""
    with contextlib.suppress(RuntimeError):
        _runtime().environments.prepare(lock)


async def environment_info(key: str) -> dict[str, Any] | None:
    """Run on every worker by the service: the state of environment `key` here (None: unknown
    here; never built nor tried)."""
    try:
        return asdict(_runtime().environments.info(key))
    except (RuntimeError, errors.EnvironmentNotFound):
        return None


async def cancel_run(key: str) -> bool:
    """Run on every worker by the service to stop a run (`Client.run`)."""
    with contextlib.suppress(RuntimeError):
        return _runtime().cancel(key)
    return False
