"""The warm fork server: one long-lived, single-threaded process that forks a runner per job.

Started by the service with a clean environment, it imports the modules named in PRELOAD_MODULES
once (numpy, pandas, ...), so a run costs a fork and its sandbox (what a run could change made anew
for every run, the rest once, see `sandbox`), not an interpreter start-up and the imports. It
supervises every run itself from one event loop: reads the job's header from the service's
connection, hands it to a runner forked ahead of time, collects its output, kills it at its deadline
(or when the service hangs up: the client went away), cleans up what it left behind, and sends the
report.

It treats every run as hostile: it never runs user code, never holds a run's input or file token
(those reach the runner through the run's own folder), never parses what a run answers (the service
does), and lives outside every run's PID namespace, so no run can see, signal, trace or write to it.
Runners never share state: each starts from the zygote's pristine memory. Standard library only
(plus whatever is preloaded).
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import json
import os
import selectors
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import cast

from gitscripts.executor import protocol, sandbox
from gitscripts.executor.packages import Packages
from gitscripts.executor.worker import Run, become_subreaper, kill_orphans

_PR_SET_PDEATHSIG = 1
# How long nothing must happen before a spare runner is built for a slot that ran.
IDLE_SECONDS = 0.005


@dataclass
class _Connection:
    sock: socket.socket
    buffer: bytearray = field(default_factory=bytearray)
    run: Run | None = None

    def job(self) -> protocol.Job | None:
        """The job, once its whole frame has arrived."""
        if len(self.buffer) < protocol.HEADER_SIZE:
            return None
        length = protocol.decode_length(bytes(self.buffer[: protocol.HEADER_SIZE]))
        if len(self.buffer) < protocol.HEADER_SIZE + length:
            return None
        job = json.loads(self.buffer[protocol.HEADER_SIZE : protocol.HEADER_SIZE + length])
        return cast(protocol.Job, job)  # written by the service (`ExecutionService._job`)


class ForkServer:
    def __init__(
        self, listener: socket.socket, config: sandbox.SandboxConfig, shared: sandbox.Shared
    ) -> None:
        self.listener = listener
        self.config = config
        self.shared = shared
        # poll(2), not epoll: epoll's registrations outlive a close() while a freshly forked runner
        # still holds a copy of the fd, and would then report events for a reused fd number.
        self.selector = selectors.PollSelector()
        self.selector.register(listener, selectors.EVENT_READ, ("accept", None))
        self.runs: dict[int, _Connection] = {}  # runner pid -> its connection
        # Runs that answered, killed, whose runners the kernel is still taking down.
        self.retiring: dict[int, Run] = {}  # runner pid -> its run
        # A runner per slot forked ahead of time, its sandbox built, waiting for the slot's next
        # job: a request waits for neither the fork nor the sandbox.
        self.spares = {slot: Run(config, shared, slot) for slot in range(config.slots)}
        # Slots whose runs ended, to get a spare once we are idle (see `serve_forever`).
        self.spent: list[int] = []

    def serve_forever(self) -> None:
        while True:
            events = self.selector.select(self._timeout())
            if not events:
                self._replace_a_spent_spare()
            for key, _ in events:
                kind, connection = key.data
                if kind == "accept":
                    self._accept()
                elif kind == "job":
                    self._receive_job(connection)
                elif kind == "hangup":
                    self._on_hangup(connection)
                elif kind == "pipe" and not connection.run.read(key.fd):
                    self.selector.unregister(key.fd)  # before closing: never watch a reused fd
                    connection.run.close(key.fd)
                elif kind == "exit":
                    self.selector.unregister(key.fd)
                elif kind == "retired":
                    self.selector.unregister(key.fd)
                    self._clean_up(connection)
            self._advance()

    def _timeout(self) -> float | None:
        runs = [c.run for c in self.runs.values() if c.run is not None]
        idle = IDLE_SECONDS if self.spent else None
        if not runs:
            return idle
        remaining = max(0.0, min(run.deadline for run in runs) - time.perf_counter())
        # Without pidfds (an old kernel) a finished runner is only noticed by polling.
        if any(run.pidfd is None for run in runs):
            remaining = min(remaining, 0.002)
        return remaining if idle is None else min(remaining, idle)

    def _accept(self) -> None:
        sock, _ = self.listener.accept()
        sock.setblocking(False)
        self.selector.register(sock, selectors.EVENT_READ, ("job", _Connection(sock)))

    def _receive_job(self, connection: _Connection) -> None:
        try:
            chunk = connection.sock.recv(1 << 20)
        except BlockingIOError:
            return
        if not chunk:
            self._close(connection)
            return
        connection.buffer += chunk
        job = connection.job()
        if job is None:
            return
        connection.buffer.clear()
        slot = int(job["slot"])
        run = self.spares.pop(slot, None)
        if slot in self.spent:  # its spare is made now, on demand, and the run takes it
            self.spent.remove(slot)
        if run is None or run.reap():  # none ready, or it died (killed from outside)
            if run is not None:
                run.discard()
            run = Run(self.config, self.shared, slot)
        run.start(job)
        connection.run = run
        self.runs[run.pid] = connection
        # From now on the connection only tells us when the service hangs up (cancellation).
        self.selector.modify(connection.sock, selectors.EVENT_READ, ("hangup", connection))
        for fd in run.open_fds:
            self.selector.register(fd, selectors.EVENT_READ, ("pipe", connection))
        if run.pidfd is not None:
            self.selector.register(run.pidfd, selectors.EVENT_READ, ("exit", connection))
        self._replace_a_spent_spare()

    def _replace_a_spent_spare(self) -> None:
        """Build a spare for a slot whose run ended, when it least delays a job: just after
        handing one to its runner (the service's next one rarely follows at once), or when
        nothing has happened for a while. Not when a run ends: the service's next job most
        often comes right then, and would wait for the fork and share the machine with the new
        runner's sandbox being built."""
        while self.spent:
            slot = self.spent.pop(0)
            if slot not in self.spares:
                self.spares[slot] = Run(self.config, self.shared, slot)
                return

    def _on_hangup(self, connection: _Connection) -> None:
        with contextlib.suppress(BlockingIOError, ConnectionError):
            if connection.sock.recv(1):
                return
        if connection.run is not None:
            connection.run.kill()

    def _advance(self) -> None:
        now = time.perf_counter()
        for pid, connection in list(self.runs.items()):
            run = connection.run
            assert run is not None
            # Once the script answered, or the runner exited (then everything it wrote is in the
            # pipes; finish drains them after killing anything it left that holds them), it is done.
            if run.answered or run.reap():
                self._finish(pid, connection)
            elif now >= run.deadline:
                run.kill(timed_out=True)
                self._finish(pid, connection)

    def _runner_pids(self) -> set[int]:
        spares = {spare.pid for spare in self.spares.values()}
        return set(self.runs) | set(self.retiring) | spares

    def stop(self) -> None:
        for connection in self.runs.values():
            if connection.run is not None:
                connection.run.kill()
        for run in self.retiring.values():
            run.kill()
        for spare in self.spares.values():
            spare.discard()
        if self.shared.home < 0:  # else nothing of a run can have become ours
            kill_orphans(set())

    def _finish(self, pid: int, connection: _Connection) -> None:
        run = connection.run
        assert run is not None
        del self.runs[pid]
        for fd in [*run.open_fds, run.pidfd]:
            if fd is not None:
                with contextlib.suppress(KeyError, ValueError):
                    self.selector.unregister(fd)

        def send(report: protocol.Report) -> None:
            with contextlib.suppress(OSError):
                connection.sock.setblocking(True)
                connection.sock.sendall(protocol.encode(report))
            self._close(connection)

        if run.finish(send, other_runners=self._runner_pids(), wait=False):
            run.remove_scratch()
        else:  # cleaned up when its runner is gone
            assert run.pidfd is not None
            self.retiring[run.pid] = run
            self.selector.register(run.pidfd, selectors.EVENT_READ, ("retired", run))
        self.spent.append(run.slot)

    def _clean_up(self, run: Run) -> None:
        del self.retiring[run.pid]
        run.clean_up(other_runners=self._runner_pids())
        run.remove_scratch()

    def _close(self, connection: _Connection) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(connection.sock)
        connection.sock.close()


def serve(
    socket_path: str, preload: list[str], config: sandbox.SandboxConfig, packages: Packages
) -> None:
    # Die with the service that started us, however it ends; and keep our memory and /proc
    # entries closed to every other process of our uid.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        ctypes.CDLL(None).prctl(sandbox.PR_SET_DUMPABLE, 0, 0, 0, 0)
    packages.use()  # a script environment's, first on sys.path
    for name in preload:
        importlib.import_module(name)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    os.chmod(socket_path, 0o600)
    listener.listen(256)
    become_subreaper()
    # The namespaces every run shares (made once: see `sandbox.Shared`); a refused one ends us
    # here, with the reason on stderr, before the service is told we are ready.
    shared = sandbox.prepare(config, sandbox.Outcome(), required=True)
    server = ForkServer(listener, config, shared)

    def on_terminate(signum: int, frame: object) -> None:
        server.stop()
        os._exit(0)

    signal.signal(signal.SIGTERM, on_terminate)
    # Tell the service we are ready (it waits for this line before sending work).
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    server.serve_forever()


if __name__ == "__main__":
    serve(
        sys.argv[1],
        [name for name in sys.argv[2].split(",") if name],
        sandbox.SandboxConfig.from_json(sys.argv[3] if len(sys.argv) > 3 else ""),
        Packages.from_json(sys.argv[4] if len(sys.argv) > 4 else ""),
    )
