"""How much Optuna says: per-trial INFO lines and tracebacks with -v; warnings without tracebacks otherwise."""

from __future__ import annotations

import logging


class _NoTraceback(logging.Filter):
    """Optuna logs a failed trial's traceback (Ctrl-C included); without -v the promise is one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = None
        record.exc_text = None
        return True


def configure_logging(*, verbose: bool) -> None:
    """Optuna's per-trial INFO lines and tracebacks with -v; warnings without tracebacks otherwise."""
    import optuna  # here, not at the top: `mnist-study --help` must not import it

    optuna.logging.set_verbosity(logging.INFO if verbose else logging.WARNING)
    if verbose:
        return
    for handler in logging.getLogger("optuna").handlers:
        if not any(isinstance(f, _NoTraceback) for f in handler.filters):
            handler.addFilter(_NoTraceback())
