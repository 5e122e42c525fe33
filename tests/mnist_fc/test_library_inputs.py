"""What a Python caller hands the library: its own Split, fit's arguments, checkpoint files, a data
folder. Each mistake is one line of the library's own error family, before anything trains."""

from __future__ import annotations

import dataclasses
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from mnist_fc.checkpoint import CheckpointError
from mnist_fc.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from mnist_fc.data import Split, embedded_dir, load_embedded
from mnist_fc.errors import ConfigError, DataError, MnistFcError
from mnist_fc.trainer import fit


def _cfg(epochs: int = 4, **model) -> RunConfig:
    return RunConfig(
        model=ModelConfig(n_units_l1=16, n_units_l2=8, **model),
        train=TrainConfig(epochs=epochs, eval_every=1, device="cpu", precision="fp32"),
    )


def _tiny(split: Split, n: int = 200) -> Split:
    return dataclasses.replace(split, x_train=split.x_train[:n], y_train=split.y_train[:n])


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda s: dict(x_train=s.x_train.reshape(-1, 28, 28)), r"shape \(n, 784\)"),
        (lambda s: dict(y_train=np.where(s.y_train == 0, 10, s.y_train)), "labels must be whole numbers 0-9"),
        (lambda s: dict(y_train=s.y_train - 1), "labels must be whole numbers 0-9"),
        (lambda s: dict(y_train=s.y_train[:-1]), "labels of shape"),
        (lambda s: dict(x_train=list(s.x_train)), "numpy arrays"),
        (lambda s: dict(x_val=s.x_val[:0], y_val=s.y_val[:0]), "no validation images"),
        (lambda s: dict(x_train=s.x_train[:0], y_train=s.y_train[:0]), "no training images"),
        (lambda s: dict(x_train=s.x_train / 255.0), "scaled to 0-1"),
        (lambda s: dict(x_train=s.x_train.astype(np.float32) * 2), "raw values in 0-255"),
        (lambda s: dict(y_train=s.y_train.astype(np.float64)), "whole numbers"),
    ],
)
def test_a_callers_split_is_checked_before_training(small_split, change, words):
    split = _tiny(small_split)
    bad = dataclasses.replace(split, **change(split))
    with pytest.raises(DataError, match=words):
        fit(_cfg(), split=bad)


def test_a_split_that_contradicts_the_recorded_train_size_is_refused(small_split):
    cfg = dataclasses.replace(_cfg(), data=DataConfig(train_size=100))
    with pytest.raises(DataError, match="the config's train_size is 100"):
        fit(cfg, split=_tiny(small_split, 300))


def test_batchnorm_on_a_single_training_image_is_a_data_error(small_split):
    with pytest.raises(DataError, match="BatchNorm needs at least 2 training images"):
        fit(_cfg(batchnorm=True), split=_tiny(small_split, 1))


def test_fit_arguments_of_the_wrong_kind_are_config_errors(small_split, tmp_path):
    split = _tiny(small_split)
    with pytest.raises(ConfigError, match="log_every"):
        fit(_cfg(), split=split, log=print, log_every=-1)
    with pytest.raises(ConfigError, match="checkpoint_every"):
        fit(_cfg(), split=split, checkpoint=tmp_path / "c.pt")  # checkpoint_every defaults to 0
    (tmp_path / "file").write_text("x")
    with pytest.raises(CheckpointError, match="cannot make its folder"):  # before any epoch trains
        fit(_cfg(), split=split, checkpoint=tmp_path / "file" / "c.pt", checkpoint_every=1)
    bad = dataclasses.replace(_cfg(), train=dataclasses.replace(_cfg().train, label_smoothing="0.1"))
    with pytest.raises(ConfigError, match=r"train\.label_smoothing must be a finite number"):
        fit(bad, split=split)


def _stopped_checkpoint(split: Split, path: Path) -> RunConfig:
    cfg = _cfg()

    def stop(epoch, metrics):
        if epoch == 3:
            raise KeyboardInterrupt  # an interruption mid-run: the checkpoint of epoch 2 stays

    with pytest.raises(KeyboardInterrupt):
        fit(cfg, split=split, on_eval=stop, checkpoint=path, checkpoint_every=2)
    return cfg


def _rewrite(path: Path, edit) -> None:
    state = torch.load(path, weights_only=True)
    edit(state)
    torch.save(state, path)


def test_damaged_checkpoints_are_refused_not_resumed(small_split, tmp_path):
    split = _tiny(small_split)
    path = tmp_path / "c.pt"
    cfg = _stopped_checkpoint(split, path)
    good = path.read_bytes()

    with zipfile.ZipFile(path) as archive:  # flip a byte inside a stored tensor: torch.load would not notice
        info = next(i for i in archive.infolist() if "/data/" in i.filename and i.file_size > 64)
    raw = bytearray(good)
    at = info.header_offset  # the local header's own name and extra lengths (torch pads the extra field)
    start = (
        at + 30 + int.from_bytes(raw[at + 26 : at + 28], "little") + int.from_bytes(raw[at + 28 : at + 30], "little")
    )
    raw[start + 40] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="fails its checksum"):
        fit(cfg, split=split, checkpoint=path, checkpoint_every=2)

    for edit, words in [
        (lambda s: s.pop("model"), "no 'model' entry"),
        (lambda s: s.update(epoch=99), "epoch 99 of a 4-epoch run"),
        (lambda s: s["model"].update({"net.0.weight": torch.zeros(3)}), "damaged"),
    ]:
        path.write_bytes(good)
        _rewrite(path, edit)
        with pytest.raises(CheckpointError, match=words):
            fit(cfg, split=split, checkpoint=path, checkpoint_every=2)

    path.write_text("epoch 2\n")
    with pytest.raises(CheckpointError, match="not a PyTorch zip archive"):
        fit(cfg, split=split, checkpoint=path, checkpoint_every=2)
    path.write_bytes(good)
    assert fit(cfg, split=split, checkpoint=path, checkpoint_every=2).result.epochs == 4  # the good one resumes


def test_a_data_folder_without_good_checksums_is_a_data_error(tmp_path):
    folder = tmp_path / "mnist"
    shutil.copytree(embedded_dir(), folder)
    assert len(load_embedded(folder)[0]) == 60_000
    sums = folder / "SHA256SUMS"
    for content, words in [
        (None, "cannot read the checksums"),
        (b"a b c\n", "not 'SHA256  FILE'"),
        (b"\xff\xfe", "not a text"),
    ]:
        if content is None:
            sums.unlink()
        else:
            sums.write_bytes(content)
        with pytest.raises(DataError, match=words):
            load_embedded(folder)
    with pytest.raises(DataError, match="no such data folder"):
        load_embedded(tmp_path / "missing")
    shutil.copy(embedded_dir() / "SHA256SUMS", sums)
    load_embedded(folder)  # cached now; a file replaced afterwards is read and verified again
    labels = folder / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(labels.read_bytes())
    raw[-3] ^= 0x01
    labels.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="SHA-256 mismatch"):
        load_embedded(folder)
    assert issubclass(DataError, MnistFcError)
