"""The file store, from inside a running script, with no credentials of the script's own.

    from gitscripts.runtime import files

    def main(data):
        with files.open(data["file_key"], "r") as table:       # text; "rb" for bytes
            total = sum(float(row["rate"]) for row in csv.DictReader(table))
        key = files.write_bytes(f"total,{total}\\n".encode(), prefix="results", suffix=".csv")
        return {"result_key": key}

The service runs each script with the address of the service and a token that works for the
file endpoints only, stands for the user who ran the script (so what it writes is theirs) and dies
when the run ends; both come in the environment (`FILES_API_URL`, `FILES_API_TOKEN`). The same key
rules and size limit apply as for any upload. Errors raise `FileStoreError` (an OSError); a missing
file raises `FileNotFoundError` and a file the user may not replace `PermissionError`, both of them
also FileStoreErrors.
"""

from __future__ import annotations

import io
import os
import tempfile
from typing import IO, Any

from gitscripts.client import Client, GitscriptsError

__all__ = [
    "FileStoreError",
    "FileStoreNotFoundError",
    "FileStorePermissionError",
    "exists",
    "open",
    "read_bytes",
    "write_bytes",
]

# Written files are kept in memory up to this size, then spill to the run's scratch directory.
_SPOOL_BYTES = 8 << 20
_TIMEOUT = 300.0


class FileStoreError(OSError):
    def __init__(self, error: GitscriptsError) -> None:
        super().__init__(error.message)
        self.status = error.status
        self.error_code = error.error_code
        self.message = error.message
        self.details = error.details


class FileStoreNotFoundError(FileStoreError, FileNotFoundError):
    pass


class FileStorePermissionError(FileStoreError, PermissionError):
    pass


def _translated(error: GitscriptsError) -> FileStoreError:
    kind = {404: FileStoreNotFoundError, 403: FileStorePermissionError}.get(
        error.status, FileStoreError
    )
    return kind(error)


_client: Client | None = None


def _store() -> Client:
    global _client
    if _client is None:
        url, token = os.environ.get("FILES_API_URL"), os.environ.get("FILES_API_TOKEN")
        if not url or not token:
            raise FileStoreError(
                GitscriptsError(
                    0, "NO_FILE_STORE", "The file store is reachable only from scripts run by it"
                )
            )
        _client = Client(url, token=token, timeout=_TIMEOUT)
    return _client


def read_bytes(key: str) -> bytes:
    try:
        return _store().download(key)  # type: ignore[return-value]
    except GitscriptsError as error:
        raise _translated(error) from None


def write_bytes(data: bytes, prefix: str = "", suffix: str = "") -> str:
    """Store `data` as a new file `prefix/<random><suffix>`; its key. `suffix` is an extension
    such as ".csv"; as for any upload, one that is not a dot and 1 to 16 letters, digits, `_` or
    `-` is dropped."""
    try:
        return _store().upload(bytes(data), prefix=prefix, filename="file" + suffix)
    except GitscriptsError as error:
        raise _translated(error) from None


def exists(key: str) -> bool:
    try:
        return _store().exists(key)
    except GitscriptsError as error:
        raise _translated(error) from None


def open(  # mirrors the built-in on purpose
    key: str,
    mode: str = "rb",
    encoding: str | None = None,
    newline: str | None = None,
) -> IO[Any]:
    """The file at `key`: "rb"/"r" stream it from the store; "wb"/"w" write it (new, or
    replacing one of the user's) when the file is closed."""
    if mode not in ("r", "rb", "w", "wb"):
        raise ValueError(f"mode must be 'r', 'rb', 'w' or 'wb', not {mode!r}")
    if "r" in mode:
        try:
            raw: IO[bytes] = _store().open(key)
        except GitscriptsError as error:
            raise _translated(error) from None
    else:
        raw = _WriteOnClose(key)  # type: ignore[assignment]  # a binary file object all the same
    if "b" in mode:
        return raw
    return io.TextIOWrapper(raw, encoding=encoding or "utf-8", newline=newline)


class _WriteOnClose(io.BufferedIOBase):
    """Collects what is written (in memory, then in the scratch directory) and stores it under
    its key when closed."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key
        self._spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return self._spool.write(data)

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._spool.seek(0)
            _store().put(self.key, self._spool)  # type: ignore[arg-type]
        except GitscriptsError as error:
            raise _translated(error) from None
        finally:
            self._spool.close()
            super().close()
