"""Where the data lives: the embedded PostgreSQL (pgserver) by default, or an external server.

With ``PUPILSHARE_DATABASE_URL`` unset, :func:`database_server` starts a private PostgreSQL 16 cluster in
``<data_dir>/pgdata`` (no root, no Docker) and stops it cleanly when the last process using it exits.
With it set, the project uses that server and never starts one of its own.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, quote, unquote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from pupilshare.settings import Settings

log = logging.getLogger(__name__)

DATA_DATABASE = "pupilshare"
AIRFLOW_DATABASE = "airflow"


class DatabaseConfigError(RuntimeError):
    """The database URL in the environment cannot be used."""


@dataclass(frozen=True)
class DatabaseEndpoints:
    """Connection details for the data database and Airflow's metadata database."""

    data_url: str
    airflow_sqlalchemy_url: str
    embedded: bool

    def dbt_env(self) -> dict[str, str]:
        """``PUPILSHARE_DB_*`` variables that ``dbt_project/profiles.yml`` reads."""
        parts = urlsplit(self.data_url)
        query = parse_qs(parts.query)
        host = query.get("host", [parts.hostname or "127.0.0.1"])[0]
        return {
            "PUPILSHARE_DB_HOST": host,
            "PUPILSHARE_DB_PORT": str(parts.port or 5432),
            # a URL percent-encodes reserved characters (a password with @ or /); dbt wants them plain
            "PUPILSHARE_DB_USER": unquote(parts.username or "postgres"),
            "PUPILSHARE_DB_PASSWORD": unquote(parts.password or ""),
            "PUPILSHARE_DB_NAME": unquote(parts.path.lstrip("/")) or DATA_DATABASE,
        }


def with_database(url: str, database: str) -> str:
    """The same server URL with another database name."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + quote(database), parts.query, parts.fragment))


def to_sqlalchemy_url(url: str) -> str:
    """A libpq URL as a SQLAlchemy URL with the psycopg2 driver (what Airflow's metadata DB uses)."""
    parts = urlsplit(url)
    return urlunsplit(("postgresql+psycopg2", parts.netloc, parts.path, parts.query, parts.fragment))


def ensure_database(server_url: str, database: str) -> None:
    """Create ``database`` on the server if it does not exist (idempotent)."""
    with psycopg.connect(with_database(server_url, "postgres"), autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", (database,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(database)))
            log.info("created database %s", database)


@contextlib.contextmanager
def database_server(settings: Settings) -> Iterator[DatabaseEndpoints]:
    """Yield the endpoints of a running server, starting the embedded one when no URL is configured."""
    if settings.database_url:
        yield _external_endpoints(settings)
        return
    import pgserver  # heavy import, only for the embedded mode

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(settings.pgdata_dir, cleanup_mode="stop")
    with server:
        server_url = server.get_uri()
        for database in (DATA_DATABASE, AIRFLOW_DATABASE):
            ensure_database(server_url, database)
        yield DatabaseEndpoints(
            data_url=with_database(server_url, DATA_DATABASE),
            airflow_sqlalchemy_url=to_sqlalchemy_url(with_database(server_url, AIRFLOW_DATABASE)),
            embedded=True,
        )


def _external_endpoints(settings: Settings) -> DatabaseEndpoints:
    url = settings.database_url or ""
    parts = urlsplit(url)
    if parts.scheme not in {"postgresql", "postgres"}:
        raise DatabaseConfigError(
            f"PUPILSHARE_DATABASE_URL must start with postgresql:// (got scheme {parts.scheme!r})"
        )
    data_db = parts.path.lstrip("/") or DATA_DATABASE
    ensure_database(url, data_db)
    airflow_url = settings.airflow_database_url or os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
    if not airflow_url:
        airflow_db = f"{data_db}_airflow"
        ensure_database(url, airflow_db)
        airflow_url = to_sqlalchemy_url(with_database(url, airflow_db))
    return DatabaseEndpoints(data_url=with_database(url, data_db), airflow_sqlalchemy_url=airflow_url, embedded=False)


def connect(url: str, **kwargs: object) -> psycopg.Connection:
    """Open a psycopg connection to the data database."""
    return psycopg.connect(url, **kwargs)


#: SQLSTATE classes of faults in the server or the connection, not in the data: connection exceptions (08),
#: insufficient resources (53), operator intervention such as a shutdown or restart (57), system errors (58) and
#: transaction rollbacks such as deadlocks and serialization failures (40).
_SERVER_FAULT_CLASSES = frozenset({"08", "40", "53", "57", "58"})


def is_server_fault(error: BaseException) -> bool:
    """Whether a database error came from the server or the connection (retry the task) rather than the data
    (refuse the file). A return must never be quarantined because PostgreSQL restarted while it loaded."""
    if isinstance(error, (psycopg.OperationalError, psycopg.InterfaceError)):
        return True
    sqlstate = getattr(error, "sqlstate", None) or ""
    return sqlstate[:2] in _SERVER_FAULT_CLASSES
