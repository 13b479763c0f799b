"""Browser tests: Playwright's `page` against one real `gitscripts serve` for the whole session.

Playwright never downloads a browser here: it drives the system Chromium (Debian's `chromium`).
Each test gets a fresh user (`new_user`), so tests share the server but not their accounts; the
folder tree is shared, so give what a test creates a name of its own. The server writes its log
to `server.log` beside its data directory under pytest's session temp dir.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Locator, Page

from tests.conftest import PASSWORD, Caller, LiveServer, live_server, register
from tests.wheelhouse import build_wheelhouse

TOKEN_KEY = "gitscripts.token"  # where the UI keeps its API token in localStorage


@pytest.fixture(scope="session")
def e2e_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e") / "data"


@pytest.fixture(scope="session")
def e2e_server(e2e_data_dir: Path) -> Iterator[LiveServer]:
    # Login throttling as gentle as the rest of the suite's, for tests of a wrong password;
    # packages from the tests' own wheels, never the internet.
    wheels = build_wheelhouse(e2e_data_dir.parent / "wheels")
    with live_server(
        e2e_data_dir,
        e2e_data_dir.parent / "server.log",
        PACKAGES_FIND_LINKS=str(wheels),
        PACKAGES_NO_INDEX="true",
        LOG_LEVEL="INFO",
        LOGIN_THROTTLE_BASE_DELAY="0.2",
        LOGIN_THROTTLE_MAX_DELAY="1.0",
    ) as server:
        yield server


@pytest.fixture(scope="session")
def base_url(e2e_server: LiveServer) -> str:
    """pytest-playwright's own fixture, pointed at the server: `page.goto("/")` opens the UI."""
    return e2e_server.base


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    chromium = shutil.which("chromium") or shutil.which("/usr/bin/chromium")
    if chromium is None:
        pytest.fail(
            "the browser tests need the system Chromium: apt-get install chromium "
            "(Playwright is not allowed to download its own)",
            pytrace=False,
        )
    # Chromium refuses to start its sandbox as root; containers often give /dev/shm only 64 MB,
    # too little for Chromium's shared memory.
    args = ["--disable-dev-shm-usage"]
    if os.geteuid() == 0:
        args.append("--no-sandbox")
    return {**browser_type_launch_args, "executable_path": chromium, "args": args}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    return {"viewport": {"width": 1280, "height": 800}, **browser_context_args}


@pytest.fixture(scope="session")
def e2e_client(e2e_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=e2e_server.base, timeout=60) as client:
        yield client


@dataclass(frozen=True)
class User:
    """Someone to sign in as: `login` and `password` for the UI's form, and `api`, the same user
    logged in through the HTTP API for test setup (`api.token`, `api.folder()`, `api.upload()`)."""

    login: str
    password: str
    api: Caller


@pytest.fixture
def new_user(e2e_client: httpx.Client) -> User:
    login = f"ui-{uuid.uuid4().hex[:12]}"
    # `register` speaks to any httpx client, not only to the in-process TestClient.
    return User(login, PASSWORD, register(e2e_client, login, PASSWORD))  # type: ignore[arg-type]


@pytest.fixture
def signed_in_page(page: Page, new_user: User, base_url: str) -> Page:
    """`page` at `/`, signed in as `new_user` the way the UI remembers a sign-in."""
    # Seeded once per tab, not on every navigation, so that signing out survives a reload.
    page.add_init_script(
        f"""
        if (location.origin === {json.dumps(base_url)}
            && !sessionStorage.getItem("gitscripts.e2e.seeded")) {{
            localStorage.setItem({json.dumps(TOKEN_KEY)}, {json.dumps(new_user.api.token)});
            sessionStorage.setItem("gitscripts.e2e.seeded", "1");
        }}
        """
    )
    page.goto("/")
    return page


def drop_files(target: Locator, files: dict[str, str]) -> None:
    """Drop files (name: text) on `target` as a desktop's file manager would: dragenter,
    dragover and drop, with the files in the events' DataTransfer."""
    target.evaluate(
        """(element, files) => {
            const transfer = new DataTransfer();
            for (const [name, text] of Object.entries(files))
                transfer.items.add(new File([text], name));
            for (const kind of ["dragenter", "dragover", "drop"])
                element.dispatchEvent(new DragEvent(kind, {
                    bubbles: true, cancelable: true, dataTransfer: transfer,
                }));
        }""",
        files,
    )
