"""The file store: one fsspec file system (local directory or S3) under a root, addressed by key.

Everything here blocks (fsspec's S3 calls run on fsspec's own event loop thread); the service calls
it from the thread pool. Keys reaching this module are already checked (`gitscripts.files.keys`).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

import fsspec
import structlog
from fsspec.implementations.local import LocalFileSystem

from gitscripts import errors
from gitscripts.config import Settings

log = structlog.get_logger("gitscripts.files")

CHUNK_SIZE = 1 << 20
# S3 parts: the smallest S3 allows is 5 MiB; s3fs's default of 50 MiB would cost that much memory
# per upload in progress.
_S3_BLOCK_SIZE = 8 << 20
_INCOMING = ".incoming"
_ABANDONED_AFTER_SECONDS = 24 * 3600


class StagedFile(Protocol):
    """A file being written: invisible under its key until `commit`, gone after `discard`."""

    def write(self, data: bytes) -> None: ...

    def commit(self) -> None: ...

    def discard(self) -> None: ...


class _LocalStaged:
    """Written next to the store (`.incoming/`), then renamed into place: one file system, so the
    rename is atomic and free. (fsspec's own non-autocommit local files stage in the system temp
    directory, often another file system: committing would copy the whole file.)"""

    def __init__(self, fs: Any, temp: str, final: str) -> None:
        self.fs, self.temp, self.final = fs, temp, final
        fs.makedirs(temp.rsplit("/", 1)[0], exist_ok=True)
        self.handle = fs.open(temp, "wb")

    def write(self, data: bytes) -> None:
        self.handle.write(data)

    def commit(self) -> None:
        self.handle.close()
        self.fs.makedirs(self.final.rsplit("/", 1)[0], exist_ok=True)
        self.fs.mv(self.temp, self.final)

    def discard(self) -> None:
        with contextlib.suppress(Exception):
            self.handle.close()
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self.temp)


class _TransactionalStaged:
    """fsspec's non-autocommit write: on S3 a multipart upload that becomes the object only when
    completed by `commit`; `discard` aborts it, so nothing partial is ever visible."""

    def __init__(self, fs: Any, final: str) -> None:
        self.handle = fs.open(final, "wb", autocommit=False, block_size=_S3_BLOCK_SIZE)

    def write(self, data: bytes) -> None:
        self.handle.write(data)

    def commit(self) -> None:
        self.handle.close()
        self.handle.commit()

    def discard(self) -> None:
        self.handle.discard()


class FileStore:
    def __init__(self, fs: Any, root: str) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self.is_local = isinstance(fs, LocalFileSystem)
        if self.is_local:
            fs.makedirs(self.root, exist_ok=True)
            self._remove_abandoned_uploads()

    @classmethod
    def from_settings(cls, settings: Settings) -> FileStore:
        location = settings.files_location
        local = settings.local_files_dir
        if local is not None:
            return cls(fsspec.filesystem("file"), str(local.resolve()))
        protocol, _, path = location.partition("://")
        options: dict[str, Any] = {"skip_instance_cache": True}
        if protocol in ("s3", "s3a"):
            # Credentials and region come from the standard AWS variables (botocore's chain).
            options["use_listings_cache"] = False
            if settings.s3_endpoint_url:
                options["endpoint_url"] = settings.s3_endpoint_url
        return cls(fsspec.filesystem(protocol, **options), path)

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def _remove_abandoned_uploads(self) -> None:
        """Uploads a crashed service left half-written (never visible under a key)."""
        incoming = self._path(_INCOMING)
        if not self.fs.isdir(incoming):
            return
        cutoff = time.time() - _ABANDONED_AFTER_SECONDS
        for entry in self.fs.ls(incoming, detail=True):
            modified = entry.get("mtime") or entry.get("created") or 0
            if modified < cutoff:
                with contextlib.suppress(OSError):
                    self.fs.rm_file(entry["name"])

    # -- reading ------------------------------------------------------------------------------
    def size(self, key: str) -> int:
        """The size of the file at `key` (metadata only: a stat, or one HEAD request on S3)."""
        try:
            info = self.fs.info(self._path(key))
        except FileNotFoundError:
            info = None
        if info is None or info.get("type") != "file":
            raise errors.FileNotFound(f"File '{key}' not found", key=key)
        return int(info["size"])

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except errors.FileNotFound:
            return False
        return True

    def sizes_in(self, folders: Iterable[str]) -> dict[str, int]:
        """key -> size of every file directly inside these folders ("" is the top level): one
        listing per folder (one paginated request on S3) instead of one request per file. A
        folder that is not there has no files."""
        found: dict[str, int] = {}
        for folder in folders:
            path = self._path(folder) if folder else self.root
            try:
                entries = self.fs.ls(path, detail=True)
            except FileNotFoundError:
                continue
            for entry in entries:
                name = entry["name"].rstrip("/")
                # Listing a path that is a file lists that file: it is not inside the folder.
                if entry.get("type") == "file" and name != path:
                    key = name.rsplit("/", 1)[-1]
                    found[f"{folder}/{key}" if folder else key] = int(entry["size"])
        return found

    def open_at(self, key: str, start: int) -> Any:
        """A handle positioned at `start`, for `read_chunks`; the caller closes it."""
        try:
            handle = self.fs.open(
                self._path(key), "rb", block_size=_S3_BLOCK_SIZE, cache_type="readahead"
            )
        except FileNotFoundError:
            raise errors.FileNotFound(f"File '{key}' not found", key=key) from None
        if start:
            handle.seek(start)
        return handle

    def read_chunks(self, handle: Any, length: int) -> Iterator[bytes]:
        remaining = length
        while remaining > 0:
            chunk = handle.read(min(CHUNK_SIZE, remaining))
            if not chunk:  # the file shrank under us (replaced): end rather than loop
                return
            remaining -= len(chunk)
            yield chunk

    # -- writing ------------------------------------------------------------------------------
    def stage(self, key: str) -> StagedFile:
        if self.is_local:
            temp = self._path(f"{_INCOMING}/{uuid.uuid4().hex}")
            return _LocalStaged(self.fs, temp, self._path(key))
        return _TransactionalStaged(self.fs, self._path(key))

    def delete(self, key: str) -> None:
        self.size(key)  # 404 for a key that is not a file (or is a "directory")
        try:
            self.fs.rm_file(self._path(key))
        except FileNotFoundError:
            raise errors.FileNotFound(f"File '{key}' not found", key=key) from None
        log.info("file_deleted", key=key)
