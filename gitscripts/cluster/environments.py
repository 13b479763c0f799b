"""The script environments of EXECUTOR=dask: built on the workers, asked of them.

With runs on the cluster, an environment the service built for itself would never be used: each
worker builds its own from the lock a run carries (`cluster.worker`). So the service's writes
(REST and push) hand a new lock to every worker to build ahead, and an environment's state
(`GET /api/v1/environments/{key}`, a script's dependencies) is what the workers say of it:

- `failed` when it failed on a worker (that worker's log), else `building` while one builds it,
  else `ready` when one has it (a worker without it builds it at its first run of it);
- `workers` gives each worker's own state, by name; asked for one `worker`, the answer is that
  worker's own state and log (each worker keeps its own, and two may fail differently).

Called from the request threads (the routes and services are synchronous); the cluster's client
lives on the event loop, so each call is handed to it.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import replace

from gitscripts import errors
from gitscripts.cluster.dispatch import CANCEL_TIMEOUT, Cluster
from gitscripts.deps.environments import EnvironmentInfo


class ClusterEnvironments:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def prepare(self, lock: bytes) -> None:
        """Have the workers start building `lock`'s environment (returns at once)."""
        loop = self.cluster.loop
        if loop is not None:
            asyncio.run_coroutine_threadsafe(self.cluster.prepare_environment(lock), loop)

    def info(self, key: str, worker: str | None = None) -> EnvironmentInfo:
        """The state of environment `key` on the cluster, or on its `worker`;
        `EnvironmentNotFound` when no worker (or not that one) knows it."""
        states: dict[str, EnvironmentInfo] = {}
        loop = self.cluster.loop
        if loop is not None:
            asking = asyncio.run_coroutine_threadsafe(self.cluster.environment_states(key), loop)
            try:
                states = asking.result(CANCEL_TIMEOUT + 1)
            except FutureTimeout:
                asking.cancel()
        if not states:
            raise errors.EnvironmentNotFound(
                f"Environment '{key}' is on no worker of the cluster", environment=key
            )
        workers = {name: info.state for name, info in sorted(states.items())}
        if worker is not None:
            if worker not in states:
                raise errors.EnvironmentNotFound(
                    f"Environment '{key}' is not on worker '{worker}'",
                    environment=key,
                    worker=worker,
                )
            return replace(states[worker], workers=workers)
        by_state = {info.state: info for info in states.values()}
        shown = by_state.get("failed") or by_state.get("building") or by_state["ready"]
        return replace(shown, workers=workers)

    def close(self) -> None:
        """Nothing of its own to close: the workers keep their environments."""
