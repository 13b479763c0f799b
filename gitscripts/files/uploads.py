"""Reading the `file` field of a multipart upload as it arrives, without holding it in memory.

python-multipart's push parser is fed the request body chunk by chunk; the file field's bytes are
gathered into blocks of `BLOCK` and handed on as soon as a block is full, so at most about one block
per upload is in memory whatever the size of the file.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.types import Receive

from gitscripts import errors

BLOCK = 1 << 20
FIELD = "file"


@dataclass
class _State:
    header_field: bytearray = field(default_factory=bytearray)
    header_value: bytearray = field(default_factory=bytearray)
    disposition: bytes = b""
    in_file: bool = False
    file_parts: int = 0
    filename: str | None = None
    announced: bool = False
    file_ended: bool = False
    finished: bool = False
    # The file's bytes not handed on yet: views into the network chunks, joined once per block.
    pieces: list[memoryview] = field(default_factory=list)
    pending: int = 0


class ClientGone(Exception):
    """The client went away before it had sent the whole body."""


class RequestBody:
    """A request body read straight from the ASGI channel, knowing whether more of it is to come
    (which Starlette's `Request.stream()` does not tell), so a refused upload can be drained."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.complete = False

    async def chunks(self) -> AsyncIterator[bytes]:
        while not self.complete:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                raise ClientGone()
            self.complete = not message.get("more_body", False)
            yield message.get("body", b"")

    async def drain(self, limit: int) -> None:
        """Read and drop up to `limit` bytes of what the client is still sending."""
        drained = 0
        async for chunk in self.chunks():
            drained += len(chunk)
            if drained > limit:
                return


def _boundary(content_type_header: str) -> bytes:
    content_type, options = parse_options_header(content_type_header)
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise errors.ValidationError(
            f"Send the file as multipart/form-data in a field named '{FIELD}'"
        )
    return boundary


def _parser(boundary: bytes, state: _State) -> MultipartParser:
    def on_part_begin() -> None:
        state.disposition = b""

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state.header_field += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state.header_value += data[start:end]

    def on_header_end() -> None:
        if bytes(state.header_field).lower() == b"content-disposition":
            state.disposition = bytes(state.header_value)
        state.header_field.clear()
        state.header_value.clear()

    def on_headers_finished() -> None:
        _, options = parse_options_header(state.disposition)
        state.in_file = options.get(b"name") == FIELD.encode()
        if state.in_file:
            state.file_parts += 1
            if state.file_parts > 1:
                raise errors.ValidationError(f"Send exactly one '{FIELD}' field")
            state.filename = options.get(b"filename", b"").decode("utf-8", "replace")

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state.in_file:  # other fields are ignored: the API takes its options as query params
            state.pieces.append(memoryview(data)[start:end])
            state.pending += end - start

    def on_part_end() -> None:
        if state.in_file:
            state.file_ended = True
        state.in_file = False

    def on_end() -> None:
        state.finished = True

    return MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
            "on_end": on_end,
        },
    )


async def file_field(
    content_type: str, body: AsyncIterator[bytes]
) -> AsyncIterator[tuple[str, bytes]]:
    """Yield `(filename, b"")` once the file field begins, then `(filename, block)` as it arrives.

    Raises ValidationError for a body that is not multipart, has no (or two) file fields or ends
    early; `ClientGone` when the client goes away.
    """
    state = _State()
    parser = _parser(_boundary(content_type), state)
    async for chunk in body:
        try:
            parser.write(chunk)
        except errors.AppError:
            raise
        except Exception as exc:  # python-multipart's own parse errors
            raise errors.ValidationError(f"Malformed multipart body: {exc}") from None
        if state.filename is not None and not state.announced:
            state.announced = True
            yield state.filename, b""
        if state.pending and (state.pending >= BLOCK or state.file_ended):
            block = b"".join(state.pieces)
            state.pieces.clear()
            state.pending = 0
            yield state.filename or "", block
    if state.file_parts == 0:
        raise errors.ValidationError(f"The multipart field '{FIELD}' is required")
    if not state.file_ended or not state.finished:
        raise errors.ValidationError("The multipart body ended before its closing boundary")
