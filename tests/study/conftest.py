"""A real PostgreSQL 15 server for the distributed-study tests, started once per test session.

PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user (in a
temp folder it owns); any other user runs it as themselves. It listens on a free loopback
port, with its unix socket in the temp folder, uses password authentication (so the tests
also see that passwords never reach the output), and is stopped and deleted afterwards.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_BIN = Path(os.environ.get("MNIST_STUDY_PG_BIN", "/usr/lib/postgresql/15/bin"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_server_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """postgresql+psycopg://study:PASSWORD@127.0.0.1:PORT/studies on a fresh server."""
    missing = [b for b in ("initdb", "pg_ctl") if not (PG_BIN / b).is_file()]
    if missing:
        pytest.fail(
            f"PostgreSQL 15 server binaries not found in {PG_BIN} ({', '.join(missing)} missing): install them "
            "(Debian: apt-get install postgresql-15, or scripts/setup.sh --with-system-deps) or set MNIST_STUDY_PG_BIN"
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail("running as root needs a 'postgres' user to run the PostgreSQL server (it refuses root)")
    root = Path(tempfile.mkdtemp(prefix="mnist-study-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    password = secrets.token_urlsafe(12)
    pwfile = root / "pw"
    pwfile.write_text(password + "\n")
    if os.geteuid() == 0:
        shutil.chown(pwfile, "postgres", "postgres")
    data, log = root / "data", root / "server.log"
    port = _free_port()

    def server(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(_as_server_user(list(args)), capture_output=True, text=True, check=False, timeout=120)

    init = server(
        str(PG_BIN / "initdb"), "-D", str(data), "-U", "study", f"--pwfile={pwfile}",
        "--auth=scram-sha-256", "--no-sync", "-E", "UTF8", "--locale=C",
    )  # fmt: skip
    if init.returncode:
        pytest.fail(f"initdb failed: {init.stderr.strip() or init.stdout.strip()}")
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100"
    start = server(str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", opts, "-w", "-t", "60", "start")
    if start.returncode:
        detail = log.read_text()[-2000:] if log.is_file() else start.stderr
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"PostgreSQL did not start: {detail.strip()}")
    try:
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=port, user="study", password=password, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute("CREATE DATABASE studies")
        yield f"postgresql+psycopg://study:{password}@127.0.0.1:{port}/studies"
    finally:
        server(str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)
