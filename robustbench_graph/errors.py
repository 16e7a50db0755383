"""The one project exception: the CLI turns it into a one-line message and exit status 1."""


class RbgError(Exception):
    """A user-facing error with a readable one-line message."""
