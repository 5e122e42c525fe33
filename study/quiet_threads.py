"""A failure in Optuna's heartbeat thread prints no traceback.

`study.optimize` beats from a thread of Optuna's (`HeartbeatThread`). When the storage fails under it
(a full disk, a database gone), that thread died with a traceback printed beside the command's own
one-line error for the same cause (seen on a full tmpfs under load). The trial's own thread writes to
the same storage and reports the problem; a trial that misses beats goes stale and is re-queued.
"""

from __future__ import annotations

import threading

OPTUNA_THREAD = "(_record_heartbeat)"  # the end of the name Python gives the thread of Optuna's HeartbeatThread


def _quiet_heartbeat_errors(args: threading.ExceptHookArgs) -> None:
    name = args.thread.name if args.thread is not None else ""
    if args.exc_type is not None and issubclass(args.exc_type, Exception) and name.endswith(OPTUNA_THREAD):
        return
    threading.__excepthook__(args)


def install() -> None:
    """Use before a command's work starts (from any thread): other threads' errors print as usual."""
    threading.excepthook = _quiet_heartbeat_errors
