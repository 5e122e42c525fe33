"""Errors the CLI reports as one line and a non-zero exit."""


class UserError(Exception):
    """Something the user can fix: a bad argument, an unreachable storage, a missing study."""
