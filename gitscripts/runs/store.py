"""The run log's storage: SQLite in WAL mode, written by one thread off the request path.

A different workload from the index (TinyDB): many small writes, reads by filter and time. Writes
(`save`) are queued and applied by a writer thread in batches (what arrives within `LINGER`), one
transaction each, so a run's request never waits for the disk; several saves of one run in a batch
become one row write. A crash loses at most the last `LINGER` of saves. A
reader first waits for what was queued before it (`flush`), so it sees every run saved before it
asked. Rows are upserts of the whole record: the last save of a run wins.
"""

from __future__ import annotations

import contextlib
import json
import queue
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from gitscripts.runs.records import Run, Status

log = structlog.get_logger("gitscripts.runs")

# Seconds a save may wait to be written with the next ones.
LINGER = 0.05

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    script_path TEXT NOT NULL,
    script_id INTEGER,
    revision TEXT NOT NULL,
    commit_id TEXT NOT NULL,
    user_id INTEGER,
    user_login TEXT,
    mode TEXT NOT NULL,
    status TEXT NOT NULL,
    queued_at REAL NOT NULL,
    timeout REAL NOT NULL,
    error TEXT,
    started_at REAL,
    finished_at REAL,
    input TEXT,
    result TEXT,
    stdout TEXT NOT NULL,
    stderr TEXT NOT NULL,
    stdout_cut INTEGER NOT NULL,
    stderr_cut INTEGER NOT NULL,
    input_stored INTEGER NOT NULL,
    replay_of TEXT,
    idempotency_key TEXT,
    request_hash TEXT,
    environment TEXT,
    batch_id TEXT,
    worker TEXT
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS runs_by_key ON runs (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS runs_by_user ON runs (user_id, id);
CREATE INDEX IF NOT EXISTS runs_by_script ON runs (script_id, id);
CREATE INDEX IF NOT EXISTS runs_by_path ON runs (script_path, id);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status, id);
"""
# Columns added since the first run logs, with their types: a log without one gains it at open
# (its rows read NULL there).
_ADDED = {"environment": "TEXT", "batch_id": "TEXT", "worker": "TEXT"}
_INDEXES_OF_ADDED = "CREATE INDEX IF NOT EXISTS runs_by_batch ON runs (batch_id, id);"
_COLUMNS = (
    "id, script_path, script_id, revision, commit_id, user_id, user_login, mode, status, "
    "queued_at, timeout, error, started_at, finished_at, input, result, stdout, stderr, "
    "stdout_cut, stderr_cut, input_stored, replay_of, idempotency_key, request_hash, environment, "
    "batch_id, worker"
)
_UPSERT = (
    f"INSERT OR REPLACE INTO runs ({_COLUMNS}) VALUES ({', '.join('?' * len(_COLUMNS.split(',')))})"
)


@dataclass(frozen=True)
class Filter:
    """Which runs a listing shows; None: any."""

    user_id: int | None = None
    script_id: int | None = None
    script_path: str | None = None
    status: Status | None = None
    since: float | None = None  # queued at or after (Unix seconds)
    before: str | None = None  # ids older than this one
    batch_id: str | None = None


def _row(run: Run) -> tuple[Any, ...]:
    return (
        run.id, run.script_path, run.script_id, run.revision, run.commit, run.user_id,
        run.user_login, run.mode, run.status, run.queued_at, run.timeout, run.error,
        run.started_at, run.finished_at, _json(run.input), _json(run.result), run.stdout,
        run.stderr, int(run.stdout_cut), int(run.stderr_cut), int(run.input_stored),
        run.replay_of, run.idempotency_key, run.request_hash, run.environment, run.batch_id,
        run.worker,
    )  # fmt: skip


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, separators=(",", ":"))


def _run(row: sqlite3.Row) -> Run:
    return Run(
        id=row["id"],
        script_path=row["script_path"],
        script_id=row["script_id"],
        revision=row["revision"],
        commit=row["commit_id"],
        user_id=row["user_id"],
        user_login=row["user_login"],
        mode=row["mode"],
        status=row["status"],
        queued_at=row["queued_at"],
        timeout=row["timeout"],
        error=row["error"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        input=None if row["input"] is None else json.loads(row["input"]),
        result=None if row["result"] is None else json.loads(row["result"]),
        stdout=row["stdout"],
        stderr=row["stderr"],
        stdout_cut=bool(row["stdout_cut"]),
        stderr_cut=bool(row["stderr_cut"]),
        input_stored=bool(row["input_stored"]),
        replay_of=row["replay_of"],
        idempotency_key=row["idempotency_key"],
        request_hash=row["request_hash"],
        environment=row["environment"],
        batch_id=row["batch_id"],
        worker=row["worker"],
    )


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    connection.row_factory = sqlite3.Row
    connection.execute("PRAGMA journal_mode=WAL")
    # In WAL mode, NORMAL loses at most the last transactions on a power cut, never consistency.
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA busy_timeout=5000")
    return connection


class RunStore:
    """The run log on disk (`path`), with its writer thread (started by `open`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writes: queue.SimpleQueue[Run | threading.Event | None] = queue.SimpleQueue()
        self._hurry = threading.Event()  # set: write what is queued now, do not linger
        self._writer: threading.Thread | None = None
        self._write_connection = _connect(path)
        self._write_connection.executescript(_SCHEMA)
        self._add_columns()
        self._read_connection = _connect(path)
        self._read_lock = threading.Lock()
        # The writer thread's connection, also used by `claim` and `prune` from other threads.
        self._write_lock = threading.Lock()

    def _add_columns(self) -> None:
        """Bring a log written by an earlier version up to this one's columns."""
        connection = self._write_connection
        have = {row["name"] for row in connection.execute("PRAGMA table_info(runs)")}
        for name, kind in _ADDED.items():
            if name not in have:
                try:
                    connection.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")
                except sqlite3.OperationalError as exc:  # another process added it just now
                    if "duplicate column" not in str(exc):
                        raise
        connection.executescript(_INDEXES_OF_ADDED)

    def open(self) -> None:
        if self._writer is None:
            self._writer = threading.Thread(target=self._write_loop, name="run-log", daemon=True)
            self._writer.start()

    def close(self) -> None:
        if self._writer is not None:
            self._writes.put(None)
            self._hurry.set()
            self._writer.join()
            self._writer = None
        self._write_connection.close()
        self._read_connection.close()

    # -- writes ------------------------------------------------------------------------------
    def save(self, run: Run) -> None:
        """Queue `run` to be written (cheap: the request path calls it)."""
        self._writes.put(run)

    def flush(self) -> None:
        """Wait until every run saved before this call is on disk."""
        if self._writer is None:
            return
        done = threading.Event()
        self._writes.put(done)
        self._hurry.set()
        done.wait()

    def _write_loop(self) -> None:
        stop = False
        while not stop:
            batch: dict[str, Run] = {}
            waiting: list[threading.Event] = []
            item: Run | threading.Event | None = self._writes.get()
            # Saves linger a moment to be written together (a short run's start and end become
            # one row write). The thread sleeps through the linger instead of waking for each
            # save, so saves cost the runs beside it no thread switches; a reader waiting
            # (`flush`) or the end cuts it short.
            self._hurry.wait(LINGER)
            self._hurry.clear()
            while True:
                if item is None:
                    stop = True
                elif isinstance(item, threading.Event):
                    waiting.append(item)
                else:
                    batch[item.id] = item  # the last save of a run wins
                try:
                    item = self._writes.get_nowait()
                except queue.Empty:
                    break
            if batch:
                try:
                    self.write(batch.values())
                except sqlite3.Error:  # a full disk, say: the runs are lost, the writer is not
                    log.exception("run_log_write_failed", runs=list(batch))
            for event in waiting:
                event.set()

    def write(self, runs: Iterable[Run]) -> None:
        """Write `runs` now, in one transaction (the writer thread's, or before it starts)."""
        rows = [_row(run) for run in runs]
        with self._write_lock, self._transaction() as connection:
            connection.executemany(_UPSERT, rows)

    def claim(self, run: Run) -> Run:
        """Write `run` now, unless its submitter already has a run with its idempotency key:
        then that run, untouched."""
        with self._write_lock, self._transaction() as connection:
            if run.idempotency_key is not None:
                found = connection.execute(
                    f"SELECT {_COLUMNS} FROM runs WHERE user_id IS ? AND idempotency_key = ?",
                    (run.user_id, run.idempotency_key),
                ).fetchone()
                if found is not None:
                    return _run(found)
            connection.execute(_UPSERT, _row(run))
        return run

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        connection = self._write_connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    def prune(self, older_than: float, keep: int) -> int:
        """Delete ended runs queued before `older_than` (Unix seconds), and the oldest beyond the
        newest `keep`; runs not ended are kept. How many went."""
        ended = "status NOT IN ('queued', 'running')"
        with self._write_lock, self._transaction() as connection:
            gone = connection.execute(
                f"DELETE FROM runs WHERE {ended} AND queued_at < ?", (older_than,)
            ).rowcount
            gone += connection.execute(
                f"DELETE FROM runs WHERE {ended} AND id < "
                "(SELECT id FROM runs ORDER BY id DESC LIMIT 1 OFFSET ?)",
                (keep - 1,),
            ).rowcount
        return gone

    def unfinished(self) -> list[Run]:
        """Runs still queued or running (as a previous process left them)."""
        return self._select("status IN ('queued', 'running')", (), "id", None)

    # -- reads -------------------------------------------------------------------------------
    def get(self, run_id: str) -> Run | None:
        self.flush()
        found = self._select("id = ?", (run_id,), "id", 1)
        return found[0] if found else None

    def find(self, where: Filter, limit: int) -> list[Run]:
        """Runs matching `where`, newest first, at most `limit`."""
        self.flush()
        clauses: list[str] = []
        values: list[Any] = []
        for column, value in (
            ("script_id", where.script_id),
            ("script_path", where.script_path),
            ("status", where.status),
            ("user_id", where.user_id),
            ("batch_id", where.batch_id),
        ):
            if value is not None:
                clauses.append(f"{column} = ?")
                values.append(value)
        if where.since is not None:
            clauses.append("queued_at >= ?")
            values.append(where.since)
        if where.before is not None:
            clauses.append("id < ?")
            values.append(where.before)
        return self._select(" AND ".join(clauses) or "1", tuple(values), "id DESC", limit)

    def _select(
        self, where: str, values: tuple[Any, ...], order: str, limit: int | None
    ) -> list[Run]:
        sql = f"SELECT {_COLUMNS} FROM runs WHERE {where} ORDER BY {order}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._read_lock:
            return [_run(row) for row in self._read_connection.execute(sql, values)]
