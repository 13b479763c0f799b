"""Short-lived download links: a file's URL that works without an Authorization header.

A browser downloads a file best by following a link: it streams the bytes to disk and shows its own
progress, where fetching with a token first would hold the whole file in the page's memory. A link
is signed by the service (HMAC with the service's secret) for one key and a short lifetime; it
carries no user and grants nothing but reading that file until it expires. Signed, not stored, so
it survives a restart and costs nothing to keep.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
import time

_PURPOSE = b"gitscripts file download link\x00"
# Exactly what `issue` writes: Unix seconds, a dot, an unpadded base64url SHA-256. Anything else is
# refused before it is parsed (no other digits, no giant numbers, no non-ASCII to compare).
_LINK = re.compile(r"([1-9][0-9]{0,11})\.([A-Za-z0-9_-]{43})")


class DownloadLinks:
    def __init__(self, secret: str, lifetime_seconds: int) -> None:
        self._secret = secret.encode()
        self.lifetime_seconds = lifetime_seconds

    def _signature(self, key: str, expires: int) -> str:
        message = _PURPOSE + f"{expires}\x00{key}".encode()
        digest = hmac.new(self._secret, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def issue(self, key: str) -> tuple[str, int]:
        """The `link` value for `key`, and when (Unix seconds) it stops working: never sooner
        than the lifetime (rounded up, not down, to the second)."""
        expires = math.ceil(time.time()) + self.lifetime_seconds
        return f"{expires}.{self._signature(key, expires)}", expires

    def valid(self, link: str, key: str) -> bool:
        parts = _LINK.fullmatch(link)
        if parts is None or int(parts[1]) < time.time():
            return False
        expected = self._signature(key, int(parts[1]))
        return hmac.compare_digest(parts[2].encode(), expected.encode())
