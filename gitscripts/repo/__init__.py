from gitscripts.repo.repository import (
    MAIN_REF,
    Author,
    CommitResult,
    Edits,
    Existing,
    Landing,
    Listing,
    Plan,
    Repository,
)

__all__ = [
    "MAIN_REF",
    "Author",
    "CommitResult",
    "Edits",
    "Existing",
    "Landing",
    "Listing",
    "Plan",
    "Repository",
]
