"""How folders, scripts and their metadata are laid out as paths in the Git tree.

- A folder is a directory. Each folder made through the API holds an empty `.gitkeep`, so it survives
  when empty (Git does not track empty directories).
- A script is a `.py` file, stored byte-for-byte.
- A script's metadata lives beside it in `<filename>.meta.json`, a small JSON object a person can edit
  with a text editor: `{"display_name": "...", "description": "..."}`. It moves with the script.
  It may also state the JSON Schema of the script's input (`"input_schema": {...}`), which then
  replaces the one read from the code (see `gitscripts.inputs`). With EXECUTOR=dask it may ask for
  worker resources (`"resources": {"GPU": 1}`): its runs then go only to workers that offer them;
  and a script its author knows to be idempotent may be run again when its worker dies
  (`"worker_lost_retries": 2`).
- A script that declares dependencies (a PEP 723 block) has its lock beside it in `<filename>.lock`
  (`tool.py.lock`, uv's own format, see `gitscripts.deps.locks`). It moves and goes with the script;
  it is no script itself, and no lock stands alone.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import dataclass, field
from typing import Any

from gitscripts.deps.locks import LOCK_SUFFIX as LOCK_SUFFIX
from gitscripts.deps.locks import lock_path as lock_path

FOLDER_MARKER = ".gitkeep"
METADATA_SUFFIX = ".meta.json"
SCRIPT_SUFFIX = ".py"
MAX_RETRIES = 10  # runs again after a lost worker, at most (a sidecar's worker_lost_retries)


@dataclass(frozen=True)
class ScriptMetadata:
    display_name: str
    description: str | None = None
    # Written by a person; kept as it is when the API changes the name or description.
    input_schema: dict[str, Any] | None = field(default=None, hash=False)
    # Dask worker resources a run needs (name -> amount), e.g. {"GPU": 1}.
    resources: dict[str, float] | None = field(default=None, hash=False)
    # How often a run whose cluster worker died is run again: only for a script its author
    # knows to be idempotent (None: DASK_WORKER_LOST_RETRIES, 0 by default).
    worker_lost_retries: int | None = None

    def to_bytes(self) -> bytes:
        document: dict[str, Any] = {"display_name": self.display_name}
        if self.description is not None:
            document["description"] = self.description
        if self.input_schema is not None:
            document["input_schema"] = self.input_schema
        if self.resources is not None:
            document["resources"] = self.resources
        if self.worker_lost_retries is not None:
            document["worker_lost_retries"] = self.worker_lost_retries
        return (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


class MetadataError(ValueError):
    """A metadata file that is not the JSON object described above."""


def parse_metadata(raw: bytes) -> ScriptMetadata:
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MetadataError(f"not valid UTF-8 JSON: {exc}") from None
    if not isinstance(document, dict):
        raise MetadataError("must be a JSON object")
    display_name = document.get("display_name")
    description = document.get("description")
    if not isinstance(display_name, str) or not display_name.strip():
        raise MetadataError("display_name must be a non-empty string")
    if description is not None and not isinstance(description, str):
        raise MetadataError("description must be a string or null")
    input_schema = document.get("input_schema")
    if input_schema is not None and not (
        isinstance(input_schema, dict) and input_schema.get("type", "object") == "object"
    ):
        raise MetadataError('input_schema must be a JSON Schema object with "type": "object"')
    resources = document.get("resources")
    if resources is not None and not (
        isinstance(resources, dict)
        and all(
            isinstance(name, str) and name and isinstance(amount, int | float)
            and not isinstance(amount, bool) and 0 < amount < float("inf")
            for name, amount in resources.items()
        )
    ):  # fmt: skip
        raise MetadataError('resources must map names to positive numbers, e.g. {"GPU": 1}')
    retries = document.get("worker_lost_retries")
    if retries is not None and not (
        isinstance(retries, int) and not isinstance(retries, bool) and 0 <= retries <= MAX_RETRIES
    ):
        raise MetadataError(f"worker_lost_retries must be a whole number from 0 to {MAX_RETRIES}")
    unknown = set(document) - {"display_name", "description", "input_schema", "resources",
                               "worker_lost_retries"}  # fmt: skip
    if unknown:
        raise MetadataError(f"unknown keys: {', '.join(sorted(unknown))}")
    return ScriptMetadata(
        display_name=display_name,
        description=description,
        input_schema=input_schema,
        resources=resources,
        worker_lost_retries=retries,
    )


def default_metadata(script_path: str) -> ScriptMetadata:
    """What a script without (valid) metadata shows: its filename as the display name."""
    return ScriptMetadata(display_name=posixpath.basename(script_path))


def metadata_path(script_path: str) -> str:
    return script_path + METADATA_SUFFIX


def script_of(path: str) -> str:
    """The script a file belongs to: itself, or the one its sidecar or lock describes."""
    return path.removesuffix(METADATA_SUFFIX).removesuffix(LOCK_SUFFIX)


def marker_path(folder_path: str) -> str:
    return posixpath.join(folder_path, FOLDER_MARKER)


def join(folder_path: str | None, name: str) -> str:
    return posixpath.join(folder_path, name) if folder_path else name


def parent_of(path: str) -> str | None:
    parent, slash, _ = path.rpartition("/")
    return parent if slash else None


def is_script_path(path: str) -> bool:
    name = posixpath.basename(path)
    return name.endswith(SCRIPT_SUFFIX) and not any(
        part.startswith(".") for part in path.split("/")
    )
