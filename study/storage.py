"""Opening Optuna storages: SQLite (default), PostgreSQL/MySQL, with heartbeat and retry.

Optuna's RDB storage is the distributed engine: several processes or machines pointing at
one URL share the study. Heartbeats let a crashed worker's RUNNING trial be marked FAILED
and re-queued with the same parameters by RetryFailedTrialCallback.
"""

from __future__ import annotations

import sqlite3
import warnings
from pathlib import Path

import optuna
import sqlalchemy as sa
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

from study.curves import CurveStore
from study.errors import UserError

HEARTBEAT_SECONDS = 30  # a live worker touches its trial this often
GRACE_SECONDS = 90  # a RUNNING trial silent this long belongs to a dead worker
MAX_RETRY = 3  # a failed trial is re-queued with the same params at most this often
SQLITE_BUSY_TIMEOUT_S = 60  # writers wait for each other instead of failing "database is locked"


def redact(url: str) -> str:
    """The URL with any password replaced by ***, safe to print or log."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable storage URL>"


def _check_url(url: str) -> sa.URL:
    try:
        parsed = sa.engine.make_url(url)
    except Exception:
        raise UserError(f"invalid storage URL {redact(url)!r} (expected e.g. sqlite:///studies.db)") from None
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database
        if not db or db == ":memory:":
            raise UserError("an in-memory SQLite storage would lose the study; give a file, e.g. sqlite:///studies.db")
        parent = Path(db).expanduser().resolve().parent
        if not parent.is_dir():
            raise UserError(f"storage folder {parent} does not exist")
    return parsed


def _prepare_sqlite(path: str) -> None:
    """WAL lets readers (dashboard, report) work while a study writes; the mode persists in the file."""
    with sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_S) as conn:
        conn.execute("PRAGMA journal_mode=WAL")


def open_storage(url: str, *, create: bool = True) -> RDBStorage:
    """An RDBStorage with heartbeat and retry; one-line UserError if it cannot be opened."""
    parsed = _check_url(url)
    kwargs: dict = {"pool_pre_ping": True}
    if parsed.get_backend_name() == "sqlite":
        db = str(Path(parsed.database).expanduser())
        if not create and not Path(db).is_file():
            raise UserError(f"no study database at {db}")
        try:
            _prepare_sqlite(db)
        except sqlite3.DatabaseError as e:
            raise UserError(f"cannot open SQLite storage {db}: {e}") from None
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S}
    try:
        with warnings.catch_warnings():  # heartbeat and retry are "experimental" in Optuna's words only
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return RDBStorage(
                url,
                engine_kwargs=kwargs,
                heartbeat_interval=HEARTBEAT_SECONDS,
                grace_period=GRACE_SECONDS,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY),
            )
    except (sa.exc.SQLAlchemyError, ImportError, ValueError, RuntimeError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"cannot open storage {redact(url)}: {reason}") from None


def curve_store(storage: RDBStorage) -> CurveStore:
    return CurveStore(storage.engine)


def load_study(storage: RDBStorage, study_name: str) -> optuna.Study:
    try:
        return optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        names = ", ".join(optuna.get_all_study_names(storage)) or "none"
        raise UserError(f"no study named {study_name!r} in this storage (studies: {names})") from None
