"""The run log's service: every execution becomes a recorded run.

- `execute` runs a script for the synchronous API (`POST /api/v1/scripts/{path}`) and records it:
  `running` once admission gives it a slot (a run refused with 429 never ran and is not
  recorded), then how it ended. The records are written off the request path (`store.RunStore`).
- `get` and `list` read the log, with the visibility rules of `access` (`may_see_run`).
- `recover` (at start) marks what a previous process left `queued` or `running` as failed, with
  the reason: nothing stays `running` forever.
- `prune` applies the retention settings (RUNS_RETENTION_DAYS, RUNS_RETENTION_COUNT): at start
  (after `recover`), then every `PRUNE_INTERVAL` seconds once `start` was called.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import replace
from typing import Any

import structlog
from starlette.concurrency import run_in_threadpool

from gitscripts import access, errors
from gitscripts.config import Settings
from gitscripts.executor.service import ExecutionService, RunResult, Target, answer
from gitscripts.index import Index
from gitscripts.runs.records import Mode, Run, Status, capped, is_run_id, new_run_id
from gitscripts.runs.store import Filter, RunStore

log = structlog.get_logger("gitscripts.runs")

PRUNE_INTERVAL = 600.0
LOST = "the service stopped while this run was {}; it did not finish"


class RunService:
    def __init__(
        self, settings: Settings, index: Index, executor: ExecutionService, store: RunStore
    ) -> None:
        self.settings = settings
        self.index = index
        self.executor = executor
        self.store = store
        self._pruner: asyncio.Task[None] | None = None

    # -- life --------------------------------------------------------------------------------
    def recover(self) -> list[Run]:
        """Mark the runs a previous process left unfinished as failed (before serving)."""
        now = time.time()
        lost = [
            replace(run, status="failed", error=LOST.format(run.status), finished_at=now)
            for run in self.store.unfinished()
        ]
        if lost:
            self.store.write(lost)
            log.warning("runs_lost", runs=[run.id for run in lost])
        return lost

    async def start(self) -> None:
        self.store.open()
        self._pruner = asyncio.create_task(self._prune_forever())

    async def stop(self) -> None:
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
        run = self._new(user, target, data, "sync")

        def started() -> None:
            nonlocal run
            run = replace(run, status="running", started_at=time.time())
            self.store.save(run)

        try:
            result = await self.executor.run(user, target, data, started)
        except asyncio.CancelledError:
            self._end(run, "cancelled", "the client went away before the run ended")
            raise
        except errors.AppError as exc:
            self._end(run, "failed", exc.message)
            raise
        except Exception:
            self._end(run, "failed", "the service failed to run it")
            raise
        self._ended(run, result)
        return {**answer(target, result), "run_id": run.id}

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

    def _end(self, run: Run, status: Status, error: str) -> None:
        """Record how a run that never reported ended (nothing if it never started)."""
        if run.started_at is not None:
            self.store.save(replace(run, status=status, error=error, finished_at=time.time()))

    def _ended(self, run: Run, result: RunResult) -> None:
        limit = self.settings.runs_output_limit_chars
        stdout, stdout_cut = capped(result.stdout, limit)
        stderr, stderr_cut = capped(result.stderr, limit)
        status: Status = (
            "succeeded" if result.ok else ("timed_out" if result.timed_out else "failed")
        )
        self.store.save(
            replace(
                run,
                status=status,
                error=None if result.ok else result.error,
                finished_at=time.time(),
                result=result.result if result.ok and run.input_stored else None,
                stdout=stdout,
                stderr=stderr,
                stdout_cut=stdout_cut,
                stderr_cut=stderr_cut,
            )
        )

    # -- reading -----------------------------------------------------------------------------
    def get(self, user: access.User, run_id: str) -> dict[str, Any]:
        """One run, whole: its owner's or an admin's to see."""
        run = self.store.get(run_id) if is_run_id(run_id) else None
        if run is None:
            raise errors.RunNotFound(f"Run {run_id} not found", run_id=run_id)
        if not access.may_see_run(user, run.user_id):
            raise errors.NotRunOwner(f"Run {run_id} is not yours", run_id=run_id)
        return run.public()

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
        limit: int = 50,
    ) -> dict[str, Any]:
        """The runs the caller may see, newest first, a page of at most `limit`; `next` is the
        `before` of the next page (None: this is the last)."""
        if before is not None and not is_run_id(before):
            raise errors.ValidationError("before must be a run id", before=before)
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
        )
        runs = self.store.find(where, limit + 1)
        page = runs[:limit]
        return {
            "runs": [run.summary() for run in page],
            "next": page[-1].id if len(runs) > limit else None,
        }
