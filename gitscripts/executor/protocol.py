"""What the service and its workers say to each other, and how: length-prefixed JSON frames.

    service ──Job──▶ fork server (or fresh worker) ──header──▶ runner ──▶ script process
    service ◀─Report── fork server ◀── pipes (stdout, stderr, the Answer) ◀── script process

The confidential part of a run (its input and its file token, a `Handover`) never travels this way:
the service leaves it in the run's folder, where only the run's runner reads it. Standard library
only: the fork server and the fresh-interpreter worker import it.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any, BinaryIO, Required, TypedDict, cast


class Limits(TypedDict, total=False):
    """A run's limits. Each resource one is hard in the run: a script can lower it, never raise."""

    memory_bytes: int
    cpu_seconds: int
    processes: int
    file_size_bytes: int
    open_files: int
    output_bytes: int  # of stdout and of stderr each, kept by the supervisor
    result_bytes: int  # of the answer


class Job(TypedDict):
    """What the fork server needs to supervise a run: nothing confidential."""

    root: str  # the checkout of the revision
    path: str  # the script, relative to `root`
    timeout: float
    run: str  # the name of the run's folder on the service's side
    slot: int  # which of the service's concurrent slots (its uid, cgroup, network)
    limits: Limits


class Handover(TypedDict):
    """The confidential part, left in the run's folder for its runner alone."""

    data: Any
    env: dict[str, str]


class Answer(TypedDict, total=False):
    """What the script's process writes on its answer pipe, parsed by the service only."""

    ok: Required[bool]
    result: dict[str, Any]
    error: str
    peak_memory_kb: int


class Report(TypedDict, total=False):
    """What the supervisor sends back once a run has ended."""

    duration: Required[float]  # seconds, from the job's start
    stdout: Required[str]
    stderr: Required[str]
    peak_memory_kb: int | None
    timed_out: Required[bool]
    answer: str  # the script's Answer as it came, base64: the supervisor never parses it
    ok: bool  # set by the supervisor only when there is no answer to parse (and then False)
    error: str


_HEADER = struct.Struct(">Q")
MAX_FRAME = 1 << 31


class ProtocolError(RuntimeError):
    pass


def encode(message: Job | Report | dict[str, Any]) -> bytes:
    body = json.dumps(message, separators=(",", ":")).encode("utf-8")
    return _HEADER.pack(len(body)) + body


def decode_length(header: bytes) -> int:
    (length,) = _HEADER.unpack(header)
    if length > MAX_FRAME:
        raise ProtocolError(f"frame of {length} bytes is too large")
    return int(length)


HEADER_SIZE = _HEADER.size


def _read_exactly(read: Any, size: int) -> bytes:
    chunks = []
    while size:
        chunk = read(size)
        if not chunk:
            raise ProtocolError("connection closed mid-frame")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def read_frame(stream: BinaryIO | socket.socket) -> dict[str, Any]:
    read = stream.recv if isinstance(stream, socket.socket) else stream.read
    length = decode_length(_read_exactly(read, HEADER_SIZE))
    message = json.loads(_read_exactly(read, length))
    if not isinstance(message, dict):
        raise ProtocolError("a frame holds a JSON object")
    return message


def read_job(stream: BinaryIO | socket.socket) -> Job:
    return cast(Job, read_frame(stream))  # written by the service (`ExecutionService._job`)


def read_report(stream: BinaryIO | socket.socket) -> Report:
    return cast(Report, read_frame(stream))  # written by a supervisor (`worker.Run.report`)
