"""How much Optuna says: per-trial INFO lines and tracebacks with -v; warnings without tracebacks otherwise."""

from __future__ import annotations

import logging
import re


class _NoTraceback(logging.Filter):
    """Optuna logs a failed trial's traceback (Ctrl-C included); without -v the promise is one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = None
        record.exc_text = None
        return True


class _QuietInterrupt(logging.Filter):
    """A Ctrl-C fails the running trial and Optuna says so in two warning lines; the CLI re-queues that
    trial and says "interrupted" itself, so without -v both lines are dropped (other failures stay)."""

    def __init__(self) -> None:
        super().__init__()
        self.interrupted: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        m = re.match(r"Trial (\d+) failed with (parameters|value)", msg)
        if m is None:
            return True
        if m.group(2) == "parameters" and "KeyboardInterrupt" in msg:
            self.interrupted.add(m.group(1))
            return False
        return not (m.group(2) == "value" and m.group(1) in self.interrupted)


def configure_logging(*, verbose: bool) -> None:
    """Optuna's per-trial INFO lines and tracebacks with -v; warnings without tracebacks otherwise."""
    import optuna  # here, not at the top: `mnist-study --help` must not import it

    optuna.logging.set_verbosity(logging.INFO if verbose else logging.WARNING)
    if verbose:
        return
    for handler in logging.getLogger("optuna").handlers:
        if not any(isinstance(f, _NoTraceback) for f in handler.filters):
            handler.addFilter(_NoTraceback())
            handler.addFilter(_QuietInterrupt())
