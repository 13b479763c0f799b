"""Length-prefixed JSON frames between the service and its workers (standard library only)."""

from __future__ import annotations

import json
import socket
import struct
from typing import Any, BinaryIO

_HEADER = struct.Struct(">Q")
MAX_FRAME = 1 << 31


class ProtocolError(RuntimeError):
    pass


def encode(message: dict[str, Any]) -> bytes:
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
    return json.loads(_read_exactly(read, length))  # type: ignore[no-any-return]
