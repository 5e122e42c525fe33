"""Checkpoints of a training run, so a long run (the article's 50,000 epochs, an hour-long final
model) survives interruption.

A checkpoint holds everything the loop's next epoch depends on: weights (with BatchNorm statistics),
optimiser state (momentum buffers), the per-epoch loss/correct (and, for minibatches, images-seen)
buffers, the validation curves so far, the plateau-exit search, the torch RNG states (dropout) and
the run's config; plus whatever the loop itself keeps (`loop`: the minibatch loop's lr scheduler,
shuffling/augmentation generator and weight average). Resuming from it gives bit-identical curves
and weights on the CPU. Writes are atomic (temporary file, fsync, os.replace): a crash while
writing leaves the previous checkpoint intact.

The `seen` and `loop` entries were added without a format bump: a full-batch checkpoint written
before them (no such keys) still resumes, since the full-batch loop has neither.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import torch

from mnist_fc.config import RunConfig
from mnist_fc.errors import ConfigError, MnistFcError
from mnist_fc.files import replacing
from mnist_fc.runstate import RunState

FORMAT = 1  # bump when the stored fields change


class CheckpointError(MnistFcError, ValueError):
    """The checkpoint file belongs to another run, or cannot be read: a user error, not a bug."""


def save(path: Path, run: RunState, *, seconds: float, loop: dict[str, Any] | None = None) -> None:
    """Write `run`'s state after epoch `run.epochs_run` (and the loop's own `loop` state) to `path`, atomically."""
    e = run.epochs_run
    state: dict[str, Any] = {
        "format": FORMAT,
        "config": run.cfg.to_dict(),
        "epoch": e,
        "seconds": seconds,
        "model": run.model.state_dict(),
        "optimizer": run.opt.state_dict(),
        "losses": run.losses[:e].cpu(),
        "correct": run.correct[:e].cpu(),
        "seen": run.seen[:e].cpu() if run.seen is not None else None,
        "curves": run.curves.to_dict(),
        "val": (run.val_loss, run.val_acc),
        "flags": {"diverged": run.diverged, "stopped": run.stopped, "margin_reached": run.margin_reached},
        "plateau": (run.plateau_exit, run.scanned),
        "rng": torch.get_rng_state(),
        # The run's device's generator only: asking every visible GPU started CUDA in CPU runs, and a
        # resume on a machine with another number of GPUs could not set them all back.
        "device_type": run.losses.device.type,
        "cuda_rng": torch.cuda.get_rng_state(run.losses.device) if run.losses.device.type == "cuda" else None,
        "loop": loop,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp, open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())


def restore(path: Path, run: RunState) -> float:
    """Load `path` into `run` (same config required); return the training seconds already spent."""
    return resume(path, run)[0]


def resume(path: Path, run: RunState) -> tuple[float, dict[str, Any]]:
    """`restore`, and also return the loop's own state saved with it ({} when it saved none)."""
    state = load(path, run.cfg)
    if missing := [k for k in _REQUIRED if k not in state]:
        raise CheckpointError(f"checkpoint {path} is damaged: it has no {missing[0]!r} entry")
    e = state["epoch"]
    if not isinstance(e, int) or not 0 <= e <= run.cfg.train.epochs:
        raise CheckpointError(f"checkpoint {path} is damaged: epoch {e!r} of a {run.cfg.train.epochs}-epoch run")
    written_on, here = state.get("device_type"), run.losses.device.type  # absent in older checkpoints
    if written_on is not None and written_on != here:
        raise CheckpointError(
            f"checkpoint {path} was written by a {written_on} run and this run is on {here}: its random "
            f"state belongs to that device; resume it with --device {written_on} (or delete it to start again)"
        )
    try:
        return _apply(path, state, run)
    except DAMAGE as exc:
        raise damaged(path, exc) from None


# What loading a damaged or crafted entry raises (shapes, dtypes, missing keys), here and in the loops
# that load their own state from the checkpoint (minibatch: scheduler, generator, weight average).
DAMAGE = (KeyError, TypeError, ValueError, RuntimeError, IndexError)


def damaged(path: Path, exc: BaseException) -> CheckpointError:
    """The one-line error for a checkpoint entry that would not load."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
    return CheckpointError(f"checkpoint {path} is damaged ({first}); delete it to start again")


_REQUIRED = ("epoch", "seconds", "model", "optimizer", "losses", "correct", "curves", "val", "flags", "plateau", "rng")


def _apply(path: Path, state: dict[str, Any], run: RunState) -> tuple[float, dict[str, Any]]:
    if (run.seen is None) != (state.get("seen") is None):  # a full-batch config can take either loop
        raise CheckpointError(
            f"checkpoint {path} was written by the other training loop (full-batch vs minibatch); "
            "delete it or use another path"
        )
    device = run.losses.device
    e = int(state["epoch"])
    run.model.load_state_dict(state["model"])
    run.opt.load_state_dict(state["optimizer"])
    run.losses[:e] = state["losses"].to(device)
    run.correct[:e] = state["correct"].to(device)
    if run.seen is not None:
        run.seen[:e] = state["seen"].to(device)
    c = state["curves"]
    run.curves.eval_epochs, run.curves.val_loss, run.curves.val_accuracy = (
        list(c["eval_epochs"]),
        list(c["val_loss"]),
        list(c["val_accuracy"]),
    )
    run.val_loss, run.val_acc = state["val"]
    flags = state["flags"]
    run.diverged, run.stopped, run.margin_reached = flags["diverged"], flags["stopped"], flags["margin_reached"]
    run.plateau_exit, run.scanned = state["plateau"]
    run.epochs_run = e
    torch.set_rng_state(state["rng"])
    cuda_rng = state.get("cuda_rng")
    if cuda_rng is not None and device.type == "cuda":
        if isinstance(cuda_rng, (list, tuple)):  # older checkpoints kept every visible GPU's state
            cuda_rng = cuda_rng[min(device.index or 0, len(cuda_rng) - 1)]
        torch.cuda.set_rng_state(cuda_rng, device)
    return float(state["seconds"]), dict(state.get("loop") or {})


def path_to_use(checkpoint: str | Path | None, checkpoint_every: int) -> Path | None:
    """The loops' checkpoint arguments checked once: a path needs a positive interval."""
    if checkpoint is None:
        return None
    if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int) or checkpoint_every < 1:
        raise ConfigError(
            f"checkpoint_every must be a whole number >= 1 with a checkpoint path, not {checkpoint_every!r}"
        )
    path = Path(checkpoint)
    try:  # now, not after the first checkpoint_every epochs have trained
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot make its folder {path.parent} ({exc.strerror or exc})") from None
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder: give a checkpoint file path")
    return path


def read(path: Path) -> dict[str, Any]:
    """The checkpoint at `path` as stored, whatever its config (e.g. to draw a run still going);
    CheckpointError (one line) if it cannot be read or is not a checkpoint."""
    _check_archive(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # tensors, dicts, numbers only
    except Exception as exc:  # a truncated or foreign file: say which, not a pickle traceback
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]  # pickle errors run to many lines
        if "Weights only load failed" in first:  # torch's text goes on to suggest weights_only=False: never
            first = "it holds Python objects, not only tensors and numbers, so it is not loaded (not ours?)"
        raise CheckpointError(f"cannot read checkpoint {path}: {first}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a mnist_fc checkpoint (format {FORMAT})")
    return state


def _check_archive(path: Path) -> None:
    """torch.save writes a zip archive, and torch.load does not check its CRCs: a flipped byte in the
    weights would resume silently with other weights. A file that is not a zip is not ours."""
    try:
        if not zipfile.is_zipfile(path):
            if path.is_file():
                raise CheckpointError(f"{path} is not a mnist_fc checkpoint (not a PyTorch zip archive)")
            return  # a folder or a missing file: torch.load says which
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from None
    if bad is not None:
        raise CheckpointError(f"checkpoint {path} is corrupt: {bad} fails its checksum; delete it to start again")


def load(path: Path, cfg: RunConfig) -> dict[str, Any]:
    """The checkpoint at `path` as stored; CheckpointError (one line) if unreadable or of another config.

    Also the check to run before hours of work: refuse a wrong checkpoint before anything trains."""
    state = read(path)
    # Through from_dict: a checkpoint written before a config field existed gets that field's default,
    # which is the behaviour it was trained with (e.g. the article run started before input_shift).
    try:
        stored = RunConfig.from_dict(state["config"]).to_dict()
    except (KeyError, TypeError, ValueError) as exc:  # a field this version does not know
        raise CheckpointError(f"checkpoint {path} holds a configuration this version cannot read: {exc}") from None
    if stored != cfg.to_dict():
        diff = _config_diff(stored, cfg.to_dict())
        raise CheckpointError(f"checkpoint {path} is for another configuration ({diff}); delete it or use another path")
    return state


def _config_diff(stored: dict[str, Any], wanted: dict[str, Any]) -> str:
    diffs = [
        f"{part}.{k}: {stored.get(part, {}).get(k)!r} stored, {v!r} now"
        for part, fields in wanted.items()
        for k, v in fields.items()
        if stored.get(part, {}).get(k) != v
    ]
    return "; ".join(diffs[:3]) or "different fields"
