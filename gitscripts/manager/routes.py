from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Response, UploadFile, status
from starlette.concurrency import run_in_threadpool

from gitscripts import errors
from gitscripts.auth.deps import CurrentUser
from gitscripts.deps.views import ScriptDependencies
from gitscripts.manager.highlight import highlight_python
from gitscripts.manager.schemas import (
    DependenciesOut,
    FolderCreate,
    FolderOut,
    FolderUpdate,
    ScriptContent,
    ScriptFromText,
    ScriptOut,
    ScriptUpdate,
    ScriptValidate,
    TreeOut,
)
from gitscripts.manager.service import ScriptChange, Unset
from gitscripts.manager.views import FolderView, ScriptView
from gitscripts.services import AppSettings, Dependencies, Lookup, Manager, View

router = APIRouter(prefix="/api/v1/scripts-manager", tags=["scripts-manager"])


def _form_int(value: str | None, field: str) -> int | None:
    # Browsers' multipart forms send "null" or "" for "no folder".
    if value is None or value.strip().lower() in ("", "null", "none"):
        return None
    try:
        return int(value)
    except ValueError:
        raise errors.ValidationError(f"{field} must be an integer", **{field: value}) from None


def _form_bool(value: str, field: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off", ""):
        return False
    raise errors.ValidationError(f"{field} must be true or false", **{field: value})


def _script_bytes(text: str) -> bytes:
    # JSON can carry lone surrogates (`"\ud800"`), which UTF-8 cannot encode: kept as the bytes
    # they would be, they reach the rules' UTF-8 check (400) instead of failing here (500).
    return text.encode("utf-8", "surrogatepass")


# -- folders ----------------------------------------------------------------------------------
@router.post("/folders", status_code=status.HTTP_201_CREATED, response_model=FolderOut)
def create_folder(body: FolderCreate, user: CurrentUser, manager: Manager) -> FolderView:
    return manager.create_folder(user, body.name, body.parent_id, body.message)


@router.get("/folders/{folder_id}", response_model=FolderOut)
def get_folder(folder_id: int, user: CurrentUser, views: View) -> FolderView:
    return views.folder(user, folder_id)


@router.put("/folders/{folder_id}", response_model=FolderOut)
def update_folder(
    folder_id: int, body: FolderUpdate, user: CurrentUser, manager: Manager
) -> FolderView:
    parent_id = body.parent_id if "parent_id" in body.model_fields_set else Unset
    return manager.update_folder(user, folder_id, body.name, parent_id, body.message)


# DELETE has no body a client can count on: its commit message is a query parameter.
MessageQuery = Annotated[
    str | None, Query(description="the commit's message (default: one the service words)")
]


@router.delete("/folders/{folder_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_folder(
    folder_id: int, user: CurrentUser, manager: Manager, message: MessageQuery = None
) -> Response:
    manager.delete_folder(user, folder_id, message)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- scripts ----------------------------------------------------------------------------------
@router.post("/scripts", status_code=status.HTTP_201_CREATED, response_model=ScriptOut)
async def upload_script(
    user: CurrentUser,
    manager: Manager,
    settings: AppSettings,
    display_name: Annotated[str, Form(min_length=1, max_length=255)],
    file: Annotated[UploadFile | None, File()] = None,
    description: Annotated[str | None, Form()] = None,
    folder_id: Annotated[str | None, Form()] = None,
    replace: Annotated[str, Form()] = "false",
    message: Annotated[str | None, Form()] = None,
) -> ScriptView:
    if file is None or not file.filename:
        raise errors.ValidationError("A file with a filename is required", field="file")
    limit = settings.max_script_size
    content = await file.read(limit + 1)
    return await run_in_threadpool(
        manager.save_script,
        user,
        filename=file.filename,
        content=content,
        display_name=display_name,
        description=description,
        folder_id=_form_int(folder_id, "folder_id"),
        replace=_form_bool(replace, "replace"),
        message=message,
    )


@router.post("/scripts-from-text", status_code=status.HTTP_201_CREATED, response_model=ScriptOut)
def script_from_text(body: ScriptFromText, user: CurrentUser, manager: Manager) -> ScriptView:
    return manager.save_script(
        user,
        filename=body.filename,
        content=_script_bytes(body.content),
        display_name=body.display_name,
        description=body.description,
        folder_id=body.folder_id,
        replace=body.replace,
        message=body.message,
    )


@router.post("/validate")
def validate_script(body: ScriptValidate, user: CurrentUser, manager: Manager) -> dict[str, bool]:
    """Whether an upload of this script would be accepted: `{"valid": true}`, or the very error
    the upload would answer. Nothing is saved."""
    manager.validate_script(body.filename, _script_bytes(body.content))
    return {"valid": True}


@router.get("/scripts/{script_id}", response_model=ScriptOut)
def get_script(script_id: int, user: CurrentUser, views: View) -> ScriptView:
    return views.script(user, script_id)


Revision = Annotated[
    str | None, Query(description="a commit id (full or abbreviated), a tag or a branch")
]


@router.get(
    "/scripts/{script_id}/content", response_model=ScriptContent, response_model_exclude_none=True
)
def script_content(
    script_id: int,
    user: CurrentUser,
    lookups: Lookup,
    rev: Revision = None,
    highlight: Annotated[
        bool, Query(description="also `html`: the source highlighted (CSS at /ui/highlight.css)")
    ] = False,
) -> ScriptContent:
    """The script's source; with `rev`, as it was at that revision (and which commit that is)."""
    content, revision, path = lookups.script_content(script_id, rev)
    text = content.decode("utf-8", "replace")
    return ScriptContent(
        content=text,
        revision=None if rev is None else revision,
        path=None if rev is None else path,
        html=highlight_python(text) if highlight else None,
    )


@router.get("/scripts/{script_id}/dependencies", response_model=DependenciesOut)
def script_dependencies(
    script_id: int, user: CurrentUser, dependencies: Dependencies, rev: Revision = None
) -> ScriptDependencies:
    """What the script declares (its PEP 723 block), the packages its lock pins, and the key of
    the environment it runs in; all null for a script without a block."""
    return dependencies.of_script(script_id, rev)


@router.put("/scripts/{script_id}", response_model=ScriptOut)
def update_script(
    script_id: int, body: ScriptUpdate, user: CurrentUser, manager: Manager
) -> ScriptView:
    # Null clears a description or moves to the root; for the other fields it means "unchanged".
    given = body.model_fields_set
    change = ScriptChange(
        display_name=Unset if body.display_name is None else body.display_name,
        description=body.description if "description" in given else Unset,
        filename=Unset if body.filename is None else body.filename,
        content=Unset if body.content is None else _script_bytes(body.content),
        folder_id=body.folder_id if "folder_id" in given else Unset,
        base_revision=Unset if body.base_revision is None else body.base_revision,
    )
    return manager.update_script(user, script_id, change, body.message)


@router.delete("/scripts/{script_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_script(
    script_id: int, user: CurrentUser, manager: Manager, message: MessageQuery = None
) -> Response:
    manager.delete_script(user, script_id, message)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/tree", response_model=TreeOut)
def tree(user: CurrentUser, views: View, rev: Revision = None) -> Response:
    """Every folder and script; with `rev`, the tree as it was then, read-only (`can_edit` and
    `can_delete` false; what no longer exists has `id` null)."""
    # Serialized directly: validating 10,000 scripts through the response model would cost more
    # than building them.
    return Response(views.tree_json(user, rev), media_type="application/json")
