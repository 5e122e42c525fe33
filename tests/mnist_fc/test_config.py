"""mnist_fc.config: every value that cannot be trained, or would be silently ignored, is a ConfigError
naming it, before anything reaches torch or numpy (configs also come from JSON, YAML and hand edits)."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from mnist_fc.config import (
    MAX_SEED,
    MAX_UNITS,
    DataConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
    validate,
)
from mnist_fc.errors import ConfigError

SECTIONS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig}
WRONG = {  # values of another kind than the annotation, each a plausible slip
    "bool": ["False", "no", 0, 1, None, 1.0],
    "int": ["5", 2.5, True, float("nan"), None, "1e3"],
    "float": ["0.1", True, float("nan"), float("inf"), -float("inf"), None],
    "str": [1, None, b"x", True],
}


def _config(part: str, **changes) -> RunConfig:
    cfg = RunConfig()
    return dataclasses.replace(cfg, **{part: dataclasses.replace(getattr(cfg, part), **changes)})


def _cases():
    for part, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            kind, _, none = str(f.type).partition(" | ")
            for value in WRONG[kind]:
                if value is None and none:
                    continue
                yield pytest.param(part, f.name, value, id=f"{part}.{f.name}={value!r}")


@pytest.mark.parametrize(("part", "name", "value"), list(_cases()))
def test_a_value_of_the_wrong_kind_is_refused_by_name(part, name, value):
    with pytest.raises(ConfigError, match=rf"^{part}\.{name} must be "):
        validate(_config(part, **{name: value}))


def test_numpy_scalars_and_whole_floats_for_float_fields_are_numbers():
    cfg = RunConfig(
        model=ModelConfig(n_units_l1=np.int64(64), batchnorm=np.bool_(True), init_std=np.float32(0.1)),
        train=TrainConfig(lr=1, epochs=np.int32(3)),
    )
    validate(cfg)


@pytest.mark.parametrize(
    ("part", "changes", "message"),
    [
        ("model", {"n_units_l1": MAX_UNITS + 1}, "hidden sizes must be <="),
        ("model", {"init_std": 1e7}, "init mean and std"),
        ("data", {"validation_size": 0}, "validation size must be in"),
        ("data", {"validation_size": -5}, "validation size must be in"),
        ("data", {"train_csv": "a.csv", "test_csv": "b.csv"}, "only with source 'csv'"),
        ("data", {"subset_seed": 3}, "subset seed needs a train size"),
        ("data", {"train_size": 100, "subset_seed": MAX_SEED + 1}, "subset seed must be in"),
        ("data", {"input_scale": 1e9}, "input scale"),
        ("train", {"seed": -1}, "seed must be in"),
        ("train", {"seed": 2**70}, "seed must be in"),
        ("train", {"lr": 1e300}, "learning rate"),
        ("train", {"aug_rotate": 1e9}, "rotation and shear"),
        ("train", {"aug_shift": 29.0}, "shift must be"),
        ("train", {"warmup_epochs": 1e12, "schedule": "cosine"}, "warm-up epochs"),
        ("train", {"warmup_epochs": 50.0, "epochs": 5, "schedule": "cosine"}, "at most the number of epochs"),
        ("train", {"warmup_epochs": 5.0, "epochs": 5, "schedule": "onecycle"}, None),
        ("train", {"aug_elastic_sigma": 6.0}, "needs an elastic alpha"),
        ("train", {"batch_size": 1}, None),  # fine without BatchNorm
    ],
)
def test_out_of_range_and_ignored_values(part, changes, message):
    cfg = _config(part, **changes)
    if message is None:
        validate(cfg)
    else:
        with pytest.raises(ConfigError, match=message):
            validate(cfg)


def test_batchnorm_refuses_batches_of_one_image():
    cfg = RunConfig(model=ModelConfig(batchnorm=True), train=TrainConfig(batch_size=1))
    with pytest.raises(ConfigError, match="at least 2 images"):
        validate(cfg)


def test_from_dict_refuses_a_misspelt_section_and_says_the_whole_field_name():
    with pytest.raises(ConfigError, match="unknown section 'trian'"):
        RunConfig.from_dict({"trian": {"epochs": 5}})
    with pytest.raises(ConfigError, match="a_very_long_unknown_field_name_that_goes_on_and_on"):
        RunConfig.from_dict({"train": {"a_very_long_unknown_field_name_that_goes_on_and_on": 1}})
    with pytest.raises(ConfigError, match="not a mapping"):
        RunConfig.from_dict([1, 2])  # type: ignore[arg-type]


def test_every_default_and_json_round_trip_validates():
    cfg = RunConfig()
    validate(cfg)
    again = RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and math.isfinite(again.train.lr)
