"""EXECUTOR=dask benchmark: the local fork engine against Dask workers, over HTTP.

    uv run python bench/bench_dask.py            # the issue's numbers (a few minutes)
    uv run python bench/bench_dask.py --quick    # fewer samples, shorter load tests

It starts, on loopback: a service with the local fork engine (the baseline), then a Dask
scheduler, a service with `EXECUTOR=dask` on a DATA_DIR holding 10,000 scripts in 100 folders,
and `gitscripts worker` processes (`--nthreads 1` each). It measures:
- the p50 of a trivial script, fork engine vs. through Dask (two workers), sequential calls;
- the throughput of a CPU-bound 50 ms script with 1 worker, then 2 (8 concurrent clients);
- the first run at a new revision on a worker (the worker fetches what it lacks of the tree
  and writes the checkout): the very first (the whole 10,000-script tree), then after each
  edit of one script (the new root and one folder).
It prints one markdown table and always exits 0 (a missed target is printed).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from _common import (
    Result,
    free_port,
    latency_table,
    running_server,
    sign_in,
    targets_verdict,
    timed,
    work_directory,
)
from bench_manager import LOGIN, folder_name, populate

RUN = "/api/v1/scripts"
TRIVIAL = 'def main(data):\n    return {"x": 1}\n'
CPU_50MS = """import time
def main(data):
    end = time.process_time() + 0.05
    while time.process_time() < end:
        pass
    return {"ok": True}
"""
TOKEN = "bench-worker-token-" + "x" * 32


def _upload(client: httpx.Client, name: str, source: str, folder: int | None = None) -> None:
    reply = client.post(
        "/api/v1/scripts-manager/scripts-from-text",
        json={"filename": name, "display_name": name, "content": source, "replace": True,
              "folder_id": folder},
    )  # fmt: skip
    if reply.status_code not in (200, 201):
        raise RuntimeError(reply.text)


def _folder_id(client: httpx.Client, path: str) -> int:
    for number in range(1, 1000):
        reply = client.get(f"/api/v1/scripts-manager/folders/{number}")
        if reply.status_code == 200 and reply.json()["path"] == path:
            return number
    raise RuntimeError(f"no folder {path}")


def _latency(client: httpx.Client, path: str, samples: int, name: str) -> Result:
    result = Result(name)
    for _ in range(5):  # warm: fork servers, checkouts
        timed(lambda: client.post(f"{RUN}/{path}", json={}))
    for _ in range(samples):
        elapsed, _ = timed(lambda: client.post(f"{RUN}/{path}", json={}))
        result.samples.append(elapsed)
    return result


def _throughput(base: str, bearer: str, path: str, clients: int, seconds: float) -> float:
    done = 0
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def work() -> None:
        nonlocal done
        with httpx.Client(base_url=base, headers={"Authorization": bearer}, timeout=60) as c:
            while time.monotonic() < stop:
                reply = c.post(f"{RUN}/{path}", json={})
                if reply.status_code == 200 and reply.json()["success"]:
                    with lock:
                        done += 1

    threads = [threading.Thread(target=work) for _ in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return done / (time.monotonic() - started)


def _start_worker(root: Path, scheduler: str, base: str, name: str) -> subprocess.Popen[bytes]:
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    env.update(WORKER_TOKEN=TOKEN, LOG_LEVEL="WARNING")
    command = [sys.executable, "-m", "gitscripts", "worker", "--scheduler", scheduler,
               "--service", base, "--nthreads", "1", "--name", name,
               "--local-directory", str(root / name)]  # fmt: skip
    log = (root / f"{name}.log").open("wb")
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


def _wait_for_workers(base: str, count: int) -> None:
    deadline = time.monotonic() + 120
    while httpx.get(f"{base}/health").json()["cluster"]["workers"] != count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{count} workers did not join")
        time.sleep(0.1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=300, help="latency calls per engine")
    parser.add_argument("--seconds", type=float, default=15.0, help="each throughput test")
    parser.add_argument("--revisions", type=int, default=10, help="new revisions measured")
    parser.add_argument("--scripts", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the data directories")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    if args.quick:
        args.samples, args.seconds, args.revisions = 100, 5.0, 5
    results: list[Result] = []
    notes: list[str] = []
    with work_directory("bench-dask-", args.keep) as root:
        # -- the baseline: the local fork engine --------------------------------------------
        with (
            running_server(root / "fork-data", root / "fork.log") as base,
            httpx.Client(base_url=base, timeout=60) as client,
        ):
            sign_in(client, LOGIN)
            _upload(client, "trivial.py", TRIVIAL)
            results.append(_latency(client, "trivial.py", args.samples, "trivial, fork engine"))
        # -- the cluster ---------------------------------------------------------------------
        print(f"Populating {args.scripts} scripts ...", flush=True)
        populate(root / "data", args.scripts, 100)
        port = free_port()
        scheduler_address = f"tcp://127.0.0.1:{port}"
        # On uvloop, as docs/cluster.md advises (each run's messages cross the scheduler's loop).
        scheduler = subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
             "--port", str(port), "--no-dashboard"],
            stdout=(root / "scheduler.log").open("wb"), stderr=subprocess.STDOUT,
            env={**os.environ, "DASK_DISTRIBUTED__ADMIN__EVENT_LOOP": "uvloop"},
        )  # fmt: skip
        workers: list[subprocess.Popen[bytes]] = []
        env = {"EXECUTOR": "dask", "DASK_SCHEDULER_ADDRESS": scheduler_address,
               "WORKER_TOKEN": TOKEN}  # fmt: skip
        try:
            with running_server(root / "data", root / "dask.log", env) as base:
                client = httpx.Client(base_url=base, timeout=60)
                bearer = sign_in(client, LOGIN)
                workers.append(_start_worker(root, scheduler_address, base, "w1"))
                _wait_for_workers(base, 1)
                # The first run on a worker: the whole 10,000-script tree.
                script = f"{folder_name(0)}/script_00000.py"
                elapsed, _ = timed(lambda: client.post(f"{RUN}/{script}", json={}))
                results.append(Result("first run, whole repository (cold worker)", [elapsed],
                                      f"{args.scripts} scripts, 100 folders"))  # fmt: skip
                _upload(client, "trivial.py", TRIVIAL)
                _upload(client, "cpu.py", CPU_50MS)
                timed(lambda: client.post(f"{RUN}/cpu.py", json={}))
                one = _throughput(base, bearer, "cpu.py", 8, args.seconds)
                workers.append(_start_worker(root, scheduler_address, base, "w2"))
                _wait_for_workers(base, 2)
                # Both warm: two at once (one after the other, runs stay in one worker's slot).
                _throughput(base, bearer, "cpu.py", 2, 1.0)
                two = _throughput(base, bearer, "cpu.py", 8, args.seconds)
                results.append(_latency(client, "trivial.py", args.samples, "trivial, Dask"))
                # A new revision each round: one script of the run's folder changes (the worker
                # then lacks the new root and that folder of 100 scripts).
                folder = _folder_id(client, folder_name(0))
                first = Result("first run at a new revision (fetch + checkout)")
                first.note = "one script of the run's folder changed per revision"
                for number in range(args.revisions):
                    _upload(client, "trivial.py", TRIVIAL + f"# revision {number}\n", folder)
                    elapsed, _ = timed(lambda: client.post(f"{RUN}/{script}", json={}))
                    first.samples.append(elapsed)
                results.append(first)
                client.close()
        finally:
            for process in workers:
                process.terminate()
            for process in workers:
                process.wait(timeout=30)
            scheduler.terminate()
            scheduler.wait(timeout=30)
    fork = results[0].p50
    dask = next(r for r in results if r.operation == "trivial, Dask").p50
    targets = {
        "trivial, Dask": fork + 3,
        "first run at a new revision (fetch + checkout)": 300,
    }
    print()
    print(latency_table(results, targets))
    print()
    ratio = two / one if one else float("nan")
    verdict = "PASS" if ratio >= 1.8 else "FAIL"
    print("| throughput, CPU-bound 50 ms script, 8 clients | runs/s |")
    print("|---|---:|")
    print(f"| 1 worker (--nthreads 1) | {one:.1f} |")
    print(f"| 2 workers (--nthreads 1 each) | {two:.1f} |")
    print(f"| ratio (target >= 1.8x) | {ratio:.2f}x {verdict} |")
    print()
    print(f"Added latency through Dask: {dask - fork:+.1f} ms at p50 (target <= 3 ms).")
    load_after = os.getloadavg()
    print(f"Machine: {os.cpu_count()} cores, shared with other work during the run; load average "
          f"(1 min) {load_before[0]:.2f} at the start, {load_after[0]:.2f} at the end.")  # fmt: skip
    notes.append(targets_verdict(results, targets))
    print("\n".join(notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
