"""The web UI's routes: the page at `/`, its static assets under `/ui`, and the highlighter's theme."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import FileResponse
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from gitscripts.manager.highlight import stylesheet

# The page lives outside the static folder: served only at `/`, always with its headers.
PAGE = Path(__file__).parent / "index.html"
STATIC_DIR = Path(__file__).parent / "static"

router = APIRouter(include_in_schema=False)

# The page runs only its own modules: no inline script, nothing from elsewhere. Highlighted source
# is Pygments markup with classes, so no inline styles are needed either.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
        "form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    # Assets are revalidated (ETag) on every load, so an upgraded service never runs stale modules.
    "Cache-Control": "no-cache",
}


@router.get("/")
def index() -> FileResponse:
    return FileResponse(PAGE, headers=_PAGE_HEADERS)


@router.get("/ui/highlight.css")
def highlight_css() -> Response:
    # The UI follows the system's light or dark mode; so do the source's colours.
    css = f"{stylesheet()}@media (prefers-color-scheme: dark) {{\n{stylesheet(dark=True)}}}\n"
    return Response(css, media_type="text/css", headers={"Cache-Control": "public, max-age=3600"})


class _RevalidatedStaticFiles(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.setdefault("Cache-Control", "no-cache")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response


def install_web_ui(app: FastAPI) -> None:
    """The routes first, so `/ui/highlight.css` is answered before the static mount sees it."""
    app.include_router(router)
    app.mount("/ui", _RevalidatedStaticFiles(directory=STATIC_DIR), name="ui")
