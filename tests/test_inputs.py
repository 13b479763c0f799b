"""A script's input description (`GET .../scripts/{id}/schema`), through the HTTP API: read from
the code without running it, at any revision, or stated in the script's metadata."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import Caller, commit_behind_the_service, git
from tests.test_git_http import Server, _git_home, server  # noqa: F401 - the real git server

API = "/api/v1/scripts-manager"
DIALECT = "https://json-schema.org/draft/2020-12/schema"

KEYS_READ = b'''"""Module docstring: not used when main has one."""


def main(data):
    """Sum the rates of some wells.

    Keys:
        rate (float): the rate in m3/d
        wells: the names of the wells
    """
    rate = float(data["rate"])
    wells = data.get("wells", ["A-1", "B-2"])
    scale = data.get("scale", 1.5)
    if "verbose" in data:
        print(data["verbose"])
    label = data["label"]
    return {"total": rate * len(wells) * scale, "label": label}
'''

TYPED_DICT = b'''from typing import Literal, NotRequired, TypedDict


class Point(TypedDict):
    x: float
    y: float


class Inputs(TypedDict):
    """Where and how to sample."""

    origin: Point
    "the first point"
    method: Literal["linear", "cubic"]
    steps: NotRequired[int]
    names: list[str] | None


def main(data: Inputs) -> dict:
    return {"method": data["method"], "seed": data["seed"]}
'''

DATACLASS = b"""from dataclasses import dataclass, field


@dataclass
class Params:
    pressure: float
    unit: str = "bar"
    wells: list[str] = field(default_factory=list)
    limit: int = field(default=10)


def main(data):
    params = Params(**data)
    return {"unit": params.unit}
"""

PYDANTIC = b"""from pydantic import BaseModel, Field


class Request(BaseModel):
    depth: float = Field(..., description="metres below the surface", gt=0)
    porosity: float = Field(0.2, description="a fraction")


def main(data):
    request = Request.model_validate(data)
    return {"depth": request.depth}
"""


def schema_of(caller: Caller, script_id: int, **params: str) -> dict[str, Any]:
    reply = caller.get(f"{API}/scripts/{script_id}/schema", params=params)
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_the_keys_main_reads_make_the_schema_with_defaults_types_and_docs(alice: Caller) -> None:
    script = alice.upload("rates.py", KEYS_READ, display_name="Rates")
    answer = schema_of(alice, script["id"])
    head = alice.get(f"{API}/history", params={"limit": 1}).json()["commits"][0]["revision"]
    assert answer["script_id"] == script["id"]
    assert answer["revision"] == head
    assert answer["path"] == "rates.py"
    assert answer["source"] == "code"
    assert answer["schema"] == {
        "$schema": DIALECT,
        "type": "object",
        "title": "Rates",
        "description": (
            "Sum the rates of some wells.\n\nKeys:\n    rate (float): the rate in m3/d\n"
            "    wells: the names of the wells"
        ),
        "properties": {
            "rate": {"type": "number", "description": "the rate in m3/d"},
            "wells": {
                "default": ["A-1", "B-2"],
                "type": "array",
                "description": "the names of the wells",
            },
            "scale": {"default": 1.5, "type": "number"},
            "verbose": {},
            "label": {},
        },
        "required": ["rate", "label"],
    }
    assert answer["example"] == {
        "rate": 0.0,
        "wells": ["A-1", "B-2"],
        "scale": 1.5,
        "verbose": None,
        "label": None,
    }


def test_a_typed_dict_annotation_describes_data_and_is_accepted_as_main(alice: Caller) -> None:
    # A TypedDict is a dict at run time: the rules take `main(data: Inputs)` like `main(data: dict)`.
    script = alice.upload("sample.py", TYPED_DICT)
    schema = schema_of(alice, script["id"])["schema"]
    assert schema["description"] == "Where and how to sample."
    assert schema["properties"] == {
        "origin": {
            "type": "object",
            "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
            "required": ["x", "y"],
            "description": "the first point",
        },
        "method": {"enum": ["linear", "cubic"]},
        "steps": {"type": "integer"},
        "names": {"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}]},
        "seed": {},  # read by main but not in the TypedDict
    }
    assert schema["required"] == ["origin", "method", "names", "seed"]
    assert schema_of(alice, script["id"])["example"] == {
        "origin": {"x": 0.0, "y": 0.0},
        "method": "linear",
        "steps": 0,
        "names": [],
        "seed": None,
    }
    # Any other class is still refused as the annotation of main's argument.
    other = TYPED_DICT.replace(b'(TypedDict):\n    """Where', b':\n    """Where')
    reply = alice.post(f"{API}/validate", json={"content": other.decode(), "filename": "s.py"})
    assert reply.status_code == 400, reply.text
    assert reply.json()["error_code"] == "SCRIPT_MISSING_MAIN"


def test_a_dataclass_or_pydantic_model_built_from_data_describes_it(alice: Caller) -> None:
    dataclass = schema_of(alice, alice.upload("dc.py", DATACLASS)["id"])
    assert dataclass["schema"]["properties"] == {
        "pressure": {"type": "number"},
        "unit": {"type": "string", "default": "bar"},
        "wells": {"type": "array", "items": {"type": "string"}},
        "limit": {"type": "integer", "default": 10},
    }
    assert dataclass["schema"]["required"] == ["pressure"]
    assert dataclass["example"] == {"pressure": 0.0, "unit": "bar", "wells": [], "limit": 10}

    # pydantic is not installed for scripts here, and need not be: the script is never run.
    model = schema_of(alice, alice.upload("pd.py", PYDANTIC)["id"])["schema"]
    assert model["properties"] == {
        "depth": {"type": "number", "description": "metres below the surface"},
        "porosity": {"type": "number", "default": 0.2, "description": "a fraction"},
    }
    assert model["required"] == ["depth"]


def test_the_schema_is_read_without_running_the_script(alice: Caller, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    hostile = f"open({str(marker)!r}, 'w').close()\n\ndef main(data):\n    return data['x']\n"
    script = alice.upload("hostile.py", hostile.encode())
    assert schema_of(alice, script["id"])["schema"]["required"] == ["x"]
    assert not marker.exists()


def test_the_schema_at_a_revision_is_the_one_of_that_version(alice: Caller) -> None:
    script = alice.upload("v.py", b"def main(data):\n    return {'a': data['old']}\n")
    first = schema_of(alice, script["id"])["revision"]
    reply = alice.put(
        f"{API}/scripts/{script['id']}",
        json={"content": "def main(data):\n    return {'a': data.get('new', 2)}\n"},
    )
    assert reply.status_code == 200, reply.text
    assert schema_of(alice, script["id"])["example"] == {"new": 2}
    then = schema_of(alice, script["id"], rev=first[:10])
    assert then["revision"] == first
    assert then["example"] == {"old": None}
    assert then["schema"]["required"] == ["old"]


def test_a_schema_stated_in_the_metadata_wins_and_survives_api_edits(
    alice: Caller, data_dir: Path, tmp_path: Path
) -> None:
    script = alice.upload("stated.py", b"def main(data):\n    return {'a': data['a']}\n")
    stated = {
        "type": "object",
        "properties": {"well": {"type": "string", "default": "A-1"}},
        "required": ["well"],
    }
    sidecar = {"display_name": "Stated", "input_schema": stated, "resources": {"GPU": 1}}
    commit_behind_the_service(
        data_dir, tmp_path / "work", {"stated.py.meta.json": json.dumps(sidecar).encode()}
    )
    answer = schema_of(alice, script["id"])
    assert answer["source"] == "metadata"
    assert answer["schema"] == {"$schema": DIALECT, **stated}
    assert answer["example"] == {"well": "A-1"}

    # Renaming the script and changing its description through the API keep what a person wrote.
    reply = alice.put(
        f"{API}/scripts/{script['id']}",
        json={"display_name": "Renamed", "description": "now described", "filename": "s2.py"},
    )
    assert reply.status_code == 200, reply.text
    answer = schema_of(alice, script["id"])
    assert answer["source"] == "metadata"
    assert answer["path"] == "s2.py"
    assert answer["schema"]["properties"] == stated["properties"]
    assert alice.get(f"{API}/scripts/{script['id']}").json()["display_name"] == "Renamed"

    # So does replacing its content by a new upload, which names a display name of its own.
    replaced = alice.upload(
        "s2.py", b"def main(data):\n    return {'b': data['a']}\n", display_name="Again",
        replace=True,
    )  # fmt: skip
    assert replaced["id"] == script["id"]
    answer = schema_of(alice, script["id"])
    assert (answer["source"], answer["schema"]["properties"]) == ("metadata", stated["properties"])
    kept = json.loads(git(data_dir, "show", "main:s2.py.meta.json"))
    assert kept == {"display_name": "Again", "input_schema": stated, "resources": {"GPU": 1}}


def test_bad_requests_for_a_schema_get_the_unified_error(alice: Caller, client: Any) -> None:
    script = alice.upload("ok.py")

    def error(reply: Any, status: int, code: str) -> None:
        assert reply.status_code == status, reply.text
        assert reply.json()["error_code"] == code
        assert set(reply.json()) == {"error_code", "message", "details"}

    error(alice.get(f"{API}/scripts/999/schema"), 404, "SCRIPT_NOT_FOUND")
    error(alice.get(f"{API}/scripts/{script['id']}/schema?rev=main..x"), 400, "INVALID_REVISION")
    error(
        alice.get(f"{API}/scripts/{script['id']}/schema?rev={'f' * 40}"), 404, "REVISION_NOT_FOUND"
    )
    error(client.get(f"{API}/scripts/{script['id']}/schema"), 401, "NOT_AUTHENTICATED")


def test_a_pushed_input_schema_is_checked_like_the_rest_of_the_metadata(
    server: Server,  # noqa: F811 - the imported fixture
) -> None:
    """Through the real git client: a valid `input_schema` lands and is served; one that is not
    an object schema refuses the push, and main is not changed."""
    clone = server.clone("alice")
    clone.write("pushed_schema.py", b"def main(data):\n    return {'a': data['a']}\n")
    sidecar = {"display_name": "Pushed", "input_schema": {"type": "object", "required": ["w"]}}
    clone.write("pushed_schema.py.meta.json", json.dumps(sidecar).encode())
    clone.commit("a script with its input stated")
    pushed = clone.push()
    assert pushed.returncode == 0, pushed.stderr
    script = server.script("alice", "pushed_schema.py")
    assert script is not None
    answer = server.api("alice", "GET", f"{API}/scripts/{script['id']}/schema").json()
    assert answer["source"] == "metadata"
    assert answer["schema"]["required"] == ["w"]

    clone.write("pushed_schema.py.meta.json", b'{"display_name": "P", "input_schema": [1]}')
    clone.commit("not a schema")
    refused = clone.push()
    assert refused.returncode != 0
    assert "input_schema must be a JSON Schema object" in refused.stderr
    assert server.api("alice", "GET", f"{API}/scripts/{script['id']}/schema").json() == answer
    # So are the cluster's keys: worker resources, and reruns after a lost worker.
    for stated, said in (
        ('"resources": {"GPU": -1}', "resources must map names to positive numbers"),
        ('"worker_lost_retries": 99', "worker_lost_retries must be a whole number from 0 to 10"),
        ('"worker_lost_retries": true', "worker_lost_retries must be a whole number"),
    ):
        clone.write("pushed_schema.py.meta.json", f'{{"display_name": "P", {stated}}}'.encode())
        clone.commit(f"bad: {stated}")
        refused = clone.push()
        assert refused.returncode != 0 and said in refused.stderr, refused.stderr
