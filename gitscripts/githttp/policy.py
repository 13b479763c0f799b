"""What a `git push` may change: the REST API's rules, applied to every pushed commit.

Checked in pre-receive, while the pushed objects still sit in git's quarantine: a rejected push leaves
no trace. The content rules (names, Python that parses with a `main(data)`, metadata, sizes) are the
ones the API enforces, from `gitscripts.repo.rules` and `gitscripts.repo.layout`; the ownership rules
are the API's too (`gitscripts.access`): only the owner (or an admin) may change or delete a script or
a folder, in every commit that enters `main`. Branch and tag names follow
`Repository.ref_name_problem`, so that no pushed name can stand in for a commit id, `HEAD`, `main` or
another ref in `?rev=`; a branch other than `main` is its pusher's, under their login.

Scripts that declare dependencies (see `gitscripts.deps`): every pushed version's block must be
valid, and a lock (`tool.py.lock`) only ever stands beside its runnable script, in every commit.
What the push makes of `main` is then judged as a whole (`locks`): a lock the push brings must
match its script's block (uv checks it), and a script whose block the push changed without
bringing its lock must resolve; the service commits that lock on top right after the push
(`PendingLock`, see `GitService.post_receive`), so pushing never requires uv on the laptop.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

from gitscripts import access, errors
from gitscripts.config import Settings
from gitscripts.deps import lockfile, locks, metadata
from gitscripts.index import Entry, Index
from gitscripts.repo import MAIN_REF, Repository, layout, modes, rules
from gitscripts.repo.pushed import ZERO, PushedCommit, PushedObjects
from gitscripts.repo.repository import BRANCH_PREFIX, TAG_PREFIX


@dataclass(frozen=True)
class RefUpdate:
    old: str
    new: str
    ref: str


@dataclass(frozen=True)
class PendingLock:
    """A lock the service commits after a push: `lock` (None: remove it) for the script at
    `script` as the push left it (`script_id`, its blob), unless someone changed it since."""

    script: str
    script_id: str
    lock: bytes | None


class PushPolicy:
    def __init__(self, settings: Settings, index: Index, repo: Repository) -> None:
        self.settings = settings
        self.index = index
        self.repo = repo

    def check(
        self, pusher: access.User, updates: list[RefUpdate], quarantine: str | None
    ) -> tuple[list[str], list[str]]:
        """The problems that refuse the push (empty: accepted), and the new commits it brings."""
        git = PushedObjects(self.repo.path, quarantine)
        problems: list[str] = []
        new_commits: list[str] = []
        for update in updates:
            problems += self._check_ref(git, pusher, update)
            if update.new != ZERO and not problems:
                commits = git.new_commits(update.new)
                new_commits += [commit.id for commit in commits]
                for commit in commits:
                    problems += self._check_commit(git, commit)
                if update.ref == MAIN_REF:
                    problems += self._check_ownership(git, pusher, update)
        return list(dict.fromkeys(problems)), new_commits

    # -- refs --------------------------------------------------------------------------------
    def _check_ref(self, git: PushedObjects, pusher: access.User, update: RefUpdate) -> list[str]:
        ref, old, new = update.ref, update.old, update.new
        if new != ZERO and git.commit_of(new) is None:
            # A tag of a bare blob or tree would carry files past every content rule.
            return [f"{ref}: can only point at a commit"]
        if ref.startswith(TAG_PREFIX):
            if old != ZERO and not access.may_rewrite_tag_by_push(pusher):
                verb = "delete" if new == ZERO else "move"
                return [f"{ref}: only an admin can {verb} an existing tag"]
            # The same naming rule as tags made through the API.
            problem = self.repo.ref_name_problem(ref)
            if old == ZERO and problem:
                return [f"{ref}: {problem}"]
            # An annotated tag's tagger names its creator (who may move it through the API):
            # a push may not name another gitscripts user there.
            claimed = git.tagger_id(new) if new != ZERO else None
            if not access.may_name_tagger(pusher, claimed):
                return [f"{ref}: the tagger names another gitscripts user"]
            return []
        if not ref.startswith(BRANCH_PREFIX):
            return [f"{ref}: only branches (refs/heads/...) and tags (refs/tags/...) can be pushed"]
        if ref != MAIN_REF:
            return self._check_branch(pusher, update)
        if new == ZERO:
            return [f"{ref}: main cannot be deleted"]
        if old != ZERO and old != new and not git.is_descendant(new, old):
            return [
                f"{ref}: non-fast-forward update refused (main never loses a commit); "
                "pull, merge or rebase onto the current main, and push again"
            ]
        return []

    def _check_branch(self, pusher: access.User, update: RefUpdate) -> list[str]:
        """A branch other than `main` is its pusher's (`access.may_push_branch`)."""
        ref = update.ref
        mine = f"{BRANCH_PREFIX}{pusher.login}/"
        if not access.may_push_branch(pusher, ref.removeprefix(BRANCH_PREFIX)):
            return [
                f"{ref}: branches other than main live under their owner's login: "
                f"push to {mine}<name>"
            ]
        if update.old == ZERO:
            problem = self.repo.ref_name_problem(ref)
            if problem:
                return [f"{ref}: {problem}"]
        return []

    # -- content -----------------------------------------------------------------------------
    def _check_commit(self, git: PushedObjects, commit: PushedCommit) -> list[str]:
        first_parent = commit.parent_trees[0] if commit.parent_trees else None
        problems = []
        for change in git.changes(first_parent, commit.tree):
            if change.deleted:
                problem: str | None = self._lone_lock_problem(git, commit.tree, change.path)
            elif not change.utf8:  # names travel as JSON text through the API
                problem = "file and folder names must be UTF-8 text"
            else:
                problem = self._path_problem(git, commit.tree, change.path, change.mode, change.id)
            if problem:
                problems.append(f"{change.path}: {problem} (commit {commit.id[:10]})")
        return problems

    def _path_problem(
        self, git: PushedObjects, tree: str, path: str, mode: int, oid: str
    ) -> str | None:
        parts = path.split("/")
        for position, part in enumerate(parts, 1):
            if part.lower() == ".git":
                return "a path cannot have a .git component"
            if part == layout.FOLDER_MARKER and position == len(parts):
                continue  # the file that keeps an empty folder; never a folder itself
            problem = rules.name_problem(part)
            if problem:
                return f"'{part}': {problem}"
        if mode == modes.SYMLINK:
            return "symlinks are not allowed"
        if mode == modes.SUBMODULE:
            return "submodules are not allowed"
        size = git.size(oid)
        if size is None:
            return None
        limit = self.settings.max_script_size
        if size > limit:
            return f"file is {size} bytes; the limit is {limit} bytes"
        name = posixpath.basename(path)
        if name.endswith(layout.METADATA_SUFFIX):
            try:
                layout.parse_metadata(git.read(oid))
            except layout.MetadataError as exc:
                return f"invalid metadata file: {exc}"
        elif name.endswith(layout.SCRIPT_SUFFIX):
            try:
                rules.check_script_filename(name)
                content = git.read(oid)
                rules.check_script_content(name, content, limit)
                rules.script_dependencies(
                    name, content, self.settings.packages_allow_direct_references
                )
            except errors.AppError as exc:
                return exc.message
        elif rules.is_lock_file(name):
            return rules.lock_file_problem(name, _kind(git, tree, layout.script_of(path)))
        return None

    @staticmethod
    def _lone_lock_problem(git: PushedObjects, tree: str, path: str) -> str | None:
        """A script that went (deleted, moved, or replaced by a folder) and left its lock."""
        if not path.endswith(layout.SCRIPT_SUFFIX) or _kind(git, tree, path) == "file":
            return None
        lock = layout.lock_path(path)
        if git.entry(tree, lock) is None:
            return None
        return f"the script is gone but its lock {lock} is not; move or delete them together"

    # -- locks -------------------------------------------------------------------------------
    def locks(
        self, updates: list[RefUpdate], quarantine: str | None
    ) -> tuple[list[str], list[PendingLock]]:
        """What the push makes of `main`'s locks: the problems that refuse it, and the locks the
        service commits after it. Only the scripts the push changes (or whose lock or sidecar it
        changes) are judged; uv runs here, before the push holds any lock of the repository."""
        git = PushedObjects(self.repo.path, quarantine)
        problems: list[str] = []
        pending: list[PendingLock] = []
        for update in updates:
            if update.ref != MAIN_REF or update.new == ZERO:
                continue
            new_tree = git.tree_of(update.new)
            old_tree = git.tree_of(update.old) if update.old != ZERO else None
            scripts = sorted(
                {
                    layout.script_of(change.path)
                    for change in git.changes(old_tree, new_tree)
                    if layout.script_of(change.path).endswith(layout.SCRIPT_SUFFIX)
                }
            )
            for script in scripts:
                try:
                    found = self._lock_of(git, old_tree, new_tree, script)
                except errors.AppError as exc:
                    problems.append(f"{script}: {exc.message}")
                else:
                    if found is not None:
                        pending.append(found)
        return problems, pending

    def _lock_of(
        self, git: PushedObjects, old_tree: str | None, new_tree: str, script: str
    ) -> PendingLock | None:
        """Check the lock of `script` as the push leaves it; the lock to commit after the push,
        if it needs one (or needs its stale one removed)."""
        entry = git.entry(new_tree, script)
        name = posixpath.basename(script)
        if entry is None or entry[1] not in modes.FILE_MODES or rules.is_helper_module(name):
            return None  # not a runnable script (a lone lock was refused per commit)
        source = git.read(entry[0])
        lock_path = layout.lock_path(script)
        lock = git.entry(new_tree, lock_path)
        pushed_lock = lock is not None and (
            old_tree is None or git.entry(old_tree, lock_path) != lock
        )
        if metadata.block(source) is None:
            if lock is None:
                return None
            if pushed_lock:
                raise errors.InvalidScriptMetadata(
                    f"the script declares no dependencies: delete {lock_path}"
                )
            return PendingLock(script, entry[0], None)  # the block went: so does its lock
        if lock is not None and pushed_lock:
            pushed = git.read(lock[0])
            problem = lockfile.source_problem(self.settings, pushed)
            if problem:
                raise errors.DependenciesUnresolvable(f"{lock_path}: {problem}")
            locks.check(self.settings, name, source, pushed)
            return None
        fits_as_it_was = (
            lock is not None
            and old_tree is not None
            and self._fitting_lock(git, old_tree, script, source) is not None
        )
        if fits_as_it_was:
            return None  # the block is as it was: so is its lock
        # `main` may have moved on since the push's base: its lock is kept when it fits (no
        # drift to newer releases); only a block nobody locked yet is resolved.
        kept = self._fitting_lock(git, git.tree_of(self.repo.head().id), script, source)
        if kept is None:
            kept = locks.resolve(self.settings, name, source)
        return PendingLock(script, entry[0], kept)

    @staticmethod
    def _fitting_lock(git: PushedObjects, tree: str, script: str, source: bytes) -> bytes | None:
        """The lock `script` has in `tree` when the version there declares what `source`
        declares (`rules.lock_still_fits`), else None."""
        lock = git.entry(tree, layout.lock_path(script))
        before = git.entry(tree, script)
        if lock is None or before is None or before[1] not in modes.FILE_MODES:
            return None
        return git.read(lock[0]) if rules.lock_still_fits(git.read(before[0]), source) else None

    # -- ownership ---------------------------------------------------------------------------
    def _check_ownership(
        self, git: PushedObjects, pusher: access.User, update: RefUpdate
    ) -> list[str]:
        """Someone else's scripts and folders, changed by any commit the push brings into `main`.

        Every such commit is judged against each of its own parents, not only the push's net
        change: an edit of someone's script followed by its revert, or merged with `-s ours`,
        would otherwise stay in `main`'s history, runnable with `?rev=<that commit>`. A commit's
        version of a path counts as its own change only when no parent has it: a merge that
        takes a version from one of its parents brings nothing new (that parent is in `main`
        already, or is one of these commits and judged itself). And `main`'s tree as a whole
        against the old one: a merge may also take the older of two versions of someone's script.
        Commits already in the repository on other branches are judged here too: the branch was
        its pusher's, `main` is everyone's.
        """
        if access.may_change_any_entry(pusher) or update.old == ZERO:
            return []
        owners = _Owners(self.index, git, pusher)
        problems = []
        for commit in git.commits_between(update.old, update.new):
            problems += [
                f"{problem} (commit {commit.id[:10]})"
                for problem in owners.changes(commit.tree, list(commit.parent_trees))
            ]
        if problems:
            return problems
        return owners.changes(git.tree_of(update.new), [git.tree_of(update.old)])


class _Owners:
    """The ownership rules (`access`), for one pusher: who owns what is judged by the index
    (`main`)."""

    def __init__(self, index: Index, git: PushedObjects, pusher: access.User) -> None:
        self.index = index
        self.git = git
        self.pusher = pusher
        self.scripts = index.scripts.by_path()
        self.folders = index.folders.by_path()

    def foreign(self, entry: Entry | None, may_change: access.OwnedRule) -> str | None:
        """Who owns `entry` (a login, or "someone else") when `may_change` refuses the pusher."""
        if entry is None or may_change(self.pusher, entry.owner_id):
            return None
        owner = self.index.users.get(entry.owner_id) if entry.owner_id is not None else None
        return owner.login if owner else "someone else"

    def changes(self, tree: str, parents: list[str]) -> list[str]:
        """What `tree` changes of other users' scripts and folders, compared with `parents` (its
        commit's parents; none for a first commit). A path whose version in `tree` one of the
        parents has, or a folder that one of them lacks too, is not a change of this tree's."""
        git = self.git
        first, others = (parents[0], parents[1:]) if parents else (None, [])
        problems = []
        vanished_folders: set[str] = set()
        for change in git.changes(first, tree):
            deleted, path = change.deleted, change.path
            mine = git.entry(tree, path)
            if any(git.entry(other, path) == mine for other in others):
                continue
            # The script a file belongs to: itself, or the one its metadata describes. A path
            # the index does not know is new, and nobody's yet.
            script = layout.script_of(path)
            owner = self.foreign(self.scripts.get(script), access.may_change_script)
            if owner:
                verb = "delete" if deleted else "change"
                problems.append(
                    f"{script}: belongs to {owner}; only its owner or an admin may {verb} it"
                )
            if deleted:
                parent = layout.parent_of(path)
                while parent is not None and parent not in vanished_folders:
                    if git.is_folder(tree, parent):
                        break
                    vanished_folders.add(parent)
                    parent = layout.parent_of(parent)
        for folder in sorted(vanished_folders):
            if any(not git.is_folder(other, folder) for other in others):
                continue
            owner = self.foreign(self.folders.get(folder), access.may_change_folder)
            if owner:
                problems.append(
                    f"{folder}/: folder belongs to {owner}; only its owner or an admin may delete it"
                )
        return problems


def _kind(git: PushedObjects, tree: str, path: str) -> str | None:
    """What `tree` holds at `path`: "file", "folder" or None (nothing, a symlink, ...)."""
    found = git.entry(tree, path)
    if found is None:
        return None
    if found[1] == modes.FOLDER:
        return "folder"
    return "file" if found[1] in modes.FILE_MODES else None
