from gitscripts.index.accounts import InviteRecord, Person, TokenRecord, UserRecord
from gitscripts.index.entries import Entries, Entry, EntryKind
from gitscripts.index.files import FileRecord
from gitscripts.index.store import Index

__all__ = [
    "Entries",
    "Entry",
    "EntryKind",
    "FileRecord",
    "Index",
    "InviteRecord",
    "Person",
    "TokenRecord",
    "UserRecord",
]
