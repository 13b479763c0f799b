"""Every domain error the service can raise: plain exceptions that carry a code, knowing nothing of HTTP.

Each error has an `error_code` (a stable name clients branch on), a `message` for people, and
`details` (the values the message is about). Families group them by kind (validation, not
authenticated, permission, not found, conflict, too large, ...); how a family is answered over HTTP
(status, headers, the JSON shape) is decided once, in `gitscripts.http_errors`.
"""

from __future__ import annotations

from typing import Any, ClassVar


class AppError(Exception):
    error_code: ClassVar[str] = "INTERNAL_ERROR"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        # None means "not known": left out, so an answer never shows a null it did not mean.
        self.details: dict[str, Any] = {
            key: value for key, value in details.items() if value is not None
        }


# -- bad input
class ValidationError(AppError):
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


class InvalidScriptMetadata(ValidationError):
    """A script's PEP 723 block (`# /// script`) is not valid TOML, has unknown keys, or asks for
    something this service cannot give (an interpreter it has not, a refused kind of requirement)."""

    error_code = "INVALID_SCRIPT_METADATA"


class DependenciesUnresolvable(ValidationError):
    """The dependencies a script declares do not resolve against the configured package index."""

    error_code = "DEPENDENCIES_UNRESOLVABLE"


class InvalidRevision(ValidationError):
    error_code = "INVALID_REVISION"


class InvalidTagName(ValidationError):
    error_code = "INVALID_TAG_NAME"


class InvalidSearchPattern(ValidationError):
    error_code = "INVALID_SEARCH_PATTERN"


class InvalidFileKey(ValidationError):
    error_code = "INVALID_FILE_KEY"


# -- no usable credentials
class NotAuthenticated(AppError):
    error_code = "NOT_AUTHENTICATED"
    # The credentials the caller should come back with (the scheme a client is asked for).
    challenge: ClassVar[str] = "Bearer"


class InvalidCredentials(NotAuthenticated):
    error_code = "INVALID_CREDENTIALS"


class InvalidToken(NotAuthenticated):
    error_code = "INVALID_TOKEN"


class GitAuthRequired(NotAuthenticated):
    """git's client sends credentials only when asked for a login and password (or token)."""

    challenge: ClassVar[str] = 'Basic realm="gitscripts"'


# -- not allowed
class PermissionDenied(AppError):
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


class NotRunOwner(PermissionDenied):
    error_code = "NOT_RUN_OWNER"


class RegistrationClosed(PermissionDenied):
    error_code = "REGISTRATION_CLOSED"


class InvalidInviteCode(PermissionDenied):
    error_code = "INVALID_INVITE_CODE"


# -- not there
class NotFound(AppError):
    error_code = "NOT_FOUND"


class EnvironmentNotFound(NotFound):
    error_code = "ENVIRONMENT_NOT_FOUND"


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


class RunNotFound(NotFound):
    error_code = "RUN_NOT_FOUND"


# -- at odds with the current state
class Conflict(AppError):
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


class RunAlreadyFinished(Conflict):
    error_code = "RUN_ALREADY_FINISHED"


class RunNotCancellable(Conflict):
    """A synchronous run ends with its request: its client cancels it by going away."""

    error_code = "RUN_NOT_CANCELLABLE"


class RunNotReplayable(Conflict):
    error_code = "RUN_NOT_REPLAYABLE"


# -- well-formed, but not to be done
class Unprocessable(AppError):
    error_code = "UNPROCESSABLE"


class EnvironmentBuildFailed(Unprocessable):
    """The environment of a script's lock could not be built (a package gone from the index, a
    wheel that does not install): its runs fail until the lock changes or it is rebuilt."""

    error_code = "ENVIRONMENT_BUILD_FAILED"


class IdempotencyKeyReused(Unprocessable):
    """An Idempotency-Key sent again with a different request."""

    error_code = "IDEMPOTENCY_KEY_REUSED"


# -- too large
class PayloadTooLarge(AppError):
    error_code = "PAYLOAD_TOO_LARGE"


class FileTooLarge(PayloadTooLarge):
    error_code = "FILE_TOO_LARGE"


class BatchTooLarge(PayloadTooLarge):
    error_code = "BATCH_TOO_LARGE"


# -- outside the file
class RangeNotSatisfiable(AppError):
    error_code = "RANGE_NOT_SATISFIABLE"

    def __init__(self, message: str, size: int) -> None:
        super().__init__(message, size=size)
        self.size = size  # the whole file's length, so the client can ask again


# -- too many at once
class TooManyExecutions(AppError):
    error_code = "TOO_MANY_EXECUTIONS"

    def __init__(self, message: str, queue_limit: int, retry_after: int) -> None:
        # Not in the details: they keep the shape they always had.
        super().__init__(message, queue_limit=queue_limit)
        self.retry_after = retry_after


class TooManyLoginAttempts(AppError):
    """One client address failed to sign in too often: refused before any password is checked."""

    error_code = "TOO_MANY_LOGIN_ATTEMPTS"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, retry_after=retry_after)
        self.retry_after = retry_after


# -- the execution cluster (EXECUTOR=dask)
class ExecutionUnavailable(AppError):
    """The cluster cannot take a run now (the service itself is fine)."""


class NoExecutionCapacity(ExecutionUnavailable):
    error_code = "NO_EXECUTION_CAPACITY"

    def __init__(self, message: str, retry_after: int, **details: Any) -> None:
        super().__init__(message, **details)
        self.retry_after = retry_after


class WorkerLost(ExecutionUnavailable):
    """The worker running a run died (or was cut off) before it reported: the run failed."""

    error_code = "WORKER_LOST"


# -- the service failed
class InternalError(AppError):
    error_code = "INTERNAL_ERROR"


class FileSystemError(AppError):
    error_code = "FILE_SYSTEM_ERROR"


# -- errors carried between processes (a cluster worker's reply to the service)
def to_message(error: AppError) -> dict[str, Any]:
    """`error` as JSON carries it; `from_message` makes it again."""
    return {"error_code": error.error_code, "message": error.message, "details": error.details}


def from_message(message: dict[str, Any]) -> AppError:
    """The error `to_message` described: of the first class (families before their members)
    with its code, or an InternalError for a code this service does not know."""
    code, text = str(message.get("error_code")), str(message.get("message"))
    details = message.get("details")
    found = _by_code().get(code, InternalError)
    error = found.__new__(found)  # the family's constructor: members may take other arguments
    AppError.__init__(error, text, **(details if isinstance(details, dict) else {}))
    return error


def _by_code() -> dict[str, type[AppError]]:
    found: dict[str, type[AppError]] = {}
    families: list[type[AppError]] = [AppError]
    while families:
        family = families.pop(0)
        found.setdefault(family.error_code, family)
        families.extend(family.__subclasses__())
    return found
