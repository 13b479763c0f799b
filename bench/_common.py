"""Helpers shared by the benchmarks: a real server in a subprocess, timing, percentiles.

Nothing here imports the package: a benchmark talks to `python -m gitscripts.cli serve` over HTTP,
like any client would.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

SECRET = "bench-secret-key-that-is-long-enough-for-hs256-signing"
PASSWORD = "bench-password-123"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_health(
    base_url: str, process: subprocess.Popen[bytes], log_path: Path, limit: float = 120
) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            if httpx.get(base_url + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server did not answer /health in time:\n{log_path.read_text()}")


@contextlib.contextmanager
def running_server(
    data_dir: Path, log_path: Path, extra_env: dict[str, str] | None = None
) -> Iterator[str]:
    """`gitscripts serve` on 127.0.0.1 and a free port; yields its base URL, stops it at the end."""
    with server_process(data_dir, log_path, extra_env) as (base_url, _):
        yield base_url


@contextlib.contextmanager
def server_process(
    data_dir: Path, log_path: Path, extra_env: dict[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`running_server`, also yielding the server's process (to watch its memory, say).

    Always stopped, also when the body raises: SIGTERM first (so the app shuts its own workers
    down), SIGKILL if it has not exited 15 s later.
    """
    port = free_port()
    env = {
        **os.environ,
        "DATA_DIR": str(data_dir),
        "JWT_SECRET_KEY": SECRET,
        "LOG_LEVEL": "WARNING",
        "ENVIRONMENT": "development",
        # Only the benchmark user's login pays for the password hash: keep it cheap.
        "PASSWORD_HASH_TIME_COST": "1",
        "PASSWORD_HASH_MEMORY_KIB": "256",
        **(extra_env or {}),
    }
    command = [sys.executable, "-m", "gitscripts.cli", "serve", "--host", "127.0.0.1"]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [*command, "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(base_url, process, log_path)
        yield base_url, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def sign_in(client: httpx.Client, login: str, password: str = PASSWORD) -> str:
    """Register `login` (if new) and log in; set and return the Bearer header value."""
    client.post("/api/v1/auth/register", json={"login": login, "password": password})
    reply = client.post("/api/v1/auth/login", json={"login": login, "password": password})
    if reply.status_code != 200:
        raise RuntimeError(f"login failed: {reply.status_code} {reply.text}")
    bearer = f"Bearer {reply.json()['access_token']}"
    client.headers["Authorization"] = bearer
    return bearer


def remove_tree(path: Path) -> None:
    """Delete a directory tree, including read-only directories (checkout caches are)."""
    if not path.exists():
        return
    for directory, _, _ in os.walk(path):
        with contextlib.suppress(OSError):
            os.chmod(directory, 0o755)
    shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def work_directory(prefix: str, keep: bool) -> Iterator[Path]:
    """A temporary directory for one benchmark run, removed afterwards unless asked to keep it."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        if keep:
            print(f"Data kept in {path}")
        else:
            remove_tree(path)


def percentile(samples: list[float], pct: int) -> float:
    """Nearest rank: the smallest sample with at least `pct`% of samples at or below it."""
    ordered = sorted(samples)
    return ordered[max(0, -(-pct * len(ordered) // 100) - 1)]


@dataclass
class Result:
    operation: str
    samples: list[float] = field(default_factory=list)  # milliseconds
    note: str = ""

    @property
    def p50(self) -> float:
        return statistics.median(self.samples)

    @property
    def p95(self) -> float:
        return percentile(self.samples, 95)


def timed(call: Callable[[], httpx.Response], expect: int = 200) -> tuple[float, httpx.Response]:
    """(milliseconds, reply) of one call; raises if the status is not `expect`."""
    start = time.perf_counter()
    reply = call()
    elapsed = (time.perf_counter() - start) * 1000
    if reply.status_code != expect:
        raise RuntimeError(f"expected {expect}, got {reply.status_code}: {reply.text[:500]}")
    return elapsed, reply


def latency_table(results: list[Result], targets_ms: dict[str, float]) -> str:
    """A markdown table of latency results, each judged against its p50 target if it has one."""
    lines = [
        "| operation | samples | p50 ms | p95 ms | target (p50) | result | notes |",
        "|---|---:|---:|---:|---|---|---|",
    ]
    for result in results:
        target = targets_ms.get(result.operation)
        verdict = "-" if target is None else ("PASS" if result.p50 <= target else "FAIL")
        lines.append(
            f"| {result.operation} | {len(result.samples)} | {result.p50:.1f} | "
            f"{result.p95:.1f} | {'-' if target is None else f'<= {target:.0f} ms'} | "
            f"{verdict} | {result.note} |"
        )
    return "\n".join(lines)


def targets_verdict(results: list[Result], targets_ms: dict[str, float]) -> str:
    missed = [r.operation for r in results if r.p50 > targets_ms.get(r.operation, float("inf"))]
    return "All targets met." if not missed else f"Targets MISSED: {', '.join(missed)}"


def git_environment(home: Path, author: str) -> dict[str, str]:
    """A git client's environment of its own: no user or system config, no prompts, `author`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    home.mkdir(parents=True, exist_ok=True)
    env.update(
        HOME=str(home),
        GIT_CONFIG_GLOBAL=str(home / ".gitconfig"),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_TERMINAL_PROMPT="0",
        GIT_AUTHOR_NAME=author,
        GIT_AUTHOR_EMAIL=f"{author}@example.com",
        GIT_COMMITTER_NAME=author,
        GIT_COMMITTER_EMAIL=f"{author}@example.com",
        LC_ALL="C",
    )
    return env


def descendants(parents: dict[int, int], root: int) -> set[int]:
    """`root` and every process below it, given each process's parent (from /proc)."""
    members, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [child for child, of in parents.items() if of == parent]
        members.update(children)
        frontier.extend(children)
    return members
