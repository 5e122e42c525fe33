"""The claim designs: expansion, baseline, declarations, idempotent enqueueing, and a tiny real run."""

from __future__ import annotations

import dataclasses
import math

import optuna
import pytest
from optuna.trial import TrialState

from mnist_fc.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from mnist_fc.model import build_model
from study.design_spec import TESTS, Design, Prediction
from study.designs import DESIGNS, DESIGNS_BY_NAME, EVAL_EVERY, NotACell, design_config, design_space, expand
from study.errors import UserError
from study.objective import Objective
from study.runner.designs import enqueue, open_design_study, run_design
from study.storage import curve_store, open_storage

ARTICLE = RunConfig()  # the defaults are the article's setup


def _varied_fields(design: Design) -> set[str]:
    names = set(design.factors) | set(design.baseline)
    if "uniform_a" in names:
        names |= {"init_distribution", "init_mean", "init_std"}
    return names | {"seed", "epochs", "eval_every", "train_size", "subset_seed", "stop_margin"}


@pytest.mark.parametrize("design", DESIGNS, ids=lambda d: d.name)
def test_expansion_is_the_full_grid_times_the_seeds_in_seed_major_order(design: Design) -> None:
    trials = expand(design)
    n_cells = math.prod(len(v) for v in design.factors.values())
    assert len(trials) == n_cells * len(design.seeds)
    assert len({tuple(sorted(t.items())) for t in trials}) == len(trials)  # no duplicates
    for name, levels in design.factors.items():
        assert {t[name] for t in trials} == set(levels)
    assert [t["seed"] for t in trials] == [s for s in design.seeds for _ in range(n_cells)]
    assert len(design.seeds) >= 3


@pytest.mark.parametrize("design", DESIGNS, ids=lambda d: d.name)
def test_every_cell_holds_the_article_baseline_except_what_it_varies(design: Design) -> None:
    varied = _varied_fields(design)
    for params in expand(design):
        cfg = design_config(design, params)
        assert cfg.train.seed == params["seed"] and cfg.train.epochs == design.epochs
        assert cfg.data.train_size == design.train_size and cfg.train.eval_every == EVAL_EVERY
        for section in ("model", "data", "train"):
            got, want = getattr(cfg, section), getattr(ARTICLE, section)
            for f in dataclasses.fields(got):
                if f.name == "allow_bf16_auto":  # auto may not pick bf16 where oscillation is measured
                    assert got.allow_bf16_auto == all(p.measure != "oscillation" for p in design.predictions)
                elif f.name not in varied:
                    assert getattr(got, f.name) == getattr(want, f.name), (design.name, params, f.name)
        for name, value in params.items():
            if name in ("seed", "uniform_a", "uniform_positive"):
                continue
            section = next(s for s in (cfg.model, cfg.data, cfg.train) if hasattr(s, name))
            assert getattr(section, name) == value


def test_article_baseline_is_the_articles_setup() -> None:
    m, d, t = ARTICLE.model, ARTICLE.data, ARTICLE.train
    assert (m.n_units_l1, m.n_units_l2, m.activation, m.batchnorm) == (100, 30, "sigmoid", False)
    assert (m.init_distribution, m.init_mean, m.init_std, m.init_scaling) == ("normal", 0.01, 0.1, "none")
    assert (d.normalization, d.input_shift, d.input_scale) == ("article", 0.0, 1.0)
    assert (t.lr, t.momentum, t.batch_size, t.optimizer) == (0.1, 0.0, None, "sgd")


def test_every_article_claim_has_a_primary_prediction_and_declarations_are_consistent() -> None:
    claims = {p.claim[0] for d in DESIGNS for p in d.predictions if p.primary}
    assert claims == {"1", "2", "3", "4", "5", "6"}
    ids = [p.claim for d in DESIGNS for p in d.predictions]
    assert len(ids) == len(set(ids))
    assert len({d.name for d in DESIGNS}) == len(DESIGNS)
    for d in DESIGNS:
        for p in d.predictions:
            assert p.test in TESTS and p.direction in (-1, 1) and p.min_effect > 0
            assert p.factor in d.factors
            if p.test in ("logrank", "mannwhitney"):
                assert len(p.compare) == 2 and all(level in d.factors[p.factor] for level in p.compare)
            if p.test in ("trend", "u_shape"):
                assert len(d.factors[p.factor]) >= 3 or p.test == "trend"
            if p.test == "u_shape":  # the bottom of the U named in advance: a level strictly inside
                assert len(p.compare) == 1 and p.compare[0] in d.factors[p.factor][1:-1]
            if p.test == "interaction":
                assert p.by in d.factors and len(d.factors[p.by]) == 2
            for k, v in p.where.items():
                assert v in d.factors[k]
            # Stopping after the plateau is only allowed where nothing later is measured.
            if d.stop_margin is not None:
                assert p.measure in ("plateau_epochs", "first_step_jump", "saturation_init")


def test_the_article_claims_rows_the_issue_asks_for() -> None:
    lr = DESIGNS_BY_NAME["lr_plateau"].factors["lr"]
    assert max(lr) >= 10 and min(lr) <= 0.03  # a wide log range incl. >= 10
    assert 0.0 in DESIGNS_BY_NAME["init_std"].factors["init_std"]  # std -> 0: all parameters equal
    assert set(DESIGNS_BY_NAME["scaling"].factors["init_scaling"]) == {"none", "sqrt_fan_in", "fan_in"}
    assert DESIGNS_BY_NAME["init_positive"].factors["uniform_positive"] == (False, True)
    bn = DESIGNS_BY_NAME["batchnorm"].factors
    assert {"batchnorm", "lr", "init_std"} <= set(bn)


def test_all_positive_level_is_u_0_a_and_symmetric_level_has_the_same_spread() -> None:
    design = DESIGNS_BY_NAME["init_positive"]
    for a in design.factors["uniform_a"]:
        pos = design_config(design, {"uniform_a": a, "uniform_positive": True, "seed": 0}).model
        sym = design_config(design, {"uniform_a": a, "uniform_positive": False, "seed": 0}).model
        assert pos.init_std == sym.init_std == pytest.approx(a / math.sqrt(12))
        w = build_model(pos, seed=0).linears()[0].weight
        assert w.min().item() >= -1e-7 and w.max().item() <= a * (1 + 1e-6)
        ws = build_model(sym, seed=0).linears()[0].weight
        assert ws.min().item() >= -a / 2 - 1e-7 and ws.min().item() < 0 and ws.max().item() <= a / 2 + 1e-7


def test_unknown_params_are_rejected() -> None:
    d = DESIGNS_BY_NAME["lr_plateau"]
    with pytest.raises(ValueError, match="no factor"):
        design_config(d, {"lr": 0.1, "momentum": 0.9, "seed": 0})


TINY = Design(
    name="tiny",
    question="a tiny design for the tests",
    factors={"lr": (0.3, 3.0), "init_std": (0.1,)},
    seeds=(0, 1),
    epochs=30,
    train_size=500,
    predictions=(Prediction("t", "tiny", "plateau_epochs", "logrank", "lr", -1, 0.4, compare=(3.0, 0.3)),),
)


def test_enqueue_is_idempotent_and_a_changed_declaration_is_refused(tmp_path) -> None:
    storage = open_storage(f"sqlite:///{tmp_path / 'd.db'}")
    study = open_design_study(storage, TINY, "t_")
    assert enqueue(study, TINY) == 4
    again = open_design_study(storage, TINY, "t_")
    assert enqueue(again, TINY) == 0
    assert len(again.trials) == 4 and all(t.state == TrialState.WAITING for t in again.trials)
    assert again.user_attrs["design"] == "tiny" and again.user_attrs["data_seed"] == 0
    changed = dataclasses.replace(TINY, seeds=(0, 1, 2))
    with pytest.raises(UserError, match="different declaration"):
        open_design_study(storage, changed, "t_")


def test_a_tiny_design_runs_end_to_end_batched_and_resumes_without_duplicates(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'd.db'}"
    base = RunConfig(train=TrainConfig(device="cpu"))
    storage = open_storage(url)
    study = open_design_study(storage, TINY, "t_")
    enqueue(study, TINY)
    # A crashed first attempt: one cell FAILED; the run must put it back in the queue and run it.
    crashed = study.ask()
    study.tell(crashed, state=TrialState.FAIL)
    run_design(TINY, storage_url=url, prefix="t_", base=base, batch_trials=2)
    study = optuna.load_study(study_name="t_tiny", storage=storage)
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(done) == 4 and len([t for t in study.trials if t.state == TrialState.FAIL]) == 1
    assert sorted((t.params["lr"], t.params["seed"]) for t in done) == [(0.3, 0), (0.3, 1), (3.0, 0), (3.0, 1)]
    for t in done:
        cfg = RunConfig.from_dict(t.user_attrs["config"])
        assert cfg.train.lr == t.params["lr"] and cfg.train.seed == t.params["seed"]
        assert cfg.data.train_size == 500 and cfg.train.epochs == 30 and cfg.model == ModelConfig()
        assert "plateau_epochs" in t.user_attrs and t.user_attrs["design"] == "tiny"
    assert len(curve_store(storage).load("t_tiny")) == 4
    # Seeds differ only in the init: same data subset (data_seed), different initial weights.
    by_seed = {t.params["seed"]: t.user_attrs["train_loss"] for t in done if t.params["lr"] == 0.3}
    assert by_seed[0] != by_seed[1]
    run_design(TINY, storage_url=url, prefix="t_", base=base, batch_trials=2)  # resume: nothing left to do
    assert len(optuna.load_study(study_name="t_tiny", storage=storage).trials) == 5


def test_a_trial_that_was_not_enqueued_is_not_a_cell(tmp_path) -> None:
    storage = open_storage(f"sqlite:///{tmp_path / 'd.db'}")
    study = open_design_study(storage, TINY, "t_")
    trial = study.ask()
    with pytest.raises(NotACell):
        design_space(TINY)(trial, RunConfig())


def test_batched_and_single_runs_of_a_design_store_the_same_results(tmp_path) -> None:
    """--batch-trials trains cells together; each trial's numbers must equal training it alone."""
    base = RunConfig(train=TrainConfig(device="cpu"))
    out = {}
    for k in (1, 2):
        url = f"sqlite:///{tmp_path / f'{k}.db'}"
        storage = open_storage(url)
        enqueue(open_design_study(storage, TINY, "t_"), TINY)
        run_design(TINY, storage_url=url, prefix="t_", base=base, batch_trials=k)
        study = optuna.load_study(study_name="t_tiny", storage=storage)
        out[k] = {(t.params["lr"], t.params["seed"]): t.user_attrs["train_loss"] for t in study.trials}
    assert out[1].keys() == out[2].keys()
    for key, loss in out[1].items():  # equal up to float summation order (as in tests/mnist_fc/test_batched.py)
        assert out[2][key] == pytest.approx(loss, rel=1e-4, abs=1e-5)


def test_cli_lists_designs_and_rejects_unknown_names(cli) -> None:
    listed = cli("design", "--list")
    assert listed.returncode == 0, listed.stderr
    for d in DESIGNS:
        assert d.name in listed.stdout
        for p in d.predictions:
            assert f"[{p.claim}]" in listed.stdout
    bad = cli("design", "no_such_design", "--storage", "sqlite:///x.db")
    assert bad.returncode == 2 and "unknown design" in bad.stderr and "Traceback" not in bad.stderr
    url = cli("design", "init_std", "--storage", "nonsense://x")
    assert url.returncode == 2 and "storage" in url.stderr and "Traceback" not in url.stderr


def test_design_subset_is_one_fixed_subset_for_every_seed() -> None:
    """data_seed picks the subset; the init seed never changes which images are used."""
    from study.runner.designs import load_split

    a = load_split(DataConfig(train_size=500), seed=TINY.data_seed)
    b = load_split(DataConfig(train_size=500), seed=TINY.data_seed)
    assert (a.x_train == b.x_train).all()


def test_design_trials_record_heartbeats_so_a_killed_batched_worker_is_requeued(tmp_path) -> None:
    """Ask-and-tell rounds get no heartbeat thread from Optuna: optimize_batched's own (`beating`) keeps a
    live round's trial alive past the grace, and once it stops (the worker was killed) the trial goes stale."""
    import time

    from study.designs import design_base
    from study.runner.heartbeat import beating

    url = f"sqlite:///{tmp_path / 'd.db'}"
    storage = open_storage(url, heartbeat=1, grace=2)
    study = open_design_study(storage, TINY, "t_")
    enqueue(study, TINY)
    objective = Objective(space=design_space(TINY), base=design_base(TINY), split=None, curves=curve_store(storage))
    trial = study.ask()  # a batched worker asked for it and sampled it ...
    with beating(study, [trial]):
        objective.sample(trial)
        time.sleep(4.0)  # > grace (2 s): still beating, so still alive
        optuna.storages.fail_stale_trials(study)
        assert study.trials[trial.number].state == TrialState.RUNNING
    # ... and was killed: no more beats
    time.sleep(4.0)  # > grace, with room for a loaded machine
    optuna.storages.fail_stale_trials(study)
    states = [t.state for t in optuna.load_study(study_name="t_tiny", storage=storage).trials]
    assert states.count(TrialState.FAIL) == 1 and states.count(TrialState.WAITING) == 4  # re-queued copy


def test_design_refuses_a_study_that_run_made_under_its_name(tmp_path, cli) -> None:
    """`design` took over a `run` study named claims_<design>: it rewrote its space and counted the run's
    trial as a design cell."""
    url = f"sqlite:///{tmp_path / 'c.db'}"
    made = cli("run", "--storage", url, "--study-name", "claims_input_mean", "--trials", "1", "--epochs", "5")
    assert made.returncode == 0, made.stderr
    before = optuna.load_study(study_name="claims_input_mean", storage=url).user_attrs
    took = cli("design", "input_mean", "--storage", url, "--device", "cpu")
    assert took.returncode == 2 and "made by `mnist-study run` (space 'article')" in took.stderr, took.stderr
    study = optuna.load_study(study_name="claims_input_mean", storage=url)
    assert study.user_attrs == before and len(study.trials) == 1  # nothing written
    both = cli("design", "all", "input_mean", "--list")
    assert both.returncode == 2 and "'all' stands alone" in both.stderr
