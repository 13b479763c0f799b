"""Which of git's smart HTTP requests are served: the names of the protocol, nothing of a request.

Only the smart protocol is served (git 1.6.6 or newer); the "dumb" file paths are not.
"""

from __future__ import annotations

from gitscripts import errors

REPOSITORY_NAME = "scripts.git"
UPLOAD_PACK = "git-upload-pack"  # clone and fetch
RECEIVE_PACK = "git-receive-pack"  # push

_SMART_PATHS = {
    ("GET", "info/refs"),
    ("POST", UPLOAD_PACK),
    ("POST", RECEIVE_PACK),
}


def smart_service(method: str, path: str, service_param: str | None, url_path: str) -> str:
    """The protocol service a request to `path` (under the repository) asks for: NotFound for a
    path that is not the smart protocol's, ValidationError for an unknown service."""
    if (method, path) not in _SMART_PATHS:
        raise errors.NotFound(f"Not found: {method} {url_path}")
    service = service_param if path == "info/refs" else path
    if service not in (UPLOAD_PACK, RECEIVE_PACK):
        raise errors.ValidationError("Only the smart HTTP protocol is served (git 1.6.6 or newer)")
    return service
