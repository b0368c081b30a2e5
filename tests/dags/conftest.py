"""Airflow's metadata database is migrated once for the DAG tests."""

import pytest


@pytest.fixture(scope="session", autouse=True)
def airflow_metadata_db() -> None:
    from pupilshare.airflow.runner import migrate_metadata_db

    migrate_metadata_db()


@pytest.fixture(scope="module")
def isolated_pipeline(admin_url: str, tmp_path_factory: pytest.TempPathFactory):
    """A fresh data database and data folder for one test module's pipeline runs; Airflow's metadata is shared.

    The DAG tasks read their settings (and dbt its profile) from the environment, so the environment points at the
    module's own database and folder while the module runs, and is restored afterwards.
    """
    import os
    import uuid

    import psycopg
    from psycopg import sql

    from pupilshare.db import DatabaseEndpoints, with_database
    from pupilshare.runtime import runtime_environment
    from pupilshare.settings import Settings

    name = f"pupilshare_pipeline_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    settings = Settings(database_url=with_database(admin_url, name), data_dir=tmp_path_factory.mktemp("pipeline"))
    endpoints = DatabaseEndpoints(settings.database_url, os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], False)
    overrides = {
        **{
            key: value
            for key, value in runtime_environment(settings, endpoints).items()
            if key.startswith("PUPILSHARE")
        },
        "PUPILSHARE_DATABASE_URL": settings.database_url,
    }
    saved = {key: os.environ.get(key) for key in overrides}
    os.environ.update(overrides)
    try:
        yield settings
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


@pytest.fixture
def single_dag(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Return a loader of one DAG from a DAGs folder holding only its file.

    ``dag.test()`` re-parses its whole bundle before running; with the publish DAGs' cosmos ``dbt ls`` that costs
    minutes on a loaded machine. A test about one small DAG points the bundle at a folder with just that file.
    """
    import shutil

    from airflow import settings as airflow_settings
    from airflow.dag_processing.dagbag import DagBag

    from pupilshare import PROJECT_ROOT

    def load(dag_id: str):
        folder = tmp_path_factory.mktemp(f"dags_{dag_id}")
        shutil.copy(PROJECT_ROOT / "dags" / f"{dag_id}.py", folder / f"{dag_id}.py")
        monkeypatch.setattr(airflow_settings, "DAGS_FOLDER", str(folder))
        bag = DagBag(dag_folder=str(folder))
        assert not bag.import_errors, bag.import_errors
        return bag.get_dag(dag_id)

    return load
