"""The one family of errors the CLI reports as a single line and exit 2; anything else is a bug."""

from __future__ import annotations

import errno
import re

from mnist_fc.errors import ConfigError, DataError, MnistFcError


class UserError(Exception):
    """Something the user can fix: a bad argument, an unreachable storage, a missing study."""


# What `mnist-study` turns into "error: ..." and exit 2. mnist_fc never imports study, so its
# own user errors (DataError, ConfigError) share a base of their own.
USER_ERRORS: tuple[type[Exception], ...] = (UserError, MnistFcError)

__all__ = ["USER_ERRORS", "ConfigError", "DataError", "MnistFcError", "UserError", "environment_error", "path_error"]


# Failures of the machine, not of mnist-study: a full disk, a read-only or vanished database file.
# They reach us wrapped in whatever layer was writing (SQLAlchemy, sqlite3, Optuna, torch.save), so
# they are recognised by the operating system's words in the message chain.
_ENVIRONMENT = (
    ("database or disk is full", "the disk holding the storage is full"),
    ("no space left on device", "the disk is full"),
    ("attempt to write a readonly database", "the storage is read-only"),
    ("read-only file system", "the file system is read-only"),
    ("disk i/o error", "the disk reported an I/O error"),
    (
        "unable to open database file",
        "the storage file can no longer be opened (deleted, moved, or its folder read-only)",
    ),
    ("database is locked", "another program held the storage's lock longer than SQLite's busy timeout (60 s)"),
)


# A database server that went away mid-run, or a role that may read but not write: the server's words
# (psycopg, through SQLAlchemy and Optuna's StorageInternalError, often under an UnboundLocalError that
# Optuna raises while cleaning up) name the cause; nothing in mnist-study failed.
_SERVER_LOST = (
    "connection refused",
    "server closed the connection unexpectedly",
    "terminating connection due to administrator command",
    "connection is closed",
    "consuming input failed",
    "connection is lost",
    "could not receive data from server",
)
_LOST = (
    "lost the connection to the database server ({}); a trial it was running stays RUNNING until its heartbeat "
    "goes stale, and the next run fails and re-queues it. Rerun when the server is back: --until-complete N "
    "resumes the study"
)
_DENIED = (
    "the database refused a write ({}): this role may read the study (best, report, export) but not run "
    "trials in it; nothing was written"
)


def environment_error(e: BaseException) -> str | None:
    """A one-line explanation when `e` (or an exception it wraps) is the machine's fault, else None."""
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        text = str(cur).lower()
        if _out_of_memory(cur, text):
            return _MEMORY.format("GPU" if "cuda" in text else "CPU")
        for needle, meaning in _ENVIRONMENT:
            if needle in text:
                return (
                    f"{meaning}; the trial it was running is marked FAILED and re-queued with its params (or, if "
                    "even that could not be written, by the next run). Fix it, then rerun: --until-complete N "
                    "resumes the study"
                )
        line = next((ln.strip() for ln in str(cur).splitlines() if ln.strip()), "")
        if any(needle in text for needle in _SERVER_LOST):
            return _LOST.format(_server_words(line))
        if "permission denied for" in text:
            return _DENIED.format(_server_words(line))
        cur = cur.__cause__ or cur.__context__
    return None


# torch.OutOfMemoryError (CUDA), the CPU allocator's RuntimeError, Python's MemoryError.
_MEMORY_WORDS = ("out of memory", "can't allocate memory", "cannot allocate memory", "failed to allocate")
_MEMORY = (
    "out of {} memory: the run needs more than this machine has; use smaller widths, fewer --batch-trials, "
    "a smaller --train-size or minibatches (--batch-size). A trial it was running is marked FAILED"
)


def _out_of_memory(e: BaseException, text: str) -> bool:
    return isinstance(e, MemoryError) or type(e).__name__ == "OutOfMemoryError" or any(w in text for w in _MEMORY_WORDS)


def _server_words(line: str) -> str:
    """The driver's message without SQLAlchemy's class prefix and trailing SQL: 'connection refused'."""
    line = re.sub(r"^\([\w.]+\)\s*", "", line)  # "(psycopg.OperationalError) ..."
    return line[:160]


# A file or folder the user named that cannot be read or written: the path and the system's words are
# the whole story (a --out on a read-only or virtual file system, a folder where a file belongs).
_PATH_ERRNOS = {
    errno.ENOENT, errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR, errno.EROFS, errno.EEXIST,
    errno.ENAMETOOLONG, errno.ELOOP,
}  # fmt: skip


def path_error(e: BaseException) -> str | None:
    """`PATH: reason` when `e` is the operating system refusing a named path, else None."""
    if not isinstance(e, OSError) or e.errno not in _PATH_ERRNOS or e.filename is None:
        return None
    where = f"{e.filename} -> {e.filename2}" if e.filename2 is not None else f"{e.filename}"
    return f"{where}: {e.strerror or e}"
