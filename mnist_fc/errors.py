"""Errors a user can fix: the CLI prints them as one line (exit 2), never as a traceback.

Anything else raised inside `mnist_fc` is a bug. The subclasses are also ValueErrors, so
code written against the older `except ValueError` keeps working.
"""


class MnistFcError(Exception):
    """Base of every user-fixable error raised by `mnist_fc`."""


class DataError(MnistFcError, ValueError):
    """A data file is missing, corrupt, or not in the expected format."""


class ModelFileError(MnistFcError, ValueError):
    """A saved model (safetensors, JSON or ONNX) is missing, unreadable or does not describe a valid network."""


class ConfigError(MnistFcError, ValueError):
    """A configuration value that cannot be trained (raised by `mnist_fc.config.validate`)."""
