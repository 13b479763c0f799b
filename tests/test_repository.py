"""The repository facade (`gitscripts.repo`) on its own, against a real temporary bare repository.

The app reaches all of this too, but a failure here names the piece that broke: the compare-and-swap
of `commit`, the order `resolve` reads a revision in, reading a file as it was at a revision,
landing a push, and the plain-value views the push rules (`PushedObjects`), the checkout cache
(`TreeReader`) and the diff renderer (`line_hunks`) read git through. The repository is changed
"from outside" with pygit2 directly, as a push or an operator would.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pygit2
import pytest

from gitscripts import errors
from gitscripts.repo import Author, Commit, Repository, modes
from gitscripts.repo.linediff import line_hunks
from gitscripts.repo.pushed import PushedObjects
from gitscripts.repo.repository import MAIN_REF, committer
from gitscripts.repo.trees import TreeEntry, TreeReader

ALICE = Author(1, "alice")
BOB = Author(2, "bob")


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return Repository(tmp_path / "scripts.git")


@pytest.fixture
def outsider(repo: Repository) -> pygit2.Repository:
    """The same repository opened apart from the facade: a push, an operator."""
    return pygit2.Repository(str(repo.path))


def write(repo: Repository, files: dict[str, bytes | None], author: Author = ALICE) -> str:
    """Commit `files` on main through the facade; the new commit's id."""
    result = repo.commit(author, "change", lambda parent: dict(files))
    return str(result.commit.id)


def side_commit(git: pygit2.Repository, parent: str, files: dict[str, bytes]) -> str:
    """A commit on top of `parent` made outside the facade, referenced by nothing."""
    base = git[parent].peel(pygit2.Commit)
    index = pygit2.Index()
    index.read_tree(base.tree)
    for path, data in files.items():
        index.add(pygit2.IndexEntry(path, git.create_blob(data), pygit2.GIT_FILEMODE_BLOB))
    tree = index.write_tree(git)
    return str(git.create_commit(None, committer(), committer(), "side", tree, [base.id]))


# -- commit: compare-and-swap -------------------------------------------------------------------
def test_a_commit_is_planned_on_main_and_moves_it(repo: Repository) -> None:
    before = str(repo.head().id)
    after = write(repo, {"a.py": b"A"})
    assert str(repo.head().id) == after
    assert [str(parent) for parent in repo.head().parent_ids] == [before]
    assert repo.read_file(repo.head().tree, "a.py") == b"A"
    assert Repository.api_author_id(repo.head()) == ALICE.user_id


def test_main_moved_during_planning_is_planned_again_on_top(
    repo: Repository, outsider: pygit2.Repository
) -> None:
    base = str(repo.head().id)
    pushed = side_commit(outsider, base, {"pushed.py": b"P"})
    planned_on: list[str] = []

    def plan(parent: Commit) -> dict[str, bytes | None]:
        planned_on.append(str(parent.id))
        if str(parent.id) == base:  # a push lands between the plan and the swap
            outsider.references[MAIN_REF].set_target(pushed)
        return {"api.py": b"A"}

    result = repo.commit(ALICE, "Create api.py", plan)
    assert planned_on == [base, pushed]
    assert str(result.parent.id) == pushed
    tree = repo.head().tree
    assert repo.read_file(tree, "pushed.py") == b"P"  # the push is kept
    assert repo.read_file(tree, "api.py") == b"A"


def test_a_plan_that_refuses_changes_nothing(repo: Repository) -> None:
    before = repo.head().id

    def plan(parent: Commit) -> dict[str, bytes | None]:
        raise errors.ScriptNotFound("gone")

    with pytest.raises(errors.ScriptNotFound):
        repo.commit(ALICE, "nothing", plan)
    assert repo.head().id == before


def test_edits_remove_paths_and_empty_folders_vanish(repo: Repository) -> None:
    write(repo, {"geo/a.py": b"A", "geo/b.py": b"B"})
    write(repo, {"geo/a.py": None})
    assert repo.is_folder(repo.head().tree, "geo")
    write(repo, {"geo/b.py": None})
    assert not repo.is_folder(repo.head().tree, "geo")


# -- resolve: one fixed order -------------------------------------------------------------------
def test_resolve_reads_commit_ids_full_and_abbreviated(repo: Repository) -> None:
    commit = write(repo, {"a.py": b"A"})
    assert str(repo.resolve(commit).id) == commit
    assert str(repo.resolve(commit[:8]).id) == commit
    assert str(repo.resolve(commit.upper()[:12]).id) == commit


def test_resolve_main_and_head_are_the_live_tree(repo: Repository) -> None:
    commit = write(repo, {"a.py": b"A"})
    assert str(repo.resolve("main").id) == commit
    assert str(repo.resolve("HEAD").id) == commit


def test_resolve_prefers_a_tag_to_a_branch_of_the_same_name(
    repo: Repository, outsider: pygit2.Repository
) -> None:
    tagged = write(repo, {"a.py": b"1"})
    branched = write(repo, {"a.py": b"2"})
    # Made behind the service (its naming rules refuse the clash): the tag still wins.
    outsider.references.create("refs/tags/release", tagged)
    outsider.references.create("refs/heads/release", branched)
    assert str(repo.resolve("release").id) == tagged
    assert repo.ambiguous_refs() == {
        "refs/heads/release": "a branch name cannot be a tag name (refs/tags/release exists)",
        "refs/tags/release": "a tag name cannot be a branch name (refs/heads/release exists)",
    }


def test_resolve_reads_a_branch_and_an_annotated_tag(repo: Repository) -> None:
    first = write(repo, {"a.py": b"1"})
    repo.set_tag("v1", repo.resolve(first), ALICE, "first", expected=None)
    write(repo, {"a.py": b"2"})
    assert str(repo.resolve("v1").id) == first
    repo.git.references.create("refs/heads/alice/work", first)
    assert str(repo.resolve("alice/work").id) == first


def test_a_ref_named_like_hex_never_stands_in_for_a_commit_id(
    repo: Repository, outsider: pygit2.Repository
) -> None:
    commit = write(repo, {"a.py": b"A"})
    outsider.references.create("refs/tags/deadbeef", commit)
    with pytest.raises(errors.RevisionNotFound):
        repo.resolve("deadbeef")  # 4 to 40 hex digits are only ever a commit id


@pytest.mark.parametrize("revision", ["main~1", "HEAD^", "a..b", "-all", "x@{1}", "refs/", ""])
def test_resolve_refuses_expressions(repo: Repository, revision: str) -> None:
    with pytest.raises(errors.InvalidRevision):
        repo.resolve(revision)


def test_resolve_says_an_unknown_name_is_not_found(repo: Repository) -> None:
    with pytest.raises(errors.RevisionNotFound):
        repo.resolve("no-such-branch")


# -- reading at a revision ----------------------------------------------------------------------
def test_a_file_reads_as_it_was_at_each_revision(repo: Repository) -> None:
    old = write(repo, {"geo/a.py": b"old"})
    write(repo, {"geo/a.py": b"new", "geo/a.py.meta.json": b'{"display_name": "A"}\n'})
    assert repo.read_file(repo.resolve(old).tree, "geo/a.py") == b"old"
    assert repo.read_file(repo.head().tree, "geo/a.py") == b"new"
    assert repo.read_file(repo.head().tree, "geo") is None  # a folder is no file
    assert repo.read_file(repo.head().tree, "missing.py") is None
    assert repo.script_metadata(repo.head().tree, "geo/a.py").display_name == "A"
    assert repo.script_metadata(repo.resolve(old).tree, "geo/a.py").display_name == "a.py"


def test_a_listing_holds_listed_folders_and_scripts_only(repo: Repository) -> None:
    write(repo, {"geo/a.py": b"A", "geo/notes.txt": b"n", ".hidden/x.py": b"X", "b.py": b"B"})
    listing = repo.listing(repo.head())
    assert listing.folders == frozenset({"geo"})
    assert set(listing.scripts) == {"geo/a.py", "b.py"}


def test_the_facade_answers_values_with_ids_as_text(
    repo: Repository, outsider: pygit2.Repository
) -> None:
    first = write(repo, {"geo/a.py": b"A", "geo/a.py.meta.json": b'{"display_name": "A"}\n'})
    head = repo.head()
    assert isinstance(head, Commit) and head.id == first
    assert repo.short_id(head) == outsider[first].short_id
    assert head.tree.id == str(outsider[first].peel(pygit2.Commit).tree_id)
    assert head.author.email == ALICE.signature().email
    assert repo.find_commit(first) == head
    assert repo.find_commit(head.tree.id) is None  # a tree is no commit
    blob = str(outsider[head.tree.id]["geo/a.py"].id)
    assert repo.listing(head).scripts == {
        "geo/a.py": (blob, repo.entry_id(head.tree, "geo/a.py.meta.json"))
    }
    assert repo.entry(head.tree, "geo/a.py") == TreeEntry("a.py", blob, modes.FILE)
    assert repo.entry_id(head.tree, "geo/a.py") == blob
    folder = repo.entry(head.tree, "geo")
    assert folder is not None and folder.is_folder and not folder.is_blob
    assert repo.entry(head.tree, "missing") is None
    assert repo.names_in(head.tree, "geo") == ["a.py", "a.py.meta.json"]
    assert repo.names_in(head.tree, "geo/a.py") is None  # a file is no folder


def test_a_symlink_is_a_blob_but_never_a_listed_file(
    repo: Repository, outsider: pygit2.Repository
) -> None:
    write(repo, {"b.py": b"B"})
    base = repo.head()
    builder = outsider.TreeBuilder(outsider[base.tree.id])
    builder.insert("link.py", outsider.create_blob(b"b.py"), modes.SYMLINK)
    linked = outsider.create_commit(
        MAIN_REF, committer(), committer(), "link", builder.write(), [base.id]
    )
    head = repo.head()
    assert head.id == str(linked)
    link = repo.entry(head.tree, "link.py")
    assert link is not None and link.is_blob and not link.is_file
    assert repo.is_file(head.tree, "link.py")
    assert set(repo.listing(head).scripts) == {"b.py"}


def test_changes_compare_a_commit_with_its_first_parent(repo: Repository) -> None:
    write(repo, {"geo/a.py": b"same content", "b.py": b"B", "c.py": b"C"})
    write(repo, {"geo/a.py": None, "geology/a.py": b"same content", "b.py": b"B2", "c.py": None})
    changes = repo.changes(repo.head())
    assert [(c.status, c.old_path, c.new_path) for c in changes] == [
        ("modified", "b.py", "b.py"),
        ("deleted", "c.py", None),
        ("renamed", "geo/a.py", "geology/a.py"),
    ]
    renamed = changes[2]
    assert renamed.old_id == renamed.new_id and isinstance(renamed.new_id, str)
    assert repo.blob(renamed.new_id) == b"same content"
    root = repo.head()
    while root.parent_ids:
        found = repo.find_commit(root.parent_ids[0])
        assert found is not None
        root = found
    assert repo.changes(root) == []  # the initial commit: the empty tree, from nothing


def test_replay_tells_what_each_commit_did_oldest_first(repo: Repository) -> None:
    first = repo.resolve(write(repo, {"geo/a.py": b"A", "b.py": b"B"}))
    write(repo, {"geo/a.py": None, "geology/a.py": b"A", "b.py": None, "c.py": b"C"}, BOB)
    steps = list(repo.replay(repo.head(), None))
    assert [step.commit.author.email for step in steps] == [
        ALICE.signature().email,
        BOB.signature().email,
    ]  # the initial commit has no parent: left out
    assert steps[0].added_or_deleted == [("b.py", True), ("geo/a.py", True)]
    assert steps[1].moves == {"geo/a.py": "geology/a.py"}
    assert steps[1].added_or_deleted == [
        ("b.py", False),
        ("c.py", True),
        ("geo/a.py", False),
        ("geology/a.py", True),
    ]
    assert [step.commit.id for step in repo.replay(repo.head(), first)] == [repo.head().id]


# -- tags ---------------------------------------------------------------------------------------
def test_a_tag_moves_only_from_what_its_mover_saw(repo: Repository) -> None:
    commit = repo.resolve(write(repo, {"a.py": b"A"}))
    tag = repo.set_tag("v1", commit, ALICE, "first", expected=None)
    assert tag.tagger_id == ALICE.user_id
    with pytest.raises(errors.TagAlreadyExists):
        repo.set_tag("v1", commit, BOB, "again", expected=None)
    moved = repo.set_tag("v1", commit, BOB, "moved", expected=tag.target)
    with pytest.raises(errors.ConcurrentUpdate):
        repo.set_tag("v1", commit, ALICE, "stale", expected=tag.target)
    with pytest.raises(errors.ConcurrentUpdate):
        repo.delete_tag("v1", expected=tag.target)
    repo.delete_tag("v1", expected=moved.target)
    assert repo.tag("v1") is None


# -- landing a push -----------------------------------------------------------------------------
def test_a_push_on_top_of_main_fast_forwards(repo: Repository, outsider: pygit2.Repository) -> None:
    head = str(repo.head().id)
    pushed = side_commit(outsider, head, {"p.py": b"P"})
    seen: list[tuple[str, str]] = []
    landing = repo.land(pushed, BOB, lambda main, candidate: seen.append((main, candidate)))
    assert (landing.old, landing.new, landing.merged_over) == (head, pushed, 0)
    assert seen == [(head, pushed)]
    assert str(repo.head().id) == pushed


def test_a_push_behind_main_lands_as_a_merge_when_nothing_clashes(
    repo: Repository, outsider: pygit2.Repository
) -> None:
    base = str(repo.head().id)
    pushed = side_commit(outsider, base, {"p.py": b"P"})
    api = write(repo, {"a.py": b"A"})
    landing = repo.land(pushed, BOB, lambda main, candidate: None)
    assert (landing.old, landing.merged_over) == (api, 1)
    merge = repo.head()
    assert str(merge.id) == landing.new
    assert [str(parent) for parent in merge.parent_ids] == [api, pushed]
    assert repo.read_file(merge.tree, "p.py") == b"P"
    assert repo.read_file(merge.tree, "a.py") == b"A"


def test_a_push_that_clashes_with_main_is_refused_and_main_stays(
    repo: Repository, outsider: pygit2.Repository
) -> None:
    base = write(repo, {"a.py": b"0"})
    pushed = side_commit(outsider, base, {"a.py": b"pushed"})
    api = write(repo, {"a.py.meta.json": b'{"display_name": "x"}\n'})
    with pytest.raises(errors.PushConflict) as refused:
        repo.land(pushed, BOB, lambda main, candidate: None)
    assert refused.value.details == {"paths": ["a.py"]}
    assert str(repo.head().id) == api


def test_a_landing_its_check_refuses_leaves_main(
    repo: Repository, outsider: pygit2.Repository
) -> None:
    head = str(repo.head().id)
    pushed = side_commit(outsider, head, {"p.py": b"P"})

    def refuse(main: str, candidate: str) -> None:
        raise errors.PermissionDenied("no")

    with pytest.raises(errors.PermissionDenied):
        repo.land(pushed, BOB, refuse)
    assert str(repo.head().id) == head


# -- what the push rules read -------------------------------------------------------------------
def test_pushed_objects_name_the_new_commits_and_their_changes(
    repo: Repository, outsider: pygit2.Repository
) -> None:
    base = write(repo, {"geo/a.py": b"A", "gone.py": b"G"})
    first = side_commit(outsider, base, {"geo/b.py": b"B"})
    second_tree = outsider[first].peel(pygit2.Commit).tree
    index = pygit2.Index()
    index.read_tree(second_tree)
    index.remove("gone.py")
    second = str(
        outsider.create_commit(
            None,
            committer(),
            committer(),
            "rm",
            index.write_tree(outsider),
            [pygit2.Oid(hex=first)],
        )
    )
    pushed = PushedObjects(repo.path, None)
    assert [commit.id for commit in pushed.new_commits(second)] == [second, first]
    assert pushed.commits_between(base, second) == pushed.new_commits(second)
    newest = pushed.new_commits(second)[0]
    changes = pushed.changes(newest.parent_trees[0], newest.tree)
    assert [(c.deleted, c.path, c.mode) for c in changes] == [(True, "gone.py", modes.FILE)]
    added = pushed.changes(None, pushed.tree_of(first))
    assert {c.path for c in added} == {"geo/a.py", "geo/b.py", "gone.py"}
    assert pushed.is_descendant(second, base) and not pushed.is_descendant(base, second)
    assert pushed.merge_base(second, base) == base
    assert pushed.commit_of(second) == second
    assert pushed.commit_of(pushed.tree_of(second)) is None  # a tree is no commit
    assert pushed.is_folder(newest.tree, "geo") and not pushed.is_folder(newest.tree, "geo/a.py")
    blob = pushed.entry(newest.tree, "geo/b.py")
    assert blob is not None and blob[1] == modes.FILE
    assert pushed.size(blob[0]) == 1 and pushed.read(blob[0]) == b"B"
    assert pushed.size("0" * 40) is None


def test_pushed_objects_report_names_that_are_not_utf8(
    repo: Repository, outsider: pygit2.Repository
) -> None:
    head = repo.head()
    blob = outsider.create_blob(b"x")
    # git itself takes any bytes for a name; pygit2 only text.
    listing = b"100644 blob " + str(blob).encode() + b"\tbad\xff.py\n"
    made = subprocess.run(
        ["git", "-C", str(repo.path), "mktree"], input=listing, capture_output=True, check=True
    )
    tree = pygit2.Oid(hex=made.stdout.decode().strip())
    commit = str(outsider.create_commit(None, committer(), committer(), "bad", tree, [head.id]))
    pushed = PushedObjects(repo.path, None)
    (change,) = pushed.changes(str(head.tree.id), pushed.tree_of(commit))
    assert not change.utf8 and change.path == "bad\\xff.py"


def test_pushed_objects_name_an_annotated_tags_tagger(repo: Repository) -> None:
    commit = repo.resolve(write(repo, {"a.py": b"A"}))
    tag = repo.set_tag("v1", commit, BOB, "by bob", expected=None)
    pushed = PushedObjects(repo.path, None)
    assert pushed.tagger_id(str(tag.target)) == BOB.user_id
    assert pushed.commit_of(str(tag.target)) == str(commit.id)  # peeled through the tag
    assert pushed.tagger_id(str(commit.id)) is None


# -- what a checkout and a diff read ------------------------------------------------------------
def test_a_tree_reader_names_each_entry_by_kind(
    repo: Repository, outsider: pygit2.Repository
) -> None:
    write(repo, {"geo/a.py": b"A", "b.py": b"B"})
    head = repo.head()
    builder = outsider.TreeBuilder(outsider[head.tree.id])
    builder.insert("run.sh", outsider.create_blob(b"#!/bin/sh\n"), modes.EXECUTABLE)
    builder.insert("link", outsider.create_blob(b"/etc/passwd"), modes.SYMLINK)
    tree_id = str(builder.write())
    reader = TreeReader(outsider)
    entries = {entry.name: entry for entry in reader.entries(tree_id)}
    assert {name: entry.mode for name, entry in entries.items()} == {
        "b.py": modes.FILE,
        "geo": modes.FOLDER,
        "link": modes.SYMLINK,
        "run.sh": modes.EXECUTABLE,
    }
    assert [name for name, entry in entries.items() if entry.is_file] == ["b.py", "run.sh"]
    assert entries["geo"].is_folder and not entries["link"].is_file
    assert reader.blob(entries["b.py"].id) == b"B"


def test_line_hunks_number_lines_and_mark_a_missing_final_newline() -> None:
    (hunk,) = line_hunks(b"a\nb\nc\n", b"a\nB\nc", context_lines=3)
    assert hunk.header == "@@ -1,3 +1,3 @@"
    assert [(line.kind, line.old_line, line.new_line, line.content) for line in hunk.lines] == [
        ("context", 1, 1, "a"),
        ("deleted", 2, None, "b"),
        ("deleted", 3, None, "c"),
        ("added", None, 2, "B"),
        ("added", None, 3, "c"),
    ]
    assert [line.no_newline for line in hunk.lines] == [False, False, False, False, True]
    assert line_hunks(b"same\n", b"same\n", context_lines=3) == []
