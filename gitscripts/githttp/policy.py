"""What a `git push` may change: the REST API's rules, applied to every pushed commit.

Checked in pre-receive, while the pushed objects still sit in git's quarantine: a rejected push leaves
no trace. The content rules (names, Python that parses with a `main(data)`, metadata, sizes) are the
ones the API enforces, from `gitscripts.repo.rules` and `gitscripts.repo.layout`; the ownership rules
are the API's too (`gitscripts.access`): only the owner (or an admin) may change or delete a script or
a folder, in every commit that enters `main`. Branch and tag names follow
`Repository.ref_name_problem`, so that no pushed name can stand in for a commit id, `HEAD`, `main` or
another ref in `?rev=`; a branch other than `main` is its pusher's, under their login.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass

import pygit2

from gitscripts import access, errors
from gitscripts.config import Settings
from gitscripts.index import Entry, Index
from gitscripts.repo import MAIN_REF, Author, Repository, layout, rules
from gitscripts.repo.repository import BRANCH_PREFIX, TAG_PREFIX

ZERO = "0" * 40
_SYMLINK = 0o120000
_SUBMODULE = 0o160000
_CHANGED = (
    pygit2.GIT_DELTA_ADDED,
    pygit2.GIT_DELTA_MODIFIED,
    pygit2.GIT_DELTA_RENAMED,
    pygit2.GIT_DELTA_COPIED,
    pygit2.GIT_DELTA_TYPECHANGE,
)


@dataclass(frozen=True)
class RefUpdate:
    old: str
    new: str
    ref: str


class PushPolicy:
    def __init__(self, settings: Settings, index: Index, repo: Repository) -> None:
        self.settings = settings
        self.index = index
        self.repo = repo

    def check(
        self, pusher: access.User, updates: list[RefUpdate], quarantine: str | None
    ) -> tuple[list[str], list[str]]:
        """The problems that refuse the push (empty: accepted), and the new commits it brings."""
        git = pygit2.Repository(str(self.repo.path))
        if quarantine:
            git.odb.add_disk_alternate(quarantine)
        problems: list[str] = []
        new_commits: list[str] = []
        existing = [ref.resolve().target for ref in git.references.objects]
        for update in updates:
            problems += self._check_ref(git, pusher, update)
            if update.new != ZERO and not problems:
                commits = self._new_commits(git, update.new, existing)
                new_commits += [str(commit.id) for commit in commits]
                for commit in commits:
                    problems += self._check_commit(git, commit)
                if update.ref == MAIN_REF:
                    problems += self._check_ownership(git, pusher, update)
        return list(dict.fromkeys(problems)), new_commits

    # -- refs --------------------------------------------------------------------------------
    def _check_ref(
        self, git: pygit2.Repository, pusher: access.User, update: RefUpdate
    ) -> list[str]:
        ref, old, new = update.ref, update.old, update.new
        if new != ZERO and _commit_of(git, new) is None:
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
            tag = git.get(new) if new != ZERO else None
            if isinstance(tag, pygit2.Tag) and tag.tagger is not None:
                claimed = Author.user_id_of(tag.tagger)
                if not access.may_name_tagger(pusher, claimed):
                    return [f"{ref}: the tagger names another gitscripts user"]
            return []
        if not ref.startswith(BRANCH_PREFIX):
            return [f"{ref}: only branches (refs/heads/...) and tags (refs/tags/...) can be pushed"]
        if ref != MAIN_REF:
            return self._check_branch(pusher, update)
        if new == ZERO:
            return [f"{ref}: main cannot be deleted"]
        if old != ZERO and old != new and not git.descendant_of(new, old):
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

    @staticmethod
    def _new_commits(
        git: pygit2.Repository, new: str, existing: list[pygit2.Oid]
    ) -> list[pygit2.Commit]:
        target = _commit_of(git, new)
        if target is None:
            return []
        walker = git.walk(target.id, pygit2.GIT_SORT_TOPOLOGICAL)
        for oid in existing:
            commit = _commit_of(git, oid)
            if commit is not None:
                walker.hide(commit.id)
        return list(walker)

    # -- content -----------------------------------------------------------------------------
    def _check_commit(self, git: pygit2.Repository, commit: pygit2.Commit) -> list[str]:
        if commit.parents:
            diff = commit.parents[0].tree.diff_to_tree(commit.tree)
        else:
            diff = commit.tree.diff_to_tree(swap=True)
        problems = []
        for delta in diff.deltas:
            if delta.status not in _CHANGED:
                continue
            path = _path_of(delta.new_file)
            try:
                delta.new_file.raw_path.decode("utf-8")
            except UnicodeDecodeError:  # names travel as JSON text through the API
                problem: str | None = "file and folder names must be UTF-8 text"
            else:
                problem = self._path_problem(git, path, delta.new_file.mode, delta.new_file.id)
            if problem:
                problems.append(f"{path}: {problem} (commit {str(commit.id)[:10]})")
        return problems

    def _path_problem(
        self, git: pygit2.Repository, path: str, mode: int, oid: pygit2.Oid
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
        if mode == _SYMLINK:
            return "symlinks are not allowed"
        if mode == _SUBMODULE:
            return "submodules are not allowed"
        try:
            # The header only: a pushed 100 MB file must not be read into the service's memory
            # just to learn that it is too large.
            _, size = git.odb.read_header(oid)
        except KeyError:
            return None
        limit = self.settings.max_script_size
        if size > limit:
            return f"file is {size} bytes; the limit is {limit} bytes"
        name = posixpath.basename(path)
        if name.endswith(layout.METADATA_SUFFIX):
            try:
                layout.parse_metadata(git[oid].data)
            except layout.MetadataError as exc:
                return f"invalid metadata file: {exc}"
        elif name.endswith(rules.SCRIPT_SUFFIX):
            try:
                rules.check_script_filename(name)
                rules.check_script_content(name, git[oid].data, limit)
            except errors.AppError as exc:
                return exc.message
        return None

    # -- ownership ---------------------------------------------------------------------------
    def _check_ownership(
        self, git: pygit2.Repository, pusher: access.User, update: RefUpdate
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
        owners = _Owners(self.index, pusher)
        walker = git.walk(git[update.new].peel(pygit2.Commit).id, pygit2.GIT_SORT_TOPOLOGICAL)
        walker.hide(git[update.old].peel(pygit2.Commit).id)
        problems = []
        for commit in walker:
            parents = [parent.tree for parent in commit.parents]
            short = str(commit.id)[:10]
            problems += [
                f"{problem} (commit {short})" for problem in owners.changes(commit.tree, parents)
            ]
        if problems:
            return problems
        old_tree = git[update.old].peel(pygit2.Tree)
        return owners.changes(git[update.new].peel(pygit2.Tree), [old_tree])


class _Owners:
    """The ownership rules (`access`), for one pusher: who owns what is judged by the index
    (`main`)."""

    def __init__(self, index: Index, pusher: access.User) -> None:
        self.index = index
        self.pusher = pusher
        self.scripts = index.scripts.by_path()
        self.folders = index.folders.by_path()

    def foreign(self, entry: Entry | None, may_change: access.OwnedRule) -> str | None:
        """Who owns `entry` (a login, or "someone else") when `may_change` refuses the pusher."""
        if entry is None or may_change(self.pusher, entry.owner_id):
            return None
        owner = self.index.users.get(entry.owner_id) if entry.owner_id is not None else None
        return owner.login if owner else "someone else"

    def changes(self, tree: pygit2.Tree, parents: list[pygit2.Tree]) -> list[str]:
        """What `tree` changes of other users' scripts and folders, compared with `parents` (its
        commit's parents; none for a first commit). A path whose version in `tree` one of the
        parents has, or a folder that one of them lacks too, is not a change of this tree's."""
        first, others = (parents[0], parents[1:]) if parents else (None, [])
        diff = first.diff_to_tree(tree) if first is not None else tree.diff_to_tree(swap=True)
        problems = []
        vanished_folders: set[str] = set()
        for delta in diff.deltas:
            deleted = delta.status == pygit2.GIT_DELTA_DELETED
            path = _path_of(delta.old_file if deleted else delta.new_file)
            mine = _entry(tree, path)
            if any(_entry(other, path) == mine for other in others):
                continue
            # The script a file belongs to: itself, or the one its metadata describes. A path
            # the index does not know is new, and nobody's yet.
            script = path.removesuffix(layout.METADATA_SUFFIX)
            owner = self.foreign(self.scripts.get(script), access.may_change_script)
            if owner:
                verb = "delete" if deleted else "change"
                problems.append(
                    f"{script}: belongs to {owner}; only its owner or an admin may {verb} it"
                )
            if deleted:
                parent = layout.parent_of(path)
                while parent is not None and parent not in vanished_folders:
                    if _is_folder(tree, parent):
                        break
                    vanished_folders.add(parent)
                    parent = layout.parent_of(parent)
        for folder in sorted(vanished_folders):
            if any(not _is_folder(other, folder) for other in others):
                continue
            owner = self.foreign(self.folders.get(folder), access.may_change_folder)
            if owner:
                problems.append(
                    f"{folder}/: folder belongs to {owner}; only its owner or an admin may delete it"
                )
        return problems


def _commit_of(git: pygit2.Repository, oid: str | pygit2.Oid) -> pygit2.Commit | None:
    """The commit an object is or (through annotated tags) points at; None for anything else."""
    obj = git.get(oid)
    while isinstance(obj, pygit2.Tag):
        obj = git.get(obj.target)
    return obj if isinstance(obj, pygit2.Commit) else None


def _path_of(file: pygit2.DiffFile) -> str:
    """A diffed file's path as text; bytes that are not UTF-8 show as `\\xNN` escapes."""
    return file.raw_path.decode("utf-8", "backslashreplace")


def _entry(tree: pygit2.Tree, path: str) -> tuple[pygit2.Oid, int] | None:
    """What `tree` holds at `path` (object id and mode), or None."""
    try:
        entry = tree[path]
    except KeyError:
        return None
    return entry.id, entry.filemode


def _is_folder(tree: pygit2.Tree, path: str) -> bool:
    try:
        return tree[path].type == pygit2.GIT_OBJECT_TREE
    except KeyError:
        return False
