"""Output files written whole or not at all, and never through a link onto another file.

Every output goes to a fresh temporary name beside its target and is then renamed over it
(os.replace). Two promises follow: a failed or interrupted write leaves the old file (or none),
never half a file; and a target that is a symlink or a hard link to something else (a study
database, an input) has only its own name replaced, so the file it pointed to is untouched.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _umask() -> int:
    """The process umask without changing it (os.umask would, briefly, for every thread)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _sweep(folder: Path, prefix: str) -> None:
    """Remove what a writer killed mid-write (kill -9, power loss) left under `prefix` + its pid: a
    temporary file (a checkpoint's is as large as the model) or a staging folder. Only a dead writer's:
    another process writing the same target right now keeps its own."""
    try:
        names = [n for n in os.listdir(folder) if n.startswith(prefix)]
    except OSError:
        return
    for name in names:
        pid = name[len(prefix) :].split(".", 1)[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        leftover = folder / name
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` to write; on success it is renamed onto `path`.

    The file gets the mode a plain open() would give it (0644 under the usual umask; temporary
    files start at 0600). On any error, or Ctrl-C, the temporary file is removed and `path` is
    as it was.
    """
    path = Path(path)
    _sweep(path.parent, f".{path.name}.")
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=path.suffix or ".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        tmp.chmod(0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> Path:
    """`path.write_text(text)`, but whole or not at all, and never through a link (see `replacing`)."""
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def with_suffix(stem: str | Path, suffix: str) -> Path:
    """`stem` + `suffix`, keeping any dot already in the stem (`final.v1` -> `final.v1.onnx`, where
    Path.with_suffix would give `final.onnx` and overwrite another model's files)."""
    stem = Path(stem)
    return stem.with_name(stem.name + suffix)


@contextmanager
def staged(folder: str | Path) -> Iterator[Path]:
    """Yield a fresh hidden folder inside `folder` to write several files into; on success each is
    renamed onto its name in `folder` (as `replacing` does one), and the hidden folder always goes.

    A command that fails half-way (a figure export that breaks) leaves `folder` as it was.
    """
    folder = Path(folder)
    _sweep(folder, ".mnist-study-")
    stage = Path(tempfile.mkdtemp(prefix=f".mnist-study-{os.getpid()}.", dir=folder))
    try:
        yield stage
        mode = 0o666 & ~_umask()
        for f in sorted(stage.iterdir()):
            f.chmod(mode)
            os.replace(f, folder / f.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
