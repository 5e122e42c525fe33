"""Ctrl-C that always stops the command, even when it lands where Python swallows it.

A KeyboardInterrupt raised inside a weakref callback or a __del__ is printed as "Exception
ignored ..." (a traceback) and dropped, and the study then runs on. The handler below records
every Ctrl-C; `check()` at trial boundaries raises the one that was swallowed, and the
unraisable hook keeps its traceback off the screen.

One that lands inside a library's cleanup can come out as another error that the library's own
`finally` raised over it: Optuna's trial loop, cut inside its tell, reads a local the Ctrl-C left unset
and raises UnboundLocalError. `caused()` recognises such an error by the KeyboardInterrupt in its chain.

One that lands while SQLAlchemy's pool closes or resets a connection is logged by SQLAlchemy
with its traceback ("Exception closing connection ...") and then re-raised: the re-raised one
stops the command as usual, and a filter drops the logged copy (tests ran into it on a loaded CPU).

Worst is one that cuts a SQLite transaction half-way and is then swallowed in the cleanup: the
connection it left open keeps the write lock, every later query waits out the busy timeout
(60 s, three times) and fails "database is locked", and the interrupted trial is left RUNNING.
So a Ctrl-C that arrives while the main thread is inside database code (SQLAlchemy, sqlite3,
psycopg, Optuna's storages) is not raised there: the signal is sent again a moment later, and
raised once it lands outside (queries take milliseconds; after DEFER_LIMIT tries it is raised anyway).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from types import FrameType

_pending = False
_deferred = 0
DATABASE_MODULES = ("sqlalchemy", "sqlite3", "psycopg", "optuna.storages", "study.storage", "study.curves")
DEFER_S = 0.02  # the signal comes again this much later while the main thread is in database code
DEFER_LIMIT = 250  # 5 s of deferring at most: then it is raised wherever it lands


def _in_database_code(frame: FrameType | None) -> bool:
    while frame is not None:
        if frame.f_globals.get("__name__", "").startswith(DATABASE_MODULES):
            return True
        frame = frame.f_back
    return False


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    global _pending, _deferred
    _pending = True
    if _deferred < DEFER_LIMIT and _in_database_code(frame):
        _deferred += 1
        again = threading.Timer(DEFER_S, os.kill, (os.getpid(), signal.SIGINT))
        again.daemon = True
        again.start()
        return
    _deferred = 0
    raise KeyboardInterrupt


def _as_ctrl_c(signum: int, frame: FrameType | None) -> None:
    """SIGTERM / SIGHUP: the Ctrl-C path (held out of database code, trial re-queued, workers told).

    A command started in a script's background (`cmd &` without job control) has Ctrl-C ignored, so a
    terminal's Ctrl-C does not reach it; a `kill` still must stop it cleanly: Ctrl-C is handled from here on."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, _on_sigint)
    os.kill(os.getpid(), signal.SIGINT)


def _unraisable(u: sys.UnraisableHookArgs) -> None:
    if u.exc_type is not None and issubclass(u.exc_type, KeyboardInterrupt):
        return  # recorded by _on_sigint; check() raises it where it can be handled
    sys.__unraisablehook__(u)


def _not_an_interrupt(record: logging.LogRecord) -> bool:
    exc_type = record.exc_info[0] if record.exc_info else None
    return not (exc_type is not None and issubclass(exc_type, KeyboardInterrupt))


class _LibraryErrors(logging.StreamHandler):
    """stderr, "%(message)s", WARNING and up: what Python's last-resort handler prints for a library
    with no logging configured, less the log records of a Ctrl-C that is re-raised anyway."""

    def __init__(self) -> None:
        super().__init__()
        self.setLevel(logging.WARNING)
        self.addFilter(_not_an_interrupt)


def install() -> None:
    """Use in the main thread of a command (or a worker process) before its work starts."""
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:  # started with Ctrl-C ignored (a script's
        signal.signal(signal.SIGINT, _on_sigint)  # background job): keep it so, but `kill` still stops cleanly
    for stop in (signal.SIGTERM, signal.SIGHUP):  # `kill`, a closed terminal: stop as a Ctrl-C stops, not
        if signal.getsignal(stop) is signal.SIG_DFL:  # dead mid-trial (a --jobs parent's workers ran on)
            signal.signal(stop, _as_ctrl_c)
    sys.unraisablehook = _unraisable
    sqlalchemy = logging.getLogger("sqlalchemy")
    if not any(isinstance(h, _LibraryErrors) for h in sqlalchemy.handlers):
        sqlalchemy.addHandler(_LibraryErrors())


def caused(e: BaseException) -> bool:
    """True when `e` is a KeyboardInterrupt, was raised while one was propagating (its context chain), or
    follows a Ctrl-C that was swallowed on the way (SQLAlchemy cleaning up a connection the Ctrl-C cut
    mid-transaction, whose lock then fails the next query with "database is locked")."""
    if _pending:
        return True
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, KeyboardInterrupt):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


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


def exit_with_parent(*, poll_s: float = 1.0, grace_s: float = 60.0) -> None:
    """In a worker process: once the process that started it is gone (kill -9 of a `--jobs` parent), stop
    as a Ctrl-C stops (trial re-queued, checkpoint kept) instead of training on as an orphan whose rerun
    would race it for the same checkpoints; still alive `grace_s` later, exit.

    Call it in the worker's main thread. The parent is the process that spawned it (multiprocessing knows
    its pid): read with getppid() here, a parent killed while the worker was still importing was already
    gone, and the worker watched init instead, training on."""
    import multiprocessing

    spawner = multiprocessing.parent_process()
    parent = spawner.pid if spawner is not None and spawner.pid else os.getppid()
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGINT) in (
        signal.SIG_IGN,
        signal.SIG_DFL,
    ):  # a worker started with Ctrl-C ignored would drop the SIGINT sent below; held out of database code
        signal.signal(signal.SIGINT, _on_sigint)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(grace_s)
        os._exit(130)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
