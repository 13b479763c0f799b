"""`GET /api/v1/scripts-manager/scripts/{id}/schema`: what a script's `main(data)` expects."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from gitscripts.auth.deps import CurrentUser
from gitscripts.inputs.service import script_inputs
from gitscripts.services import Lookup, Repo

router = APIRouter(prefix="/api/v1/scripts-manager", tags=["scripts-manager"])


class InputsOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    script_id: int
    revision: str = Field(description="the commit the script was read from")
    path: str = Field(description="the script's path in that commit")
    source: Literal["metadata", "code"] = Field(
        description="`metadata`: stated in the script's .meta.json; `code`: read from the source"
    )
    json_schema: dict[str, Any] = Field(
        alias="schema", description="JSON Schema (draft 2020-12) of the object passed to main"
    )
    example: Any = Field(description="an input to start from: every key, with its default")


@router.get("/scripts/{script_id}/schema", response_model=InputsOut)
def script_schema(
    script_id: int,
    user: CurrentUser,
    lookups: Lookup,
    repo: Repo,
    rev: Annotated[
        str | None, Query(description="a commit id (full or abbreviated), a tag or a branch")
    ] = None,
) -> dict[str, Any]:
    """The input `main(data)` expects, read from the script without running it (the keys it
    reads, a TypedDict, dataclass or pydantic model of `data`, its docstring), or as its metadata
    states it (`"input_schema"` in `<script>.meta.json`, which wins)."""
    inputs = asdict(script_inputs(lookups, repo, script_id, rev))
    inputs["json_schema"] = inputs.pop("schema")
    return inputs
