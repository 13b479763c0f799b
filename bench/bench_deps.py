"""Scripts with dependencies: what their environments cost, in one run on one machine.

    uv run python bench/bench_deps.py            # about a minute
    uv run python bench/bench_deps.py --quick    # fewer samples

One `gitscripts serve` on a fresh DATA_DIR whose only package source is a folder of small wheels
built here (`tests/wheelhouse.py`: nothing is downloaded), with EXECUTION_MAX_ENVIRONMENTS=4. A
script with dependencies arrives as users' will: pushed with git together with its lock (what
`uv lock --script` writes), so the push starts building its environment. Measured over HTTP:
- warm runs of a script with a dependency and of one without, calls interleaved (p50, p95);
  target: p50 within 1 ms;
- building an environment of one small package from a warm uv cache, as the service timed it
  (`build_seconds` of GET /api/v1/environments/{key}); target <= 2 s;
- the first run once it is built, its fork server's start included; target <= 1 s;
- 20 distinct environments run in turn (3 rounds) with 4 warm at most: failed runs (target: none)
  and the peak memory of the service with its fork servers and their runners (the sum of their
  proportional set sizes, sampled every 20 ms; and the service's own peak RSS).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx
from _common import (
    descendants,
    git_environment,
    percentile,
    server_process,
    sign_in,
    work_directory,
)
from bench_execution import TRIVIAL, create_script, series
from bench_git import git

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests' wheelhouse

from gitscripts.config import Settings
from gitscripts.deps import locks
from tests.wheelhouse import FixturePackage, build_wheel, build_wheelhouse

LOGIN = "bench"
WARM_OVERHEAD_MS = 1.0
BUILD_SECONDS = 2.0
FIRST_RUN_MS = 1000.0
ENVIRONMENTS = 20
MAX_WARM = 4


def script(requirement: str, module: str) -> str:
    return (
        f'# /// script\n# dependencies = ["{requirement}"]\n# ///\n'
        f"import {module}\n\n"
        "def main(data):\n"
        f'    return {{"version": {module}.VERSION}}\n'
    )


class Pusher:
    """A clone of the service's repository that commits scripts with their locks and pushes."""

    def __init__(self, base: str, token: str, workdir: Path, wheelhouse: Path) -> None:
        port = base.rsplit(":", 1)[1]
        self.env = git_environment(workdir / "home", LOGIN)
        self.clone = workdir / "clone"
        url = f"http://{LOGIN}:{token}@127.0.0.1:{port}/git/scripts.git"
        git("clone", "--quiet", url, str(self.clone), cwd=workdir, env=self.env)
        # Locks are made here as a user would make them, with uv, against the same wheels.
        self.resolver = Settings(
            data_dir=workdir / "resolver",
            packages_find_links=str(wheelhouse),
            packages_no_index=True,
        )

    def push(self, scripts: dict[str, str]) -> dict[str, str]:
        """Commit and push `scripts` with their locks; their environments' keys by path."""
        keys = {}
        for path, source in scripts.items():
            lock = locks.resolve(self.resolver, path, source.encode())
            (self.clone / path).write_text(source)
            (self.clone / locks.lock_path(path)).write_bytes(lock)
            keys[path] = locks.environment_key(lock)
        git("add", "-A", cwd=self.clone, env=self.env)
        git("commit", "--quiet", "-m", f"{len(scripts)} script(s)", cwd=self.clone, env=self.env)
        git("pull", "--quiet", "--rebase", "origin", "main", cwd=self.clone, env=self.env)
        git("push", "--quiet", "origin", "HEAD:main", cwd=self.clone, env=self.env)
        return keys


def wait_ready(client: httpx.Client, key: str, limit: float = 120) -> dict[str, object]:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        reply = client.get(f"/api/v1/environments/{key}")
        if reply.status_code == 200 and reply.json()["state"] != "building":
            state: dict[str, object] = reply.json()
            if state["state"] != "ready":
                raise RuntimeError(f"environment {key} failed:\n{state['log']}")
            return state
        time.sleep(0.02)
    raise RuntimeError(f"environment {key} was not built in {limit:g} s")


def run_once(client: httpx.Client, path: str) -> tuple[float, dict]:
    started = time.perf_counter()
    reply = client.post(f"/api/v1/scripts/{path}", json={"data": {}})
    elapsed = (time.perf_counter() - started) * 1000
    return elapsed, reply.json() if reply.status_code == 200 else {"success": False}


def process_tree(pid: int) -> set[int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    parents[int(entry)] = int(handle.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    return descendants(parents, pid)


def pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class MemoryWatch:
    """The peak of the summed PSS of a process tree, sampled in a thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kb = 0
        self.most_processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            tree = process_tree(self.pid)
            self.peak_kb = max(self.peak_kb, sum(pss_kb(pid) for pid in tree))
            self.most_processes = max(self.most_processes, len(tree))
            self._stop.wait(0.02)

    def __enter__(self) -> MemoryWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=400, help="warm runs of each script")
    parser.add_argument("--builds", type=int, default=5, help="environments built and timed")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over the 20 environments")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    args = parser.parse_args()
    if args.quick:
        args.samples, args.builds, args.rounds = 100, 3, 1
    with work_directory("gitscripts-bench-deps-", args.keep) as workdir:
        wheelhouse = build_wheelhouse(workdir / "wheelhouse")
        for n in range(ENVIRONMENTS):
            name = f"gsbench{n}"
            build_wheel(wheelhouse, FixturePackage(name, "1.0", {f"{name}/__init__.py":
                                                                 f"VERSION = '{n}'\n"}))  # fmt: skip
        env = {
            "EXECUTOR": "fork",
            "PACKAGES_FIND_LINKS": str(wheelhouse),
            "PACKAGES_NO_INDEX": "true",
            "EXECUTION_MAX_ENVIRONMENTS": str(MAX_WARM),
            "EXECUTION_DIR": str(workdir / "exec"),
        }
        with (
            server_process(workdir / "data", workdir / "server.log", env) as (base, process),
            httpx.Client(base_url=base, timeout=120) as client,
        ):
            sign_in(client, LOGIN)
            token = client.post("/api/v1/auth/tokens", json={"name": "bench"}).json()["token"]
            pusher = Pusher(base, token, workdir, wheelhouse)

            # Warm runs: with a dependency against without, interleaved.
            create_script(client, "plain.py", TRIVIAL)
            key = pusher.push({"deps.py": script("gsfixture==1.0", "gsfixture")})["deps.py"]
            wait_ready(client, key)
            series(client, "plain.py", 30)
            series(client, "deps.py", 30)
            plain: list[float] = []
            deps: list[float] = []
            for _ in range(args.samples):
                plain += series(client, "plain.py", 1)
                deps += series(client, "deps.py", 1)

            # Builds from a warm uv cache (its wheel is there since deps.py's build), each of
            # a lock of its own, and each one's first run.
            specifiers = ["gsfixture>=1,<2", "gsfixture<2", "gsfixture~=1.0", "gsfixture==1.*",
                          "gsfixture>=0.5,<2", "gsfixture<1.5", "gsfixture!=2.0"]  # fmt: skip
            builds: list[float] = []
            first_runs: list[float] = []
            for n, specifier in enumerate(specifiers[: args.builds]):
                path = f"build{n}.py"
                key = pusher.push({path: script(specifier, "gsfixture")})[path]
                builds.append(float(wait_ready(client, key)["build_seconds"]))  # type: ignore[arg-type]
                elapsed, outcome = run_once(client, path)
                if not outcome.get("success"):
                    raise RuntimeError(f"{path} failed: {outcome}")
                first_runs.append(elapsed)

            # 20 environments in turn, 4 warm at most.
            cycled = {f"env{n}.py": script(f"gsbench{n}==1.0", f"gsbench{n}")
                      for n in range(ENVIRONMENTS)}  # fmt: skip
            for key in pusher.push(cycled).values():
                wait_ready(client, key)
            failed = 0
            cycle_runs: list[float] = []
            with MemoryWatch(process.pid) as memory:
                for _ in range(args.rounds):
                    for n in range(ENVIRONMENTS):
                        elapsed, outcome = run_once(client, f"env{n}.py")
                        cycle_runs.append(elapsed)
                        ok = outcome.get("success") and outcome["result"] == {"version": str(n)}
                        failed += 0 if ok else 1
            service_peak = vm_hwm_mb(process.pid)

    overhead = statistics.median(deps) - statistics.median(plain)
    build_p50 = statistics.median(builds)
    first_p50 = statistics.median(first_runs)

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    lines = [
        "| measurement | value | target | result |",
        "|---|---:|---|---|",
        f"| warm run without dependencies, p50 / p95 (ms) | {statistics.median(plain):.2f} / "
        f"{percentile(plain, 95):.2f} | - | - |",
        f"| warm run with a dependency, p50 / p95 (ms) | {statistics.median(deps):.2f} / "
        f"{percentile(deps, 95):.2f} | - | - |",
        f"| warm run overhead of the environment, p50 (ms) | {overhead:+.2f} | "
        f"<= {WARM_OVERHEAD_MS:g} ms | {verdict(overhead <= WARM_OVERHEAD_MS)} |",
        f"| environment build, one small package, warm uv cache, p50 / max (s) | "
        f"{build_p50:.2f} / {max(builds):.2f} | <= {BUILD_SECONDS:g} s | "
        f"{verdict(max(builds) <= BUILD_SECONDS)} |",
        f"| first run after the build, fork server start included, p50 / max (ms) | "
        f"{first_p50:.0f} / {max(first_runs):.0f} | <= {FIRST_RUN_MS:.0f} ms | "
        f"{verdict(max(first_runs) <= FIRST_RUN_MS)} |",
        f"| {ENVIRONMENTS} environments in turn, {MAX_WARM} warm at most: failed runs | "
        f"{failed} of {len(cycle_runs)} | 0 | {verdict(failed == 0)} |",
        f"| ... each run (a fork server started, one stopped), p50 / p95 (ms) | "
        f"{statistics.median(cycle_runs):.0f} / {percentile(cycle_runs, 95):.0f} | - | - |",
        f"| ... peak memory: service + fork servers + runners, summed PSS (MB) | "
        f"{memory.peak_kb / 1024:.0f} ({memory.most_processes} processes at most) | bounded | - |",
        f"| ... peak RSS of the service process itself (MB) | {service_peak:.0f} | - | - |",
    ]
    print()
    print("\n".join(lines))
    print()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; "
          f"{args.samples} warm runs each, {len(builds)} builds, {args.rounds} round(s)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
