"""Session set-up shared by every test: a real PostgreSQL and an isolated Airflow/data environment.

The server is ``PUPILSHARE_TEST_ADMIN_URL`` if set, else the machine's PostgreSQL on 127.0.0.1:5432 if it answers,
else an embedded pgserver cluster started in a temporary folder. Each session gets its own databases, dropped at the
end. Airflow's configuration is exported in ``pytest_configure``, before any test module imports airflow.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

_STATE: dict[str, object] = {}


def _reachable(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


def _admin_url(workdir: Path) -> str:
    configured = os.environ.get("PUPILSHARE_TEST_ADMIN_URL")
    if configured:
        return configured
    machine = "postgresql://postgres@127.0.0.1:5432/postgres"
    if _reachable(machine):
        return machine
    import pgserver

    server = pgserver.get_server(workdir / "pgdata", cleanup_mode="stop")
    _STATE["pgserver"] = server
    return server.get_uri("postgres")


def pytest_configure(config: pytest.Config) -> None:
    from pupilshare.db import DatabaseEndpoints, to_sqlalchemy_url, with_database
    from pupilshare.runtime import export_runtime_environment
    from pupilshare.settings import Settings

    workdir = Path(tempfile.mkdtemp(prefix="pupilshare-tests-"))
    admin = _admin_url(workdir)
    name = f"pupilshare_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        for database in (name, f"{name}_airflow"):
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(database)))
    data_url = with_database(admin, name)
    airflow_url = to_sqlalchemy_url(with_database(admin, f"{name}_airflow"))
    os.environ["PUPILSHARE_DATABASE_URL"] = data_url
    os.environ["PUPILSHARE_AIRFLOW_DATABASE_URL"] = airflow_url
    os.environ["PUPILSHARE_DATA_DIR"] = str(workdir / "data")
    settings = Settings()
    export_runtime_environment(settings, DatabaseEndpoints(data_url, airflow_url, embedded=False))
    _STATE.update(workdir=workdir, admin=admin, databases=(name, f"{name}_airflow"))


def pytest_unconfigure(config: pytest.Config) -> None:
    admin = _STATE.get("admin")
    if admin:
        try:
            from airflow import settings as airflow_settings

            airflow_settings.dispose_orm()
        except Exception:  # noqa: BLE001 - airflow may never have been imported
            pass
        with psycopg.connect(str(admin), autocommit=True) as conn:
            for database in _STATE.get("databases", ()):
                conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(database)))
    server = _STATE.get("pgserver")
    if server is not None:
        server.cleanup()
    workdir = _STATE.get("workdir")
    if workdir:
        shutil.rmtree(str(workdir), ignore_errors=True)


@pytest.fixture(scope="session")
def admin_url() -> str:
    """libpq URL of the test server's ``postgres`` database (may create and drop databases)."""
    return str(_STATE["admin"])


@pytest.fixture(scope="session")
def data_url() -> str:
    """libpq URL of this session's data database."""
    return os.environ["PUPILSHARE_DATABASE_URL"]


@pytest.fixture
def scratch_db(admin_url: str):
    """A fresh empty database for one test; yields its URL and drops it afterwards."""
    from pupilshare.db import with_database

    name = f"pupilshare_scratch_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    try:
        yield with_database(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
