"""With EXECUTOR=dask, a script's page shows its environment on each worker of the cluster.

The service, a real Dask scheduler and two real `gitscripts worker` processes come from
`tests.test_cluster` (one cluster for the module); the page is Chromium's, signed in as the
cluster's user. The workers install from their own package index, which lacks gsfixture 3.0:
a lock that pins it is one the service makes and no worker can build.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, expect

from tests.e2e.conftest import TOKEN_KEY
from tests.test_cluster import VERSION_OF, WORKERS, Cluster, _dependencies, _started


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with _started(tmp_path_factory.mktemp("cluster-ui")) as started:
        yield started


@pytest.fixture
def cluster_page(browser: Browser, cluster: Cluster) -> Iterator[Page]:
    """A tab on the cluster's service, signed in as its user (not the e2e session's server)."""
    context = browser.new_context(base_url=cluster.base, viewport={"width": 1280, "height": 800})
    context.add_init_script(
        f"localStorage.setItem({json.dumps(TOKEN_KEY)}, {json.dumps(cluster.token)});"
    )
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


def _on_both_workers(cluster: Cluster, script_id: int, state: str) -> dict[str, Any]:
    """The script's environment once both workers say `state` of it."""
    deadline = time.monotonic() + 60
    while (environment := _dependencies(cluster, script_id)["environment"])["workers"] != {
        name: state for name in WORKERS
    }:
        assert time.monotonic() < deadline, (environment, cluster.logs())
        time.sleep(0.2)
    return dict(environment)


def _environment(cluster: Cluster, key: str, worker: str) -> httpx.Response:
    return httpx.get(f"{cluster.base}/api/v1/environments/{key}", params={"worker": worker},
                     headers=cluster.auth, timeout=30)  # fmt: skip


def test_each_workers_state_shows_and_follows_the_builds(
    cluster: Cluster, cluster_page: Page
) -> None:
    page = cluster_page
    script = cluster.upload("ui-ready.py", VERSION_OF.replace(b"DEPENDENCY", b"gsfixture==2.0"))
    _on_both_workers(cluster, script["id"], "ready")

    # The page opens on builds still under way on both workers (the first answer says so), then
    # follows them, as it reads them from the service, until they are ready.
    def building(route: Route) -> None:
        answer = route.fetch().json()
        answer["environment"].update(state="building", workers=dict.fromkeys(WORKERS, "building"))
        route.fulfill(json=answer)

    page.route(f"**/api/v1/scripts-manager/scripts/{script['id']}/dependencies", building)
    page.goto(f"/#/scripts/{script['id']}")
    section = page.get_by_role("region", name="Dependencies")
    table = section.get_by_test_id("environment-workers")
    expect(table.get_by_test_id("environment-worker")).to_have_count(len(WORKERS))
    expect(table.get_by_test_id("environment-worker-state")).to_have_text(["building…"] * 2)
    for name in WORKERS:
        row = table.locator(f'[data-testid="environment-worker"][data-worker="{name}"]')
        expect(row.get_by_role("rowheader")).to_have_text(name)
        expect(row.get_by_test_id("environment-worker-state")).to_have_text("ready")
        expect(row.get_by_test_id("environment-worker-state")).to_have_class("badge ok")
        expect(row.get_by_test_id("environment-worker-log")).to_have_count(0)
    expect(section.get_by_test_id("environment-state")).to_have_text("ready")


def test_a_worker_that_could_not_build_shows_failed_with_its_own_log(
    cluster: Cluster, cluster_page: Page
) -> None:
    page = cluster_page
    script = cluster.upload("ui-newer.py", VERSION_OF.replace(b"DEPENDENCY", b"gsfixture==3.0"))
    key = _on_both_workers(cluster, script["id"], "failed")["key"]
    # Each worker remembers its own failure and log (docs/cluster.md); here both failed alike,
    # so each log is given words of its own worker's, for the page to show the right one.
    logs = {}
    for name in WORKERS:
        (failed,) = cluster.root.glob(f"{name}/gitscripts-worker-*/environments/{key}.failed")
        failed.write_text(failed.read_text() + f"(as {name} remembers it)\n")
        own = _environment(cluster, key, name)
        assert own.status_code == 200, own.text
        assert own.json()["state"] == "failed", own.json()
        assert f"as {name} remembers" in own.json()["log"], own.json()
        logs[name] = own.json()["log"]
    unknown = _environment(cluster, key, "no-such-worker")
    assert unknown.status_code == 404, unknown.text
    assert unknown.json()["error_code"] == "ENVIRONMENT_NOT_FOUND"
    assert unknown.json()["details"] == {"environment": key, "worker": "no-such-worker"}

    page.goto(f"/#/scripts/{script['id']}")
    section = page.get_by_role("region", name="Dependencies")
    expect(section.get_by_test_id("environment-state")).to_have_text("build failed")
    table = section.get_by_test_id("environment-workers")
    expect(table.get_by_test_id("environment-worker")).to_have_count(len(WORKERS))
    for name in WORKERS:
        row = table.locator(f'[data-testid="environment-worker"][data-worker="{name}"]')
        expect(row.get_by_role("rowheader")).to_have_text(name)
        expect(row.get_by_test_id("environment-worker-state")).to_have_text("build failed")
        expect(row.get_by_test_id("environment-worker-state")).to_have_class("badge failed")
        row.get_by_text(f"Build log on {name}").click()
        log = row.get_by_test_id("environment-worker-log")
        expect(log).to_contain_text("no version of gsfixture==3.0")
        expect(log).to_have_text(logs[name])
