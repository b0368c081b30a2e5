"""Database URL handling for the embedded and external modes."""

from __future__ import annotations

from urllib.parse import quote

from pupilshare.db import DatabaseEndpoints, to_sqlalchemy_url, with_database


def test_with_database__swaps_only_the_database():
    assert (
        with_database("postgresql://u:p@h:5433/a?sslmode=require", "b") == "postgresql://u:p@h:5433/b?sslmode=require"
    )


def test_to_sqlalchemy_url__uses_psycopg2_driver():
    assert to_sqlalchemy_url("postgresql://u@h/airflow") == "postgresql+psycopg2://u@h/airflow"


def test_dbt_env__unix_socket_host_from_query():
    """pgserver's URL names a socket folder: postgresql://postgres:@/pupilshare?host=/tmp/x -> host /tmp/x."""
    endpoints = DatabaseEndpoints("postgresql://postgres:@/pupilshare?host=/tmp/x", "sqlite://", embedded=True)
    env = endpoints.dbt_env()
    assert env["PUPILSHARE_DB_HOST"] == "/tmp/x"
    assert env["PUPILSHARE_DB_NAME"] == "pupilshare"
    assert env["PUPILSHARE_DB_USER"] == "postgres"


def test_dbt_env__tcp_url():
    env = DatabaseEndpoints("postgresql://app:secret@db.example:6543/data", "x", embedded=False).dbt_env()
    assert (env["PUPILSHARE_DB_HOST"], env["PUPILSHARE_DB_PORT"], env["PUPILSHARE_DB_PASSWORD"]) == (
        "db.example",
        "6543",
        "secret",
    )


def test_dbt_env__percent_encoded_credentials_are_decoded():
    """An external server's password with reserved characters is percent-encoded in the URL; dbt needs it plain."""
    user, password = quote("app@la", safe=""), quote("p@ss:w/rd%", safe="")
    assert (user, password) == ("app%40la", "p%40ss%3Aw%2Frd%25")
    env = DatabaseEndpoints(f"postgresql://{user}:{password}@db:5432/data", "x", embedded=False).dbt_env()
    assert (env["PUPILSHARE_DB_USER"], env["PUPILSHARE_DB_PASSWORD"]) == ("app@la", "p@ss:w/rd%")
