"""The service's side of EXECUTOR=dask: runs go to the cluster's workers, in slots the scheduler
sees taken.

- The way in: the service holds worker slots (`Slot`). A slot is a Dask task of its own
  (`worker.hold_slot`), bound to its worker (`workers=[address]`, `allow_other_workers=False`),
  that the scheduler sees processing there, holding one of its threads (and the resources the
  run asked for), for as long as the service keeps it. A run starts in an idle slot at once,
  down the worker's WebSocket, with no Dask message at all; else, when a worker has a free slot
  by this service's own count (it is the only client submitting runs: it counts the slots it
  holds on each worker against the worker's threads and resources), the service takes one there:
  the run goes down the socket and starts at once, and the slot's task follows. A slot is let go
  of DASK_SLOT_IDLE seconds after its last run (at once with 0: then every run is a Dask task
  of its own), when a run had to go through Dask alone (the slots' threads go to those), and
  when a run in it failed. Otherwise (no such slot, no socket to its worker, or runs this service
  did not place still on the cluster) the run is a task alone, placed by the scheduler.
  An adaptive cluster sees held slots as busy workers, and runs beyond them waiting.

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
  runs it had on the cluster with WORKER_LOST (stopping those in its slots over their workers'
  sockets), and connects again as soon as a scheduler answers.
- Cancel (a user's, a client gone, a timeout): a run in a slot is stopped by its worker, told over
  its socket (through Dask when the socket is gone), and its slot is let go of; a run placed by
  the scheduler has its task cancelled and every worker told to stop the run's process tree
  (`worker.cancel_run`); before the cancel returns.
- Environments: a run carries its script's lock; workers build them (`worker.prepare_environment`
  ahead of runs, on a write) and say what they have (`environment_states`, see
  `cluster.environments`).
- The way back: a run's result comes straight from its worker as soon as the run ends, over the
  worker's WebSocket to the service (`deliver`, see `cluster.routes`), without waiting for Dask's
  task-finished -> scheduler -> client notice and the fetch of the result that follows (about
  4 ms of a run's latency). The job carries a secret of its own, which a reply must repeat
  (compared in constant time): only the worker the run was given to can answer for it. A run
  placed by the scheduler still has its Dask task end as usual, held until it has (the scheduler
  counts it on its worker until then), and its result is the answer whenever the direct one does
  not come first.
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
from gitscripts.cluster.worker import (
    cancel_run,
    environment_info,
    hold_slot,
    prepare_environment,
    run_job,
)
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


_uses = itertools.count(1)


@dataclass(eq=False)
class Slot:
    """One of a worker's slots (a thread, and the resources `resources`), held by this service
    for its runs: a Dask task of its own (`worker.hold_slot`), bound to the worker, that the
    scheduler sees processing there until the service lets go of the slot. Runs start in it
    over the worker's socket, one at a time, with no Dask task of their own."""

    key: str  # its task's
    address: str
    resources: dict[str, float]
    run: str | None = None  # the key of the run in it now
    used: int = 0  # when a run last took it (a count)
    released: bool = False
    future: Future[None] | None = None
    watcher: asyncio.Task[None] | None = None
    idle: asyncio.TimerHandle | None = None  # lets go of it, unless a run takes it first

    def take(self, run: str) -> None:
        self.run, self.used = run, next(_uses)
        if self.idle is not None:
            self.idle.cancel()
            self.idle = None


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
        # The worker slots this service holds, by worker address (see `Slot`).
        self._slots: dict[str, list[Slot]] = {}
        self._tasks: set[asyncio.Task[None]] = set()  # slots being let go of
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
        # The slots' tasks go with the connection; the runs in them are stopped on their
        # workers as they fail (`_in_slot`).
        for address in list(self._slots):
            self._lose(address, None, "The connection to the execution cluster was lost during "
                                      "this run; it did not finish")  # fmt: skip
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
        for address in set(self._slots) - set(workers):
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
        self.running += 1
        try:
            slot = await self._start_in_slot(client, job, resources)
            if slot is None:
                return await self._run_through_dask(client, job, resources, reply)
            return await self._in_slot(client, slot, job, reply)
        finally:
            self.running -= 1
            self._replies.pop(key, None)

    def _deadline(self, job: ClusterJob) -> float:
        """How long a run may take to answer: the worker's engine ends it at its timeout; this
        bounds a wait on a cluster that lost it without telling."""
        return job["timeout"] + REPORT_GRACE_SECONDS + self.settings.dask_capacity_wait

    # -- runs in the slots this service holds (the way in) --------------------------------------
    async def _start_in_slot(
        self, client: Client, job: ClusterJob, resources: dict[str, float] | None
    ) -> Slot | None:
        """Start `job` in a worker slot this service holds, idle, or takes now on a worker with
        a free slot by its own count: the slot, or None (no such slot: the run goes through
        Dask alone)."""
        wanted = resources or {}
        while (slot := self._idle_slot(wanted)) is not None:
            slot.take(job["key"])
            if await self._tell(slot.address, {"start": to_message({**job, "slot": slot.key})}):
                return slot
            slot.run = None
            self._release(slot)  # its worker is out of reach: let go of it, try another
        address = self._free_worker(wanted)
        if address is None:
            return None
        slot = Slot(f"gitscripts-slot-{uuid.uuid4().hex}", address, wanted)
        slot.take(job["key"])
        self._slots.setdefault(address, []).append(slot)
        if not await self._tell(address, {"start": to_message({**job, "slot": slot.key})}):
            self._forget(slot)
            return None
        try:
            # An async task: the worker awaits it in its event loop (typed as if it were not).
            slot.future = client.submit(
                hold_slot,  # type: ignore[arg-type]
                slot.key,
                key=slot.key,
                pure=False,
                resources=wanted or None,
                workers=[address],
                allow_other_workers=False,
            )
        except BaseException:  # a client closed meanwhile, say: the run must not go on
            self._forget(slot)
            await self._tell(address, {"cancel": job["key"]})
            raise
        slot.watcher = asyncio.create_task(self._watch_slot(slot, slot.future))
        log.info("slot_taken", slot=slot.key, worker=self._name(address), resources=wanted)
        return slot

    def _idle_slot(self, wanted: dict[str, float]) -> Slot | None:
        """A slot this service holds with no run in it, for runs asking `wanted` exactly, on a
        worker it can reach: on the least busy worker, the last used first (so that the others
        go idle long enough to be let go of)."""
        if self._through_dask:  # runs wait on the scheduler: the slots go to them (`_ended`)
            return None
        found = [
            (self._busy(address), -slot.used, index, slot)
            for index, (address, slots) in enumerate(self._slots.items())
            if address in self._channels
            for slot in slots
            if slot.run is None and not slot.released and slot.resources == wanted
        ]
        return min(found)[3] if found else None

    def _name(self, address: str) -> str:
        info = self.workers.get(address)
        return address if info is None else info.name

    def _busy(self, address: str) -> float:
        runs = sum(1 for slot in self._slots.get(address, ()) if slot.run is not None)
        info = self.workers.get(address)
        return runs / info.slots if info else math.inf

    def _free_worker(self, wanted: dict[str, float]) -> str | None:
        """A worker with a slot this service does not hold (and the resources `wanted` free of
        its slots' own), by its own count; the least busy, among equals the one given a slot
        longest ago. None while runs it did not place are on the cluster (any worker may run
        those, so its count would not be the workers' own)."""
        if self._through_dask:
            return None
        free: list[tuple[float, int, str]] = []
        for address, info in self.workers.items():
            held = self._slots.get(address, [])
            if address not in self._channels or len(held) >= info.slots:
                continue
            taken = {name: sum(s.resources.get(name, 0) for s in held) for name in wanted}
            if all(taken[n] + amount <= info.resources.get(n, 0) for n, amount in wanted.items()):
                free.append((len(held) / info.slots, self._given.get(address, 0), address))
        if not free:
            return None
        address = min(free)[2]
        self._given[address] = next(self._turns)
        return address

    async def _in_slot(
        self, client: Client, slot: Slot, job: ClusterJob, reply: asyncio.Future[RunResult]
    ) -> RunResult:
        """The run started in `slot`: its worker's reply (a lost worker, slot or scheduler
        fails it: `_slot_lost`, `_lose`, `_disconnect`)."""
        key = job["key"]
        answered = False
        try:
            result = await asyncio.wait_for(reply, self._deadline(job))
            answered = True
            return result
        except TimeoutError:
            raise errors.WorkerLost(
                "The execution cluster did not report this run in time"
            ) from None
        finally:
            if slot.run == key:
                slot.run = None
            if not answered:  # cancelled, timed out or lost: it must not go on there
                if not await self._tell(slot.address, {"cancel": key}):
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(client.run(cancel_run, key), CANCEL_TIMEOUT)
                self._release(slot)  # held until the worker has ended the run
            else:
                self._ended(slot)

    def _ended(self, slot: Slot) -> None:
        """`slot`'s run answered: the slot waits for the next run DASK_SLOT_IDLE seconds, or is
        let go of at once while runs wait on the scheduler (they need its thread)."""
        idle = self.settings.dask_slot_idle
        if slot.released:
            return
        if self._through_dask or not idle:
            self._release(slot)
            return
        assert self.loop is not None
        slot.idle = self.loop.call_later(idle, self._release_if_idle, slot)

    def _release_if_idle(self, slot: Slot) -> None:
        if slot.run is None:
            self._release(slot)

    def _release(self, slot: Slot, through_dask: bool = False) -> None:
        """Let go of `slot`: its worker ends its task (once the run in it, if any, has ended
        there), and the scheduler sees the slot free. Told over the worker's socket, or
        (`through_dask`, or without a socket) by cancelling the task."""
        if slot.released:
            return
        slot.released = True
        if slot.idle is not None:
            slot.idle.cancel()
        self._forget(slot)
        log.info("slot_released", slot=slot.key, worker=self._name(slot.address))
        future, client = slot.future, self._client
        if future is None:
            return

        async def let_go() -> None:
            told = not through_dask and await self._tell(slot.address, {"release": slot.key})
            if not told and client is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.cancel([future]), CANCEL_TIMEOUT)  # type: ignore[no-untyped-call]

        self._tasks.add(task := asyncio.create_task(let_go()))
        task.add_done_callback(self._tasks.discard)

    def _forget(self, slot: Slot) -> None:
        held = self._slots.get(slot.address, [])
        if slot in held:
            held.remove(slot)
        if not held:
            self._slots.pop(slot.address, None)

    async def _watch_slot(self, slot: Slot, future: Future[None]) -> None:
        """Wait for `slot`'s task to end: after it was let go of, or else because its worker
        died (or the scheduler lost it): the run in it, if any, failed."""
        try:
            await future
            error = None
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            error = "The connection to the execution cluster was lost during this run; it did not finish"
        except Exception:  # KilledWorker, its thread's end: the worker is gone
            error = "The worker running this run died before it ended; the run failed"
        if slot.released:
            return
        slot.released = True
        self._forget(slot)
        log.warning("slot_lost", slot=slot.key, worker=self._name(slot.address), error=error)
        if slot.run is not None:
            self._fail(slot.run, errors.WorkerLost(
                error or "The worker ended this run's slot before the run ended",
                worker=self._name(slot.address),
            ))  # fmt: skip

    def _fail(self, key: str, error: errors.AppError) -> None:
        waiting = self._replies.get(key)
        if waiting is not None and not waiting[1].done():
            waiting[1].set_exception(error)

    # -- runs placed by the scheduler ----------------------------------------------------------
    async def _run_through_dask(
        self,
        client: Client,
        job: ClusterJob,
        resources: dict[str, float] | None,
        reply: asyncio.Future[RunResult],
    ) -> RunResult:
        """Run `job` as a Dask task the scheduler places (no slot of this service's for it)."""
        for slot in [s for held in self._slots.values() for s in held if s.run is None]:
            self._release(slot)  # idle slots would keep threads from the task
        self._through_dask += 1
        try:
            # An async task: the worker awaits it in its event loop (typed as if it were not).
            future: Future[RunResult] = client.submit(
                run_job,  # type: ignore[arg-type]
                job,
                key=job["key"],
                pure=False,
                resources=resources or None,
            )
        except BaseException:
            self._through_dask -= 1
            raise
        try:
            return await asyncio.wait_for(self._result(client, future, reply), self._deadline(job))
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():  # cancelled here: stop it there too
                await self._cancel(client, future, job["key"])
                raise
            # The future was cancelled under us: the connection to the scheduler went away.
            raise errors.WorkerLost(
                "The connection to the execution cluster was lost during this run; it did "
                "not finish"
            ) from None
        except TimeoutError:
            await self._cancel(client, future, job["key"])
            raise errors.WorkerLost(
                "The execution cluster did not report this run in time"
            ) from None
        except KilledWorker as exc:
            last = getattr(exc.last_worker, "name", None)
            raise errors.WorkerLost(
                "The worker running this run died before it ended; the run failed",
                worker=None if last is None else str(last),
            ) from None
        except errors.AppError:
            raise
        except Exception as exc:
            log.error("cluster_run_failed", error=repr(exc))
            raise errors.InternalError(f"The execution cluster failed to run this: {exc}") from None
        finally:
            self._through_dask -= 1

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
        """That WebSocket closed. Its runs go on: the worker sends their results when it is
        back (or its death, seen by the scheduler, fails them)."""
        if self._channels.get(address) is send:
            del self._channels[address]

    def _lose(
        self,
        address: str,
        name: str | None,
        why: str = "The worker running this run died before it ended; the run failed",
    ) -> None:
        """The worker at `address` left the cluster (or the connection to the cluster went):
        the runs in its slots failed (their tasks may not have reached it: they would wait)."""
        for slot in list(self._slots.get(address, [])):
            if slot.watcher is not None:
                slot.watcher.cancel()
            if slot.run is not None:
                self._fail(slot.run, errors.WorkerLost(why, worker=name))
            self._release(slot, through_dask=True)

    def deliver(self, message: Any) -> bool:
        """Take a worker's direct reply (`{"key", "secret", "result"}`, or `"error"`, the error
        the run ended with, see `errors.to_message`): whether it answered a run waiting for it.
        Anything else (no such run, a wrong secret, a malformed result) is dropped: the run's
        answer then comes through Dask, or (a run in a slot) not at all: its deadline ends it."""
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
            if isinstance(message.get("error"), dict):
                reply.set_exception(errors.from_message(message["error"]))
                return True
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

    async def _cancel(self, client: Client, future: Future[RunResult], key: str) -> None:
        """Cancel the task, and have whichever worker runs it kill the run's process tree."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.run(cancel_run, key), CANCEL_TIMEOUT)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.cancel([future]), CANCEL_TIMEOUT)  # type: ignore[no-untyped-call]
