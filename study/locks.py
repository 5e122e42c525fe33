"""One writer at a time for a long job's outputs: two `final`s naming the same model files or checkpoints.

Without it two `final`s with the same --out and --name both trained for hours and the last to finish
silently replaced the other's files, and two sharing a --checkpoint-dir wrote the same seed's checkpoint
turn about. The lock is an advisory `flock` on a file named after the output's resolved path, kept in the
temporary folder, not beside the output: a command that fails early leaves the output folder untouched.
The kernel drops a flock when its holder dies, so a killed `final` never blocks the next one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from study.errors import UserError

try:
    import fcntl
except ImportError:  # not POSIX: no locking, as before
    fcntl = None  # type: ignore[assignment]


def lock_path(target: str | Path) -> Path:
    """The lock file for `target`: one per resolved path, so `models/x` and `./models/../models/x` share it."""
    key = str(Path(target).expanduser().resolve())
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:32]
    folder = Path(tempfile.gettempdir()) / f"mnist-study-locks-{os.getuid() if hasattr(os, 'getuid') else 0}"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder / f"{digest}.lock"


def _holder(fd: int) -> str:
    with contextlib.suppress(OSError, ValueError):
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
        if text.isdigit():
            return f" (pid {text})"
    return ""


def _acquire(target: Path, what: str) -> int:
    path = lock_path(target)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise UserError(
                f"{what} {target} is being written by another mnist-study process{holder}; "
                "wait for it to end, or choose another name"
            ) from None
        try:  # the previous holder may have removed the file between our open and our lock: retry on a new one
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    return fd


@contextlib.contextmanager
def exclusive(targets: Sequence[tuple[str | Path, str]]) -> Iterator[None]:
    """Hold a lock on each (target, what) for the block; UserError naming the first one another process holds.

    `what` names the target in the error ("model", "checkpoint"). All or none: a refusal releases the
    locks already taken.
    """
    if fcntl is None:
        yield
        return
    held: list[tuple[Path, int]] = []
    try:
        for target, what in targets:
            fd = _acquire(Path(target), what)
            held.append((lock_path(target), fd))
        yield
    finally:
        for path, fd in reversed(held):
            with contextlib.suppress(OSError):
                path.unlink()  # before unlocking: a waiter that opened it re-checks the inode and retries
            os.close(fd)
