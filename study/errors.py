"""The one family of errors the CLI reports as a single line and exit 2; anything else is a bug."""

from __future__ import annotations

from mnist_fc.errors import ConfigError, DataError, MnistFcError


class UserError(Exception):
    """Something the user can fix: a bad argument, an unreachable storage, a missing study."""


# What `mnist-study` turns into "error: ..." and exit 2. mnist_fc never imports study, so its
# own user errors (DataError, ConfigError) share a base of their own.
USER_ERRORS: tuple[type[Exception], ...] = (UserError, MnistFcError)

__all__ = ["USER_ERRORS", "ConfigError", "DataError", "MnistFcError", "UserError"]
