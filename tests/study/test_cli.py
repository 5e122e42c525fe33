"""The real `mnist-study` command, run as a subprocess, with real SQLite files."""

import dataclasses
import json
import math
import os
import sqlite3
import subprocess
import sys

import optuna
import pytest
import torch

from study.cli import build_parser, commands, main
from study.errors import UserError
from study.objective import RESULT_ATTRS
from tests.study.workers import cli_env

TINY = ("--epochs", "20", "--train-size", "500", "--device", "cpu", "--no-progress")

CURVE_COUNT = "SELECT COUNT(*) FROM trial_system_attributes WHERE key = 'mnist_study:curves'"


def test_help_of_every_command_has_examples(cli):
    names = sorted(commands(build_parser()))  # every registered command, including any added later
    assert {"run", "train", "best", "final", "evaluate", "dashboard", "report", "export"} <= set(names)
    for cmd in names:
        r = cli(cmd, "--help")
        assert r.returncode == 0 and "example" in r.stdout and "mnist-study " + cmd in r.stdout, cmd


def test_run_tiny_study_then_extend(cli, tmp_path):
    r = cli("run", "--trials", "3", "--storage", "sqlite:///x.db", "--study-name", "s", "--seed", "1", *TINY)
    assert r.returncode == 0, r.stderr
    assert "best trial #" in r.stdout and "test accuracy" in r.stdout
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'x.db'}")
    assert len(study.trials) == 3
    first_params = [t.params for t in study.trials]
    for t in study.trials:
        assert set(RESULT_ATTRS) <= set(t.user_attrs), t.user_attrs.keys()
        assert t.user_attrs["epochs"] <= 20 and t.user_attrs["device"] == "cpu"
        assert t.user_attrs["config"]["data"]["train_size"] == 500
        if t.state == optuna.trial.TrialState.COMPLETE:
            assert t.value == t.user_attrs["val_accuracy"] and t.intermediate_values
    # Running again with the same name adds trials and loses nothing; another --seed would draw another
    # training subsample, so it is refused (the trials would not compare).
    r = cli("run", "--trials", "2", "--storage", "sqlite:///x.db", "--study-name", "s", "--seed", "2", *TINY)
    assert r.returncode == 2 and "was run with --seed" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = cli("run", "--trials", "2", "--storage", "sqlite:///x.db", "--study-name", "s", "--seed", "1", *TINY)
    assert r.returncode == 0, r.stderr
    again = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'x.db'}")
    assert len(again.trials) == 5
    assert [t.params for t in again.trials[:3]] == first_params
    with sqlite3.connect(tmp_path / "x.db") as conn:
        rows = conn.execute(CURVE_COUNT).fetchone()[0]  # one set of curves per trial, in its system attributes
    assert rows == 5


def test_best_json_and_text(cli, tmp_path):
    assert cli("run", "--trials", "2", "--storage", "sqlite:///b.db", "--study-name", "b", *TINY).returncode == 0
    r = cli("best", "--storage", "sqlite:///b.db", "--study-name", "b", "--json")
    assert r.returncode == 0, r.stderr
    rec = json.loads(r.stdout)
    study = optuna.load_study(study_name="b", storage=f"sqlite:///{tmp_path / 'b.db'}")
    assert rec["trial_number"] == study.best_trial.number and rec["params"] == study.best_trial.params
    assert 0 <= rec["attrs"]["test_accuracy"] <= 1
    text = cli("best", "--storage", "sqlite:///b.db", "--study-name", "b")
    assert f"best trial #{study.best_trial.number}" in text.stdout


def test_train_article_preset_json(cli):
    r = cli("train", "--preset", "article", "--epochs", "30", "--json", "--device", "cpu", "--train-size", "2000")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    for key in ("train_loss", "train_accuracy", "val_accuracy", "test_accuracy", "epochs", "seconds", "config"):
        assert key in out
    assert out["epochs"] == 30 and abs(out["train_loss"] - math.log(10)) < 0.05
    assert out["config"]["model"]["init_mean"] == 0.01 and out["config"]["train"]["lr"] == 0.1
    lines = r.stderr.splitlines()  # the auto precision first (before training), then article-style progress
    assert lines[0].startswith("precision ") and lines[1].startswith("Epoch 1, Loss 2.3")  # off stdout with --json


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("run", "--trials", "0"), "--trials: 0 must be >= 1"),
        (("run", "--trials", "-3"), "--trials"),
        (("run", "--epochs", "ten"), "not a valid int"),
        (("run", "--space", "nope"), "invalid choice"),
        (("run", "--device", "tpu"), "invalid choice"),
        (("train", "--normalization", "zscore"), "invalid choice"),
        (("train", "--lr", "0"), "must be > 0"),
        (("run", "--storage", "nosuchdb://x"), "storage"),
        (("run", "--storage", "sqlite:////no/such/dir/x.db"), "does not exist"),
        (
            ("run", "--storage", "postgresql+psycopg://u:hunter2@127.0.0.1:9/db", "--train-size", "100"),
            "cannot open storage",
        ),
        (("run", "--train-csv", "missing.csv", "--test-csv", "missing2.csv"), "CSV file not found"),
        (("run", "--train-csv", "only.csv"), "go together"),
        (("best", "--storage", "sqlite:///none.db"), "no study database"),
    ],
)
def test_bad_input_one_line_no_traceback(cli, tmp_path, args, message):
    r = cli(*args)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert message in lines[0] and "Traceback" not in r.stderr
    assert "hunter2" not in r.stderr + r.stdout
    assert not list(tmp_path.glob("*.db")) or args[0] == "best"


def test_malformed_csv_leaves_no_study(cli, tmp_path):
    (tmp_path / "train.csv").write_text("5," + ",".join(["0"] * 783) + "\n")
    (tmp_path / "test.csv").write_text("5," + ",".join(["0"] * 784) + "\n")
    r = cli("run", "--train-csv", "train.csv", "--test-csv", "test.csv", "--storage", "sqlite:///c.db", *TINY)
    assert r.returncode == 2 and "784" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "c.db").exists()


def test_space_mismatch_refused(cli, tmp_path):
    assert cli("run", "--trials", "1", "--storage", "sqlite:///m.db", "--study-name", "m", *TINY).returncode == 0
    storage = f"sqlite:///{tmp_path / 'm.db'}"
    study = optuna.load_study(study_name="m", storage=storage)
    assert study.user_attrs["space"] == "article"


HEAVY = ("torch", "optuna", "pandas", "scipy", "sqlalchemy", "plotly", "onnx")


def _modules_after(code: str, tmp_path) -> list[str]:
    """Heavy modules imported by `code` in a fresh interpreter (never a wall time: those flake)."""
    probe = f"import sys\n{code}\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=cli_env(), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1].replace("'", '"'))


def test_help_imports_no_heavy_module(tmp_path):
    code = "from study.cli import build_parser, commands\nfor c in commands(build_parser()).values(): c.format_help()"
    assert _modules_after(code, tmp_path) == []


def test_best_does_not_import_torch(tmp_path):
    url = f"sqlite:///{tmp_path / 'b.db'}"
    study = optuna.create_study(study_name="b", storage=url, direction="maximize")
    study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=0.5, user_attrs={"val_accuracy": 0.5}))
    code = f"from study.cli import main\nassert main(['best', '--storage', {url!r}, '--study-name', 'b']) == 0"
    assert "torch" not in _modules_after(code, tmp_path)


def test_version_and_bare_command_lists_commands(cli):
    r = cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("mnist-study ")
    r = cli()
    assert r.returncode == 2
    for name in commands(build_parser()):
        assert name in r.stdout


def test_optuna_storage_env_is_the_default_storage(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("OPTUNA_STORAGE", "sqlite:///from_env.db")
    r = cli("best")
    assert r.returncode == 2 and "from_env.db" in r.stderr, r.stderr
    for cmd in ("run", "best", "final", "report", "export", "dashboard"):
        out = " ".join(cli(cmd, "--help").stdout.split())
        assert "$OPTUNA_STORAGE sqlite:///from_env.db" in out, cmd
    monkeypatch.setenv("OPTUNA_STORAGE", "sqlite:///from_env.db?x=1")  # refused, and named: design reads it too
    r = cli("design", "all", "--device", "cpu", cwd=tmp_path)
    assert r.returncode == 2 and "from_env.db" in r.stderr and not list(tmp_path.iterdir()), r.stderr
    monkeypatch.delenv("OPTUNA_STORAGE")
    r = cli("best")
    assert "studies.db" in r.stderr
    design_help = " ".join(cli("design", "--help").stdout.split())
    assert "(default: $OPTUNA_STORAGE if set, else sqlite:///claims.db)" in design_help


def test_study_flags_and_port_show_their_defaults(cli):
    for cmd in ("run", "best", "final", "report", "export", "dashboard"):
        out = " ".join(cli(cmd, "--help").stdout.split())
        assert "(default: $OPTUNA_STORAGE if set, else sqlite:///studies.db)" in out, cmd
        if cmd != "dashboard":
            assert "study in the storage (default 'article')" in out, cmd
    assert "(default 8080)" in cli("dashboard", "--help").stdout
    train = " ".join(cli("train", "--help").stdout.split())
    seed_help = train.split("--seed SEED")[-1].split("--device", 1)[0]
    assert "sampler" not in seed_help and "default 0" in seed_help


def test_verbose_before_or_after_the_command(cli):
    for args in (("-v", "best", "--storage", "sqlite:///none.db"), ("best", "--storage", "sqlite:///none.db", "-v")):
        r = cli(*args)
        assert r.returncode == 2 and "no study database" in r.stderr, args


def test_a_bug_says_so_and_shows_its_traceback_only_with_v(monkeypatch, capsys):
    from study.commands import best

    def broken(args):
        raise KeyError("np.float64(12.5)")  # not a user error: a bug

    monkeypatch.setattr(best, "run", broken)
    assert main(["best"]) == 1
    err = capsys.readouterr().err
    assert "bug" in err and "run with -v for the traceback" in err and "Traceback" not in err
    assert "np.float64" not in err and "12.5" in err  # numpy's repr never reaches the user
    assert len(err.strip().splitlines()) == 1
    assert main(["best", "-v"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_config_error_is_a_user_error(cli):
    r = cli("train", "--aug-scale", "1", "--epochs", "1", "--train-size", "100", "--device", "cpu")
    assert r.returncode == 2 and r.stderr.strip() == "mnist-study train: error: augmentation scale must be < 1"


@pytest.mark.parametrize("flag", ["--lr", "--weight-decay", "--warmup-epochs", "--init-mean", "--momentum"])
def test_overflowing_values_are_one_line_errors(cli, tmp_path, flag):
    """Issue 12: 1e308 gave an internal error (an overflow inside training)."""
    r = cli("train", flag, "1e308", "--epochs", "2", "--train-size", "100", "--device", "cpu")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and flag in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_seed_bound_is_printed_as_an_integer(cli, tmp_path):
    r = cli("run", "--seed", "4294967296", "--storage", "sqlite:///s.db")
    assert r.returncode == 2 and "must be <= 4294967295" in r.stderr and "e+" not in r.stderr
    assert not (tmp_path / "s.db").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
@pytest.mark.parametrize("extra", [(), ("--jobs", "2")])
def test_cuda_without_gpu_fails_before_the_storage_is_touched(cli, tmp_path, extra):
    r = cli("run", "--device", "cuda", "--storage", "sqlite:///g.db", "--trials", "2", *extra)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [
        "mnist-study run: error: --device cuda: no CUDA GPU is available here (use --device cpu or auto)"
    ]
    assert not (tmp_path / "g.db").exists()  # no study, no FAILED trial


def test_redirected_progress_has_no_carriage_returns(cli, tmp_path):
    r = cli("run", "--trials", "2", "--storage", "sqlite:///p.db", *TINY[:-1])  # progress on
    assert r.returncode == 0, r.stderr
    assert "\r" not in r.stdout + r.stderr
    assert "trial 0: " in r.stdout and "trial 1: " in r.stdout and "this worker ran 2 trials" in r.stdout
    study = optuna.load_study(study_name="article", storage=f"sqlite:///{tmp_path / 'p.db'}")
    assert study.metric_names == ["val_accuracy"]  # what optuna-dashboard shows instead of "Objective 0"


def test_mirrored_names_match_their_sources():
    from study import defaults, storage
    from study.spaces import SPACES

    assert defaults.SPACE_NAMES == tuple(sorted(SPACES))
    assert defaults.HEARTBEAT_SECONDS == storage.HEARTBEAT_SECONDS


def test_runner_is_callable_from_python(tmp_path):
    from mnist_fc.config import DataConfig
    from study.runner import StudyPlan, base_config, run_study

    lines: list[str] = []
    plan = StudyPlan(
        storage=f"sqlite:///{tmp_path / 'py.db'}",
        study_name="py",
        trials=1,
        base=base_config(data=DataConfig(train_size=200), epochs=5, device="cpu"),
        progress=False,
    )
    summary = run_study(plan, echo=lines.append)
    assert summary.ran.startswith("1 trial (") and lines[0].startswith("study 'py'")
    with pytest.raises(UserError, match="--trials or --until-complete"):
        run_study(dataclasses.replace(plan, until_complete=3))


def test_progress_bar_shows_epochs_within_a_long_trial() -> None:
    """On a terminal the bar's postfix follows the running trial's epochs (a log only gets finished trials)."""
    from study.runner.progress import TrialLog

    log = TrialLog(total=3, bar=False)
    log.epoch(0, 10, 300, 0.5)  # no bar (not a terminal): nothing happens, nothing printed

    class Bar:
        text = ""

        def set_postfix_str(self, s: str) -> None:
            self.text = s

    log._bar = Bar()
    log.epoch(4, 120, 300, 0.8123)
    assert log._bar.text == "trial 4: epoch 120/300, val 0.8123"


def test_an_unusable_path_is_one_line_naming_it_not_a_bug(monkeypatch, capsys):
    """The operating system refusing a path the user gave (a read-only or virtual folder, a folder where a
    file belongs) is the user's to fix: the path and the reason, exit 2, whatever command met it."""
    import errno

    from study.commands import best

    for exc in (
        PermissionError(errno.EACCES, "Permission denied", "/srv/out/x.csv"),
        IsADirectoryError(errno.EISDIR, "Is a directory", "/srv/.x.tmp", None, "/srv/x.csv"),
        FileNotFoundError(errno.ENOENT, "No such file or directory", "/proc/x"),
    ):

        def broken(args, exc=exc):
            raise exc

        monkeypatch.setattr(best, "run", broken)
        assert main(["best"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "bug" not in err, err
        assert exc.filename in err and exc.strerror in err, err
        if exc.filename2:
            assert exc.filename2 in err
    monkeypatch.setattr(best, "run", lambda args: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    assert main(["best"]) == 1  # no path named: not ours to explain away
    assert "bug" in capsys.readouterr().err


def test_unknown_flags_are_named_by_the_command_that_refused_them(capsys):
    cases = {
        ("train", "--hidden", "0"): "mnist-study train: error: unrecognized arguments: --hidden 0",
        ("--bogus",): "mnist-study: error: unrecognized arguments: --bogus",
        ("best", "x", "y"): "mnist-study best: error: unrecognized arguments: x y",
    }
    for argv, expected in cases.items():
        with pytest.raises(SystemExit) as e:
            main(list(argv))
        assert e.value.code == 2 and capsys.readouterr().err.strip() == expected


def test_a_bad_study_prefix_is_named_as_such(cli, tmp_path):
    r = cli("design", "init_mean", "--study-prefix", "\t", "--storage", "sqlite:///d.db", "--device", "cpu")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "--study-prefix" in r.stderr and "--study-name" not in r.stderr
    assert not (tmp_path / "d.db").exists()


def test_a_closed_pipe_is_not_a_bug(tmp_path):
    """`mnist-study design --list | head -1` reported "bug: BrokenPipeError"; it ends quietly, as Unix tools do."""
    r, w = os.pipe()
    os.close(r)  # the reader has gone before anything is written
    try:
        p = subprocess.run([sys.executable, "-m", "study", "design", "--list"], stdout=w, stderr=subprocess.PIPE,
                           text=True, cwd=tmp_path, env=cli_env(), timeout=120)  # fmt: skip
    finally:
        os.close(w)
    assert p.returncode == 141 and p.stderr == "", p.stderr


def test_messages_name_where_the_mistake_came_from(cli, tmp_path):
    r = cli("best", env={"OPTUNA_STORAGE": "garbage"})
    assert r.returncode == 2 and "$OPTUNA_STORAGE" in r.stderr, r.stderr  # the user never typed "garbage"
    (tmp_path / "r0").mkdir()
    r = cli("export", "--storage", "sqlite:///x.db", "--out", "r0")
    assert r.returncode == 2 and "is a folder" in r.stderr, r.stderr  # not "must end in .csv, not 'nothing'"


def test_the_run_header_and_end_say_what_ran(cli):
    r = cli("run", "--storage", "sqlite:///h.db", "--study-name", "h", "--space", "accuracy", "--epochs", "2",
            "--train-size", "300", "--device", "cpu", "--no-progress", "--trials", "500", "--timeout", "1")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "1-2 epochs each, sampled" in r.stdout, r.stdout  # the accuracy space samples epochs up to --epochs
    assert "--timeout 1 s reached after " in r.stdout and " of 500 trials" in r.stdout, r.stdout
    r = cli("run", "--storage", "sqlite:///h2.db", "--study-name", "h", "--epochs", "2", "--train-size", "300",
            "--device", "cpu", "--no-progress", "--trials", "1", "--jobs", "2")  # fmt: skip
    assert r.returncode == 0 and "jobs 1," in r.stdout, r.stdout + r.stderr  # one trial: one worker


def test_a_name_the_locale_cannot_decode_is_explained(tmp_path):
    """Under LANG=C, `étude` arrives as surrogate escapes and was called "the control character '\\udcc3'"."""
    env = dict(cli_env(), LC_ALL="C", LANG="C", PYTHONUTF8="0")
    r = subprocess.run([sys.executable, "-m", "study", "best", "--study-name", "étude", "--storage",
                        "sqlite:///n.db"], cwd=tmp_path, env=env, capture_output=True, timeout=120)  # fmt: skip
    err = r.stderr.decode("utf-8", "replace")
    assert r.returncode == 2 and "UTF-8 locale" in err and "control character" not in err, err


def test_every_script_and_bench_answers_help_without_running(tmp_path):
    """`scripts/claims_pilot.py --help` started the ~7-minute pilot and would have written its JSON to a file
    named --help. Every script and benchmark prints its usage and exits 0 at once."""
    import subprocess
    import sys

    from tests.conftest import REPO

    paths = sorted([*(REPO / "scripts").glob("*.py"), *(REPO / "bench").glob("*.py")])
    assert len(paths) > 10
    for path in paths:
        r = subprocess.run([sys.executable, str(path), "--help"], cwd=tmp_path, capture_output=True, text=True,
                           timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
        assert r.returncode == 0 and "usage" in r.stdout.lower(), (path.name, r.stdout[-300:], r.stderr[-300:])
        assert not (tmp_path / "--help").exists(), path.name
