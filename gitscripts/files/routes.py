"""`/api/v1/files`: the original file endpoints, plus `PUT /{key}` (write at an exact key)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from starlette.convertors import PathConvertor, register_url_convertor

from gitscripts import errors
from gitscripts.auth.deps import bearer_of, user_or_anonymous
from gitscripts.files import keys
from gitscripts.files.grants import is_file_token
from gitscripts.files.service import FileService
from gitscripts.index import UserRecord
from gitscripts.logging import bind_user
from gitscripts.services import services_of


class _KeyConvertor(PathConvertor):
    """Like `path`, but also matching line breaks, so a key holding one reaches the key rules
    (400) instead of falling through to a bare 404."""

    regex = "(?s:.*)"


register_url_convertor("filekey", _KeyConvertor())

router = APIRouter(prefix="/api/v1/files", tags=["files"])


async def files_user(request: Request) -> UserRecord | None:
    """Who uses the store: a running script's execution token stands for the user who ran it;
    otherwise the caller, as for executions (anonymous when ALLOW_ANONYMOUS_EXECUTION allows)."""
    bearer = bearer_of(request)
    if bearer is None or not is_file_token(bearer):
        return await user_or_anonymous(request)
    services = services_of(request)
    grant = services.file_grants.grant_for(bearer)
    if grant is None:
        raise errors.InvalidToken("This execution's file token has expired")
    if grant.user_id is None:  # an anonymous run
        return None
    user = services.index.users.get(grant.user_id)
    if user is None:
        raise errors.InvalidToken("The user who ran this script no longer exists")
    bind_user(request.scope, user.login)
    return user


FilesUser = Annotated[UserRecord | None, Depends(files_user)]


async def reader(request: Request) -> None:
    """Who may read a file: anyone who may use the store, or whoever follows a download link
    made for exactly this file (`?link=`) before it expired. A caller who sent credentials is
    judged by them: a stale link in their URL does not sign them out."""
    link = request.query_params.get("link")
    if link is None or bearer_of(request) is not None:
        await files_user(request)
    elif not services_of(request).files.link_allows(link, request.path_params["key"]):
        raise errors.InvalidToken("This download link is not valid (or no longer): make a new one")


def _service(request: Request) -> FileService:
    return services_of(request).files


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


@router.post("/upload", openapi_extra=_MULTIPART_FILE)
async def upload(
    request: Request,
    user: FilesUser,
    prefix: Annotated[str, Query(description="folder-like start of the new key")] = "",
) -> dict[str, Any]:
    """Store the multipart field `file` at `prefix/<random>.<its extension>`."""
    return await _service(request).upload(user, prefix, request)


# Exactly `/api/v1/files`: `/api/v1/files/` stays the key route (an empty key, 400 as before).
@router.get("")
async def list_files(
    request: Request,
    user: FilesUser,
    prefix: Annotated[str, Query(description="only files inside this folder-like prefix")] = "",
    everyone: Annotated[
        bool, Query(alias="all", description="every user's files (admins only)")
    ] = False,
) -> dict[str, Any]:
    """The caller's files, newest first: `{"files": [{"key", "size", "content_type",
    "uploaded_at"}]}`."""
    return await _service(request).list_files(user, prefix, everyone)


@router.get("/{key:filekey}/info")
async def info(key: str, request: Request, user: FilesUser) -> dict[str, Any]:
    """Size and content type of a file, from its metadata only."""
    return await _service(request).info(key)


@router.post("/{key:filekey}/link")
async def download_link(key: str, request: Request, user: FilesUser) -> dict[str, str]:
    """`{"url", "expires_at"}`: a URL that downloads the file without credentials, for
    DOWNLOAD_LINK_SECONDS (a browser follows it and streams the file to disk)."""
    return await _service(request).download_link(key)


@router.get("/{key:filekey}", response_class=StreamingResponse, dependencies=[Depends(reader)])
async def download(
    key: str,
    request: Request,
    # Checked by `reader`; declared here so that /docs shows it.
    link: Annotated[
        str | None, Query(description="from POST /{key}/link, instead of a token")
    ] = None,
) -> StreamingResponse:
    """The file's bytes; a single `Range: bytes=a-b` gives 206 and that part."""
    found = await _service(request).download(key, request.headers.get("range"))
    headers = {
        "Content-Length": str(found.length),
        "Content-Disposition": keys.content_disposition(found.key),
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


@router.put("/{key:filekey}", openapi_extra=_RAW_BYTES)
async def put(key: str, request: Request, user: FilesUser) -> dict[str, Any]:
    """Store the raw request body at exactly `key` (replacing needs ownership or admin)."""
    return await _service(request).put(user, key, request)


@router.delete("/{key:filekey}")
async def delete(key: str, request: Request, user: FilesUser) -> dict[str, str]:
    """Delete a file: its uploader or an admin (a file without an owner: anyone)."""
    return await _service(request).delete(user, key)
