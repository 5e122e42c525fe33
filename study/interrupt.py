"""Ctrl-C that always stops the command, even when it lands where Python swallows it.

A KeyboardInterrupt raised inside a weakref callback or a __del__ is printed as "Exception
ignored ..." (a traceback) and dropped, and the study then runs on. The handler below records
every Ctrl-C; `check()` at trial boundaries raises the one that was swallowed, and the
unraisable hook keeps its traceback off the screen.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType

_pending = False


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    global _pending
    _pending = True
    raise KeyboardInterrupt


def _unraisable(u: sys.UnraisableHookArgs) -> None:
    if u.exc_type is not None and issubclass(u.exc_type, KeyboardInterrupt):
        return  # recorded by _on_sigint; check() raises it where it can be handled
    sys.__unraisablehook__(u)


def install() -> None:
    """Use in the main thread of a command (or a worker process) before its work starts."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        return  # started with Ctrl-C ignored (a worker still starting up, or `nohup`): keep it so
    signal.signal(signal.SIGINT, _on_sigint)
    sys.unraisablehook = _unraisable


def check() -> None:
    """Raise the KeyboardInterrupt of a Ctrl-C that Python swallowed (see the module docstring)."""
    global _pending
    if _pending:
        _pending = False
        raise KeyboardInterrupt


def handled() -> None:
    """The Ctrl-C reached a handler: nothing left to raise."""
    global _pending
    _pending = False
