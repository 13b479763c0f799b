"""The service's file API on the run's own loopback (EXECUTION_NETWORK=loopback-service).

A run without network has only a loopback interface in its own network namespace. With
`loopback-service` a process of the run (forked before the job arrives, as unprivileged as the
script) listens on 127.0.0.1:<the service's port> in that namespace and relays each connection to
the file API's Unix socket bound into the run, so a script that speaks plain HTTP reaches the file
API at the address it would use on the host, and nothing else: the socket answers only the file
endpoints, and the namespace has no other way out. The relay ends with the run.

Standard library only: it runs in the run, forked from the fork server.
"""

from __future__ import annotations

import contextlib
import selectors
import socket

# Connections relayed at once: each holds two descriptors of the runner's.
MAX_CONNECTIONS = 32
_CHUNK = 65536


def listen(port: int) -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(MAX_CONNECTIONS)
    return listener


def serve(listener: socket.socket, target: str) -> None:
    """Relay connections from `listener` to the Unix socket at `target`, until the run ends
    (and this process with it)."""
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, None)
    peers: dict[socket.socket, socket.socket] = {}
    try:
        while True:
            for key, _ in selector.select():
                source = key.fileobj
                if source is listener:
                    _accept(listener, target, selector, peers)
                elif source in peers:  # not closed by its peer's end earlier in this round
                    assert isinstance(source, socket.socket)
                    _pass_on(source, selector, peers)
    finally:
        for sock in list(peers):
            sock.close()


def _accept(
    listener: socket.socket,
    target: str,
    selector: selectors.BaseSelector,
    peers: dict[socket.socket, socket.socket],
) -> None:
    client, _ = listener.accept()
    if len(peers) >= 2 * MAX_CONNECTIONS:
        client.close()
        return
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        upstream.connect(target)
    except OSError:
        client.close()
        upstream.close()
        return
    peers[client], peers[upstream] = upstream, client
    selector.register(client, selectors.EVENT_READ, None)
    selector.register(upstream, selectors.EVENT_READ, None)


def _pass_on(
    source: socket.socket,
    selector: selectors.BaseSelector,
    peers: dict[socket.socket, socket.socket],
) -> None:
    other = peers[source]
    try:
        chunk = source.recv(_CHUNK)
        if chunk:
            other.sendall(chunk)  # a script that stops reading stalls only its own run's relay
            return
    except OSError:
        pass
    for sock in (source, other):  # one side ended: so does the connection
        with contextlib.suppress(KeyError, ValueError):
            selector.unregister(sock)
        peers.pop(sock, None)
        sock.close()
