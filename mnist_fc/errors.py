"""Errors a user can fix: the CLI prints them as one line, never as a traceback."""


class DataError(ValueError):
    """A data file is missing, corrupt, or not in the expected format."""


class ModelFileError(ValueError):
    """A saved model (safetensors, JSON or ONNX) is missing, unreadable or does not describe a valid network."""
