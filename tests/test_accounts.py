"""Accounts: which logins may be registered, when two logins are one account, and who may register
(REGISTRATION open, closed or invite; admins create accounts and invite codes through the API and
the CLI)."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gitscripts.app import create_app
from gitscripts.auth.passwords import Passwords
from gitscripts.cli import main as cli
from gitscripts.config import Settings
from gitscripts.index import Index
from tests.conftest import PASSWORD, Caller, commits, make_settings, register
from tests.test_auth import USER_FIELDS, assert_error, clean_env, console_script, login

AUTH = "/api/v1/auth"
ADMIN = "/api/v1/admin"


def logins_in(settings: Settings) -> list[str]:
    return [user.login for user in Index(settings.index_path).users.all()]


@contextmanager
def service(tmp_path: Path, **overrides: Any) -> Iterator[tuple[TestClient, Settings]]:
    settings = make_settings(tmp_path / "data", **overrides)
    with TestClient(create_app(settings)) as client:
        yield client, settings


def make_admin(client: TestClient, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Caller:
    """An admin made with the real CLI (which works whatever REGISTRATION says)."""
    monkeypatch.setenv("DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("GITSCRIPTS_ADMIN_PASSWORD", PASSWORD)
    assert cli(["create-admin", "root"]) == 0
    token = login(client, "root").json()["access_token"]
    me = client.get(f"{AUTH}/me", headers={"Authorization": f"Bearer {token}"}).json()
    return Caller(client, "root", me["id"], token)


# -- what a login may be ----------------------------------------------------------------------
MISLEADING_LOGINS = {
    "trailing-space": "admin ",
    "leading-space": " admin",
    "inner-space": "ad min",
    "no-break-space": "ad\u00a0min",
    "tab": "ad\tmin",
    "newline": "x\ny",
    "zero-width-space": "adm\u200bin",
    "zero-width-joiner": "adm\u200din",
    "right-to-left-override": "ad\u202emin",
    "soft-hyphen": "ad\u00admin",
    "colon": "a:b",
    "fullwidth-colon": "a\uff1ab",  # NFKC makes it ':'
    "cyrillic-a-among-latin": "\u0430dmin",
    "greek-omicron-among-latin": "r\u03bfot",
    "cyrillic-with-greek": "\u0430\u03b1\u0430",
    "only-spaces": "   ",
    "nfkc-too-short": "e\u0301x",  # NFKC composes the accent: 2 characters
}


def test_misleading_logins_are_refused_in_plain_words_and_create_nothing(
    client: TestClient, settings: Settings
) -> None:
    wrong = []
    for name, login_name in MISLEADING_LOGINS.items():
        reply = client.post(f"{AUTH}/register", json={"login": login_name, "password": PASSWORD})
        body = reply.json()
        if reply.status_code != 400 or body.get("error_code") != "VALIDATION_ERROR":
            wrong.append((name, reply.status_code, body))
        elif not body["message"].startswith("A login "):  # a sentence the seed UI can show
            wrong.append((name, body["message"]))
    assert wrong == []
    assert logins_in(settings) == []


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("jos\u00e9", "jos\u00e9"),
        ("jose\u0301", "jos\u00e9"),  # e + combining accent: NFKC composes it
        ("\uff41\uff4c\uff49\uff43\uff45", "alice"),  # fullwidth
        ("\u0430\u0434\u043c\u0438\u043d", "\u0430\u0434\u043c\u0438\u043d"),  # Cyrillic only
        ("\u03b4\u03bf\u03ba\u03b9\u03bc\u03ae", "\u03b4\u03bf\u03ba\u03b9\u03bc\u03ae"),  # Greek
        ("o'brien-2.x_y", "o'brien-2.x_y"),
    ],
)
def test_good_logins_are_stored_normalised_and_usable(
    client: TestClient, data_dir: Path, typed: str, stored: str
) -> None:
    reply = client.post(f"{AUTH}/register", json={"login": typed, "password": PASSWORD})
    assert reply.status_code == 201, reply.text
    assert set(reply.json()) == USER_FIELDS and reply.json()["login"] == stored
    # Signing in works as typed and as stored; commits name the stored login.
    assert login(client, typed).status_code == 200
    caller = register_existing(client, stored)
    assert caller.post("/api/v1/scripts-manager/folders", json={"name": "mine"}).status_code == 201
    assert commits(data_dir)[0]["author"] == stored


def register_existing(client: TestClient, login_name: str) -> Caller:
    reply = login(client, login_name)
    assert reply.status_code == 200, reply.text
    token = reply.json()["access_token"]
    me = client.get(f"{AUTH}/me", headers={"Authorization": f"Bearer {token}"}).json()
    return Caller(client, login_name, me["id"], token)


def test_one_account_per_login_whatever_its_case_or_width(
    client: TestClient, settings: Settings
) -> None:
    register(client, "Alice")
    for same in ("alice", "ALICE", "aLiCe", "\uff21\uff4c\uff49\uff43\uff45"):
        reply = client.post(f"{AUTH}/register", json={"login": same, "password": "another-pass"})
        assert "already exists" in assert_error(reply, 400, "VALIDATION_ERROR")["message"]
    register(client, "stra\u00dfe")
    reply = client.post(f"{AUTH}/register", json={"login": "STRASSE", "password": "another-pw"})
    assert "already exists" in assert_error(reply, 400)["message"]
    assert logins_in(settings) == ["Alice", "stra\u00dfe"]
    for typed in ("alice", "ALICE", "\uff41lice"):
        assert login(client, typed).status_code == 200


def test_accounts_made_before_the_rules_keep_working(tmp_path: Path) -> None:
    """An index written by an older version holds logins the rules now refuse: they still sign in
    (as stored), and new accounts are judged by the new rules."""
    settings = make_settings(tmp_path / "data")
    index = Index(settings.index_path)
    password_hash = Passwords(1, 256).hash(PASSWORD)
    for old in ("admin ", "a:b", "\u0430dmin"):
        index.users.add(old, password_hash, is_admin=False)
    with TestClient(create_app(settings)) as client:
        for old in ("admin ", "a:b", "\u0430dmin"):
            reply = login(client, old)
            assert reply.status_code == 200, (old, reply.text)
            token = reply.json()["access_token"]
            me = client.get(f"{AUTH}/me", headers={"Authorization": f"Bearer {token}"})
            assert me.json()["login"] == old
        # "admin" is another login than "admin " (which the rules would not let in today).
        assert login(client, "admin").status_code == 401
        reply = client.post(f"{AUTH}/register", json={"login": "admin", "password": PASSWORD})
        assert reply.status_code == 201, reply.text
        assert login(client, "admin").status_code == 200


# -- who may register ---------------------------------------------------------------------------
def test_open_registration_is_the_default(client: TestClient) -> None:
    assert client.get(f"{AUTH}/registration").json() == {"policy": "open"}
    reply = client.post(
        f"{AUTH}/register", json={"login": "alice", "password": PASSWORD, "invite_code": "x"}
    )
    assert reply.status_code == 201 and set(reply.json()) == USER_FIELDS


def test_closed_registration_leaves_accounts_to_admins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with service(tmp_path, registration="closed") as (client, settings):
        assert client.get(f"{AUTH}/registration").json() == {"policy": "closed"}
        reply = client.post(f"{AUTH}/register", json={"login": "alice", "password": PASSWORD})
        body = assert_error(reply, 403, "REGISTRATION_CLOSED")
        assert body["message"] == (
            "Registration is closed. Ask an administrator to create an account for you."
        )
        assert logins_in(settings) == []

        root = make_admin(client, settings, monkeypatch)
        made = root.post(f"{ADMIN}/users", json={"login": "alice", "password": PASSWORD})
        assert made.status_code == 201, made.text
        assert set(made.json()) == USER_FIELDS and made.json()["is_admin"] is False
        alice = register_existing(client, "alice")
        # The admin API holds new accounts to the same rules, and is for admins only.
        assert_error(
            root.post(f"{ADMIN}/users", json={"login": "ALICE", "password": PASSWORD}), 400
        )
        assert_error(
            root.post(f"{ADMIN}/users", json={"login": "a\u200bb", "password": PASSWORD}),
            400,
            "VALIDATION_ERROR",
        )
        refused = alice.post(f"{ADMIN}/users", json={"login": "mallory", "password": PASSWORD})
        assert_error(refused, 403, "PERMISSION_DENIED")
        assert_error(
            client.post(f"{ADMIN}/users", json={"login": "mallory", "password": PASSWORD}), 401
        )
        second_admin = root.post(
            f"{ADMIN}/users", json={"login": "chief", "password": PASSWORD, "is_admin": True}
        )
        assert second_admin.json()["is_admin"] is True

        # The CLI creates accounts too.
        monkeypatch.setenv("GITSCRIPTS_USER_PASSWORD", "bobs password")
        assert cli(["create-user", "bob"]) == 0
        assert login(client, "bob", "bobs password").status_code == 200
        assert cli(["create-user", "Bob"]) == 1  # already exists
        assert sorted(logins_in(settings)) == ["alice", "bob", "chief", "root"]


def test_invite_codes_are_single_use_and_expire(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with service(tmp_path, registration="invite") as (client, settings):
        assert client.get(f"{AUTH}/registration").json() == {"policy": "invite"}
        root = make_admin(client, settings, monkeypatch)
        body = assert_error(
            client.post(f"{AUTH}/register", json={"login": "alice", "password": PASSWORD}),
            403,
            "INVALID_INVITE_CODE",
        )
        assert body["message"] == "Registration needs an invite code. Ask an administrator for one."

        made = root.post(f"{ADMIN}/invites", json={"expires_in_days": 2})
        assert made.status_code == 201, made.text
        invite = made.json()
        code = invite["code"]
        assert invite["state"] == "usable" and invite["created_by"]["login"] == "root"
        assert code.startswith(invite["prefix"]) and invite["used_by"] is None
        # Only its hash is kept.
        assert code not in settings.index_path.read_text()

        def register_with(name: str, invite_code: str) -> Any:
            credentials = {"login": name, "password": PASSWORD, "invite_code": invite_code}
            return client.post(f"{AUTH}/register", json=credentials)

        assert_error(register_with("alice", code + "x"), 403, "INVALID_INVITE_CODE")
        # A bad login does not use the code up.
        assert_error(register_with("al ice", code), 400, "VALIDATION_ERROR")
        reply = register_with("alice", code)
        assert reply.status_code == 201 and set(reply.json()) == USER_FIELDS
        assert login(client, "alice").status_code == 200
        used = assert_error(register_with("bob", code), 403, "INVALID_INVITE_CODE")
        assert used["message"] == (
            "This invite code is not valid: it is wrong, already used or expired. "
            "Ask an administrator for a new one."
        )
        listed = root.get(f"{ADMIN}/invites").json()
        assert [(i["id"], i["state"], i["used_by"]["login"]) for i in listed] == [
            (invite["id"], "used", "alice")
        ]
        assert all("code" not in item for item in listed)

        # Expired: the service reads the index as it is on disk.
        late = root.post(f"{ADMIN}/invites", json={}).json()
        Index(settings.index_path).db.table("invites").update(
            {"expires_at": "2000-01-01T00:00:00.000000Z"}, doc_ids=[late["id"]]
        )
        assert_error(register_with("carol", late["code"]), 403, "INVALID_INVITE_CODE")
        assert root.get(f"{ADMIN}/invites").json()[-1]["state"] == "expired"

        # Deleted: gone for good.
        spare = root.post(f"{ADMIN}/invites", json={}).json()
        assert root.delete(f"{ADMIN}/invites/{spare['id']}").status_code == 204
        assert_error(root.delete(f"{ADMIN}/invites/{spare['id']}"), 404, "INVITE_NOT_FOUND")
        assert_error(register_with("dave", spare["code"]), 403, "INVALID_INVITE_CODE")

        # Invites are for admins only; bad requests are 400.
        alice = register_existing(client, "alice")
        for call in (
            lambda: alice.post(f"{ADMIN}/invites", json={}),
            lambda: alice.get(f"{ADMIN}/invites"),
            lambda: alice.delete(f"{ADMIN}/invites/{invite['id']}"),
        ):
            assert_error(call(), 403, "PERMISSION_DENIED")
        assert_error(root.post(f"{ADMIN}/invites", json={"expires_in_days": 0}), 400)
        assert sorted(logins_in(settings)) == ["alice", "root"]


def test_an_invite_code_admits_one_of_several_racing_registrations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with service(tmp_path, registration="invite") as (client, settings):
        root = make_admin(client, settings, monkeypatch)
        code = root.post(f"{ADMIN}/invites", json={}).json()["code"]
        statuses: list[int] = []

        def attempt(i: int) -> None:
            credentials = {"login": f"racer{i}", "password": PASSWORD, "invite_code": code}
            statuses.append(client.post(f"{AUTH}/register", json=credentials).status_code)

        threads = [threading.Thread(target=attempt, args=(i,)) for i in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(statuses) == [201] + [403] * 5
        assert len(logins_in(settings)) == 2


def test_create_invite_on_the_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with service(tmp_path, registration="invite") as (client, settings):
        make_admin(client, settings, monkeypatch)
        register_with_code = {"login": "alice", "password": PASSWORD}
        completed = subprocess.run(
            [console_script(), "create-invite", "--by", "root", "--days", "1"],
            env=clean_env(DATA_DIR=str(settings.data_dir)),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert completed.returncode == 0, completed.stderr
        code = completed.stdout.strip()
        reply = client.post(f"{AUTH}/register", json={**register_with_code, "invite_code": code})
        assert reply.status_code == 201, reply.text
        # Only an admin's name makes an invite.
        assert cli(["create-invite", "--by", "alice"]) == 1
        assert cli(["create-invite", "--by", "nobody"]) == 1
