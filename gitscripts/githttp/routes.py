"""`/git/scripts.git`: clone, fetch and push over git's smart HTTP protocol, and the hooks' door."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gitscripts import errors
from gitscripts.auth.deps import GitUser, HookCaller
from gitscripts.githttp.backend import run_http_backend
from gitscripts.githttp.protocol import REPOSITORY_NAME
from gitscripts.githttp.service import HookCall, HookVerdict
from gitscripts.services import Git

router = APIRouter(include_in_schema=False)


@router.api_route(f"/git/{REPOSITORY_NAME}/{{path:path}}", methods=["GET", "POST"])
async def smart_http(path: str, request: Request, user: GitUser, git: Git) -> Response:
    # `GitUser` has checked that `path` is the smart protocol's, and who may use it.
    return await run_http_backend(
        request, git.project_root, f"/{REPOSITORY_NAME}/{path}", git.backend_environment(user)
    )


@router.post("/internal/git-hooks/{stage}", response_model=None)
async def hook(stage: str, request: Request, caller: HookCaller, git: Git) -> HookVerdict:
    call = HookCall.from_json(await request.json())
    if stage == "pre-receive":
        return await git.pre_receive(call)
    if stage == "proc-receive":
        return await git.proc_receive(call)
    if stage == "post-receive":
        return await git.post_receive(call)
    raise errors.NotFound(f"No hook named {stage}")
