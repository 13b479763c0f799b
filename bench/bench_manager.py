"""Scripts Manager benchmark: 10,000 scripts in 500 folders, measured over HTTP.

    uv run python bench/bench_manager.py                 # the issue's numbers (a minute or two)
    uv run python bench/bench_manager.py --scripts 1000  # a quick run
    uv run python bench/bench_manager.py --profile       # also cProfile tree/upload in-process

Setup goes through the package, not the API: 10,500 single-change API commits would take far
longer than the thing being measured. The folders and scripts (each with its sidecar, each folder
with its `.gitkeep`, exactly as the API lays them out) land in a few bulk commits through
`Repository.commit`, authored by a registered user, and `sync_index` then gives every path an id
and that user as owner: the same way a `git push` reaches the index. Everything measured
afterwards is plain HTTP against `gitscripts serve` in a subprocess, over one keep-alive connection.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
from collections.abc import Callable
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
FOLDERS_PER_COMMIT = 100

# Targets from issue 2, p50 in milliseconds.
TARGETS_MS = {"GET /tree": 100.0, "POST /scripts (upload)": 30.0}


# -- setup through the package ------------------------------------------------------------------
def script_source(number: int) -> bytes:
    # Distinct content per script, as real scripts would be (no blob shared by 10,000 paths).
    return (
        f'"""Benchmark script {number}."""\n\n\n'
        f"def main(data: dict) -> dict:\n"
        f"    value = data.get('value', 0)\n"
        f"    return {{'script': {number}, 'result': value * 2 + {number}}}\n"
    ).encode()


def folder_name(number: int) -> str:
    return f"folder-{number:04d}"


def populate(data_dir: Path, scripts: int, folders: int) -> dict[str, Any]:
    """Create the user, the folders and the scripts; return the user."""
    settings = Settings(
        data_dir=data_dir,
        jwt_secret_key=SECRET,
        # Only the bench user's single login pays for the hash; keep it cheap.
        password_hash_time_cost=1,
        password_hash_memory_kib=256,
    )
    configure_logging("WARNING", json_lines=False)
    services = Services.build(settings)
    user = services.auth.register(LOGIN, PASSWORD)
    author = Author(user.id, user.login)
    per_folder = [scripts // folders + (1 if f < scripts % folders else 0) for f in range(folders)]
    number = 0
    started = time.perf_counter()
    for first in range(0, folders, FOLDERS_PER_COMMIT):
        edits: Edits = {}
        batch = range(first, min(first + FOLDERS_PER_COMMIT, folders))
        for f in batch:
            folder = folder_name(f)
            edits[layout.marker_path(folder)] = b""
            for _ in range(per_folder[f]):
                path = layout.join(folder, f"script_{number:05d}.py")
                metadata = layout.ScriptMetadata(
                    display_name=f"Script {number}", description=f"Benchmark script {number}"
                )
                edits[path] = script_source(number)
                edits[layout.metadata_path(path)] = metadata.to_bytes()
                number += 1
        message = f"Create folders {folder_name(batch[0])}..{folder_name(batch[-1])} (bench setup)"
        services.repo.commit(author, message, lambda _parent, edits=edits: edits)
    committed = time.perf_counter()
    print(f"  {number} scripts committed in {committed - started:.1f} s")
    sync_index(services.index, services.repo, actor_id=user.id)
    print(f"  index synced (ids and owners) in {time.perf_counter() - committed:.1f} s")
    indexed_scripts = len(services.index.scripts.all())
    indexed_folders = len(services.index.folders.all())
    if indexed_scripts != scripts or indexed_folders != folders:
        raise RuntimeError(
            f"setup check failed: index has {indexed_scripts} scripts and {indexed_folders} "
            f"folders, expected {scripts} and {folders}"
        )
    return user


def cpu_calibration() -> float:
    """Seconds for a fixed pure-Python loop: shows how fast this machine was during the run."""
    start = time.perf_counter()
    total = 0
    for number in range(5_000_000):
        total += number
    return time.perf_counter() - start


# -- measuring ----------------------------------------------------------------------------------
def count_scripts(tree: dict[str, Any]) -> tuple[int, int]:
    scripts, folders = len(tree["root_scripts"]), 0
    pending = list(tree["root_folders"])
    while pending:
        item = pending.pop()
        folders += 1
        scripts += len(item["scripts"])
        pending.extend(item["subfolders"])
    return scripts, folders


def measure(client: httpx.Client, args: argparse.Namespace) -> list[Result]:
    results: list[Result] = []
    expected_scripts = args.scripts

    def tree() -> httpx.Response:
        return client.get(f"{API}/tree")

    # The HTTP floor: what any request costs in this server, on this connection.
    for _ in range(5):
        timed(lambda: client.get("/health"), 200)
    results.append(
        Result("GET /health", [timed(lambda: client.get("/health"), 200)[0] for _ in range(200)])
    )

    # The whole tree, warm (the listing of `main` cached, index in memory).
    for _ in range(args.warmup):
        _, reply = timed(tree, 200)
    scripts, folders = count_scripts(reply.json())
    if scripts != expected_scripts or folders != args.folders:
        raise RuntimeError(
            f"tree has {scripts} scripts / {folders} folders, expected "
            f"{expected_scripts} / {args.folders}"
        )
    size_mb = len(reply.content) / 1e6
    results.append(
        Result(
            "GET /tree",
            [timed(tree, 200)[0] for _ in range(args.tree_samples)],
            f"{scripts} scripts, {folders} folders, {size_mb:.1f} MB",
        )
    )

    # Uploads into a folder of their own, a new filename each time.
    upload_folder = client.post(f"{API}/folders", json={"name": "bench-uploads"})
    if upload_folder.status_code != 201:
        raise RuntimeError(f"could not create the upload folder: {upload_folder.text}")
    folder_id = str(upload_folder.json()["id"])
    uploads = 0

    def upload() -> httpx.Response:
        nonlocal uploads
        uploads += 1
        name = f"upload_{uploads:05d}.py"
        return client.post(
            f"{API}/scripts",
            files={"file": (name, script_source(100_000 + uploads))},
            data={"display_name": f"Upload {uploads}", "folder_id": folder_id},
        )

    for _ in range(3):
        timed(upload, 201)
    results.append(
        Result(
            "POST /scripts (upload)",
            [timed(upload, 201)[0] for _ in range(args.upload_samples)],
            f"into a folder, scripts in repo: {expected_scripts}+",
        )
    )

    # The tree right after a write: `main` moved, so the listing is not cached yet.
    after_write = []
    for _ in range(args.after_write_samples):
        timed(upload, 201)
        after_write.append(timed(tree, 200)[0])
    results.append(Result("GET /tree after a write", after_write, "first tree on a new `main`"))
    expected_scripts += uploads

    # Renames of distinct 20-script folders (each moves its scripts and sidecars in one commit).
    roots = tree().json()["root_folders"]
    folder_ids = {item["folder"]["name"]: item["folder"]["id"] for item in roots}
    renames: list[float] = []
    for n in range(args.rename_samples + 2):
        old = folder_name(n % args.folders)
        target = f"{API}/folders/{folder_ids[old]}"
        new_name = f"renamed-{n:04d}"
        elapsed, reply = timed(lambda: client.put(target, json={"name": new_name}), 200)  # noqa: B023
        if reply.json()["name"] != new_name:
            raise RuntimeError(f"rename answered {reply.json()}")
        if n >= 2:  # the first two warm up
            renames.append(elapsed)
    per_folder = args.scripts // args.folders
    results.append(
        Result("PUT /folders/{id} (rename)", renames, f"{per_folder}-script folder, one commit")
    )

    final = tree().json()
    scripts, _ = count_scripts(final)
    renamed = [item for item in final["root_folders"] if item["folder"]["name"] == "renamed-0002"]
    if scripts != expected_scripts or not renamed or len(renamed[0]["scripts"]) != per_folder:
        raise RuntimeError(
            f"after the writes the tree has {scripts} scripts, expected "
            f"{expected_scripts}, and the renamed folder {renamed[:1]}"
        )
    return results


# -- profiling (optional) -----------------------------------------------------------------------
def profile(data_dir: Path, rounds: int) -> None:
    """cProfile Views.tree and ManagerService.save_script in-process, on the benchmark's own
    data."""
    settings = Settings(data_dir=data_dir, jwt_secret_key=SECRET)
    services = Services.build(settings)
    manager = services.manager
    views = services.views
    user = services.index.users.by_login(LOGIN)
    assert user is not None
    folder_id = services.index.folders.id_at("bench-uploads")
    views.tree(user)  # warm the listing cache, as the server's tree samples were

    def warm_tree(profiler: cProfile.Profile) -> None:
        for _ in range(rounds):
            profiler.runcall(views.tree, user)

    def upload(profiler: cProfile.Profile) -> None:
        for n in range(rounds):
            profiler.runcall(
                manager.save_script,
                user,
                filename=f"profiled_{n:05d}.py",
                content=script_source(200_000 + n),
                display_name=f"Profiled {n}",
                description=None,
                folder_id=folder_id,
                replace=False,
            )

    def tree_after_commit(profiler: cProfile.Profile) -> None:
        for n in range(rounds):
            manager.create_folder(user, f"profiled-{n:04d}", None)  # moves `main`, unprofiled
            profiler.runcall(views.tree, user)

    work: list[tuple[str, Callable[[cProfile.Profile], None]]] = [
        ("Views.tree, warm", warm_tree),
        ("ManagerService.save_script", upload),
        ("Views.tree right after a commit", tree_after_commit),
    ]
    for label, run in work:
        profiler = cProfile.Profile()
        run(profiler)
        stats = pstats.Stats(profiler)
        per_call = stats.total_tt * 1000 / rounds  # type: ignore[attr-defined]
        print(f"\n## cProfile: {label}, {rounds} calls: {per_call:.1f} ms per call profiled")
        for order in ("cumulative", "tottime"):
            out = io.StringIO()
            stats.stream = out  # type: ignore[attr-defined]
            stats.sort_stats(order).print_stats(15)
            lines = out.getvalue().splitlines()
            header = next(i for i, line in enumerate(lines) if "ncalls" in line)
            print(f"\nby {order}:")
            print("\n".join(lines[header:]).rstrip())


# -- main ---------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scripts", type=int, default=10_000, help="scripts to create")
    parser.add_argument(
        "--folders", type=int, help="folders to spread them over (default: scripts / 20)"
    )
    parser.add_argument("--warmup", type=int, default=3, help="untimed tree requests first")
    parser.add_argument("--tree-samples", type=int, default=50)
    parser.add_argument("--upload-samples", type=int, default=100)
    parser.add_argument("--after-write-samples", type=int, default=10)
    parser.add_argument("--rename-samples", type=int, default=30)
    parser.add_argument(
        "--profile", action="store_true", help="afterwards, cProfile tree and save_script"
    )
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    args = parser.parse_args(argv)
    args.folders = args.folders or max(1, args.scripts // 20)
    if args.folders < args.rename_samples + 2:
        parser.error("need at least --rename-samples + 2 folders")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with work_directory("gitscripts-bench-", args.keep) as workdir:
        data_dir = workdir / "data"
        calibration = [cpu_calibration()]
        print(f"Setting up {args.scripts} scripts in {args.folders} folders in {data_dir} ...")
        start = time.perf_counter()
        populate(data_dir, args.scripts, args.folders)
        print(f"Setup took {time.perf_counter() - start:.1f} s")

        start = time.perf_counter()
        with running_server(data_dir, workdir / "server.log") as base_url:
            print(f"Server up at {base_url} after {time.perf_counter() - start:.1f} s")
            with httpx.Client(base_url=base_url, timeout=60) as client:
                sign_in(client, LOGIN)  # registered during setup: this only logs in
                results = measure(client, args)
        calibration.append(cpu_calibration())

        print(
            f"\n## Scripts Manager benchmark ({args.scripts} scripts, {args.folders} folders, "
            f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]})\n"
        )
        print(latency_table(results, TARGETS_MS))
        print(
            "\nCPU calibration (5M-step Python loop, before/after): "
            + " / ".join(f"{seconds:.2f} s" for seconds in calibration)
            + ". Compare runs only at similar calibration: a busy or throttled machine "
            "scales every row."
        )
        print("\n" + targets_verdict(results, TARGETS_MS))
        if args.profile:
            profile(data_dir, rounds=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
