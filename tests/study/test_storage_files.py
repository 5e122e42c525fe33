"""Storage files a study must survive: outputs spelled as the database, damaged and foreign SQLite
files, read-only and immutable files. Every case: exit 2, one line naming the file, and every
file byte for byte as it was. The shipped studies.db is only ever copied, never opened in place."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import sqlite3
import string
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from study.cli import main
from tests.study.workers import cli_env

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "studies.db"
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
_DIR = Path(tempfile.mkdtemp(prefix="mnist-storage-fuzz-"))
QUICK_RUN = ["--trials", "1", "--epochs", "2", "--train-size", "100", "--device", "cpu", "--no-progress"]


def _digest(*paths: Path) -> list[str | None]:
    return [hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else None for p in paths]


def _cli(argv: list[str], capsys: pytest.CaptureFixture, *, cwd: Path | None = None) -> tuple[int, str]:
    old = Path.cwd()
    if cwd:
        os.chdir(cwd)
    try:
        try:
            rc = main(argv)
        except SystemExit as e:
            rc = e.code
    finally:
        os.chdir(old)
    captured = capsys.readouterr()
    return rc, captured.err.strip()


def _one_line_exit_2(rc: int, err: str, *words: str) -> None:
    assert rc == 2, (rc, err)
    assert len(err.splitlines()) == 1 and "Traceback" not in err and "internal error" not in err, err
    assert not words or any(w in err for w in words), err


# --- 1. outputs that are the storage ------------------------------------------------------------------


def test_issue_export_over_its_own_database(tmp_path: Path) -> None:
    """The issue's exact command, as a user's shell runs it."""
    shutil.copy(SHIPPED, tmp_path / "study.csv")
    before = _digest(tmp_path / "study.csv")
    argv = ["export", "--storage", "sqlite:///study.csv", "--out", "study.csv", "--study-name", "reference"]
    proc = subprocess.run(
        [sys.executable, "-m", "study", *argv],
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "study storage" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert _digest(tmp_path / "study.csv") == before


def _spell(kind: str, db: Path, folder: Path, n: int) -> str:
    """Another name for `db` (or one of its SQLite sidecar files)."""
    if kind == "same":
        return db.name
    if kind == "absolute":
        return str(db)
    if kind == "dotdot":
        (folder / "sub").mkdir(exist_ok=True)
        return f"sub/{'../' * 1}{'./' * n}{db.name}"
    if kind == "symlink":
        link = folder / f"link{n}.csv"
        link.unlink(missing_ok=True)
        link.symlink_to(db)
        return link.name
    if kind == "symlink-chain":
        a, b = folder / f"a{n}.csv", folder / f"b{n}.csv"
        for p in (a, b):
            p.unlink(missing_ok=True)
        b.symlink_to(db)
        a.symlink_to(b.name)
        return a.name
    if kind == "hardlink":
        link = folder / f"hard{n}.csv"
        link.unlink(missing_ok=True)
        os.link(db, link)
        return link.name
    raise AssertionError(kind)


@FUZZ
@given(
    st.sampled_from(["same", "absolute", "dotdot", "symlink", "symlink-chain", "hardlink"]),
    st.sampled_from([".csv", ".parquet"]),
    st.integers(0, 3),
)
def test_export_never_writes_over_the_storage(kind: str, suffix: str, n: int) -> None:
    folder = _DIR / f"export-{kind}-{n}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    db = folder / f"study{suffix}"
    shutil.copy(SHIPPED, db)
    out = _spell(kind, db, folder, n)
    before = _digest(db)
    rc, err = _Capture().run(["export", "--storage", f"sqlite:///{db.name}", "--study-name", "reference", "--out", out],
                             cwd=folder)  # fmt: skip
    _one_line_exit_2(rc, err, "study storage")
    assert _digest(db) == before


def test_export_never_uses_an_existing_file_as_its_temporary_one(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The temporary name was fixed (`.t.csv.tmp`): a storage of that name was overwritten, then renamed."""
    db = tmp_path / ".t.csv.tmp"
    shutil.copy(SHIPPED, db)
    before = _digest(db)
    rc, err = _cli(["export", "--storage", f"sqlite:///{db.name}", "--study-name", "reference", "--out", "t.csv"],
                   capsys, cwd=tmp_path)  # fmt: skip
    assert rc == 0, err
    assert _digest(db) == before and (tmp_path / "t.csv").read_text().startswith("number,")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".t.csv")) == [db.name]


@pytest.mark.parametrize("sidecar", ["-wal", "-shm", "-journal"])
def test_sqlite_sidecar_files_are_protected(tmp_path: Path, sidecar: str) -> None:
    from study.errors import UserError
    from study.safety import check_outputs

    with pytest.raises(UserError, match="study storage"):
        check_outputs([tmp_path / "sub" / ".." / f"s.db{sidecar}"], storage=f"sqlite:///{tmp_path / 's.db'}")


class _Capture:
    """capsys for hypothesis tests (function-scoped fixtures do not reset between examples)."""

    def run(self, argv: list[str], *, cwd: Path) -> tuple[int, str]:
        import contextlib
        import io

        err = io.StringIO()
        old = Path.cwd()
        os.chdir(cwd)
        try:
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                try:
                    rc = main(argv)
                except SystemExit as e:
                    rc = e.code
        finally:
            os.chdir(old)
        return rc, err.getvalue().strip()


@pytest.mark.parametrize("name", ["index.html", "claims.csv", "claims.md"])
def test_report_never_writes_over_the_storage(tmp_path: Path, capsys: pytest.CaptureFixture, name: str) -> None:
    db = tmp_path / name
    shutil.copy(SHIPPED, db)
    before = _digest(db)
    rc, err = _cli(["report", "--storage", f"sqlite:///{name}", "--study-name", "reference", "--out", "."], capsys,
                   cwd=tmp_path)  # fmt: skip
    _one_line_exit_2(rc, err, "study storage")
    rc, err = _cli(["report", "--storage", f"sqlite:///{name}", "--study-name", "reference", "--out", name], capsys,
                   cwd=tmp_path)  # fmt: skip
    _one_line_exit_2(rc, err, "is the file")
    assert _digest(db) == before


@pytest.mark.parametrize("suffix", [".json", ".onnx", ".safetensors"])
def test_final_never_writes_over_the_storage(tmp_path: Path, capsys: pytest.CaptureFixture, suffix: str) -> None:
    """Refused before any training: the model's stem + suffix is the database."""
    db = tmp_path / f"m{suffix}"
    shutil.copy(SHIPPED, db)
    before = _digest(db)
    argv = ["final", "--storage", f"sqlite:///{db}", "--study-name", "reference", "--out", str(tmp_path / "x" / "..")]
    rc, err = _cli([*argv, "--name", "m", "--seeds", "0", "--device", "cpu", "--epochs", "1"], capsys)
    _one_line_exit_2(rc, err, "study storage")
    assert _digest(db) == before
    assert {p.name for p in tmp_path.iterdir()} <= {db.name, f"{db.name}-wal", f"{db.name}-shm"}  # no model files


def test_final_never_writes_over_its_training_csv(tmp_path: Path) -> None:
    from mnist_fc.config import DataConfig
    from study.errors import UserError
    from study.safety import check_model_outputs

    csv = tmp_path / "m.json"
    csv.write_text("0," + ",".join(["0"] * 784) + "\n")
    with pytest.raises(UserError, match="input file"):
        check_model_outputs(tmp_path / "m", storage=None, data=DataConfig(source="csv", train_csv=str(csv),
                                                                          test_csv=str(csv)))  # fmt: skip


# --- 4. damaged databases -----------------------------------------------------------------------------


def _damaged(folder: Path, *, offset_frac: float, size: int, seed: int) -> Path:
    db = folder / "damaged.db"
    data = bytearray(SHIPPED.read_bytes())
    rng = random.Random(seed)
    start = int(offset_frac * (len(data) - size))
    data[start : start + size] = bytes(rng.getrandbits(8) for _ in range(size))
    db.write_bytes(bytes(data))
    return db


@pytest.mark.parametrize("command", ["best", "run", "export", "report"])
def test_issue_damaged_database(tmp_path: Path, capsys: pytest.CaptureFixture, command: str) -> None:
    """The issue's input: 4 KB of random bytes in the middle of the file."""
    db = _damaged(tmp_path, offset_frac=0.5, size=4096, seed=1)
    before = _digest(db)
    argv = [command, "--storage", f"sqlite:///{db}", "--study-name", "reference"]
    extra = {"run": QUICK_RUN, "export": ["--out", str(tmp_path / "t.csv")], "report": ["--out", str(tmp_path / "r")]}
    rc, err = _cli([*argv, *extra.get(command, [])], capsys)
    _one_line_exit_2(rc, err, "damaged")
    assert ".recover" in err and str(db) in err
    assert _digest(db) == before
    assert not (tmp_path / "t.csv").exists() and not (tmp_path / "r").exists()


@FUZZ
@given(st.floats(0.0, 1.0), st.sampled_from([1, 16, 512, 4096, 8192]), st.integers(0, 2**32))
@example(0.02, 16, 24)  # a schema name that is not UTF-8 (found by CI): it was a bug exit
def test_damaged_database_family(offset_frac: float, size: int, seed: int) -> None:
    """Random damage anywhere: the read-only `best` either refuses in one line (exit 2) or, when the damage
    hit only free or unchecked bytes, still works; never an internal error or traceback."""
    folder = _DIR / "damage"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    db = _damaged(folder, offset_frac=offset_frac, size=size, seed=seed)
    before = _digest(db)
    rc, err = _Capture().run(["best", "--storage", f"sqlite:///{db}", "--study-name", "reference", "--json"],
                             cwd=folder)  # fmt: skip
    assert rc in (0, 2), err
    if rc == 2:
        _one_line_exit_2(rc, err)
        assert str(db) in err or "reference" in err, err
    assert _digest(db) == before


# --- 5. foreign SQLite files --------------------------------------------------------------------------

_IDENT = st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=12).filter(
    lambda n: not n.startswith("sqlite_")
)
OPTUNA_NAMES = ["studies", "trials", "version_info", "trial_params", "study_directions", "alembic_version"]


@st.composite
def foreign_schema(draw: st.DrawFn) -> list[tuple[str, list[str]]]:
    """Tables of some other application, possibly with names Optuna also uses (but other columns)."""
    names = draw(st.lists(st.one_of(_IDENT, st.sampled_from(OPTUNA_NAMES)), min_size=1, max_size=4, unique=True))
    tables = [(n, draw(st.lists(_IDENT, min_size=1, max_size=4, unique=True))) for n in names]
    if all(n in OPTUNA_NAMES for n, _ in tables) and not any(n == "studies" for n, _ in tables):
        return tables  # only Optuna-named tables but no `studies`: still not a storage (Optuna makes studies first)
    if any(n == "studies" and {"study_id", "study_name"} <= set(c) for n, c in tables):
        tables = [(n, c if n != "studies" else ["id", "name"]) for n, c in tables]
    return tables


def _foreign_db(path: Path, tables: list[tuple[str, list[str]]]) -> None:
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path)
    for name, cols in tables:
        conn.execute(f'CREATE TABLE "{name}" ({", ".join(f"{c!r}" for c in cols)})')
        conn.execute(f'INSERT INTO "{name}" VALUES ({", ".join("1" for _ in cols)})')
    conn.commit()
    conn.close()


def _schema(path: Path) -> list[str]:
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


@pytest.mark.parametrize(
    "tables",
    [
        [("customers", ["id", "name"])],
        [("studies", ["id", "name", "owner"])],
        # Named like Optuna's, with columns of their own: these passed as 'a storage being created', and run
        # added Optuna's other tables and a row to the application's `studies` (or stopped half-way as a bug).
        [("studies", ["study_id", "study_name", "investigator", "budget"])],  # Optuna's two columns and more
        [("studies", ["study_id", "study_name"]), ("trials", ["id", "patient"])],  # a `trials` of its own
        [("studies", ["study_id", "study_name"]), ("version_info", ["id"])],
    ],
    ids=["customers", "studies", "studies-plus", "own-trials", "own-version-info"],
)
def test_issue_foreign_sqlite_files(tmp_path: Path, capsys: pytest.CaptureFixture, tables) -> None:
    db = tmp_path / "app.db"
    _foreign_db(db, tables)
    before = _digest(db)
    rc, err = _cli(["run", "--storage", f"sqlite:///{db}", *QUICK_RUN], capsys)
    _one_line_exit_2(rc, err, "another application")
    assert _digest(db) == before


def test_a_file_holding_only_a_view_is_foreign(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    db = tmp_path / "view.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE VIEW v AS SELECT 1 AS x")
    before = _schema(db)
    rc, err = _cli(["run", "--storage", f"sqlite:///{db}", *QUICK_RUN], capsys)
    _one_line_exit_2(rc, err, "another application")
    assert _schema(db) == before


@FUZZ
@given(foreign_schema(), st.sampled_from(["run", "best"]))
def test_foreign_sqlite_family(tables: list[tuple[str, list[str]]], command: str) -> None:
    db = _DIR / "foreign.db"
    _foreign_db(db, tables)
    before = _schema(db)
    argv = [command, "--storage", f"sqlite:///{db}", *(QUICK_RUN if command == "run" else [])]
    rc, err = _Capture().run(argv, cwd=_DIR)
    _one_line_exit_2(rc, err, "another application", "not an Optuna")
    assert _schema(db) == before


def test_an_empty_file_becomes_a_storage(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Not foreign: an empty file (touch study.db) is an empty database."""
    db = tmp_path / "new.db"
    db.touch()
    rc, err = _cli(["run", "--storage", f"sqlite:///{db}", "--study-name", "s", *QUICK_RUN], capsys)
    assert rc == 0, err


# --- unwritable files, odd URLs ------------------------------------------------------------------------


def test_immutable_database_is_refused_before_writing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    db = tmp_path / "ro.db"
    shutil.copy(SHIPPED, db)
    if subprocess.run(["chattr", "+i", str(db)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not permitted here (needs root on a filesystem with attributes)")
    try:
        before = _digest(db)
        rc, err = _cli(["run", "--storage", f"sqlite:///{db}", "--study-name", "reference", *QUICK_RUN], capsys)
        _one_line_exit_2(rc, err, "read-only")
        assert _digest(db) == before
        rc, err = _cli(["best", "--storage", f"sqlite:///{db}", "--study-name", "reference"], capsys)
        assert rc == 0, err  # reading an immutable study is fine
    finally:
        subprocess.run(["chattr", "-i", str(db)], check=True)


def test_read_only_file_for_a_non_root_user(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    if os.geteuid() == 0:
        pytest.skip("root may write a chmod 444 file; the immutable test covers the root case")
    db = tmp_path / "ro.db"
    shutil.copy(SHIPPED, db)
    db.chmod(0o444)
    rc, err = _cli(["run", "--storage", f"sqlite:///{db}", "--study-name", "reference", *QUICK_RUN], capsys)
    _one_line_exit_2(rc, err, "read-only")


@pytest.mark.parametrize("url", ["sqlite://x.db", "sqlite://studies.db", "sqlite://a/b.db"])
def test_two_slash_sqlite_url_is_explained(tmp_path: Path, capsys: pytest.CaptureFixture, url: str) -> None:
    rc, err = _cli(["best", "--storage", url], capsys, cwd=tmp_path)
    _one_line_exit_2(rc, err, "three")
    assert "two slashes" in err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("sqlite:///loop", "cannot follow"),  # a symlink loop
        ("sqlite:///%00", "NUL"),
        ("sqlite:///s.db?mode=ro&uri=true", "after '?'"),  # SQLAlchemy opened a file named 's.db?mode=ro'
        ("sqlite:///s.db?timeout=30", "after '?'"),
        ("sqlite:///~/s.db", "does not expand ~"),  # the checks looked at $HOME/s.db, SQLAlchemy at ./~/s.db
    ],
)
@pytest.mark.parametrize("command", ["best", "run", "design"])
def test_sqlite_urls_the_checks_and_sqlalchemy_would_read_differently(
    tmp_path: Path, capsys: pytest.CaptureFixture, url: str, words: str, command: str
) -> None:
    (tmp_path / "loop").symlink_to("loop")
    shutil.copy(SHIPPED, tmp_path / "s.db")
    before = _digest(tmp_path / "s.db")
    argv = {"best": ["best"], "run": ["run", *QUICK_RUN], "design": ["design", "init_mean", "--device", "cpu"]}
    rc, err = _cli([*argv[command], "--storage", url], capsys, cwd=tmp_path)
    _one_line_exit_2(rc, err, words)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loop", "s.db"] and _digest(tmp_path / "s.db") == before


def test_a_folder_named_tilde_is_what_the_url_means(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`sqlite:///~/f.db` with a folder `./~`: checked and opened there (a foreign file stays foreign)."""
    (tmp_path / "~").mkdir()
    with sqlite3.connect(tmp_path / "~" / "f.db") as conn:
        conn.execute("CREATE TABLE users (id INTEGER)")
    before = _digest(tmp_path / "~" / "f.db")
    rc, err = _cli(["run", *QUICK_RUN, "--storage", "sqlite:///~/f.db"], capsys, cwd=tmp_path)
    _one_line_exit_2(rc, err, "not an Optuna", "foreign", "not a study")
    assert _digest(tmp_path / "~" / "f.db") == before


# --- outputs that cannot be written: refused in one line, before any training -------------------------


@pytest.fixture
def unwritable(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    """A folder path no file can be written under: a file, a path through a file, an immutable folder."""
    kind = request.param
    (tmp_path / "afile").write_text("not a folder\n")
    if kind == "file":
        yield tmp_path / "afile"
    elif kind == "through_a_file":
        yield tmp_path / "afile" / "sub"
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        if subprocess.run(["chattr", "+i", str(ro)], capture_output=True).returncode != 0:
            pytest.skip("chattr +i is not permitted here (needs root on a filesystem with attributes)")
        try:
            yield ro / "sub" if kind == "in_immutable" else ro
        finally:
            subprocess.run(["chattr", "-i", str(ro)], check=True)


UNWRITABLE = ["file", "through_a_file", "immutable", "in_immutable"]


@pytest.mark.parametrize("unwritable", UNWRITABLE, indirect=True)
@pytest.mark.parametrize("flag", ["--out", "--checkpoint-dir"])
def test_final_refuses_an_unwritable_folder_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture, unwritable: Path, flag: str
) -> None:
    """Found by trying: `final --out /proc/x` trained every seed, then died at the save as a 'bug'."""
    db = tmp_path / "s.db"
    shutil.copy(SHIPPED, db)
    out = tmp_path / "models"
    argv = ["final", "--storage", f"sqlite:///{db}", "--study-name", "reference", "--seeds", "0", "--device", "cpu"]
    argv += ["--epochs", "1", "--train-size", "100", "--out", str(out), flag, str(unwritable)]
    rc, err = _cli(argv, capsys)
    _one_line_exit_2(rc, err, "folder")  # one line: no training progress was printed before it
    assert str(unwritable) in err and "bug" not in err
    assert not list(tmp_path.glob("**/*.onnx")) and not list(tmp_path.glob("**/*.ckpt"))
    assert not out.exists()  # the check made no folder it did not keep


def test_the_write_check_leaves_no_trace(tmp_path: Path) -> None:
    from study.safety import check_writable_dir

    check_writable_dir(tmp_path / "a" / "b" / "c", what="output folder")
    (tmp_path / "kept").mkdir()
    check_writable_dir(tmp_path / "kept", what="output folder")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["kept"]


@pytest.mark.parametrize("unwritable", ["through_a_file", "in_immutable"], indirect=True)
def test_report_refuses_an_unwritable_folder(tmp_path: Path, capsys: pytest.CaptureFixture, unwritable: Path) -> None:
    db = tmp_path / "s.db"
    shutil.copy(SHIPPED, db)
    rc, err = _cli(["report", "--storage", f"sqlite:///{db}", "--study-name", "reference", "--out", str(unwritable)],
                   capsys)  # fmt: skip
    _one_line_exit_2(rc, err, str(unwritable))


@pytest.mark.parametrize("unwritable", ["immutable"], indirect=True)
def test_export_to_a_folder_or_an_unwritable_one(
    tmp_path: Path, capsys: pytest.CaptureFixture, unwritable: Path
) -> None:
    db = tmp_path / "s.db"
    shutil.copy(SHIPPED, db)
    (tmp_path / "d.csv").mkdir()
    for out, words in ((tmp_path / "d.csv", "is a folder"), (unwritable / "x.csv", "cannot write")):
        rc, err = _cli(["export", "--storage", f"sqlite:///{db}", "--study-name", "reference", "--out", str(out)],
                       capsys)  # fmt: skip
        _one_line_exit_2(rc, err, words)
        assert "bug" not in err
    assert not list((tmp_path / "d.csv").iterdir()) and not list(unwritable.iterdir())  # no partial file


def test_a_healthy_study_in_a_read_only_folder_is_not_called_damaged(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """`best` on a WAL database in a read-only folder said "damaged ... .recover": advice to repair a good file."""
    src, ro = tmp_path / "src", tmp_path / "ro"
    src.mkdir()
    ro.mkdir()
    shutil.copy(SHIPPED, src / "s.db")
    if os.geteuid() != 0 or subprocess.run(["mount", "--bind", str(src), str(ro)], check=False).returncode:
        pytest.skip("a read-only bind mount needs root")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(ro)], check=True)
        before = _digest(src / "s.db")
        for command in (["best"], ["export", "--out", str(tmp_path / "e.csv")]):
            rc, err = _cli([*command, "--storage", f"sqlite:///{ro / 's.db'}", "--study-name", "reference"], capsys)
            if rc == 0:  # SQLite could read it after all: fine, as long as nothing changed
                continue
            _one_line_exit_2(rc, err, "read-only")
            assert "damaged" not in err and "recover" not in err, err
        assert _digest(src / "s.db") == before
    finally:
        subprocess.run(["umount", "-l", str(ro)], check=False)
