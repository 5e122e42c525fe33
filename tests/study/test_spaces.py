import optuna

from mnist_fc.config import RunConfig, validate
from study.spaces import SPACES


def test_article_space_samples_valid_configs():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(50):
        trial = study.ask()
        cfg = SPACES["article"](trial, RunConfig())
        validate(cfg)
        assert cfg.model.activation == "sigmoid" and cfg.train.momentum == 0.0
        assert 16 <= cfg.model.n_units_l1 <= 1024 and 1e-3 <= cfg.train.lr <= 10
        study.tell(trial, 0.5)
    dist = study.trials[0].distributions
    assert dist["lr"].log and dist["init_std"].log and dist["n_units_l1"].log
