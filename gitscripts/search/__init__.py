"""Searching the scripts' code at a revision, with git's own search over the tree."""
