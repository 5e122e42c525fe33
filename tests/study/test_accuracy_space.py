"""The `accuracy` search space: every sample is a valid two-hidden-layer config within its declared ranges."""

import optuna

from mnist_fc.config import RunConfig, TrainConfig, validate
from study.spaces import ACCURACY_BATCH_SIZES, ACCURACY_WIDTHS, SPACES


def test_samples_are_valid_and_in_range():
    space = SPACES["accuracy"]
    base = RunConfig(train=TrainConfig(epochs=20))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = {"optimizer": set(), "schedule": set(), "activation": set(), "batch_size": set(), "elastic": set()}
    for _ in range(200):
        trial = study.ask()
        cfg = space(trial, base)
        validate(cfg)
        m, t = cfg.model, cfg.train
        assert m.n_units_l1 in ACCURACY_WIDTHS and m.n_units_l2 in ACCURACY_WIDTHS
        assert 10 <= t.epochs <= 20 and t.batch_size in ACCURACY_BATCH_SIZES
        assert 0 <= m.dropout <= 0.5 and 0 <= t.label_smoothing <= 0.2 and 1e-6 <= t.weight_decay <= 0.1
        assert t.warmup_epochs <= 0.3 * t.epochs + 1e-9
        assert (t.optimizer == "nesterov") == (t.momentum > 0)
        assert t.aug_shift <= 2.5 and t.aug_rotate <= 12.5
        if t.aug_elastic_alpha > 0:
            assert t.aug_shift > 0  # elastic only comes with the affine part
        assert cfg.data.normalization == "global"
        assert RunConfig.from_dict(cfg.to_dict()) == cfg  # stored configs round-trip
        seen["optimizer"].add(t.optimizer)
        seen["schedule"].add(t.schedule)
        seen["activation"].add(m.activation)
        seen["batch_size"].add(t.batch_size)
        seen["elastic"].add(t.aug_elastic_alpha > 0)
        study.tell(trial, 0.5)
    assert seen["optimizer"] == {"sgd", "nesterov", "adam", "adamw"}
    assert seen["schedule"] == {"none", "cosine", "onecycle"}
    assert None in seen["batch_size"] and len(seen["batch_size"]) == 4
    assert {"relu", "gelu", "sigmoid"} <= seen["activation"] and seen["elastic"] == {False, True}
