"""Bad command lines, fuzzed: one clear line naming the problem, a non-zero exit, no traceback,
no password echoed, and the existing study exactly as it was."""

from __future__ import annotations

import json
import sqlite3
import string
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from study.cli import main
from study.errors import UserError
from study.storage import MAX_STUDY_NAME, check_study_name
from tests.study.workers import TINY, cli_env

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
_DIR = Path(tempfile.mkdtemp(prefix="mnist-cli-fuzz-"))
DB = _DIR / "kept.db"
URL = f"sqlite:///{DB}"


def _dump() -> list[str]:
    conn = sqlite3.connect(DB)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


@pytest.fixture(scope="module", autouse=True)
def kept_study() -> list[str]:
    """A real one-trial study that no bad command may change."""
    if not DB.exists():
        assert main(["run", "--storage", URL, "--study-name", "kept", "--trials", "1", *TINY, "--epochs", "5"]) == 0
    return _dump()


def _fails_cleanly(argv: list[str], *, must_name: tuple[str, ...] = (), secret: str | None = None) -> str:
    """Run the CLI in-process on a bad command line; return its one error line."""
    before = _dump()
    cap_out, cap_err = _Capture(), _Capture()
    old = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = cap_out, cap_err
    try:
        try:
            rc = main(argv)
        except SystemExit as e:  # argparse
            rc = e.code
    finally:
        sys.stdout, sys.stderr = old
    err = cap_err.text.strip()
    assert rc not in (0, None), f"{argv} succeeded: {cap_out.text}"
    assert len(err.splitlines()) == 1, f"{argv}: {err}"
    assert "Traceback" not in err and "internal error" not in err, f"{argv}: {err}"
    assert any(word in err for word in must_name) or not must_name, f"{argv}: {err}"
    if secret:
        assert secret not in err + cap_out.text
    assert _dump() == before, f"{argv} changed the study"
    return err


class _Capture:
    def __init__(self) -> None:
        self.text = ""

    def write(self, s: str) -> int:
        self.text += s
        return len(s)

    def flush(self) -> None:
        pass


RUN = ["run", "--storage", URL, "--study-name", "kept", *TINY]
# flag -> (smallest, largest or None) accepted
BOUNDS = {
    "--trials": (1, None),
    "--until-complete": (1, None),
    "--epochs": (1, 10_000_000),
    "--eval-every": (1, 10_000_000),
    "--seed": (0, 2**32 - 1),
    "--heartbeat": (1, None),
    "--grace": (1, None),
    "--train-size": (1, None),
}


@st.composite
def bad_number(draw: st.DrawFn) -> tuple[str, str]:
    flag = draw(st.sampled_from(sorted(BOUNDS)))
    low, high = BOUNDS[flag]
    options = [
        st.integers(max_value=low - 1).map(str),
        st.sampled_from(["", "1.5", "1e3", "ten", "0x10", "nan", "inf", "--", "١٢", "1_0"]),  # 1_0: int() says 10
        st.text(alphabet=string.ascii_letters + " ,;", min_size=1),
    ]
    if high is not None:
        options.append(st.integers(min_value=high + 1).map(str))
    return flag, draw(st.one_of(options))


@FUZZ
@given(bad_number())
def test_out_of_range_or_non_numeric_arguments(case: tuple[str, str]) -> None:
    flag, value = case
    _fails_cleanly([*RUN, f"{flag}={value}"], must_name=(flag,))


@FUZZ
@given(st.sampled_from(["--device", "--precision", "--space"]), st.text(min_size=1, max_size=30))
def test_unknown_choices(flag: str, value: str) -> None:
    if value in ("auto", "cpu", "cuda", "fp32", "bf16", "article"):
        return
    _fails_cleanly([*RUN, f"{flag}={value}"], must_name=("invalid choice",))


def test_small_train_size_grace_and_timeout() -> None:
    _fails_cleanly([*RUN, "--train-size=3"], must_name=("train size",))
    _fails_cleanly([*RUN, "--heartbeat=5", "--grace=5"], must_name=("--grace",))
    _fails_cleanly([*RUN, "--timeout=0"], must_name=("--timeout",))
    _fails_cleanly([*RUN, "--trials=2", "--until-complete=2"], must_name=("not allowed with",))


# A prefix no message contains: Hypothesis also draws the code's own literals, and a bare "postgres"
# as the password was then "leaked" by every message naming the postgresql+psycopg scheme (a .ci/run).
_PASSWORD = st.text(alphabet=string.ascii_letters + string.digits, min_size=5, max_size=13).map(lambda s: "Pw7" + s)


@st.composite
def bad_storage(draw: st.DrawFn) -> tuple[str, tuple[str, ...], str | None]:
    """(url, words one of which the message must contain, a password that must not be printed)."""
    kind = draw(st.sampled_from(["garbage", "scheme", "nodir", "folder", "notsqlite", "refused", "nodriver"]))
    pw = draw(_PASSWORD)
    if kind == "garbage":
        text = draw(st.text(max_size=40).filter(lambda t: "://" not in t))
        return text, ("invalid storage URL",), None
    if kind == "scheme":
        scheme = draw(st.sampled_from(["foo", "http", "redis", "mongodb", "journal"]))
        return f"{scheme}://user:{pw}@127.0.0.1/x", ("unsupported storage backend",), pw
    if kind == "nodir":
        return f"sqlite:///{_DIR}/missing-{draw(st.integers(0, 99))}/s.db", ("does not exist",), None
    if kind == "folder":
        return f"sqlite:///{_DIR}", ("is a folder",), None
    if kind == "notsqlite":
        path = _DIR / "notsqlite.db"
        path.write_bytes(b"this is not a database" * draw(st.integers(1, 300)))
        return f"sqlite:///{path}", ("not a database",), None
    if kind == "refused":  # port 1 on loopback: nothing listens, refused at once
        return f"postgresql+psycopg://study:{pw}@127.0.0.1:1/db", ("Connection refused", "connection failed"), pw
    return f"mysql://study:{pw}@127.0.0.1:1/db", ("driver",), pw


@FUZZ
@given(bad_storage(), st.sampled_from(["run", "best"]))
def test_bad_storage_urls(case: tuple[str, tuple[str, ...], str | None], command: str) -> None:
    url, words, secret = case
    args = RUN[:1] + list(TINY) if command == "run" else ["best"]
    _fails_cleanly([*args, f"--storage={url}", "--study-name=kept"], must_name=words, secret=secret)


@FUZZ
@given(st.text(max_size=600))
def test_study_names(name: str) -> None:
    """Every name is either refused with a reason, or a legal name that simply is not stored yet."""
    if name == "kept":
        return
    try:
        check_study_name(name)
    except UserError as e:
        assert "--study-name" in str(e)
        assert not name.strip() or len(name) > MAX_STUDY_NAME or not name.isprintable()
        _fails_cleanly(["best", f"--storage={URL}", f"--study-name={name}"], must_name=("--study-name",))
        return
    _fails_cleanly(["best", f"--storage={URL}", f"--study-name={name}"], must_name=("no study named",))


def test_an_odd_but_legal_study_name_round_trips(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    name = "ünï cødé 🧪 'quote\" ;DROP TABLE studies;-- %s {}"
    url = f"sqlite:///{tmp_path / 'odd.db'}"
    assert main(["run", f"--storage={url}", f"--study-name={name}", "--trials=1", *TINY, "--epochs=5"]) == 0
    capsys.readouterr()
    assert main(["best", f"--storage={url}", f"--study-name={name}", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["study_name"] == name and record["trial_number"] == 0


def test_bad_csv_through_the_cli(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("5," + ",".join(["300"] * 784) + "\n")
    err = _fails_cleanly([*RUN, f"--train-csv={bad}", f"--test-csv={bad}"], must_name=("outside 0-255",))
    assert str(bad) in err


# A handful of the same cases as real subprocesses: what a user's shell sees.
SUBPROCESS_CASES = [
    (["run", "--storage", "postgresql+psycopg://study:Sup3rS3cret@127.0.0.1:1/db", *TINY], "Connection refused"),
    (["run", "--trials", "0"], "--trials"),
    (["run", "--device", "tpu"], "invalid choice"),
    (["best", "--storage", "sqlite:///nowhere/x.db"], "does not exist"),
]


@pytest.mark.parametrize(("argv", "words"), SUBPROCESS_CASES)
def test_real_cli_process(tmp_path: Path, argv: list[str], words: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "study", *argv], cwd=tmp_path, env=cli_env(), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert words in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "Sup3rS3cret" not in proc.stderr + proc.stdout
    assert not list(tmp_path.iterdir())  # nothing written, not even an empty database


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--train-csv", "", "--test-csv", ""], "--train-csv is empty"),  # an unset shell variable
        (["--train-csv", "a.csv", "--test-csv", " "], "--test-csv is empty"),
        (["--batchnorm", "--batch-size", "1"], "at least 2 images"),
        (["--aug-elastic-sigma", "5"], "needs an elastic alpha"),
        (["--fan-in-scaling", "--init-scaling", "fan_in"], "--fan-in-scaling means"),
    ],
)
def test_flags_that_would_train_other_data_or_be_ignored(argv: list[str], words: str) -> None:
    _fails_cleanly(["train", "--train-size", "200", "--epochs", "1", "--device", "cpu", *argv], must_name=(words,))
    if argv[0] == "--train-csv":  # run's data flags are train's
        _fails_cleanly([*RUN, *argv], must_name=(words,))


def test_evaluate_paths_that_name_no_model(tmp_path: Path) -> None:
    shipped = Path(__file__).resolve().parents[2] / "models" / "accuracy.onnx"
    _fails_cleanly(["evaluate", ""], must_name=("model path is empty",))
    _fails_cleanly(["evaluate", str(shipped), "--test-csv", ""], must_name=("--test-csv is empty",))
    (tmp_path / "notes.bin").write_text("not a model")
    _fails_cleanly(["evaluate", str(tmp_path / "notes.bin")], must_name=("not a model file",))
    (tmp_path / "model.bin").write_bytes(shipped.read_bytes())  # ONNX under another name is still ONNX
    assert main(["evaluate", str(tmp_path / "model.bin")]) == 0
