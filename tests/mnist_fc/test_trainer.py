import dataclasses
import json
import math
import os
import subprocess
import sys

import pytest
import torch

from mnist_fc.checkpoint import CheckpointError
from mnist_fc.config import DataConfig, ModelConfig, RunConfig, TrainConfig, article_preset
from mnist_fc.trainer import fit, train
from tests.conftest import REPO


def _cfg(**train):
    return RunConfig(
        model=ModelConfig(n_units_l1=64, n_units_l2=32, batchnorm=True),
        data=DataConfig(normalization="per_pixel"),
        train=TrainConfig(device="cpu", **{"epochs": 40, "lr": 1.0, "eval_every": 10, **train}),
    )


def test_loss_falls_on_small_subset(small_split):
    r = train(_cfg(), split=small_split)
    c = r.curves
    assert len(c.train_loss) == 40 and c.eval_epochs == [10, 20, 30, 40]
    assert c.train_loss[-1] < 0.5 * c.train_loss[0]
    assert r.val_accuracy > 0.7 and not r.diverged
    assert 0 <= r.test_accuracy <= 1 and math.isfinite(r.seconds)


def test_absurd_lr_is_flagged_diverged(small_split):
    cfg = RunConfig(
        model=ModelConfig(activation="relu", init_std=1.0),
        data=DataConfig(normalization="raw"),
        train=TrainConfig(device="cpu", epochs=200, lr=1e6, eval_every=5),
    )
    r = train(cfg, split=small_split)
    assert r.diverged
    assert r.epochs < 200  # stopped at the next check, not run to the end
    assert math.isnan(r.test_accuracy)


def test_article_preset_starts_on_the_ln10_plateau(small_split):
    """With N(0.01, 0.1) init and (x-127.5)/255 the article's loss sits near ln 10 = 2.30 at first."""
    cfg = article_preset(epochs=30, device="cpu", eval_every=10)
    r = train(cfg, split=small_split)
    assert all(abs(v - math.log(10)) < 0.06 for v in r.curves.train_loss)
    assert max(r.curves.train_accuracy) < 0.3  # no real learning yet: the plateau


def test_deterministic_on_cpu(small_split):
    a = train(_cfg(epochs=20, seed=5), split=small_split)
    b = train(_cfg(epochs=20, seed=5), split=small_split)
    c = train(_cfg(epochs=20, seed=6), split=small_split)
    assert a.curves.train_loss == b.curves.train_loss and a.val_accuracy == b.val_accuracy
    assert a.curves.train_loss != c.curves.train_loss


def test_on_eval_can_stop_early(small_split):
    seen = []
    r = train(_cfg(), split=small_split, on_eval=lambda ep, m: seen.append(ep) or ep >= 20)
    assert seen == [10, 20] and r.stopped_early and r.epochs == 20


def test_bf16_runs_and_learns(small_split):
    r = train(dataclasses.replace(_cfg(precision="bf16")), split=small_split)
    assert r.precision == "bf16" and r.val_accuracy > 0.7


# --- checkpoint / resume (issue 10: a long single run survives interruption) ---------------------

RESUMABLE = RunConfig(  # momentum buffers, BatchNorm statistics and dropout's RNG all must resume
    model=ModelConfig(n_units_l1=40, n_units_l2=20, batchnorm=True, dropout=0.1),
    data=DataConfig(normalization="per_pixel", train_size=1000),
    train=TrainConfig(device="cpu", epochs=20, lr=0.5, momentum=0.5, eval_every=5),
)

# A separate process that trains with a checkpoint and dies (no cleanup, like a kill) at epoch 15:
# its last checkpoint is the one written after epoch 10.
CRASHING_RUN = """
import os, sys
from pathlib import Path
from mnist_fc.config import RunConfig
from mnist_fc.trainer import fit
cfg = RunConfig.from_dict(__import__("json").loads(sys.argv[1]))
fit(cfg, checkpoint=Path(sys.argv[2]), checkpoint_every=5, on_eval=lambda ep, m: ep >= 15 and os._exit(3))
"""


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_resume_from_checkpoint_is_bit_identical(tmp_path):
    straight = fit(RESUMABLE)
    ckpt = tmp_path / "run.ckpt"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    crashed = subprocess.run(
        [sys.executable, "-c", CRASHING_RUN, json.dumps(RESUMABLE.to_dict()), str(ckpt)], env=env, check=False
    )
    assert crashed.returncode == 3 and ckpt.exists()
    assert torch.load(ckpt, weights_only=True)["epoch"] == 10  # the kill came before the epoch-15 checkpoint
    resumed = fit(RESUMABLE, checkpoint=ckpt, checkpoint_every=5)
    a, b = straight.result, resumed.result
    assert b.curves.to_dict() == a.curves.to_dict()  # exact: bit for bit
    transient = ("seconds", "precision_probe")  # the probe's own seconds and cache hit are not results
    assert {k: v for k, v in b.summary().items() if k not in transient} == {
        k: v for k, v in a.summary().items() if k not in transient
    }
    wa, wb = _weights(straight.model), _weights(resumed.model)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    # The finished run left its final checkpoint: running again returns the same result without training.
    again = fit(RESUMABLE, checkpoint=ckpt, checkpoint_every=5)
    assert again.result.curves.to_dict() == a.curves.to_dict() and again.result.test_accuracy == a.test_accuracy


def test_checkpoint_of_another_config_is_refused(tmp_path):
    ckpt = tmp_path / "run.ckpt"
    short = dataclasses.replace(RESUMABLE, train=dataclasses.replace(RESUMABLE.train, epochs=5))
    fit(short, checkpoint=ckpt, checkpoint_every=5)
    other = dataclasses.replace(short, train=dataclasses.replace(short.train, lr=0.3))
    with pytest.raises(CheckpointError, match=r"another configuration \(train.lr: 0.5 stored, 0.3 now\)"):
        fit(other, checkpoint=ckpt, checkpoint_every=5)
    ckpt.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        fit(short, checkpoint=ckpt, checkpoint_every=5)


def test_article_run_script_logs_like_the_article_and_resumes(tmp_path):
    script = REPO / "scripts" / "article_run.py"
    argv = [sys.executable, str(script), "--epochs", "6", "--train-size", "600", "--eval-every", "3"]
    argv += ["--log-every", "3", "--checkpoint", str(tmp_path / "a.ckpt"), "--checkpoint-every", "3"]
    argv += ["--device", "cpu", "--out", str(tmp_path / "out")]
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    first = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert [line.split(",")[0] for line in lines[:3]] == ["Epoch 1", "Epoch 3", "Epoch 6"]
    assert lines[0].startswith("Epoch 1, Loss 2.3") and ", Acc 0." in lines[0]
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    curves = json.loads((tmp_path / "out" / "curves.json").read_text())
    assert result["epochs"] == 6 and len(curves["train_loss"]) == 6 and result["config"]["data"]["include_validation"]
    recorded = (tmp_path / "out" / "result.json").read_bytes()
    second = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)  # resumes the finished run
    assert second.returncode == 0 and json.loads((tmp_path / "out" / "curves.json").read_text()) == curves
    assert not any(line.startswith("Epoch") for line in second.stdout.splitlines())  # nothing retrained
    # ... so its record (machine, command, seconds of the run that trained) is kept, not rewritten by the rerun
    assert (tmp_path / "out" / "result.json").read_bytes() == recorded and "already finished" in second.stdout
    bad = subprocess.run(
        [*argv[:-2], "--epochs", "7", "--out", str(tmp_path / "o2")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and "another configuration" in bad.stderr and "Traceback" not in bad.stderr


def test_article_run_script_overrides_hold_out_validation_and_hide_the_test_set(tmp_path):
    """The article-space accuracy runs: overrides apply, validation is held out, no test figure leaks."""
    argv = [sys.executable, str(REPO / "scripts" / "article_run.py"), "--epochs", "4", "--train-size", "600"]
    argv += ["--eval-every", "2", "--device", "cpu", "--out", str(tmp_path / "out"), "--batchnorm", "--lr", "3"]
    argv += ["--n-units-l1", "24", "--init-mean", "0", "--normalization", "global"]
    argv += ["--hold-out-validation", "--no-test"]
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    model, data, train = (result["config"][k] for k in ("model", "data", "train"))
    assert model["batchnorm"] and model["n_units_l1"] == 24 and model["n_units_l2"] == 30  # untouched: the article's
    assert model["init_mean"] == 0.0 and model["init_std"] == 0.1 and train["lr"] == 3.0 and train["momentum"] == 0.0
    assert data["normalization"] == "global" and not data["include_validation"]
    assert not [k for k in result if "test" in k] and "test acc" not in done.stdout and "val acc" in done.stdout
    assert result["command"].endswith("--hold-out-validation --no-test") and result["machine"]["cores"] >= 1


# --- stop_margin: end a run a declared number of epochs after it left the plateau ----------------


def test_stop_margin_ends_the_run_after_the_plateau_exit(small_split):
    from mnist_fc.measures import plateau_length

    cfg = _cfg(epochs=60, eval_every=4, lr=0.3, stop_margin=6)
    full = train(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, stop_margin=None)), split=small_split)
    exit_epoch = plateau_length(full.curves.train_loss).epochs + 1  # the measure counts steps before it
    assert 1 < exit_epoch < 40  # the test config does leave its plateau, and not at once
    r = train(cfg, split=small_split)
    expected = next(e for e in range(4, 61, 4) if e >= exit_epoch + 6)  # the first check at/after exit + margin
    assert r.epochs == expected and r.stop_reason == "plateau_margin"
    assert not r.stopped_early and not r.diverged and math.isfinite(r.test_accuracy)  # a normal finished run
    assert r.curves.train_loss == full.curves.train_loss[:expected]  # same run up to there, bit for bit
    assert plateau_length(r.curves.train_loss).epochs == exit_epoch - 1  # the measure is unchanged by the stop


def test_stop_margin_on_the_plateau_runs_all_epochs(small_split):
    r = train(article_preset(epochs=20, device="cpu", eval_every=5, stop_margin=0), split=small_split)
    assert r.epochs == 20 and r.stop_reason == "epochs" and not r.stopped_early


def test_stop_reason_names_callback_and_divergence(small_split):
    assert train(_cfg(epochs=20), split=small_split, on_eval=lambda ep, m: True).stop_reason == "callback"
    blowup = RunConfig(
        model=ModelConfig(activation="relu", init_std=1.0),
        data=DataConfig(normalization="raw"),
        train=TrainConfig(device="cpu", epochs=20, lr=1e6, eval_every=5),
    )
    assert train(blowup, split=small_split).stop_reason == "diverged"


def test_subset_seed_is_separate_from_the_train_seed():
    from mnist_fc.data import load_split

    def subset(subset_seed, seed):
        return load_split(DataConfig(train_size=300, subset_seed=subset_seed), seed=seed).y_train.tolist()

    assert subset(7, seed=0) == subset(7, seed=1)  # the init seed varies, the images do not
    assert subset(7, seed=0) != subset(8, seed=0)
    assert subset(None, seed=3) == subset(3, seed=0)  # None: the train seed, as before the field existed


def test_old_stored_config_dicts_still_load():
    old = RunConfig().to_dict()
    del old["data"]["subset_seed"], old["train"]["stop_margin"]
    assert RunConfig.from_dict(old) == RunConfig()


# --- checkpoint / resume of the minibatch loop (issue 14: hour-long final runs across sessions) -------

MINIBATCH_RESUMABLE = RunConfig(  # everything the next epoch depends on: BatchNorm, dropout, AdamW, cosine lr,
    # label smoothing, and a fresh affine + elastic warp per epoch from the loop's own generator
    model=ModelConfig(
        n_units_l1=32, n_units_l2=16, activation="relu", batchnorm=True, dropout=0.1, init_mean=0, init_std=1.4
    ),
    data=DataConfig(normalization="global", train_size=1000),
    train=TrainConfig(
        device="cpu", precision="fp32", epochs=5, eval_every=1, optimizer="adamw", lr=3e-3, batch_size=100,
        schedule="cosine", warmup_epochs=1, label_smoothing=0.1, aug_shift=2, aug_rotate=10, aug_elastic_alpha=8,
    ),
)  # fmt: skip


@pytest.fixture(scope="module")
def mb_split():
    from mnist_fc.data import load_split

    return load_split(MINIBATCH_RESUMABLE.data, seed=0)


class _Interrupted(Exception):
    pass


def _interrupt_at(epoch: int):
    def on_eval(ep, metrics):
        if ep >= epoch:
            raise _Interrupted
        return False

    return on_eval


def _same_run(a, b) -> None:
    assert b.result.curves.to_dict() == a.result.curves.to_dict()  # exact: bit for bit
    transient = ("seconds", "precision_probe")
    assert {k: v for k, v in b.result.summary().items() if k not in transient} == {
        k: v for k, v in a.result.summary().items() if k not in transient
    }
    wa, wb = _weights(a.model), _weights(b.model)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.parametrize("ema_decay", [0.0, 0.9])
def test_minibatch_resume_is_bit_identical(tmp_path, mb_split, ema_decay):
    cfg = dataclasses.replace(
        MINIBATCH_RESUMABLE, train=dataclasses.replace(MINIBATCH_RESUMABLE.train, ema_decay=ema_decay)
    )
    straight = fit(cfg, split=mb_split)
    ckpt = tmp_path / "run.ckpt"
    with pytest.raises(_Interrupted):  # stops inside epoch 4's check, before its checkpoint
        fit(cfg, split=mb_split, checkpoint=ckpt, checkpoint_every=3, on_eval=_interrupt_at(4))
    state = torch.load(ckpt, weights_only=True)
    assert state["epoch"] == 3 and (state["loop"]["ema"] is not None) == (ema_decay > 0)
    torch.manual_seed(12345)  # whatever the process did meanwhile: the checkpoint brings its own RNG states
    resumed = fit(cfg, split=mb_split, checkpoint=ckpt, checkpoint_every=3)  # epochs 4 and 5
    _same_run(straight, resumed)
    assert torch.load(ckpt, weights_only=True)["epoch"] == 5  # the final checkpoint, written at the end
    again = fit(cfg, split=mb_split, checkpoint=ckpt, checkpoint_every=3)  # finished: nothing left to train
    _same_run(straight, again)


def test_minibatch_checkpoint_of_another_config_or_loop_is_refused(tmp_path, mb_split):
    ckpt = tmp_path / "run.ckpt"
    short = dataclasses.replace(MINIBATCH_RESUMABLE, train=dataclasses.replace(MINIBATCH_RESUMABLE.train, epochs=1))
    fit(short, split=mb_split, checkpoint=ckpt, checkpoint_every=1)
    other = dataclasses.replace(short, train=dataclasses.replace(short.train, ema_decay=0.5))
    with pytest.raises(CheckpointError, match=r"another configuration \(train.ema_decay: 0.0 stored, 0.5 now\)"):
        fit(other, split=mb_split, checkpoint=ckpt, checkpoint_every=1)
    # A full-batch config can be trained by either loop (final models use the minibatch one): a checkpoint
    # of one loop is refused by the other, whose curves and numerics differ.
    from mnist_fc.minibatch import fit_minibatch

    plain = dataclasses.replace(RESUMABLE, train=dataclasses.replace(RESUMABLE.train, epochs=2))
    fb = tmp_path / "fullbatch.ckpt"
    fit(plain, checkpoint=fb, checkpoint_every=1)
    with pytest.raises(CheckpointError, match="other training loop"):
        fit_minibatch(plain, checkpoint=fb, checkpoint_every=1)


def test_fullbatch_checkpoint_written_before_the_minibatch_entries_still_resumes(tmp_path):
    """The article run's checkpoint predates the `seen` and `loop` entries (same format number)."""
    cfg = dataclasses.replace(RESUMABLE, train=dataclasses.replace(RESUMABLE.train, epochs=10))
    straight = fit(cfg)
    ckpt = tmp_path / "run.ckpt"
    with pytest.raises(_Interrupted):
        fit(cfg, checkpoint=ckpt, checkpoint_every=5, on_eval=_interrupt_at(10))
    state = torch.load(ckpt, weights_only=True)
    assert state["epoch"] == 5 and state["seen"] is None and state["loop"] is None
    del state["seen"], state["loop"]
    torch.save(state, ckpt)
    _same_run(straight, fit(cfg, checkpoint=ckpt, checkpoint_every=5))


class Foreign:
    """A class torch's weights_only loader does not allow: what another program's pickle would hold."""


def test_a_checkpoint_holding_python_objects_is_refused_without_unsafe_advice(tmp_path):
    from mnist_fc import checkpoint

    path = tmp_path / "seed0.ckpt"
    torch.save({"format": checkpoint.FORMAT, "thing": Foreign()}, path)
    with pytest.raises(checkpoint.CheckpointError) as info:
        checkpoint.read(path)
    assert "weights_only" not in str(info.value) and "not loaded" in str(info.value)


def test_a_checkpoint_written_on_another_device_is_refused_by_name_not_called_damaged(tmp_path):
    """A CUDA run's checkpoint resumed on the CPU (device "auto" on another host) failed loading the generator
    state and was called damaged, inviting the user to delete hours of training. The device it was written on
    is recorded and named; a CPU run records no CUDA state (asking every GPU for it started CUDA)."""
    cfg = dataclasses.replace(RESUMABLE, train=dataclasses.replace(RESUMABLE.train, epochs=10))
    ckpt = tmp_path / "run.ckpt"
    with pytest.raises(_Interrupted):
        fit(cfg, checkpoint=ckpt, checkpoint_every=5, on_eval=_interrupt_at(10))
    state = torch.load(ckpt, weights_only=True)
    assert state["device_type"] == "cpu" and state["cuda_rng"] is None
    state["device_type"] = "cuda"
    torch.save(state, ckpt)
    with pytest.raises(CheckpointError, match=r"written by a cuda run .* resume it with --device cuda"):
        fit(cfg, checkpoint=ckpt, checkpoint_every=5)
