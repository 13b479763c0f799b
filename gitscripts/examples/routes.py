from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

router = APIRouter(tags=["examples"])

_EXAMPLE = Path(__file__).with_name("execute_script_example.py")
_CLIENT = Path(__file__).parent.parent / "client.py"


@router.get("/api/v1/examples/execute_script_example.py", response_class=PlainTextResponse)
def execute_script_example() -> PlainTextResponse:
    """A standard-library-only example of calling a script from a simulator (no token needed).

    `text/plain`, as the original served it: its web UI shows the example as text."""
    return PlainTextResponse(_EXAMPLE.read_text(), media_type="text/plain; charset=utf-8")


@router.get("/api/v1/client.py", response_class=PlainTextResponse)
def client_module() -> PlainTextResponse:
    """The standard-library-only client (`gitscripts/client.py`), as is: save it as `client.py`
    next to the simulator's scripts (no token needed)."""
    return PlainTextResponse(_CLIENT.read_text(), media_type="text/x-python; charset=utf-8")
