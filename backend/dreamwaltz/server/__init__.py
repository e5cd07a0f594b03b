"""The job service behind ``dreamwaltz serve``: an HTTP API over an on-disk job queue."""
