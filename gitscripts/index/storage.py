"""A TinyDB storage that is never half-written and never re-parsed needlessly.

Writes go to a temporary file that is fsynced and renamed over the index, so a crash at any moment
leaves either the old or the new index on disk. Reads come from memory; the file is parsed again only
when its identity (inode, size, mtime) changed, i.e. when another process wrote it. A transaction holds
a cross-process file lock, starts from the latest file, and writes once at its end (or not at all when
it fails, in which case the in-memory copy is dropped so nothing half-applied is ever seen).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from filelock import FileLock
from tinydb.storages import Storage

Tables = dict[str, dict[str, Any]]


class AtomicJSONStorage(Storage):
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file_lock = FileLock(str(self.path) + ".lock")
        self._thread_lock = threading.RLock()
        self._cache: Tables | None = None
        self._cache_identity: tuple[int, int, int] | None = None
        self._depth = 0
        self._dirty = False
        # Bumped whenever the in-memory data may have changed; derived lookups key on it.
        self.generation = 0
        # Bumped only when the data is replaced wholesale (read from a file another process
        # wrote, or dropped after a failed transaction): lookups that are patched along with
        # every change this process makes need rebuilding only then.
        self.loads = 0
        self._remove_abandoned_temp_files()

    def _remove_abandoned_temp_files(self) -> None:
        """Temp files of writers that died mid-write (the index itself was never touched)."""
        for temp in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            pid = temp.name.split(".")[-3]
            if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
                temp.unlink(missing_ok=True)

    # -- reading ------------------------------------------------------------------------------
    def _identity(self) -> tuple[int, int, int] | None:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (stat.st_ino, stat.st_size, stat.st_mtime_ns)

    def read(self) -> Tables | None:
        with self._thread_lock:
            if self._depth:  # inside a transaction the memory copy is authoritative
                return self._cache
            self._refresh()
            return self._cache

    def _refresh(self) -> None:
        identity = self._identity()
        if self._cache is not None and identity == self._cache_identity:
            return
        if identity is None:
            self._cache = {}
        else:
            self._cache = orjson.loads(self.path.read_bytes()) or {}
        self._cache_identity = identity
        self.generation += 1
        self.loads += 1

    # -- writing ------------------------------------------------------------------------------
    def write(self, data: Tables) -> None:
        with self._thread_lock:
            self._cache = data
            self.generation += 1
            if self._depth:
                self._dirty = True
                return
        with self.transaction():
            self._cache = data
            self._dirty = True

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Serialize read-modify-write across threads and processes; write once at the end."""
        with self._thread_lock:
            outermost = self._depth == 0
            if outermost:
                self._file_lock.acquire()
            self._depth += 1
            try:
                if outermost:
                    self._refresh()
                yield
                if outermost and self._dirty:
                    self._flush()
            except BaseException:
                if outermost:
                    self._drop_cache()
                raise
            finally:
                self._depth -= 1
                if outermost:
                    self._dirty = False
                    self._file_lock.release()

    def _drop_cache(self) -> None:
        self._cache = None
        self._cache_identity = None
        self.generation += 1
        self.loads += 1

    def _flush(self) -> None:
        payload = orjson.dumps(self._cache or {})
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            with open(temp, "wb") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, self.path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        self._cache_identity = self._identity()

    def close(self) -> None:
        pass
