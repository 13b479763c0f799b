"""What a file key may look like, and how new keys are made.

A key is a relative, slash-separated path inside the store. The same rules hold on every store, so a
key that works on the local store works on S3 and the other way round; anything that could step
outside the store or mean different things on different file systems is refused.
"""

from __future__ import annotations

import mimetypes
import re
import uuid
from urllib.parse import quote

from gitscripts import errors

MAX_KEY_BYTES = 1024  # S3's own limit on object keys
MAX_SEGMENT_BYTES = 255  # most local file systems' limit on a name
_EXTENSION = re.compile(r"\.[A-Za-z0-9_-]{1,16}")
# `GET /files/{key}/info` and `POST /files/{key}/link` answer for `key`: a key whose last segment
# is one of these would be shadowed by them, so no path stores or reads one.
RESERVED_LAST_SEGMENTS = frozenset({"info", "link"})


def _problem(key: str, allow_empty: bool) -> str | None:
    if not key:
        return None if allow_empty else "it is empty"
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        return f"it is longer than {MAX_KEY_BYTES} bytes"
    if key.startswith("/"):
        return "it is absolute"
    if "\\" in key:
        return "it contains a backslash"
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in key):
        return "it contains a control character"
    for segment in key.split("/"):
        if not segment:
            return "it has an empty segment"
        # Also refuses `.` and `..`; names starting with a dot are the store's own (uploads in
        # progress live under `.incoming`).
        if segment.startswith("."):
            return f"its segment {segment!r} starts with a dot"
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            return f"a segment is longer than {MAX_SEGMENT_BYTES} bytes"
    return None


def check_key(key: str) -> str:
    problem = _problem(key, allow_empty=False)
    if problem is None and key.rsplit("/", 1)[-1] in RESERVED_LAST_SEGMENTS:
        reserved = " or ".join(f"'{word}'" for word in sorted(RESERVED_LAST_SEGMENTS))
        problem = f"its last segment may not be {reserved}"
    if problem:
        raise errors.InvalidFileKey(f"Invalid file key: {problem}", key=key)
    return key


def check_prefix(prefix: str) -> str:
    """A prefix follows the key rules; empty is the store's top level; one trailing `/` is allowed."""
    prefix = prefix.removesuffix("/") if prefix != "/" else prefix
    problem = _problem(prefix, allow_empty=True)
    if problem:
        raise errors.InvalidFileKey(f"Invalid prefix: {problem}", prefix=prefix)
    return prefix


def is_under(key: str, prefix: str) -> bool:
    """Whether `key` is inside the folder-like `prefix` (a checked one; empty: the whole store)."""
    return not prefix or key.startswith(prefix + "/")


def new_key(prefix: str, filename: str | None) -> str:
    """`prefix/<random>.<original extension>`, as the original service named uploads."""
    extension = ""
    if filename:
        suffix = filename.replace("\\", "/").rsplit("/", 1)[-1]
        _, dot, ext = suffix.rpartition(".")
        if dot and _EXTENSION.fullmatch("." + ext) and suffix != "." + ext:
            extension = "." + ext
    name = uuid.uuid4().hex + extension
    key = f"{prefix}/{name}" if prefix else name
    return check_key(key)  # a long prefix plus the name can still exceed the limit


def content_type(key: str) -> str:
    guessed, _ = mimetypes.guess_type(key, strict=False)
    return guessed or "application/octet-stream"


def original_name(filename: str | None) -> str | None:
    """The name an uploaded file had on the uploader's machine, as recorded beside its key: its
    last path segment (a browser may send `C:\\dir\\x.csv`), without control characters, at most
    `MAX_SEGMENT_BYTES` long; None when nothing is left of it."""
    if not filename:
        return None
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(char for char in name if ord(char) >= 0x20 and ord(char) != 0x7F).strip()
    name = name.encode("utf-8")[:MAX_SEGMENT_BYTES].decode("utf-8", "ignore")
    return name if name not in ("", ".", "..") else None


def content_disposition(key: str, filename: str | None = None) -> str:
    """`attachment` named `filename`, else the key's last segment, also when the name is not
    ASCII (RFC 6266: an ASCII `filename` for old clients, the UTF-8 `filename*` of RFC 5987)."""
    name = filename or key.rsplit("/", 1)[-1]
    ascii_name = name.encode("ascii", "replace").decode("ascii")
    ascii_name = ascii_name.replace('"', "_").replace("\\", "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"
