"""`gitscripts worker` and `gitscripts cluster`: a worker of the execution cluster, and a
scheduler with N workers on this machine in one step (for trying it out).

A worker outlives its scheduler: when the connection ends (the scheduler restarted, say), a new
Dask worker is started with the same runtime (checkout cache, warm fork server) and connects as
soon as the scheduler answers again. A worker the scheduler dismisses (adaptive scaling down,
`retire_workers`) stops instead, as a Dask worker does, so that its batch job ends.

`worker` also takes the arguments dask-jobqueue's job script gives a worker (`python -m
gitscripts worker <scheduler> --name N --nthreads T --memory-limit M --death-timeout S
--local-directory D`, and `--interface I --protocol P` where the cluster is given those), so a
jobqueue cluster's job script can start it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.parse
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from gitscripts.config import ConfigurationError, Settings

if TYPE_CHECKING:
    from gitscripts.cluster.worker import WorkerRuntime

log = structlog.get_logger("gitscripts.cluster")

RECONNECT_PAUSE = 1.0
# Why a worker closes when the scheduler no longer wants it (it retired or removed it: adaptive
# scaling down, say): told so, or told at its next heartbeat that the scheduler does not know it.
# Unlike "scheduler-close" (the scheduler's own shutdown) or a broken connection.
DISMISSED = frozenset(
    {"scheduler-remove-worker", "scheduler-close-worker", "worker-heartbeat-missing"}
)


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    worker = commands.add_parser(
        "worker",
        help="serve as a worker of the execution cluster (EXECUTOR=dask on the service)",
    )
    worker.add_argument("address", nargs="?", help="the scheduler (as --scheduler)")
    worker.add_argument(
        "--scheduler", help="the Dask scheduler, tcp://host:8786 (default: DASK_SCHEDULER_ADDRESS)"
    )
    worker.add_argument(
        "--service", help="the gitscripts service, http://host:8000 (default: SERVICE_URL)"
    )
    worker.add_argument("--name", help="the worker's name in run records (default: host-pid)")
    worker.add_argument(
        "--nthreads", type=int, default=1, help="runs at once on this worker (default 1)"
    )
    worker.add_argument(
        "--resources", default="", help='what this worker offers runs, e.g. "GPU=1 BIGMEM=1"'
    )
    worker.add_argument("--memory-limit", default="0", help="the Dask worker's (not a run's)")
    worker.add_argument(
        "--death-timeout", type=float, help="seconds without a scheduler, then stop"
    )
    worker.add_argument("--local-directory", help="where the worker keeps its checkouts")
    worker.add_argument(
        "--interface", help="the network interface the Dask worker listens on (e.g. ib0)"
    )
    worker.add_argument("--protocol", help="the Dask worker's protocol (e.g. tcp)")
    worker.set_defaults(run=serve_worker)
    cluster = commands.add_parser(
        "cluster", help="start a Dask scheduler and N gitscripts workers on this machine"
    )
    cluster.add_argument("--workers", type=int, default=2, help="how many workers (default 2)")
    cluster.add_argument("--nthreads", type=int, default=1, help="runs at once per worker")
    cluster.add_argument("--host", default="127.0.0.1", help="the scheduler's address")
    cluster.add_argument("--port", type=int, default=8786, help="the scheduler's port")
    cluster.add_argument(
        "--service", help="the gitscripts service, http://host:8000 (default: SERVICE_URL)"
    )
    cluster.set_defaults(run=serve_cluster)


def _run(main: Coroutine[Any, Any, None]) -> None:
    """Run `main` on uvloop where it is installed (with uvicorn[standard], as the service's own
    loop is): each run's messages cross this loop, each crossing ~0.5 ms faster than asyncio's."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - an install without uvicorn's extras
        asyncio.run(main)
    else:
        uvloop.run(main)


def _resources(text: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for item in text.replace(",", " ").split():
        name, _, amount = item.partition("=")
        try:
            found[name] = float(amount)
        except ValueError:
            raise ConfigurationError(f"--resources: {item!r} is not NAME=AMOUNT") from None
    return found


def _service_url(args: argparse.Namespace, settings: Settings) -> str:
    url = (args.service or settings.service_url).rstrip("/")
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ConfigurationError("the service's address is needed: --service http://host:8000 "
                                 "or SERVICE_URL")  # fmt: skip
    return url


def _worker_settings(settings: Settings, service: str, local: Path, slots: int) -> Settings:
    """The runtime's settings on a worker: the service's limits, sandbox and package settings
    (the same variables), its own data directory, no secret of the service's.

    The data directory (`local`) holds the script environments and uv's cache: it outlives the
    worker, so a restarted worker finds its environments built, and the workers of one user on
    one machine share them (builds are locked per environment). Each worker process has its own
    execution folder, and clears those of workers that are gone (`ExecutionService`)."""
    parsed = urllib.parse.urlsplit(service)
    return settings.model_copy(
        update={
            "executor": "fork" if settings.executor == "dask" else settings.executor,
            "data_dir": local,
            # The default, in the system's temporary folder, named after the data directory:
            # short whatever `--local-directory` is, as the Unix sockets in it need.
            "execution_dir": None,
            "files_url": "",
            "max_concurrent_executions": slots,
            # Runs with a network reach the file API where the service listens.
            "host": parsed.hostname,
            "port": parsed.port or (443 if parsed.scheme == "https" else 80),
            "jwt_secret_key": None,
            "worker_token": None,
            "metrics_token": None,
        }
    )


def serve_worker(args: argparse.Namespace, settings: Settings) -> int:
    scheduler = args.address or args.scheduler or settings.dask_scheduler_address
    if not scheduler:
        raise ConfigurationError("the scheduler's address is needed: --scheduler tcp://host:8786 "
                                 "or DASK_SCHEDULER_ADDRESS")  # fmt: skip
    service = _service_url(args, settings)
    token = settings.worker_token
    if not token:
        raise ConfigurationError("WORKER_TOKEN is needed (the same as the service's)")
    # Out of the environment: nothing started from here inherits it.
    os.environ.pop("WORKER_TOKEN", None)
    if args.nthreads < 1:
        raise ConfigurationError("--nthreads must be at least 1")
    name = args.name or f"{socket.gethostname()}-{os.getpid()}"
    resources = _resources(args.resources)
    _run(_serve_worker(args, settings, scheduler, service, token, name, resources))
    return 0


async def _serve_worker(
    args: argparse.Namespace, settings: Settings, scheduler: str, service: str, token: str,
    name: str, resources: dict[str, float],
) -> None:  # fmt: skip
    from gitscripts.cluster import worker as here

    worker_class = _worker_class()

    local = Path(args.local_directory or tempfile.gettempdir()) / f"gitscripts-worker-{os.getuid()}"
    local.mkdir(parents=True, exist_ok=True, mode=0o700)
    runtime = here.WorkerRuntime(_worker_settings(settings, service, local, args.nthreads),
                                 service, token, name)  # fmt: skip
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    await runtime.start()
    here.runtime = runtime
    log.info("worker_ready", name=name, scheduler=scheduler, service=service,
             slots=args.nthreads, resources=resources)  # fmt: skip
    try:
        while not stopping.is_set():
            worker = worker_class(
                scheduler,
                nthreads=args.nthreads,
                name=name,
                resources=resources or None,
                memory_limit=args.memory_limit,
                death_timeout=args.death_timeout,
                local_directory=str(local / "dask"),
                interface=args.interface,
                protocol=args.protocol,
                dashboard=False,
            )
            finished = asyncio.create_task(_run_until_closed(worker, runtime))
            stop = asyncio.create_task(stopping.wait())
            await asyncio.wait({finished, stop}, return_when=asyncio.FIRST_COMPLETED)
            if stopping.is_set():
                with contextlib.suppress(Exception):
                    await worker.close(timeout=5)
                finished.cancel()
                break
            stop.cancel()
            if worker.close_reason in DISMISSED:
                log.info("worker_dismissed", scheduler=scheduler, reason=worker.close_reason)
                break
            if finished.exception() is not None and args.death_timeout is not None:
                raise ConfigurationError(f"no scheduler at {scheduler}")
            log.warning("scheduler_connection_lost", scheduler=scheduler)
            await asyncio.sleep(RECONNECT_PAUSE)
    finally:
        here.runtime = None
        await runtime.stop()


def _worker_class() -> Any:
    """Dask's worker, remembering why it closed (imported here: Dask is an optional extra)."""
    from distributed import Worker

    class DismissibleWorker(Worker):
        close_reason = ""

        async def close(  # type: ignore[override]
            self, timeout: float = 30, executor_wait: bool = True, nanny: bool = True,
            reason: str = "worker-close",
        ) -> str | None:  # fmt: skip
            self.close_reason = self.close_reason or reason
            return await super().close(timeout, executor_wait, nanny, reason)

    return DismissibleWorker


async def _run_until_closed(worker: Any, runtime: WorkerRuntime) -> None:
    from gitscripts.cluster.dispatch import BATCH_INTERVAL

    await worker  # starts it: connects and registers
    worker.batched_stream.interval = BATCH_INTERVAL  # see `dispatch.BATCH_INTERVAL`
    await runtime.replies.announce(worker.address)  # runs may now come straight from the service
    await worker.finished()


def serve_cluster(args: argparse.Namespace, settings: Settings) -> int:
    service = _service_url(args, settings)
    if not settings.worker_token:
        raise ConfigurationError("WORKER_TOKEN is needed (the same as the service's)")
    _run(_serve_cluster(args, service))
    return 0


async def _serve_cluster(args: argparse.Namespace, service: str) -> None:
    from distributed import Scheduler

    # A run whose worker died is not run again (see `cluster.dispatch`).
    scheduler = Scheduler(
        host=args.host, port=args.port, dashboard_address=":0", allowed_failures=0
    )
    await scheduler
    address = scheduler.address
    command = [sys.executable, "-m", "gitscripts", "worker", "--scheduler", address,
               "--service", service, "--nthreads", str(args.nthreads)]  # fmt: skip
    workers = [
        subprocess.Popen([*command, "--name", f"worker-{number}"])
        for number in range(1, args.workers + 1)
    ]
    print(f"Scheduler at {address}, {args.workers} workers; on the service: EXECUTOR=dask "
          f"DASK_SCHEDULER_ADDRESS={address}. Ctrl-C stops them.", flush=True)  # fmt: skip
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    for process in workers:
        process.terminate()
    for process in workers:
        await asyncio.to_thread(process.wait)
    await scheduler.close()
