"""Opening Optuna storages: SQLite (default), PostgreSQL/MySQL, with heartbeat and retry.

Optuna's RDB storage is the distributed engine: several processes or machines pointing at
one URL share the study. Heartbeats let a crashed worker's RUNNING trial be marked FAILED
and re-queued (WAITING, same parameters) by RetryHeartbeatStaleTrialCallback; Optuna does
that check when a worker starts a trial (`fail_stale_trials`), and `run --until-complete`
also does it while waiting.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
import warnings
from pathlib import Path

import optuna
import sqlalchemy as sa
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

from study.curves import CurveStore
from study.defaults import STORAGE_ENV
from study.errors import UserError
from study.redaction import mask_query_password

HEARTBEAT_SECONDS = 30  # a live worker touches its trial this often
GRACE_SECONDS = 90  # a RUNNING trial silent this long belongs to a dead worker
MAX_RETRY = 3  # a failed trial is re-queued with the same params at most this often
SQLITE_BUSY_TIMEOUT_S = 60  # writers wait for each other instead of failing "database is locked"
INIT_ATTEMPTS = 5  # workers creating the same fresh database at once race on CREATE TABLE; retry


MAX_STUDY_NAME = 512  # Optuna's studies.study_name column is VARCHAR(512)


def check_study_name(name: str, *, flag: str = "--study-name") -> str:
    """The name, if every storage can hold it and a terminal can show it; else a one-line UserError
    naming `flag`, the option the user gave it with."""
    if not name.strip():
        raise UserError(f"{flag} must not be empty")
    if len(name) > MAX_STUDY_NAME:
        raise UserError(f"{flag} gives a study name {len(name)} characters long; at most {MAX_STUDY_NAME} fit")
    if any("\ud800" <= c <= "\udfff" for c in name):  # bytes the locale could not decode (LANG=C)
        raise UserError(f"{flag} holds bytes this locale cannot decode; use a UTF-8 locale, e.g. LANG=C.UTF-8")
    bad = next((c for c in name if not c.isprintable()), None)
    if bad is not None:
        raise UserError(f"{flag} contains the control character {bad!r}")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise UserError(f"{flag} is not valid Unicode text") from None
    return name


def redact(url: str) -> str:
    """The URL with any password (user:PASSWORD@ or ?password=) replaced by ***, safe to print or log."""
    try:
        return mask_query_password(sa.engine.make_url(url).render_as_string(hide_password=True))
    except Exception:
        return "<unparseable storage URL>"


def _check_url(url: str) -> sa.URL:
    hint = "expected e.g. sqlite:///studies.db or postgresql+psycopg://user@host/db"
    if url == os.environ.get(STORAGE_ENV):  # the user never typed it: say where it came from
        hint += f"; this one is ${STORAGE_ENV}'s"
    try:
        parsed = sa.engine.make_url(url)
        backend = parsed.get_backend_name()
    except Exception as e:
        if "://" in url and "invalid literal for int()" in str(e):  # the form is right; its port is not
            raise UserError(
                f"invalid storage URL: its port (or an IPv6 host's brackets) is not valid ({hint})"
            ) from None
        raise UserError(f"invalid storage URL: not of the form dialect+driver://... ({hint})") from None
    if backend == "postgres":  # Heroku's spelling, which SQLAlchemy dropped
        raise UserError(f"unsupported storage backend 'postgres': write postgresql+psycopg://... ({hint})")
    if backend not in ("sqlite", "postgresql", "mysql", "mariadb", "oracle", "mssql"):
        raise UserError(f"unsupported storage backend {backend!r} in {redact(url)!r} ({hint})")
    if backend == "sqlite":
        db = parsed.database
        if parsed.host:  # sqlite://x.db is :memory: to SQLAlchemy, sqlite://a/b.db silently means b.db
            meant = f"{parsed.host}/{db}" if db else parsed.host
            raise UserError(
                f"{redact(url)!r} has two slashes: SQLAlchemy reads {parsed.host!r} as a host, not a file "
                f"({'an in-memory database' if not db else 'another file'}); a SQLite file needs three: "
                f"sqlite:///{meant} (relative) or sqlite:////abs/path.db"
            )
        if not db or db == ":memory:" or db.startswith("file:"):
            raise UserError("an in-memory SQLite storage would lose the study; give a file, e.g. sqlite:///studies.db")
        if parsed.query:  # SQLAlchemy and our file checks would disagree on which file (or mode) is meant
            raise UserError(
                f"{redact(url)!r}: options after '?' ({', '.join(sorted(parsed.query))}) are not supported in a "
                "SQLite storage URL; give the file alone, e.g. sqlite:///studies.db"
            )
        if "\0" in db:
            raise UserError(f"{redact(url)!r}: the file name holds a NUL character")
        path = Path(db)  # as SQLAlchemy opens it: relative to the current folder, no ~ expansion
        try:
            parent = path.resolve().parent
        except (OSError, RuntimeError) as e:  # a symlink loop
            raise UserError(f"storage path {shown_path(path)}: cannot follow it ({e})") from None
        if path.is_dir():
            raise UserError(f"storage path {shown_path(path)} is a folder, not a SQLite file")
        if not parent.is_dir():
            if db.startswith("~"):
                raise UserError(
                    f"storage folder {shown_path(parent)} does not exist: a SQLite URL does not expand ~ (SQLAlchemy "
                    f"opens {db!r} relative to this folder); write the full path, e.g. sqlite:///{Path(db).expanduser()}"
                )
            raise UserError(f"storage folder {shown_path(parent)} does not exist")
    return parsed


def shown_path(path: str | Path) -> str:
    """A path as an error message should show it: quoted when blanks at its ends would hide in the text."""
    text = str(path)
    return repr(text) if text != text.strip() or not text else text


def sqlite_path(url: str) -> Path | None:
    """The database file of a sqlite:/// URL, None for any other storage (or an unparseable URL)."""
    try:
        parsed = sa.engine.make_url(url)
    except Exception:
        return None
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)  # as SQLAlchemy opens it: no ~ expansion


# Optuna's own tables (optuna.storages._rdb.models) and ours: a file holding only these is a study storage.
OPTUNA_TABLES = frozenset(
    {
        "studies",
        "study_directions",
        "study_system_attributes",
        "study_user_attributes",
        "trial_heartbeats",
        "trial_intermediate_values",
        "trial_params",
        "trial_system_attributes",
        "trial_user_attributes",
        "trial_values",
        "trials",
        "version_info",
        "alembic_version",
    }
)
OWN_TABLES = frozenset({"mnist_study_curves"})
SQLITE_MAGIC = b"SQLite format 3\x00"


def _recover_hint(path: Path) -> str:
    return (
        f"recover what is readable with `sqlite3 {path} .recover | sqlite3 recovered.db`, "
        "or restore a backup; nothing was written"
    )


def check_sqlite_file(path: Path, *, write: bool) -> None:
    """One-line UserError unless `path` is a healthy SQLite study storage, or nothing yet.

    Runs before anything opens the file for writing: SQLite would otherwise happily add
    Optuna's tables to another application's database, or append trials to a damaged file
    (whose next write may destroy what is still readable). `PRAGMA quick_check` reads every
    page once (milliseconds for a study of thousands of trials).
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return  # a new study storage: created by the caller
    except OSError as e:
        raise UserError(f"cannot open SQLite storage {path}: {e.strerror}") from None
    if not path.is_file():
        raise UserError(f"storage path {path} is not a regular file")
    if not os.access(path, os.R_OK):
        raise UserError(f"cannot read SQLite storage {path} (permission denied)")
    if write:
        if not os.access(path, os.W_OK):
            raise UserError(
                f"SQLite storage {path} is read-only (file permissions or an immutable flag); "
                "make it writable or copy it, nothing was written"
            )
        if not os.access(path.resolve().parent, os.W_OK):
            raise UserError(
                f"folder {path.resolve().parent} is not writable: SQLite needs it for the journal of {path.name}"
            )
    if size == 0:
        return  # an empty file is an empty database
    with path.open("rb") as f:
        head = f.read(len(SQLITE_MAGIC))
    if head != SQLITE_MAGIC:
        raise UserError(f"cannot open SQLite storage {path}: file is not a database")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=SQLITE_BUSY_TIMEOUT_S)
    except sqlite3.Error as e:
        raise UserError(f"cannot open SQLite storage {path}: {e}") from None
    try:
        result = [r[0] for r in conn.execute("PRAGMA quick_check(3)").fetchall()]
        if result != ["ok"]:
            lines = [ln.strip() for r in result for ln in str(r).splitlines() if ln.strip()]
            lines = [ln for ln in lines if not ln.startswith("***")] or lines or ["no answer"]
            detail = lines[0][:120]
            raise UserError(f"SQLite storage {path} is damaged (quick_check: {detail}); {_recover_hint(path)}")
        # Views too: a file holding only another application's view is not empty.
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}
        tables = {t for t in tables if not t.startswith("sqlite_")}
        columns = {t: {r[1] for r in conn.execute(f'PRAGMA table_info("{t}")')} for t in tables & OPTUNA_TABLES}
    except (sqlite3.DatabaseError, UnicodeDecodeError) as e:  # a damaged name in the schema is not UTF-8
        if "locked" in str(e) or "busy" in str(e):
            raise UserError(f"SQLite storage {path} is locked by another process; try again") from None
        parent = path.resolve().parent
        if "unable to open" in str(e) and not os.access(parent, os.W_OK):  # a healthy file: don't say "damaged"
            raise UserError(
                f"cannot read SQLite storage {path}: its folder {parent} is read-only, and SQLite must create "
                f"{path.name}-shm beside a WAL database to read it; copy the file to a writable folder"
            ) from None
        raise UserError(f"SQLite storage {path} is damaged ({e}); {_recover_hint(path)}") from None
    finally:
        conn.close()
    _check_not_foreign(path, tables, columns)


def _optuna_columns() -> dict[str, set[str]]:
    """Optuna's own tables and their columns, as its current schema defines them."""
    from optuna.storages._rdb import models

    return {name: {c.name for c in table.columns} for name, table in models.BaseModel.metadata.tables.items()}


def _check_not_foreign(
    where: Path | str, tables: set[str], columns: dict[str, set[str]], *, kind: str = "sqlite"
) -> None:
    """A non-empty database that is not an Optuna storage belongs to someone else: never add tables to it.

    `columns`: the columns of each of its tables named like one of Optuna's. A storage has Optuna's
    `studies` and `version_info` (older Optuna versions' columns are for Optuna's own upgrade check to
    judge). One another worker is creating this instant holds some of Optuna's tables, each exactly as
    Optuna defines it: a foreign `studies(study_id, study_name, investigator, ...)` is not one of them."""
    if not tables:
        return
    schema = _optuna_columns()
    optuna_studies = {"study_id", "study_name"} <= columns.get("studies", set())
    is_storage = optuna_studies and columns.get("version_info", set()) >= schema["version_info"]
    named_like_optuna = tables <= OPTUNA_TABLES | OWN_TABLES and optuna_studies
    being_created = named_like_optuna and all(columns.get(t) == schema[t] for t in tables & set(schema))
    if is_storage or being_created:
        return
    foreign = sorted(tables - OPTUNA_TABLES - OWN_TABLES) or sorted(tables)
    shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
    raise UserError(
        f"{where} is a {'SQLite' if kind == 'sqlite' else kind} database of another application (tables: {shown}), "
        f"not an Optuna study storage; give a new {'file' if kind == 'sqlite' else 'database'} for the study "
        "(nothing was written)"
    )


def _check_server_database(url: str, parsed: sa.URL) -> None:
    """A server database (PostgreSQL, ...) that holds another application's tables and none of Optuna's
    gets no Optuna tables added, as a foreign SQLite file gets none. A database that cannot be reached
    is left to RDBStorage, whose error says why."""
    try:
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        try:
            inspector = sa.inspect(engine)
            tables = set(inspector.get_table_names()) | set(inspector.get_view_names())
            columns = {t: {c["name"] for c in inspector.get_columns(t)} for t in tables & OPTUNA_TABLES}
        finally:
            engine.dispose()
    except Exception:
        return
    _check_not_foreign(redact(url), tables, columns, kind=parsed.get_backend_name())


def _prepare_sqlite(path: str, *, create: bool) -> None:
    """WAL lets readers (dashboard, report) work while a study writes; the mode persists in the file.

    Read-only commands (create=False) only check that the file is a SQLite database.
    """
    conn = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_S)
    try:
        if create and conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # fails on a non-SQLite file
    finally:
        conn.close()


def _serialize_sqlite_transactions(engine: sa.Engine) -> None:
    """Every SQLite transaction starts with BEGIN IMMEDIATE (takes the write lock, honouring the busy timeout).

    Why: pysqlite's default runs SELECTs outside a transaction, so Optuna's "SELECT ... FOR
    UPDATE, then UPDATE" (e.g. two workers popping the same WAITING retry) is not atomic on
    SQLite and both workers could run it; a plain deferred BEGIN instead fails at once with
    "database is locked" when a read transaction must upgrade to a write. The connections
    themselves are opened with isolation_level=None (connect_args) so that pysqlite emits no
    BEGIN of its own.
    """

    @sa.event.listens_for(engine, "begin")
    def _begin_immediate(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def heartbeat_settings(heartbeat: int, grace: int | None) -> tuple[int, int]:
    """(heartbeat, grace) in whole seconds, grace defaulting to 3 x heartbeat; UserError if unusable."""
    if heartbeat < 1 or (grace is not None and grace < 1):
        raise UserError("heartbeat and grace period must be whole seconds >= 1")
    grace = grace if grace is not None else 3 * heartbeat
    if grace <= heartbeat:
        raise UserError(f"--grace ({grace} s) must be longer than --heartbeat ({heartbeat} s)")
    return heartbeat, grace


def _first_line(e: BaseException, url: str) -> str:
    """First line of a driver's message, with the URL's password (if any) masked: drivers may echo it."""
    text = str(e).strip()
    line = text.splitlines()[0] if text else type(e).__name__
    try:
        password = sa.engine.make_url(url).password
    except Exception:
        password = None
    return line.replace(str(password), "***") if password else line


def _lost_creation_race(e: BaseException) -> bool:
    """Workers creating one fresh database at once: CREATE TABLE or the schema-version row collides."""
    text = str(e).lower()
    return any(w in text for w in ("already exists", "duplicate", "unique constraint"))


def open_storage(
    url: str,
    *,
    create: bool = True,
    heartbeat: int = HEARTBEAT_SECONDS,
    grace: int | None = None,
) -> RDBStorage:
    """An RDBStorage with heartbeat and retry; one-line UserError if it cannot be opened.

    `heartbeat` (s) is how often a running trial proves its worker alive; after `grace` s of
    silence (default 3 x heartbeat) the trial is failed and re-queued with the same params.
    """
    heartbeat, grace = heartbeat_settings(heartbeat, grace)
    parsed = _check_url(url)
    kwargs: dict = {"pool_pre_ping": True}
    sqlite = parsed.get_backend_name() == "sqlite"
    if sqlite:
        db = str(parsed.database)  # as SQLAlchemy opens it: no ~ expansion
        if not create and not Path(db).exists():
            raise UserError(f"no study database at {shown_path(db)}")
        check_sqlite_file(Path(db), write=create)
        for attempt in range(20):  # switching a fresh file to WAL can fail "locked" at once, busy timeout or not
            try:
                _prepare_sqlite(db, create=create)
                break
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or attempt == 19:
                    raise UserError(f"cannot open SQLite storage {db}: {e}") from None
                time.sleep(0.05 * (attempt + 1))
            except sqlite3.Error as e:
                raise UserError(f"cannot open SQLite storage {db}: {e}") from None
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S, "isolation_level": None}
        kwargs["poolclass"] = sa.pool.NullPool  # one connection per session: threads (heartbeat) never share one
    elif create:
        _check_server_database(url, parsed)
    last: Exception | None = None
    for attempt in range(INIT_ATTEMPTS):
        try:
            with warnings.catch_warnings():  # heartbeat and retry are "experimental" in Optuna's words only
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = RDBStorage(
                    url,
                    engine_kwargs=kwargs,
                    heartbeat_interval=heartbeat,
                    grace_period=grace,
                    heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY),
                    skip_table_creation=not create,  # a read-only command never writes tables into a file
                )
        except (sa.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as e:
            last = e.__cause__ if isinstance(e, optuna.exceptions.StorageInternalError) and e.__cause__ else e
            if not _lost_creation_race(last):
                break
            time.sleep(0.2 * (attempt + 1))  # another worker created the tables a moment ago: look again
            continue
        except (ImportError, ValueError, RuntimeError) as e:
            last = e
            break
        if sqlite:
            _serialize_sqlite_transactions(storage.engine)
        return storage
    assert last is not None
    reason = _first_line(last, url)
    if isinstance(last, ImportError):
        driver = parsed.get_driver_name()
        reason = f"the {parsed.get_backend_name()} driver {driver!r} is not installed"
        if parsed.get_backend_name() == "postgresql":
            reason += " (pip install 'mnist-study[postgres]', then use postgresql+psycopg://...)"
        elif parsed.get_backend_name() in ("mysql", "mariadb"):
            reason += " (pip install pymysql, then use mysql+pymysql://...)"
    elif not create and ("no such table" in reason or ("relation" in reason and "does not exist" in reason)):
        reason = "not an Optuna study database (no Optuna tables)"
    raise UserError(f"cannot open storage {redact(url)}: {reason}") from None


def curve_store(storage: RDBStorage) -> CurveStore:
    """The curve table beside Optuna's; creating it races like Optuna's own tables, so retry."""
    for attempt in range(INIT_ATTEMPTS):
        try:
            return CurveStore(storage)
        except (sa.exc.IntegrityError, sa.exc.OperationalError, sa.exc.ProgrammingError):
            if attempt == INIT_ATTEMPTS - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def load_study(storage: RDBStorage, study_name: str) -> optuna.Study:
    """The study, with every stored trial read once: damage that SQLite's page checks cannot see (bytes
    changed inside a row) surfaces here as one line, not as garbage or a traceback in a later command."""
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        names = ", ".join(optuna.get_all_study_names(storage)) or "none"
        raise UserError(f"no study named {study_name!r} in this storage (studies: {names})") from None
    except (sa.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError, ValueError, UnicodeError) as e:
        raise _unreadable(storage, study_name, e) from None
    return check_direction(_readable(storage, study))


def create_or_load_study(storage: RDBStorage, study_name: str) -> optuna.Study:
    """`optuna.create_study(..., load_if_exists=True)` for `run` and `design`, with the same one-line error
    as `load_study` for a damaged row (a config that is not JSON, a value set to NULL): they ended as "bug"
    where best, export, report and final named the damage. The caller checks whose study it is."""
    # Not wrapped: a refused write (a read-only role) or a lost server is named by the CLI's environment
    # check, not called damage; damage shows when the rows are read.
    study = optuna.create_study(study_name=study_name, storage=storage, direction="maximize", load_if_exists=True)
    return _readable(storage, study)


def _readable(storage: RDBStorage, study: optuna.Study) -> optuna.Study:
    """`study`, after reading every stored trial and its attributes once: UserError naming the damage."""
    try:
        with warnings.catch_warnings(), _quiet_optuna():
            warnings.simplefilter("ignore")
            study.get_trials(deepcopy=False)
            study.user_attrs  # noqa: B018 - read to check
    except Exception as e:  # any decoding error of a damaged row: SQLAlchemy, JSON, Optuna's own checks
        raise _unreadable(storage, study.study_name, e) from None
    return study


def check_direction(study: optuna.Study) -> optuna.Study:
    """The study, if it has this tool's one objective, maximised: a study made elsewhere under the same
    name must not have its worst trial called the best, or crash a command half-way."""
    directions = study.directions
    if len(directions) != 1 or directions[0] != optuna.study.StudyDirection.MAXIMIZE:
        what = f"{len(directions)} objectives" if len(directions) != 1 else "an objective to minimise"
        raise UserError(
            f"study {study.study_name!r} has {what}: not a study of mnist-study, whose one objective is "
            "validation accuracy, maximised; choose another study name"
        )
    return study


def check_ours(study: optuna.Study) -> optuna.Study:
    """`check_direction`, and before anything is added to it: its finished trials are this tool's.

    A maximised study made elsewhere (optuna.create_study + optimize) holds trials without a run
    configuration; adding ours would mix two objectives in one study, and its report would crash on the
    foreign params. Reading such a study (export) stays allowed."""
    check_direction(study)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    foreign = next((t for t in done if "config" not in t.user_attrs), None)
    if foreign is not None:
        raise UserError(
            f"study {study.study_name!r} was not made by mnist-study: its trial #{foreign.number} holds no run "
            "configuration; choose another study name (nothing was written)"
        )
    return study


class _quiet_optuna:
    """Optuna logs a warning and retries row by row on a decode error; the one-line error is enough."""

    def __enter__(self) -> None:
        self.logger = logging.getLogger("optuna.storages._rdb.storage")
        self.level = self.logger.level
        self.logger.setLevel(logging.ERROR)

    def __exit__(self, *exc: object) -> None:
        self.logger.setLevel(self.level)


def _unreadable(storage: RDBStorage, study_name: str, e: BaseException) -> UserError:
    text = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
    url = storage.engine.url
    where = url.database if url.get_backend_name() == "sqlite" else redact(url.render_as_string(hide_password=True))
    hint = _recover_hint(Path(where)) if url.get_backend_name() == "sqlite" else "restore a backup"
    return UserError(f"study {study_name!r} in {where} has a damaged, unreadable row ({text}); {hint}")
