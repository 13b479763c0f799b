"""Code search (`GET /api/v1/scripts-manager/search`) through the HTTP API: git grep over the tree
of a revision, with script ids, a result cap, a timeout and the unified errors."""

from __future__ import annotations

from typing import Any

import pytest

from gitscripts.search import service
from tests.conftest import Caller

API = "/api/v1/scripts-manager"

WELLS = b'''"""Porosity of the wells."""


def main(data):
    porosity = data.get("POROSITY", 0.2)
    return {"porosity": porosity}
'''


def search(caller: Caller, **params: Any) -> dict[str, Any]:
    reply = caller.get(f"{API}/search", params=params)
    assert reply.status_code == 200, reply.text
    return reply.json()


def found(answer: dict[str, Any]) -> list[tuple[str, int | None, int, str]]:
    return [(m["path"], m["script_id"], m["line"], m["text"]) for m in answer["matches"]]


def test_search_finds_lines_of_scripts_with_their_ids(alice: Caller) -> None:
    geo = alice.folder("geo")
    wells = alice.upload("wells.py", WELLS, folder_id=geo["id"], description="porosity in meta")
    other = alice.upload("other.py", b"def main(data):\n    return {}\n")
    answer = search(alice, q="porosity")
    head = alice.get(f"{API}/history", params={"limit": 1}).json()["commits"][0]["revision"]
    assert answer["revision"] == head
    # Case does not matter by default; the sidecar's description is not code and is not searched.
    assert found(answer) == [
        ("geo/wells.py", wells["id"], 1, '"""Porosity of the wells."""'),
        ("geo/wells.py", wells["id"], 5, '    porosity = data.get("POROSITY", 0.2)'),
        ("geo/wells.py", wells["id"], 6, '    return {"porosity": porosity}'),
    ]
    assert answer["truncated"] is False
    assert answer["timed_out"] is False
    assert [m["line"] for m in search(alice, q="POROSITY", case_sensitive=True)["matches"]] == [5]
    assert [m["line"] for m in search(alice, q=r"^def main\(", regex=True)["matches"]] == [4, 1]
    assert {m["script_id"] for m in search(alice, q="def main")["matches"]} == {
        wells["id"],
        other["id"],
    }
    assert search(alice, q="nothing like this")["matches"] == []
    # Text that looks like an option or a revision is only ever text to find.
    for query in ("--output=x", "-e", "HEAD~1", "main..HEAD"):
        assert search(alice, q=query)["matches"] == []


def test_search_at_an_old_revision_links_to_the_script_it_became(alice: Caller) -> None:
    script = alice.upload("old.py", b"def main(data):\n    return {'legacy_key': 1}\n")
    first = alice.get(f"{API}/history", params={"limit": 1}).json()["commits"][0]["revision"]
    reply = alice.put(
        f"{API}/scripts/{script['id']}",
        json={"filename": "new.py", "content": "def main(data):\n    return {'fresh_key': 1}\n"},
    )
    assert reply.status_code == 200, reply.text
    assert search(alice, q="legacy_key")["matches"] == []
    then = search(alice, q="legacy_key", rev=first[:8])
    assert then["revision"] == first
    assert found(then) == [("old.py", script["id"], 2, "    return {'legacy_key': 1}")]


def test_a_search_stops_at_its_limit_and_says_so(alice: Caller) -> None:
    alice.upload(
        "many.py", b"def main(data):\n" + b"    x = 1  # needle\n" * 30 + b"    return {}\n"
    )
    answer = search(alice, q="needle", limit=10)
    assert len(answer["matches"]) == 10
    assert answer["truncated"] is True
    assert [m["line"] for m in answer["matches"]] == list(range(2, 12))
    answer = search(alice, q="needle", limit=30)
    assert (len(answer["matches"]), answer["truncated"]) == (30, False)


def test_a_search_that_runs_out_of_time_answers_with_what_it_has(
    alice: Caller, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice.upload("slow.py")
    monkeypatch.setattr(service, "SEARCH_TIMEOUT_SECONDS", 0.0)
    answer = search(alice, q="main")
    assert answer["timed_out"] is True


def test_bad_searches_get_the_unified_error(alice: Caller, client: Any) -> None:
    alice.upload("ok.py")

    def error(reply: Any, status: int, code: str) -> None:
        assert reply.status_code == status, reply.text
        assert reply.json()["error_code"] == code
        assert set(reply.json()) == {"error_code", "message", "details"}

    error(
        alice.get(f"{API}/search", params={"q": "a(", "regex": "true"}),
        400,
        "INVALID_SEARCH_PATTERN",
    )
    error(alice.get(f"{API}/search", params={"q": ""}), 400, "VALIDATION_ERROR")
    error(alice.get(f"{API}/search", params={"q": "x", "limit": 0}), 400, "VALIDATION_ERROR")
    error(alice.get(f"{API}/search", params={"q": "x", "rev": "main..x"}), 400, "INVALID_REVISION")
    error(alice.get(f"{API}/search", params={"q": "x", "rev": "f" * 40}), 404, "REVISION_NOT_FOUND")
    error(client.get(f"{API}/search", params={"q": "x"}), 401, "NOT_AUTHENTICATED")
