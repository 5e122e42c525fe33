"""The real optuna-dashboard, served by `mnist-study dashboard`, answering over HTTP on loopback."""

import json
import socket
import subprocess
import sys
import time
import urllib.request

from tests.conftest import REPO


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dashboard_serves_the_study(cli, tmp_path):
    assert (
        cli(
            "run",
            "--trials",
            "1",
            "--storage",
            "sqlite:///d.db",
            "--study-name",
            "dash",
            "--epochs",
            "10",
            "--train-size",
            "300",
            "--device",
            "cpu",
            "--no-progress",
        ).returncode
        == 0
    )
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "study", "dashboard", "--storage", "sqlite:///d.db", "--port", str(port)],
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        body = None
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2) as resp:
                    body = json.loads(resp.read())
                break
            except OSError:
                time.sleep(0.2)
        assert body is not None, "dashboard did not answer"
        assert [s["study_name"] for s in body["study_summaries"]] == ["dash"]
        # The trial carries its curves in system attributes: the dashboard serves it and does not show them.
        study_id = body["study_summaries"][0]["study_id"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/{study_id}", timeout=30) as resp:
            detail = resp.read().decode()
        assert len(json.loads(detail)["trials"]) == 1
        assert "mnist_study:curves" not in detail
        # Bound to loopback only by default.
        out = subprocess.run(["ss", "-ltn"], capture_output=True, text=True, check=False).stdout
        if out:
            assert f"127.0.0.1:{port}" in out and f"0.0.0.0:{port}" not in out
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_taken_port_or_unknown_host_is_one_line_and_nothing_else(cli, tmp_path):
    """optuna-dashboard's server prints that it is listening before it finds the port taken: the command
    checks first, so the user reads the one reason, not a banner that is not true."""
    from shutil import copy

    copy(REPO / "studies.db", tmp_path / "s.db")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = cli("dashboard", "--storage", "sqlite:///s.db", "--port", str(port), timeout=60)
        assert r.returncode == 2 and r.stdout == "", (r.stdout, r.stderr)
        expected = f"mnist-study dashboard: error: cannot serve on 127.0.0.1:{port}: Address already in use"
        assert r.stderr.strip() == expected
        # "localhost" is checked as the server binds it (IPv4 unless the host has a colon), not as ::1
        r = cli("dashboard", "--storage", "sqlite:///s.db", "--host", "localhost", "--port", str(port), timeout=60)
        assert r.returncode == 2 and r.stdout == "" and "Address already in use" in r.stderr, (r.stdout, r.stderr)
    r = cli("dashboard", "--storage", "sqlite:///s.db", "--host", "no-such-host.invalid", timeout=60)
    assert r.returncode == 2 and r.stdout == "" and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "cannot serve on no-such-host.invalid" in r.stderr
