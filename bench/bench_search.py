"""Search benchmark: code search over 10,000 scripts, and the web UI's tree and "go to script" on them.

    uv run python bench/bench_search.py                  # the issue's numbers (about two minutes)
    uv run python bench/bench_search.py --scripts 1000   # a quick run
    uv run python bench/bench_search.py --no-browser     # only the HTTP numbers

Setup is `bench_manager.populate` (10,000 scripts with sidecars in 500 folders, committed through
the package and indexed). Measured over HTTP against `gitscripts serve` in a subprocess:
`GET /api/v1/scripts-manager/search` for a string found in one script only (git reads every
script), one found in all of them (the answer stops at the 200-line cap), and a regular
expression; then, in Chromium (Debian's), the scripts screen from navigation to the tree on
screen, and the "go to script" dialog from a key press to its results for a typed query.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
from _common import (
    Result,
    latency_table,
    running_server,
    sign_in,
    targets_verdict,
    timed,
    work_directory,
)
from bench_manager import LOGIN, cpu_calibration, populate

API = "/api/v1/scripts-manager"

# Targets from issue 17, p50 in milliseconds.
TARGETS_MS = {"search: one script matches (reads all)": 200.0}


def measure_search(client: httpx.Client, args: argparse.Namespace) -> list[Result]:
    last = args.scripts - 1
    cases = [
        # `script_source` writes each script's number into its result: one script matches.
        ("search: one script matches (reads all)", {"q": f"'script': {last},"}, 1),
        ("search: every script matches (200-line cap)", {"q": "value * 2"}, 200),
        ("search: regex, one script matches", {"q": f"'script': {last}[,}}]", "regex": "true"}, 1),
    ]
    results = []
    for name, params, expected in cases:
        result = Result(name)
        for _ in range(args.warmup):
            timed(lambda params=params: client.get(f"{API}/search", params=params))
        for _ in range(args.samples):
            elapsed, reply = timed(lambda params=params: client.get(f"{API}/search", params=params))
            result.samples.append(elapsed)
            count = len(reply.json()["matches"])
            if count != expected:
                raise RuntimeError(f"{name}: {count} matches, expected {expected}")
        git_ms = reply.json()["elapsed_ms"]
        result.note = f"{expected} line(s); git grep itself {git_ms:.0f} ms in the last sample"
        results.append(result)
    return results


def measure_browser(base_url: str, token: str, args: argparse.Namespace) -> list[Result]:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        raise RuntimeError("the browser numbers need Debian's chromium (or pass --no-browser)")
    tree, goto = (
        Result("UI: scripts screen, navigation to tree on screen"),
        Result("UI: go to script, key press to results"),
    )
    sandbox = ["--no-sandbox"] if os.geteuid() == 0 else []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, args=["--disable-dev-shm-usage", *sandbox]
        )
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.add_init_script(f"localStorage.setItem('gitscripts.token', {json.dumps(token)})")
        page = context.new_page()
        page.goto(base_url + "/#/")
        page.wait_for_selector("[role=tree] [role=treeitem]")
        for sample in range(args.browser_samples):
            page.goto(base_url + "/#/activity")
            page.wait_for_selector("h1")
            start = time.perf_counter()
            page.goto(base_url + "/#/")
            page.wait_for_selector("[role=tree] [role=treeitem]")
            tree.samples.append((time.perf_counter() - start) * 1000)
            query = f"script {args.scripts - 1 - sample}"
            start = time.perf_counter()
            page.keyboard.press("Control+k")
            page.keyboard.insert_text(query)
            page.wait_for_selector(f"#goto-results [role=option] >> text='Script {query[7:]}'")
            goto.samples.append((time.perf_counter() - start) * 1000)
            page.keyboard.press("Escape")
        shown = page.locator("[role=tree] [role=treeitem]").count()
        tree.note = f"{shown} rows drawn (folders collapsed)"
        goto.note = "dialog opened, query typed, the matching script listed"
        browser.close()
    return [tree, goto]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scripts", type=int, default=10_000, help="scripts to create")
    parser.add_argument("--warmup", type=int, default=3, help="untimed searches first, each")
    parser.add_argument("--samples", type=int, default=30, help="timed searches, each")
    parser.add_argument("--browser-samples", type=int, default=10)
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium numbers")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    folders = max(1, args.scripts // 20)
    with work_directory("gitscripts-bench-search-", args.keep) as workdir:
        data_dir: Path = workdir / "data"
        calibration = [cpu_calibration()]
        print(f"Setting up {args.scripts} scripts in {folders} folders in {data_dir} ...")
        populate(data_dir, args.scripts, folders)
        with running_server(data_dir, workdir / "server.log") as base_url:
            with httpx.Client(base_url=base_url, timeout=60) as client:
                bearer = sign_in(client, LOGIN)
                results = measure_search(client, args)
                # The service writes every object loose; git grep reads a pack ten times
                # faster. What `git gc` (or this) on the server's repository would give:
                subprocess.run(
                    ["git", f"--git-dir={data_dir / 'scripts.git'}", "repack", "-adq"], check=True
                )
                for result in measure_search(client, args):
                    result.operation += ", after git repack"
                    results.append(result)
            if not args.no_browser:
                results += measure_browser(base_url, bearer.removeprefix("Bearer "), args)
        calibration.append(cpu_calibration())
    print(
        f"\n## Search benchmark ({args.scripts} scripts, {folders} folders, "
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]})\n"
    )
    print(latency_table(results, TARGETS_MS))
    print(
        "\nCPU calibration (5M-step Python loop, before/after): "
        + " / ".join(f"{seconds:.2f} s" for seconds in calibration)
    )
    print("\n" + targets_verdict(results, TARGETS_MS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
