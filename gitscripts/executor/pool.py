"""The warm engines of script environments: one fork server per environment in use, a few at once.

A script with dependencies runs in its environment's own engine: the same sandbox, limits and fresh
process per run as the default one, with the environment's packages first on `sys.path` and bound
read-only into every run's root (a run imports them; it cannot change them). At most
EXECUTION_MAX_ENVIRONMENTS engines are warm at once: starting one more stops the least recently
used that has no run in flight (if every one has, the pool is over its size until one ends), and one
left idle for ENVIRONMENT_IDLE_SECONDS is stopped. While an engine is warm its environment is held
(`Environments.hold`), so gc never removes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import structlog

from gitscripts import errors
from gitscripts.deps.environments import Environment, Environments
from gitscripts.executor.engines import Engine, ForkServerEngine, SubprocessEngine
from gitscripts.executor.packages import Packages
from gitscripts.executor.sandbox import SandboxConfig

log = structlog.get_logger("gitscripts.executor")


@dataclass
class _Warm:
    engine: Engine
    held: int  # the environment's use lock
    in_flight: int = 0
    last_used: float = field(default_factory=time.monotonic)


class EnvironmentEngines:
    """The engines of script environments, by environment key, least recently used first."""

    def __init__(
        self,
        environments: Environments,
        make: Callable[[Environment, list[str]], Engine],
        limit: int,
        idle_seconds: float,
    ) -> None:
        self.environments = environments
        self._make = make
        self.limit = limit
        self.idle_seconds = idle_seconds
        self._warm: OrderedDict[str, _Warm] = OrderedDict()
        self._starting: dict[str, asyncio.Lock] = {}
        self._reaper: asyncio.Task[None] | None = None

    @property
    def warm(self) -> int:
        return len(self._warm)

    def is_warm(self, key: str) -> bool:
        return key in self._warm

    @contextlib.asynccontextmanager
    async def engine(self, environment: Environment, preload: list[str]) -> AsyncIterator[Engine]:
        """The warm engine of `environment` (started now if needed), in use until the block
        ends; `preload` is what a new one imports first."""
        warm = self._warm.get(environment.key)
        if warm is None:
            warm = await self._start(environment, preload)
        # In flight before anything else is awaited: from here on no trim or reaper stops it.
        warm.in_flight += 1
        warm.last_used = time.monotonic()
        self._warm.move_to_end(environment.key)
        self.environments.touch(environment.key)
        try:
            await self._trim()
            yield warm.engine
        finally:
            warm.in_flight -= 1
            warm.last_used = time.monotonic()
            await self._trim()

    async def _start(self, environment: Environment, preload: list[str]) -> _Warm:
        key = environment.key
        starting = self._starting.setdefault(key, asyncio.Lock())
        async with starting:  # one start per environment, however many runs arrive at once
            warm = self._warm.get(key)
            if warm is not None:
                return warm
            held = self.environments.hold(environment)
            if self.environments.built(key) is None:  # removed (gc) since the run found it
                self.environments.release(held)
                raise errors.InternalError(
                    f"The environment {key} was removed while its run started; run it again"
                )
            engine = self._make(environment, preload)
            try:
                await engine.start()
            except BaseException:
                self.environments.release(held)
                raise
            warm = _Warm(engine, held)
            self._warm[key] = warm
            log.info("environment_engine_started", environment=key, warm=len(self._warm))
        if self._reaper is None:
            self._reaper = asyncio.create_task(self._reap_idle())
        return warm

    async def _trim(self) -> None:
        """Stop the least recently used idle engines beyond the limit."""
        while len(self._warm) > self.limit:
            idle = next((k for k, w in self._warm.items() if w.in_flight == 0), None)
            if idle is None:
                return  # all busy: trimmed when one of them ends
            await self._stop(idle)

    async def _stop(self, key: str) -> None:
        warm = self._warm.pop(key)
        try:
            await warm.engine.stop()
        finally:
            self.environments.release(warm.held)
        log.info("environment_engine_stopped", environment=key, warm=len(self._warm))

    async def _reap_idle(self) -> None:
        while True:
            await asyncio.sleep(min(self.idle_seconds, 60.0) / 2)
            now = time.monotonic()
            for key, warm in list(self._warm.items()):
                if warm.in_flight == 0 and now - warm.last_used >= self.idle_seconds:
                    with contextlib.suppress(KeyError):
                        await self._stop(key)

    async def stop(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        for key in list(self._warm):
            await self._stop(key)


def engine_maker(
    kind: str, root: Path, env: dict[str, str], sandbox: Callable[[], SandboxConfig]
) -> Callable[[Environment, list[str]], Engine]:
    """How an environment's engine is made: the service's kind of engine, its sandbox (as the
    start-up probe left it) with the environment's packages bound read-only into every run.

    The packages are reached through a link in the execution root (`root`/environments/<key>):
    the fork server imports through the link, and a run finds the folder itself bound at the
    link's path, so both see one path, and no run sees even the name of the data directory."""
    links = root / "environments"
    control = root / "control"

    def make(environment: Environment, preload: list[str]) -> Engine:
        links.mkdir(mode=0o700, exist_ok=True)
        link = links / environment.key
        if not link.is_symlink():
            link.symlink_to(environment.packages, target_is_directory=True)
        packages = Packages([str(link)], preload)
        base = sandbox()
        config = replace(base, readonly=[*base.readonly, str(link)])
        if kind == "fork":
            socket = control / f"zygote-{environment.key}.sock"
            return ForkServerEngine(socket, [], env, config, packages)
        return SubprocessEngine(env, config, packages)

    return make
