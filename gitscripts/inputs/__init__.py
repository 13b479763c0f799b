"""What a script expects as input: read from its code (`schema`), or stated in its metadata."""
