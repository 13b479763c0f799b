"""The single byte range of a `Range` header (RFC 9110, section 14)."""

from __future__ import annotations

from gitscripts import errors


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """`(start, length)` of the one range asked for, or None to send the whole file.

    A header that is absent, malformed, of another unit or asks for several ranges is ignored, as
    RFC 9110 allows (the whole file is the answer); a well-formed range that lies entirely past
    the end raises RangeNotSatisfiable (416).
    """
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash or not (first.isdigit() or first == "") or not (last.isdigit() or last == ""):
        return None
    if first == "":
        if last == "":
            return None
        suffix = int(last)  # the last `suffix` bytes
        if suffix == 0 or size == 0:
            raise errors.RangeNotSatisfiable("The requested range is not satisfiable", size=size)
        return max(0, size - suffix), min(suffix, size)
    start = int(first)
    end = int(last) if last else None
    if end is not None and end < start:
        return None
    if start >= size:
        raise errors.RangeNotSatisfiable("The requested range is not satisfiable", size=size)
    end = size - 1 if end is None else end
    end = min(end, size - 1)
    return start, end - start + 1
