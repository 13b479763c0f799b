"""The index: what Git cannot hold (users, tokens, owners, integer ids) plus the id <-> path mapping.

Git is the truth for content and layout; the index maps stable integer ids to the paths Git holds and
remembers who owns each. It can be rebuilt from Git (see `gitscripts.index.sync`).

One JSON file (`storage.AtomicJSONStorage`: never half-written, re-read only when it changed) holds
every table; each table is a small class (`table.Table`) with its records as frozen values and the
lookups its callers need kept in memory. Callers use the tables (`index.users.by_login(...)`,
`index.scripts.at(path)`); a change spanning tables goes in `index.transaction()`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tinydb import TinyDB

from gitscripts.index.accounts import Invites, RevokedSessions, Tokens, Users
from gitscripts.index.entries import Entries
from gitscripts.index.files import FileRecords
from gitscripts.index.pushes import Pushes
from gitscripts.index.storage import AtomicJSONStorage
from gitscripts.index.table import Meta
from gitscripts.index.tombstones import Tombstones


class Index:
    def __init__(self, path: Path) -> None:
        self.storage = AtomicJSONStorage(path)
        self.db = TinyDB(storage=lambda: self.storage)
        self.meta = Meta(self.storage, self.db)
        self.users = Users(self.storage, self.db, self.meta)
        self.tokens = Tokens(self.storage, self.db, self.meta)
        self.invites = Invites(self.storage, self.db, self.meta)
        self.revoked_sessions = RevokedSessions(self.storage, self.db, self.meta)
        self.folders = Entries(self.storage, self.db, self.meta, "folders")
        self.scripts = Entries(self.storage, self.db, self.meta, "scripts")
        self.deleted = Tombstones(self.storage, self.db, self.meta)
        self.pushes = Pushes(self.storage, self.db, self.meta)
        self.files = FileRecords(self.storage, self.db, self.meta)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Changes to several tables as one write, checked against the latest file."""
        with self.storage.transaction():
            yield
