"""`gitscripts`: run the service and look after its data."""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from gitscripts.config import ConfigurationError, Settings


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


def _create_admin(args: argparse.Namespace, settings: Settings) -> int:
    from gitscripts.index import Index

    password = os.environ.get("GITSCRIPTS_ADMIN_PASSWORD")
    if not password and sys.stdin.isatty():
        password = getpass.getpass(f"Password for {args.login}: ")
        if password != getpass.getpass("Repeat it: "):
            print("The passwords differ; nothing changed.", file=sys.stderr)
            return 1
    if password is not None and len(password) < 8:
        print("The password must be at least 8 characters; nothing changed.", file=sys.stderr)
        return 1
    from gitscripts.auth.service import AuthService
    from gitscripts.errors import AppError

    try:
        user = AuthService(settings, Index(settings.index_path)).set_admin(args.login, password)
    except AppError as exc:
        print(f"{exc.message}; nothing changed.", file=sys.stderr)
        return 1
    print(f"{user['login']} (id {user['id']}) is an admin.")
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
        f"{len(index.entries('folders'))} folders, {len(index.entries('scripts'))} scripts "
        f"at {str(repo.head().id)[:12]}."
    )
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
    reindex = commands.add_parser(
        "reindex", help="rebuild the id/path index from Git, keeping ids and owners"
    )
    reindex.set_defaults(run=_reindex)
    args = parser.parse_args(argv)
    try:
        return int(args.run(args, Settings()))
    except ConfigurationError as exc:
        print(f"gitscripts: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
