from gitscripts.repo.repository import (
    MAIN_REF,
    Author,
    CommitResult,
    Edits,
    Existing,
    Listing,
    Repository,
)

__all__ = ["MAIN_REF", "Author", "CommitResult", "Edits", "Existing", "Listing", "Repository"]
