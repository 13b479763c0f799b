from gitscripts.index.store import Entry, EntryKind, Index, utc_now

__all__ = ["Entry", "EntryKind", "Index", "utc_now"]
