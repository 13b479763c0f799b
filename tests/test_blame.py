"""Blame: each line of a script with the commit that last changed it, through the HTTP API."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Caller, commits
from tests.test_history import assert_error, put, source

API = "/api/v1/scripts-manager"


def test_each_line_is_attributed_to_the_commit_and_user_that_last_changed_it(
    alice: Caller, admin: Caller, data_dir: Path
) -> None:
    script = alice.upload("calc.py", source(1).encode())
    sid = script["id"]
    first = commits(data_dir)[0]["id"]
    # The admin changes the header's first line, then alice renames the script and edits a footer.
    put(admin, sid, content=source(1).replace("# header 0", "# admin's header"))
    by_admin = commits(data_dir)[0]["id"]
    put(alice, sid, filename="calc2.py")
    put(alice, sid, content=source(1).replace("# header 0", "# admin's header") + "# alice\n")
    by_alice = commits(data_dir)[0]["id"]

    reply = alice.get(f"{API}/scripts/{sid}/blame")
    assert reply.status_code == 200, reply.text
    blame = reply.json()
    assert blame["revision"] == by_alice and blame["path"] == "calc2.py"
    lines = blame["lines"]
    text = source(1).replace("# header 0", "# admin's header") + "# alice\n"
    assert [line["content"] for line in lines] == text.splitlines()
    assert [line["line"] for line in lines] == list(range(1, 14))
    owners = [line["revision"] for line in lines]
    assert owners == [by_admin] + [first] * 11 + [by_alice]
    # Lines older than the rename name the path they had then.
    assert lines[1]["path"] == "calc.py" and lines[12]["path"] == "calc2.py"
    assert lines[12]["original_line"] == 13
    assert set(blame["commits"]) == {first, by_admin, by_alice}
    assert blame["commits"][by_admin]["author"]["login"] == "root-admin"
    assert blame["commits"][first]["author"]["login"] == "alice"
    assert blame["commits"][by_alice]["message"] == "Update script calc2.py"
    assert blame["commits"][first]["committed_at"].endswith("Z")

    # At an older revision: as the file was there.
    old = alice.get(f"{API}/scripts/{sid}/blame", params={"rev": by_admin}).json()
    assert old["path"] == "calc.py" and len(old["lines"]) == 12
    assert {line["revision"] for line in old["lines"]} == {first, by_admin}

    assert_error(
        alice.get(f"{API}/scripts/{sid}/blame", params={"rev": "a b"}), 400, "INVALID_REVISION"
    )
    assert_error(alice.get(f"{API}/scripts/999/blame"), 404, "SCRIPT_NOT_FOUND")
