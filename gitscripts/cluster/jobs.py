"""What the service hands a cluster worker for one run: everything the run needs, nothing else."""

from __future__ import annotations

import base64
from typing import Any, NotRequired, TypedDict

from gitscripts.executor.protocol import Limits


class ClusterJob(TypedDict):
    key: NotRequired[str]  # the Dask task's key, one per attempt: what a cancel names
    reply: NotRequired[str]  # the attempt's secret, repeated by its worker's direct reply
    slot: NotRequired[str]  # the service's slot it starts in, on the worker it was sent to
    tree: str  # the tree id of the commit that runs (the worker fetches what it lacks of it)
    path: str  # the script, in that tree
    data: Any
    timeout: float
    files_token: str  # the run's own token for the service's file API
    limits: Limits  # the service's limits, not the worker's
    # The script's lock (None: no dependencies): the worker builds its environment from it, from
    # its own package sources (PACKAGES_*).
    lock: bytes | None
    imports: list[str]  # the modules the script's block names (preloaded where the worker trusts)


def to_message(job: ClusterJob) -> dict[str, Any]:
    """`job` as JSON can carry it (the service's WebSocket to its worker): its lock in base64."""
    lock = job["lock"]
    return {**job, "lock": None if lock is None else base64.b64encode(lock).decode("ascii")}


def from_message(message: dict[str, Any]) -> ClusterJob:
    """The job `to_message` made."""
    lock = message["lock"]
    job: ClusterJob = {**message, "lock": None if lock is None else base64.b64decode(lock)}  # type: ignore[typeddict-item]
    return job
