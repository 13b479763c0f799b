"""What the service counts, for Prometheus: one `Metrics` per app, with its own registry.

Labels are bounded on purpose: a run's mode and outcome, a route's template (never a raw path:
paths hold script names, keys and ids), a status class (`2xx`), a push's outcome, a direction.
No user is ever a label. Gauges of the moment (queue depth, running runs, warm fork servers) are
read when scraped, from functions the app gives (`watch`).
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Seconds: from a trivial run (a few ms) to the longest asynchronous ones.
_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)
_WAIT_BUCKETS = (0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 300)


class Metrics:
    def __init__(self) -> None:
        registry = self.registry = CollectorRegistry()
        self.runs = Counter(
            "gitscripts_runs", "Runs ended, by mode and outcome", ["mode", "outcome"],
            registry=registry,
        )  # fmt: skip
        self.run_duration = Histogram(
            "gitscripts_run_duration_seconds", "Run time of ended runs (from start to end)",
            ["mode"], buckets=_DURATION_BUCKETS, registry=registry,
        )  # fmt: skip
        self.queue_wait = Histogram(
            "gitscripts_run_queue_wait_seconds", "Time runs waited for a place",
            ["mode"], buckets=_WAIT_BUCKETS, registry=registry,
        )  # fmt: skip
        self.queue_depth = Gauge(
            "gitscripts_run_queue_depth", "Runs waiting for a place", registry=registry
        )
        self.running = Gauge("gitscripts_runs_running", "Runs running now", registry=registry)
        self.fork_servers = Gauge(
            "gitscripts_fork_servers_warm", "Warm fork servers ready to run", registry=registry
        )
        # EXECUTOR=dask only: whether the scheduler answers, its workers, their slots.
        self.cluster_connected = Gauge(
            "gitscripts_cluster_connected", "1 while the execution cluster's scheduler answers",
            registry=registry,
        )  # fmt: skip
        self.cluster_workers = Gauge(
            "gitscripts_cluster_workers", "Workers of the execution cluster", registry=registry
        )
        self.cluster_capacity = Gauge(
            "gitscripts_cluster_capacity", "Runs the cluster's workers run at once",
            registry=registry,
        )  # fmt: skip
        self.http_requests = Counter(
            "gitscripts_http_requests", "HTTP requests, by route template and status class",
            ["method", "route", "status"], registry=registry,
        )  # fmt: skip
        self.pushes = Counter(
            "gitscripts_git_pushes", "git pushes, accepted or refused", ["outcome"],
            registry=registry,
        )  # fmt: skip
        self.file_bytes = Counter(
            "gitscripts_file_bytes", "Bytes of the file API's bodies, in and out", ["direction"],
            registry=registry,
        )  # fmt: skip

    def watch(
        self,
        queue_depth: Callable[[], float],
        running: Callable[[], float],
        fork_servers: Callable[[], float],
    ) -> None:
        """Read these gauges from these functions at every scrape."""
        self.queue_depth.set_function(queue_depth)
        self.running.set_function(running)
        self.fork_servers.set_function(fork_servers)

    def watch_cluster(
        self,
        connected: Callable[[], float],
        workers: Callable[[], float],
        capacity: Callable[[], float],
    ) -> None:
        """Read the cluster's gauges from these functions at every scrape."""
        self.cluster_connected.set_function(connected)
        self.cluster_workers.set_function(workers)
        self.cluster_capacity.set_function(capacity)

    def run_ended(
        self, mode: str, outcome: str, queue_wait: float | None, run_time: float | None
    ) -> None:
        self.runs.labels(mode, outcome).inc()
        if queue_wait is not None:
            self.queue_wait.labels(mode).observe(queue_wait)
        if run_time is not None:
            self.run_duration.labels(mode).observe(run_time)

    def render(self) -> bytes:
        """The text format Prometheus scrapes."""
        return generate_latest(self.registry)
