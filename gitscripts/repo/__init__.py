from gitscripts.repo.repository import (
    LANDING_REF,
    MAIN_REF,
    Author,
    CommitResult,
    Edits,
    Existing,
    Landing,
    Listing,
    Repository,
)

__all__ = [
    "LANDING_REF",
    "MAIN_REF",
    "Author",
    "CommitResult",
    "Edits",
    "Existing",
    "Landing",
    "Listing",
    "Repository",
]
