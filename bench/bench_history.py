"""History benchmark: 10,000 commits, one script with 1,000 versions, measured over HTTP.

    uv run python bench/bench_history.py                  # the issue's numbers (about a minute)
    uv run python bench/bench_history.py --commits 2000 --versions 200   # a quick run

Setup goes through the package: 10,000 commits through `Repository.commit` in a loop (each a real
compare-and-swap commit on `main`, authored by a registered user, as the API makes them), then
`sync_index` gives every path an id. Everything measured afterwards is plain HTTP against
`gitscripts serve` in a subprocess, over one keep-alive connection.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from _common import (
    PASSWORD,
    SECRET,
    Result,
    latency_table,
    running_server,
    sign_in,
    targets_verdict,
    timed,
    work_directory,
)

from gitscripts.config import Settings
from gitscripts.index.sync import sync_index
from gitscripts.logging import configure_logging
from gitscripts.repo import Author, Edits, layout
from gitscripts.services import Services

LOGIN = "bench"
API = "/api/v1/scripts-manager"
HOT = "hot/target.py"  # the script with many versions
BIG = "big/long.py"  # the 2,000-line script
MANY = 100  # files changed by the one wide commit
BIG_LINES = 2000

# Targets from issue 5, p50 in milliseconds.
TARGETS_MS = {
    "GET /scripts/{id}/history (first page)": 100.0,
    "GET /scripts/{id}/diff (2,000 lines)": 50.0,
    "GET /commits/{rev} (100 files)": 100.0,
}


# -- setup through the package ------------------------------------------------------------------
def hot_source(version: int) -> bytes:
    return f"def main(data: dict) -> dict:\n    return {{'version': {version}}}\n".encode()


def big_source(version: int) -> bytes:
    # Every 100th line differs between versions: 20 changed lines spread over the file.
    lines = [
        f"    total += {n * (version if n % 100 == 50 else 1)}  # step {n}\n"
        for n in range(BIG_LINES - 3)
    ]
    return ("def main(data: dict) -> dict:\n    total = 0\n" + "".join(lines)).encode() + (
        b"    return {'total': total}\n"
    )


def with_sidecar(path: str, content: bytes) -> Edits:
    metadata = layout.ScriptMetadata(display_name=path.rsplit("/", 1)[-1])
    return {path: content, layout.metadata_path(path): metadata.to_bytes()}


def populate(data_dir: Path, commits: int, versions: int) -> dict[str, Any]:
    """Create the user and the history; return what the measurements need to know."""
    settings = Settings(
        data_dir=data_dir,
        jwt_secret_key=SECRET,
        password_hash_time_cost=1,
        password_hash_memory_kib=256,
    )
    configure_logging("WARNING", json_lines=False)
    services = Services.build(settings)
    repo = services.repo
    user = services.auth.register(LOGIN, PASSWORD)
    author = Author(user.id, user.login)
    started = time.perf_counter()

    first: Edits = {**with_sidecar(HOT, hot_source(1)), **with_sidecar(BIG, big_source(1))}
    for n in range(MANY):
        first.update(with_sidecar(f"many/m{n:03d}.py", hot_source(n)))
    repo.commit(author, "Create the benchmark scripts", lambda _parent: first)
    every = max(1, commits // versions)
    # Off the hot script's beat (every `every` commits), so each kind of commit keeps its count.
    wide_at, big_edits = commits - 51, {commits // 2 + 1: 2, commits - 31: 3}
    wide_commit = ""
    hot_version = 1
    for i in range(1, commits):
        if i == wide_at:
            edits: Edits = {f"many/m{n:03d}.py": hot_source(n + 1000) for n in range(MANY)}
            message = f"Update {MANY} scripts in many/"
        elif i in big_edits:
            edits = {BIG: big_source(big_edits[i])}
            message = f"Update script {BIG}"
        elif i % every == 0 and hot_version < versions:
            hot_version += 1
            edits = {HOT: hot_source(hot_version)}
            message = f"Update script {HOT} (version {hot_version})"
        else:
            other = f"other/s{i % 500:03d}.py"
            edits = {other: hot_source(i)}
            message = f"Update script {other}"
        result = repo.commit(author, message, lambda _parent, edits=edits: edits)
        if i == wide_at:
            wide_commit = str(result.commit.id)
    committed = time.perf_counter()
    print(f"  {commits} commits ({hot_version} versions of {HOT}) in {committed - started:.1f} s")
    sync_index(services.index, repo, actor_id=user.id)
    print(f"  index synced in {time.perf_counter() - committed:.1f} s")
    return {
        "hot": services.index.scripts.id_at(HOT),
        "big": services.index.scripts.id_at(BIG),
        "wide_commit": wide_commit,
        "versions": hot_version,
    }


# -- measuring ----------------------------------------------------------------------------------
def sampled(
    name: str, call: Any, samples: int, note: str, cold: list[Result] | None = None
) -> Result:
    """`samples` timed calls after one untimed first call (reported as its own row in `cold`)."""
    first, _ = timed(call)
    if cold is not None:
        cold.append(Result(f"{name}, first call", [first], "before any repeat of it"))
    return Result(name, [timed(call)[0] for _ in range(samples)], note)


def measure(client: httpx.Client, setup: dict[str, Any], samples: int) -> list[Result]:
    results: list[Result] = []
    for _ in range(5):
        timed(lambda: client.get("/health"))
    results.append(
        Result("GET /health", [timed(lambda: client.get("/health"))[0] for _ in range(200)])
    )

    hot_history = f"{API}/scripts/{setup['hot']}/history"
    page = client.get(hot_history).json()
    if len(page["versions"]) != 50 or page["versions"][0]["path"] != HOT:
        raise RuntimeError(f"unexpected first page: {str(page)[:500]}")
    cold: list[Result] = []
    results.append(
        sampled(
            "GET /scripts/{id}/history (first page)",
            lambda: client.get(hot_history),
            samples,
            f"50 of {setup['versions']} versions",
            cold,
        )
    )
    # The last page: the walk goes through the whole history.
    cursor, pages = None, 0
    while True:
        reply = client.get(
            hot_history, params={"limit": 200, **({"before": cursor} if cursor else {})}
        )
        pages += 1
        if reply.json()["next_before"] is None:
            break
        cursor = reply.json()["next_before"]
    last = reply.json()["versions"]
    last_page = {"before": cursor} if cursor else {}
    if last[-1]["change"] != "added" or pages != -(-setup["versions"] // 200):
        raise RuntimeError(f"history did not end at the script's creation: {last[-1]}")
    results.append(
        sampled(
            "GET /scripts/{id}/history (last page)",
            lambda: client.get(hot_history, params={"limit": 200, **last_page}),
            max(5, samples // 5),
            f"{len(last)} versions, walks all commits",
        )
    )

    big_diff = f"{API}/scripts/{setup['big']}/diff"
    diff = client.get(big_diff).json()
    [file] = [f for f in diff["files"] if f["new_path"] == BIG]
    if (file["additions"], file["deletions"]) != (20, 20):
        raise RuntimeError(f"unexpected diff stats: {file['additions']}/{file['deletions']}")
    results.append(
        sampled(
            "GET /scripts/{id}/diff (2,000 lines)",
            lambda: client.get(big_diff),
            samples,
            "previous vs current, 20 lines changed",
            cold,
        )
    )

    commit_url = f"{API}/commits/{setup['wide_commit']}"
    detail = client.get(commit_url).json()
    if detail["stats"]["files"] != MANY:
        raise RuntimeError(f"commit has {detail['stats']['files']} files, expected {MANY}")
    results.append(
        sampled(
            "GET /commits/{rev} (100 files)",
            lambda: client.get(commit_url),
            samples,
            "per-file stats and patches",
            cold,
        )
    )
    results.append(
        sampled(
            "GET /history (repository log)",
            lambda: client.get(f"{API}/history"),
            samples,
            "first page of 50 commits with their changed paths",
        )
    )
    return results + cold


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=10_000)
    parser.add_argument("--versions", type=int, default=1_000, help="versions of the hot script")
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    args = parser.parse_args(argv)
    with work_directory("gitscripts-bench-history-", args.keep) as workdir:
        data_dir = workdir / "data"
        print(f"Setting up {args.commits} commits in {data_dir} ...")
        setup = populate(data_dir, args.commits, args.versions)
        with running_server(data_dir, workdir / "server.log") as base_url:
            client = httpx.Client(base_url=base_url, timeout=120)
            with client:
                sign_in(client, LOGIN)
                results = measure(client, setup, args.samples)
        print(
            f"\n## History benchmark ({args.commits} commits, {setup['versions']} versions of one "
            f"script, {os.cpu_count()} CPUs, Python {sys.version.split()[0]})\n"
        )
        print(latency_table(results, TARGETS_MS))
        print("\n" + targets_verdict(results, TARGETS_MS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
