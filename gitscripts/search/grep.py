"""`git grep` over one commit's tree of the bare repository: bytes of git's output in, matches out.

Git reads the blobs itself (packed or loose, in parallel threads), so a search costs what git
costs, not a Python walk over 10,000 files. The query is passed after `-e` and the revision is
a commit id the caller resolved, so no user text is ever read as an option or a revision
expression. A search stops at `limit` matches or `timeout` seconds, whichever comes first, and
says which.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from gitscripts import errors

# A matched line longer than this is cut: minified data would otherwise fill the answer.
MAX_LINE_CHARS = 400


@dataclass(frozen=True)
class GrepMatch:
    path: str
    line: int
    text: str


@dataclass(frozen=True)
class GrepResult:
    matches: list[GrepMatch]
    truncated: bool  # more matches than `limit`
    timed_out: bool  # stopped at `timeout`: the matches are the ones found by then
    elapsed_ms: float


def grep_tree(
    repo_path: Path,
    commit_id: str,
    query: str,
    *,
    regex: bool = False,
    ignore_case: bool = True,
    pathspec: str = "*.py",
    limit: int = 200,
    timeout: float = 5.0,
) -> GrepResult:
    """Lines of files matching `pathspec` in `commit_id`'s tree that contain `query` (a fixed
    string, or with `regex` a POSIX extended regular expression)."""
    command = [
        "git",
        f"--git-dir={repo_path}",
        "grep",
        "--no-color",
        "--full-name",
        # git's default is 8 threads; more than the CPUs only adds contention (measured).
        f"--threads={min(os.cpu_count() or 1, 8)}",
        "-I",  # binary files never match
        "-n",
        "-z",  # NUL after the path and the line number: any path parses
        "--extended-regexp" if regex else "--fixed-strings",
        *(["--ignore-case"] if ignore_case else []),
        "-e",
        query,
        commit_id,
        "--",
        pathspec,
    ]
    # No user or system configuration (a grep.* or core.pager setting) changes what runs.
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "LC_ALL": "C"}
    started = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env
    )
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        process.kill()

    timer = threading.Timer(timeout, expire)
    timer.start()
    prefix = f"{commit_id}:".encode()
    matches: list[GrepMatch] = []
    truncated = False
    try:
        assert process.stdout is not None
        for raw in process.stdout:
            if len(matches) == limit:
                truncated = True
                process.kill()
                break
            path, line, text = raw.rstrip(b"\n").split(b"\0", 2)
            matches.append(
                GrepMatch(
                    path=path.removeprefix(prefix).decode("utf-8", "replace"),
                    line=int(line),
                    text=text.decode("utf-8", "replace")[:MAX_LINE_CHARS],
                )
            )
        stderr = process.stderr.read() if process.stderr is not None else b""
        status = process.wait()
    finally:
        timer.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
    # 0: matches, 1: none; killed by us: what was found so far. Anything else is git refusing
    # the pattern (the only input it can object to).
    if status not in (0, 1) and not truncated and not expired.is_set():
        message = stderr.decode("utf-8", "replace").strip().removeprefix("fatal: ")
        raise errors.InvalidSearchPattern(
            f"The search pattern is not usable: {message}", query=query
        )
    return GrepResult(
        matches=matches,
        truncated=truncated,
        timed_out=expired.is_set(),
        elapsed_ms=(time.perf_counter() - started) * 1000,
    )
