"""A PostgreSQL study whose server misbehaves or belongs to others: another application's database,
a read-only role, a password given as a URL parameter, a server that goes away. One line each, the
password never printed or recorded, nothing written where it should not be."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import optuna
import psycopg
import sqlalchemy as sa

from study.errors import environment_error
from study.storage import redact
from tests.study.workers import TINY, cli_env


def _cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "study", *argv], env=cli_env(), capture_output=True, text=True, timeout=600
    )


def _admin(url: str, *sql: str, db: str = "postgres") -> None:
    u = sa.engine.make_url(url)
    with psycopg.connect(
        host=u.host, port=u.port, user=u.username, password=u.password, dbname=db, autocommit=True
    ) as conn:
        for statement in sql:
            conn.execute(statement)


def _with_db(url: str, db: str, **changes) -> str:
    return sa.engine.make_url(url).set(database=db, **changes).render_as_string(hide_password=False)


def test_another_applications_database_gets_no_optuna_tables(postgres_url: str) -> None:
    _admin(postgres_url, "CREATE DATABASE shop")
    _admin(postgres_url, "CREATE TABLE customers (id int)", db="shop")
    url = _with_db(postgres_url, "shop")
    done = _cli("run", "--storage", url, "--study-name", "s", "--trials", "1", *TINY)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "postgresql database of another application (tables: customers)" in done.stderr
    assert "postgresql+psycopg://study:***@" in done.stderr  # the URL as given, password masked
    assert sa.engine.make_url(postgres_url).password not in done.stderr
    engine = sa.create_engine(url)
    assert sa.inspect(engine).get_table_names() == ["customers"]  # nothing added
    engine.dispose()


def test_a_read_only_role_is_told_so_and_a_query_password_is_never_shown(postgres_url: str, tmp_path: Path) -> None:
    password = sa.engine.make_url(postgres_url).password
    assert password
    made = _cli("run", "--storage", postgres_url, "--study-name", "ro", "--trials", "1", *TINY)
    assert made.returncode == 0, made.stderr
    _admin(
        postgres_url,
        "CREATE ROLE reader LOGIN PASSWORD 'readerpw'",
        db="studies",
    )
    _admin(postgres_url, "GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader", db="studies")
    reader = _with_db(postgres_url, "studies", username="reader", password="readerpw")
    denied = _cli("run", "--storage", reader, "--study-name", "ro", "--trials", "1", *TINY)
    assert denied.returncode == 2 and len(denied.stderr.strip().splitlines()) == 1, denied.stderr
    assert "permission denied" in denied.stderr and "bug" not in denied.stderr and "readerpw" not in denied.stderr
    assert _cli("best", "--storage", reader, "--study-name", "ro").returncode == 0  # reading is allowed

    # libpq also takes the password as a URL parameter: masked in every line and in the model's JSON.
    query_url = _with_db(postgres_url, "studies", password=None) + f"?password={password}"
    assert redact(query_url).endswith("?password=***")
    ran = _cli("run", "--storage", query_url, "--study-name", "ro", "--trials", "1", *TINY)
    assert ran.returncode == 0 and password not in ran.stdout + ran.stderr, ran.stderr
    out = tmp_path / "m"
    final = _cli(
        "final", "--storage", query_url, "--study-name", "ro", "--seeds", "0", "--epochs", "2", "--out", str(out)
    )
    assert final.returncode == 0, final.stderr
    recorded = json.loads((out / "ro.json").read_text())["command"]
    assert password not in recorded and "password=***" in recorded
    assert password not in final.stdout + final.stderr


def test_a_server_lost_mid_run_is_named_not_called_a_bug() -> None:
    """What Optuna raises when the server goes away under a running trial (seen with pg_ctl stop -m fast):
    an UnboundLocalError in its own cleanup, over a StorageInternalError, over psycopg's error."""
    driver = sa.exc.OperationalError("UPDATE trials", {}, Exception("connection refused\nIs the server running?"))
    storage = optuna.exceptions.StorageInternalError("An exception is raised during the commit.")
    storage.__cause__ = driver
    outer = UnboundLocalError("cannot access local variable 'updated_state'")
    outer.__context__ = storage
    reason = environment_error(outer)
    assert reason is not None and reason.startswith("lost the connection to the database server")
    assert "\n" not in reason and "--until-complete" in reason
    denied = sa.exc.ProgrammingError("INSERT", {}, Exception("permission denied for table studies"))
    assert "permission denied for table studies" in (environment_error(denied) or "")
    assert environment_error(ValueError("a real bug")) is None


def test_bad_server_urls_say_what_is_wrong(tmp_path: Path) -> None:
    for url, words in [
        ("postgresql+psycopg://u:x@127.0.0.1:notaport/db", "port"),
        ("postgres://u@localhost/db", "postgresql+psycopg://"),
        ("mysql://u@localhost/db", "pip install pymysql"),
    ]:
        done = _cli("best", "--storage", url)
        assert done.returncode == 2 and words in done.stderr and len(done.stderr.strip().splitlines()) == 1, (
            url,
            done.stderr,
        )
