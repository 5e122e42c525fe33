"""Full learning curves, stored in a table of our own beside Optuna's, in the same database.

Why not `trial.report` every epoch: on SQLite one report costs ~1.4 ms, i.e. more than a
small net's epoch, and it writes one row per value. Optuna intermediate values therefore
get ~50 points per trial (enough for pruners and the dashboard), while the full per-epoch
curves go here as ONE row per trial: float32 arrays in a compressed .npz blob (a 500-epoch
trial is ~4 KB), written once when the trial ends.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np
import sqlalchemy as sa

if TYPE_CHECKING:  # imported in decode(): `mnist-study best` opens a storage without importing torch
    from mnist_fc.trainer import Curves

_META = sa.MetaData()
CURVES = sa.Table(
    "mnist_study_curves",
    _META,
    sa.Column("trial_id", sa.Integer, primary_key=True),  # Optuna's global trial_id
    sa.Column("study_name", sa.String(512), nullable=False, index=True),
    sa.Column("trial_number", sa.Integer, nullable=False),
    sa.Column("payload", sa.LargeBinary, nullable=False),
)

_INT_KEYS = {"eval_epochs"}


def encode(curves: Curves) -> bytes:
    buf = io.BytesIO()
    arrays = {k: np.asarray(v, dtype=np.int32 if k in _INT_KEYS else np.float32) for k, v in curves.to_dict().items()}
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def decode(payload: bytes) -> Curves:
    from mnist_fc.trainer import Curves

    with np.load(io.BytesIO(payload)) as z:
        return Curves(**{k: z[k].tolist() for k in z.files})


class CurveStore:
    """Reads and writes curve rows through its own SQLAlchemy engine on the study's URL."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        _META.create_all(engine, checkfirst=True)

    def save(self, *, trial_id: int, study_name: str, trial_number: int, curves: Curves) -> None:
        row = {"trial_id": trial_id, "study_name": study_name, "trial_number": trial_number, "payload": encode(curves)}
        with self.engine.begin() as conn:
            conn.execute(sa.delete(CURVES).where(CURVES.c.trial_id == trial_id))
            conn.execute(sa.insert(CURVES), [row])

    def load(self, study_name: str) -> dict[int, Curves]:
        """{trial_number: Curves} for every trial of the study that has curves."""
        q = sa.select(CURVES.c.trial_number, CURVES.c.payload).where(CURVES.c.study_name == study_name)
        with self.engine.connect() as conn:
            return {num: decode(payload) for num, payload in conn.execute(q)}
