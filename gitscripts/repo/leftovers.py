"""Removing what writers killed mid-write left in the bare repository, and only that.

A `kill -9` (or the OOM killer) gives git and libgit2 no chance to clean up, and leaves:

- `objects/tmp_object_git2_*`: a loose object libgit2 was writing (this service's API commits and
  tags). libgit2 writes the object to this temporary file and renames it into place; the service's
  writes are objects of at most `MAX_SCRIPT_SIZE` and take milliseconds. So a file untouched for
  `TEMP_OBJECT_AGE` (15 minutes) has no writer left.
- `objects/tmp_objdir-incoming-*`: the quarantine of a push (git receive-pack), where the pushed
  objects wait until pre-receive accepts them. A push in progress keeps it for as long as the pack
  takes to arrive and the hook takes to answer. Two facts must both hold before one is removed:
  nothing in it changed for `QUARANTINE_AGE` (one hour: a pack that is still arriving keeps writing
  into it, and the hook gives up after ten minutes), and no process we can see names it in its
  environment (git hands the quarantine to every helper of a live push, unpack-objects,
  index-pack, rev-list and the hooks, as `GIT_OBJECT_DIRECTORY` / `GIT_QUARANTINE_PATH`; a push
  stalled for an hour with its receiver still waiting is kept).
- `refs/**/*.lock`, `packed-refs.lock`, `HEAD.lock`: a ref update (libgit2's or git's) killed between
  taking the lock and renaming it into place. Writers hold these for milliseconds (`git gc` holds
  `packed-refs.lock` for the seconds pack-refs takes), but while one stays, every write to its ref
  fails. One untouched for `REF_LOCK_AGE` (ten minutes) has no writer left.
- `.<repository>.new-*` beside the repository: a first start killed while building it (see
  `Repository._open`); it is never a repository anyone uses, and goes after `QUARANTINE_AGE` too,
  in case two services start on one new data directory at once.

Even a wrong guess could not damage the repository: objects become part of it only by a final
rename (libgit2) or by the migration out of the quarantine that precedes the ref update (git), and
a ref changes only by renaming its lock into place: each fails, leaving refs untouched, when its
temporary is gone. Anything else is never touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path

import structlog

log = structlog.get_logger("gitscripts.repo")

TEMP_OBJECT_AGE = 15 * 60
QUARANTINE_AGE = 60 * 60
REF_LOCK_AGE = 10 * 60
SWEEP_INTERVAL = 10 * 60
_OBJECT_DIR_VARIABLES = (b"GIT_OBJECT_DIRECTORY=", b"GIT_QUARANTINE_PATH=")


def sweep(repo_path: Path, now: float | None = None) -> list[Path]:
    """Remove what is provably abandoned (see the module docstring); what was removed."""
    now = time.time() if now is None else now
    objects = repo_path / "objects"
    removed: list[Path] = []
    for temp in objects.glob("tmp_object_git2_*"):
        if temp.is_file() and _newest_change(temp) < now - TEMP_OBJECT_AGE:
            removed += _remove(temp)
    ref_locks = [*repo_path.glob("refs/**/*.lock"), repo_path / "packed-refs.lock"]
    for lock in [*ref_locks, repo_path / "HEAD.lock"]:
        if lock.is_file() and lock.lstat().st_mtime < now - REF_LOCK_AGE:
            removed += _remove(lock)
    stale = [
        path
        for path in [
            *objects.glob("tmp_objdir-incoming-*"),
            *repo_path.parent.glob(f".{repo_path.name}.new-*"),
        ]
        if path.is_dir() and _newest_change(path) < now - QUARANTINE_AGE
    ]
    if stale:
        in_use = _object_dirs_in_use()
        for path in stale:
            resolved = path.resolve()
            if not any(used == resolved or resolved in used.parents for used in in_use):
                removed += _remove(path)
    if removed:
        log.warning("crash_leftovers_removed", paths=[str(path) for path in removed])
    return removed


def _newest_change(path: Path) -> float:
    """The latest modification time of `path` or anything in it."""
    newest = path.lstat().st_mtime
    if path.is_dir():
        for folder, _, files in os.walk(path):
            for name in [".", *files]:
                with contextlib.suppress(OSError):
                    newest = max(newest, os.lstat(os.path.join(folder, name)).st_mtime)
    return newest


def _object_dirs_in_use() -> set[Path]:
    """Every object directory a running process was told to use, from /proc (empty elsewhere)."""
    found: set[Path] = set()
    with contextlib.suppress(OSError):
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                environment = Path(entry.path, "environ").read_bytes()
            except OSError:  # gone meanwhile, or another user's (which cannot write here)
                continue
            for variable in environment.split(b"\0"):
                if variable.startswith(_OBJECT_DIR_VARIABLES):
                    value = variable.split(b"=", 1)[1]
                    found.add(Path(os.fsdecode(value)).resolve())
    return found


def _remove(path: Path) -> list[Path]:
    try:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        return []
    except OSError as error:  # not ours to remove after all: leave it, and say so
        log.warning("crash_leftover_kept", path=str(path), error=str(error))
        return []
    return [path]
