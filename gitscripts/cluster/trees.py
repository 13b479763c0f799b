"""Trees from the service to a cluster worker: what the worker lacks of one tree, in one answer.

A checkout cache (`executor.checkout`) writes a tree out folder by folder, each folder once per
tree id. On a worker its source of trees (`RemoteTrees`) asks the service for a tree
(`POST /internal/v1/trees/{id}` with the worker credential, see `cluster.routes`) and says which
trees it has on disk already; the answer (`pack`) holds the entries of every tree it lacks and the
bytes of their files, and nothing of what it has: after a push that changed one script, the new
root and that script's folders. One round trip, no git process on either side, never more than
the revision needs (not its history, and never anything of the service's data directory).

The answer: one frame (`executor.protocol`) of JSON `{"trees": {id: [[name, id, mode], ...]},
"blobs": [[id, size], ...]}`, then the blobs' bytes in that order.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Set
from typing import Any

from gitscripts.executor import protocol
from gitscripts.repo.trees import TreeEntry, TreeReader

OBJECT_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def pack(trees: TreeReader, tree_id: str, present: Set[str]) -> bytes:
    """`tree_id` and what it reaches, less the trees in `present` (and all they reach)."""
    listing: dict[str, list[list[Any]]] = {}
    blob_ids: dict[str, None] = {}  # in order, once each
    pending = [tree_id]
    while pending:
        current = pending.pop()
        if current in listing or current in present:
            continue
        entries = trees.entries(current)
        listing[current] = [[entry.name, entry.id, entry.mode] for entry in entries]
        for entry in entries:
            if entry.is_folder:
                pending.append(entry.id)
            elif entry.is_file:  # symlinks and submodules are never written out
                blob_ids[entry.id] = None
    blobs = [trees.blob(blob_id) for blob_id in blob_ids]
    header = {
        "trees": listing,
        "blobs": [[b, len(data)] for b, data in zip(blob_ids, blobs, strict=True)],
    }
    return b"".join([protocol.encode(header), *blobs])


def unpack(body: bytes) -> tuple[dict[str, list[TreeEntry]], dict[str, bytes]]:
    """The trees and blobs of a `pack`."""
    length = protocol.decode_length(body[: protocol.HEADER_SIZE])
    start = protocol.HEADER_SIZE + length
    header = json.loads(body[protocol.HEADER_SIZE : start])
    trees = {
        tree_id: [TreeEntry(name, entry_id, mode) for name, entry_id, mode in entries]
        for tree_id, entries in header["trees"].items()
    }
    blobs: dict[str, bytes] = {}
    for blob_id, size in header["blobs"]:
        blobs[blob_id] = body[start : start + size]
        start += size
    if start != len(body):
        raise protocol.ProtocolError("a tree pack's blobs do not add up to its length")
    return trees, blobs


class RemoteTrees:
    """A worker's source of trees (`executor.checkout.TreeSource`): the service's, by HTTP.

    Holds the entries of the trees on disk (a checkout walks them again for a new root that
    shares them) and, between a `gather` and the checkout it serves, the new trees' blobs.
    """

    def __init__(self, service_url: str, token: str, timeout: float = 120) -> None:
        self._url = service_url.rstrip("/") + "/internal/v1/trees/"
        self._token = token
        self._timeout = timeout
        self._entries: dict[str, list[TreeEntry]] = {}
        self._blobs: dict[str, bytes] = {}

    def gather(self, tree_id: str, present: Set[str]) -> None:
        self._entries = {tree: entries for tree, entries in self._entries.items()
                         if tree in present}  # fmt: skip
        request = urllib.request.Request(
            self._url + tree_id,
            data=json.dumps({"have": sorted(present)}).encode(),
            headers={
                "Authorization": f"Bearer {self._token}",
                "Content-Type": "application/json",
            },
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=self._timeout) as response:
            trees, self._blobs = unpack(response.read())
        self._entries.update(trees)

    def entries(self, tree_id: str) -> list[TreeEntry]:
        return self._entries[tree_id]

    def blob(self, blob_id: str) -> bytes:
        return self._blobs[blob_id]
