"""Curves live in trial system attributes: they travel with copy_study and vanish with delete_study."""

from __future__ import annotations

import optuna
import pytest
import sqlalchemy as sa
from optuna.storages import RDBStorage

from mnist_fc.trainer import Curves
from study import curves as cv
from study.curves import CurveStore, decode, encode
from study.storage import open_storage


def _curves(n: int = 500, seed: int = 0) -> Curves:
    import numpy as np

    rng = np.random.default_rng(seed)
    loss = (2.3 * np.exp(-np.arange(n) / 100) + 0.01 * rng.random(n)).tolist()
    evals = list(range(10, n + 1, 10))
    return Curves(
        train_loss=loss,
        train_accuracy=(1 - np.asarray(loss) / 3).tolist(),
        eval_epochs=evals,
        val_loss=loss[: len(evals)],
        val_accuracy=[0.5] * len(evals),
    )


def test_encode_roundtrip_is_float32_exact():
    c = Curves(
        train_loss=[2.3, 2.2, 1.0], train_accuracy=[0.1, 0.2, 0.5], eval_epochs=[3], val_loss=[1.1], val_accuracy=[0.55]
    )
    d = decode(encode(c))
    assert d.eval_epochs == [3]
    assert [round(v, 5) for v in d.train_loss] == [2.3, 2.2, 1.0]


def test_attrs_roundtrip_and_chunking(monkeypatch: pytest.MonkeyPatch):
    c = _curves()
    attrs = cv.to_attrs(c)
    assert list(attrs)[-1] == cv.KEY  # the count is written last
    assert cv.from_attrs(attrs).train_loss == decode(encode(c)).train_loss
    monkeypatch.setattr(cv, "CHUNK_CHARS", 100)
    small = cv.to_attrs(c)
    assert small[cv.KEY] > 10 and all(len(v) <= 100 for k, v in small.items() if k != cv.KEY)
    assert cv.from_attrs(small).val_accuracy == c.val_accuracy
    del small[f"{cv.KEY}:3"]  # a cut-off write reads as no curves, not as garbage
    assert cv.from_attrs(small) is None
    assert cv.from_attrs({}) is None


def _study_with_curves(url: str, name: str, n_trials: int = 3) -> optuna.Study:
    storage = open_storage(url)
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    store = CurveStore(storage)
    for i in range(n_trials):
        trial = study.ask()
        trial.set_user_attr("config", {"i": i})
        store.save(trial_id=trial._trial_id, study_name=name, trial_number=trial.number, curves=_curves(seed=i))
        study.tell(trial, 0.5 + i / 10)
    return study


def test_curves_travel_with_copy_study(tmp_path):
    src, dst = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    _study_with_curves(src, "s")
    optuna.copy_study(from_study_name="s", from_storage=src, to_storage=dst, to_study_name="copy")
    loaded = CurveStore(open_storage(dst, create=False)).load("copy")
    assert sorted(loaded) == [0, 1, 2]
    assert loaded[2].train_loss == decode(encode(_curves(seed=2))).train_loss


def test_delete_study_takes_the_curves_and_a_recreated_study_gets_none(tmp_path):
    url = f"sqlite:///{tmp_path / 'a.db'}"
    _study_with_curves(url, "s")
    optuna.delete_study(study_name="s", storage=url)
    storage = open_storage(url, create=False)
    with storage.engine.connect() as conn:
        left = conn.execute(sa.text("SELECT count(*) FROM trial_system_attributes")).scalar()
    assert left == 0
    again = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    again.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=0.1, user_attrs={"config": {}}))
    assert CurveStore(storage).load("s") == {}
    assert cv.missing_curves(again.get_trials(), {}) == [0]


def _legacy_table(engine: sa.Engine) -> sa.Table:
    meta = sa.MetaData()
    table = sa.Table(
        cv.LEGACY_TABLE,
        meta,
        sa.Column("trial_id", sa.Integer, primary_key=True),
        sa.Column("study_name", sa.String(512), nullable=False, index=True),
        sa.Column("trial_number", sa.Integer, nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
    )
    meta.create_all(engine)
    return table


def _old_study(url: str, name: str) -> tuple[RDBStorage, optuna.Study]:
    """A study stored the old way: two finished trials whose curves sit in the legacy table."""
    storage = open_storage(url)
    table = _legacy_table(storage.engine)
    old = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    for _ in range(2):
        old.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=0.5, user_attrs={"config": {}}))
    rows = [
        {
            "trial_id": t._trial_id,
            "study_name": name,
            "trial_number": t.number,
            "payload": encode(_curves(seed=t.number)),
        }
        for t in old.get_trials()
    ]
    with storage.engine.begin() as conn:  # rows first: the write transaction must not wait on a read
        conn.execute(sa.insert(table), rows)
    return storage, old


def test_legacy_table_is_read_by_trial_id_and_never_attaches_to_a_recreated_study(tmp_path):
    """Old studies (e.g. the shipped `reference`) keep their curves in the old table."""
    url = f"sqlite:///{tmp_path / 'a.db'}"
    storage, old = _old_study(url, "old")
    assert sorted(CurveStore(storage).load("old")) == [0, 1]

    # Deleted and re-created under the same name: SQLite hands out the same trial ids again.
    ids = [t._trial_id for t in old.get_trials()]
    optuna.delete_study(study_name="old", storage=storage)
    again = _study_with_curves(url, "old", n_trials=2)
    assert [t._trial_id for t in again.get_trials()] == ids  # the id reuse is real
    loaded = CurveStore(open_storage(url, create=False)).load("old")
    assert loaded[0].train_loss == decode(encode(_curves(seed=0))).train_loss  # its own, new curves
    # ... and trials of a re-created study made by plain Optuna (no curves at all) get no old rows either.
    optuna.delete_study(study_name="old", storage=storage)
    plain = optuna.create_study(study_name="old", storage=storage, direction="maximize")
    for _ in range(2):
        plain.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=0.5))
    assert [t._trial_id for t in plain.get_trials()] == ids
    assert CurveStore(storage).load("old") == {}


def test_a_500_epoch_curve_is_a_few_kilobytes():
    attrs = cv.to_attrs(_curves(500))
    size = sum(len(v) for k, v in attrs.items() if k != cv.KEY)
    assert size < 12_000  # ~4 KB of float32 noise-free-ish arrays, x4/3 for base64


def test_an_old_study_extended_by_a_new_run_keeps_its_legacy_curves(tmp_path):
    """The shipped `reference` study extended by `run`: its first new trial hid all 240 old curves."""
    storage, old = _old_study(f"sqlite:///{tmp_path / 'a.db'}", "ref")
    new = optuna.trial.create_trial(  # a trial of a later `run`: its curves in its system attributes
        params={}, distributions={}, value=0.6, user_attrs={"config": {}}, system_attrs=cv.to_attrs(_curves(seed=2))
    )
    old.add_trial(new)
    loaded = CurveStore(storage).load("ref")
    assert sorted(loaded) == [0, 1, 2]
    assert loaded[2].train_loss == decode(encode(_curves(seed=2))).train_loss
