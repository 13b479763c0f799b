"""Every access rule, once, as a table: who may, who may not, and what an unknown owner means.

The doors (REST, git push, files, history, the admin API) are tested through their interfaces in
their own test files; this file pins the rules those doors ask (`gitscripts.access`), and, through
the API, the one difference the rules make on purpose: an ownerless script and an ownerless file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from gitscripts import access
from gitscripts.config import Settings
from tests.conftest import Caller, commit_behind_the_service

ALICE = access.User(id=1, login="alice", is_admin=False)
BOB = access.User(id=2, login="bob", is_admin=False)
ADMIN = access.User(id=3, login="root", is_admin=True)
NOBODY = None  # an owner nobody knows (owner_id None)


@pytest.mark.parametrize(
    ("rule", "user", "owner_id", "allowed"),
    [
        # Scripts and folders: the owner or an admin; an ownerless one is an admin's alone.
        *[
            (rule, user, owner_id, allowed)
            for rule in (access.may_change_script, access.may_change_folder)
            for user, owner_id, allowed in (
                (ALICE, ALICE.id, True),
                (BOB, ALICE.id, False),
                (ADMIN, ALICE.id, True),
                (ALICE, NOBODY, False),
                (ADMIN, NOBODY, True),
            )
        ],
        # Tags through the API: the user the tagger names, or an admin; no tagger: an admin's.
        (access.may_change_tag, ALICE, ALICE.id, True),
        (access.may_change_tag, BOB, ALICE.id, False),
        (access.may_change_tag, ADMIN, ALICE.id, True),
        (access.may_change_tag, ALICE, NOBODY, False),
        (access.may_change_tag, ADMIN, NOBODY, True),
        # Files: the owner or an admin; an ownerless file is anyone's (unlike a script).
        (access.may_change_file, ALICE, ALICE.id, True),
        (access.may_change_file, BOB, ALICE.id, False),
        (access.may_change_file, ADMIN, ALICE.id, True),
        (access.may_change_file, ALICE, NOBODY, True),
        (access.may_change_file, ADMIN, NOBODY, True),
        # Runs: who ran it or an admin; an anonymous run is an admin's alone.
        *[
            (rule, user, owner_id, allowed)
            for rule in (access.may_see_run, access.may_cancel_run)
            for user, owner_id, allowed in (
                (ALICE, ALICE.id, True),
                (BOB, ALICE.id, False),
                (ADMIN, ALICE.id, True),
                (ALICE, NOBODY, False),
                (ADMIN, NOBODY, True),
            )
        ],
        # A pushed annotated tag may name its pusher as tagger, or nobody; an admin anyone.
        (access.may_name_tagger, ALICE, ALICE.id, True),
        (access.may_name_tagger, ALICE, NOBODY, True),
        (access.may_name_tagger, BOB, ALICE.id, False),
        (access.may_name_tagger, ADMIN, ALICE.id, True),
    ],
)
def test_owned_things(
    rule: access.OwnedRule, user: access.User, owner_id: int | None, allowed: bool
) -> None:
    assert rule(user, owner_id) is allowed


@pytest.mark.parametrize(
    ("owner_id", "allowed"), [(ALICE.id, False), (NOBODY, True)], ids=["owned", "ownerless"]
)
def test_an_anonymous_caller_may_change_only_ownerless_files(
    owner_id: int | None, allowed: bool
) -> None:
    assert access.may_change_file(None, owner_id) is allowed


@pytest.mark.parametrize(
    ("rule", "user", "token_owner_id", "allowed"),
    [
        (access.may_revoke_token, ALICE, ALICE.id, True),
        (access.may_revoke_token, BOB, ALICE.id, False),
        (access.may_revoke_token, ADMIN, ALICE.id, True),
    ],
)
def test_tokens(
    rule: Callable[[access.User, int], bool],
    user: access.User,
    token_owner_id: int,
    allowed: bool,
) -> None:
    assert rule(user, token_owner_id) is allowed


@pytest.mark.parametrize(
    "rule",
    [
        access.may_change_any_entry,
        access.may_manage_accounts,
        access.may_list_everyones_files,
        access.may_see_everyones_runs,
        access.may_rewrite_tag_by_push,
    ],
)
@pytest.mark.parametrize(("user", "allowed"), [(ALICE, False), (ADMIN, True)])
def test_admins_only(rule: Callable[[access.User], bool], user: access.User, allowed: bool) -> None:
    assert rule(user) is allowed


@pytest.mark.parametrize(
    ("user", "branch", "allowed"),
    [
        (ALICE, "alice/feature", True),
        (ALICE, "alice/deep/feature", True),
        (ALICE, "bob/feature", False),
        (ALICE, "alice", False),  # the login alone is not a folder of branches
        (ALICE, "alicex/feature", False),  # nor is a login it is a prefix of
        (ALICE, "feature", False),
        (ADMIN, "bob/feature", True),
        (ADMIN, "release", True),
    ],
)
def test_branches_live_under_their_pushers_login(
    user: access.User, branch: str, allowed: bool
) -> None:
    assert access.may_push_branch(user, branch) is allowed


def test_a_tag_is_harder_to_rewrite_by_push_than_through_the_api() -> None:
    """The creator may move their tag through the API, but not by push: a push cannot prove who
    created the tag it replaces."""
    assert access.may_change_tag(ALICE, ALICE.id)
    assert not access.may_rewrite_tag_by_push(ALICE)


def test_an_ownerless_script_and_an_ownerless_file_differ_on_purpose() -> None:
    assert not access.may_change_script(ALICE, None)
    assert access.may_change_file(ALICE, None)


def test_a_user_is_a_frozen_value() -> None:
    with pytest.raises(AttributeError):
        ALICE.is_admin = True  # type: ignore[misc]
    assert access.User(id=1, login="alice", is_admin=False) == ALICE


def test_through_the_api_an_ownerless_script_is_an_admins_and_an_ownerless_file_anyones(
    settings: Settings, data_dir: Path, tmp_path: Path, alice: Caller, admin: Caller
) -> None:
    # A script committed behind the service: the index learns of it, but of no owner.
    source = b"def main(data):\n    return data\n"
    commit_behind_the_service(data_dir, tmp_path / "work", {"orphan.py": source})

    def orphan(caller: Caller) -> dict[str, object]:
        return next(s for s in caller.tree()["root_scripts"] if s["logical_path"] == "orphan.py")

    script = orphan(alice)
    assert script["created_by"] is None
    assert (script["can_edit"], script["can_delete"]) == (False, False)
    assert orphan(admin)["can_edit"] is True
    url = f"/api/v1/scripts-manager/scripts/{script['id']}"
    refused = alice.put(url, json={"display_name": "Mine now"})
    assert refused.status_code == 403, refused.text
    assert refused.json()["error_code"] == "NOT_SCRIPT_OWNER"
    assert admin.put(url, json={"display_name": "Kept by an admin"}).status_code == 200

    # A file put into the store from outside: nobody's, so any user may replace it.
    store = settings.local_files_dir
    assert store is not None
    (store / "shared").mkdir(parents=True, exist_ok=True)
    (store / "shared" / "data.csv").write_bytes(b"a,b\n")
    replaced = alice.put("/api/v1/files/shared/data.csv", content=b"c,d\n")
    assert replaced.status_code in (200, 201), replaced.text
    assert (store / "shared" / "data.csv").read_bytes() == b"c,d\n"
