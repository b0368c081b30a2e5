"""Airflow's metadata database is migrated once for the DAG tests."""

import pytest


@pytest.fixture(scope="session", autouse=True)
def airflow_metadata_db() -> None:
    from pupilshare.airflow.runner import migrate_metadata_db

    migrate_metadata_db()
