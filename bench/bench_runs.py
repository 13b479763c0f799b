"""Run log benchmark: what recording every run costs, async runs, batches, and listing 1,000,000.

    uv run python bench/bench_runs.py            # the issue's numbers (a few minutes)
    uv run python bench/bench_runs.py --quick    # fewer samples, 100,000 records to list
    uv run python bench/bench_runs.py --help

It starts `gitscripts serve` on a fresh `DATA_DIR` and measures over keep-alive `httpx` clients:

1. a trivial synchronous run (p50) and the throughput of 8 concurrent clients on two servers at
   once, one with the run log off, their samples (and 8-client rounds) interleaved so that the
   machine's other load weighs on both alike: on the second a `sitecustomize` (in a temporary
   folder on `PYTHONPATH`, for that server only) makes `RunService._recorded` run the script
   without recording it, so the difference is what the log costs;
2. an asynchronous run from submit to result (`POST /api/v1/runs`, then `GET ?wait=`);
3. a batch of 1,000 trivial inputs (`POST /api/v1/runs/batch`), in inputs per second;
4. the first page of `GET /api/v1/runs` with 1,000,000 records in the log (written straight into
   its SQLite file while the server is stopped), for the user and filtered by status.

It prints one markdown table and always exits 0 (a missed target is printed, not asserted).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx
from _common import running_server, sign_in, work_directory

TRIVIAL = 'def main(data):\n    return {"x": 1}\n'
RUN = "/api/v1/scripts/trivial.py"
OFF = """
from gitscripts.executor.service import answer
from gitscripts.runs import service


async def _unrecorded(self, user, target, data, mode):
    return {**answer(target, await self.executor.run(user, target, data)), "run_id": None}


service.RunService._recorded = _unrecorded
"""


def setup(client: httpx.Client) -> None:
    sign_in(client, "bench")
    reply = client.post(
        "/api/v1/scripts-manager/scripts-from-text",
        json={"filename": "trivial.py", "display_name": "trivial", "content": TRIVIAL},
    )
    if reply.status_code not in (201, 409):
        raise RuntimeError(reply.text)


def sync_p50s(clients: list[httpx.Client], samples: int) -> list[float]:
    """The p50 of a trivial run on each server, their samples interleaved: whatever else the
    machine does weighs on both alike."""
    for client in clients:
        for _ in range(20):
            client.post(RUN, json={})
    timings: list[list[float]] = [[] for _ in clients]
    for _ in range(samples):
        for client, taken in zip(clients, timings, strict=True):
            began = time.perf_counter()
            reply = client.post(RUN, json={})
            taken.append((time.perf_counter() - began) * 1000)
            assert reply.json()["success"], reply.text
    return [statistics.median(taken) for taken in timings]


def throughput(base: str, bearer: str, seconds: float, clients: int = 8) -> float:
    done = [0] * clients
    stop = time.monotonic() + seconds

    def work(index: int) -> None:
        with httpx.Client(base_url=base, headers={"Authorization": bearer}, timeout=60) as c:
            while time.monotonic() < stop:
                if c.post(RUN, json={}).status_code == 200:
                    done[index] += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done) / (time.monotonic() - began)


def throughputs(clients: list[httpx.Client], seconds: float, rounds: int = 5) -> list[float]:
    """8-client throughput of each server, in alternating rounds (summed)."""
    rates: list[list[float]] = [[] for _ in clients]
    for _ in range(rounds):
        for client, rate in zip(clients, rates, strict=True):
            bearer = client.headers["Authorization"]
            rate.append(throughput(str(client.base_url), bearer, seconds / rounds))
    return [statistics.mean(rate) for rate in rates]


def async_p50(client: httpx.Client, samples: int) -> float:
    timings = []
    for _ in range(samples):
        began = time.perf_counter()
        run_id = client.post("/api/v1/runs", json={"path": "trivial.py"}).json()["id"]
        record = client.get(f"/api/v1/runs/{run_id}", params={"wait": 10}).json()
        timings.append((time.perf_counter() - began) * 1000)
        assert record["status"] == "succeeded", record
    return statistics.median(timings)


def batch_rate(client: httpx.Client, inputs: int) -> float:
    began = time.perf_counter()
    reply = client.post(
        "/api/v1/runs/batch", json={"path": "trivial.py", "inputs": [{}] * inputs}, timeout=600
    )
    took = time.perf_counter() - began
    results = reply.json()["results"]
    assert len(results) == inputs and all(r["success"] for r in results), reply.text[:500]
    return inputs / took


def fill_log(data_dir: Path, records: int, user_id: int) -> None:
    """`records` ended runs of `user_id`, written straight into the log's file."""
    from gitscripts.runs.records import Run, new_run_id
    from gitscripts.runs.store import RunStore

    store = RunStore(data_dir / "runs.sqlite3")
    now = time.time() - records / 1000
    statuses = ("succeeded", "failed", "timed_out")
    chunk = 50_000
    for start in range(0, records, chunk):
        batch = []
        for i in range(start, min(records, start + chunk)):
            moment = now + i / 1000
            batch.append(
                Run(
                    id=new_run_id(moment),
                    script_path="trivial.py",
                    script_id=1,
                    revision="main",
                    commit="0" * 40,
                    user_id=user_id,
                    user_login="bench",
                    mode="sync",
                    status=statuses[i % 3],
                    queued_at=moment,
                    timeout=300,
                    started_at=moment,
                    finished_at=moment + 0.004,
                    input={"i": i},
                    result={"x": 1},
                )
            )
        store.write(batch)
    store.close()


def listing_p50(client: httpx.Client, samples: int, **params: str) -> float:
    timings = []
    for _ in range(samples):
        began = time.perf_counter()
        reply = client.get("/api/v1/runs", params={"limit": "50", **params})
        timings.append((time.perf_counter() - began) * 1000)
        assert reply.status_code == 200 and len(reply.json()["runs"]) == 50, reply.text[:300]
    return statistics.median(timings)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples, 100,000 records")
    parser.add_argument("--keep", action="store_true", help="keep the data directories")
    args = parser.parse_args()
    samples = 100 if args.quick else 500
    seconds = 5.0 if args.quick else 15.0
    records = 100_000 if args.quick else 1_000_000
    rows: list[tuple[str, str, str, bool | None]] = []
    with work_directory("bench-runs-", args.keep) as work:
        # Run log off: the same service with the recording patched out.
        patch = work / "off"
        patch.mkdir()
        (patch / "sitecustomize.py").write_text(OFF)
        env = {"RUNS_RETENTION_COUNT": "10000000"}
        off_env = {**env, "PYTHONPATH": str(patch)}
        data_dir = work / "data"
        with (
            running_server(work / "off-data", work / "off.log", off_env) as off_base,
            httpx.Client(base_url=off_base, timeout=60) as off,
            running_server(data_dir, work / "on.log", env) as base,
            httpx.Client(base_url=base, timeout=60) as client,
        ):
            setup(off)
            setup(client)
            assert off.post(RUN, json={}).json()["run_id"] is None, "the patch is off"
            off_p50, on_p50 = sync_p50s([off, client], samples)
            off_rate, on_rate = throughputs([off, client], seconds * 2)
            async_ms = async_p50(client, max(50, samples // 5))
            batch_per_s = batch_rate(client, 1000)
            user_id = client.get("/api/v1/auth/me").json()["id"]
        began = time.monotonic()
        fill_log(data_dir, records, user_id)
        filled = time.monotonic() - began
        with (
            running_server(data_dir, work / "list.log", env) as base,
            httpx.Client(base_url=base, timeout=60) as client,
        ):
            sign_in(client, "bench")
            list_ms = listing_p50(client, 50)
            list_failed_ms = listing_p50(client, 50, status="failed")
            list_script_ms = listing_p50(client, 50, path="trivial.py")
    overhead = on_p50 - off_p50
    loss = 1 - on_rate / off_rate
    rows += [
        ("sync trivial p50, run log off", f"{off_p50:.2f} ms", "-", None),
        ("sync trivial p50, run log on", f"{on_p50:.2f} ms", "-", None),
        ("p50 overhead of the run log", f"{overhead:+.2f} ms", "<= 0.3 ms", overhead <= 0.3),
        ("8-client throughput, run log off", f"{off_rate:.0f} runs/s", "-", None),
        ("8-client throughput, run log on", f"{on_rate:.0f} runs/s", "-", None),
        ("throughput loss", f"{loss * 100:+.1f} %", "<= 10 %", loss <= 0.10),
        ("async submit to result p50", f"{async_ms:.1f} ms", "<= 10 ms", async_ms <= 10),
        ("batch of 1,000 trivial inputs", f"{batch_per_s:.0f} inputs/s", ">= 1,000/s",
         batch_per_s >= 1000),
        (f"list first page, {records:,} records", f"{list_ms:.1f} ms", "<= 20 ms", list_ms <= 20),
        ("  ... status=failed", f"{list_failed_ms:.1f} ms", "<= 20 ms", list_failed_ms <= 20),
        ("  ... path=trivial.py", f"{list_script_ms:.1f} ms", "<= 20 ms", list_script_ms <= 20),
    ]  # fmt: skip
    print(f"\n{records:,} records written into the log in {filled:.1f} s\n")
    print("| measure | value | target | result |")
    print("|---|---:|---|---|")
    for name, value, target, ok in rows:
        verdict = "-" if ok is None else ("PASS" if ok else "FAIL")
        print(f"| {name} | {value} | {target} | {verdict} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
