"""How errors are answered over HTTP: one JSON shape, one place that knows statuses and headers.

Every error answer is `{"error_code", "message", "details"}` at the top level, whatever raised it: a
domain error (`gitscripts.errors`, mapped here by its family), request validation, routing, or a bug
(which never leaks its traceback or a host path).
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gitscripts import errors

log = structlog.get_logger("gitscripts.errors")

# A domain error's status is its nearest family's here (see `status_of`).
_STATUS_OF_FAMILY: dict[type, int] = {
    errors.ValidationError: 400,
    errors.NotAuthenticated: 401,
    errors.PermissionDenied: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.PayloadTooLarge: 413,
    errors.Unprocessable: 422,
    errors.RangeNotSatisfiable: 416,
    errors.TooManyExecutions: 429,
    errors.TooManyLoginAttempts: 429,
    errors.WorkerLost: 502,
    errors.ExecutionUnavailable: 503,
    errors.AppError: 500,
}

# What the framework's own errors (routing, methods, unparsable bodies) are called.
_CODE_OF_STATUS = {
    400: "VALIDATION_ERROR",
    401: "NOT_AUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    429: "TOO_MANY_REQUESTS",
}


def status_of(error: errors.AppError) -> int:
    for family in type(error).__mro__:
        status = _STATUS_OF_FAMILY.get(family)
        if status is not None:
            return status
    raise AssertionError("every AppError has AppError in its MRO")  # pragma: no cover


def headers_of(error: errors.AppError) -> dict[str, str] | None:
    if isinstance(error, errors.NotAuthenticated):
        return {"WWW-Authenticate": error.challenge}
    if isinstance(error, errors.RangeNotSatisfiable):
        # RFC 9110: a 416 names the representation's length, so the client can ask again.
        return {"Content-Range": f"bytes */{error.size}"}
    if isinstance(
        error, errors.TooManyExecutions | errors.TooManyLoginAttempts | errors.NoExecutionCapacity
    ):
        return {"Retry-After": str(error.retry_after)}
    return None


def _body(error_code: str, message: str, details: dict[str, Any]) -> dict[str, Any]:
    return {"error_code": error_code, "message": message, "details": details}


def error_response(error: errors.AppError) -> JSONResponse:
    return JSONResponse(
        _body(error.error_code, error.message, error.details),
        status_code=status_of(error),
        headers=headers_of(error),
    )


def _field_path(location: tuple[Any, ...]) -> str:
    # ("body", "name") -> "name": where it came from is noise to the person fixing the request.
    parts = [str(part) for part in location if part not in ("body", "query", "path", "header")]
    return ".".join(parts) or ".".join(str(part) for part in location)


def validation_error_from_request(exc: RequestValidationError) -> errors.ValidationError:
    problems = [
        {"field": _field_path(tuple(item.get("loc", ()))), "message": item.get("msg", "")}
        for item in exc.errors()
    ]
    if problems:
        first = problems[0]
        message = f"Invalid request: {first['field']}: {first['message']}"
    else:
        message = "Invalid request"
    return errors.ValidationError(message, errors=problems)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(errors.AppError)
    async def handle_app_error(request: Request, exc: errors.AppError) -> JSONResponse:
        response = error_response(exc)
        if response.status_code >= 500:
            log.error("request_failed", error_code=exc.error_code, error=exc.message)
        return response

    @app.exception_handler(RequestValidationError)
    async def handle_validation_error(
        request: Request, exc: RequestValidationError
    ) -> JSONResponse:
        return error_response(validation_error_from_request(exc))

    @app.exception_handler(StarletteHTTPException)
    async def handle_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # FastAPI answers every body it cannot parse with one vague 400; say what was wrong.
        if isinstance(exc.__cause__, RecursionError):
            return error_response(errors.JSONTooDeep())
        code = _CODE_OF_STATUS.get(exc.status_code, "HTTP_ERROR")
        if exc.status_code == 404:
            message = f"Not found: {request.method} {request.url.path}"
        else:
            message = str(exc.detail)
        return JSONResponse(
            _body(code, message, {}), status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def handle_unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The traceback goes to the log, never to the client.
        log.exception("unhandled_error", error_type=type(exc).__name__)
        return JSONResponse(_body("INTERNAL_ERROR", "Internal server error", {}), status_code=500)
