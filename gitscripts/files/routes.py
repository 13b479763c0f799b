"""`/api/v1/files`: the original file endpoints, plus `PUT /{key}` (write at an exact key).

Keys may hold any character, line breaks too, so the key routes use the `filekey` path convertor;
`files_router()` registers it before it declares them (the app factory builds the router).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from starlette.convertors import CONVERTOR_TYPES, PathConvertor, register_url_convertor

from gitscripts.auth.deps import FileReader, FilesUser
from gitscripts.files import keys, uploads
from gitscripts.files.service import (
    Deleted,
    DownloadLink,
    FileInfo,
    FileListing,
    Incoming,
    Stored,
)
from gitscripts.services import Files

PREFIX = "/api/v1/files"
KEY = "{key:filekey}"


class _KeyConvertor(PathConvertor):
    """Like `path`, but also matching line breaks, so a key holding one reaches the key rules
    (400) instead of falling through to a bare 404."""

    regex = "(?s:.*)"


def _incoming(request: Request) -> Incoming:
    return Incoming(
        body=uploads.RequestBody(request.receive),
        content_type=request.headers.get("content-type", ""),
        declared_length=request.headers.get("content-length"),
    )


# The bodies are read as streams, not parsed by FastAPI: describe them for /docs by hand.
_MULTIPART_FILE = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}
_RAW_BYTES = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


async def upload(
    request: Request,
    user: FilesUser,
    files: Files,
    prefix: Annotated[str, Query(description="folder-like start of the new key")] = "",
) -> Stored:
    """Store the multipart field `file` at `prefix/<random>.<its extension>`."""
    return await files.upload(user, prefix, _incoming(request))


async def list_files(
    user: FilesUser,
    files: Files,
    prefix: Annotated[str, Query(description="only files inside this folder-like prefix")] = "",
    everyone: Annotated[
        bool, Query(alias="all", description="every user's files (admins only)")
    ] = False,
) -> FileListing:
    """The caller's files, newest first: `{"files": [{"key", "size", "content_type",
    "uploaded_at"}]}`."""
    return await files.list_files(user, prefix, everyone)


async def info(key: str, user: FilesUser, files: Files) -> FileInfo:
    """Size and content type of a file, from its metadata only."""
    return await files.info(key)


# `?name=original`: the download is saved under the name the file was uploaded as. Without it the
# saved name stays the key's last segment, as the original service answered.
_NAME = Annotated[
    Literal["key", "original"],
    Query(description="save as the key's last segment, or as the name it was uploaded as"),
]


async def download_link(
    key: str, request: Request, user: FilesUser, files: Files, name: _NAME = "key"
) -> DownloadLink:
    """`{"url", "expires_at"}`: an absolute URL that downloads the file without credentials, for
    DOWNLOAD_LINK_SECONDS (a browser follows it and streams the file to disk)."""
    return await files.download_link(key, str(request.base_url), name == "original")


async def download(
    key: str,
    request: Request,
    reader: FileReader,
    files: Files,
    # Checked by `FileReader`; declared here so that /docs shows it.
    link: Annotated[
        str | None, Query(description="from POST /{key}/link, instead of a token")
    ] = None,
    name: _NAME = "key",
) -> StreamingResponse:
    """The file's bytes; a single `Range: bytes=a-b` gives 206 and that part."""
    found = await files.download(key, request.headers.get("range"))
    headers = {
        "Content-Length": str(found.length),
        "Content-Disposition": keys.content_disposition(
            found.key, found.filename if name == "original" else None
        ),
        "Accept-Ranges": "bytes",
        # The type comes from the key's name (`text/html` for `x.html`): a browser must not
        # second-guess it into something it would run.
        "X-Content-Type-Options": "nosniff",
    }
    if found.partial:
        end = found.start + found.length - 1
        headers["Content-Range"] = f"bytes {found.start}-{end}/{found.size}"
    return StreamingResponse(
        found.chunks,
        status_code=206 if found.partial else 200,
        media_type=found.content_type,
        headers=headers,
    )


async def put(key: str, request: Request, user: FilesUser, files: Files) -> Stored:
    """Store the raw request body at exactly `key` (replacing needs ownership or admin)."""
    return await files.put(user, key, _incoming(request))


async def delete(key: str, user: FilesUser, files: Files) -> Deleted:
    """Delete a file: its uploader or an admin (a file without an owner: anyone)."""
    return await files.delete(user, key)


# The answers are plain JSON objects in /docs, as they always were: not the TypedDicts' schemas.
_OBJECT = dict[str, Any]


def files_router() -> APIRouter:
    if "filekey" not in CONVERTOR_TYPES:
        register_url_convertor("filekey", _KeyConvertor())
    router = APIRouter(prefix=PREFIX, tags=["files"])
    router.add_api_route(
        "/upload", upload, methods=["POST"], response_model=_OBJECT, openapi_extra=_MULTIPART_FILE
    )
    # Exactly `/api/v1/files`: `/api/v1/files/` stays the key route (an empty key, 400 as before).
    router.add_api_route("", list_files, methods=["GET"], response_model=_OBJECT)
    router.add_api_route(f"/{KEY}/info", info, methods=["GET"], response_model=_OBJECT)
    router.add_api_route(
        f"/{KEY}/link", download_link, methods=["POST"], response_model=dict[str, str]
    )
    router.add_api_route(f"/{KEY}", download, methods=["GET"], response_class=StreamingResponse)
    router.add_api_route(
        f"/{KEY}", put, methods=["PUT"], response_model=_OBJECT, openapi_extra=_RAW_BYTES
    )
    router.add_api_route(f"/{KEY}", delete, methods=["DELETE"], response_model=dict[str, str])
    return router
