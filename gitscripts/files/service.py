"""Storing, reading and deleting files: keys, ownership, size limit, streaming in both directions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypedDict, TypeVar
from urllib.parse import quote, urlencode

import structlog
from starlette.concurrency import run_in_threadpool

from gitscripts import access, errors
from gitscripts.config import Settings
from gitscripts.files import keys, uploads
from gitscripts.files.links import DownloadLinks
from gitscripts.files.ranges import byte_range
from gitscripts.files.store import FileStore, StagedFile
from gitscripts.index import Index
from gitscripts.timestamps import iso_seconds

log = structlog.get_logger("gitscripts.files")
T = TypeVar("T")

# Multipart framing around the file: a body declaring more than the limit plus this is refused
# before a byte of it is read.
_FRAMING_ALLOWANCE = 1 << 20
# After a refusal, this much more of the body is read and dropped, so a client still sending can
# read the 413 instead of seeing the connection reset under it.
_DRAIN_LIMIT = 64 << 20


class Stored(TypedDict):
    key: str
    size: int


class Uploader(TypedDict):
    id: int
    login: str


class FileInfo(TypedDict):
    key: str
    size: int
    content_type: str
    uploaded_by: Uploader | None
    filename: str | None


class ListedFile(TypedDict):
    key: str
    size: int
    content_type: str
    uploaded_at: str
    filename: str | None


class FileListing(TypedDict):
    files: list[ListedFile]


class DownloadLink(TypedDict):
    url: str
    expires_at: str


class Deleted(TypedDict):
    message: str


@dataclass(frozen=True)
class Incoming:
    """A request body on its way in, and what its headers say about it."""

    body: uploads.RequestBody
    content_type: str  # the Content-Type header ("" when absent)
    declared_length: str | None  # the Content-Length header, as sent


@dataclass(frozen=True)
class Download:
    key: str
    size: int  # of the whole file
    start: int
    length: int
    partial: bool
    content_type: str
    filename: str | None  # the name it was uploaded as, when known
    chunks: AsyncIterator[bytes]


class _Receiver:
    """One file arriving: staged in the store, counted against the limit, committed or discarded."""

    def __init__(self, store: FileStore, limit: int) -> None:
        self.store = store
        self.limit = limit
        self.key: str | None = None
        self.size = 0
        self.staged: StagedFile | None = None
        self.pending = bytearray()
        self.filename: str | None = None  # the name it was uploaded as

    async def open(self, key: str) -> None:
        self.key = key
        self.staged = await _in_store(self.store.stage, key)

    async def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise errors.FileTooLarge(
                f"The file is larger than the limit of {self.limit} bytes", limit=self.limit
            )
        assert self.staged is not None, "open() first"
        if not self.pending and len(data) >= uploads.BLOCK:
            await _in_store(self.staged.write, data)
            return
        self.pending += data
        # The thread pool is entered once per block, not once per network chunk.
        if len(self.pending) >= uploads.BLOCK:
            await self.flush()

    async def flush(self) -> None:
        if self.pending and self.staged is not None:
            block = bytes(self.pending)
            self.pending.clear()
            await _in_store(self.staged.write, block)

    def discard(self) -> None:
        """Synchronous on purpose: it must also run when the request task is being cancelled.
        It never raises: it runs while another error is on its way to the client."""
        if self.staged is not None:
            try:
                self.staged.discard()
            except Exception as exc:
                log.error("file_discard_failed", key=self.key, error=str(exc))
            self.staged = None


class FileService:
    def __init__(self, settings: Settings, index: Index, store: FileStore) -> None:
        self.settings = settings
        self.index = index
        self.store = store
        self.links = DownloadLinks(settings.secret_key, settings.download_link_seconds)

    # -- writing ------------------------------------------------------------------------------
    async def upload(self, user: access.User | None, prefix: str, incoming: Incoming) -> Stored:
        """A multipart upload to `prefix/<random>.<extension>`."""
        prefix = keys.check_prefix(prefix)
        self._refuse_declared_oversize(incoming, _FRAMING_ALLOWANCE)
        receiver = _Receiver(self.store, self.settings.max_file_size)
        body = incoming.body

        async def receive() -> None:
            async for filename, block in uploads.file_field(incoming.content_type, body.chunks()):
                if receiver.key is None:
                    receiver.filename = keys.original_name(filename)
                    await receiver.open(keys.new_key(prefix, filename))
                await receiver.write(block)

        return await self._receive(user, receiver, receive(), body)

    async def put(self, user: access.User | None, key: str, incoming: Incoming) -> Stored:
        """The request body, as is, at exactly `key` (a new file, or one the caller may replace)."""
        key = keys.check_key(key)
        self._refuse_declared_oversize(incoming, 0)
        if await _in_store(self.store.exists, key):
            self._check_owner(user, key, "replace")
        receiver = _Receiver(self.store, self.settings.max_file_size)
        body = incoming.body

        async def receive() -> None:
            await receiver.open(key)
            async for chunk in body.chunks():
                await receiver.write(chunk)

        return await self._receive(user, receiver, receive(), body)

    async def _receive(
        self,
        user: access.User | None,
        receiver: _Receiver,
        receiving: Coroutine[Any, Any, None],
        body: uploads.RequestBody,
    ) -> Stored:
        try:
            await receiving
            await receiver.flush()
        except asyncio.CancelledError:
            receiver.discard()
            raise
        except uploads.ClientGone:
            await run_in_threadpool(receiver.discard)
            raise errors.ValidationError(
                "The upload was interrupted: the client disconnected"
            ) from None
        except BaseException as exc:
            await run_in_threadpool(receiver.discard)
            if isinstance(exc, errors.FileTooLarge):
                await body.drain(_DRAIN_LIMIT)
            raise
        assert receiver.key is not None and receiver.staged is not None
        key = receiver.key
        staged = receiver.staged
        # The owner is recorded before the file appears, so a file is never visible ownerless; a
        # replaced file keeps the owner it has (an admin replacing it does not take it over).
        claim, owner_id = self.index.files.claim(
            key,
            user.id if user else None,
            lambda owner: access.may_change_file(user, owner),
            receiver.filename,
        )
        if claim == "refused":  # another writer of the same new key claimed it first
            await run_in_threadpool(receiver.discard)
            raise errors.NotFileOwner(
                f"Only the owner of file '{key}' or an admin may replace it", key=key
            )
        try:
            await _in_store(staged.commit)
        except BaseException:
            if claim == "new":
                self.index.files.remove(key)
            await run_in_threadpool(receiver.discard)
            raise
        if claim == "kept":  # a replacement: a delete may have raced it (a new key had no file)
            self.index.files.keep(key, owner_id, receiver.filename)
        log.info("file_stored", key=key, size=receiver.size, user=user.login if user else None)
        return {"key": key, "size": receiver.size}

    def _refuse_declared_oversize(self, incoming: Incoming, allowance: int) -> None:
        declared = incoming.declared_length or ""
        limit = self.settings.max_file_size
        if declared.isdigit() and int(declared) > limit + allowance:
            raise errors.FileTooLarge(
                f"The file is larger than the limit of {limit} bytes", limit=limit
            )

    # -- reading ------------------------------------------------------------------------------
    async def info(self, key: str) -> FileInfo:
        key = keys.check_key(key)
        size = await _in_store(self.store.size, key)
        record = self.index.files.at(key)
        return {
            "key": key,
            "size": size,
            "content_type": keys.content_type(key),
            "uploaded_by": self.index.users.person(record.owner_id if record else None),
            "filename": record.filename if record else None,
        }

    async def list_files(
        self, user: access.User | None, prefix: str, everyone: bool
    ) -> FileListing:
        """The caller's files under the folder-like `prefix`, newest first; with `everyone`, an
        admin's view of every file with a record. Who owns a file is known only from its record
        in the index, so a file put into the store from outside is never listed."""
        if user is None:
            raise errors.NotAuthenticated("Listing files needs a token: files are listed by owner")
        if everyone and not access.may_list_everyones_files(user):
            raise errors.PermissionDenied("Only an admin may list everyone's files")
        prefix = keys.check_prefix(prefix)
        records = [
            record
            for record in (
                self.index.files.all() if everyone else self.index.files.owned_by(user.id)
            )
            if keys.is_under(record.key, prefix)
        ]
        if not records:
            return {"files": []}
        # The store says which files are there (a record outlives a file deleted behind the
        # service's back) and how large they are now: one listing per folder, not one request
        # per file.
        folders = sorted({record.key.rpartition("/")[0] for record in records})
        present = await _in_store(self.store.sizes_in, folders)
        listed: list[ListedFile] = [
            {
                "key": record.key,
                "size": present[record.key],
                "content_type": keys.content_type(record.key),
                "uploaded_at": record.created_at,
                "filename": record.filename,
            }
            for record in records
            if record.key in present
        ]
        listed.sort(key=lambda item: (item["uploaded_at"], item["key"]), reverse=True)
        return {"files": listed}

    async def download_link(
        self, key: str, request_base_url: str, original_name: bool = False
    ) -> DownloadLink:
        """An absolute URL that downloads `key` without credentials for a short while: at
        PUBLIC_URL when it is set, else at the address the request came to (the link is for
        whoever asked, wherever they reach the service from). With `original_name`, the file
        it saves is named as it was uploaded."""
        key = keys.check_key(key)
        await _in_store(self.store.size, key)  # an unknown key is 404 now, not when followed
        link, expires = self.links.issue(key)
        path = "/".join(quote(part, safe="") for part in key.split("/"))
        base = (self.settings.public_url or request_base_url).rstrip("/")
        query = {"link": link, **({"name": "original"} if original_name else {})}
        return {
            "url": f"{base}/api/v1/files/{path}?{urlencode(query)}",
            "expires_at": iso_seconds(expires),
        }

    def link_allows(self, link: str, key: str) -> bool:
        return self.links.valid(link, keys.check_key(key))

    async def download(self, key: str, range_header: str | None) -> Download:
        key = keys.check_key(key)
        size = await _in_store(self.store.size, key)
        wanted = byte_range(range_header, size)
        start, length = wanted if wanted is not None else (0, size)
        handle = await _in_store(self.store.open_at, key, start)
        record = self.index.files.at(key)
        return Download(
            key=key,
            size=size,
            start=start,
            length=length,
            partial=wanted is not None,
            content_type=keys.content_type(key),
            filename=record.filename if record else None,
            chunks=self._chunks(handle, length),
        )

    async def _chunks(self, handle: Any, length: int) -> AsyncIterator[bytes]:
        chunks = self.store.read_chunks(handle, length)
        try:
            while (chunk := await run_in_threadpool(next, chunks, None)) is not None:
                yield chunk
        finally:
            handle.close()

    # -- deleting -----------------------------------------------------------------------------
    async def delete(self, user: access.User | None, key: str) -> Deleted:
        key = keys.check_key(key)
        await _in_store(self.store.size, key)  # an unknown key is 404 before 403
        self._check_owner(user, key, "delete")
        await _in_store(self.store.delete, key)
        self.index.files.remove(key)
        return {"message": f"File '{key}' deleted successfully"}

    def _check_owner(self, user: access.User | None, key: str, action: str) -> None:
        record = self.index.files.at(key)
        if access.may_change_file(user, record.owner_id if record else None):
            return
        raise errors.NotFileOwner(
            f"Only the owner of file '{key}' or an admin may {action} it", key=key
        )


async def _in_store(call: Callable[..., T], *args: Any) -> T:
    """Run a blocking store call in the thread pool; a failure of the store itself (a full disk,
    a missing bucket, refused credentials) becomes FILE_SYSTEM_ERROR, with the detail in the log
    rather than in the answer (it may name hosts and paths)."""
    try:
        return await run_in_threadpool(call, *args)
    except OSError as exc:
        log.error("file_store_failed", error_type=type(exc).__name__, error=str(exc))
        raise errors.FileSystemError(
            "The file store failed; the service log has the details"
        ) from None
