"""Errors a user can fix: the CLI prints them as one line, never as a traceback."""


class DataError(ValueError):
    """A data file is missing, corrupt, or not in the expected format."""
