"""The run log's service: every execution becomes a recorded run.

- `execute` runs a script for the synchronous API (`POST /api/v1/scripts/{path}`) and records it:
  `running` once admission gives it a slot (a run refused with 429 never ran and is not
  recorded), then how it ended. The records are written off the request path (`store.RunStore`).
- `submit` starts an asynchronous run (`POST /api/v1/runs`): recorded `queued` at once, run by a
  task of this process through the same admission, slots and sandbox, up to
  MAX_ASYNC_EXECUTION_TIME; an idempotency key makes a retried submit return the first run.
  `cancel` cancels that task (the executor then kills the run's process tree).
- `get` (which can wait for the run to end) and `list` read the log, with the visibility rules
  of `access` (`may_see_run`).
- `recover` (at start) marks what a previous process left `running` as failed, with the reason:
  nothing stays `running` forever. Asynchronous runs it left `queued` run once `start` is called.
- `prune` applies the retention settings (RUNS_RETENTION_DAYS, RUNS_RETENTION_COUNT): at start
  (after `recover`), then every `PRUNE_INTERVAL` seconds once `start` was called.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypedDict

import structlog
from starlette.concurrency import run_in_threadpool

from gitscripts import access, errors
from gitscripts.config import Settings
from gitscripts.executor.service import ExecutionService, RunResult, Target, answer
from gitscripts.index import Index
from gitscripts.metrics import Metrics
from gitscripts.runs.records import Mode, Run, Status, capped, is_run_id, new_run_id
from gitscripts.runs.store import Filter, RunStore

log = structlog.get_logger("gitscripts.runs")

PRUNE_INTERVAL = 600.0
# The modes whose runs are queued in the log, and run after a restart if they had not started.
RESUMED = frozenset({"async", "replay"})
LOST = "the service stopped while this run was {}; it did not finish"


class Limits(TypedDict):
    """What a client may ask of a run (`RunService.limits`)."""

    max_script_execution_time: float  # seconds: a synchronous run's default and longest
    max_async_execution_time: float  # an asynchronous run's (or a replay's)
    batch_max_inputs: int
    data_stored: bool  # the log keeps inputs and results (RUNS_STORE_DATA)


class RunService:
    def __init__(
        self,
        settings: Settings,
        index: Index,
        executor: ExecutionService,
        store: RunStore,
        metrics: Metrics,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.index = index
        self.executor = executor
        self.store = store
        self._pruner: asyncio.Task[None] | None = None
        self._resumed: list[Run] = []  # queued when the previous process stopped
        # The asynchronous runs of this process that have not ended, by id; and who cancelled.
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._cancelled_by: dict[str, str] = {}

    # -- life --------------------------------------------------------------------------------
    def recover(self) -> None:
        """Mark the runs a previous process left running as failed (before serving); keep the
        asynchronous ones it left queued for `start`."""
        now = time.time()
        lost: list[Run] = []
        for run in self.store.unfinished():
            if run.status == "queued" and run.mode in RESUMED:
                self._resumed.append(run)
            else:
                lost.append(
                    replace(run, status="failed", error=LOST.format(run.status), finished_at=now)
                )
        if lost:
            self.store.write(lost)
            log.warning("runs_lost", runs=[run.id for run in lost])

    async def start(self) -> None:
        """Start writing the log, pruning it, and running what a previous process left queued
        (the executor is started)."""
        self.store.open()
        self._pruner = asyncio.create_task(self._prune_forever())
        for run in self._resumed:
            try:
                target = self.executor.target(run.script_path, run.commit, run.timeout, run.timeout)
            except errors.AppError as exc:  # its commit is gone (a rewritten history)
                self.store.save(
                    replace(run, status="failed", error=exc.message, finished_at=time.time())
                )
                continue
            self._launch(self._owner(run), target, run, run.input)
            log.info("run_resumed", run=run.id)
        self._resumed.clear()

    async def stop(self) -> None:
        # Runs still going are cut short: those running are marked failed at the next start,
        # those queued run then.
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        if self._pruner is not None:
            self._pruner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pruner
        await run_in_threadpool(self.store.close)

    async def _prune_forever(self) -> None:
        while True:
            await asyncio.sleep(PRUNE_INTERVAL)
            try:
                await run_in_threadpool(self.prune)
            except Exception:  # a failed pruning must not end the pruning
                log.exception("runs_prune_failed")

    def prune(self) -> int:
        """Apply the retention settings now; how many runs went."""
        settings = self.settings
        self.store.flush()
        gone = self.store.prune(
            time.time() - settings.runs_retention_days * 86_400, settings.runs_retention_count
        )
        if gone:
            log.info("runs_pruned", count=gone)
        return gone

    # -- running -----------------------------------------------------------------------------
    async def execute(
        self,
        user: access.User | None,
        logical_path: str,
        data: Any,
        revision: str | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Run the script as the seed API does, recorded: its answer, with the run's id."""
        target = self.executor.target(logical_path, revision, timeout)
        return await self._recorded(user, target, data, "sync")

    async def batch(
        self,
        user: access.User | None,
        logical_path: str,
        inputs: list[Any],
        revision: str | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Run one script at one revision once per input, each in its own process, as many at
        once as the service runs; the answers in the inputs' order, each with its own success
        or error (a run refused a place, say, is that item's error)."""
        most = self.settings.runs_batch_max_inputs
        if len(inputs) > most:
            raise errors.BatchTooLarge(
                f"A batch has at most {most} inputs; this one has {len(inputs)}",
                limit=most,
                size=len(inputs),
            )
        target = self.executor.target(logical_path, revision, timeout)
        batch_id = new_run_id()
        answers: list[dict[str, Any]] = [{} for _ in inputs]
        indexes = iter(range(len(inputs)))

        async def worker() -> None:
            for index in indexes:
                try:
                    answers[index] = await self._recorded(
                        user, target, inputs[index], "batch", batch_id
                    )
                except errors.AppError as exc:
                    answers[index] = {
                        "success": False,
                        "result": None,
                        "error": exc.message,
                        "error_code": exc.error_code,
                        "run_id": None,
                    }

        workers = min(len(inputs), self.settings.max_concurrent_executions)
        await asyncio.gather(*(worker() for _ in range(workers)))
        return {"revision": str(target.commit.id), "batch_id": batch_id, "results": answers}

    async def _recorded(
        self,
        user: access.User | None,
        target: Target,
        data: Any,
        mode: Mode,
        batch_id: str | None = None,
    ) -> dict[str, Any]:
        """Run now (admission permitting), recorded from when it has its place."""
        run = replace(self._new(user, target, data, mode), batch_id=batch_id)

        def started() -> None:
            nonlocal run
            run = replace(run, status="running", started_at=time.time())
            self.store.save(run)

        try:
            result = await self.executor.run(user, target, data, started)
        except BaseException as exc:
            if run.started_at is not None:  # a run refused a place never started: no record
                self._failed(run, exc, "the client went away before the run ended")
            raise
        self._ended(run, result)
        return {**answer(target, result), "run_id": run.id}

    async def submit(
        self,
        user: access.User,
        logical_path: str,
        data: Any,
        revision: str | None = None,
        timeout: float | None = None,
        idempotency_key: str | None = None,
    ) -> Run:
        """Start an asynchronous run: the run, or the earlier one its idempotency key names."""
        request_hash = None
        if idempotency_key is not None:
            request = [logical_path, revision, data, timeout]
            request_hash = hashlib.sha256(_canonical(request)).hexdigest()
        limit = self.settings.max_async_execution_time
        target = self.executor.target(logical_path, revision, timeout, limit)
        run = replace(
            self._new(user, target, data, "async"),
            idempotency_key=idempotency_key,
            request_hash=request_hash,
        )
        claimed = await self._enqueue(user, target, run, data)
        if claimed.request_hash != request_hash:
            raise errors.IdempotencyKeyReused(
                "This Idempotency-Key was sent before with a different request",
                run_id=claimed.id,
            )
        return claimed

    async def replay(self, user: access.User, run_id: str) -> Run:
        """Run a run's input again at the commit it ran, as a new asynchronous run linked to it."""
        first = await self._visible(user, run_id, access.may_see_run)
        if not first.input_stored:
            raise errors.RunNotReplayable(
                f"Run {run_id} cannot be replayed: its input was not kept (RUNS_STORE_DATA)",
                run_id=run_id,
            )
        limit = self.settings.max_async_execution_time
        target = self.executor.target(first.script_path, first.commit, first.timeout, limit)
        run = replace(self._new(user, target, first.input, "replay"), replay_of=first.id)
        return await self._enqueue(user, target, run, first.input)

    async def _enqueue(self, user: access.User, target: Target, run: Run, data: Any) -> Run:
        """Record `run` queued and start it; or the run its idempotency key names already."""
        if self.executor.admission.full():
            raise self.executor.admission.refusal()
        # The input is kept until the run starts whatever RUNS_STORE_DATA says: a restart runs
        # it with it.
        claimed = await run_in_threadpool(self.store.claim, replace(run, input=data))
        if claimed.id == run.id:
            self._launch(user, target, run, data)
        return claimed

    def _launch(self, user: access.User | None, target: Target, run: Run, data: Any) -> None:
        task = asyncio.create_task(self._run_async(user, target, run, data))
        self._tasks[run.id] = task
        task.add_done_callback(lambda _: self._tasks.pop(run.id, None))

    async def _run_async(
        self, user: access.User | None, target: Target, run: Run, data: Any
    ) -> None:
        def started() -> None:
            nonlocal run
            keep = self.settings.runs_store_data
            run = replace(run, status="running", started_at=time.time(),
                          input=data if keep else None)  # fmt: skip
            self.store.save(run)

        try:
            # No worker in the cluster yet: an asynchronous run waits for one, queued.
            result = await self.executor.run(user, target, data, started, patient=True)
        except asyncio.CancelledError as exc:
            # By a user, or by the service stopping: then it is left for the next start.
            by_user = run.id in self._cancelled_by
            self._failed(run, exc, "")
            if by_user:
                return
            raise
        except Exception as exc:
            self._failed(run, exc, "")
            return
        self._ended(run, result)

    def _owner(self, run: Run) -> access.User | None:
        """Who a run recorded earlier runs as (None: nobody, or an account since deleted)."""
        if run.user_id is None:
            return None
        return self.index.users.get(run.user_id)

    def _new(self, user: access.User | None, target: Target, data: Any, mode: Mode) -> Run:
        now = time.time()
        keep = self.settings.runs_store_data
        return Run(
            id=new_run_id(now),
            script_path=target.path,
            script_id=self.index.scripts.id_at(target.path),
            revision=target.revision,
            commit=str(target.commit.id),
            user_id=user.id if user else None,
            user_login=user.login if user else None,
            mode=mode,
            status="queued",
            queued_at=now,
            timeout=target.timeout,
            input=data if keep else None,
            input_stored=keep,
        )

    def _failed(self, run: Run, exc: BaseException, gone_away: str) -> None:
        """Record how a run that never reported ended: cancelled (by a user, or `gone_away`),
        refused, or failed."""
        status: Status = "failed"
        if isinstance(exc, asyncio.CancelledError):
            who = self._cancelled_by.pop(run.id, None)
            if who is None and run.mode in RESUMED:
                return  # the service is stopping: the next start resumes or fails it
            status, error = "cancelled", f"cancelled by {who}" if who else gone_away
        elif isinstance(exc, errors.AppError):
            error = exc.message
        else:
            error = "the service failed to run it"
        worker = exc.details.get("worker") if isinstance(exc, errors.WorkerLost) else None
        self._finish(
            replace(run, status=status, error=error, finished_at=time.time(), worker=worker)
        )

    def _ended(self, run: Run, result: RunResult) -> None:
        limit = self.settings.runs_output_limit_chars
        stdout, stdout_cut = capped(result.stdout, limit)
        stderr, stderr_cut = capped(result.stderr, limit)
        status: Status = (
            "succeeded" if result.ok else ("timed_out" if result.timed_out else "failed")
        )
        self._finish(
            replace(
                run,
                status=status,
                error=None if result.ok else result.error,
                finished_at=time.time(),
                result=result.result if result.ok and run.input_stored else None,
                input=run.input if run.input_stored else None,
                stdout=stdout,
                stderr=stderr,
                stdout_cut=stdout_cut,
                stderr_cut=stderr_cut,
                worker=result.worker,
                environment=result.environment,
            )
        )

    def _finish(self, run: Run) -> None:
        """Record an ended run, and count it."""
        self.store.save(run)
        queue_wait = run_time = None
        if run.started_at is not None:
            queue_wait = run.started_at - run.queued_at
            run_time = (run.finished_at or run.started_at) - run.started_at
        self.metrics.run_ended(run.mode, run.status, queue_wait, run_time)

    # -- reading -----------------------------------------------------------------------------
    def limits(self) -> Limits:
        settings = self.settings
        return {
            "max_script_execution_time": settings.max_script_execution_time,
            "max_async_execution_time": settings.max_async_execution_time,
            "batch_max_inputs": settings.runs_batch_max_inputs,
            "data_stored": settings.runs_store_data,
        }

    async def get(self, user: access.User, run_id: str, wait: float = 0) -> Run:
        """One run, whole: its owner's or an admin's to see; with `wait`, once it has ended or
        `wait` seconds have passed."""
        # The task first: one that ends between the two has saved its end before the read.
        task = self._tasks.get(run_id)
        run = await self._visible(user, run_id, access.may_see_run)
        if wait > 0 and task is not None and not run.ended:
            await asyncio.wait({task}, timeout=wait)
            run = await self._visible(user, run_id, access.may_see_run)
        return run

    async def cancel(self, user: access.User, run_id: str) -> Run:
        """Stop a queued or running asynchronous run; the run, cancelled."""
        task = self._tasks.get(run_id)  # first, as in `get`
        run = await self._visible(user, run_id, access.may_cancel_run)
        if run.ended:
            raise errors.RunAlreadyFinished(
                f"Run {run_id} has already ended ({run.status})", run_id=run_id
            )
        if task is None:
            raise errors.RunNotCancellable(
                f"Run {run_id} is synchronous: it ends when its client goes away", run_id=run_id
            )
        self._cancelled_by[run_id] = user.login
        task.cancel()
        await asyncio.wait({task})
        return await self._visible(user, run_id, access.may_cancel_run)

    async def _visible(
        self, user: access.User, run_id: str, rule: Callable[[access.User, int | None], bool]
    ) -> Run:
        run = await run_in_threadpool(self.store.get, run_id) if is_run_id(run_id) else None
        if run is None:
            raise errors.RunNotFound(f"Run {run_id} not found", run_id=run_id)
        if not rule(user, run.user_id):
            raise errors.NotRunOwner(f"Run {run_id} is not yours", run_id=run_id)
        return run

    def list(
        self,
        user: access.User,
        *,
        script_id: int | None = None,
        path: str | None = None,
        status: Status | None = None,
        login: str | None = None,
        since: float | None = None,
        before: str | None = None,
        batch_id: str | None = None,
        limit: int = 50,
    ) -> dict[str, Any]:
        """The runs the caller may see, newest first, a page of at most `limit`; `next` is the
        `before` of the next page (None: this is the last)."""
        if before is not None and not is_run_id(before):
            raise errors.ValidationError("before must be a run id", before=before)
        if batch_id is not None and not is_run_id(batch_id):
            raise errors.ValidationError("batch must be a batch id", batch=batch_id)
        owner: int | None = None
        if login is not None:
            found = self.index.users.by_login(login)
            if found is None:
                return {"runs": [], "next": None}
            owner = found.id
        if not access.may_see_everyones_runs(user):
            if owner is not None and owner != user.id:
                return {"runs": [], "next": None}
            owner = user.id
        where = Filter(
            user_id=owner,
            script_id=script_id,
            script_path=path,
            status=status,
            since=since,
            before=before,
            batch_id=batch_id,
        )
        runs = self.store.find(where, limit + 1)
        page = runs[:limit]
        return {
            "runs": [run.summary() for run in page],
            "next": page[-1].id if len(runs) > limit else None,
        }


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode("utf-8")
