"""Who may do what: every access decision of the service, written once.

Like `repo.rules` for content, these rules guard every door alike: the REST API, `git push` (the
pre-receive policy), the file store, history (restore, tags), the administrators' actions, and the
UI (which shows `can_edit`/`can_delete` from the same rules). A door asks here; it never compares
owners or looks at `is_admin` itself.

The rules take a `User` and the owner the index (or git) records; an owner of `None` means
"nobody is known to own it", and what that allows differs by kind of thing on purpose (each rule
says why): an ownerless script, folder or tag is an admin's to change, an ownerless file anyone's.

This module depends on nothing else in the package, so every layer may ask it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class User:
    """Someone calling the service, as the rules see them."""

    id: int
    login: str
    is_admin: bool


# A rule about something with an owner: (caller, owner id or None) -> allowed.
OwnedRule = Callable[[User, int | None], bool]


def may_change_any_entry(user: User) -> bool:
    """An admin may change or delete every script and folder, whoever owns it."""
    return user.is_admin


def may_change_script(user: User, owner_id: int | None) -> bool:
    """Change, rename, move, replace, restore or delete a script: its owner or an admin.

    An ownerless script (one the index could not attribute, e.g. pushed before pushes were
    recorded) is an admin's alone: scripts are what the simulator runs, so nobody may take one
    over just because its owner is unknown.
    """
    # `may_change_any_entry`, inline: the tree asks this for each of 10,000 scripts.
    return user.is_admin or (owner_id is not None and owner_id == user.id)


def may_change_folder(user: User, owner_id: int | None) -> bool:
    """Rename, move or delete a folder: as for scripts (an ownerless folder is an admin's).

    Deleting a folder deletes what is inside: that needs this rule, or `may_change_script`, for
    every folder and script inside it.
    """
    return may_change_script(user, owner_id)


def may_change_tag(user: User, tagger_id: int | None) -> bool:
    """Move or delete a tag through the API: its creator (the user its tagger names) or an admin.

    A tag whose tagger names no gitscripts user (a lightweight or foreign tag someone pushed) is
    an admin's, as an ownerless script is: a tag names a revision others run.
    """
    return user.is_admin or (tagger_id is not None and tagger_id == user.id)


def may_change_file(user: User | None, owner_id: int | None) -> bool:
    """Replace or delete a file in the file store: its owner or an admin.

    Unlike a script, a file without an owner (stored anonymously, or put into the store from
    outside) belongs to nobody: anyone who may use the store may change it, since anyone could
    have stored it in the first place. An anonymous caller (`None`) may change only such files.
    """
    if owner_id is None:
        return True
    return user is not None and (user.id == owner_id or user.is_admin)


def may_list_everyones_files(user: User) -> bool:
    """See every user's files in the store at once: admins only (others see their own)."""
    return user.is_admin


def may_manage_accounts(user: User) -> bool:
    """Create accounts (whatever REGISTRATION says) and make, list or delete invite codes."""
    return user.is_admin


def may_revoke_token(user: User, token_owner_id: int) -> bool:
    """Revoke a personal API token: the user it belongs to, or an admin."""
    return token_owner_id == user.id or user.is_admin


def may_see_run(user: User, owner_id: int | None) -> bool:
    """Read a run (its input, result and output): who ran it, or an admin.

    An anonymous run (no owner) is an admin's alone: its input may be anyone's confidential
    data, and nobody can prove they sent it.
    """
    return user.is_admin or (owner_id is not None and owner_id == user.id)


def may_cancel_run(user: User, owner_id: int | None) -> bool:
    """Cancel a queued or running run: as for seeing it (who ran it, or an admin)."""
    return may_see_run(user, owner_id)


def may_see_everyones_runs(user: User) -> bool:
    """List every user's runs, anonymous ones too: admins only (others list their own)."""
    return user.is_admin


# -- what only git can do ------------------------------------------------------------------------
def may_rewrite_tag_by_push(user: User) -> bool:
    """Move or delete an existing tag with `git push`: admins only.

    Stricter than `may_change_tag`: a push carries no proof of who created the tag it replaces
    (the tagger is client text), so only an admin may overwrite what others may rely on.
    """
    return user.is_admin


def may_name_tagger(user: User, claimed_id: int | None) -> bool:
    """Push an annotated tag whose tagger names gitscripts user `claimed_id` (None: nobody).

    The tagger is who may later move the tag through the API, so a push may name only its pusher
    (an admin may name anyone).
    """
    return claimed_id is None or claimed_id == user.id or user.is_admin


def may_push_branch(user: User, branch: str) -> bool:
    """Create, move or delete branch `branch` (the name after `refs/heads/`, not `main`).

    A branch other than `main` is its pusher's: it lives under their login (`alice/feature`), so
    nobody else can move what `?rev=alice/feature` runs. Admins may push any branch.
    """
    return branch.startswith(f"{user.login}/") or user.is_admin
