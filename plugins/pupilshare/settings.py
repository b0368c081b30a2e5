"""One typed settings object, read from ``PUPILSHARE_*`` environment variables."""

from __future__ import annotations

import datetime as dt
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pupilshare import PROJECT_ROOT


class Settings(BaseSettings):
    """Runtime configuration. Every field can be set as ``PUPILSHARE_<FIELD>`` in the environment.

    With no ``database_url`` the project starts its own embedded PostgreSQL (pgserver) in
    ``<data_dir>/pgdata``; with one, it uses that server and never starts its own.
    """

    model_config = SettingsConfigDict(env_prefix="PUPILSHARE_", extra="forbid", frozen=True)

    database_url: str | None = Field(
        default=None,
        description="postgresql://user:password@host:port/dbname of the data database; unset = embedded server.",
    )
    airflow_database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of Airflow's metadata database; unset = database 'airflow' on the same server.",
    )
    data_dir: Path = Field(default=Path("data"), description="Holds inbox/, quarantine/, outbox/, pgdata/, airflow/.")
    la_code: str = Field(default="926", pattern=r"^\d{3}$", description="Three-digit (old) LA code.")
    new_la_code: str = Field(default="E10000020", pattern=r"^E\d{8}$", description="Nine-character GSS LA code.")
    la_name: str = Field(default="Norfolk")
    feed_date: dt.date | None = Field(default=None, description="Feed date for `pupilshare run`; unset = today.")
    opt_out_persistence: Literal["persist", "lapse"] = Field(
        default="persist",
        description="Whether a parent's opt-out made before 16 stays in force after 16 until the pupil decides.",
    )
    max_inbox_file_bytes: int = Field(default=2 * 1024**3, gt=0, description="Files larger than this are refused.")
    suppression_threshold: int = Field(
        default=3,
        ge=2,
        description="Published statistics: a count from 1 to threshold - 1 is shown as `c` (SHARING_RULES.md, "
        "'Disclosure control for statistics'; 3 as in DfE exclusion tables, LAs often use 5 or 10).",
    )
    suppression_protection: int | None = Field(
        default=None,
        ge=1,
        description="Minimum width of a hidden count's feasible range in published statistics; unset = the threshold.",
    )
    publish_retry_delay_seconds: float = Field(
        default=30,
        gt=0,
        description="Base delay before a publish DAG's task is retried (doubled on each further retry). Production "
        "keeps 30 s; the DAG tests of delivery faults set it to a few seconds so a retry fits in a test run.",
    )
    sftp_connect_timeout_seconds: int = Field(
        default=30,
        gt=0,
        description="How long an SFTP delivery waits for the recipient's server to answer before the attempt fails "
        "(the task is then retried: PUPILSHARE_PUBLISH_RETRY_DELAY_SECONDS).",
    )
    sftp_connect_attempts: int = Field(
        default=3,
        ge=1,
        description="Connection attempts within one SFTP delivery attempt, 3 to 5 s apart (the SFTP provider's "
        "default), before it fails and Airflow's task retries take over; tests set 1.",
    )

    role_prefix: str | None = Field(
        default=None,
        pattern=r"^[a-z][a-z0-9_]{0,39}$",
        description="Prefix of the project's PostgreSQL roles (roles are cluster-wide); unset = the data database's "
        "name. See pupilshare.access.",
    )
    pseudonymisation_key: SecretStr | None = Field(
        default=None,
        description="Key of the keyed hash that replaces a UPN when NCMP identities are purged (retention); unset = "
        "a fresh random key per purge, so pseudonyms cannot be linked across purges.",
    )

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @cached_property
    def inbox_dir(self) -> Path:
        return self.data_dir / "inbox"

    @cached_property
    def quarantine_dir(self) -> Path:
        return self.data_dir / "quarantine"

    @cached_property
    def outbox_dir(self) -> Path:
        return self.data_dir / "outbox"

    @cached_property
    def staging_dir(self) -> Path:
        """Feed files are written here, gated, and only then moved into the outbox."""
        return self.data_dir / "staging"

    @cached_property
    def archive_dir(self) -> Path:
        """Loaded inbox files are moved here."""
        return self.data_dir / "archive"

    @cached_property
    def data_docs_dir(self) -> Path:
        return self.data_dir / "data_docs"

    @cached_property
    def pgdata_dir(self) -> Path:
        return self.data_dir / "pgdata"

    @cached_property
    def airflow_home(self) -> Path:
        return self.data_dir / "airflow"

    @property
    def dbt_project_dir(self) -> Path:
        return PROJECT_ROOT / "dbt_project"

    @property
    def dags_dir(self) -> Path:
        return PROJECT_ROOT / "dags"

    @property
    def expectations_dir(self) -> Path:
        return PROJECT_ROOT / "expectations"

    def effective_feed_date(self) -> dt.date:
        return self.feed_date or dt.date.today()

    def ensure_folders(self) -> None:
        """Create the data folder layout (idempotent)."""
        for folder in (
            self.inbox_dir,
            self.quarantine_dir,
            self.outbox_dir,
            self.staging_dir,
            self.archive_dir,
            self.data_docs_dir,
            self.airflow_home,
        ):
            folder.mkdir(parents=True, exist_ok=True)


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment, with explicit overrides (used by the CLI and tests)."""
    return Settings(**{key: value for key, value in overrides.items() if value is not None})
