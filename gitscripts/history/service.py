"""History, diffs and tags: who changed what and when, any two versions compared, named versions.

Reads only: every question about the past goes to the repository facade (`Repository.versions`,
`path_at`, `log`, `changes`, the tags); this module turns its answers into the API's shapes and
`diffs` renders the differences. Writes that change scripts (restore) are the manager's, since every
change to the tree is one of its commits; tags are refs, not tree changes, and live here.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, TypedDict, TypeVar

from gitscripts import access, errors
from gitscripts.history import diffs
from gitscripts.index import Index, Person
from gitscripts.index.lookups import Lookups
from gitscripts.index.sync import responsible_user_id
from gitscripts.index.tombstones import Tombstone
from gitscripts.repo import Author, Commit, Repository, layout
from gitscripts.repo.repository import TAG_PREFIX, Change, TagInfo, Version
from gitscripts.timestamps import iso_seconds


class AuthorView(TypedDict):
    """The author as git recorded them, and the gitscripts user who pushed or made the commit
    (`id`/`login` null when none is known)."""

    id: int | None
    login: str | None
    name: str
    email: str


class CommitView(TypedDict):
    revision: str
    short: str
    author: AuthorView
    committed_at: str
    message: str


class VersionView(CommitView):
    change: str
    path: str
    old_path: str | None


class ChangeView(TypedDict):
    status: str
    path: str
    old_path: str | None


class LoggedCommit(CommitView):
    parents: list[str]
    changes: list[ChangeView]


class Committer(TypedDict):
    name: str
    email: str


class Stats(TypedDict):
    files: int
    additions: int
    deletions: int


class CommitDetail(CommitView):
    authored_at: str
    committer: Committer
    parents: list[str]
    stats: Stats
    files: list[dict[str, Any]]  # `diffs.FileDiff.to_dict()` with its `patch`


class ScriptHistory(TypedDict):
    script_id: int
    versions: list[VersionView]
    next_before: str | None


# "from" is a Python keyword: only the functional form can name that key.
ScriptDiff = TypedDict(
    "ScriptDiff",
    {
        "script_id": int,
        "from": str | None,
        "to": str,
        "patch": str,
        "files": list[dict[str, Any]],  # `diffs.FileDiff.to_dict()`
    },
)


class BlameLine(TypedDict):
    line: int
    content: str
    revision: str  # the commit that last changed the line: a key of `ScriptBlame.commits`
    original_line: int  # its number in that commit's version
    path: str  # the script's path in that commit


class ScriptBlame(TypedDict):
    script_id: int
    revision: str
    path: str
    commits: dict[str, CommitView]  # each commit the lines name, once: who, when, why
    lines: list[BlameLine]


class Log(TypedDict):
    path: str | None
    commits: list[LoggedCommit]
    next_before: str | None


class TagView(TypedDict):
    name: str
    revision: str
    short: str
    message: str | None
    created_by: Person | None
    created_at: str | None
    can_edit: bool
    can_delete: bool


class ScriptTagView(TagView):
    path: str  # the script's path at the tag: where to run it with `?rev=<tag>`


class DeletedScriptView(TypedDict):
    """A deleted script: where it was, who deleted it and when, and where a restore puts it."""

    script_id: int
    path: str  # where a restore puts it (its folder may have moved since it was deleted)
    deleted_path: str  # where it was when it was deleted
    display_name: str
    description: str | None
    created_by: Person | None
    created_at: str
    deleted_in: CommitView  # the commit that deleted it: by whom, when, why
    last_revision: str  # the commit holding its last version
    path_taken: bool  # something is at `path` now: a restore would be refused
    can_restore: bool


class DeletedScript(DeletedScriptView):
    content: str


Paged = TypeVar("Paged", VersionView, LoggedCommit)


class HistoryService:
    def __init__(self, index: Index, repo: Repository, lookups: Lookups) -> None:
        self.index = index
        self.repo = repo
        self.lookups = lookups

    # -- presenting -----------------------------------------------------------------------------
    def _author(self, commit: Commit) -> AuthorView:
        """The author as git recorded them, plus the gitscripts user who pushed or made it."""
        known = self.index.users.person(responsible_user_id(self.index, commit))
        return AuthorView(
            id=known["id"] if known else None,
            login=known["login"] if known else None,
            name=commit.author.name,
            email=commit.author.email,
        )

    def _commit_summary(self, commit: Commit) -> CommitView:
        return CommitView(
            revision=commit.id,
            short=self.repo.short_id(commit),
            author=self._author(commit),
            committed_at=iso_seconds(commit.commit_time),
            message=commit.message.rstrip("\n"),
        )

    def _version(self, version: Version) -> VersionView:
        return VersionView(
            **self._commit_summary(version.commit),
            change=version.change,
            path=version.path,
            old_path=version.old_path,
        )

    @staticmethod
    def _page(items: Sequence[Paged], limit: int) -> tuple[list[Paged], str | None]:
        """A page of `limit` from `limit + 1` fetched, and the cursor for the next one."""
        page = list(items[:limit])
        return page, (page[-1]["revision"] if len(items) > limit else None)

    # -- one script -----------------------------------------------------------------------------
    def script_history(self, script_id: int, limit: int, before: str | None) -> ScriptHistory:
        path = self.lookups.script_path(script_id)
        after = self.repo.resolve(before) if before is not None else None
        found = self.repo.versions(self.repo.head(), path, after=after)
        items = [self._version(version) for version in itertools.islice(found, limit + 1)]
        versions, next_before = self._page(items, limit)
        return ScriptHistory(script_id=script_id, versions=versions, next_before=next_before)

    def script_diff(self, script_id: int, from_rev: str | None, to_rev: str | None) -> ScriptDiff:
        """The script (and its metadata sidecar) between two revisions; by default its previous
        version against `to` (default: the current one). `from_rev` "" is nothing: the script as
        it was at `to`, all added (what its first version shows by default too)."""
        to_commit = self.repo.resolve(to_rev) if to_rev is not None else self.repo.head()
        new_path = self.lookups.script_path_at(script_id, to_commit, to_rev or "main")
        from_commit: Commit | None
        old_path: str | None
        if from_rev == "":
            from_commit, old_path = None, None
        elif from_rev is not None:
            from_commit = self.repo.resolve(from_rev)
            old_path = self.lookups.script_path_at(script_id, from_commit, from_rev)
        else:
            # The newest two versions as of `to`: the second is the one before the last change.
            # (The script's own walk from `to`, so renames before `to` are followed.)
            latest = list(itertools.islice(self.repo.versions(to_commit, new_path), 2))
            previous = latest[1] if len(latest) > 1 else None
            from_commit = previous.commit if previous else None
            old_path = previous.path if previous else None
        files = [
            diffs.diff_file(
                _status(old, new),
                old,
                new,
                self.repo.read_file(from_commit.tree, old) if from_commit and old else None,
                self.repo.read_file(to_commit.tree, new) if new else None,
            )
            for old, new in _script_and_sidecar(
                self.repo, from_commit, old_path, to_commit, new_path
            )
        ]
        return ScriptDiff(
            {
                "script_id": script_id,
                "from": from_commit.id if from_commit else None,
                "to": to_commit.id,
                "patch": diffs.unified_patch(files),
                "files": [file.to_dict() for file in files],
            }
        )

    def script_blame(self, script_id: int, revision: str | None) -> ScriptBlame:
        """Each line of the script at `revision` (default: `main`) with the commit that last
        changed it, followed back through renames and moves."""
        commit = self.repo.resolve(revision) if revision is not None else self.repo.head()
        path = self.lookups.script_path_at(script_id, commit, revision or "main")
        text = (self.repo.read_file(commit.tree, path) or b"").decode("utf-8", errors="replace")
        texts = text.split("\n")
        if text.endswith("\n") or not text:
            texts.pop()  # git counts a final newline as the end of the last line, not a line
        commits: dict[str, CommitView] = {}
        lines: list[BlameLine] = []
        for blamed in self.repo.blame(commit, path):
            if blamed.commit.id not in commits:
                commits[blamed.commit.id] = self._commit_summary(blamed.commit)
            for offset in range(blamed.lines):
                number = blamed.start + offset
                lines.append(
                    BlameLine(
                        line=number,
                        content=texts[number - 1] if number <= len(texts) else "",
                        revision=blamed.commit.id,
                        original_line=blamed.original_start + offset,
                        path=blamed.path,
                    )
                )
        return ScriptBlame(
            script_id=script_id, revision=commit.id, path=path, commits=commits, lines=lines
        )

    # -- deleted scripts ------------------------------------------------------------------------
    def _deleted_view(self, user: access.User, stone: Tombstone) -> DeletedScriptView:
        last = self.lookups.last_version(stone)
        deleting = self.repo.find_commit(stone.deleted_in)
        metadata = self.repo.script_metadata(last.tree, stone.deleted_path)
        return DeletedScriptView(
            script_id=stone.id,
            path=stone.path,
            deleted_path=stone.deleted_path,
            display_name=metadata.display_name,
            description=metadata.description,
            created_by=self.index.users.person(stone.owner_id),
            created_at=stone.created_at,
            deleted_in=self._commit_summary(deleting or last),
            last_revision=last.id,
            path_taken=self.repo.entry(self.repo.head().tree, stone.path) is not None,
            can_restore=access.may_change_script(user, stone.owner_id),
        )

    def deleted_scripts(self, user: access.User, folder: str | None) -> list[DeletedScriptView]:
        """The scripts deleted inside `folder` (None: anywhere), at any depth, most recently
        deleted first; each restorable by its id while it stays deleted."""
        self.lookups.ensure_synced()
        inside = _clean_path(folder) if folder is not None else None
        stones = reversed(self.index.deleted.under(inside))  # ties: the later buried first
        views = [self._deleted_view(user, stone) for stone in stones]
        return sorted(views, key=lambda view: view["deleted_in"]["committed_at"], reverse=True)

    def deleted_script(self, user: access.User, script_id: int) -> DeletedScript:
        """One deleted script, with its last content."""
        self.lookups.ensure_synced()
        stone = self.lookups.tombstone(script_id)
        view = self._deleted_view(user, stone)
        last = self.repo.resolve(view["last_revision"])
        content = self.repo.read_file(last.tree, stone.deleted_path) or b""
        return DeletedScript(**view, content=content.decode("utf-8", errors="replace"))

    # -- the repository -----------------------------------------------------------------------
    def log(self, path: str | None, limit: int, before: str | None) -> Log:
        if path is not None:
            path = _clean_path(path)
        if before is not None:
            start, after_start = self.repo.resolve(before), True
        else:
            start, after_start = self.repo.head(), False
        walk = self.repo.log(start, path, after_start=after_start)
        items = [
            LoggedCommit(
                **self._commit_summary(commit),
                parents=list(commit.parent_ids),
                changes=[_change(change) for change in self.repo.changes(commit)],
            )
            for commit in itertools.islice(walk, limit + 1)
        ]
        commits, next_before = self._page(items, limit)
        return Log(path=path, commits=commits, next_before=next_before)

    def commit_detail(self, revision: str) -> CommitDetail:
        """One commit against its first parent (a merge: what it brought to the first parent's
        line; a root commit: everything it added)."""
        commit = self.repo.resolve(revision)
        files = [
            diffs.diff_file(
                change.status,
                change.old_path,
                change.new_path,
                self.repo.blob(change.old_id) if change.old_id else None,
                self.repo.blob(change.new_id) if change.new_id else None,
            )
            for change in self.repo.changes(commit)
        ]
        return CommitDetail(
            **self._commit_summary(commit),
            authored_at=iso_seconds(commit.author.time),
            committer=Committer(name=commit.committer.name, email=commit.committer.email),
            parents=list(commit.parent_ids),
            stats=Stats(
                files=len(files),
                additions=sum(file.additions for file in files),
                deletions=sum(file.deletions for file in files),
            ),
            files=[{**file.to_dict(), "patch": file.patch()} for file in files],
        )

    # -- tags -----------------------------------------------------------------------------------
    def _tag_view(self, user: access.User, tag: TagInfo) -> TagView:
        may_change = access.may_change_tag(user, tag.tagger_id)
        return TagView(
            name=tag.name,
            revision=tag.commit.id,
            short=self.repo.short_id(tag.commit),
            message=tag.message.rstrip("\n") if tag.message else None,
            created_by=self.index.users.person(tag.tagger_id),
            created_at=iso_seconds(tag.tagged_at) if tag.tagged_at is not None else None,
            can_edit=may_change,
            can_delete=may_change,
        )

    def tags(self, user: access.User) -> list[TagView]:
        return [self._tag_view(user, tag) for tag in self.repo.tags()]

    def script_tags(self, user: access.User, script_id: int) -> list[ScriptTagView]:
        """The tags that concern a script: those at which it existed (followed through renames
        and moves), each with the path it had there."""
        head = self.repo.head()
        tags = self.repo.tags()
        paths = self.repo.paths_at(
            head, self.lookups.script_path(script_id), [tag.commit for tag in tags]
        )
        return [
            ScriptTagView(**self._tag_view(user, tag), path=paths[tag.commit.id])
            for tag in tags
            if tag.commit.id in paths
        ]

    def _existing_tag(self, name: str) -> TagInfo:
        tag = self.repo.tag(name)
        if tag is None:
            raise errors.TagNotFound(f"Tag '{name}' not found", tag=name)
        return tag

    def _require_tag_owner(self, user: access.User, tag: TagInfo) -> None:
        if not access.may_change_tag(user, tag.tagger_id):
            raise errors.NotTagOwner(
                "Only the tag's creator or an admin can change it", tag=tag.name
            )

    def create_tag(
        self, user: access.User, name: str, revision: str, message: str | None
    ) -> TagView:
        problem = self.repo.ref_name_problem(TAG_PREFIX + name)
        if problem:
            raise errors.InvalidTagName(f"Invalid tag name: {problem}", tag=name)
        commit = self.repo.resolve(revision)
        tag = self.repo.set_tag(
            name,
            commit,
            Author(user.id, user.login),
            message or f"Tag {name}",
            expected=None,
        )
        return self._tag_view(user, tag)

    def move_tag(self, user: access.User, name: str, revision: str, message: str | None) -> TagView:
        tag = self._existing_tag(name)
        self._require_tag_owner(user, tag)
        commit = self.repo.resolve(revision)
        # The tag stays its creator's (the tagger names the owner); an admin moving a pushed tag
        # nobody is known to own becomes its owner.
        creator = self.index.users.get(tag.tagger_id) if tag.tagger_id is not None else None
        tagger = Author(creator.id, creator.login) if creator else Author(user.id, user.login)
        moved = self.repo.set_tag(
            name,
            commit,
            tagger,
            message or tag.message or f"Tag {name}",
            expected=tag.target,
        )
        return self._tag_view(user, moved)

    def delete_tag(self, user: access.User, name: str) -> None:
        tag = self._existing_tag(name)
        self._require_tag_owner(user, tag)
        self.repo.delete_tag(name, expected=tag.target)


def _status(old: str | None, new: str | None) -> str:
    if old is None:
        return "added"
    if new is None:
        return "deleted"
    return "renamed" if old != new else "modified"


def _script_and_sidecar(
    repo: Repository,
    from_commit: Commit | None,
    old_path: str | None,
    to_commit: Commit,
    new_path: str,
) -> list[tuple[str | None, str | None]]:
    """(old, new) path pairs of the script file, its sidecar and its lock that differ between
    the two commits, absent sides as None: a script shows its metadata and its locked packages
    changing next to its code."""
    pairs: list[tuple[str | None, str | None]] = []
    for old, new in (
        (old_path, new_path),
        (
            layout.metadata_path(old_path) if old_path else None,
            layout.metadata_path(new_path),
        ),
        (layout.lock_path(old_path) if old_path else None, layout.lock_path(new_path)),
    ):
        old_id = repo.entry_id(from_commit.tree, old) if from_commit and old else None
        new_id = repo.entry_id(to_commit.tree, new) if new else None
        if (old_id is None and new_id is None) or (old_id == new_id and old == new):
            continue
        pairs.append((old if old_id else None, new if new_id else None))
    return pairs


def _change(change: Change) -> ChangeView:
    return ChangeView(status=change.status, path=change.path, old_path=change.old_path)


def _clean_path(path: str) -> str:
    """A folder or file path as the tree spells it; '..' and friends are refused, not resolved."""
    cleaned = path.strip("/")
    parts = cleaned.split("/")
    if not cleaned or any(part in ("", ".", "..") for part in parts):
        raise errors.ValidationError(
            "path must be a folder or file path like 'geology/analysis.py'", path=path
        )
    return cleaned
