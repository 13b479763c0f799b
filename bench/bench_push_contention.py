"""Pushes while the API writes: do `git push`es land while API writers keep `main` moving?

    uv run python bench/bench_push_contention.py               # 50 writers, 2 pushers, 30 s
    uv run python bench/bench_push_contention.py --seconds 10  # a quick run
    uv run python bench/bench_push_contention.py --ref main    # only plain `git push HEAD:main`

Against `gitscripts serve` in a subprocess, on loopback, for a bounded time:

- `--writers` API writers (threads, one user `writer`), each replacing its own script in its own
  folder (`api-NN/script.py`) in a loop through `POST /scripts-from-text` (one commit each);
- `--pushers` git pushers (the real `git` client, user `pusher`), each in its own clone editing its
  own script (`push-N/script.py`): commit, `git push origin HEAD:<ref>`; on a refusal
  `git pull --rebase` and push again, at most `--tries` times, then give up on that commit.

It is run once per pushed ref (`--ref`): `main` (what most people type) and `refs/for/main` (the
service lands the push on main itself; see the README's push section). The table counts pushes
attempted, landed, tries per landed push (p50, max), refusals by kind, and API writes/s. The target
(issue "Hardening from outside reviews", item 7): every push lands within 3 tries.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from _common import git_environment, percentile, running_server, sign_in, work_directory

TRIES_TARGET = 3
API = "/api/v1/scripts-manager"
MAIN = "refs/heads/main"


def source(author: str, number: int) -> str:
    return f"def main(data: dict) -> dict:\n    return {{'by': {author!r}, 'n': {number}}}\n"


@dataclass
class PushStats:
    attempted: int = 0  # commits someone tried to land
    landed: int = 0
    given_up: int = 0
    tries: list[int] = field(default_factory=list)  # per landed push
    refusals: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


def refusal_kind(stderr: str) -> str:
    if "fetch first" in stderr:
        return "fetch first"
    if "failed to update ref" in stderr or "cannot lock ref" in stderr:
        return "failed to update ref"
    return "other"


def git(clone: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args], cwd=clone, env=env, capture_output=True, text=True, timeout=120
    )


def writer(
    base_url: str,
    bearer: str,
    label: str,
    number: int,
    stop: threading.Event,
    counts: list[int],
) -> None:
    with httpx.Client(base_url=base_url, timeout=60, headers={"Authorization": bearer}) as client:
        name = f"api-{label}-{number:02d}"
        folder: int | None = None
        for version in itertools.count():
            if stop.is_set():
                return
            try:
                if folder is None:
                    folder = client.post(f"{API}/folders", json={"name": name}).json()["id"]
                reply = client.post(
                    f"{API}/scripts-from-text",
                    json={
                        "filename": "script.py",
                        "display_name": f"api {number}",
                        "content": source(f"api-{number}", version),
                        "folder_id": folder,
                        "replace": True,
                    },
                )
            except httpx.TransportError:
                continue  # 50 connections opening at once: one may be reset; keep writing
            if reply.status_code == 201:
                counts[number] += 1


def pusher(
    url: str,
    ref: str,
    work: Path,
    env: dict[str, str],
    number: int,
    tries: int,
    stop: threading.Event,
    stats: PushStats,
) -> None:
    clone = work / f"clone-{ref.replace('/', '-')}-{number}"
    if git(work, env, "clone", "--quiet", url, str(clone)).returncode != 0:
        raise RuntimeError("clone failed")
    # As the README advises for refs/for/main: the clone lacks the commit the server advertises
    # as main, and without negotiating git would send its whole history with every push.
    negotiate = [] if ref in ("main", MAIN) else ["-c", "push.negotiate=true"]
    folder = clone / f"push-{ref.replace('/', '-')}-{number}"
    folder.mkdir()
    for version in itertools.count():
        if stop.is_set():
            return
        (folder / "script.py").write_text(source(f"push-{number}", version))
        git(clone, env, "add", "-A")
        git(clone, env, "commit", "--quiet", "-m", f"push {number}.{version}")
        with stats.lock:
            stats.attempted += 1
        for attempt in range(1, tries + 1):
            pushed = git(clone, env, *negotiate, "push", "origin", f"HEAD:{ref}")
            if pushed.returncode == 0:
                with stats.lock:
                    stats.landed += 1
                    stats.tries.append(attempt)
                break
            kind = refusal_kind(pushed.stderr)
            with stats.lock:
                stats.refusals[kind] += 1
                if kind == "other" and stats.refusals[kind] == 1:
                    print(f"  first other refusal:\n{pushed.stderr.strip()[-400:]}")
            git(clone, env, "pull", "--quiet", "--rebase", "origin", "main")
        else:
            with stats.lock:
                stats.given_up += 1
            # Start the next commit from a clean, current main.
            git(clone, env, "pull", "--quiet", "--rebase", "origin", "main")
        if ref not in ("main", MAIN):
            # The service landed the commit on main (perhaps as a merge): catch up, as told.
            git(clone, env, "pull", "--quiet", "--rebase", "origin", "main")


def run_round(
    base_url: str, url: str, bearer: str, ref: str, args: argparse.Namespace, work: Path
) -> tuple[PushStats, float]:
    stop = threading.Event()
    counts = [0] * args.writers
    stats = PushStats()
    env = git_environment(work / "home", "pusher")
    label = ref.replace("/", "-")
    writers = [
        threading.Thread(target=writer, args=(base_url, bearer, label, n, stop, counts))
        for n in range(args.writers)
    ]
    pushers = [
        threading.Thread(target=pusher, args=(url, ref, work, env, n, args.tries, stop, stats))
        for n in range(args.pushers)
    ]
    for thread in writers:
        thread.start()
    time.sleep(1)  # the writers' folders exist and they are writing
    before = sum(counts)
    started = time.monotonic()
    for thread in pushers:
        thread.start()
    time.sleep(args.seconds)
    stop.set()
    writes = sum(counts) - before
    elapsed = time.monotonic() - started
    for thread in pushers + writers:
        thread.join()
    return stats, writes / elapsed


def table(rows: list[tuple[str, PushStats, float]], writers: int, pushers: int) -> str:
    lines = [
        "| pushed ref | pushes | landed | gave up | tries p50 | tries max | fetch first "
        "| failed to update ref | other refusals | API writes/s | target |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for ref, stats, rate in rows:
        met = stats.attempted > 0 and stats.given_up == 0 and max(stats.tries or [99]) <= 3
        p50 = statistics.median(stats.tries) if stats.tries else float("nan")
        lines.append(
            f"| {ref} | {stats.attempted} | {stats.landed} | {stats.given_up} | {p50:.0f} | "
            f"{max(stats.tries) if stats.tries else '-'} | {stats.refusals['fetch first']} | "
            f"{stats.refusals['failed to update ref']} | {stats.refusals['other']} | "
            f"{rate:.0f} | {'PASS' if met else 'FAIL'} |"
        )
    lines.append("")
    lines.append(
        f"{writers} API writers, {pushers} pushers; target: every push lands within "
        f"{TRIES_TARGET} tries (a push still pending when the time is up counts as attempted)."
    )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=50)
    parser.add_argument("--pushers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=30.0, help="per pushed ref")
    parser.add_argument("--tries", type=int, default=5, help="pushes per commit before giving up")
    parser.add_argument(
        "--ref",
        action="append",
        help="pushed ref (repeatable); default: main and refs/for/main",
    )
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    refs = args.ref or ["main", "refs/for/main"]
    with work_directory("gitscripts-bench-push-", args.keep) as workdir:
        with running_server(workdir / "data", workdir / "server.log") as base_url:
            with httpx.Client(base_url=base_url, timeout=60) as client:
                bearer = sign_in(client, "writer")
            with httpx.Client(base_url=base_url, timeout=60) as client:
                sign_in(client, "pusher")
                token = client.post("/api/v1/auth/tokens", json={"name": "bench"}).json()["token"]
            port = int(base_url.rsplit(":", 1)[1])
            url = f"http://pusher:{token}@127.0.0.1:{port}/git/scripts.git"
            rows = []
            for ref in refs:
                print(f"Pushing to {ref} for {args.seconds:.0f} s ...")
                stats, rate = run_round(base_url, url, bearer, ref, args, workdir)
                rows.append((ref, stats, rate))
        print(
            f"\n## Pushes while the API writes ({os.cpu_count()} CPUs, Python "
            f"{sys.version.split()[0]}, p95 of tries over all rounds: "
            f"{percentile([t for _, s, _ in rows for t in s.tries] or [0], 95)})\n"
        )
        print(table(rows, args.writers, args.pushers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
