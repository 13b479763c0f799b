from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

router = APIRouter(tags=["examples"])

_EXAMPLE = Path(__file__).with_name("execute_script_example.py")


@router.get("/api/v1/examples/execute_script_example.py", response_class=PlainTextResponse)
def execute_script_example() -> PlainTextResponse:
    """A standard-library-only example of calling a script from a simulator (no token needed)."""
    return PlainTextResponse(_EXAMPLE.read_text(), media_type="text/x-python; charset=utf-8")
