from gitscripts.repo.commits import Commit, Tree
from gitscripts.repo.repository import (
    MAIN_REF,
    Author,
    CommitResult,
    Edit,
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
    "Commit",
    "CommitResult",
    "Edit",
    "Edits",
    "Existing",
    "Landing",
    "Listing",
    "Plan",
    "Repository",
    "Tree",
]
