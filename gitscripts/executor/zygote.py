"""The warm fork server: one long-lived, single-threaded process that forks a supervisor per job.

Started by the service with a clean environment; it imports the modules named in PRELOAD_MODULES once
(numpy, pandas, ...), so no execution pays for interpreter start-up or those imports. Per connection on
its Unix socket it forks; the child reads the job, tells the service its pid (so the service can cancel
it), supervises the run and sends the report. The zygote itself never runs user code, and children
never share state: each starts from the zygote's pristine memory.
Standard library only (plus whatever is preloaded).
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import os
import signal
import socket
import sys

from gitscripts.executor.protocol import encode, read_frame
from gitscripts.executor.worker import supervise

_PR_SET_PDEATHSIG = 1


def _reap(signum: int, frame: object) -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _serve_one(connection: socket.socket) -> None:
    try:
        job = read_frame(connection)
        connection.sendall(encode({"pid": os.getpid()}))
        report = supervise(job)
        connection.sendall(encode(report))
    finally:
        os._exit(0)


def serve(socket_path: str, preload: list[str]) -> None:
    # Die with the service that started us, however it ends.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    for name in preload:
        importlib.import_module(name)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    os.chmod(socket_path, 0o600)
    listener.listen(256)
    signal.signal(signal.SIGCHLD, _reap)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    # Tell the service we are ready (it waits for this line before sending work).
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        connection, _ = listener.accept()
        pid = os.fork()
        if pid == 0:
            listener.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            _serve_one(connection)
        connection.close()


if __name__ == "__main__":
    serve(sys.argv[1], [name for name in sys.argv[2].split(",") if name])
