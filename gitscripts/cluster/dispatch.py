"""The service's side of EXECUTOR=dask: every run is one task on the cluster's workers.

- The way in: when a worker with the run's resources has a free slot by this service's own
  count (it is the only client submitting runs: it counts the runs it started on each worker
  against the worker's threads and resources), the job goes straight down that worker's
  WebSocket (`_start_directly`), which starts it at once, and its Dask task is submitted bound to
  that worker (`workers=[address]`, `allow_other_workers=False`): the scheduler sees it processing
  there for the run's whole life, and the task attaches to the run (`worker.WorkerRuntime.run`).
  Otherwise (no such worker, no socket to it, or runs this service did not place still on the
  cluster) the task alone, placed by the scheduler.

- Capacity: the cluster's workers and their slots (each worker's threads) are read from the
  scheduler every `WATCH_INTERVAL`; admission (`executor.service.Admission`) is resized to their
  sum, so the service queues and refuses as it would for its own slots (plus
  DASK_SCHEDULER_QUEUE runs left waiting on the scheduler, where an adaptive cluster sees them).
- No worker: a synchronous run waits DASK_CAPACITY_WAIT for one, then is refused with 503
  NO_EXECUTION_CAPACITY; an asynchronous run waits, queued, as long as it takes.
- A lost worker: the scheduler is told not to run a task again when its worker dies
  (`allowed_failures` 0, set at each connection: a script may have side effects; a worker that
  leaves before the scheduler placed a task bound to it fails that run too, `_lose`); the run fails
  with WORKER_LOST, or runs again as often as the script's sidecar allows (`worker_lost_retries`,
  for a script known to be idempotent), else DASK_WORKER_LOST_RETRIES (0 by default).
- A lost scheduler: the service stays up, says so (`status`, in /health and /metrics), fails the
  runs it had on the cluster with WORKER_LOST (stopping those it started on a worker, over its
  socket), and connects again as soon as a scheduler answers.
- Cancel (a user's, or a client gone): the worker a run was started on is told over its socket
  (its task may not have reached it: the run then never starts there), the task is cancelled and
  every worker is told to stop the run's process tree (`worker.cancel_run`), before the cancel
  returns.
- Environments: a run carries its script's lock; workers build them (`worker.prepare_environment`
  ahead of runs, on a write) and say what they have (`environment_states`, see
  `cluster.environments`).
- The way back: a run's result comes straight from its worker as soon as the run ends, over the
  worker's WebSocket to the service (`deliver`, see `cluster.routes`), without waiting for Dask's
  task-finished -> scheduler -> client notice and the fetch of the result that follows (about
  4 ms of a run's latency). The job carries a secret of its own, which a reply must repeat
  (compared in constant time): only the worker the scheduler gave the run to can answer for it.
  The Dask task still ends as usual, and is held until it has (the scheduler counts it on its
  worker until then); its result is the answer whenever the direct one does not come first.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import math
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from distributed import Client
from distributed.client import Future
from distributed.scheduler import KilledWorker

from gitscripts import errors
from gitscripts.cluster.jobs import ClusterJob, to_message
from gitscripts.cluster.worker import cancel_run, environment_info, prepare_environment, run_job
from gitscripts.config import Settings
from gitscripts.deps.environments import EnvironmentInfo
from gitscripts.executor.engines import REPORT_GRACE_SECONDS
from gitscripts.executor.service import Admission, RunResult

log = structlog.get_logger("gitscripts.cluster")

WATCH_INTERVAL = 0.5  # seconds between two looks at the scheduler
CONNECT_TIMEOUT = 5.0
CANCEL_TIMEOUT = 10.0


# Sends one message down a worker's WebSocket.
Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class WorkerInfo:
    name: str
    slots: int
    resources: dict[str, float]


# Seconds Dask's batched streams wait between two sends (its defaults: 2 to 10 ms). A run is a
# handful of messages in a row on them (submit, compute, finished, report, release): at the
# defaults a run right after another waits out the intervals, which adds milliseconds to each.
BATCH_INTERVAL = 0.0005


def _scheduler_settings() -> Callable[[Any], None]:
    """What the service needs of the scheduler, as a function run there (`run_on_scheduler`).
    Made here, not at module level, so that it travels by value: the scheduler needs no
    gitscripts installed."""

    def apply(dask_scheduler: Any, interval: float = BATCH_INTERVAL) -> None:
        dask_scheduler.allowed_failures = 0  # a task whose worker died is not run again
        for comm in [*dask_scheduler.stream_comms.values(), *dask_scheduler.client_comms.values()]:
            comm.interval = interval

    return apply


class Cluster:
    def __init__(self, settings: Settings, admission: Admission) -> None:
        self.settings = settings
        self.address = settings.dask_scheduler_address
        self.admission = admission
        self.workers: dict[str, WorkerInfo] = {}
        self.running = 0  # runs submitted and not ended
        self.waiting = 0  # runs waiting for a worker (with the resources they ask for)
        self._client: Client | None = None
        self._changed = asyncio.Event()  # set (and replaced) whenever the workers change
        self._watcher: asyncio.Task[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None  # the client's, once started
        # Results are fetched from the workers directly until that fails once.
        self._direct = True
        # Runs on the cluster now, by task key: their secret and where their direct reply goes.
        self._replies: dict[str, tuple[str, asyncio.Future[RunResult]]] = {}
        # Tasks whose run answered directly, held until Dask has them end (see `_attempt`).
        self._ending: dict[str, Future[RunResult]] = {}
        # The workers' WebSockets (`cluster.routes`), by the address they said they have.
        self._channels: dict[str, Send] = {}
        # Runs started directly, by worker address: their key and the resources they hold.
        self._started_on: dict[str, dict[str, dict[str, float]]] = {}
        self._through_dask = 0  # runs submitted without a worker chosen here, not ended
        self._turns = itertools.count(1)
        self._given: dict[str, int] = {}  # the turn each worker was last given a run at

    # -- life --------------------------------------------------------------------------------
    async def start(self) -> None:
        """Watch the cluster from now on; the service starts whether a scheduler answers or not."""
        self.loop = asyncio.get_running_loop()
        self.admission.resize(0)  # no worker known yet
        self._watcher = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        await self._disconnect()

    @property
    def connected(self) -> bool:
        return self._client is not None

    @property
    def capacity(self) -> int:
        return self.capacity_for(None)

    def capacity_for(self, resources: dict[str, float] | None) -> int:
        """Slots of the workers that offer `resources` (all of them, for None)."""
        return sum(
            worker.slots
            for worker in self.workers.values()
            if all(worker.resources.get(name, 0) >= amount
                   for name, amount in (resources or {}).items())
        )  # fmt: skip

    def status(self) -> dict[str, Any]:
        """What /health says of the cluster."""
        return {
            "scheduler": self.address,
            "connected": self.connected,
            "workers": len(self.workers),
            "capacity": self.capacity,
        }

    async def _watch(self) -> None:
        while True:
            try:
                if self._client is None:
                    await self._connect()
                assert self._client is not None
                scheduler = self._client.scheduler
                assert scheduler is not None
                identity = await asyncio.wait_for(scheduler.identity(), CONNECT_TIMEOUT)
                if self._update(identity.get("workers", {})):
                    # The scheduler's streams to new workers start with Dask's intervals.
                    await self._client.run_on_scheduler(_scheduler_settings())  # type: ignore[no-untyped-call]
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # no scheduler (yet, or any more): try again shortly
                if self._client is not None or self.workers:
                    log.warning("cluster_unreachable", scheduler=self.address, error=str(exc))
                await self._disconnect()
                self._update({})
            await asyncio.sleep(WATCH_INTERVAL)

    async def _connect(self) -> None:
        client = Client(  # type: ignore[no-untyped-call]
            self.address, asynchronous=True, timeout=CONNECT_TIMEOUT, set_as_default=False
        )
        try:
            # Awaited here, not where it is made: a client that found no scheduler is closed
            # now, not left to close itself when collected (after its event loop may be gone).
            await client
            await client.run_on_scheduler(_scheduler_settings())  # type: ignore[no-untyped-call]
            assert client.scheduler_comm is not None
            client.scheduler_comm.interval = BATCH_INTERVAL
        except BaseException:
            await client.close()  # type: ignore[no-untyped-call]
            raise
        self._client = client
        log.info("cluster_connected", scheduler=self.address)

    async def _disconnect(self) -> None:
        self._ending.clear()
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close(), CONNECT_TIMEOUT)  # type: ignore[no-untyped-call]

    def _update(self, found: dict[str, Any]) -> bool:
        """Take the workers the scheduler knows; whether they changed."""
        workers = {
            address: WorkerInfo(
                name=str(info.get("name", address)),
                slots=int(info.get("nthreads", 1)),
                resources=dict(info.get("resources") or {}),
            )
            for address, info in found.items()
        }
        if workers == self.workers:
            return False
        for address in set(self._started_on) - set(workers):
            self._lose(address, self.workers[address].name if address in self.workers else None)
        self.workers = workers
        capacity = self.capacity
        # Beyond the slots, DASK_SCHEDULER_QUEUE runs may wait on the scheduler (once there is
        # a worker at all: with none, runs wait here, see `wait_for_capacity`).
        ahead = self.settings.dask_scheduler_queue if capacity else 0
        self.admission.resize(capacity + ahead)
        log.info("cluster_workers", workers=sorted(w.name for w in workers.values()),
                 capacity=self.capacity)  # fmt: skip
        self._changed.set()
        self._changed = asyncio.Event()
        return True

    # -- runs --------------------------------------------------------------------------------
    async def wait_for_capacity(self, patient: bool, resources: dict[str, float] | None) -> None:
        """Return once a worker (with `resources`) is there; refuse after DASK_CAPACITY_WAIT
        unless `patient`. Runs waiting here are queued runs: counted in `waiting` (the queue
        depth); synchronous ones are bounded by the admission gate like any run."""
        if self.capacity_for(resources):
            return
        loop = asyncio.get_running_loop()
        deadline = None if patient else loop.time() + self.settings.dask_capacity_wait
        self.waiting += 1
        try:
            while not self.capacity_for(resources):
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    wait = self.settings.dask_capacity_wait
                    raise errors.NoExecutionCapacity(
                        "No worker of the execution cluster is available; try again later",
                        retry_after=max(1, math.ceil(wait)),
                        connected=self.connected,
                        resources=resources,
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), remaining)
        finally:
            self.waiting -= 1

    async def run(
        self, job: ClusterJob, resources: dict[str, float] | None, retries: int | None = None
    ) -> RunResult:
        """Run `job` on a worker (one that offers `resources`): its result, named by it. A run
        whose worker died runs again `retries` times at most (None: DASK_WORKER_LOST_RETRIES)."""
        attempts = (self.settings.dask_worker_lost_retries if retries is None else retries) + 1
        for attempt in range(1, attempts + 1):
            try:
                return await self._attempt(job, resources)
            except errors.WorkerLost:
                if attempt == attempts:
                    raise
                log.warning("run_again_after_worker_lost", attempt=attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(self, job: ClusterJob, resources: dict[str, float] | None) -> RunResult:
        client = self._client
        if client is None:
            raise errors.WorkerLost("The execution cluster's scheduler is not reachable")
        key = f"gitscripts-run-{uuid.uuid4().hex}"
        job = {**job, "key": key, "reply": secrets.token_urlsafe(24)}
        reply: asyncio.Future[RunResult] = asyncio.get_running_loop().create_future()
        self._replies[key] = (job["reply"], reply)
        address = await self._start_directly(job, resources)
        if address is None:
            self._through_dask += 1
        answered = False
        try:
            # An async task: the worker awaits it in its event loop (typed as if it were not). A
            # run started directly has its task on the same worker, which attaches to it.
            future: Future[RunResult] = client.submit(
                run_job,  # type: ignore[arg-type]
                job,
                key=job["key"],
                pure=False,
                resources=resources or None,
                workers=None if address is None else [address],
                allow_other_workers=False,
            )
        except BaseException:  # a client closed meanwhile, say: nothing runs on the cluster
            await self._placed_ended(key, address, answered)
            raise
        self.running += 1
        try:
            # The worker's engine ends the run at its timeout; this bounds a wait on a cluster
            # that lost the task without telling.
            deadline = job["timeout"] + REPORT_GRACE_SECONDS + self.settings.dask_capacity_wait
            result = await asyncio.wait_for(self._result(client, future, reply), deadline)
            answered = True
            return result
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():  # cancelled here: stop it there too
                await self._cancel(client, future, job["key"], address)
                raise
            # The future was cancelled under us: the connection to the scheduler went away.
            raise errors.WorkerLost(
                "The connection to the execution cluster was lost during this run; it did "
                "not finish"
            ) from None
        except TimeoutError:
            await self._cancel(client, future, job["key"], address)
            raise errors.WorkerLost(
                "The execution cluster did not report this run in time"
            ) from None
        except KilledWorker as exc:
            last = getattr(exc.last_worker, "name", None)
            raise errors.WorkerLost(
                "The worker running this run died before it ended; the run failed",
                worker=None if last is None else str(last),
            ) from None
        except errors.WorkerLost:  # its worker left the cluster (`_lose`): the task waits for it
            await self._cancel(client, future, job["key"], address)
            raise
        except errors.AppError:
            raise
        except Exception as exc:
            log.error("cluster_run_failed", error=repr(exc))
            raise errors.InternalError(f"The execution cluster failed to run this: {exc}") from None
        finally:
            self.running -= 1
            await self._placed_ended(key, address, answered)

    async def _placed_ended(self, key: str, address: str | None, answered: bool) -> None:
        """The attempt `key` is over here (on the worker at `address`, if it was started there)."""
        self._replies.pop(key, None)
        if address is None:
            self._through_dask -= 1
        else:
            self._started_on.get(address, {}).pop(key, None)
            if not answered:  # whatever happened to the task: the run must not go on there
                await self._tell(address, {"cancel": key})

    async def _start_directly(
        self, job: ClusterJob, resources: dict[str, float] | None
    ) -> str | None:
        """Send `job` down the WebSocket of a worker that has a free slot by this service's own
        count (and the resources the run asks for), so that it starts without waiting for the
        scheduler: the worker's address, or None (no such worker: the run goes through Dask
        alone). Only while no run waits on the scheduler: runs this service did not place may
        be on any worker, so its count would not be the workers' own."""
        if self._through_dask:
            return None
        wanted = resources or {}
        free: list[tuple[float, int, str]] = []
        for address, info in self.workers.items():
            runs = self._started_on.get(address, {})
            if address not in self._channels or len(runs) >= info.slots:
                continue
            held = {name: sum(r.get(name, 0) for r in runs.values()) for name in wanted}
            if all(held[n] + amount <= info.resources.get(n, 0) for n, amount in wanted.items()):
                # The least busy first; among equals, the one given a run longest ago.
                free.append((len(runs) / info.slots, self._given.get(address, 0), address))
        if not free:
            return None
        address = min(free)[2]
        self._given[address] = next(self._turns)
        assert "key" in job
        runs = self._started_on.setdefault(address, {})
        runs[job["key"]] = wanted
        if await self._tell(address, {"start": to_message(job)}):
            return address
        del runs[job["key"]]
        return None

    async def _tell(self, address: str, message: dict[str, Any]) -> bool:
        """Send `message` down the WebSocket of the worker at `address`: whether it went."""
        send = self._channels.get(address)
        if send is None:
            return False
        try:
            await send(message)
        except Exception as exc:  # the socket closed meanwhile
            log.warning("worker_channel_failed", worker=address, error=str(exc))
            return False
        return True

    def attach(self, address: str, send: Send) -> None:
        """The worker at `address` (as the scheduler knows it) has a WebSocket open to this
        service (`cluster.routes`): runs may be started through it from now on."""
        self._channels[address] = send

    def detach(self, address: str, send: Send) -> None:
        """That WebSocket closed. Its runs go on (their tasks are on the scheduler)."""
        if self._channels.get(address) is send:
            del self._channels[address]

    def _lose(self, address: str, name: str | None) -> None:
        """The worker at `address` left the cluster: its directly started runs failed (their
        tasks, bound to it, would wait for it; a task it was processing fails as well)."""
        for key in self._started_on.pop(address, {}):
            waiting = self._replies.get(key)
            if waiting is not None and not waiting[1].done():
                waiting[1].set_exception(errors.WorkerLost(
                    "The worker running this run died before it ended; the run failed",
                    worker=name,
                ))  # fmt: skip

    def deliver(self, message: Any) -> bool:
        """Take a worker's direct reply (`{"key", "secret", "result"}`): whether it answered a run
        waiting for it. Anything else (no such run, a wrong secret, a malformed result) is
        dropped: the run's answer then comes through Dask."""
        if not isinstance(message, dict) or not isinstance(message.get("key"), str):
            return False
        waiting = self._replies.get(message["key"])
        secret = message.get("secret")
        if waiting is None or not isinstance(secret, str):
            return False
        expected, reply = waiting
        if not hmac.compare_digest(secret.encode(), expected.encode()) or reply.done():
            return False
        try:
            result = RunResult(**message["result"])
        except (TypeError, KeyError):
            return False
        reply.set_result(result)
        return True

    async def _result(
        self, client: Client, future: Future[RunResult], reply: asyncio.Future[RunResult]
    ) -> RunResult:
        """The run's result: its worker's direct reply, or the task's result, whichever comes
        first (a failure, such as a lost worker, comes as the task's)."""
        fetched = asyncio.ensure_future(self._fetch(client, future))
        try:
            await asyncio.wait({reply, fetched}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not fetched.done():  # it still waits for the task to end (or was cancelled)
                fetched.cancel()
                with contextlib.suppress(BaseException):
                    await fetched
        if not reply.done():
            return fetched.result()
        if reply.exception() is not None:
            return reply.result()  # raises it
        # The task ends a moment later: until then the scheduler must see it processing on its
        # worker (an adaptive cluster retires idle workers only), so it is not released yet.
        key = str(future.key)
        self._ending[key] = future
        future.add_done_callback(lambda _: self._ending.pop(key, None))  # type: ignore[no-untyped-call]
        return reply.result()

    async def _fetch(self, client: Client, future: Future[RunResult]) -> RunResult:
        """The task's result, straight from its worker when this service reaches the workers
        (two hops fewer than through the scheduler), else through the scheduler."""
        if self._direct:
            try:
                result: RunResult = await client.gather(future, direct=True)  # type: ignore[no-untyped-call]
                return result
            except OSError as exc:  # includes Dask's CommClosedError
                log.warning("cluster_workers_unreachable", error=str(exc))
                self._direct = False
        result = await client.gather(future, direct=False)  # type: ignore[no-untyped-call]
        return result

    # -- environments (built on the workers) -----------------------------------------------------
    async def prepare_environment(self, lock: bytes) -> None:
        """Have every worker start building `lock`'s environment (a worker that joins later
        builds it at its first run of it)."""
        client = self._client
        if client is None:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                client.run(prepare_environment, lock, on_error="ignore"), CANCEL_TIMEOUT
            )

    async def environment_states(self, key: str) -> dict[str, EnvironmentInfo]:
        """What each worker (by name) knows of environment `key` (the workers that know it)."""
        client = self._client
        if client is None:
            return {}
        try:
            found = await asyncio.wait_for(
                client.run(environment_info, key, on_error="return"), CANCEL_TIMEOUT
            )
        except Exception as exc:
            log.warning("cluster_environment_info_failed", error=str(exc))
            return {}
        return {
            (self.workers[address].name if address in self.workers else address):
                EnvironmentInfo(**info)
            for address, info in found.items()
            if isinstance(info, dict)
        }  # fmt: skip

    async def _cancel(
        self, client: Client, future: Future[RunResult], key: str, address: str | None
    ) -> None:
        """Cancel the task, and have whichever worker runs it kill the run's process tree (the
        one it was started on first: the task may not have reached it)."""
        if address is not None:
            await self._tell(address, {"cancel": key})
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.run(cancel_run, key), CANCEL_TIMEOUT)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.cancel([future]), CANCEL_TIMEOUT)  # type: ignore[no-untyped-call]
