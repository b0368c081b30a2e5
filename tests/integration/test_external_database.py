"""External PostgreSQL mode (PUPILSHARE_DATABASE_URL) against the test server: the project creates what it needs
there, never starts its own embedded server, and `pupilshare deploy-init` prepares a deployment on it.

(The rest of the suite also runs in this mode: tests/conftest.py points PUPILSHARE_DATABASE_URL at the server. The
full pipeline in this mode, under CeleryExecutor, is tests/deploy/test_celery_topology.py.)
"""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest
from psycopg import sql
from typer.testing import CliRunner

from pupilshare.cli import app
from pupilshare.db import DatabaseConfigError, database_server, with_database
from pupilshare.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def fresh_name(admin_url: str):
    """A database name not yet on the server; it and its ``_airflow`` twin are dropped afterwards."""
    name = f"pupilshare_external_{uuid.uuid4().hex[:8]}"
    yield name
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for database in (name, f"{name}_airflow"):
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(database)))


def _databases(admin_url: str, prefix: str) -> set[str]:
    with psycopg.connect(admin_url) as conn:
        rows = conn.execute("select datname from pg_database where datname like %s", (prefix + "%",)).fetchall()
    return {name for (name,) in rows}


def test_database_server__external_creates_data_and_airflow_databases(admin_url, fresh_name, tmp_path, monkeypatch):
    monkeypatch.delenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", raising=False)
    monkeypatch.delenv("PUPILSHARE_AIRFLOW_DATABASE_URL", raising=False)
    settings = Settings(database_url=with_database(admin_url, fresh_name), data_dir=tmp_path)
    for _ in range(2):  # idempotent: the second start finds both databases
        with database_server(settings) as endpoints:
            assert not endpoints.embedded
            assert endpoints.airflow_sqlalchemy_url.endswith(f"/{fresh_name}_airflow")
            assert endpoints.airflow_sqlalchemy_url.startswith("postgresql+psycopg2://")
            with psycopg.connect(endpoints.data_url) as conn:
                assert conn.execute("select current_database()").fetchone()[0] == fresh_name
    assert _databases(admin_url, fresh_name) == {fresh_name, f"{fresh_name}_airflow"}
    assert not settings.pgdata_dir.exists(), "external mode must never start the embedded server"


def test_database_server__external_uses_the_configured_airflow_database(admin_url, fresh_name, tmp_path):
    airflow_url = "postgresql+psycopg2://postgres@127.0.0.1:5432/somewhere_else"
    settings = Settings(
        database_url=with_database(admin_url, fresh_name), airflow_database_url=airflow_url, data_dir=tmp_path
    )
    with database_server(settings) as endpoints:
        assert endpoints.airflow_sqlalchemy_url == airflow_url
    assert _databases(admin_url, fresh_name) == {fresh_name}


def test_database_server__external_url_must_be_postgresql(tmp_path):
    settings = Settings(database_url="mysql://root@127.0.0.1/pupilshare", data_dir=tmp_path)
    with pytest.raises(DatabaseConfigError, match="must start with postgresql://"), database_server(settings):
        pass


def test_deploy_init__prepares_folders_database_and_admin_password(admin_url, fresh_name, tmp_path, monkeypatch):
    passwords = tmp_path / "config" / "simple_auth_manager_passwords.json"
    monkeypatch.setenv("PUPILSHARE_DATABASE_URL", with_database(admin_url, fresh_name))
    monkeypatch.setenv("PUPILSHARE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(passwords))
    monkeypatch.setenv("PUPILSHARE_AIRFLOW_ADMIN_PASSWORD", "from-the-environment")
    result = CliRunner().invoke(app, ["deploy-init"])
    assert result.exit_code == 0, result.output
    assert fresh_name in _databases(admin_url, fresh_name)
    assert json.loads(passwords.read_text()) == {"admin": "from-the-environment"}
    assert (tmp_path / "data" / "inbox").is_dir() and (tmp_path / "data" / "outbox").is_dir()


def test_deploy_init__refuses_to_run_without_an_external_database(tmp_path, monkeypatch):
    monkeypatch.delenv("PUPILSHARE_DATABASE_URL", raising=False)
    monkeypatch.setenv("PUPILSHARE_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["deploy-init"])
    assert result.exit_code != 0
    assert "PUPILSHARE_DATABASE_URL" in result.output
    assert not (tmp_path / "pgdata").exists()
