"""The service as a whole: health, docs, the example, the error shape, and the real server."""

from __future__ import annotations

import py_compile
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from gitscripts.app import create_app
from tests.conftest import Caller, live_server, make_settings

ERROR_KEYS = {"error_code", "message", "details"}


def test_health(client: TestClient) -> None:
    reply = client.get("/health")
    assert reply.status_code == 200
    assert reply.json() == {"status": "healthy"}


def test_docs_and_openapi(client: TestClient) -> None:
    assert "swagger" in client.get("/docs").text.lower()
    assert "redoc" in client.get("/redoc").text.lower()
    paths = client.get("/openapi.json").json()["paths"]
    assert "/api/v1/scripts-manager/tree" in paths
    assert "/api/v1/auth/tokens" in paths


def test_example_needs_no_token_and_is_stdlib_only(client: TestClient, tmp_path: Path) -> None:
    reply = client.get("/api/v1/examples/execute_script_example.py")
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "text/plain; charset=utf-8"  # as the original
    source = reply.text
    assert "urllib.request" in source and "/api/v1/scripts/" in source
    example = tmp_path / "example.py"
    example.write_text(source)
    py_compile.compile(str(example), doraise=True)
    # Under -I -S (no site-packages), importing it must need nothing beyond the standard library.
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", f"import runpy; runpy.run_path({str(example)!r})"],
        capture_output=True,
        text=True,
    )
    assert "ModuleNotFoundError" not in result.stderr


def test_unknown_route_is_404_in_the_unified_shape(client: TestClient) -> None:
    reply = client.get("/api/v1/no-such-thing")
    assert reply.status_code == 404
    assert set(reply.json()) == ERROR_KEYS
    assert reply.json()["error_code"] == "NOT_FOUND"


def test_wrong_method_is_405_in_the_unified_shape(client: TestClient) -> None:
    reply = client.delete("/health")
    assert reply.status_code == 405
    assert set(reply.json()) == ERROR_KEYS


def test_validation_errors_are_400_not_422(alice: Caller) -> None:
    reply = alice.post("/api/v1/scripts-manager/folders", json={"name": ""})
    assert reply.status_code == 400
    body = reply.json()
    assert set(body) == ERROR_KEYS
    assert body["error_code"] == "VALIDATION_ERROR"
    assert body["details"]["errors"][0]["field"] == "name"
    reply = alice.post(
        "/api/v1/scripts-manager/folders",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert reply.status_code == 400
    assert reply.json()["error_code"] == "VALIDATION_ERROR"
    reply = alice.get("/api/v1/scripts-manager/scripts/not-a-number")
    assert reply.status_code == 400


def test_deeply_nested_json_is_400_on_every_endpoint_that_takes_json(tmp_path: Path) -> None:
    """JSON nested past the parser's depth (about 1000 levels) is a bad request, on the routes
    FastAPI parses and on the execution route, which parses its own body; a deep input a script
    echoes back (deeper than a JSON answer may be) fails that run with a clear error, not a 500."""
    with live_server(tmp_path / "data") as server, httpx.Client(base_url=server.base) as api:
        credentials = {"login": "alice", "password": "correct horse battery"}
        assert api.post("/api/v1/auth/register", json=credentials).status_code == 201
        token = api.post("/api/v1/auth/login", json=credentials).json()["access_token"]
        api.headers["Authorization"] = f"Bearer {token}"
        echo = "def main(data):\n    return data\n"
        script = api.post(
            "/api/v1/scripts-manager/scripts-from-text",
            json={"filename": "echo.py", "display_name": "Echo", "content": echo},
        ).json()
        endpoints = [
            ("POST", "/api/v1/auth/register"),
            ("POST", "/api/v1/auth/login"),
            ("POST", "/api/v1/auth/tokens"),
            ("PATCH", "/api/v1/auth/onboarding-status"),
            ("POST", "/api/v1/scripts-manager/folders"),
            ("POST", "/api/v1/scripts-manager/scripts-from-text"),
            ("PUT", f"/api/v1/scripts-manager/scripts/{script['id']}"),
            ("POST", "/api/v1/scripts-manager/validate"),
            ("POST", "/api/v1/scripts/echo.py"),
        ]
        wrong = []
        for depth in (990, 5000, 100_000):
            for body in (b"[" * depth + b"]" * depth, b'{"data": ' * depth + b"{}" + b"}" * depth):
                for method, url in endpoints:
                    reply = api.request(
                        method, url, content=body, headers={"Content-Type": "application/json"}
                    )
                    answer = reply.json()
                    if (
                        reply.status_code != 400
                        or set(answer) != ERROR_KEYS
                        or answer["error_code"] != "VALIDATION_ERROR"
                        or "nested too deeply" not in answer["message"]
                    ):
                        wrong.append((depth, method, url, reply.status_code, reply.text[:200]))
        assert wrong == []
        deep = {"a": [[[[]]]]}
        for _ in range(300):
            deep = {"a": deep}
        reply = api.post("/api/v1/scripts/echo.py", json={"data": deep})
        outcome = reply.json()
        assert reply.status_code == 200 and outcome["success"] is False
        assert "nested deeper than 255 levels" in outcome["error"]
        assert api.get("/health").status_code == 200


def test_missing_and_invalid_tokens_are_401(client: TestClient) -> None:
    for headers in ({}, {"Authorization": "Bearer nonsense"}, {"Authorization": "Token abc"}):
        reply = client.get("/api/v1/scripts-manager/tree", headers=headers)
        assert reply.status_code == 401
        assert set(reply.json()) == ERROR_KEYS


def test_unexpected_errors_are_500_without_traces_or_paths(settings, alice: Caller) -> None:
    app = create_app(settings)
    views = app.state.services.views

    def explode(user: dict) -> dict:
        raise RuntimeError(f"secret detail at {settings.data_dir}/scripts.git")

    views.tree = explode
    with TestClient(app, raise_server_exceptions=False) as client:
        reply = client.get("/api/v1/scripts-manager/tree", headers=alice.headers)
    assert reply.status_code == 500
    assert reply.json() == {
        "error_code": "INTERNAL_ERROR",
        "message": "Internal server error",
        "details": {},
    }
    assert str(settings.data_dir) not in reply.text and "Traceback" not in reply.text


def test_json_content_type_on_get_and_delete_is_harmless(alice: Caller) -> None:
    script = alice.upload("a.py")
    headers = {"Content-Type": "application/json"}
    assert alice.get("/api/v1/scripts-manager/tree", headers=headers).status_code == 200
    reply = alice.delete(f"/api/v1/scripts-manager/scripts/{script['id']}", headers=headers)
    assert reply.status_code == 204
    assert reply.content == b""


def test_every_request_is_logged_with_user_and_without_secrets(
    alice: Caller, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    alice.get("/api/v1/scripts-manager/tree")
    logged = capsys.readouterr().err
    line = next(line for line in logged.splitlines() if "path=/api/v1/scripts-manager/tree" in line)
    for fact in ("request_id=", "user=alice", "method=GET", "status=200", "duration_ms="):
        assert fact in line
    assert alice.token not in logged


def test_the_web_uis_own_files_stay_out_of_the_info_log(
    client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert client.get("/ui/js/app.js").status_code == 200
    assert client.get("/ui/js/missing.js").status_code == 404
    assert client.get("/").status_code == 200
    logged = capsys.readouterr().err
    assert "path=/ui/js/app.js" not in logged  # a page load's assets: DEBUG only
    assert "path=/ui/js/missing.js" in logged  # a failure is worth a line
    assert re.search(r"path=/(\s|$)", logged, re.MULTILINE)  # the page itself


def test_gitscripts_serve_runs_the_real_service(tmp_path: Path) -> None:
    """`gitscripts serve` on embedded defaults (plus a port): a real server answering HTTP."""
    log = tmp_path / "server.log"
    with live_server(tmp_path / "data", log, ENVIRONMENT="production", LOG_LEVEL="INFO") as server:
        creds = {"login": "alice", "password": "password123"}
        assert httpx.post(f"{server.base}/api/v1/auth/register", json=creds).status_code == 201
        token = httpx.post(f"{server.base}/api/v1/auth/login", json=creds).json()["access_token"]
        reply = httpx.get(
            f"{server.base}/api/v1/scripts-manager/tree",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert reply.json() == {"root_scripts": [], "root_folders": []}
        assert (tmp_path / "data" / "scripts.git" / "HEAD").exists()
    # Production logs are JSON lines naming the request; no password or token in them.
    logs = log.read_text()
    assert '"path": "/api/v1/scripts-manager/tree"' in logs
    assert "password123" not in logs and token not in logs


def test_settings_read_the_original_variable_names(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from gitscripts.config import Settings

    for name, value in {
        "JWT_SECRET_KEY": "k" * 40,
        "JWT_ACCESS_TOKEN_EXPIRE_MINUTES": "5",
        "MAX_SCRIPT_EXECUTION_TIME": "7",
        "MAX_FILE_SIZE": "1234",
        "LOG_LEVEL": "DEBUG",
        "ENVIRONMENT": "production",
        "DEBUG": "true",
        "DATA_DIR": str(tmp_path),
    }.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert (
        settings.jwt_access_token_expire_minutes,
        settings.max_script_execution_time,
        settings.max_file_size,
        settings.log_level,
        settings.environment,
        settings.debug,
        settings.data_dir,
    ) == (5, 7, 1234, "DEBUG", "production", True, tmp_path)
    assert make_settings(tmp_path).repo_path == tmp_path / "scripts.git"
