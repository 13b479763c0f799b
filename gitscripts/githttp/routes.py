"""`/git/scripts.git`: clone, fetch and push over git's smart HTTP protocol, and the hooks' door."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gitscripts import errors
from gitscripts.githttp.backend import run_http_backend
from gitscripts.githttp.service import REPOSITORY_NAME, GitService
from gitscripts.services import services_of

router = APIRouter(include_in_schema=False)

# Only the smart protocol is served; the "dumb" file paths are not.
_SMART_PATHS = {
    ("GET", "info/refs"),
    ("POST", "git-upload-pack"),
    ("POST", "git-receive-pack"),
}


def _git(request: Request) -> GitService:
    return services_of(request).git


@router.api_route(f"/git/{REPOSITORY_NAME}/{{path:path}}", methods=["GET", "POST"])
async def smart_http(path: str, request: Request) -> Response:
    if (request.method, path) not in _SMART_PATHS:
        raise errors.NotFound(f"Not found: {request.method} {request.url.path}")
    service_name = request.query_params.get("service") if path == "info/refs" else path
    if service_name not in ("git-upload-pack", "git-receive-pack"):
        raise errors.ValidationError("Only the smart HTTP protocol is served (git 1.6.6 or newer)")
    git = _git(request)
    user = await git.caller(request, writing=service_name == "git-receive-pack")
    if user is not None:
        from gitscripts.logging import bind_user

        bind_user(request.scope, user.login)
    settings = services_of(request).settings
    return await run_http_backend(
        request,
        settings.data_dir.resolve(),
        f"/{REPOSITORY_NAME}/{path}",
        git.backend_environment(user),
    )


@router.post("/internal/git-hooks/{stage}")
async def hook(stage: str, request: Request) -> dict[str, Any]:
    git = _git(request)
    git.check_hook_secret(request)
    payload = await request.json()
    if stage == "pre-receive":
        return await git.pre_receive(payload)
    if stage == "proc-receive":
        return await git.proc_receive(payload)
    if stage == "post-receive":
        return await git.post_receive(payload)
    raise errors.NotFound(f"No hook named {stage}")
