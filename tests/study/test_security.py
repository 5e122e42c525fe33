"""Security basics: the dashboard listens on loopback only by default, and no password is printed."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from study.storage import open_storage, redact
from tests.study.workers import cli_env


def _listening(port: int) -> list[str]:
    """Local addresses (hex, as the kernel lists them) of TCP sockets listening on `port`."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A = LISTEN
                found.append(local.rsplit(":", 1)[0])
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc/net/tcp to see bind addresses")
def test_dashboard_binds_loopback_only_and_hides_the_password(tmp_path: Path, postgres_url: str) -> None:
    open_storage(postgres_url).engine.dispose()  # Optuna's tables: the dashboard itself creates nothing
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "study", "dashboard", "--storage", postgres_url, "--port", str(port)],
        cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while not _listening(port) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        addresses = _listening(port)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert addresses == ["0100007F"], (addresses, out)  # 127.0.0.1, and nothing else
    password = sa.engine.make_url(postgres_url).password
    assert password and password not in out
    assert redact(postgres_url) in out


def test_redact_hides_every_password() -> None:
    assert redact("postgresql+psycopg://u:pa%40ss@h:5432/db") == "postgresql+psycopg://u:***@h:5432/db"
    assert "secret" not in redact("mysql://root:secret@localhost/x")
    assert "secret" not in redact("postgresql://u:secret@[::1:bad")  # unparseable: nothing of it is shown


def test_no_unsafe_model_loading_in_the_code() -> None:
    """Any model file is loaded with torch.load(weights_only=True) (or safetensors): never unpickled."""
    root = Path(__file__).resolve().parents[2]
    offenders = []
    for path in [*root.glob("mnist_fc/**/*.py"), *root.glob("study/**/*.py"), *root.glob("bench/**/*.py")]:
        for no, line in enumerate(path.read_text().splitlines(), 1):
            if "torch.load(" in line and "weights_only=True" not in line:
                offenders.append(f"{path.relative_to(root)}:{no}: {line.strip()}")
    assert not offenders, offenders
