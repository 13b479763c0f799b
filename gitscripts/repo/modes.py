"""Git's file modes, named by what they are here: the one table every reader of a tree uses.

The numbers are git's own (a tree entry's mode, as `git ls-tree` prints it in octal).
"""

from __future__ import annotations

FOLDER = 0o040000
FILE = 0o100644
EXECUTABLE = 0o100755
SYMLINK = 0o120000
SUBMODULE = 0o160000  # a "gitlink": another repository's commit

# What holds a file's bytes: what is listed, checked out and run. Symlinks and submodules never are.
FILE_MODES = frozenset({FILE, EXECUTABLE})
# What git stores as a blob: a file's bytes, or a symlink's target.
BLOB_MODES = frozenset({FILE, EXECUTABLE, SYMLINK})
