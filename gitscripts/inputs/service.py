"""A script's input description at a revision: the JSON Schema its metadata states, else the one
read from its code, and the example a person starts from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from gitscripts.index.lookups import Lookups
from gitscripts.inputs.schema import SCHEMA_DIALECT, JSONSchema, example_of, infer_input_schema
from gitscripts.repo import Repository


@dataclass(frozen=True)
class ScriptInputs:
    script_id: int
    revision: str
    path: str
    # "metadata": stated by a person in the sidecar; "code": read from the source.
    source: Literal["metadata", "code"]
    schema: JSONSchema
    example: Any


def script_inputs(
    lookups: Lookups, repo: Repository, script_id: int, revision: str | None
) -> ScriptInputs:
    content, commit_id, path = lookups.script_content(script_id, revision)
    metadata = repo.script_metadata(repo.resolve(commit_id).tree, path)
    if metadata.input_schema is not None:
        schema: JSONSchema = {"$schema": SCHEMA_DIALECT, **metadata.input_schema}
        source: Literal["metadata", "code"] = "metadata"
    else:
        schema = infer_input_schema(content, title=metadata.display_name)
        source = "code"
    return ScriptInputs(
        script_id=script_id,
        revision=commit_id,
        path=path,
        source=source,
        schema=schema,
        example=example_of(schema),
    )
