"""GET /metrics: Prometheus' text format, who may read it, and counters that move with the runs,
the requests and the file API's bytes."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from gitscripts.app import create_app
from tests.conftest import HELLO, make_settings, register

TOKEN = "metrics-token-0123456789"


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample (0 when it is not there yet)."""
    for family in text_string_to_metric_families(text):
        for each in family.samples:
            if each.name == name and all(each.labels.get(k) == v for k, v in labels.items()):
                return float(each.value)
    return 0.0


def scrape(client: TestClient) -> str:
    reply = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    return reply.text


def test_counters_move_with_runs_requests_and_file_bytes(data_dir: Path) -> None:
    with TestClient(create_app(make_settings(data_dir, metrics_token=TOKEN))) as client:
        alice = register(client, "alice")
        alice.upload("hello.py", HELLO)
        alice.post(
            "/api/v1/scripts-manager/scripts-from-text",
            json={"filename": "fails.py", "display_name": "f", "content": "def main(d):\n 1/0\n"},
        )
        before = scrape(client)
        for path in ("hello.py", "hello.py", "fails.py"):
            assert alice.post(f"/api/v1/scripts/{path}", json={}).status_code == 200
        batch = alice.post("/api/v1/runs/batch", json={"path": "hello.py", "inputs": [{}, {}]})
        assert batch.status_code == 200
        assert alice.put("/api/v1/files/m.bin", content=b"x" * 5000).status_code in (200, 201)
        assert alice.get("/api/v1/files/m.bin").content == b"x" * 5000
        after = scrape(client)

        def moved(name: str, **labels: str) -> float:
            return sample(after, name, **labels) - sample(before, name, **labels)

        assert moved("gitscripts_runs_total", mode="sync", outcome="succeeded") == 2
        assert moved("gitscripts_runs_total", mode="sync", outcome="failed") == 1
        assert moved("gitscripts_runs_total", mode="batch", outcome="succeeded") == 2
        assert moved("gitscripts_run_duration_seconds_count", mode="sync") == 3
        assert moved("gitscripts_run_queue_wait_seconds_count", mode="batch") == 2
        route = "/api/v1/scripts/{logical_path:path}"
        assert (
            moved("gitscripts_http_requests_total", method="POST", route=route, status="2xx") == 3
        )
        assert moved("gitscripts_file_bytes_total", direction="in") >= 5000
        assert moved("gitscripts_file_bytes_total", direction="out") >= 5000
        assert sample(after, "gitscripts_runs_running") == 0
        assert sample(after, "gitscripts_run_queue_depth") == 0
        assert sample(after, "gitscripts_fork_servers_warm") == 1
        # Bounded labels: no raw path, no user.
        labels = " ".join(re.findall(r"\{[^}]*\}", after))
        assert "hello.py" not in labels and "alice" not in labels and "m.bin" not in labels
        unmatched = client.get("/no/such/thing")
        assert unmatched.status_code == 404
        assert 'route="unmatched"' in scrape(client)


def test_metrics_are_open_on_loopback_or_behind_a_token(data_dir: Path) -> None:
    def client(address: str, **settings: str) -> TestClient:
        return TestClient(create_app(make_settings(data_dir, **settings)), client=(address, 5000))

    for address in ("127.0.0.1", "::1"):
        with client(address) as local:
            assert local.get("/metrics").status_code == 200
    with client("10.1.2.3") as remote:
        reply = remote.get("/metrics")
        assert reply.status_code == 403 and reply.json()["error_code"] == "PERMISSION_DENIED"
    with client("10.1.2.3", metrics_token=TOKEN) as remote:
        assert remote.get("/metrics").status_code == 401
        reply = remote.get("/metrics", headers={"Authorization": "Bearer wrong"})
        assert reply.status_code == 401 and reply.json()["error_code"] == "INVALID_TOKEN"
        assert "gitscripts_runs" in scrape(remote)


def test_async_runs_are_counted(data_dir: Path) -> None:
    app = create_app(make_settings(data_dir))
    with TestClient(app, client=("127.0.0.1", 5000)) as local:
        alice = register(local, "alice")
        alice.upload("hello.py", HELLO)
        run_id = alice.post("/api/v1/runs", json={"path": "hello.py"}).json()["id"]
        record = alice.get(f"/api/v1/runs/{run_id}", params={"wait": 10}).json()
        assert record["status"] == "succeeded"
        text = local.get("/metrics").text
    assert sample(text, "gitscripts_runs_total", mode="async", outcome="succeeded") == 1
