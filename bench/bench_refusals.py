"""Refusal benchmark: do refused runs (429) eat the capacity of the runs that are let in?

    uv run python bench/bench_refusals.py             # 2 x 10 s (about half a minute)
    uv run python bench/bench_refusals.py --seconds 5 --storm 64
    uv run python bench/bench_refusals.py --help      # --clients, --storm, --keep

It starts `gitscripts serve` (fork engine) with MAX_CONCURRENT_EXECUTIONS=2 and a queue just big
enough for the steady clients (MAX_QUEUED_EXECUTIONS = clients - 2), creates `trivial.py`, then
measures, in one run:

1. **baseline**: `--clients` threads (8), one keep-alive `httpx.Client` each, running the trivial
   script back to back for `--seconds` (a refused run is retried at once);
2. **storm**: the same, while `--storm` more clients (128) run the same script as fast as they can
   and retry at once whenever they are refused. The storm runs in its own process, as raw HTTP/1.1
   over keep-alive sockets (asyncio), so that the storm's own cost is the smallest it can be and
   the server's cost of refusing is what shows;
3. **baseline again**, so that a machine getting busier or quieter during the run shows.

It prints one markdown table: successful runs/s of the steady clients, of the storm and of everyone,
the 429s/s, and each phase's successful runs against the mean of the two baselines (target for the
storm: >= 80%). Loopback only; every loop is bounded by the clock. It always exits 0 (a missed
target is printed).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import sys
import threading
import time
from dataclasses import dataclass

import httpx
from _common import running_server, sign_in, work_directory

RUN = "/api/v1/scripts/trivial.py"
TRIVIAL = 'def main(data):\n    return {"x": 1}\n'
SLOTS = 2
TARGET_RATIO = 0.80


@dataclass
class Phase:
    name: str
    seconds: float
    steady_ok: int = 0
    steady_refused: int = 0
    storm_ok: int = 0
    storm_refused: int = 0
    storm_other: int = 0

    def rate(self, count: int) -> float:
        return count / self.seconds


# -- the steady clients ---------------------------------------------------------------------------
def steady_clients(base_url: str, bearer: str, clients: int, seconds: float) -> tuple[int, int]:
    """(successful runs, refusals) of `clients` threads running the trivial script back to back;
    a refused run is retried at once."""
    barrier = threading.Barrier(clients + 1)
    ok = [0] * clients
    refused = [0] * clients
    deadline = 0.0

    def worker(n: int) -> None:
        with httpx.Client(base_url=base_url, timeout=60, headers={"Authorization": bearer}) as c:
            c.get("/health")  # connect before the clock starts
            barrier.wait()
            while time.perf_counter() < deadline:
                reply = c.post(RUN, json={"data": {}})
                if reply.status_code == 200 and reply.json().get("success"):
                    ok[n] += 1
                elif reply.status_code == 429:
                    refused[n] += 1
                else:
                    raise RuntimeError(f"unexpected answer {reply.status_code}: {reply.text}")

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    deadline = time.perf_counter() + seconds  # read by the workers once they pass the barrier
    barrier.wait()
    for thread in threads:
        thread.join()
    return sum(ok), sum(refused)


# -- the storm ------------------------------------------------------------------------------------
async def _storm_client(
    host: str, port: int, request: bytes, deadline: float, counts: dict[int, int]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < deadline:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            counts[status] = counts.get(status, 0) + 1
            if b"connection: close" in head.lower():
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
    finally:
        writer.close()


def _storm(
    base_url: str, bearer: str, clients: int, seconds: float, start: float, results: object
) -> None:
    """In its own process: `clients` connections sending runs back to back from `start` on."""
    host, port = base_url.removeprefix("http://").split(":")
    body = b'{"data": {}}'
    request = (
        f"POST {RUN} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: {bearer}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    counts: dict[int, int] = {}

    async def storm() -> None:
        await asyncio.sleep(max(0.0, start - time.time()))
        deadline = time.perf_counter() + seconds
        await asyncio.gather(
            *(_storm_client(host, int(port), request, deadline, counts) for _ in range(clients))
        )

    asyncio.run(storm())
    results.put(counts)  # type: ignore[attr-defined]


def steady_phase(name: str, base_url: str, bearer: str, args: argparse.Namespace) -> Phase:
    phase = Phase(name, args.seconds)
    print(f"{name}: {args.clients} clients for {args.seconds:g} s", flush=True)
    phase.steady_ok, phase.steady_refused = steady_clients(
        base_url, bearer, args.clients, args.seconds
    )
    return phase


def storm_phase(base_url: str, bearer: str, args: argparse.Namespace) -> Phase:
    phase = Phase("storm", args.seconds)
    print(f"storm: the same, plus {args.storm} clients retrying refused runs", flush=True)
    results: multiprocessing.Queue[dict[int, int]] = multiprocessing.Queue()
    start = time.time() + 1.0  # the storm process needs a moment to start
    storm_seconds = args.seconds + 1.0
    process = multiprocessing.Process(
        target=_storm, args=(base_url, bearer, args.storm, storm_seconds, start, results)
    )
    process.start()
    time.sleep(max(0.0, start - time.time()) + 0.5)  # the storm is raging when the clock starts
    phase.steady_ok, phase.steady_refused = steady_clients(
        base_url, bearer, args.clients, args.seconds
    )
    counts = results.get(timeout=args.seconds + 60)
    process.join(timeout=30)
    # The storm ran a little longer than the steady clients: its counts are scaled to their time.
    scale = args.seconds / storm_seconds
    phase.storm_ok = round(counts.pop(200, 0) * scale)
    phase.storm_refused = round(counts.pop(429, 0) * scale)
    phase.storm_other = round(sum(counts.values()) * scale)
    return phase


def measure(base_url: str, bearer: str, args: argparse.Namespace) -> list[Phase]:
    """Baseline, storm, baseline again: the storm is compared with the mean of the two, so that a
    machine getting busier or quieter during the run shows, and skews the ratio less."""
    return [
        steady_phase("baseline", base_url, bearer, args),
        storm_phase(base_url, bearer, args),
        steady_phase("baseline again", base_url, bearer, args),
    ]


def table(phases: list[Phase], args: argparse.Namespace) -> str:
    baselines = [phase for phase in phases if phase.name != "storm"]
    base_total = sum(phase.rate(phase.steady_ok) for phase in baselines) / len(baselines)
    lines = [
        "| phase | steady clients' runs/s | their 429s/s | storm's runs/s | storm's 429s/s | "
        "all successful runs/s | vs mean baseline | target | result |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    storm_phases = [phase for phase in phases if phase.name == "storm"]
    for phase in phases:
        total = phase.rate(phase.steady_ok + phase.storm_ok)
        ratio = total / base_total if base_total else 0.0
        is_storm = phase in storm_phases
        verdict = ("PASS" if ratio >= TARGET_RATIO else "FAIL") if is_storm else "-"
        lines.append(
            f"| {phase.name} ({args.clients}{f' + {args.storm}' if is_storm else ''} clients) | "
            f"{phase.rate(phase.steady_ok):.0f} | {phase.rate(phase.steady_refused):.0f} | "
            f"{phase.rate(phase.storm_ok):.0f} | {phase.rate(phase.storm_refused):.0f} | "
            f"{total:.0f} | {ratio:.0%} | {f'>= {TARGET_RATIO:.0%}' if is_storm else '-'} | "
            f"{verdict} |"
        )
    for phase in storm_phases:
        if phase.storm_other:
            lines.append(f"\nThe storm also got {phase.storm_other} answers other than 200 or 429.")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8, help="steady clients")
    parser.add_argument("--storm", type=int, default=128, help="clients retrying refused runs")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    parser.add_argument("--keep", action="store_true", help="keep the data directory and log")
    args = parser.parse_args(argv)
    if args.clients <= SLOTS:
        parser.error(f"--clients must be more than {SLOTS} (the queue holds clients - {SLOTS})")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with work_directory("gs-bench-refusals-", args.keep) as workdir:
        env = {
            "EXECUTOR": "fork",
            "MAX_CONCURRENT_EXECUTIONS": str(SLOTS),
            "MAX_QUEUED_EXECUTIONS": str(args.clients - SLOTS),
            "EXECUTION_DIR": str(workdir / "exec"),
        }
        load_before = os.getloadavg()[0]
        with running_server(workdir / "data", workdir / "server.log", env) as base_url:
            with httpx.Client(base_url=base_url, timeout=60) as client:
                bearer = sign_in(client, "bench")
                reply = client.post(
                    "/api/v1/scripts-manager/scripts-from-text",
                    json={"filename": "trivial.py", "display_name": "trivial", "content": TRIVIAL},
                )
                if reply.status_code != 201:
                    raise RuntimeError(f"could not create the script: {reply.text}")
                for _ in range(20):  # warm: the checkout, the fork server
                    client.post(RUN, json={"data": {}})
            phases = measure(base_url, bearer, args)
        print(
            f"\n## Refused runs under load ({os.cpu_count()} CPUs, Python "
            f"{sys.version.split()[0]}, MAX_CONCURRENT_EXECUTIONS={SLOTS}, "
            f"MAX_QUEUED_EXECUTIONS={args.clients - SLOTS}, client and server on this machine)\n"
        )
        print(table(phases, args))
        print(
            f"\n1-minute load average: {load_before:.2f} at the start, "
            f"{os.getloadavg()[0]:.2f} at the end (anything else running skews the numbers)."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
