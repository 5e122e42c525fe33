"""Full learning curves, stored WITH each Optuna trial as trial system attributes.

Why not `trial.report` every epoch: on SQLite one report costs ~1.4 ms, i.e. more than a small
net's epoch, and it writes one row per value. Optuna intermediate values therefore get ~50 points
per trial (enough for pruners and the dashboard), while the full per-epoch curves are written
once when the trial ends: float32 arrays in a compressed .npz, base64 text in trial system
attributes. Being part of the trial, they travel through `optuna.copy_study` (which copies
system attributes) and vanish with `optuna.delete_study` (which cascades them); optuna-dashboard
shows only the system attributes it knows (notes, artifacts, constraints), so they do not clutter it.

A blob is split into chunks of at most CHUNK_CHARS characters, because MySQL's TEXT column (Optuna's
value_json) holds 64 KiB; the chunk count is written last, so a trial whose write was cut off
reads as "no curves" rather than as a corrupt one.

Studies made before this scheme kept their curves in a table of our own, `mnist_study_curves`;
it is still read (never written) for such studies, matched by Optuna's trial_id AND study name
AND trial number, only for finished trials that should have curves, and only when no trial of the study carries
curves the new way (a study re-created under an old name, whose SQLite trial ids may be reused,
stores its curves the new way and so never reads old rows).
"""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING

import numpy as np
import optuna
import sqlalchemy as sa
from optuna.trial import FrozenTrial, TrialState

from study.errors import UserError

if TYPE_CHECKING:  # imported in decode(): `mnist-study best` opens a storage without importing torch
    from mnist_fc.trainer import Curves

KEY = "mnist_study:curves"  # the chunk count; chunks are KEY:0, KEY:1, ...
CHUNK_CHARS = 60_000  # < 64 KiB: fits MySQL's TEXT
MAX_CHUNKS = 100_000  # 6 GB of curves: any larger count is damage, not data
LEGACY_TABLE = "mnist_study_curves"

_INT_KEYS = {"eval_epochs"}


def encode(curves: Curves) -> bytes:
    buf = io.BytesIO()
    arrays = {k: np.asarray(v, dtype=np.int32 if k in _INT_KEYS else np.float32) for k, v in curves.to_dict().items()}
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


class DamagedCurves(ValueError):
    """Stored curves that cannot be read back: bytes changed in the database, or written by something else."""


def decode(payload: bytes) -> Curves:
    from mnist_fc.trainer import Curves

    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as z:
            return Curves(**{k: z[k].tolist() for k in z.files})
    except Exception as e:  # not an .npz of our arrays: zip, pickle, key and type errors alike
        raise DamagedCurves(f"{type(e).__name__}: {str(e)[:80]}") from None


def to_attrs(curves: Curves) -> dict[str, object]:
    """The system attributes holding `curves`, chunk count last (insertion order = write order)."""
    text = base64.b64encode(encode(curves)).decode("ascii")
    chunks = [text[i : i + CHUNK_CHARS] for i in range(0, len(text), CHUNK_CHARS)] or [""]
    attrs: dict[str, object] = {f"{KEY}:{i}": c for i, c in enumerate(chunks)}
    attrs[KEY] = len(chunks)
    return attrs


def from_attrs(system_attrs: dict) -> Curves | None:
    """The curves stored in a trial's system attributes, or None if it has none (or a cut-off write)."""
    n = system_attrs.get(KEY)
    if not isinstance(n, int):
        return None
    if n < 1 or n > MAX_CHUNKS:
        raise DamagedCurves(f"chunk count {n}")
    chunks = [system_attrs.get(f"{KEY}:{i}") for i in range(n)]
    if any(not isinstance(c, str) for c in chunks):
        return None
    try:
        payload = base64.b64decode("".join(chunks), validate=True)
    except ValueError as e:  # binascii.Error
        raise DamagedCurves(f"not base64 ({str(e)[:60]})") from None
    return decode(payload)


def needs_curves(trial: FrozenTrial) -> bool:
    """A finished trial that went through Objective.finish (it stores `config` just before its curves)."""
    return trial.state in (TrialState.COMPLETE, TrialState.PRUNED) and "config" in trial.user_attrs


class CurveStore:
    """Writes curves into the trial's system attributes through the study's Optuna storage."""

    def __init__(self, storage: optuna.storages.BaseStorage) -> None:
        self.storage = storage

    def save(self, *, trial_id: int, study_name: str, trial_number: int, curves: Curves) -> None:
        # study_name/trial_number: kept so the Objective's call stays as it is; the trial id says it all.
        for key, value in to_attrs(curves).items():
            self.storage.set_trial_system_attr(trial_id, key, value)

    def load(self, study_name: str) -> dict[int, Curves]:
        """{trial_number: Curves} for every trial of the study that has curves."""
        study_id = self.storage.get_study_id_from_name(study_name)
        trials = self.storage.get_all_trials(study_id, deepcopy=False)
        return load_curves(trials, study_name=study_name, engine=getattr(self.storage, "engine", None))


def load_curves(trials: list[FrozenTrial], *, study_name: str, engine: sa.Engine | None = None) -> dict[int, Curves]:
    """Curves of `trials` from their system attributes; the legacy table for the trials before the first
    that has them there.

    A study made before the attributes existed (the shipped `reference`) and extended by a later `run`
    holds both kinds: its old trials keep their curves. A study deleted and made again under its name
    starts with attribute curves at trial 0, so SQLite's reused trial ids never attach old rows to it."""
    out = {}
    for t in trials:
        try:
            c = from_attrs(t.system_attrs)
        except DamagedCurves as e:
            raise _damaged(study_name, t.number, e) from None
        if c is not None:
            out[t.number] = c
    if engine is None:
        return out
    first_new = min(out, default=None)
    lacking = {
        t._trial_id: t.number
        for t in trials
        if needs_curves(t) and t.number not in out and (first_new is None or t.number < first_new)
    }
    return out | _legacy(engine, study_name, lacking)


def _legacy(engine: sa.Engine, study_name: str, numbers: dict[int, int]) -> dict[int, Curves]:
    """Rows of the old curve table that belong to these very trials (same id, study name and number)."""
    if not numbers or not sa.inspect(engine).has_table(LEGACY_TABLE):
        return {}
    table = sa.Table(LEGACY_TABLE, sa.MetaData(), autoload_with=engine)
    q = sa.select(table.c.trial_id, table.c.trial_number, table.c.payload).where(table.c.study_name == study_name)
    out = {}
    with engine.connect() as conn:
        for trial_id, number, payload in conn.execute(q):
            if numbers.get(trial_id) == number:
                try:
                    out[number] = decode(payload)
                except DamagedCurves as e:
                    raise _damaged(study_name, number, e) from None
    return out


def _damaged(study_name: str, number: int, e: DamagedCurves) -> UserError:
    return UserError(
        f"study {study_name!r}: trial #{number}'s stored curves are damaged ({e}); restore the database from a "
        "backup, or copy the study without that trial"
    )


def missing_curves(trials: list[FrozenTrial], curves: dict[int, Curves]) -> list[int]:
    """Numbers of finished trials that should have curves and do not."""
    return [t.number for t in trials if needs_curves(t) and t.number not in curves]
