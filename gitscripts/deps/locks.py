"""A script's lock: the exact packages its PEP 723 block resolves to, in uv's own format.

The lock lives in the repository beside its script (`tool.py` -> `tool.py.lock`, what
`uv lock --script tool.py` writes), so every revision pins the environment it runs in and a person
can read, diff and reproduce it with uv. `resolve` makes one from a script's source against the
configured package index; `check` tells whether a lock someone committed matches its script's
block; `environment_key` names the environment a lock gives on this service's interpreter.
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
from pathlib import Path

from gitscripts import errors
from gitscripts.config import Settings
from gitscripts.deps import uv

LOCK_SUFFIX = ".lock"


def lock_path(script_path: str) -> str:
    """Where the lock of the script at `script_path` lives in the repository."""
    return script_path + LOCK_SUFFIX


def resolve(settings: Settings, filename: str, source: bytes) -> bytes:
    """The lock of `source` (a script with a PEP 723 block): `DependenciesUnresolvable`, with the
    resolver's own explanation, when its dependencies do not resolve in time."""
    with tempfile.TemporaryDirectory(prefix="gitscripts-lock-") as folder:
        script = Path(folder) / filename
        script.write_bytes(source)
        outcome = uv.run(
            settings,
            ["lock", "--script", script.name],
            settings.packages_resolve_timeout,
            Path(folder),
        )
        if not outcome.ok:
            raise _unresolvable(filename, outcome, settings.packages_resolve_timeout)
        return (Path(folder) / lock_path(filename)).read_bytes()


def check(settings: Settings, filename: str, source: bytes, lock: bytes) -> None:
    """Refuse (`DependenciesUnresolvable`) a committed lock that does not match its script's block
    or that the configured index cannot satisfy."""
    with tempfile.TemporaryDirectory(prefix="gitscripts-lock-") as folder:
        script = Path(folder) / filename
        script.write_bytes(source)
        Path(folder, lock_path(filename)).write_bytes(lock)
        outcome = uv.run(
            settings,
            ["lock", "--script", script.name, "--check"],
            settings.packages_resolve_timeout,
            Path(folder),
        )
        if not outcome.ok:
            if outcome.timed_out:
                raise _unresolvable(filename, outcome, settings.packages_resolve_timeout)
            raise errors.DependenciesUnresolvable(
                f"The lock {lock_path(filename)} does not match the dependencies {filename} "
                f"declares; update it with `uv lock --script {filename}`: "
                f"{_explanation(outcome.output)}",
                filename=filename,
            )


def environment_key(lock: bytes) -> str:
    """The name of the environment `lock` gives here: the same lock on another interpreter (or
    platform) is another environment."""
    digest = hashlib.sha256(lock)
    digest.update(f"\0{sys.implementation.cache_tag}\0{sys.platform}".encode())
    return digest.hexdigest()[:20]


def _unresolvable(filename: str, outcome: uv.Outcome, timeout: float) -> errors.AppError:
    if outcome.timed_out:
        return errors.DependenciesUnresolvable(
            f"Resolving the dependencies of {filename} took longer than {timeout:g} s "
            "(PACKAGES_RESOLVE_TIMEOUT)",
            filename=filename,
        )
    return errors.DependenciesUnresolvable(
        f"The dependencies of {filename} cannot be resolved: {_explanation(outcome.output)}",
        filename=filename,
    )


def _explanation(output: str) -> str:
    """uv's answer without its progress lines and hints, as one paragraph."""
    lines = [line.strip() for line in output.splitlines()]
    noise = ("Resolved ", "hint:", "warning: No `requires-python`")
    kept = [line for line in lines if line and not line.startswith(noise)]
    return " ".join(line.removeprefix("error: ") for line in kept)[:4000]
