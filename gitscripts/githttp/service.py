"""Whether git may be served, what the git processes are given, and what the hooks of a push are told.

Who the caller is was settled before (`gitscripts.auth.deps.git_user`); this is about the push.

The service moves `main` itself: git hands it the pushed updates of `refs/heads/main` and
`refs/for/main` (its proc-receive hook) after pre-receive has checked them, and `Repository.land`
puts them on `main` under the lock API commits take. So a push that was accepted lands, and a push
that is behind only because of commits touching none of its paths lands too, as a merge.

A push that brings a script with dependencies but not its lock is accepted when the block resolves
(pre-receive resolves it, before anything is locked); right after the push, the service commits
the lock on top of `main` as the pusher (`_commit_pending_locks`), and tells them to pull it.
"""

from __future__ import annotations

import hmac
import os
import re
import secrets
import subprocess
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import partial
from importlib import resources
from pathlib import Path
from typing import Any, NotRequired, TypedDict

import structlog
from starlette.concurrency import run_in_threadpool

from gitscripts import access, errors
from gitscripts.config import ConfigurationError, Settings
from gitscripts.deps.environments import EnvironmentBuilds, locks_introduced
from gitscripts.githttp.policy import PendingLock, PushPolicy, RefUpdate
from gitscripts.index import Index, UserRecord
from gitscripts.index.lookups import Lookups
from gitscripts.index.sync import sync_index
from gitscripts.metrics import Metrics
from gitscripts.repo import MAIN_REF, Author, Commit, Edits, Landing, Plan, Repository, layout
from gitscripts.repo.pushed import ZERO, PushedObjects
from gitscripts.repo.repository import TAG_PREFIX

log = structlog.get_logger("gitscripts.git")

# Pushed here, a commit lands on main even when main moved on since the pusher's last fetch: git's
# client compares nothing before sending (the ref never exists), the service does the rest.
LANDING_REF = "refs/for/main"
# git hands the updates of these refs to the proc-receive hook, and the service moves main itself.
# Given to the git processes the service starts, not written into the repository's config: a push
# straight into the bare repository (an operator, hooks off) stays plain git.
_LANDED_BY_THE_SERVICE = {
    "GIT_CONFIG_COUNT": "2",
    "GIT_CONFIG_KEY_0": "receive.procReceiveRefs",
    "GIT_CONFIG_VALUE_0": MAIN_REF,
    "GIT_CONFIG_KEY_1": "receive.procReceiveRefs",
    "GIT_CONFIG_VALUE_1": LANDING_REF,
}
# The one hook script, shipped in this package (a wheel holds no symlinks): git runs it under each
# of these names, and it tells the stage from the name.
_HOOK = "hook"
_HOOK_NAMES = ("pre-receive", "proc-receive", "post-receive")
# Accepted pushes whose post-receive has not come yet (a refused landing never sends one).
_PENDING_PUSHES = 64


@dataclass(frozen=True)
class HookCall:
    """What a hook hands over (see the `hook` script): the ref updates git gives it, the pusher
    the service named when it started git, and (pre-receive) where the pushed objects wait."""

    updates: tuple[RefUpdate, ...]
    pusher_id: int | None
    quarantine: str | None

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> HookCall:
        pusher_id = payload.get("pusher_id")
        return cls(
            updates=tuple(RefUpdate(**update) for update in payload.get("updates", [])),
            pusher_id=int(pusher_id) if pusher_id and str(pusher_id).isdigit() else None,
            quarantine=payload.get("quarantine"),
        )


class HookVerdict(TypedDict):
    """The answer a hook prints (`messages`) and, for proc-receive, reports to git (`results`)."""

    accepted: bool
    results: NotRequired[list[str]]
    messages: list[str]


class GitService:
    def __init__(
        self,
        settings: Settings,
        index: Index,
        repo: Repository,
        lookups: Lookups,
        metrics: Metrics | None = None,
        environments: EnvironmentBuilds | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.environments = environments
        self.index = index
        self.repo = repo
        self.lookups = lookups
        self.policy = PushPolicy(settings, index, repo)
        # Pushed tip -> the locks to commit on top of it once it landed (see the module's doc).
        self._pending_locks: OrderedDict[str, list[PendingLock]] = OrderedDict()
        self._pending_guard = threading.Lock()
        # Known only to this process and the git processes it starts: proves a hook call is ours.
        self.hook_secret = secrets.token_urlsafe(32)
        _install_hooks(repo)
        self.pushes_refused_because = _why_pushes_cannot_be_served()
        if self.pushes_refused_because:
            log.error("git_push_off", reason=self.pushes_refused_because)

    # -- serving ------------------------------------------------------------------------------
    def check_served(self, writing: bool) -> None:
        if writing and self.pushes_refused_because:
            raise errors.PermissionDenied(f"Pushing is disabled: {self.pushes_refused_because}")

    @property
    def project_root(self) -> Path:
        """The folder `git http-backend` serves the repository from."""
        return self.settings.data_dir.resolve()

    def backend_environment(self, user: access.User | None) -> dict[str, str]:
        env = {
            # The hooks start with `/usr/bin/env python3`: this interpreter's folder first, so
            # they run under the service's own Python, also where none is on the PATH (uvx, pipx).
            "PATH": os.pathsep.join(
                (
                    os.path.dirname(sys.executable),
                    os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
                )
            ),
            "HOME": str(self.settings.data_dir.resolve()),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GITSCRIPTS_HOOK_URL": f"{self.settings.internal_url}/internal/git-hooks",
            "GITSCRIPTS_HOOK_SECRET": self.hook_secret,
            **_LANDED_BY_THE_SERVICE,
        }
        if user is not None:
            # The pusher's identity, for the hooks: set here, after authentication, never
            # taken from anything the client sends.
            env["REMOTE_USER"] = user.login
            env["GITSCRIPTS_PUSHER_ID"] = str(user.id)
        return env

    # -- hooks -------------------------------------------------------------------------------
    def check_hook_secret(self, presented: str) -> None:
        if not hmac.compare_digest(presented.encode(), self.hook_secret.encode()):
            raise errors.PermissionDenied("Not a hook of this service")

    async def pre_receive(self, call: HookCall) -> HookVerdict:
        pusher = self._pusher(call)
        quarantine = call.quarantine
        updates = [self._as_update_of_main(update, quarantine) for update in call.updates]
        if pusher is None:
            self.metrics.pushes.labels("refused").inc()
            return {"accepted": False, "messages": ["gitscripts: push rejected: unknown pusher"]}
        # Owners are looked up in the index: it must know every path on `main`, also those of a
        # push whose post-receive has not run yet.
        await run_in_threadpool(self.lookups.ensure_synced)
        problems, new_commits = await run_in_threadpool(
            self.policy.check, pusher, updates, quarantine
        )
        pending: list[PendingLock] = []
        if not problems:
            problems, pending = await run_in_threadpool(self.policy.locks, updates, quarantine)
        log.info(
            "push_checked",
            user=pusher.login,
            refs=[update.ref for update in updates],
            accepted=not problems,
            problems=len(problems),
        )
        if problems:
            self.metrics.pushes.labels("refused").inc()
            return {
                "accepted": False,
                "messages": [
                    "gitscripts: push rejected, nothing was changed:",
                    *(f"  - {problem}" for problem in problems),
                ],
            }
        await run_in_threadpool(self.index.pushes.record, new_commits, pusher.id)
        if pending:
            with self._pending_guard:
                for update in updates:
                    if update.ref == MAIN_REF:
                        self._pending_locks[update.new] = pending
                while len(self._pending_locks) > _PENDING_PUSHES:
                    self._pending_locks.popitem(last=False)
        return {"accepted": True, "messages": []}

    def _as_update_of_main(self, update: RefUpdate, quarantine: str | None) -> RefUpdate:
        """A push to `refs/for/main` is checked as what it asks for: main moving from the commit
        the push was built on (its merge base with main) to the pushed commit."""
        if update.ref != LANDING_REF or update.new == ZERO:
            return update
        head = str(self.repo.head().id)
        base = PushedObjects(self.repo.path, quarantine).merge_base(head, update.new)
        # No shared history: checked against main as it is, which refuses it as non-fast-forward.
        old = base if base is not None else head
        return RefUpdate(old=old, new=update.new, ref=MAIN_REF)

    async def proc_receive(self, call: HookCall) -> HookVerdict:
        """Land the accepted updates of main (see `land`); answer git's proc-receive protocol:
        one `ok` (with where main went) or `ng <reason>` per ref, and lines for the pusher."""
        pusher = self._pusher(call)
        results: list[str] = []
        messages: list[str] = []
        for update in call.updates:
            reported, told = await run_in_threadpool(self.land, pusher, update)
            results += reported
            messages += told
        return {"accepted": True, "results": results, "messages": messages}

    def land(self, pusher: access.User | None, update: RefUpdate) -> tuple[list[str], list[str]]:
        """Put one pushed update on main; (proc-receive report lines, lines for the pusher)."""
        if pusher is None or update.ref not in (MAIN_REF, LANDING_REF) or update.new == ZERO:
            # pre-receive refused all of these already; never move main for them
            return [f"ng {update.ref} not a push this service lands"], []
        try:
            landing = self.repo.land(
                update.new,
                Author(pusher.id, pusher.login),
                partial(self._check_landing, pusher, update),
            )
        except errors.AppError as exc:
            self.metrics.pushes.labels("refused").inc()
            told = [
                "gitscripts: push refused, main was not changed:",
                *(f"  - {path}: changed on main too" for path in exc.details.get("paths", [])),
                *(f"  - {problem}" for problem in exc.details.get("problems", [])),
                "  git pull --rebase, then push again",
            ]
            return [f"ng {update.ref} {exc.message}"], told
        log.info("push_landed", user=pusher.login, ref=update.ref, merged_over=landing.merged_over)
        return self._report(update, landing), self._tell(update, landing)

    def _check_landing(
        self,
        pusher: access.User,
        update: RefUpdate,
        head: str,
        candidate: str,
    ) -> None:
        """The rules again for what would really land, unless it is what pre-receive checked."""
        if candidate == update.new and head == update.old:
            return
        self.lookups.ensure_synced()
        problems, _ = self.policy.check(
            pusher, [RefUpdate(old=head, new=candidate, ref=MAIN_REF)], None
        )
        if problems:
            raise errors.PermissionDenied(
                "the push breaks the rules on top of the current main", problems=problems
            )

    @staticmethod
    def _report(update: RefUpdate, landing: Landing) -> list[str]:
        if update.ref == MAIN_REF and landing.new == update.new:
            return [f"ok {MAIN_REF}"]
        # Where main really went. git's client then shows `main` and keeps its remote-tracking
        # ref at the pushed commit: the merge commit is not in the clone until `git pull`.
        return [
            f"ok {update.ref}",
            f"option refname {MAIN_REF}",
            f"option old-oid {landing.old}",
            f"option new-oid {update.new}",
        ]

    @staticmethod
    def _tell(update: RefUpdate, landing: Landing) -> list[str]:
        if not landing.merged_over:
            return []
        commits = f"{landing.merged_over} newer commit{'s' if landing.merged_over != 1 else ''}"
        return [
            f"gitscripts: main had {commits} touching none of your files; your commits landed "
            f"on top of them as merge commit {landing.new[:12]}.",
            "gitscripts: `git pull` brings your clone up to date.",
        ]

    async def post_receive(self, call: HookCall) -> HookVerdict:
        pusher = self._pusher(call)
        touches_main = any(update.ref == MAIN_REF for update in call.updates)
        locked: list[PendingLock] = []
        if touches_main and pusher is not None:
            with self._pending_guard:
                pending = [
                    lock
                    for update in call.updates
                    for lock in self._pending_locks.pop(update.new, [])
                ]
            if pending:
                locked = await run_in_threadpool(self._commit_pending_locks, pusher, pending)
        if touches_main:
            await run_in_threadpool(self.lookups.ensure_synced)
        head = str(self.repo.head().id)
        log.info(
            "push_received",
            user=pusher.login if pusher else None,
            refs=[update.ref for update in call.updates],
            revision=head,
        )
        # git runs post-receive only once a ref has been updated: the push is in.
        self.metrics.pushes.labels("accepted").inc()
        if self.environments is not None:
            # Built in the background now, so the first run of a pushed lock finds it ready.
            await run_in_threadpool(self._prepare_environments, call.updates)
        messages = [_told(lock) for lock in locked]
        if touches_main:
            messages.append(f"gitscripts: main is at {head[:12]}")
        return {"accepted": True, "messages": messages}

    def _prepare_environments(self, updates: tuple[RefUpdate, ...]) -> None:
        assert self.environments is not None
        for update in updates:
            if update.new == ZERO:
                continue
            if update.ref == MAIN_REF:  # where it landed (on top of newer commits, maybe)
                old = self.repo.find_commit(update.old) if update.old != ZERO else None
                new = self.repo.head()
            elif update.ref.startswith(TAG_PREFIX):
                tag = self.repo.tag(update.ref.removeprefix(TAG_PREFIX))
                if tag is None:
                    continue
                old, new = None, tag.commit
            else:
                continue
            for lock in locks_introduced(self.repo, old, new):
                self.environments.prepare(lock)

    def _commit_pending_locks(
        self, pusher: access.User, pending: list[PendingLock]
    ) -> list[PendingLock]:
        """One commit on top of `main` with the locks a push needed but did not bring, as the
        pusher, compare-and-swap like every API commit; the locks it committed. A script changed
        again since the push (an API save locked it itself), or one whose lock is already the
        one needed, is left as it is."""

        def plan(parent: Commit) -> Plan[list[PendingLock]]:
            sync_index(self.index, self.repo, target=parent)
            done = [
                lock
                for lock in pending
                if self.repo.entry_id(parent.tree, lock.script) == lock.script_id
                and self.repo.read_file(parent.tree, layout.lock_path(lock.script)) != lock.lock
            ]
            edits: Edits = {layout.lock_path(lock.script): lock.lock for lock in done}
            scripts = ", ".join(lock.script for lock in done)
            message = f"Update the locks of {scripts}, pushed by {pusher.login} without them"
            return Plan(edits, message, done)

        with self.repo.write_lock, self.index.transaction():
            if not plan(self.repo.head()).edits:
                return []
            result, committed = self.repo.commit_plan(Author(pusher.id, pusher.login), plan)
            self.index.meta.set_synced_head(result.commit.id)
        log.info(
            "push_locked", user=pusher.login, scripts=[lock.script for lock in committed.found]
        )
        return committed.found

    def _pusher(self, call: HookCall) -> UserRecord | None:
        return self.index.users.get(call.pusher_id) if call.pusher_id is not None else None


def _told(lock: PendingLock) -> str:
    """What the pusher reads of a lock the service committed after their push."""
    path = layout.lock_path(lock.script)
    if lock.lock is None:
        return f"gitscripts: {lock.script} declares no dependencies now: removed {path}; pull"
    return f"gitscripts: locked {lock.script}: pull to get {path}"


def _install_hooks(repo: Repository) -> None:
    """Put the packaged hook into the repository under each name, or refuse to start.

    git skips a hook it cannot find or run, so without ours a push would go in unchecked: a
    service that cannot install them does not start.
    """
    try:
        hook = resources.files(__package__).joinpath(_HOOK).read_bytes()
    except OSError as exc:
        raise ConfigurationError(
            f"the gitscripts package is incomplete: its git hook cannot be read ({exc}); "
            "reinstall gitscripts"
        ) from exc
    hooks_dir = repo.install_hooks(hook, _HOOK_NAMES)
    if not all(os.access(hooks_dir / name, os.X_OK) for name in _HOOK_NAMES):
        raise ConfigurationError(
            f"git cannot run the service's hooks in {hooks_dir}: "
            "is the data directory on a filesystem mounted noexec?"
        )


def _why_pushes_cannot_be_served() -> str | None:
    # Before 2.31 git ignores GIT_CONFIG_COUNT (2.29: receive.procReceiveRefs): it would move
    # main itself, racing the API, and store a push to refs/for/main as a ref, not land it.
    version = subprocess.run(["git", "--version"], capture_output=True, text=True).stdout
    found = re.search(r"(\d+)\.(\d+)", version)
    if found is None or (int(found[1]), int(found[2])) < (2, 31):
        return f"the server's git is older than 2.31 ({version.strip() or 'not found'})"
    return None
