"""The file store behind `/api/v1/files`: one fsspec file system, local or S3."""
