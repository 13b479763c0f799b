"""Auth through the public interface: register/login/me/logout/onboarding, JWT tampering, personal
API tokens, admins via the real CLI, login throttling, secret-key configuration, and log hygiene."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from gitscripts.app import create_app
from gitscripts.cli import main as cli
from gitscripts.config import Settings
from gitscripts.index import Index
from tests.conftest import PASSWORD, Caller, make_settings, register

AUTH = "/api/v1/auth"
ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
USER_FIELDS = {"id", "login", "is_admin", "needs_onboarding", "created_at", "updated_at"}
TOKEN_FIELDS = {"id", "name", "prefix", "created_at", "expires_at"}
CREDENTIALS = {"login": "alice", "password": PASSWORD}


# -- helpers ----------------------------------------------------------------------------------
def run_async(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run `coroutine` in an event loop of its own thread: the browser tests' driver may have
    left one running in this thread."""
    failure: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(coroutine)
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error(reply: Any, status: int, error_code: str | None = None) -> dict[str, Any]:
    """The reply is `status` with the unified `{"error_code", "message", "details"}` body."""
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert set(body) == {"error_code", "message", "details"}, body
    assert isinstance(body["error_code"], str) and body["error_code"]
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["details"], dict)
    if error_code is not None:
        assert body["error_code"] == error_code, body
    return body


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def jwt_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, payload, _signature = token.split(".")
    return json.loads(b64url_decode(header)), json.loads(b64url_decode(payload))


_HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


def forge(claims: dict[str, Any], secret: str | None, alg: str = "HS256") -> str:
    """A JWT built by hand: HMAC-signed with `secret`, or unsigned when `alg` is "none"."""
    header = b64url(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    payload = b64url(json.dumps(claims).encode())
    signing_input = f"{header}.{payload}".encode("ascii")
    if alg.lower() == "none":
        return f"{header}.{payload}."
    assert secret is not None
    signature = hmac.new(secret.encode(), signing_input, _HASHES[alg]).digest()
    return f"{header}.{payload}.{b64url(signature)}"


def claims_for(user_id: int, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": str(user_id),
        "iat": now,
        "exp": now + 600,
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    return {key: value for key, value in claims.items() if value is not None}


def login(client: TestClient, login_name: str, password: str = PASSWORD) -> Any:
    return client.post(f"{AUTH}/login", json={"login": login_name, "password": password})


def timed_login(client: TestClient, login_name: str, password: str) -> tuple[int, float]:
    started = time.perf_counter()
    reply = login(client, login_name, password)
    return reply.status_code, time.perf_counter() - started


@contextmanager
def app_client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def console_script() -> str:
    found = shutil.which("gitscripts", path=str(Path(sys.executable).parent))
    assert found, "the gitscripts console script is not installed next to the interpreter"
    return found


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key.upper() not in {"JWT_SECRET_KEY", "ENVIRONMENT", "DATA_DIR", "PORT", "HOST"}
        and key.upper() != "GITSCRIPTS_ADMIN_PASSWORD"
    }
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- register ---------------------------------------------------------------------------------
def test_register_returns_the_user_object(client: TestClient) -> None:
    reply = client.post(f"{AUTH}/register", json={"login": "alice", "password": PASSWORD})
    assert reply.status_code == 201, reply.text
    user = reply.json()
    assert set(user) == USER_FIELDS
    assert isinstance(user["id"], int) and not isinstance(user["id"], bool)
    assert user["login"] == "alice"
    assert user["is_admin"] is False
    assert user["needs_onboarding"] is True
    assert ISO_Z.match(user["created_at"]), user["created_at"]
    assert ISO_Z.match(user["updated_at"]), user["updated_at"]
    second = client.post(f"{AUTH}/register", json={"login": "bob", "password": PASSWORD})
    assert second.status_code == 201
    assert second.json()["id"] != user["id"]


def test_register_duplicate_login_is_400_already_exists(client: TestClient) -> None:
    register(client, "alice")
    reply = client.post(f"{AUTH}/register", json={"login": "alice", "password": "another-pass"})
    body = assert_error(reply, 400)
    assert "already exists" in body["message"]
    # The original account is untouched: its password still works, the new one does not.
    assert login(client, "alice").status_code == 200
    assert login(client, "alice", "another-pass").status_code == 401


@pytest.mark.parametrize(
    "payload",
    [
        {"login": "ab", "password": PASSWORD},
        {"login": "a" * 51, "password": PASSWORD},
        {"login": "carol", "password": "1234567"},
        {"login": "carol"},
        {"password": PASSWORD},
        {"login": 123, "password": PASSWORD},
    ],
    ids=[
        "login-too-short",
        "login-too-long",
        "password-too-short",
        "no-password",
        "no-login",
        "login-not-a-string",
    ],
)
def test_register_validation_errors(client: TestClient, payload: dict[str, Any]) -> None:
    reply = client.post(f"{AUTH}/register", json=payload)
    assert_error(reply, 400, "VALIDATION_ERROR")
    # Nothing was created.
    if isinstance(payload.get("login"), str) and "password" in payload:
        assert login(client, payload["login"], payload["password"]).status_code == 401


def test_register_boundaries_are_accepted(client: TestClient) -> None:
    for login_name, password in (("abc", "12345678"), ("b" * 50, "x" * 8)):
        reply = client.post(f"{AUTH}/register", json={"login": login_name, "password": password})
        assert reply.status_code == 201, reply.text
        assert login(client, login_name, password).status_code == 200


def test_validation_error_does_not_echo_the_password(client: TestClient) -> None:
    reply = client.post(f"{AUTH}/register", json={"login": "carol", "password": "s3cr3t!"})
    assert_error(reply, 400, "VALIDATION_ERROR")
    assert "s3cr3t!" not in reply.text


@pytest.mark.parametrize("login_name", ["   ", "\t\t\t", "<> "], ids=["spaces", "tabs", "brackets"])
def test_a_registrable_login_can_also_commit(client: TestClient, login_name: str) -> None:
    """A login is either refused at registration (400) or fully usable: a user the service let in
    must not get 500 on every write because their login makes no valid Git author name."""
    reply = client.post(f"{AUTH}/register", json={"login": login_name, "password": PASSWORD})
    if reply.status_code == 400:
        assert_error(reply, 400, "VALIDATION_ERROR")
        return
    assert reply.status_code == 201, reply.text
    caller = Caller(
        client, login_name, reply.json()["id"], login(client, login_name).json()["access_token"]
    )
    made = caller.post("/api/v1/scripts-manager/folders", json={"name": "mine", "parent_id": None})
    assert made.status_code == 201, made.text


def test_concurrent_registrations_of_one_login_create_one_user(client: TestClient) -> None:
    statuses: list[int] = []

    def attempt(i: int) -> None:
        reply = client.post(
            f"{AUTH}/register", json={"login": "racer", "password": f"password-{i}"}
        )
        statuses.append(reply.status_code)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [201] + [400] * 5
    accepted = [i for i in range(6) if login(client, "racer", f"password-{i}").status_code == 200]
    assert len(accepted) == 1


# -- login, me --------------------------------------------------------------------------------
def test_login_returns_a_bearer_token_that_opens_me(client: TestClient) -> None:
    created = client.post(f"{AUTH}/register", json={"login": "alice", "password": PASSWORD})
    reply = login(client, "alice")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert set(body) == {"access_token", "token_type"}
    assert body["token_type"] == "bearer"
    header, claims = jwt_parts(body["access_token"])
    assert header["alg"] == "HS256"
    assert claims["sub"] == str(created.json()["id"])
    assert "exp" in claims
    me = client.get(f"{AUTH}/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json() == created.json()


def test_login_with_bad_credentials_is_401(client: TestClient) -> None:
    register(client, "alice")
    wrong_password = assert_error(login(client, "alice", "not the password"), 401)
    unknown_login = assert_error(login(client, "nobody", PASSWORD), 401)
    # The answer does not reveal whether the login exists.
    assert wrong_password == unknown_login


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer garbage"},
        {"Authorization": "Bearer "},
        {"Authorization": "Basic x"},
        {"Authorization": f"Basic {base64.b64encode(f'alice:{PASSWORD}'.encode()).decode()}"},
        {"Authorization": "Bearer a.b.c"},
        {"Authorization": "Bearer gst_not-a-real-token"},
    ],
    ids=[
        "none",
        "garbage",
        "empty-bearer",
        "basic-x",
        "basic-credentials",
        "three-dots",
        "fake-api-token",
    ],
)
def test_me_without_a_valid_token_is_401(
    client: TestClient, alice: Caller, headers: dict[str, str]
) -> None:
    assert_error(client.get(f"{AUTH}/me", headers=headers), 401)


def test_protected_manager_endpoint_needs_a_token(client: TestClient) -> None:
    assert_error(client.get("/api/v1/scripts-manager/tree"), 401)


@pytest.mark.parametrize(
    "payload",
    [{"login": "alice"}, {"password": PASSWORD}, [], "alice"],
    ids=["no-password", "no-login", "list", "string"],
)
def test_login_validation_errors(client: TestClient, payload: Any) -> None:
    assert_error(client.post(f"{AUTH}/login", json=payload), 400, "VALIDATION_ERROR")


def test_bearer_scheme_is_case_insensitive(client: TestClient, alice: Caller) -> None:
    reply = client.get(f"{AUTH}/me", headers={"Authorization": f"bearer {alice.token}"})
    assert reply.status_code == 200, reply.text


# -- logout -----------------------------------------------------------------------------------
def test_logout_revokes_that_token_only(client: TestClient, alice: Caller) -> None:
    other_session = login(client, "alice").json()["access_token"]
    reply = alice.post(f"{AUTH}/logout")
    assert reply.status_code == 200, reply.text
    assert set(reply.json()) == {"message"}
    assert isinstance(reply.json()["message"], str)
    assert_error(alice.get(f"{AUTH}/me"), 401)
    assert_error(alice.get("/api/v1/scripts-manager/tree"), 401)
    assert_error(alice.post(f"{AUTH}/logout"), 401)
    # Another session of the same user, and a fresh login, still work.
    assert client.get(f"{AUTH}/me", headers=bearer(other_session)).status_code == 200
    fresh = login(client, "alice").json()["access_token"]
    assert client.get(f"{AUTH}/me", headers=bearer(fresh)).status_code == 200


def test_logout_survives_a_restart(settings: Settings, client: TestClient, alice: Caller) -> None:
    assert alice.post(f"{AUTH}/logout").status_code == 200
    with app_client(settings) as restarted:
        assert_error(restarted.get(f"{AUTH}/me", headers=alice.headers), 401)


def test_logout_without_token_is_401(client: TestClient) -> None:
    assert_error(client.post(f"{AUTH}/logout"), 401)


# -- onboarding -------------------------------------------------------------------------------
def test_onboarding_status_flips(alice: Caller) -> None:
    assert alice.get(f"{AUTH}/me").json()["needs_onboarding"] is True
    reply = alice.patch(f"{AUTH}/onboarding-status", json={"needs_onboarding": False})
    assert reply.status_code == 200, reply.text
    user = reply.json()
    assert set(user) == USER_FIELDS
    assert user["needs_onboarding"] is False
    assert user["id"] == alice.id
    assert ISO_Z.match(user["updated_at"])
    assert alice.get(f"{AUTH}/me").json()["needs_onboarding"] is False
    reply = alice.patch(f"{AUTH}/onboarding-status", json={"needs_onboarding": True})
    assert reply.status_code == 200
    assert reply.json()["needs_onboarding"] is True
    assert alice.get(f"{AUTH}/me").json()["needs_onboarding"] is True


def test_onboarding_status_validation_and_auth(client: TestClient, alice: Caller) -> None:
    assert_error(alice.patch(f"{AUTH}/onboarding-status", json={}), 400, "VALIDATION_ERROR")
    assert_error(
        alice.patch(f"{AUTH}/onboarding-status", json={"needs_onboarding": "maybe"}),
        400,
        "VALIDATION_ERROR",
    )
    assert_error(client.patch(f"{AUTH}/onboarding-status", json={"needs_onboarding": False}), 401)
    assert alice.get(f"{AUTH}/me").json()["needs_onboarding"] is True


# -- JWT tampering ----------------------------------------------------------------------------
def test_hand_forged_token_with_the_right_secret_is_accepted(
    client: TestClient, settings: Settings, alice: Caller
) -> None:
    """The control for the tampering tests below: the forging itself is right."""
    token = forge(claims_for(alice.id), settings.jwt_secret_key)
    reply = client.get(f"{AUTH}/me", headers=bearer(token))
    assert reply.status_code == 200, reply.text
    assert reply.json()["login"] == "alice"


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_unsigned_alg_none_token_is_401(client: TestClient, alice: Caller, alg: str) -> None:
    token = forge(claims_for(alice.id), None, alg=alg)
    assert_error(client.get(f"{AUTH}/me", headers=bearer(token)), 401)
    # Also with a signature copied from a genuine token.
    signature = alice.token.split(".")[2]
    assert_error(client.get(f"{AUTH}/me", headers=bearer(token + signature)), 401)


def test_token_signed_with_a_wrong_secret_is_401(client: TestClient, alice: Caller) -> None:
    token = forge(claims_for(alice.id), "a-completely-different-secret-of-good-length")
    assert_error(client.get(f"{AUTH}/me", headers=bearer(token)), 401)


@pytest.mark.parametrize("alg", ["HS384", "HS512"])
def test_token_with_another_algorithm_is_401(
    client: TestClient, settings: Settings, alice: Caller, alg: str
) -> None:
    token = forge(claims_for(alice.id), settings.jwt_secret_key, alg=alg)
    assert_error(client.get(f"{AUTH}/me", headers=bearer(token)), 401)


def test_expired_token_is_401(client: TestClient, settings: Settings, alice: Caller) -> None:
    now = int(time.time())
    token = forge(claims_for(alice.id, iat=now - 3600, exp=now - 60), settings.jwt_secret_key)
    assert_error(client.get(f"{AUTH}/me", headers=bearer(token)), 401)


def test_token_without_sub_is_401(client: TestClient, settings: Settings, alice: Caller) -> None:
    claims = claims_for(alice.id)
    del claims["sub"]
    token = forge(claims, settings.jwt_secret_key)
    assert_error(client.get(f"{AUTH}/me", headers=bearer(token)), 401)


def test_token_without_exp_is_401(client: TestClient, settings: Settings, alice: Caller) -> None:
    token = forge(claims_for(alice.id, exp=None), settings.jwt_secret_key)
    assert_error(client.get(f"{AUTH}/me", headers=bearer(token)), 401)


@pytest.mark.parametrize("sub", ["999999", "not-a-number", ""])
def test_token_with_a_bad_sub_is_401(
    client: TestClient, settings: Settings, alice: Caller, sub: str
) -> None:
    token = forge(claims_for(alice.id, sub=sub), settings.jwt_secret_key)
    assert_error(client.get(f"{AUTH}/me", headers=bearer(token)), 401)


def test_modified_payload_with_the_original_signature_is_401(
    client: TestClient, alice: Caller, bob: Caller
) -> None:
    header, payload, signature = alice.token.split(".")
    claims = json.loads(b64url_decode(payload))
    claims["sub"] = str(bob.id)
    tampered = f"{header}.{b64url(json.dumps(claims).encode())}.{signature}"
    assert_error(client.get(f"{AUTH}/me", headers=bearer(tampered)), 401)
    # Extending the expiry is no better.
    claims = json.loads(b64url_decode(payload))
    claims["exp"] += 86400
    tampered = f"{header}.{b64url(json.dumps(claims).encode())}.{signature}"
    assert_error(client.get(f"{AUTH}/me", headers=bearer(tampered)), 401)
    # The untouched token still works.
    assert alice.get(f"{AUTH}/me").json()["login"] == "alice"


def test_token_lifetime_follows_the_setting(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", jwt_access_token_expire_minutes=7)
    with app_client(settings) as client:
        caller = register(client, "alice")
        _, claims = jwt_parts(caller.token)
        assert claims["exp"] - claims["iat"] == 7 * 60
        assert abs(claims["iat"] - time.time()) < 60


def test_default_token_lifetime_is_30_minutes(alice: Caller) -> None:
    _, claims = jwt_parts(alice.token)
    assert claims["exp"] - claims["iat"] == 30 * 60


# -- personal API tokens ----------------------------------------------------------------------
def create_token(caller: Caller, name: str = "simulator", **extra: Any) -> dict[str, Any]:
    reply = caller.post(f"{AUTH}/tokens", json={"name": name, **extra})
    assert reply.status_code == 201, reply.text
    return reply.json()


def test_create_and_list_personal_tokens(client: TestClient, alice: Caller) -> None:
    created = create_token(alice, "simulator")
    assert set(created) == TOKEN_FIELDS | {"token"}
    assert created["name"] == "simulator"
    assert created["expires_at"] is None
    assert ISO_Z.match(created["created_at"])
    assert isinstance(created["token"], str) and len(created["token"]) >= 32
    assert created["token"].startswith(created["prefix"])
    assert created["prefix"] != created["token"]

    expiring = create_token(alice, "ci", expires_in_days=30)
    assert ISO_Z.match(expiring["expires_at"])
    expires = datetime.strptime(expiring["expires_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert abs(expires - (datetime.now(UTC) + timedelta(days=30))) < timedelta(minutes=5)
    assert expiring["token"] != created["token"]

    listed = alice.get(f"{AUTH}/tokens")
    assert listed.status_code == 200, listed.text
    tokens = listed.json()
    assert sorted(t["id"] for t in tokens) == sorted([created["id"], expiring["id"]])
    for token in tokens:
        assert set(token) == TOKEN_FIELDS
    assert created["token"] not in listed.text
    assert expiring["token"] not in listed.text


def test_tokens_are_listed_per_user(client: TestClient, alice: Caller, bob: Caller) -> None:
    create_token(alice, "alice-token")
    assert bob.get(f"{AUTH}/tokens").json() == []
    assert [t["name"] for t in alice.get(f"{AUTH}/tokens").json()] == ["alice-token"]


@pytest.mark.parametrize(
    "payload",
    [{}, {"name": ""}, {"name": "x", "expires_in_days": 0}, {"name": "x", "expires_in_days": -1}],
    ids=["no-name", "empty-name", "zero-days", "negative-days"],
)
def test_create_token_validation(alice: Caller, payload: dict[str, Any]) -> None:
    assert_error(alice.post(f"{AUTH}/tokens", json=payload), 400, "VALIDATION_ERROR")
    assert alice.get(f"{AUTH}/tokens").json() == []


def test_token_endpoints_need_authentication(client: TestClient, alice: Caller) -> None:
    token = create_token(alice)
    assert_error(client.post(f"{AUTH}/tokens", json={"name": "x"}), 401)
    assert_error(client.get(f"{AUTH}/tokens"), 401)
    assert_error(client.delete(f"{AUTH}/tokens/{token['id']}"), 401)


def test_personal_token_works_as_bearer(client: TestClient, alice: Caller) -> None:
    folder = alice.folder("geology")
    secret = create_token(alice)["token"]
    me = client.get(f"{AUTH}/me", headers=bearer(secret))
    assert me.status_code == 200, me.text
    assert me.json()["id"] == alice.id
    tree = client.get("/api/v1/scripts-manager/tree", headers=bearer(secret))
    assert tree.status_code == 200, tree.text
    assert [item["folder"]["id"] for item in tree.json()["root_folders"]] == [folder["id"]]
    # Writing with it works too, as the token's owner.
    made = client.post(
        "/api/v1/scripts-manager/folders",
        json={"name": "by-token", "parent_id": None},
        headers=bearer(secret),
    )
    assert made.status_code == 201, made.text
    assert made.json()["created_by"]["id"] == alice.id


def test_personal_token_survives_a_restart(
    settings: Settings, client: TestClient, alice: Caller
) -> None:
    secret = create_token(alice)["token"]
    with app_client(settings) as restarted:
        assert restarted.get(f"{AUTH}/me", headers=bearer(secret)).json()["id"] == alice.id


def test_delete_token_revokes_it(client: TestClient, alice: Caller) -> None:
    kept = create_token(alice, "kept")
    doomed = create_token(alice, "doomed")
    assert client.get(f"{AUTH}/me", headers=bearer(doomed["token"])).status_code == 200
    reply = alice.delete(f"{AUTH}/tokens/{doomed['id']}")
    assert reply.status_code == 204
    assert reply.content == b""
    assert_error(client.get(f"{AUTH}/me", headers=bearer(doomed["token"])), 401)
    assert_error(client.get("/api/v1/scripts-manager/tree", headers=bearer(doomed["token"])), 401)
    assert [t["id"] for t in alice.get(f"{AUTH}/tokens").json()] == [kept["id"]]
    assert client.get(f"{AUTH}/me", headers=bearer(kept["token"])).status_code == 200
    # Deleting it again: it is gone.
    assert_error(alice.delete(f"{AUTH}/tokens/{doomed['id']}"), 404, "TOKEN_NOT_FOUND")


def test_another_user_cannot_delete_a_token(client: TestClient, alice: Caller, bob: Caller) -> None:
    token = create_token(alice)
    body = assert_error(bob.delete(f"{AUTH}/tokens/{token['id']}"), 404, "TOKEN_NOT_FOUND")
    assert token["token"] not in json.dumps(body)
    assert client.get(f"{AUTH}/me", headers=bearer(token["token"])).status_code == 200
    assert [t["id"] for t in alice.get(f"{AUTH}/tokens").json()] == [token["id"]]
    assert_error(alice.delete(f"{AUTH}/tokens/999999"), 404, "TOKEN_NOT_FOUND")


def test_an_admin_can_revoke_another_users_token(
    client: TestClient, alice: Caller, admin: Caller
) -> None:
    token = create_token(alice)
    assert admin.delete(f"{AUTH}/tokens/{token['id']}").status_code == 204
    assert_error(client.get(f"{AUTH}/me", headers=bearer(token["token"])), 401)


def test_expired_personal_token_is_401(
    client: TestClient, settings: Settings, alice: Caller
) -> None:
    token = create_token(alice, "short-lived", expires_in_days=1)
    assert client.get(f"{AUTH}/me", headers=bearer(token["token"])).status_code == 200
    # Move its expiry into the past, as another process editing the index would.
    index = Index(settings.index_path)
    past = (datetime.now(UTC) - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    with index.transaction():
        index.db.table("tokens").update({"expires_at": past}, doc_ids=[token["id"]])
    assert_error(client.get(f"{AUTH}/me", headers=bearer(token["token"])), 401)
    assert_error(client.get("/api/v1/scripts-manager/tree", headers=bearer(token["token"])), 401)


def test_personal_token_expires_when_its_days_are_over(
    client: TestClient, alice: Caller, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = create_token(alice, "two-days", expires_in_days=2)
    forever = create_token(alice, "forever")
    import gitscripts.auth.service as auth_service

    later = datetime.now(UTC) + timedelta(days=2, hours=1)
    monkeypatch.setattr(auth_service, "utc_now", lambda: later.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    assert_error(client.get(f"{AUTH}/me", headers=bearer(token["token"])), 401)
    assert client.get(f"{AUTH}/me", headers=bearer(forever["token"])).status_code == 200


def test_secrets_never_stored_in_clear(
    client: TestClient, settings: Settings, alice: Caller
) -> None:
    secret = create_token(alice)["token"]
    stored = settings.index_path.read_text()
    assert PASSWORD not in stored
    assert secret not in stored
    assert secret[len("gst_") :] not in stored
    assert alice.token not in stored
    assert "$argon2" in stored
    # Everything else under DATA_DIR is clean too.
    for path in settings.data_dir.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert PASSWORD.encode() not in content, path
            assert secret.encode() not in content, path


# -- admins via the CLI -----------------------------------------------------------------------
def test_create_admin_creates_a_new_admin(
    client: TestClient, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATA_DIR", str(data_dir))
    monkeypatch.setenv("GITSCRIPTS_ADMIN_PASSWORD", "admin password 123")
    assert cli(["create-admin", "chief"]) == 0
    reply = login(client, "chief", "admin password 123")
    assert reply.status_code == 200, reply.text
    me = client.get(f"{AUTH}/me", headers=bearer(reply.json()["access_token"])).json()
    assert me["login"] == "chief"
    assert me["is_admin"] is True


def test_create_admin_subprocess(client: TestClient, data_dir: Path, tmp_path: Path) -> None:
    completed = subprocess.run(
        [console_script(), "create-admin", "chief"],
        env=clean_env(DATA_DIR=str(data_dir), GITSCRIPTS_ADMIN_PASSWORD="admin password 123"),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    assert "admin password 123" not in completed.stdout + completed.stderr
    reply = login(client, "chief", "admin password 123")
    assert reply.status_code == 200, reply.text
    me = client.get(f"{AUTH}/me", headers=bearer(reply.json()["access_token"])).json()
    assert me["is_admin"] is True


def test_create_admin_promotes_an_existing_user(
    client: TestClient, data_dir: Path, alice: Caller, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert alice.get(f"{AUTH}/me").json()["is_admin"] is False
    monkeypatch.setenv("DATA_DIR", str(data_dir))
    monkeypatch.delenv("GITSCRIPTS_ADMIN_PASSWORD", raising=False)
    # No password given (and no terminal to ask on): promote without touching the password.
    assert cli(["create-admin", "alice"]) == 0
    me = alice.get(f"{AUTH}/me").json()
    assert me["is_admin"] is True
    assert me["id"] == alice.id
    assert login(client, "alice").status_code == 200
    assert len([line for line in settings_users(data_dir) if line == "alice"]) == 1


def settings_users(data_dir: Path) -> list[str]:
    return [user.login for user in Index(data_dir / "index.json").users.all()]


def test_create_admin_refuses_a_short_password(
    client: TestClient,
    data_dir: Path,
    alice: Caller,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = (data_dir / "index.json").read_bytes()
    monkeypatch.setenv("DATA_DIR", str(data_dir))
    monkeypatch.setenv("GITSCRIPTS_ADMIN_PASSWORD", "short")
    assert cli(["create-admin", "chief"]) != 0
    assert cli(["create-admin", "alice"]) != 0
    assert "short" not in capsys.readouterr().out
    assert (data_dir / "index.json").read_bytes() == before
    assert login(client, "chief", "short").status_code == 401
    assert alice.get(f"{AUTH}/me").json()["is_admin"] is False
    assert login(client, "alice").status_code == 200
    assert "chief" not in settings_users(data_dir)


def test_create_admin_short_password_subprocess(data_dir: Path, tmp_path: Path) -> None:
    completed = subprocess.run(
        [console_script(), "create-admin", "chief"],
        env=clean_env(DATA_DIR=str(data_dir), GITSCRIPTS_ADMIN_PASSWORD="short"),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode != 0
    assert "8" in completed.stderr or "password" in completed.stderr.lower()
    assert "chief" not in settings_users(data_dir)


# -- login throttling -------------------------------------------------------------------------
def test_failed_logins_are_slowed_down_and_the_right_password_still_works(
    client: TestClient, settings: Settings, alice: Caller
) -> None:
    base = settings.login_throttle_base_delay
    assert settings.login_throttle_free_attempts == 3
    for _ in range(settings.login_throttle_free_attempts):
        assert login(client, "alice", "wrong password").status_code == 401
    status, elapsed = timed_login(client, "alice", "wrong password")
    assert status == 401
    assert elapsed >= base - 0.01, elapsed
    # The next failure waits longer still (the delay grows).
    status, elapsed = timed_login(client, "alice", "wrong password")
    assert status == 401
    assert elapsed >= min(2 * base, settings.login_throttle_max_delay) - 0.01, elapsed
    # The right password is still accepted, and the token works.
    reply = login(client, "alice")
    assert reply.status_code == 200, reply.text
    assert client.get(f"{AUTH}/me", headers=bearer(reply.json()["access_token"])).status_code == 200


def test_parallel_failed_logins_do_not_dodge_the_delay(
    client: TestClient, settings: Settings, alice: Caller
) -> None:
    base = settings.login_throttle_base_delay
    for _ in range(settings.login_throttle_free_attempts):
        assert login(client, "alice", "wrong password").status_code == 401
    statuses: list[int] = []

    def attempt() -> None:
        statuses.append(login(client, "alice", "wrong password").status_code)

    threads = [threading.Thread(target=attempt) for _ in range(3)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    assert statuses == [401, 401, 401]
    cap = settings.login_throttle_max_delay
    expected = sum(min(base * 2**k, cap) for k in range(3))
    assert elapsed >= expected - 0.05, elapsed


def test_throttling_is_per_login_and_reset_by_a_success(tmp_path: Path) -> None:
    # A delay far longer than any request here: "not delayed" then means "did not wait 5 s".
    settings = make_settings(
        tmp_path / "data", login_throttle_base_delay=5.0, login_throttle_max_delay=5.0
    )
    with app_client(settings) as client:
        for name in ("alice", "bob", "dave"):
            register(client, name)
        # alice is now one failure away from a 5 s wait.
        for _ in range(settings.login_throttle_free_attempts):
            assert login(client, "alice", "wrong password").status_code == 401
        started = time.perf_counter()
        assert login(client, "bob", "wrong password").status_code == 401
        assert login(client, "bob").status_code == 200
        assert login(client, "nobody", "wrong password").status_code == 401
        assert time.perf_counter() - started < 5.0
        # dave: two failures, a success, then three failures again: the success cleared the
        # count, so none of these waits (without the reset the second one would wait 5 s).
        started = time.perf_counter()
        for _ in range(2):
            assert login(client, "dave", "wrong password").status_code == 401
        assert login(client, "dave").status_code == 200
        for _ in range(3):
            assert login(client, "dave", "wrong password").status_code == 401
        assert time.perf_counter() - started < 5.0


def _from(app: Any, address: str) -> httpx.AsyncClient:
    """A client of the app that the app sees coming from `address` (the ASGI `client`)."""
    transport = httpx.ASGITransport(app=app, client=(address, 40_000))
    return httpx.AsyncClient(transport=transport, base_url="http://gitscripts")


def test_an_attackers_failures_never_make_the_owner_wait(tmp_path: Path) -> None:
    """Eight wrong passwords from one address used to queue the owner's right password behind
    them (10 s); now the owner, from another address, is let in at once, while the attacker's own
    attempts for that login still wait their growing delays, one at a time."""
    settings = make_settings(
        tmp_path / "data", login_throttle_base_delay=5.0, login_throttle_max_delay=5.0
    )
    app = create_app(settings)

    async def scenario() -> None:
        async with _from(app, "203.0.113.9") as attacker, _from(app, "198.51.100.7") as owner:
            assert (await owner.post(f"{AUTH}/register", json=CREDENTIALS)).status_code == 201
            wrong = {"login": "alice", "password": "wrong password"}
            for _ in range(settings.login_throttle_free_attempts):
                assert (await attacker.post(f"{AUTH}/login", json=wrong)).status_code == 401
            flood = [
                asyncio.create_task(attacker.post(f"{AUTH}/login", json=wrong)) for _ in range(5)
            ]
            await asyncio.sleep(0.2)  # the flood is queued: the first waits its 5 s
            started = time.perf_counter()
            reply = await asyncio.wait_for(owner.post(f"{AUTH}/login", json=CREDENTIALS), 4.0)
            assert reply.status_code == 200, reply.text
            assert time.perf_counter() - started < 1.0
            # The attacker's attempts are still waiting (one at a time, 5 s each).
            assert not any(task.done() for task in flood)
            for task in flood:
                task.cancel()
            await asyncio.gather(*flood, return_exceptions=True)

    run_async(scenario())


def test_one_address_that_fails_too_often_is_refused_whatever_login_it_tries(
    tmp_path: Path,
) -> None:
    settings = make_settings(
        tmp_path / "data",
        login_throttle_free_attempts=100,  # no delays here: only the per-address limit
        login_throttle_client_max_failures=5,
    )
    app = create_app(settings)

    async def scenario() -> None:
        async with _from(app, "203.0.113.9") as sprayer, _from(app, "198.51.100.7") as other:
            assert (await other.post(f"{AUTH}/register", json=CREDENTIALS)).status_code == 201
            # Known and unknown logins count alike, and are answered alike.
            for name in ("alice", "bob", "carol", "alice", "nobody-at-all"):
                reply = await sprayer.post(f"{AUTH}/login", json={"login": name, "password": "x"})
                assert_error(reply, 401, "INVALID_CREDENTIALS")
            for name in ("alice", "dave"):
                for password in ("x", PASSWORD):  # refused before any password is checked
                    reply = await sprayer.post(
                        f"{AUTH}/login", json={"login": name, "password": password}
                    )
                    body = assert_error(reply, 429, "TOO_MANY_LOGIN_ATTEMPTS")
                    assert 0 < int(reply.headers["retry-after"]) <= 15 * 60
                    assert body["details"] == {"retry_after": int(reply.headers["retry-after"])}
            # Another address is not affected.
            assert (await other.post(f"{AUTH}/login", json=CREDENTIALS)).status_code == 200

    run_async(scenario())


def test_parallel_attempts_from_one_address_count_against_its_limit(tmp_path: Path) -> None:
    """Firing many attempts at once does not get around the per-address limit: attempts still
    being checked count, so at most the limit of them is ever checked."""
    settings = make_settings(
        tmp_path / "data", login_throttle_free_attempts=100, login_throttle_client_max_failures=4
    )
    app = create_app(settings)

    async def scenario() -> None:
        async with _from(app, "203.0.113.9") as sprayer:
            replies = await asyncio.gather(
                *(
                    sprayer.post(f"{AUTH}/login", json={"login": f"user{i}", "password": "x"})
                    for i in range(20)
                )
            )
            statuses = sorted(reply.status_code for reply in replies)
            assert statuses == [401] * 4 + [429] * 16, statuses

    run_async(scenario())


# -- configuration ----------------------------------------------------------------------------
def test_production_without_secret_refuses_to_serve(tmp_path: Path) -> None:
    data = tmp_path / "data"
    completed = subprocess.run(
        [console_script(), "serve"],
        env=clean_env(ENVIRONMENT="production", DATA_DIR=str(data), PORT=str(free_port())),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode != 0
    assert "JWT_SECRET_KEY" in completed.stderr + completed.stdout
    assert "Traceback" not in completed.stderr
    assert not (data / "jwt_secret.key").exists()


def test_an_invalid_setting_stops_the_start_with_one_line_each(tmp_path: Path) -> None:
    completed = subprocess.run(
        [console_script(), "serve"],
        env=clean_env(
            DATA_DIR=str(tmp_path / "data"),
            EXECUTION_OUTPUT_LIMIT_BYTES="100",
            EXECUTOR="forky",
            LOG_LEVEL="loud",
            PRELOAD_MODULES="json,no_such_module_here",
        ),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 2
    assert sorted(completed.stderr.splitlines()) == [
        "gitscripts: invalid setting: EXECUTION_OUTPUT_LIMIT_BYTES=100: "
        "Input should be greater than or equal to 1024",
        "gitscripts: invalid setting: EXECUTOR=forky: Input should be 'fork', 'subprocess' or 'dask'",
        "gitscripts: invalid setting: LOG_LEVEL=loud: must be DEBUG, INFO, WARNING, ERROR or CRITICAL",
        "gitscripts: invalid setting: PRELOAD_MODULES=json,no_such_module_here: "
        "no module named 'no_such_module_here' is installed",
    ]
    assert not (tmp_path / "data").exists()


def _invalid_values(name: str) -> list[str]:
    """Values the settings class refuses for the field `name`, from its own type and bounds."""
    import annotated_types

    field = Settings.model_fields[name]
    values = []
    for rule in field.metadata:
        if isinstance(rule, annotated_types.Ge | annotated_types.Gt):
            values.append(str(rule.ge - 1 if isinstance(rule, annotated_types.Ge) else rule.gt))
        if isinstance(rule, annotated_types.Le):
            values.append(str(rule.le + 1))
    kind = str(field.annotation)
    if "Literal" in kind:
        values.append("no-such-choice")
    elif "int" in kind or "float" in kind:
        values.append("many")
    elif "bool" in kind:
        values.append("perhaps")
    return values


@pytest.mark.parametrize("name", [name for name in Settings.model_fields if _invalid_values(name)])
def test_every_invalid_setting_is_named_in_one_line(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gitscripts.config import ConfigurationError, load_settings

    for value in _invalid_values(name):
        monkeypatch.setenv(name.upper(), value)
        with pytest.raises(ConfigurationError) as refused:
            load_settings()
        assert str(refused.value).startswith(f"invalid setting: {name.upper()}={value}: ")
        assert "\n" not in str(refused.value)


def test_production_without_secret_refuses_to_build_the_app(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="JWT_SECRET_KEY"):
        create_app(make_settings(tmp_path / "data", environment="production", jwt_secret_key=None))


def test_development_secret_is_kept_in_the_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with app_client(make_settings(data, jwt_secret_key=None)) as first:
        caller = register(first, "alice")
    with app_client(make_settings(data, jwt_secret_key=None)) as second:
        reply = second.get(f"{AUTH}/me", headers=caller.headers)
        assert reply.status_code == 200, reply.text
        assert reply.json()["login"] == "alice"
    # A different data dir has its own secret: the token means nothing there.
    other = tmp_path / "other"
    with app_client(make_settings(other, jwt_secret_key=None)) as third:
        register(third, "alice")
        assert_error(third.get(f"{AUTH}/me", headers=caller.headers), 401)


# -- logs -------------------------------------------------------------------------------------
@pytest.mark.parametrize("environment", ["development", "production"])
def test_passwords_and_tokens_are_never_logged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], environment: str
) -> None:
    password = "Pa55word-that-must-not-leak"
    wrong = "Wr0ng-password-that-must-not-leak"
    settings = make_settings(tmp_path / "data", environment=environment, log_level="DEBUG")
    with app_client(settings) as client:
        reply = client.post(f"{AUTH}/register", json={"login": "alice", "password": password})
        assert reply.status_code == 201
        assert login(client, "alice", wrong).status_code == 401
        jwt_token = login(client, "alice", password).json()["access_token"]
        assert client.get(f"{AUTH}/me", headers=bearer(jwt_token)).status_code == 200
        created = client.post(f"{AUTH}/tokens", json={"name": "sim"}, headers=bearer(jwt_token))
        api_token = created.json()["token"]
        assert client.get(f"{AUTH}/me", headers=bearer(api_token)).status_code == 200
        assert client.get(f"{AUTH}/me", headers=bearer(jwt_token + "x")).status_code == 401
        short = client.post(f"{AUTH}/register", json={"login": "bob", "password": "tiny-pw"})
        assert short.status_code == 400
        assert client.post(f"{AUTH}/logout", headers=bearer(jwt_token)).status_code == 200
    captured = capsys.readouterr()
    logs = captured.out + captured.err
    # The logs were captured at all: the request lines are there.
    assert "/api/v1/auth/login" in logs
    assert "alice" in logs
    for secret in (password, wrong, "tiny-pw", jwt_token, api_token, api_token[len("gst_") :]):
        assert secret not in logs
    for part in jwt_token.split(".")[1:]:  # the header is the same for every token
        assert part not in logs
