"""`gitscripts`: run the service and look after its data."""

from __future__ import annotations

import argparse
import getpass
import importlib.util
import os
import sys
from typing import TYPE_CHECKING

from gitscripts import access
from gitscripts.config import ConfigurationError, Settings, load_settings
from gitscripts.errors import AppError
from gitscripts.logging import configure_logging

if TYPE_CHECKING:
    from gitscripts.auth.service import AuthService
    from gitscripts.deps.environments import Environments


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from gitscripts.app import create_app

    # The service must know where it listens: git hooks call back to it there.
    settings = settings.model_copy(
        update={"host": args.host or settings.host, "port": args.port or settings.port}
    )
    app = create_app(settings)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
    )
    return 0


class _Refused(Exception):
    """A command that changes nothing, for the reason given."""


def _new_password(login: str, variable: str) -> str | None:
    """A password from `variable`, or typed twice at a terminal; None when there is neither."""
    password = os.environ.get(variable)
    if not password and sys.stdin.isatty():
        password = getpass.getpass(f"Password for {login}: ")
        if password != getpass.getpass("Repeat it: "):
            raise _Refused("The passwords differ")
    if password is not None and len(password) < 8:
        raise _Refused("The password must be at least 8 characters")
    return password


def _auth(settings: Settings) -> AuthService:
    from gitscripts.auth.service import AuthService
    from gitscripts.index import Index

    return AuthService(settings, Index(settings.index_path))


def _create_admin(args: argparse.Namespace, settings: Settings) -> int:
    password = _new_password(args.login, "GITSCRIPTS_ADMIN_PASSWORD")
    user = _auth(settings).set_admin(args.login, password)
    print(f"{user.login} (id {user.id}) is an admin.")
    return 0


def _create_user(args: argparse.Namespace, settings: Settings) -> int:
    password = _new_password(args.login, "GITSCRIPTS_USER_PASSWORD")
    if password is None:
        raise _Refused("A password is needed: set GITSCRIPTS_USER_PASSWORD or run at a terminal")
    user = _auth(settings).register(args.login, password, is_admin=args.admin)
    role = "an admin" if user.is_admin else "a user"
    print(f"{user.login} (id {user.id}) is {role}.")
    return 0


def _create_invite(args: argparse.Namespace, settings: Settings) -> int:
    auth = _auth(settings)
    admin = auth.index.users.by_login(args.by)
    if admin is None or not access.may_manage_accounts(admin):
        raise _Refused(f"{args.by} is not an admin")
    invite = auth.create_invite(admin, args.days)
    print(invite["code"])
    print(f"Single use, valid until {invite['expires_at']}.", file=sys.stderr)
    return 0


def _reindex(args: argparse.Namespace, settings: Settings) -> int:
    from gitscripts.index import Index
    from gitscripts.index.sync import sync_index
    from gitscripts.repo import Repository

    index = Index(settings.index_path)
    repo = Repository(settings.repo_path)
    changed = sync_index(index, repo, full=True)
    print(
        f"Index {'updated' if changed else 'already up to date'}: "
        f"{len(index.folders.all())} folders, {len(index.scripts.all())} scripts "
        f"at {str(repo.head().id)[:12]}."
    )
    return 0


def _with_environments(
    settings: Settings,
) -> tuple[Environments, dict[str, tuple[bytes, list[str]]]]:
    """The environments of the data directory, and what `main` and every tag need of them."""
    from gitscripts.deps.environments import Environments, needed_by_refs
    from gitscripts.repo import Repository

    return Environments(settings), needed_by_refs(Repository(settings.repo_path))


def _size(count: int | None) -> str:
    if count is None:
        return "-"
    if count < 1024:
        return f"{count} B"
    amount, units = count / 1024, ["KiB", "MiB", "GiB"]
    while amount >= 1024 and len(units) > 1:
        amount, units = amount / 1024, units[1:]
    return f"{amount:.1f} {units[0]}"


def _environments_list(args: argparse.Namespace, settings: Settings) -> int:
    from gitscripts.errors import EnvironmentNotFound
    from gitscripts.timestamps import iso_seconds

    environments, needed = _with_environments(settings)
    print(f"{'ENVIRONMENT':20}  {'STATE':8}  {'SIZE':>10}  {'LAST USE':20}  NEEDED BY")
    for key in sorted(set(environments.keys()) | set(needed)):
        state: str = "absent"
        size, used = "-", None
        try:
            info = environments.info(key)
            state, size, used = info.state, _size(info.size), info.last_used
        except EnvironmentNotFound:
            pass  # a ref needs it; it was never built
        refs = ", ".join(needed[key][1]) if key in needed else "-"
        last = iso_seconds(used) if used is not None else "-"
        print(f"{key:20}  {state:8}  {size:>10}  {last:20}  {refs}")
    return 0


def _environments_prebuild(args: argparse.Namespace, settings: Settings) -> int:
    environments, needed = _with_environments(settings)
    failed = 0
    try:
        for key, (lock, refs) in sorted(needed.items()):
            environments.retry(key)  # a build that failed before is tried again
            try:
                environments.future(lock).result()
            except AppError as exc:
                failed += 1
                print(f"{key}  failed  {exc.message}")
                continue
            print(f"{key}  ready   {', '.join(refs)}")
    finally:
        environments.close()
    print(f"{len(needed) - failed} of {len(needed)} environment(s) ready.", file=sys.stderr)
    return 1 if failed else 0


def _environments_gc(args: argparse.Namespace, settings: Settings) -> int:
    environments, needed = _with_environments(settings)
    removed = environments.collect(set(needed))
    for key in removed:
        print(f"{key}  removed")
    print(f"{len(removed)} environment(s) removed.", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gitscripts", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", help="address to listen on (default: HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default: PORT or 8000)")
    serve.set_defaults(run=_serve)
    admin = commands.add_parser(
        "create-admin",
        help="make LOGIN an admin, creating the account if needed "
        "(password from GITSCRIPTS_ADMIN_PASSWORD or a prompt)",
    )
    admin.add_argument("login")
    admin.set_defaults(run=_create_admin)
    user = commands.add_parser(
        "create-user",
        help="create the account LOGIN, whatever REGISTRATION says "
        "(password from GITSCRIPTS_USER_PASSWORD or a prompt)",
    )
    user.add_argument("login")
    user.add_argument("--admin", action="store_true", help="make the new account an admin")
    user.set_defaults(run=_create_user)
    invite = commands.add_parser(
        "create-invite",
        help="print a new single-use invite code for REGISTRATION=invite",
    )
    invite.add_argument("--by", required=True, help="the admin the invite is made by")
    invite.add_argument(
        "--days",
        type=int,
        default=7,
        choices=range(1, 366),
        metavar="DAYS",
        help="how long the code works (1 to 365 days, default 7)",
    )
    invite.set_defaults(run=_create_invite)
    reindex = commands.add_parser(
        "reindex", help="rebuild the id/path index from Git, keeping ids and owners"
    )
    reindex.set_defaults(run=_reindex)
    environments = commands.add_parser(
        "environments", help="the environments of scripts with dependencies"
    ).add_subparsers(dest="action", required=True)
    environments.add_parser(
        "list", help="each environment's state, size, last use and the refs that need it"
    ).set_defaults(run=_environments_list)
    environments.add_parser(
        "prebuild",
        help="build the environments of main and every tag now (retrying failed builds)",
    ).set_defaults(run=_environments_prebuild)
    environments.add_parser(
        "gc",
        help="remove environments no branch or tag needs, then the least recently used beyond "
        "ENVIRONMENTS_MAX_BYTES (never one in use)",
    ).set_defaults(run=_environments_gc)
    if importlib.util.find_spec("distributed") is not None:  # the `gitscripts[dask]` extra
        from gitscripts.cluster.commands import add_commands

        add_commands(commands)
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        # Logs go to stderr: stdout is the command's answer (an invite code, for one).
        configure_logging(settings.log_level, json_lines=settings.environment == "production")
        return int(args.run(args, settings))
    except ConfigurationError as exc:
        for line in str(exc).splitlines():
            print(f"gitscripts: {line}", file=sys.stderr)
        return 2
    except _Refused as exc:
        print(f"{exc}; nothing changed.", file=sys.stderr)
        return 1
    except AppError as exc:
        print(f"{exc.message.rstrip('.')}; nothing changed.", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
