"""Every error the service can answer, and the one handler that shapes them.

Each error is `{"error_code", "message", "details"}` at the top level, whatever raised it: a service,
request validation, routing, or a bug (which never leaks its traceback or a host path).
"""

from __future__ import annotations

from typing import Any, ClassVar

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = structlog.get_logger("gitscripts.errors")


class AppError(Exception):
    status_code = 500
    error_code = "INTERNAL_ERROR"
    headers: ClassVar[dict[str, str] | None] = None

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = {key: value for key, value in details.items() if value is not None}

    def to_dict(self) -> dict[str, Any]:
        return {"error_code": self.error_code, "message": self.message, "details": self.details}


# 400
class ValidationError(AppError):
    status_code = 400
    error_code = "VALIDATION_ERROR"


class JSONTooDeep(ValidationError):
    """A JSON body nested deeper than the parser goes (Python's recursion limit, about 1000
    levels): a bad request like any other, not a crash."""

    def __init__(self) -> None:
        super().__init__("The request body is not usable JSON: it is nested too deeply")


class InvalidFilename(ValidationError):
    error_code = "INVALID_FILENAME"


class InvalidFolderName(ValidationError):
    error_code = "INVALID_FOLDER_NAME"


class InvalidScriptContent(ValidationError):
    error_code = "INVALID_SCRIPT_CONTENT"


class ScriptMissingMain(ValidationError):
    error_code = "SCRIPT_MISSING_MAIN"


class InvalidRevision(ValidationError):
    error_code = "INVALID_REVISION"


class InvalidTagName(ValidationError):
    error_code = "INVALID_TAG_NAME"


class InvalidSearchPattern(ValidationError):
    error_code = "INVALID_SEARCH_PATTERN"


class InvalidFileKey(ValidationError):
    error_code = "INVALID_FILE_KEY"


# 401
class NotAuthenticated(AppError):
    status_code = 401
    error_code = "NOT_AUTHENTICATED"
    headers: ClassVar[dict[str, str] | None] = {"WWW-Authenticate": "Bearer"}


class InvalidCredentials(NotAuthenticated):
    error_code = "INVALID_CREDENTIALS"


class InvalidToken(NotAuthenticated):
    error_code = "INVALID_TOKEN"


# 403
class PermissionDenied(AppError):
    status_code = 403
    error_code = "PERMISSION_DENIED"


class NotFolderOwner(PermissionDenied):
    error_code = "NOT_FOLDER_OWNER"


class NotScriptOwner(PermissionDenied):
    error_code = "NOT_SCRIPT_OWNER"


class NotAllOwner(PermissionDenied):
    error_code = "NOT_ALL_OWNER"


class NotTagOwner(PermissionDenied):
    error_code = "NOT_TAG_OWNER"


class NotFileOwner(PermissionDenied):
    error_code = "NOT_FILE_OWNER"


class RegistrationClosed(PermissionDenied):
    error_code = "REGISTRATION_CLOSED"


class InvalidInviteCode(PermissionDenied):
    error_code = "INVALID_INVITE_CODE"


# 404
class NotFound(AppError):
    status_code = 404
    error_code = "NOT_FOUND"


class FolderNotFound(NotFound):
    error_code = "FOLDER_NOT_FOUND"


class ParentFolderNotFound(NotFound):
    error_code = "PARENT_FOLDER_NOT_FOUND"


class ScriptNotFound(NotFound):
    error_code = "SCRIPT_NOT_FOUND"


class RevisionNotFound(NotFound):
    error_code = "REVISION_NOT_FOUND"


class TagNotFound(NotFound):
    error_code = "TAG_NOT_FOUND"


class TokenNotFound(NotFound):
    error_code = "TOKEN_NOT_FOUND"


class FileNotFound(NotFound):
    error_code = "FILE_NOT_FOUND"


class InviteNotFound(NotFound):
    error_code = "INVITE_NOT_FOUND"


# 409
class Conflict(AppError):
    status_code = 409
    error_code = "CONFLICT"


class FolderAlreadyExists(Conflict):
    error_code = "FOLDER_ALREADY_EXISTS"


class ScriptAlreadyExists(Conflict):
    error_code = "SCRIPT_ALREADY_EXISTS"


class ScriptExistsReplaceRequired(Conflict):
    error_code = "SCRIPT_EXISTS_REPLACE_REQUIRED"


class TagAlreadyExists(Conflict):
    error_code = "TAG_ALREADY_EXISTS"


class ScriptChanged(Conflict):
    """The script's source changed since the revision an edit was made from."""

    error_code = "SCRIPT_CHANGED"


class ConcurrentUpdate(Conflict):
    """Another writer kept moving `main` while this change was being applied."""

    error_code = "CONCURRENT_UPDATE"


class PushConflict(Conflict):
    """A pushed commit cannot join `main`: what `main` gained since the push's base touches the
    same scripts or folders, or the two share no history."""

    error_code = "PUSH_CONFLICT"


# 413
class PayloadTooLarge(AppError):
    status_code = 413
    error_code = "PAYLOAD_TOO_LARGE"


class FileTooLarge(PayloadTooLarge):
    error_code = "FILE_TOO_LARGE"


# 416
class RangeNotSatisfiable(AppError):
    status_code = 416
    error_code = "RANGE_NOT_SATISFIABLE"

    def __init__(self, message: str, size: int) -> None:
        super().__init__(message, size=size)
        # RFC 9110: a 416 names the representation's length, so the client can ask again.
        self.headers = {"Content-Range": f"bytes */{size}"}


# 429
class TooManyExecutions(AppError):
    status_code = 429
    error_code = "TOO_MANY_EXECUTIONS"

    def __init__(self, message: str, queue_limit: int, retry_after: int) -> None:
        super().__init__(message, queue_limit=queue_limit)
        # Only the header: the details keep the shape they always had.
        self.headers = {"Retry-After": str(retry_after)}


class TooManyLoginAttempts(AppError):
    """One client address failed to sign in too often: refused before any password is checked."""

    status_code = 429
    error_code = "TOO_MANY_LOGIN_ATTEMPTS"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, retry_after=retry_after)
        self.headers = {"Retry-After": str(retry_after)}


# 500
class InternalError(AppError):
    error_code = "INTERNAL_ERROR"


class DatabaseError(AppError):
    error_code = "DATABASE_ERROR"


class FileSystemError(AppError):
    error_code = "FILE_SYSTEM_ERROR"


_STATUS_CODES = {
    400: "VALIDATION_ERROR",
    401: "NOT_AUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    429: "TOO_MANY_REQUESTS",
}


def error_response(error: AppError) -> JSONResponse:
    return JSONResponse(error.to_dict(), status_code=error.status_code, headers=error.headers)


def _field_path(location: tuple[Any, ...]) -> str:
    # ("body", "name") -> "name": where it came from is noise to the person fixing the request.
    parts = [str(part) for part in location if part not in ("body", "query", "path", "header")]
    return ".".join(parts) or ".".join(str(part) for part in location)


def validation_error_from_request(exc: RequestValidationError) -> ValidationError:
    errors = [
        {"field": _field_path(tuple(item.get("loc", ()))), "message": item.get("msg", "")}
        for item in exc.errors()
    ]
    if errors:
        first = errors[0]
        message = f"Invalid request: {first['field']}: {first['message']}"
    else:
        message = "Invalid request"
    return ValidationError(message, errors=errors)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def handle_app_error(request: Request, exc: AppError) -> JSONResponse:
        if exc.status_code >= 500:
            log.error("request_failed", error_code=exc.error_code, error=exc.message)
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def handle_validation_error(
        request: Request, exc: RequestValidationError
    ) -> JSONResponse:
        return error_response(validation_error_from_request(exc))

    @app.exception_handler(StarletteHTTPException)
    async def handle_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # FastAPI answers every body it cannot parse with one vague 400; say what was wrong.
        if isinstance(exc.__cause__, RecursionError):
            return error_response(JSONTooDeep())
        code = _STATUS_CODES.get(exc.status_code, "HTTP_ERROR")
        if exc.status_code == 404:
            message = f"Not found: {request.method} {request.url.path}"
        else:
            message = str(exc.detail)
        return JSONResponse(
            {"error_code": code, "message": message, "details": {}},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def handle_unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The traceback goes to the log, never to the client.
        log.exception("unhandled_error", error_type=type(exc).__name__)
        return JSONResponse(
            {"error_code": "INTERNAL_ERROR", "message": "Internal server error", "details": {}},
            status_code=500,
        )
