"""Who pushed which commits: a pushed commit's author is whatever the pusher typed, so this is
what gives the files a push adds an owner, now and when the index is rebuilt."""

from __future__ import annotations

from dataclasses import dataclass

from gitscripts.index.table import Doc, Table


@dataclass(frozen=True)
class Push:
    id: int
    commit: str
    pusher_id: int


class Pushes(Table[Push]):
    """Pushers by commit id: replaying history asks this once per commit."""

    name = "pushes"

    def _record(self, doc_id: int, doc: Doc) -> Push:
        return Push(id=doc_id, commit=doc["commit"], pusher_id=doc["pusher_id"])

    def _clear(self) -> None:
        self._by_commit: dict[str, int] = {}

    def _index(self, record: Push) -> None:
        self._by_commit.setdefault(record.commit, record.pusher_id)

    def record(self, commit_ids: list[str], pusher_id: int) -> None:
        with self._storage.transaction():
            self._records()
            new = [commit_id for commit_id in commit_ids if commit_id not in self._by_commit]
            if new:
                self._insert([{"commit": commit, "pusher_id": pusher_id} for commit in new])

    def pusher_of(self, commit_id: str) -> int | None:
        self._records()
        return self._by_commit.get(commit_id)
