import sqlalchemy as sa

from mnist_fc.trainer import Curves
from study.curves import CurveStore, decode, encode


def test_encode_roundtrip_is_float32_exact():
    c = Curves(
        train_loss=[2.3, 2.2, 1.0], train_accuracy=[0.1, 0.2, 0.5], eval_epochs=[3], val_loss=[1.1], val_accuracy=[0.55]
    )
    d = decode(encode(c))
    assert d.eval_epochs == [3]
    assert [round(v, 5) for v in d.train_loss] == [2.3, 2.2, 1.0]


def test_store_in_sqlite_file(tmp_path):
    store = CurveStore(sa.create_engine(f"sqlite:///{tmp_path / 'c.db'}"))
    c = Curves(
        train_loss=[1.0] * 1000, train_accuracy=[0.5] * 1000, eval_epochs=[1000], val_loss=[1.0], val_accuracy=[0.5]
    )
    store.save(trial_id=7, study_name="s", trial_number=0, curves=c)
    store.save(trial_id=7, study_name="s", trial_number=0, curves=c)  # rewriting a trial keeps one row
    store.save(trial_id=8, study_name="other", trial_number=0, curves=Curves())
    loaded = store.load("s")
    assert list(loaded) == [0] and len(loaded[0].train_loss) == 1000
    assert len(encode(c)) < 2000  # compressed: 8 KB of float32 curves in one small row
