"""Packing the repository's loose objects now and then, as git does after a push.

Every API write is a commit made by libgit2, which writes each new object as a loose file and never
packs. git packs only after its own writes (`receive-pack` runs `git gc --auto` after a push), so a
service written to through the API gathers loose objects without end: at 10,000 scripts, tens of
thousands of files, and every read that touches many objects (code search reads every script) is
several times slower than on a packed repository (bench_search.py: about 290 ms against 45 ms).

So after a commit (and once at start), at most once per GIT_HOUSEKEEPING_SECONDS and never two at
once, the service runs `git gc --auto` in a thread; a commit that comes sooner has it run once the
interval has passed. git decides itself whether there is anything to do (more loose
objects than `gc.auto`, 6,700 by default, or too many packs), which costs a few milliseconds when
there is not. It is what git runs after every push, and as safe beside live writers: it packs the
loose objects and removes only those now in a pack, prunes only unreachable objects two weeks old,
and takes each ref's lock as a writer would (`Repository.commit_plan` retries when it meets one).
"""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import structlog

log = structlog.get_logger("gitscripts.repo")

# A gc that takes longer than this is stopped (git leaves a packed repository consistent).
_GC_TIMEOUT = 3600


class Housekeeping:
    def __init__(self, git_dir: Path, min_interval: float) -> None:
        self.git_dir = git_dir
        self.min_interval = min_interval
        self._lock = threading.Lock()
        self._running = False
        self._last = float("-inf")
        self._timer: threading.Timer | None = None  # a run waiting for the interval to pass
        self._again = False  # a commit came during a run
        self.runs = 0  # how many times it ran git gc (for tests and logs)

    def after_commit(self) -> None:
        """Called after each commit the service makes (and once at start): `git gc --auto` now
        when due, else once the interval has passed, so a burst of writes followed by silence is
        packed too."""
        with self._lock:
            if self._running:
                self._again = True  # its objects may have come after git looked: look again
                return
            if self._timer is not None:
                return
            wait = self._last + self.min_interval - time.monotonic()
            if wait > 0:
                self._timer = threading.Timer(wait, self._start_due)
                self._timer.daemon = True
                self._timer.start()
                return
            self._running, self._last = True, time.monotonic()
        threading.Thread(target=self._gc, name="git-housekeeping", daemon=True).start()

    def _start_due(self) -> None:
        with self._lock:
            self._timer = None
        self.after_commit()

    def stop(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _gc(self) -> None:
        started = time.monotonic()
        try:
            # Not detached: the thread waits for it, so two never run at once and none outlives
            # the service.
            done = subprocess.run(
                ["git", "--git-dir", str(self.git_dir), "-c", "gc.autoDetach=false",
                 "gc", "--auto", "--quiet"],
                stdin=subprocess.DEVNULL, capture_output=True, timeout=_GC_TIMEOUT, check=False,
            )  # fmt: skip
            if done.returncode != 0:
                log.warning("git_gc_failed", output=done.stderr.decode("utf-8", "replace")[-2000:])
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("git_gc_failed", error=str(exc))
        finally:
            self.runs += 1
            log.debug("git_gc", duration_ms=round((time.monotonic() - started) * 1000, 1))
            with self._lock:
                self._running = False
                again, self._again = self._again, False
            if again:
                self.after_commit()
