"""`final` then `evaluate` on a tiny real study: safetensors + JSON + ONNX, and onnxruntime agrees with PyTorch."""

import json
import stat
from pathlib import Path

import numpy as np
import pytest

from mnist_fc.data import load_embedded
from mnist_fc.export import load_pixelnet, onnx_logits, torch_logits

MODELS = Path(__file__).resolve().parents[2] / "models"
TINY_RUN = ("--space", "accuracy", "--epochs", "2", "--train-size", "300", "--device", "cpu", "--no-progress")


@pytest.fixture(scope="module")
def final_dir(tmp_path_factory):
    from tests.conftest import run_cli

    d = tmp_path_factory.mktemp("final")
    r = run_cli("run", "--trials", "2", "--storage", "sqlite:///s.db", "--study-name", "acc", *TINY_RUN, cwd=d)
    assert r.returncode == 0, r.stderr
    r = run_cli(
        "final", "--storage", "sqlite:///s.db", "--study-name", "acc", "--seeds", "3,4",
        "--epochs", "1", "--train-size", "1000", "--jobs", "2", "--out", "out", "--json", cwd=d,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "seed 3: Epoch 1" in r.stderr and "training 2 seed(s)" in r.stderr  # progress, on stderr
    return d, json.loads(r.stdout)  # --json: stdout holds the JSON object and nothing else


def test_final_saves_model_config_and_onnx(final_dir):
    d, summary = final_dir
    for ext in ("safetensors", "json", "onnx"):
        assert (d / "out" / f"acc.{ext}").is_file(), ext
    meta = json.loads((d / "out" / "acc.json").read_text())
    assert meta["seed"] == 3 and [s["seed"] for s in meta["seeds"]] == [3, 4]
    accs = [s["test_accuracy"] for s in meta["seeds"]]
    assert meta["test_accuracy_mean"] == pytest.approx(np.mean(accs))
    assert meta["test_accuracy_std"] == pytest.approx(np.std(accs, ddof=1))
    assert meta["config"]["data"]["include_validation"] and meta["config"]["train"]["seed"] == 3
    assert "1000 official training images" in meta["trained_on"]
    # seeds are scored as saved (fp32 inference): the shipped seed's figure is the one `evaluate` prints
    assert meta["seeds"][0]["test_accuracy"] == meta["test_accuracy"]
    assert all(0 < s["test_accuracy_in_training_precision"] <= 1 for s in meta["seeds"])
    assert meta["command"].startswith("mnist-study final --storage sqlite:///s.db --study-name acc --seeds 3,4")
    assert meta["hardware"]["cpu_count"] >= 1 and all(s["seconds"] > 0 for s in meta["seeds"])
    assert meta["parallel_jobs"] == 2 and meta["hardware"]["torch_threads"] == 1  # what each seed trained with
    assert summary["onnx_max_abs_logit_diff"] <= 1e-3
    modes = {ext: stat.S_IMODE((d / "out" / f"acc.{ext}").stat().st_mode) for ext in ("safetensors", "json", "onnx")}
    assert modes["safetensors"] == modes["json"] == modes["onnx"], modes  # safetensors wrote 0600


def test_onnx_matches_pytorch_on_raw_pixels(final_dir):
    d, _ = final_dir
    model, _ = load_pixelnet(d / "out" / "acc.safetensors")
    x = np.array(load_embedded()[2][:500], dtype=np.float32)  # raw 0-255 pixels: normalisation is in the graph
    ref = torch_logits(model, x)
    for batch in (x[:1], x[:7], x):  # dynamic batch size
        got = onnx_logits(d / "out" / "acc.onnx", batch)
        assert got.shape == (len(batch), 10)
        np.testing.assert_allclose(got, ref[: len(batch)], atol=1e-4, rtol=1e-4)


def test_evaluate_prints_accuracy_and_confusion(final_dir, cli):
    d, _ = final_dir
    meta = json.loads((d / "out" / "acc.json").read_text())
    r = cli("evaluate", "out/acc.onnx", cwd=d)
    assert r.returncode == 0, r.stderr
    acc = meta["test_accuracy"]
    assert f"test accuracy {acc:.4f} ({100 * acc:.2f}%)" in r.stdout and "(onnxruntime)" in r.stdout
    assert "true\\pred" in r.stdout and len(r.stdout.splitlines()) == 13
    js = json.loads(cli("evaluate", "out", "--json", cwd=d).stdout)  # the saved folder, through PyTorch
    counts = np.array(js["confusion"])
    assert js["engine"] == "pytorch" and counts.shape == (10, 10) and counts.sum() == 10_000
    assert js["test_accuracy"] == pytest.approx(np.trace(counts) / 10_000) == pytest.approx(meta["test_accuracy"])


def test_bad_model_paths_are_one_line_errors(tmp_path, cli):
    (tmp_path / "junk.onnx").write_bytes(b"not onnx")
    (tmp_path / "m.safetensors").write_bytes(b"garbage")
    (tmp_path / "m.json").write_text(json.dumps({"config": {"model": {}}}))
    for target in ("junk.onnx", "m.safetensors"):
        r = cli("evaluate", target, cwd=tmp_path)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, target


def test_final_without_study_is_one_line_error(tmp_path, cli):
    r = cli("final", "--storage", "sqlite:///none.db", "--study-name", "x", cwd=tmp_path)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_dotted_names_keep_their_own_files_and_a_study_name_path_is_refused(final_dir, cli):
    """`--name final.v1` and `--name final.v2` used to both write out/final.*; a study named `a/b` or
    `../x` (legal in Optuna) wrote outside --out when it was the default name."""
    d, _ = final_dir
    quick = ("--storage", "sqlite:///s.db", "--study-name", "acc", "--seeds", "0", "--epochs", "1",
             "--train-size", "300", "--out", "dots")  # fmt: skip
    for name in ("final.v1", "final.v2"):
        r = cli("final", *quick, "--name", name, cwd=d)
        assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in (d / "dots").iterdir())
    assert names == [f"final.v{v}.{ext}" for v in (1, 2) for ext in ("json", "onnx", "safetensors")], names
    r = cli("evaluate", "dots/final.v1.json", cwd=d)
    assert r.returncode == 0 and "test accuracy" in r.stdout, r.stderr
    for study_name in ("a/b", "../x"):
        r = cli("final", "--storage", "sqlite:///s.db", "--study-name", study_name, "--out", "esc", cwd=d)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "not a plain file stem; pass --name" in r.stderr
    assert not (d / "esc").exists() and not (d / "x.json").exists()


def test_final_trial_picks_a_complete_trial_and_refuses_others(final_dir, cli):
    d, summary = final_dir
    import optuna

    study = optuna.load_study(study_name="acc", storage=f"sqlite:///{d / 's.db'}")
    other = next(t.number for t in study.trials if t.number != summary["trial_number"])
    r = cli(
        "final", "--storage", "sqlite:///s.db", "--study-name", "acc", "--trial", str(other), "--seeds", "0",
        "--epochs", "1", "--train-size", "300", "--out", "picked", "--json", cwd=d,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["trial_number"] == other
    meta = json.loads((d / "picked" / "acc.json").read_text())
    assert meta["trial_number"] == other and "--trial" in meta["command"]
    assert meta["config"]["model"] == study.trials[other].user_attrs["config"]["model"]
    errors = {}
    for bad in ("99", "-1", "x"):  # not a complete trial / not a number: one line, exit 2, nothing written
        r = cli("final", "--storage", "sqlite:///s.db", "--study-name", "acc", "--trial", bad, "--out", "bad", cwd=d)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, bad
        errors[bad] = r.stderr
    assert "no complete trial #99" in errors["99"]
    assert not (d / "bad").exists()


def test_seed_list_parsing():
    import argparse

    from study.commands.final import _seeds

    assert _seeds("0,1,2") == [0, 1, 2]
    for bad in ("1,1", "a", "", "-1"):
        with pytest.raises(argparse.ArgumentTypeError):
            _seeds(bad)


def test_train_flags_reach_the_config():
    from mnist_fc.config import RunConfig
    from study.cli import build_parser
    from study.commands.args import run_config_from_flags

    args = build_parser().parse_args(
        ["train", "--optimizer", "adamw", "--batch-size", "64", "--schedule", "onecycle", "--warmup-epochs", "1",
         "--label-smoothing", "0.1", "--aug-shift", "2", "--aug-rotate", "10", "--aug-scale", "0.1",
         "--aug-shear", "5", "--aug-elastic-alpha", "30", "--aug-elastic-sigma", "5"]
    )  # fmt: skip
    t = run_config_from_flags(args, RunConfig(), epochs=3).train
    assert (t.optimizer, t.batch_size, t.schedule, t.warmup_epochs, t.label_smoothing) == (
        "adamw",
        64,
        "onecycle",
        1,
        0.1,
    )
    assert (t.aug_shift, t.aug_rotate, t.aug_scale, t.aug_shear) == (2, 10, 0.1, 5)
    assert (t.aug_elastic_alpha, t.aug_elastic_sigma) == (30, 5) and t.uses_minibatch_loop()
    plain = run_config_from_flags(build_parser().parse_args(["train"]), RunConfig(), epochs=3)
    assert not plain.train.uses_minibatch_loop()  # no flag: the article's full-batch loop
    assert not plain.data.deskew
    assert run_config_from_flags(build_parser().parse_args(["train", "--deskew"]), RunConfig(), epochs=3).data.deskew


def test_train_deskew_runs_the_article_loop_on_deskewed_images(cli):
    common = ("train", "--train-size", "300", "--epochs", "3", "--device", "cpu", "--precision", "fp32", "--json")
    plain, desk = cli(*common), cli(*common, "--deskew")
    assert plain.returncode == 0 and desk.returncode == 0, desk.stderr
    a, b = (json.loads(r.stdout.splitlines()[-1]) for r in (plain, desk))
    assert b["config"]["data"]["deskew"] and not a["config"]["data"]["deskew"]
    assert a["train_loss"] != b["train_loss"]  # the same seed and images, deskewed: another run


# --- resumable final runs (--checkpoint-dir) and weight averaging (--ema-decay) ------------------

FINAL_2EP = ("--storage", "sqlite:///s.db", "--study-name", "acc", "--epochs", "2", "--train-size", "1000",
             "--device", "cpu", "--precision", "fp32", "--jobs", "1", "--log-every", "1", "--json")  # fmt: skip


def test_final_checkpoint_dir_resumes_unfinished_seeds_and_skips_finished_ones(final_dir):
    import dataclasses

    import torch

    from mnist_fc.checkpoint import CheckpointError
    from mnist_fc.data import load_split
    from mnist_fc.minibatch import fit
    from study.report_text import best_record
    from study.runner.final import checkpoint_path, final_config
    from study.storage import load_study, open_storage
    from tests.conftest import run_cli

    d, _ = final_dir
    base = run_cli("final", *FINAL_2EP, "--seeds", "3,4", "--out", "base", cwd=d)  # uninterrupted, no checkpoints
    assert base.returncode == 0, base.stderr
    # Seed 3 finishes with a checkpoint; seed 4 is interrupted after epoch 1 (in this process).
    first = run_cli("final", *FINAL_2EP, "--seeds", "3", "--out", "first", "--checkpoint-dir", "ck", cwd=d)
    assert first.returncode == 0, first.stderr
    record = best_record(load_study(open_storage(f"sqlite:///{d / 's.db'}", create=False), "acc"))
    cfg4 = final_config(record, seed=4, epochs=2, train_size=1000, device="cpu", precision="fp32")

    class Interrupted(Exception):
        pass

    def interrupt(epoch, metrics):
        if epoch >= 2:
            raise Interrupted
        return False

    with pytest.raises(Interrupted):
        fit(cfg4, split=load_split(cfg4.data, seed=4), checkpoint=checkpoint_path(d / "ck", 4), checkpoint_every=1,
            on_eval=interrupt)  # fmt: skip
    assert torch.load(d / "ck" / "seed4.ckpt", weights_only=True)["epoch"] == 1
    again = run_cli("final", *FINAL_2EP, "--seeds", "3,4", "--out", "again", "--checkpoint-dir", "ck", cwd=d)
    assert again.returncode == 0, again.stderr
    assert "seed 3: checkpoint ck/seed3.ckpt at epoch 2 of 2; finished, not retrained" in again.stderr
    assert "seed 4: checkpoint ck/seed4.ckpt at epoch 1 of 2; resuming" in again.stderr
    assert "seed 3: Epoch" not in again.stderr and "seed 4: Epoch 1," not in again.stderr
    assert "seed 4: Epoch 2," in again.stderr
    b, f, a = (json.loads(r.stdout)["seeds"] for r in (base, first, again))
    assert [s["test_accuracy"] for s in a] == [s["test_accuracy"] for s in b]  # resumed = uninterrupted
    # Seed 3 came from its checkpoint, not trained again: its seconds are the ones recorded there.
    assert a[0]["seconds"] == torch.load(d / "ck" / "seed3.ckpt", weights_only=True)["seconds"] <= f[0]["seconds"]
    shipped_base, shipped_again = (load_pixelnet(d / out / "acc.safetensors")[0] for out in ("base", "again"))
    wb, wa = shipped_base.state_dict(), shipped_again.state_dict()
    assert all(torch.equal(wb[k], wa[k]) for k in wb)
    # Another configuration (here more epochs) is refused in one line before anything trains or is written.
    other = run_cli("final", *FINAL_2EP[:5], "3", *FINAL_2EP[6:], "--seeds", "3", "--out", "other",
                    "--checkpoint-dir", "ck", cwd=d)  # fmt: skip
    assert other.returncode == 2 and len(other.stderr.strip().splitlines()) == 1, other.stderr
    assert "another configuration (train.epochs: 2 stored, 3 now)" in other.stderr and not (d / "other").exists()
    with pytest.raises(CheckpointError):
        fit(dataclasses.replace(cfg4, train=dataclasses.replace(cfg4.train, ema_decay=0.5)),
            checkpoint=checkpoint_path(d / "ck", 4), checkpoint_every=1)  # fmt: skip


def test_ema_decay_flags_reach_the_config(tmp_path, cli):
    from study.runner.final import final_config

    record = {"trial_number": 0, "config": {"train": {"optimizer": "adamw", "batch_size": 64}}}
    assert final_config(record, seed=1, ema_decay=0.999).train.ema_decay == 0.999
    assert final_config(record, seed=1).train.ema_decay == 0.0  # no flag: the trial's own value
    r = cli("train", "--optimizer", "adamw", "--batch-size", "100", "--train-size", "200", "--epochs", "1",
            "--device", "cpu", "--precision", "fp32", "--ema-decay", "0.9", "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.splitlines()[-1])["config"]["train"]["ema_decay"] == 0.9
    bad = cli("train", "--optimizer", "adamw", "--ema-decay", "1", "--epochs", "1", "--device", "cpu")
    assert bad.returncode == 2 and "EMA decay must be in [0, 1)" in bad.stderr and "Traceback" not in bad.stderr


def test_final_refuses_csv_data_changed_since_the_study_ran(tmp_path, cli):
    """`run` refused a resume on a rewritten CSV, but `final` retrained and tested on it without a word."""
    from mnist_fc.data import write_csv

    x, y, xt, yt = load_embedded()
    write_csv(tmp_path / "tr.csv", x[:400], y[:400])
    write_csv(tmp_path / "te.csv", xt[:200], yt[:200])
    data = ("--train-csv", "tr.csv", "--test-csv", "te.csv", "--validation-size", "100")
    r = cli("run", "--trials", "1", "--epochs", "2", "--device", "cpu", "--no-progress", *data,
            "--storage", "sqlite:///c.db", "--study-name", "c")  # fmt: skip
    assert r.returncode == 0, r.stderr
    final = ("final", "--storage", "sqlite:///c.db", "--study-name", "c", "--seeds", "0", "--epochs", "1")
    write_csv(tmp_path / "te.csv", xt[:100], yt[:100])  # the test file cut to 100 rows
    r = cli(*final, "--out", "m")
    assert r.returncode == 2 and "te.csv: not the data study 'c' was run on" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "m").exists()
    write_csv(tmp_path / "te.csv", xt[:200], yt[:200])  # restored: the same bytes, accepted
    (tmp_path / "elsewhere").mkdir()
    elsewhere = [f"sqlite:///{tmp_path / 'c.db'}" if a == "sqlite:///c.db" else a for a in final]
    r = cli(*elsewhere, "--out", "m", cwd=tmp_path / "elsewhere")  # the stored relative path does not resolve there
    assert r.returncode == 2 and "run from the folder it ran in" in r.stderr, r.stderr
    r = cli(*final, "--out", "m")
    assert r.returncode == 0, r.stderr
    from mnist_fc.data import file_sha256

    trained_on = json.loads((tmp_path / "m" / "c.json").read_text())["trained_on"]  # the CSVs, by content
    assert trained_on["train_sha256"] == file_sha256(tmp_path / "tr.csv") and trained_on["images"] == 400
    assert trained_on["test_csv"] == str((tmp_path / "te.csv").resolve()) and "official" not in json.dumps(trained_on)


def test_a_final_writing_the_same_model_or_checkpoint_is_refused_until_its_holder_ends(final_dir, cli):
    """Two finals with the same --out/--name trained for hours and the last one silently replaced the other's
    files; two sharing a --checkpoint-dir wrote the same seed's checkpoint in turn. The second is now refused
    in one line naming the holder's pid, writes nothing, and a killed holder (kill -9) blocks nobody."""
    import os
    import signal
    import subprocess
    import sys

    d, _ = final_dir
    quick = ("--storage", "sqlite:///s.db", "--study-name", "acc", "--seeds", "0", "--epochs", "1",
             "--train-size", "300")  # fmt: skip
    for target, flags, what in (
        ("locked/../locked/m", ("--out", "locked", "--name", "m"), "model"),  # same files, spelled otherwise
        ("ck/seed0.ckpt", ("--out", "other", "--name", "n", "--checkpoint-dir", "./ck"), "checkpoint"),
    ):
        hold = (
            "import sys, time\nfrom study.locks import exclusive\n"
            f"with exclusive([({target!r}, 'x')]):\n    print('held', flush=True)\n    time.sleep(120)\n"
        )
        holder = subprocess.Popen([sys.executable, "-c", hold], cwd=d, stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout.readline().strip() == "held"
            r = cli("final", *quick, *flags, cwd=d)
            assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
            assert f"{what} " in r.stderr and f"another mnist-study process (pid {holder.pid})" in r.stderr, r.stderr
            out = d / flags[1]
            assert not out.exists() or not any(out.iterdir())  # nothing written
        finally:
            os.kill(holder.pid, signal.SIGKILL)
            holder.wait()
        r = cli("final", *quick, *flags, cwd=d)  # the kernel dropped the dead holder's lock
        assert r.returncode == 0, r.stderr
        assert (d / flags[1] / f"{flags[3]}.json").is_file()


def test_final_config_of_a_design_trial_drops_its_subset_seed_with_its_subsample_and_caps_the_warm_up():
    """Design trials store subset_seed 0 with their train size; final drops the train size (all 60,000 images)
    and kept the seed, so `final` on any claims_* study was refused for a seed the user never set. A shorter
    --epochs than the trial's warm-up made a config no run could follow."""
    from mnist_fc.config import DataConfig, RunConfig, TrainConfig, validate
    from study.runner.final import final_config

    stored = RunConfig(
        data=DataConfig(train_size=5000, subset_seed=0),
        train=TrainConfig(epochs=20, schedule="cosine", warmup_epochs=3.0, stop_margin=100),
    )
    record = {"trial_number": 4, "config": stored.to_dict()}
    cfg = final_config(record, seed=1, epochs=2)
    validate(cfg)
    assert cfg.data.train_size is None and cfg.data.subset_seed is None and cfg.data.include_validation
    assert cfg.train.warmup_epochs == 2.0 and cfg.train.epochs == 2
    assert cfg.train.stop_margin is None  # a design's early stop would end the final after 100 epochs
    kept = final_config(record, seed=1, train_size=1000)  # a subsample asked for keeps the trial's seed
    assert kept.data.subset_seed == 0 and kept.train.warmup_epochs == 3.0


def test_evaluate_refuses_the_models_own_training_rows_as_a_test_csv(tmp_path, cli):
    """`evaluate --test-csv` scored a model on its own training rows and called it test accuracy, though the
    model's JSON says what it was trained on."""
    from mnist_fc.data import write_csv
    from study.commands.evaluate import check_not_training_data
    from study.errors import UserError

    x_tr, y_tr, x_te, y_te = load_embedded()
    write_csv(tmp_path / "train_part.csv", x_tr[-300:][::-1], y_tr[-300:][::-1])  # validation rows, shuffled
    write_csv(tmp_path / "test_part.csv", x_te[:300], y_te[:300])
    r = cli("evaluate", str(MODELS / "accuracy.onnx"), "--test-csv", "train_part.csv", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [r.stderr.strip()], r.stderr
    assert "300 of its 300 rows also occur in the training data the official training images" in r.stderr
    r = cli("evaluate", str(MODELS / "accuracy.json"), "--test-csv", "test_part.csv", cwd=tmp_path)
    assert r.returncode == 0 and "test accuracy" in r.stdout, r.stderr
    # A model trained on CSVs: its JSON records the training CSV's SHA-256.
    from mnist_fc.data import file_sha256

    meta = {"trained_on": {"train_csv": str(tmp_path / "train_part.csv"),
                           "train_sha256": file_sha256(tmp_path / "train_part.csv")}}  # fmt: skip
    with pytest.raises(UserError, match="this is the model's training CSV"):
        check_not_training_data(meta, str(tmp_path / "train_part.csv"), x_tr[:1], y_tr[:1])
    check_not_training_data(meta, str(tmp_path / "test_part.csv"), x_te[:300], y_te[:300])  # held out: fine
