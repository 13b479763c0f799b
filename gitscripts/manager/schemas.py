from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator


class Creator(BaseModel):
    id: int
    login: str


class FolderOut(BaseModel):
    id: int
    name: str
    path: str
    parent_id: int | None
    created_by: Creator | None
    created_at: str
    updated_at: str
    can_edit: bool
    can_delete: bool


class ScriptOut(BaseModel):
    id: int
    filename: str
    logical_path: str
    display_name: str
    description: str | None
    folder_id: int | None
    created_by: Creator | None
    created_at: str
    updated_at: str
    can_edit: bool
    can_delete: bool


class TreeItem(BaseModel):
    folder: FolderOut
    scripts: list[ScriptOut]
    subfolders: list[TreeItem]


class TreeOut(BaseModel):
    root_scripts: list[ScriptOut]
    root_folders: list[TreeItem]


# The optional commit message of every write (without it, the service words one); its rules are
# `rules.commit_message`'s, for every door.
CommitMessage = Field(
    default=None,
    description="the commit's message (default: one the service words, such as "
    "'Create script geology/a.py')",
)


class FolderCreate(BaseModel):
    name: str = Field(min_length=1, max_length=255)
    parent_id: int | None = None
    message: str | None = CommitMessage


class FolderUpdate(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=255)
    parent_id: int | None = Field(
        default=None, description="Move the folder under this folder (null: to the root)"
    )
    message: str | None = CommitMessage

    @model_validator(mode="after")
    def _something_to_do(self) -> FolderUpdate:
        if self.name is None and "parent_id" not in self.model_fields_set:
            raise ValueError("give a new name, a new parent_id, or both")
        return self


class ScriptFromText(BaseModel):
    filename: str = Field(min_length=1)
    display_name: str = Field(min_length=1, max_length=255)
    content: str
    description: str | None = None
    folder_id: int | None = None
    replace: bool = False
    message: str | None = CommitMessage


class ScriptUpdate(BaseModel):
    display_name: str | None = Field(default=None, min_length=1, max_length=255)
    description: str | None = None
    filename: str | None = Field(default=None, min_length=1)
    content: str | None = None
    folder_id: int | None = Field(
        default=None, description="Move the script into this folder (null: to the root)"
    )
    base_revision: str | None = Field(
        default=None,
        min_length=1,
        description="The revision `content` was edited from: if the script's source has changed "
        "since, 409 SCRIPT_CHANGED and nothing is saved (without it, the last save wins)",
    )
    message: str | None = CommitMessage


class ScriptContent(BaseModel):
    content: str
    revision: str | None = Field(default=None, description="the commit read (only with `rev`)")
    path: str | None = Field(
        default=None,
        description="the script's logical path in that commit: where to run it at `rev` "
        "(only with `rev`; differs from today's after a rename or move)",
    )
    html: str | None = Field(
        default=None,
        description='the source highlighted, for inside `<pre class="hl"><code>` (only with '
        "`highlight=true`)",
    )


class ScriptValidate(BaseModel):
    content: str
    filename: str = Field(default="script.py", min_length=1)


class DeclaredOut(BaseModel):
    requires_python: str | None
    dependencies: list[str]


class LockedSourceOut(BaseModel):
    kind: str
    location: str


class LockedPackageOut(BaseModel):
    name: str
    version: str | None
    source: LockedSourceOut | None


class LockOut(BaseModel):
    path: str
    packages: list[LockedPackageOut]


class EnvironmentOut(BaseModel):
    key: str
    state: Literal["ready", "building", "failed", "not_built"]
    url: str
    workers: dict[str, Literal["ready", "building", "failed"]] | None = None


class DependenciesOut(BaseModel):
    """GET /scripts/{id}/dependencies: see `gitscripts.deps.views`."""

    script_id: int
    revision: str
    path: str
    declared: DeclaredOut | None
    lock: LockOut | None
    environment: EnvironmentOut | None
