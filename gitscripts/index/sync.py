"""Bring the index's id/path mapping in line with what Git holds.

Git is the truth for layout; the index adds ids and owners. Whenever `main` moved without the index
hearing of it (a push, a crash between commit and index write, a lost index file), this derives the
index from Git again: entries whose path still exists keep their id and owner, moved ones (found by git's
rename detection, or by identical content) keep theirs at the new path, vanished ones are dropped, and
new ones get a fresh id and an owner (the given actor, or the user whose API commit introduced them).
A vanished script leaves a tombstone (`index.deleted`) naming the commit that deleted it, and
tombstones move with the folders they were in, so a script deleted by a push can be restored under
its id like one deleted through the API; one that comes back at its path exactly as it went (a
pushed revert, or a restore an older copy of the index missed) takes its id back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gitscripts.index.entries import Entries, Entry
from gitscripts.index.store import Index
from gitscripts.index.tombstones import Tombstone, relocated
from gitscripts.repo import Commit, Repository, layout


def sync_index(
    index: Index,
    repo: Repository,
    *,
    target: Commit | None = None,
    actor_id: int | None = None,
    full: bool = False,
) -> bool:
    """Update the index to describe `target` (default: `main`). Returns whether anything changed.

    `full` ignores what the index believes it last saw and compares everything (`gitscripts reindex`).
    """
    with repo.write_lock, index.transaction():
        head = target if target is not None else repo.head()
        known = index.meta.synced_head
        if known == str(head.id) and not full:
            return False
        listing = repo.listing(head)
        # The last commit the index described is the base for git's rename detection.
        previous = repo.find_commit(known) if known else None
        script_moves = repo.detected_moves(previous, head) if previous is not None else {}
        # Owners of unknown paths are looked for in the commits since the index was last in step;
        # a full rebuild does not trust that and looks through all of history.
        since = None if full else previous
        scripts = _sync_kind(
            index,
            repo,
            index.scripts,
            set(listing.scripts),
            script_moves,
            actor_id,
            head,
            since,
            revive=lambda paths: _revive(index, repo, head, paths),
        )
        if scripts.removed:
            deleted_in = _deleting_commits(repo, head, previous, {e.path for e in scripts.removed})
            index.deleted.bury(scripts.removed, deleted_in)
        moved_folders = _index_folder_moves(script_moves)
        folders = _sync_kind(
            index, repo, index.folders, set(listing.folders), moved_folders, actor_id, head, since
        )
        index.deleted.move_folders(folders.moved)
        if full:
            _rebuild_tombstones(index, repo, head, set(listing.scripts))
        index.meta.set_synced_head(str(head.id))
        return scripts.changed or folders.changed


def folder_moves(script_moves: dict[str, str]) -> dict[str, str]:
    """A folder moved when the files inside it moved together to one new folder."""
    moves: dict[str, str] = {}
    for old, new in script_moves.items():
        old_parts, new_parts = old.split("/"), new.split("/")
        # Walk up both paths while the tails agree: each differing ancestor pair is a folder move.
        while len(old_parts) > 1 and len(new_parts) > 1 and old_parts[-1] == new_parts[-1]:
            old_parts, new_parts = old_parts[:-1], new_parts[:-1]
            old_folder, new_folder = "/".join(old_parts), "/".join(new_parts)
            if old_folder != new_folder:
                moves.setdefault(old_folder, new_folder)
    return moves


def _index_folder_moves(script_moves: dict[str, str]) -> dict[str, str]:
    """`folder_moves`, and also the folder of a file that was renamed as it moved (`git mv geology
    geo` and `git mv geo/a.py geo/b.py` in one push): its old folder became its new one.

    Only for the sync, which takes a folder move only when the old folder vanished and the new one
    appeared; elsewhere a renamed file proves less.
    """
    moves = folder_moves(script_moves)
    for old, new in script_moves.items():
        old_parts, new_parts = old.split("/")[:-1], new.split("/")[:-1]
        # The folders holding the file pair up; above them, only while the names agree.
        while old_parts and new_parts:
            old_folder, new_folder = "/".join(old_parts), "/".join(new_parts)
            if old_folder != new_folder:
                moves.setdefault(old_folder, new_folder)
            if old_parts[-1] != new_parts[-1]:
                break
            old_parts, new_parts = old_parts[:-1], new_parts[:-1]
    return moves


@dataclass(frozen=True)
class _Synced:
    changed: bool
    moved: dict[str, str]  # old path -> new, of entries that kept their id
    removed: list[Entry]  # entries whose path vanished


def _sync_kind(
    index: Index,
    repo: Repository,
    table: Entries,
    present: set[str],
    detected_moves: dict[str, str],
    actor_id: int | None,
    head: Commit,
    since: Commit | None,
    revive: Callable[[set[str]], set[str]] | None = None,
) -> _Synced:
    entries = table.by_path()
    vanished = {path for path in entries if path not in present}
    appeared = {path for path in present if path not in entries}
    if not vanished and not appeared:
        return _Synced(changed=False, moved={}, removed=[])
    moves = {old: new for old, new in detected_moves.items() if old in vanished and new in appeared}
    table.move(moves)
    appeared -= set(moves.values())
    vanished -= moves.keys()
    removed = [entries[path] for path in sorted(vanished)]
    table.remove([entry.id for entry in removed])
    if appeared and revive is not None:
        appeared -= revive(appeared)
    if appeared:
        owners = _introducers(index, repo, head, appeared, since) if actor_id is None else {}
        table.add_many({path: owners.get(path, actor_id) for path in sorted(appeared)})
    return _Synced(changed=True, moved=moves, removed=removed)


def last_version(repo: Repository, stone: Tombstone) -> Commit | None:
    """The commit holding a deleted script's last version: the deleting commit's parent (or,
    when the deletion was put on a later commit, the newest one before it that had it)."""
    deleting = repo.find_commit(stone.deleted_in)
    if deleting is None or not deleting.parent_ids:
        return None
    parent = repo.find_commit(deleting.parent_ids[0])
    if parent is not None and repo.is_file(parent.tree, stone.deleted_path):
        return parent
    for commit in repo.log(deleting, stone.deleted_path, after_start=True):
        if repo.is_file(commit.tree, stone.deleted_path):
            return commit
    return None


def _revive(index: Index, repo: Repository, head: Commit, paths: set[str]) -> set[str]:
    """Deleted scripts that came back by git exactly as they went (a revert, or an API restore
    an older index never heard of) take their id and owner back; the paths they are at."""
    revived: set[str] = set()
    for stone in reversed(index.deleted.all()):  # the most recently deleted first
        if stone.path not in paths or stone.path in revived:
            continue
        last = last_version(repo, stone)
        if last is None:
            continue
        if repo.entry_id(last.tree, stone.deleted_path) == repo.entry_id(head.tree, stone.path):
            index.deleted.remove([stone.id])
            index.scripts.revive(stone.id, stone.path, stone.owner_id, stone.created_at)
            revived.add(stone.path)
    return revived


def _deleting_commits(
    repo: Repository, head: Commit, since: Commit | None, paths: set[str]
) -> dict[str, str]:
    """The commit that deleted each of `paths` (gone in `head`): the last one since `since` that
    removed it. A path git shows no deletion of (`since` unknown to it) is put on `head`."""
    found = dict.fromkeys(paths, str(head.id))
    for step in repo.replay(head, since):
        for path, added in step.added_or_deleted:
            if not added and path in found:
                found[path] = str(step.commit.id)
    return found


def responsible_user_id(index: Index, commit: Commit) -> int | None:
    """The gitscripts user who put `commit` on the server: its pusher, or the API caller.

    A pushed commit can claim anything, even to be one of our own API commits (committer and
    author are client text), so what was recorded at push time wins.
    """
    user_id = index.pushes.pusher_of(commit.id)
    if user_id is None:
        user_id = Repository.api_author_id(commit)
    return user_id if user_id is not None and index.users.get(user_id) is not None else None


def _introducers(
    index: Index,
    repo: Repository,
    head: Commit,
    paths: set[str],
    since: Commit | None,
) -> dict[str, int]:
    """Who made each path appear, for paths nobody is known to own, by replaying history
    (since the last commit the index described, when it is known)."""
    owners = _replay(index, repo, head, since).owners
    return {path: owner for path, owner in owners.items() if path in paths and owner is not None}


@dataclass(frozen=True)
class _Deletion:
    path: str  # where the script was deleted
    commit: str
    owner: int | None


@dataclass(frozen=True)
class _Replayed:
    owners: dict[str, int | None]  # each path at `head`: who made it appear
    deletions: dict[str, _Deletion]  # the last script deleted at each path, moved with its folders


def _replay(index: Index, repo: Repository, head: Commit, since: Commit | None) -> _Replayed:
    """Who made each path appear, and which scripts were deleted, by replaying history.

    Ownership follows a file or folder through its moves. A commit's author counts only when
    gitscripts made the commit itself (an API call); a pushed commit's author is whatever the
    pusher typed, so for those the pusher recorded at push time is the owner. A deleted script
    is kept at the path it would come back to: its folder's, as the folder moved since.
    """
    owners: dict[str, int | None] = {}
    deletions: dict[str, _Deletion] = {}
    for step in repo.replay(head, since):
        author_id = responsible_user_id(index, step.commit)
        moved_folders = folder_moves(step.moves)
        for old, new in {**moved_folders, **step.moves}.items():
            if old in owners:
                owners[new] = owners.pop(old)
        if moved_folders:
            deletions = {
                relocated(path, moved_folders) or path: deletion
                for path, deletion in deletions.items()
            }
        for path, added in step.added_or_deleted:
            if not added:
                owner = owners.pop(path, None)
                if layout.is_script_path(path) and path not in step.moves:
                    deletions[path] = _Deletion(path, str(step.commit.id), owner)
            elif path not in owners:
                owners[path] = author_id
                for folder in _ancestors(path):
                    owners.setdefault(folder, author_id)
    return _Replayed(owners, deletions)


def _rebuild_tombstones(index: Index, repo: Repository, head: Commit, live: set[str]) -> None:
    """Tombstones for the scripts history shows deleted that the index does not remember (an
    index lost, or older than tombstones): the last one deleted at each path that is free now,
    under a new id (the old one is lost with the index that held it), owned by its creator."""
    stones = index.deleted.all()
    known = {(stone.deleted_path, stone.deleted_in) for stone in stones}
    taken = live | {stone.path for stone in stones}
    missing = {
        path: deletion
        for path, deletion in _replay(index, repo, head, None).deletions.items()
        if path not in taken and (deletion.path, deletion.commit) not in known
    }
    index.deleted.add(
        [
            (path, deletion.path, deletion.commit, deletion.owner)
            for path, deletion in sorted(missing.items())
        ]
    )


def _ancestors(path: str) -> list[str]:
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]
