"""Runs in the browser: the Runs page (filters in the address, pages, live status), a run's page
(its fields, Replay, Cancel), a script's recent runs in its Run panel and on its page, and who
sees what."""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from tests.conftest import HELLO, PASSWORD, live_server, register
from tests.e2e.conftest import TOKEN_KEY, User
from tests.test_runs import SLEEPER, _running

SLOW = b"import time\n\ndef main(data):\n    time.sleep(data.get('seconds', 2))\n    return {}\n"
FAILS = b"def main(data):\n    raise ValueError('no porosity')\n"
CHATTY = (
    b"import time\n\n"
    b"def main(data):\n"
    b"    print('step', data.get('step'), 'done')\n"
    b"    time.sleep(30)\n"
)


def sync_run(user: User, path: str, data: Any = None) -> dict[str, Any]:
    reply = user.api.post(f"/api/v1/scripts/{path}", json={"data": data or {}})
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def submit(user: User, path: str, data: Any = None) -> dict[str, Any]:
    reply = user.api.post("/api/v1/runs", json={"path": path, "data": data or {}})
    assert reply.status_code == 202, reply.text
    return dict(reply.json())


def record(user: User, run_id: str, wait: float = 0) -> dict[str, Any]:
    reply = user.api.get(f"/api/v1/runs/{run_id}", params={"wait": wait})
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def status_of(page: Page, run_id: str) -> Any:
    return page.locator(f"tr[data-run-id='{run_id}']").get_by_test_id("run-status")


def test_the_runs_page_filters_pages_and_follows_a_running_run(
    signed_in_page: Page, new_user: User
) -> None:
    hello = new_user.api.upload(f"{new_user.login}-hello.py", HELLO)
    fails = new_user.api.upload(f"{new_user.login}-fails.py", FAILS)
    slow = new_user.api.upload(f"{new_user.login}-slow.py", SLOW)
    first = sync_run(new_user, hello["logical_path"], {"name": "one"})
    failed = sync_run(new_user, fails["logical_path"])
    last = sync_run(new_user, hello["logical_path"], {"name": "two"})
    page = signed_in_page
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Runs").click()

    rows = page.get_by_test_id("runs").locator("tbody tr")
    expect(rows).to_have_count(3)
    # Newest first, with what a user looks for in each.
    expect(rows.first).to_have_attribute("data-run-id", last["run_id"])
    expect(rows.first).to_contain_text(hello["logical_path"])
    expect(rows.first).to_contain_text("Succeeded")
    expect(rows.first).to_contain_text(new_user.login)
    expect(rows.first).to_contain_text(re.compile(r"[\d.]+ (ms|s)"))
    expect(rows.first.get_by_test_id("run-commit")).to_have_attribute(
        "href", f"#/commits/{last['revision']}"
    )
    expect(rows.last).to_have_attribute("data-run-id", first["run_id"])

    # Filters are kept in the address: a reload shows the same runs.
    page.get_by_label("Status").select_option("failed")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"#/runs\?status=failed$"))
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-run-id", failed["run_id"])
    page.reload()
    expect(rows).to_have_count(1)
    expect(page.get_by_label("Status")).to_have_value("failed")
    page.get_by_label("Status").select_option("")
    page.get_by_label("Script path").fill(hello["logical_path"])
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(2)

    # Pages of two: the next is older, and the first comes back.
    page.goto("/#/runs?limit=2")
    expect(rows).to_have_count(2)
    page.get_by_role("link", name="Older runs").click()
    expect(page).to_have_url(re.compile(r"before=\w+"))
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-run-id", first["run_id"])
    expect(page.get_by_role("link", name="Older runs")).to_have_count(0)
    page.get_by_role("link", name="Newest runs").click()
    expect(rows.first).to_have_attribute("data-run-id", last["run_id"])

    # A run going on is followed without reloading the page, until it ends.
    page.goto("/#/runs")
    expect(rows).to_have_count(3)
    running = submit(new_user, slow["logical_path"], {"seconds": 2})
    page.get_by_role("button", name="Refresh").click()
    expect(status_of(page, running["id"])).to_have_text(re.compile("Queued|Running"))
    page.evaluate("window.__samePage = true")
    expect(status_of(page, running["id"])).to_have_text("Succeeded", timeout=15_000)
    assert page.evaluate("window.__samePage") is True


def test_a_runs_page_shows_its_fields_replays_and_cancels(
    signed_in_page: Page, new_user: User
) -> None:
    hello = new_user.api.upload(f"{new_user.login}-hello.py", HELLO)
    first = sync_run(new_user, hello["logical_path"], {"name": "Ada", "value": 4})
    page = signed_in_page
    page.goto(f"/#/runs/{first['run_id']}")

    fields = page.get_by_test_id("run-fields")
    expect(fields).to_contain_text(first["run_id"])
    expect(fields).to_contain_text("synchronous")
    expect(fields).to_contain_text(new_user.login)
    for name in ("Queued", "Started", "Finished", "Queue wait", "Run time", "Timeout"):
        expect(fields.locator("dt", has_text=re.compile(f"^{name}$"))).to_have_count(1)
    expect(fields.get_by_test_id("run-commit")).to_have_attribute(
        "href", f"#/commits/{first['revision']}"
    )
    expect(fields.get_by_role("link", name=hello["logical_path"])).to_have_attribute(
        "href", f"#/scripts/{hello['id']}"
    )
    assert json.loads(page.get_by_test_id("run-input").inner_text()) == {"name": "Ada", "value": 4}
    expect(page.get_by_test_id("run-result-json")).to_contain_text('"processed_value": 8')
    expect(page.get_by_test_id("run-status")).to_have_text("Succeeded")
    # A synchronous run that has ended: nothing to cancel.
    expect(page.get_by_role("button", name="Cancel")).to_have_count(0)

    page.get_by_role("button", name="Replay").click()
    expect(page.get_by_test_id("replay-of")).to_have_text(first["run_id"])
    expect(page.get_by_test_id("run-status")).to_have_text("Succeeded", timeout=15_000)
    replay_id = page.evaluate("location.hash").rsplit("/", 1)[1]
    assert replay_id != first["run_id"]
    replayed = record(new_user, replay_id)
    assert replayed["replay_of"] == first["run_id"] and replayed["mode"] == "replay"
    assert replayed["commit"] == first["revision"]
    expect(page.get_by_test_id("run-fields")).to_contain_text("replay")
    expect(page.get_by_test_id("run-result-json")).to_contain_text('"processed_value": 8')
    page.get_by_test_id("replay-of").click()
    expect(page).to_have_url(re.compile(f"#/runs/{first['run_id']}$"))

    # A running run can be cancelled; its processes are gone.
    sleeper = new_user.api.post(
        "/api/v1/scripts-manager/scripts-from-text",
        json={"filename": f"{new_user.login}-sleeper.py", "display_name": "s", "content": SLEEPER},
    ).json()
    marker = f"{300 + uuid.uuid4().int % 1000}.{uuid.uuid4().int % 10_000}"
    running = submit(new_user, sleeper["logical_path"], {"marker": marker})
    page.goto(f"/#/runs/{running['id']}")
    expect(page.get_by_test_id("run-status")).to_have_text("Running", timeout=15_000)
    deadline = time.monotonic() + 10
    while not _running(marker):
        assert time.monotonic() < deadline, "the script did not start its child"
        time.sleep(0.05)
    page.get_by_role("button", name="Cancel").click()
    expect(page.get_by_test_id("run-status")).to_have_text("Cancelled")
    expect(page.get_by_test_id("run-error")).to_have_text(f"cancelled by {new_user.login}")
    expect(page.get_by_role("button", name="Cancel")).to_have_count(0)
    assert record(new_user, running["id"])["status"] == "cancelled"
    time.sleep(0.3)
    assert _running(marker) == []


def test_the_run_panel_keeps_a_history_to_rerun_load_and_cancel(
    signed_in_page: Page, new_user: User
) -> None:
    script = new_user.api.upload(f"{new_user.login}-hello.py", HELLO)
    page = signed_in_page
    page.goto(f"/#/scripts/{script['id']}/run")
    # The default timeout is the asynchronous runs' longest (MAX_ASYNC_EXECUTION_TIME).
    expect(page.get_by_label("Timeout (seconds)")).to_have_attribute(
        "placeholder", "3600 (default)"
    )

    payload = page.get_by_label("Input (JSON object passed to main)")
    payload.fill('{"name": "first", "value": 1}')
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.get_by_test_id("run-result-json")).to_contain_text("Hello, first!")
    history = page.get_by_test_id("recent-runs").locator("tbody tr")
    expect(history).to_have_count(1)
    expect(history.first).to_contain_text("Succeeded")
    expect(history.first).to_contain_text(new_user.login)
    expect(history.first).to_contain_text("(main)")
    payload.fill('{"name": "second", "value": 2}')
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.get_by_test_id("run-result-json")).to_contain_text("Hello, second!")
    expect(history).to_have_count(2)

    # Load the older run's input into the form, then run the older one again in one click.
    history.nth(1).get_by_role("button", name="Load").click()
    expect(payload).to_have_value(json.dumps({"name": "first", "value": 1}, indent=2))
    payload.fill("{}")
    history.nth(1).get_by_role("button", name="Run again").click()
    expect(page.get_by_test_id("run-result-json")).to_contain_text("Hello, first!")
    expect(history).to_have_count(3)
    newest = history.first.get_attribute("data-run-id")
    assert newest and record(new_user, newest)["input"] == {"name": "first", "value": 1}
    expect(payload).to_have_value(json.dumps({"name": "first", "value": 1}, indent=2))


def test_the_run_panel_cancels_a_running_run_and_shows_a_timed_out_runs_output(
    signed_in_page: Page, new_user: User
) -> None:
    sleeper = new_user.api.post(
        "/api/v1/scripts-manager/scripts-from-text",
        json={"filename": f"{new_user.login}-sleeper.py", "display_name": "s", "content": SLEEPER},
    ).json()
    marker = f"{300 + uuid.uuid4().int % 1000}.{uuid.uuid4().int % 10_000}"
    page = signed_in_page
    page.goto(f"/#/scripts/{sleeper['id']}/run")
    page.get_by_label("Input (JSON object passed to main)").fill(json.dumps({"marker": marker}))
    page.get_by_role("button", name="Run", exact=True).click()
    progress = page.get_by_test_id("run-progress")
    expect(progress.get_by_test_id("run-status")).to_have_text("Running", timeout=15_000)
    # Its elapsed time counts on.
    elapsed = progress.get_by_test_id("run-duration")
    shown = elapsed.inner_text()
    expect(elapsed).not_to_have_text(shown, timeout=3000)
    expect(elapsed).to_contain_text("so far")
    deadline = time.monotonic() + 10
    while not _running(marker):
        assert time.monotonic() < deadline, "the script did not start its child"
        time.sleep(0.05)
    page.get_by_role("button", name="Cancel").click()
    result = page.get_by_test_id("run-result")
    expect(result.get_by_test_id("run-status")).to_have_text("Cancelled")
    expect(page.get_by_test_id("run-error")).to_have_text(f"cancelled by {new_user.login}")
    expect(page.get_by_role("button", name="Run", exact=True)).to_be_enabled()
    expect(page.get_by_test_id("recent-runs").locator("tbody tr").first).to_contain_text(
        "Cancelled"
    )
    time.sleep(0.3)
    assert _running(marker) == []

    # A run stopped at its timeout shows what it printed before.
    chatty = new_user.api.upload(f"{new_user.login}-chatty.py", CHATTY)
    page.goto(f"/#/scripts/{chatty['id']}/run")
    page.get_by_label("Input (JSON object passed to main)").fill('{"step": 7}')
    page.get_by_label("Timeout (seconds)").fill("1")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(result.get_by_test_id("run-status")).to_have_text("Timed out", timeout=15_000)
    expect(page.get_by_test_id("run-error")).to_contain_text("timed out after 1 seconds")
    expect(page.get_by_test_id("run-stdout")).to_contain_text("step 7 done")


def test_the_script_page_lists_its_runs_to_open_load_or_run_again(
    signed_in_page: Page, new_user: User
) -> None:
    script = new_user.api.upload(f"{new_user.login}-hello.py", HELLO)
    ran = sync_run(new_user, script["logical_path"], {"name": "page"})
    page = signed_in_page
    page.goto(f"/#/scripts/{script['id']}")
    history = page.get_by_test_id("recent-runs").locator("tbody tr")
    expect(history).to_have_count(1)
    expect(history.first).to_contain_text("Succeeded")

    history.first.get_by_role("link", name="Load into the Run form").click()
    payload = page.get_by_label("Input (JSON object passed to main)")
    expect(payload).to_have_value(json.dumps({"name": "page"}, indent=2))
    expect(page).not_to_have_url(re.compile("from="))  # a reload does not load it again

    page.goto(f"/#/scripts/{script['id']}/history")
    history.first.get_by_role("link", name="Run again").click()
    expect(page.get_by_test_id("run-result-json")).to_contain_text("Hello, page!")
    expect(page).not_to_have_url(re.compile("rerun="))
    expect(history).to_have_count(2)

    page.goto(f"/#/scripts/{script['id']}")
    history.nth(1).get_by_test_id("run-link").click()
    expect(page).to_have_url(re.compile(f"#/runs/{ran['run_id']}$"))
    page.go_back()
    page.get_by_role("link", name="All runs of this script").click()
    expect(page.get_by_test_id("runs").locator("tbody tr")).to_have_count(2)
    expect(page.get_by_test_id("runs-script-filter")).to_be_visible()


def test_a_user_sees_only_their_own_runs(
    signed_in_page: Page, new_user: User, e2e_client: Any
) -> None:
    alice = register(e2e_client, f"ui-alice-{uuid.uuid4().hex[:8]}", PASSWORD)
    script = alice.upload(f"{alice.login}-hello.py", HELLO)
    reply = alice.post(f"/api/v1/scripts/{script['logical_path']}", json={"data": {}})
    theirs = reply.json()["run_id"]
    mine = sync_run(new_user, script["logical_path"])["run_id"]
    page = signed_in_page
    page.goto("/#/runs")
    rows = page.get_by_test_id("runs").locator("tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-run-id", mine)
    expect(page.get_by_label("User")).to_have_count(0)  # only admins choose whose runs
    # Nor on the script's page, nor by address.
    page.goto(f"/#/scripts/{script['id']}")
    history = page.get_by_test_id("recent-runs").locator("tbody tr")
    expect(history).to_have_count(1)
    expect(history.first).to_have_attribute("data-run-id", mine)
    page.goto(f"/#/runs/{theirs}")
    expect(page.get_by_role("alert")).to_contain_text(f"Run {theirs} is not yours")


def test_a_batch_run_links_to_the_runs_of_its_batch(signed_in_page: Page, new_user: User) -> None:
    script = new_user.api.upload(f"{new_user.login}-hello.py", HELLO)
    inputs = [{"name": "a"}, {"name": "b"}]
    reply = new_user.api.post(
        "/api/v1/runs/batch", json={"path": script["logical_path"], "inputs": inputs}
    )
    batch = reply.json()
    sync_run(new_user, script["logical_path"])  # in no batch
    page = signed_in_page
    page.goto(f"/#/runs/{batch['results'][0]['run_id']}")
    expect(page.get_by_test_id("run-fields")).to_contain_text("batch")
    page.get_by_test_id("run-batch").click()
    expect(page.get_by_test_id("runs-batch-filter")).to_contain_text(batch["batch_id"])
    rows = page.get_by_test_id("runs").locator("tbody tr")
    expect(rows).to_have_count(2)
    shown = {rows.nth(n).get_attribute("data-run-id") for n in range(2)}
    assert shown == {result["run_id"] for result in batch["results"]}


def test_without_kept_results_the_run_panel_runs_synchronously(page: Page, tmp_path: Path) -> None:
    # A service whose run log keeps no results: an asynchronous run's result could not be read.
    with (
        live_server(tmp_path / "data", RUNS_STORE_DATA="false") as server,
        httpx.Client(base_url=server.base, timeout=60) as client,
    ):
        user = register(client, "nodata", PASSWORD)  # type: ignore[arg-type]
        script = user.upload("hello.py", HELLO)
        token = json.dumps(user.token)
        page.add_init_script(f"localStorage.setItem({json.dumps(TOKEN_KEY)}, {token})")
        page.goto(f"{server.base}/#/scripts/{script['id']}/run")
        expect(page.get_by_label("Timeout (seconds)")).to_have_attribute(
            "placeholder", "300 (default)"
        )
        page.get_by_label("Input (JSON object passed to main)").fill('{"name": "kept"}')
        page.get_by_role("button", name="Run", exact=True).click()
        expect(page.get_by_test_id("run-result-json")).to_contain_text("Hello, kept!")
        history = page.get_by_test_id("recent-runs").locator("tbody tr")
        expect(history).to_have_count(1)
        run_id = history.first.get_attribute("data-run-id")
        assert user.get(f"/api/v1/runs/{run_id}").json()["mode"] == "sync"
        # Its input was not kept: nothing to load or run again.
        expect(history.first.get_by_role("button")).to_have_count(0)
