"""The gitscripts client: run scripts and move files with nothing but Python's standard library.

One file, no dependencies, for embedded interpreters (a reservoir simulator's Python) that have no
third-party packages. Every gitscripts service serves this file at `GET /api/v1/client.py`; save
it next to the program that uses it:

    import os, sys
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # `python -I` leaves it out
    from client import Client, GitscriptsError

    gs = Client("http://gitscripts:8000", token="gst_...")       # or login=..., password=...
    key = gs.upload("samples.csv", prefix="sim/run-1")           # -> "sim/run-1/<random>.csv"
    result = gs.run("geology/mean_porosity.py", {"file_key": key})
    run = gs.submit("geology/long.py", {"wells": 500})           # at once: the run, queued
    run = gs.wait(run["id"], timeout=600)                        # once it has ended
    results = gs.run_batch("geology/porosity.py", [{...}, {...}]) # one answer per input
    gs.download(result["result_key"], "summary.csv")
    gs.info(key), gs.exists(key), gs.delete(key)

Every failure raises `GitscriptsError` with `status` (HTTP status; 0 when the service could not be
reached), `error_code`, `message` and `details`; a script that fails raises it with
`error_code == "SCRIPT_FAILED"` and the script's output in `details`.
"""

# The simulator's interpreter may be older than the service's: this file keeps to Python 3.8.
# ruff: noqa: UP006, UP007, UP035, UP045

import http.client
import json
import os
import shutil
import socket
import time
import urllib.parse
import uuid
from typing import IO, Any, BinaryIO, Callable, Dict, Iterator, List, Optional, Tuple, Union

__all__ = ["Client", "GitscriptsError"]

_CHUNK = 1 << 20
# A run may last MAX_SCRIPT_EXECUTION_TIME (300 s by default) before the service answers.
_RUN_WAIT = 330.0
# Seconds one long-poll of a run waits (the service's most).
_RUN_WAIT_STEP = 60.0

Source = Union[bytes, bytearray, str, "os.PathLike[str]", BinaryIO]
_Body = Tuple[Union[bytes, Iterator[bytes], None], int]


class GitscriptsError(Exception):
    """An error answered by the service (or the failure to reach it)."""

    def __init__(
        self, status: int, error_code: str, message: str, details: Optional[Dict[str, Any]] = None
    ) -> None:
        super().__init__(f"{status} {error_code}: {message}")
        self.status = status
        self.error_code = error_code
        self.message = message
        self.details = details or {}


def _error_from(status: int, body: bytes) -> GitscriptsError:
    try:
        problem = json.loads(body.decode("utf-8"))
        return GitscriptsError(
            status, problem["error_code"], problem["message"], problem.get("details") or {}
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        text = body.decode("utf-8", "replace").strip()[:500]
        return GitscriptsError(status, "HTTP_ERROR", text or f"HTTP {status}")


def _file_chunks(handle: IO[bytes]) -> Iterator[bytes]:
    while True:
        chunk = handle.read(_CHUNK)
        if not chunk:
            return
        yield chunk


class Client:
    """A connection-per-request client of one gitscripts service.

    `token` is a personal API token (or a session token). With `login` and `password` instead, the
    client signs in on first use and again when its session expires.
    """

    def __init__(
        self,
        url: str,
        token: Optional[str] = None,
        login: Optional[str] = None,
        password: Optional[str] = None,
        timeout: float = 60.0,
    ) -> None:
        parts = urllib.parse.urlsplit(url.rstrip("/"))
        if parts.scheme not in ("http", "https", "http+unix") or not parts.hostname:
            raise ValueError(f"url must look like http://host:port, not {url!r}")
        self._https = parts.scheme == "https"
        # http+unix://<the socket's path, percent-encoded>: how a sandboxed script, which has no
        # network, reaches the service.
        self._socket = urllib.parse.unquote(parts.netloc) if parts.scheme == "http+unix" else None
        self._host = parts.hostname
        self._port = parts.port
        self._base = parts.path
        self.token = token
        self.login = login
        self.password = password
        self.timeout = timeout

    # -- scripts ------------------------------------------------------------------------------
    def run(
        self,
        path: str,
        data: Optional[Dict[str, Any]] = None,
        rev: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> Dict[str, Any]:
        """Run `main(data)` of the script at `path` (at revision `rev`, default main); its result."""
        query = {}
        if rev:
            query["rev"] = rev
        if timeout is not None:
            query["timeout"] = str(timeout)
        body = json.dumps({"data": data if data is not None else {}}).encode("utf-8")
        wait = _RUN_WAIT if timeout is None else timeout + 30.0
        reply = self._json(
            "POST",
            "/api/v1/scripts/" + urllib.parse.quote(path, safe="/"),
            query,
            lambda: (body, len(body)),
            {"Content-Type": "application/json"},
            wait,
        )
        if not reply.get("success"):
            details = {k: reply.get(k) for k in ("revision", "stdout", "stderr", "execution_time")}
            raise GitscriptsError(200, "SCRIPT_FAILED", str(reply.get("error")), details)
        return reply["result"]  # type: ignore[no-any-return]

    # -- runs ---------------------------------------------------------------------------------
    def submit(
        self,
        path: str,
        data: Any = None,
        rev: Optional[str] = None,
        timeout: Optional[float] = None,
        idempotency_key: Optional[str] = None,
    ) -> Dict[str, Any]:
        """Start a run of `path` and return at once: the run (`id`, `status`, ...). With an
        `idempotency_key`, sending the same submit again returns the first run."""
        request: Dict[str, Any] = {"path": path, "data": data if data is not None else {}}
        if rev:
            request["rev"] = rev
        if timeout is not None:
            request["timeout"] = timeout
        body = json.dumps(request).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        return self._json("POST", "/api/v1/runs", None, lambda: (body, len(body)), headers)

    def wait(self, run_id: str, timeout: Optional[float] = None) -> Dict[str, Any]:
        """The run once it has ended (`status` other than queued and running), or as it is when
        `timeout` seconds have passed (None: however long it takes)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            step, last = _RUN_WAIT_STEP, False
            if deadline is not None:
                left = deadline - time.monotonic()
                step, last = max(0.0, min(step, left)), left <= step
            run = self._json(
                "GET", "/api/v1/runs/" + run_id, {"wait": str(step)}, None, None, step + 30.0
            )
            if run["status"] not in ("queued", "running") or last:
                return run

    def cancel(self, run_id: str) -> Dict[str, Any]:
        """Stop a queued or running run (its processes are killed): the run, cancelled."""
        return self._json("POST", "/api/v1/runs/" + run_id + "/cancel")

    def run_batch(
        self,
        path: str,
        inputs: List[Any],
        rev: Optional[str] = None,
        timeout: Optional[float] = None,
    ) -> List[Dict[str, Any]]:
        """Run `path` once per input, in parallel on the service, in one request: one answer per
        input, in order, each with its own `success`, `result` and `error` (nothing is raised
        for an input whose run failed)."""
        request: Dict[str, Any] = {"path": path, "inputs": inputs}
        if rev:
            request["rev"] = rev
        if timeout is not None:
            request["timeout"] = timeout
        body = json.dumps(request).encode("utf-8")
        reply = self._json(
            "POST", "/api/v1/runs/batch", None, lambda: (body, len(body)),
            {"Content-Type": "application/json"}, _RUN_WAIT,
        )  # fmt: skip
        return reply["results"]  # type: ignore[no-any-return]

    # -- files --------------------------------------------------------------------------------
    def upload(self, source: Source, prefix: str = "", filename: Optional[str] = None) -> str:
        """Store a file (a path, bytes or a binary file object) under `prefix`; its new key.

        The key keeps the extension of `filename` (default: the path's name), as in
        `prefix/<random>.csv`. A file is streamed from disk, never read into memory whole.
        """
        if filename is None:
            filename = os.path.basename(_path_of(source)) if _is_path(source) else "upload"
        boundary = uuid.uuid4().hex
        quoted = filename.replace("\\", "\\\\").replace('"', '\\"')
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{quoted}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode("ascii")

        def body() -> _Body:
            content, size = _open_source(source)
            return _framed(head, content, tail), len(head) + size + len(tail)

        reply = self._json(
            "POST",
            "/api/v1/files/upload",
            {"prefix": prefix} if prefix else {},
            body,
            {"Content-Type": "multipart/form-data; boundary=" + boundary},
        )
        return reply["key"]  # type: ignore[no-any-return]

    def put(self, key: str, source: Source) -> str:
        """Store a file at exactly `key` (new, or replacing one of yours); the key."""
        reply = self._json(
            "PUT",
            self._file_path(key),
            {},
            lambda: _open_source(source),
            {"Content-Type": "application/octet-stream"},
        )
        return reply["key"]  # type: ignore[no-any-return]

    def open(self, key: str) -> http.client.HTTPResponse:
        """The file at `key` as a readable binary stream (use it in a `with` block)."""
        return self._request("GET", self._file_path(key))

    def download(
        self, key: str, dest: Union[str, "os.PathLike[str]", BinaryIO, None] = None
    ) -> Union[bytes, str, None]:
        """The file's bytes (no `dest`); or stream it into a path (returned) or a binary file
        object (None is returned). A path is written aside and renamed into place, so it never
        holds half a file."""
        with self.open(key) as response:
            if dest is None:
                return response.read()
            if not _is_path(dest):
                shutil.copyfileobj(response, dest, _CHUNK)  # type: ignore[arg-type]
                return None
            target = os.fspath(dest)  # type: ignore[arg-type]
            partial = target + ".part"
            try:
                with open(partial, "wb") as handle:
                    shutil.copyfileobj(response, handle, _CHUNK)
                os.replace(partial, target)
            finally:
                if os.path.exists(partial):
                    os.remove(partial)
            return target

    def info(self, key: str) -> Dict[str, Any]:
        """`{"key", "size", "content_type", ...}` without reading the file."""
        return self._json("GET", self._file_path(key) + "/info")

    def exists(self, key: str) -> bool:
        try:
            self.info(key)
        except GitscriptsError as error:
            if error.status == 404:
                return False
            raise
        return True

    def delete(self, key: str) -> None:
        self._json("DELETE", self._file_path(key))

    # -- plumbing -----------------------------------------------------------------------------
    @staticmethod
    def _file_path(key: str) -> str:
        return "/api/v1/files/" + urllib.parse.quote(key, safe="/")

    def _json(
        self,
        method: str,
        path: str,
        query: Optional[Dict[str, str]] = None,
        body: Optional[Callable[[], _Body]] = None,
        headers: Optional[Dict[str, str]] = None,
        timeout: Optional[float] = None,
    ) -> Dict[str, Any]:
        with self._request(method, path, query, body, headers, timeout) as response:
            payload = response.read()
        return json.loads(payload.decode("utf-8")) if payload else {}

    def _request(
        self,
        method: str,
        path: str,
        query: Optional[Dict[str, str]] = None,
        body: Optional[Callable[[], _Body]] = None,
        headers: Optional[Dict[str, str]] = None,
        timeout: Optional[float] = None,
    ) -> http.client.HTTPResponse:
        """Send one request; the response when it succeeded, GitscriptsError when not.

        `body` makes the body afresh, so a request can be sent again after signing in anew.
        """
        url = self._base + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        for attempt in (1, 2):
            response = self._send(method, url, body, headers or {}, timeout or self.timeout)
            if response.status < 400:
                return response
            error = _error_from(response.status, response.read())
            response.close()
            # An expired session: sign in again once, when we hold the password to do it.
            if response.status == 401 and attempt == 1 and self.password and self.login:
                self.token = None
                continue
            raise error
        raise AssertionError("unreachable")

    def _send(
        self,
        method: str,
        url: str,
        body: Optional[Callable[[], _Body]],
        headers: Dict[str, str],
        timeout: float,
    ) -> http.client.HTTPResponse:
        headers = dict(headers)
        bearer = self._bearer(timeout)
        if bearer:
            headers["Authorization"] = "Bearer " + bearer
        content, length = body() if body is not None else (None, 0)
        if body is not None:
            headers["Content-Length"] = str(length)
        connection = self._connection(timeout)
        try:
            connection.request(method, url, body=content, headers=headers)
            return connection.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            raise GitscriptsError(0, "CONNECTION_ERROR", f"{url}: {exc}") from None
        finally:
            if hasattr(content, "close"):
                content.close()  # type: ignore[union-attr]

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        if self._socket is not None:
            return _UnixHTTPConnection(self._socket, timeout)
        if self._https:
            return http.client.HTTPSConnection(self._host, self._port, timeout=timeout)
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def _bearer(self, timeout: float) -> Optional[str]:
        if self.token is None and self.login and self.password:
            credentials = json.dumps({"login": self.login, "password": self.password}).encode()
            connection = self._connection(timeout)
            try:
                connection.request(
                    "POST",
                    self._base + "/api/v1/auth/login",
                    body=credentials,
                    headers={"Content-Type": "application/json"},
                )
                response = connection.getresponse()
                payload = response.read()
            except (OSError, http.client.HTTPException) as exc:
                raise GitscriptsError(0, "CONNECTION_ERROR", str(exc)) from None
            finally:
                connection.close()
            if response.status != 200:
                raise _error_from(response.status, payload)
            self.token = json.loads(payload.decode("utf-8"))["access_token"]
        return self.token


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


def _is_path(source: Any) -> bool:
    return isinstance(source, (str, os.PathLike))


def _path_of(source: Any) -> str:
    """The path a source `_is_path` names (Any: no TypeGuard, which old Pythons lack)."""
    return os.fspath(source)  # type: ignore[no-any-return]  # str or PathLike[str], checked


def _open_source(source: Source) -> _Body:
    """(chunks, size) of bytes, a path or a seekable binary file object."""
    if isinstance(source, (bytes, bytearray)):
        return bytes(source), len(source)
    if _is_path(source):
        handle = open(_path_of(source), "rb")  # noqa: SIM115 - closed by the chunk generator
        size = os.fstat(handle.fileno()).st_size
        return _closing_chunks(handle), size
    handle = source  # type: ignore[assignment]
    start = handle.tell()
    size = handle.seek(0, os.SEEK_END) - start
    handle.seek(start)
    return _file_chunks(handle), size


def _closing_chunks(handle: IO[bytes]) -> Iterator[bytes]:
    with handle:
        yield from _file_chunks(handle)


def _framed(
    head: bytes, content: Union[bytes, Iterator[bytes], None], tail: bytes
) -> Iterator[bytes]:
    yield head
    if isinstance(content, bytes):
        yield content
    elif content is not None:
        yield from content
    yield tail
