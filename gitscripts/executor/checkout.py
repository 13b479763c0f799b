"""Read-only checkouts of revisions, materialized once per Git tree id.

Every tree (the root and each folder) becomes one directory named by its tree id, holding its files
and, for each subfolder, a relative symlink to that subfolder's own directory. A checkout of a new
commit therefore writes only the folders that changed: after an edit to one script in a 10,000-script
repository, the new root and that one folder, not 10,000 files. Directories are built under a temporary
name and renamed into place (never seen half-built), and made read-only.

The cache is bounded in bytes: when it grows past the bound, the least recently used checkouts not in
use are dropped, with every directory no remaining checkout reaches.

The trees come from a `TreeSource`: the service's own repository (`TreeReader`), or, on a cluster
worker, what it fetched from the service (`gitscripts.cluster.trees`), which `gather` fetches
before a tree is written out, knowing which trees are on disk already.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections import OrderedDict
from collections.abc import Set
from pathlib import Path
from typing import Protocol

from gitscripts.executor.worker import remove_tree
from gitscripts.repo import modes
from gitscripts.repo.trees import TreeEntry


class TreeSource(Protocol):
    def gather(self, tree_id: str, present: Set[str]) -> None:
        """Make `tree_id` and what it reaches readable; the trees in `present` (each with all it
        reaches) are on disk and need not be."""

    def entries(self, tree_id: str) -> list[TreeEntry]: ...

    def blob(self, blob_id: str) -> bytes: ...


class CheckoutCache:
    def __init__(self, trees: TreeSource, root: Path, max_bytes: int) -> None:
        self.trees = trees
        self.root = root
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._sizes: dict[str, int] = {}  # tree id -> bytes of the files directly in it
        self._checkouts: OrderedDict[str, frozenset[str]] = OrderedDict()  # root -> reachable
        self._leases: dict[str, int] = {}
        # A cache from an earlier run is not trusted (its sizes are unknown): start empty.
        if root.exists():
            remove_tree(root)
        root.mkdir(parents=True, mode=0o755)

    @property
    def size(self) -> int:
        return sum(self._sizes.values())

    def is_ready(self, tree_id: str) -> bool:
        """Whether the tree is on disk already (then `lease` is quick enough for the event loop)."""
        return tree_id in self._checkouts

    def lease(self, tree_id: str) -> Path:
        """The directory holding the tree, kept on disk (never evicted) until it is released."""
        with self._lock:
            if tree_id not in self._checkouts:
                # Under the lock: nothing is evicted between what `present` says and the write.
                self.trees.gather(tree_id, self._sizes.keys())
                reachable: set[str] = set()
                self._materialize(tree_id, reachable)
                self._checkouts[tree_id] = frozenset(reachable)
            self._checkouts.move_to_end(tree_id)
            self._leases[tree_id] = self._leases.get(tree_id, 0) + 1
        return self.root / tree_id

    def release(self, tree_id: str) -> bool:
        """Give a lease back; True when the cache is over its bound and should `evict`."""
        with self._lock:
            self._leases[tree_id] -= 1
            if not self._leases[tree_id]:
                del self._leases[tree_id]
            return self.size > self.max_bytes

    def evict(self) -> None:
        with self._lock:
            self._evict()

    def _materialize(self, tree_id: str, reachable: set[str]) -> None:
        reachable.add(tree_id)
        final = self.root / tree_id
        entries = self.trees.entries(tree_id)
        for entry in entries:
            if entry.is_folder:
                self._materialize(entry.id, reachable)
        if tree_id in self._sizes:
            return
        building = self.root / f".build-{tree_id}-{uuid.uuid4().hex[:8]}"
        building.mkdir()
        size = 0
        for entry in entries:
            if entry.is_folder:
                os.symlink(f"../{entry.id}", building / entry.name)
            elif entry.is_file:
                data = self.trees.blob(entry.id)
                path = building / entry.name
                path.write_bytes(data)
                path.chmod(0o555 if entry.mode == modes.EXECUTABLE else 0o444)
                size += len(data)
            # Symlinks and submodules are never materialized: a script cannot reach outside.
        building.chmod(0o555)
        os.rename(building, final)
        self._sizes[tree_id] = size

    def _evict(self) -> None:
        while self.size > self.max_bytes:
            victim = next((t for t in self._checkouts if t not in self._leases), None)
            if victim is None:
                return  # everything left is in use
            del self._checkouts[victim]
            live = set().union(*self._checkouts.values()) if self._checkouts else set()
            for tree_id in [t for t in self._sizes if t not in live]:
                remove_tree(self.root / tree_id)
                del self._sizes[tree_id]
