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
UNSENT_KEPT = 256  # results kept for the service while the socket is closed


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
        # Results that found the socket closed, sent when it is open again: a run in a slot has
        # no other way back (a blip of the connection must not lose it).
        self._unsent: list[str] = []

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
                        unsent, self._unsent = self._unsent, []
                        for text in unsent:
                            await socket.send_str(text)
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

    async def send(self, key: str, secret: str, outcome: RunResult | errors.AppError) -> None:
        """Send a run's result (or the error it ended with): now, or as soon as the socket is
        open again (the last UNSENT_KEPT of them; one the service stopped waiting for is
        dropped there)."""
        reply: dict[str, Any] = {"key": key, "secret": secret}
        if isinstance(outcome, errors.AppError):
            reply["error"] = errors.to_message(outcome)
        else:
            reply["result"] = asdict(outcome)
        text = json.dumps(reply)
        if not await self._send_text(text):
            self._unsent = [*self._unsent[-(UNSENT_KEPT - 1) :], text]

    async def _send(self, message: dict[str, Any]) -> None:
        await self._send_text(json.dumps(message))

    async def _send_text(self, text: str) -> bool:
        socket = self._socket
        if socket is None or socket.closed:
            return False
        try:
            await socket.send_str(text)
        except (aiohttp.ClientError, OSError):
            return False
        return True


# Keys of runs cancelled before they started here, kept so that they never start; beyond that
# many, the oldest are forgotten.
CANCELLED_KEPT = 1024


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
        # Runs by key while they run; None for a run cancelled before it started (it never
        # starts here then).
        self._runs: dict[str, asyncio.Task[RunResult] | None] = {}
        # The slots the service holds here, by their task's key: set once let go of (also when
        # that comes before the task: it then ends at once); and the run in each, while it runs.
        self._slots: dict[str, asyncio.Event] = {}
        self._slot_runs: dict[str, asyncio.Task[RunResult]] = {}

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
            self._start_in_slot(from_message(message["start"]))
        elif "cancel" in message:
            self.cancel(str(message["cancel"]))
        elif "release" in message:
            self._slots.setdefault(str(message["release"]), asyncio.Event()).set()

    def _start_in_slot(self, job: ClusterJob) -> None:
        """Start a run the service sent here, in a slot it holds here (whose task may not have
        come yet: `hold`). Its result goes back over the socket only; nothing collects it here."""
        key, slot = job["key"], job["slot"]
        if key in self._runs:  # cancelled before it came
            return
        task = self._start(job)
        self._slot_runs[slot] = task

        def ended(_: asyncio.Task[RunResult]) -> None:
            if self._slot_runs.get(slot) is task:
                del self._slot_runs[slot]

        task.add_done_callback(ended)

    async def hold(self, key: str) -> None:
        """The task of the slot `key`: it holds its thread (and resources) on this worker until
        the service lets go of the slot, then until the run in it, if any, has ended. Cancelled
        by Dask (the service let go of it that way, or is gone), it stops that run."""
        released = self._slots.setdefault(key, asyncio.Event())
        try:
            await released.wait()
            run = self._slot_runs.get(key)
            if run is not None:
                await asyncio.wait([run])
        except asyncio.CancelledError:
            run = self._slot_runs.get(key)
            if run is not None:
                run.cancel()
            raise
        finally:
            self._slots.pop(key, None)

    def _start(self, job: ClusterJob) -> asyncio.Task[RunResult]:
        key = job["key"]
        task = asyncio.create_task(self._execute(job))
        self._runs[key] = task

        def ended(_: asyncio.Task[RunResult]) -> None:
            if self._runs.get(key) is task:
                del self._runs[key]
            if not task.cancelled():
                task.exception()  # read where it matters; not an unread error otherwise

        task.add_done_callback(ended)
        return task

    async def _execute(self, job: ClusterJob) -> RunResult:
        """Run `job`; its outcome goes back over the socket (a run in a slot has no other way
        back) and is this task's result."""
        outcome: RunResult | errors.AppError
        try:
            outcome = replace(await self.executor.run_job(job), worker=self.name)
        except errors.AppError as exc:
            outcome = exc
        except Exception as exc:  # a fault of this worker's, said as the service says its own
            log.exception("cluster_run_failed", key=job.get("key"))
            outcome = errors.InternalError(f"The execution cluster failed to run this: {exc}")
        if "reply" in job:
            await self.replies.send(job["key"], job["reply"], outcome)
        if isinstance(outcome, errors.AppError):
            raise outcome
        return outcome

    async def run(self, job: ClusterJob) -> RunResult:
        """The run of the Dask task `job` (placed by the scheduler, not in a slot)."""
        if job["key"] in self._runs:  # cancelled before it came: the service gave up on it
            return RunResult(False, 0.0, "", "", False, error="cancelled", worker=self.name)
        task = self._start(job)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.cancelled():  # the Dask task was cancelled, not the run: stop it too
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                raise
            # Cancelled by `cancel`: the service gave up on it, nobody reads this.
            return RunResult(False, 0.0, "", "", False, error="cancelled", worker=self.name)

    def cancel(self, key: str) -> bool:
        """Stop the run `key`, if it runs here (its process tree is killed); one not started yet
        never starts here."""
        task = self._runs.get(key)
        if task is None:
            if key not in self._runs:
                if len(self._runs) >= CANCELLED_KEPT:  # forget the oldest cancelled keys
                    for old in [k for k, t in self._runs.items() if t is None][
                        : CANCELLED_KEPT // 2
                    ]:
                        del self._runs[old]
                self._runs[key] = None
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


async def hold_slot(key: str) -> None:
    """The Dask task of a slot the service holds on this worker (`WorkerRuntime.hold`)."""
    await _runtime().hold(key)


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
