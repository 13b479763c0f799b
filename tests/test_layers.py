"""What may import what: the core knows nothing of HTTP, and only `gitscripts/repo/` knows pygit2.

Read from the source (imports as the parser sees them), so a layer crossed by a new import fails
here with the module's name, before it shows anywhere else.
"""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from gitscripts import errors, http_errors

PACKAGE = Path(__file__).resolve().parent.parent / "gitscripts"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def modules() -> list[tuple[str, Path]]:
    return sorted((str(p.relative_to(PACKAGE)), p) for p in PACKAGE.rglob("*.py"))


def test_only_the_repository_facade_imports_pygit2() -> None:
    leaking = [
        name
        for name, path in modules()
        if not name.startswith("repo/")
        and any(m == "pygit2" or m.startswith("pygit2.") for m in imported_modules(path))
    ]
    assert leaking == []


@pytest.mark.parametrize(
    "module",
    [
        "errors.py",
        "files/service.py",
        "files/store.py",
        "githttp/service.py",
        "githttp/policy.py",
        "githttp/protocol.py",
        "repo/repository.py",
        "repo/rules.py",
        "history/diffs.py",
        "metrics.py",
        "runs/records.py",
        "runs/service.py",
        "runs/store.py",
    ],
)
def test_the_core_knows_nothing_of_http(module: str) -> None:
    web = {"fastapi", "starlette.requests", "starlette.responses", "starlette.exceptions"}
    found = imported_modules(PACKAGE / module)
    assert not {m for m in found if m in web or m.startswith("fastapi.")}


def test_every_domain_error_has_one_status_and_the_one_shape() -> None:
    for error_class in [c for _, c in inspect.getmembers(errors, inspect.isclass)]:
        if not issubclass(error_class, errors.AppError):
            continue
        assert not hasattr(error_class, "status_code"), error_class  # HTTP is the app's business
        if error_class.__init__ is not errors.AppError.__init__:
            continue  # takes its own arguments: in the table below
        error = error_class("message", path="a.py", unset=None)
        response = http_errors.error_response(error)
        assert 400 <= response.status_code < 600
        assert response.body == (
            b'{"error_code":"' + error_class.error_code.encode() + b'","message":"message",'
            b'"details":{"path":"a.py"}}'
        )


@pytest.mark.parametrize(
    ("error", "status", "headers"),
    [
        (errors.ScriptNotFound("x"), 404, {}),
        (errors.InvalidToken("x"), 401, {"www-authenticate": "Bearer"}),
        (errors.GitAuthRequired("x"), 401, {"www-authenticate": 'Basic realm="gitscripts"'}),
        (errors.RangeNotSatisfiable("x", size=10), 416, {"content-range": "bytes */10"}),
        (
            errors.TooManyExecutions("x", queue_limit=4, retry_after=3),
            429,
            {"retry-after": "3"},
        ),
        (errors.TooManyLoginAttempts("x", retry_after=7), 429, {"retry-after": "7"}),
        (errors.ScriptExistsReplaceRequired("x"), 409, {}),
        (errors.FileTooLarge("x"), 413, {}),
        (errors.FileSystemError("x"), 500, {}),
    ],
)
def test_a_family_decides_the_status_and_headers(
    error: errors.AppError, status: int, headers: dict[str, str]
) -> None:
    response = http_errors.error_response(error)
    assert response.status_code == status
    sent = {
        k: v for k, v in response.headers.items() if k not in ("content-length", "content-type")
    }
    assert sent == headers


def test_importing_the_files_router_registers_nothing() -> None:
    """The key convertor is registered by the router's builder, which the app factory calls."""
    check = (
        "import gitscripts.files.routes as routes\n"
        "from starlette.convertors import CONVERTOR_TYPES\n"
        "assert 'filekey' not in CONVERTOR_TYPES, 'registered at import'\n"
        "routes.files_router()\n"
        "assert 'filekey' in CONVERTOR_TYPES\n"
    )
    subprocess.run([sys.executable, "-c", check], check=True)
