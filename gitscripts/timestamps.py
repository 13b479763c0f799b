"""How times are written: ISO 8601 in UTC with a `Z`, as the original API wrote them.

Two forms, each defined once here: a moment the service records (to the microsecond; stored
times of this form compare correctly as strings), and a Unix time to the second (git's
resolution: commits, tags, link expiries).
"""

from __future__ import annotations

from datetime import UTC, datetime


def iso_moment(moment: datetime) -> str:
    """`moment` (an aware time in UTC) to the microsecond."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def utc_now() -> str:
    return iso_moment(datetime.now(UTC))


def iso_seconds(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
