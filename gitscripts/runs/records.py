"""A run as the run log keeps it: a frozen record, its statuses and modes, its id.

A run id is a ULID: 48 bits of Unix milliseconds and 80 random bits in Crockford's base 32, 26
characters that sort by the time the run was made (the log's order, newest first, is the ids').
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from gitscripts.timestamps import iso_moment

Status = Literal["queued", "running", "succeeded", "failed", "timed_out", "cancelled"]
Mode = Literal["sync", "async", "batch", "replay"]
STATUSES: tuple[Status, ...] = (
    "queued",
    "running",
    "succeeded",
    "failed",
    "timed_out",
    "cancelled",
)
ENDED: frozenset[Status] = frozenset({"succeeded", "failed", "timed_out", "cancelled"})

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CUT_MARKER = "\n[... cut: {} more characters]"


def new_run_id(now: float | None = None) -> str:
    """A ULID for a run made at `now` (default: now)."""
    millis = int((time.time() if now is None else now) * 1000)
    value = (millis << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def is_run_id(text: str) -> bool:
    return len(text) == 26 and all(c in _CROCKFORD for c in text) and text[0] <= "7"


def capped(text: str, limit: int) -> tuple[str, bool]:
    """`text` cut to `limit` characters, with a marker saying how much was cut; and whether."""
    if len(text) <= limit:
        return text, False
    return text[:limit] + CUT_MARKER.format(len(text) - limit), True


@dataclass(frozen=True)
class Run:
    """One execution of a script, as recorded. Times are Unix seconds."""

    id: str
    script_path: str
    script_id: int | None
    revision: str  # as asked for: a branch, a tag or a commit id
    commit: str  # the commit that ran
    user_id: int | None  # None: an anonymous run
    user_login: str | None
    mode: Mode
    status: Status
    queued_at: float
    timeout: float
    error: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    input: Any = None
    result: Any = None
    stdout: str = ""
    stderr: str = ""
    stdout_cut: bool = False
    stderr_cut: bool = False
    input_stored: bool = True  # False: RUNS_STORE_DATA was off when it ran
    replay_of: str | None = None
    batch_id: str | None = None  # the batch it was one input of (every run of a batch shares it)
    idempotency_key: str | None = None  # the submitter's, with the request it came with:
    request_hash: str | None = None  # a retry with the key returns this run
    worker: str | None = None  # the cluster worker that ran it (EXECUTOR=dask); None: the service
    environment: str | None = None  # the key of the environment it ran in; None: the default

    @property
    def ended(self) -> bool:
        return self.status in ENDED

    def public(self) -> dict[str, Any]:
        """The run as the API shows it."""
        queue_wait = run_time = None
        if self.started_at is not None:
            queue_wait = round((self.started_at - self.queued_at) * 1000, 3)
            if self.finished_at is not None:
                run_time = round((self.finished_at - self.started_at) * 1000, 3)
        return {
            "id": self.id,
            "script_path": self.script_path,
            "script_id": None if self.script_id is None else str(self.script_id),
            "revision": self.revision,
            "commit": self.commit,
            "user": None
            if self.user_id is None
            else {"id": self.user_id, "login": self.user_login},
            "mode": self.mode,
            "status": self.status,
            "error": self.error,
            "timeout": self.timeout,
            "queued_at": _moment(self.queued_at),
            "started_at": _moment(self.started_at),
            "finished_at": _moment(self.finished_at),
            "queue_wait_ms": queue_wait,
            "run_time_ms": run_time,
            "input": self.input,
            "result": self.result,
            "data_stored": self.input_stored,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "stdout_truncated": self.stdout_cut,
            "stderr_truncated": self.stderr_cut,
            "replay_of": self.replay_of,
            "worker": self.worker,
            "environment": self.environment,
            "batch_id": self.batch_id,
        }

    def summary(self) -> dict[str, Any]:
        """The run as a listing shows it: without its input, result and output."""
        shown = self.public()
        for name in ("input", "result", "stdout", "stderr"):
            del shown[name]
        return shown


def _moment(seconds: float | None) -> str | None:
    return None if seconds is None else iso_moment(datetime.fromtimestamp(seconds, UTC))
