"""How the service calls uv: one binary, one environment built from the settings, one deadline.

Resolving a script's dependencies (`uv lock --script`) and installing an environment from a lock
both go through `run`, so both see the same package sources: PACKAGES_INDEX_URL,
PACKAGES_FIND_LINKS and PACKAGES_NO_INDEX when set, uv's own configuration otherwise (its
`UV_*` variables and `uv.toml` pass through). Nothing else of the service's environment reaches
uv, so its secrets never reach a package's build.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gitscripts.config import ConfigurationError, Settings

# What uv may still read of the service's environment: its own settings, proxies, certificates.
_PASSED_THROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "SSL_CERT_FILE", "SSL_CERT_DIR",
                   "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy",
                   "no_proxy", "XDG_CONFIG_HOME")  # fmt: skip


def binary() -> str:
    """The uv executable: the one installed with the service (the `uv` package), else PATH's."""
    beside = Path(sys.executable).with_name("uv")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("uv")
    if found is None:
        raise ConfigurationError("uv is not installed: scripts with dependencies need it")
    return found


def environment(settings: Settings) -> dict[str, str]:
    """uv's environment: the package sources from the settings, its cache, nothing secret."""
    env = {name: value for name, value in os.environ.items()
           if name in _PASSED_THROUGH or name.startswith("UV_")}  # fmt: skip
    env["UV_CACHE_DIR"] = str(settings.uv_cache_dir)
    env["UV_PYTHON"] = sys.executable  # environments are for the interpreter that runs them
    env["UV_PYTHON_DOWNLOADS"] = "never"
    env["UV_NO_PROGRESS"] = "1"
    if settings.packages_index_url:
        env["UV_DEFAULT_INDEX"] = settings.packages_index_url
    if settings.packages_find_links:
        env["UV_FIND_LINKS"] = settings.packages_find_links
    if settings.packages_no_index:
        env["UV_NO_INDEX"] = "1"
    return env


@dataclass(frozen=True)
class Outcome:
    returncode: int
    output: str  # stdout and stderr together, as a person would read them
    timed_out: bool

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def run(
    settings: Settings, arguments: Sequence[str], timeout: float, cwd: Path | None = None
) -> Outcome:
    """Run `uv <arguments>` with the service's package settings; never longer than `timeout`."""
    try:
        completed = subprocess.run(
            [binary(), *arguments],
            cwd=cwd,
            env=environment(settings),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        output = exc.output.decode("utf-8", "replace") if isinstance(exc.output, bytes) else ""
        return Outcome(-1, output, timed_out=True)
    return Outcome(completed.returncode, completed.stdout.decode("utf-8", "replace"), False)
