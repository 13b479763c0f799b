"""Script dependencies: PEP 723 blocks, their locks, and the environments built from them."""
