"""History, diffs, revisions and tags under /api/v1/scripts-manager: thin, one service call each."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, Field

from gitscripts.auth.deps import CurrentUser
from gitscripts.history.service import (
    CommitDetail,
    DeletedScript,
    DeletedScriptView,
    Log,
    ScriptBlame,
    ScriptDiff,
    ScriptHistory,
    ScriptTagView,
    TagView,
)
from gitscripts.manager.schemas import CommitMessage, ScriptOut
from gitscripts.manager.views import RestoredScript
from gitscripts.services import History, Manager

router = APIRouter(prefix="/api/v1/scripts-manager", tags=["history"])


Limit = Annotated[int, Query(ge=1, le=200, description="how many, 1..200")]
Before = Annotated[
    str | None,
    Query(description="cursor: the `next_before` of the previous page (any revision works)"),
]
Revision = Annotated[str | None, Query(description="a commit id, a tag or a branch")]


class RestoreIn(BaseModel):
    revision: str = Field(min_length=1, description="the revision whose version to restore")
    message: str | None = CommitMessage


class RestoreOut(ScriptOut):
    revision: str
    restored_from: str


class RestoreDeletedIn(BaseModel):
    message: str | None = CommitMessage


class RestoreAtIn(BaseModel):
    path: str = Field(min_length=1, description="where the script was, e.g. 'geology/calc.py'")
    revision: str = Field(min_length=1, description="a revision at which it was there")
    message: str | None = CommitMessage


class TagIn(BaseModel):
    name: str = Field(min_length=1, max_length=255)
    revision: str = Field(min_length=1)
    message: str | None = Field(default=None, max_length=10_000)


class TagMove(BaseModel):
    revision: str = Field(min_length=1)
    message: str | None = Field(default=None, max_length=10_000)


# -- one script -----------------------------------------------------------------------------------
@router.get("/scripts/{script_id}/history", response_model=dict[str, Any])
def script_history(
    script_id: int, user: CurrentUser, history: History, limit: Limit = 50, before: Before = None
) -> ScriptHistory:
    """The script's versions, newest first, following renames and moves."""
    return history.script_history(script_id, limit, before)


@router.get("/scripts/{script_id}/diff", response_model=dict[str, Any])
def script_diff(
    script_id: int,
    user: CurrentUser,
    history: History,
    from_rev: Annotated[
        str | None,
        Query(alias="from", description="a revision; empty (`from=`): against nothing"),
    ] = None,
    to_rev: Annotated[str | None, Query(alias="to")] = None,
) -> ScriptDiff:
    """The script between two revisions; by default its previous version against the current."""
    return history.script_diff(script_id, from_rev, to_rev)


@router.get("/scripts/{script_id}/blame", response_model=dict[str, Any])
def script_blame(
    script_id: int, user: CurrentUser, history: History, rev: Revision = None
) -> ScriptBlame:
    """Each line of the script at `rev` (default: `main`) with the commit that last changed it."""
    return history.script_blame(script_id, rev)


@router.get("/scripts/{script_id}/tags", response_model=list[dict[str, Any]])
def script_tags(script_id: int, user: CurrentUser, history: History) -> list[ScriptTagView]:
    """The tags at which the script existed, with its path at each."""
    return history.script_tags(user, script_id)


@router.post("/scripts/{script_id}/restore", response_model=RestoreOut)
def restore_script(
    script_id: int, body: RestoreIn, user: CurrentUser, manager: Manager
) -> RestoredScript:
    return manager.restore_script(user, script_id, body.revision, body.message)


# -- deleted scripts ------------------------------------------------------------------------------
@router.get("/deleted", response_model=list[dict[str, Any]])
def deleted_scripts(
    user: CurrentUser,
    history: History,
    folder: Annotated[
        str | None, Query(description="a folder's path: the scripts deleted inside it")
    ] = None,
) -> list[DeletedScriptView]:
    """Scripts deleted inside a folder (default: anywhere), most recently deleted first."""
    return history.deleted_scripts(user, folder)


@router.get("/deleted/{script_id}", response_model=dict[str, Any])
def deleted_script(script_id: int, user: CurrentUser, history: History) -> DeletedScript:
    """One deleted script, with its last content."""
    return history.deleted_script(user, script_id)


@router.post(
    "/deleted/{script_id}/restore", status_code=status.HTTP_201_CREATED, response_model=RestoreOut
)
def restore_deleted(
    script_id: int, user: CurrentUser, manager: Manager, body: RestoreDeletedIn | None = None
) -> RestoredScript:
    """The deleted script back, under its old id, as it was when it was deleted."""
    return manager.restore_deleted(user, script_id, body.message if body else None)


@router.post("/deleted/restore", status_code=status.HTTP_201_CREATED, response_model=RestoreOut)
def restore_deleted_at(body: RestoreAtIn, user: CurrentUser, manager: Manager) -> RestoredScript:
    """The script that was at `path` in `revision` back (its old id when it is known)."""
    return manager.restore_deleted_at(user, body.path, body.revision, body.message)


# -- the repository -------------------------------------------------------------------------------
@router.get("/history", response_model=dict[str, Any])
def log(
    user: CurrentUser,
    history: History,
    path: Annotated[str | None, Query(description="only commits that changed this path")] = None,
    limit: Limit = 50,
    before: Before = None,
) -> Log:
    return history.log(path, limit, before)


@router.get("/commits/{rev:path}", response_model=dict[str, Any])
def commit_detail(rev: str, user: CurrentUser, history: History) -> CommitDetail:
    return history.commit_detail(rev)


# -- tags -----------------------------------------------------------------------------------------
@router.get("/tags", response_model=list[dict[str, Any]])
def list_tags(user: CurrentUser, history: History) -> list[TagView]:
    return history.tags(user)


@router.post("/tags", status_code=status.HTTP_201_CREATED, response_model=dict[str, Any])
def create_tag(body: TagIn, user: CurrentUser, history: History) -> TagView:
    return history.create_tag(user, body.name, body.revision, body.message)


@router.put("/tags/{name:path}", response_model=dict[str, Any])
def move_tag(name: str, body: TagMove, user: CurrentUser, history: History) -> TagView:
    return history.move_tag(user, name, body.revision, body.message)


@router.delete("/tags/{name:path}", status_code=status.HTTP_204_NO_CONTENT)
def delete_tag(name: str, user: CurrentUser, history: History) -> Response:
    history.delete_tag(user, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
