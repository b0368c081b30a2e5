"""Publish the registered statistics tables: suppress, audit, write EES files, check them, publish, record.

Two steps, each an Airflow task (both run by :func:`publish_statistics`):

:func:`stage_statistics` decides the periods to publish (the one asked for, else the latest period of each registered
table: the autumn census reports the current year, its exclusions the year before, and both are published), then for
each period reads every model in ``tables.yml`` for that period, builds its linked table set
(:mod:`pupilshare.stats.publication`), runs primary and secondary suppression with the threshold from the settings,
hides percentages built on a hidden count, and then two gates, each fatal: the independent disclosure audit
(:func:`~pupilshare.stats.audit.assert_publishable`) and the EES format check
(:func:`~pupilshare.stats.ees.assert_valid_ees`) on every file. Only when every table passes is a manifest written in
``staging/statistics/<time_period>/<run>/``. :func:`publish_staged_statistics` checks the staged files are byte for
byte the ones the gates passed, moves the folder into ``outbox/statistics/<time_period>/`` with one rename, and
records one ``ledger.statistics_publications`` row per table in the same transaction.

Fail closed: any error means nothing reaches the outbox for that run, the staging folder is removed and a ``failed``
row per table is recorded with the reason (SHARING_RULES.md, "Disclosure control for statistics"; STYLE.md).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
from psycopg import sql

from pupilshare.db import database_server
from pupilshare.files import sha256_file as _sha256
from pupilshare.files import slug as _slug
from pupilshare.files import write_json as _write_json
from pupilshare.ledger import ensure_ledger_schema, record_statistics_publication
from pupilshare.settings import Settings, load_settings
from pupilshare.stats.audit import AuditInputError, DisclosureRiskError
from pupilshare.stats.config import DisclosureConfig
from pupilshare.stats.ees import EESFormatError, assert_valid_ees, write_ees_files
from pupilshare.stats.publication import (
    LocalAuthority,
    Suppressor,
    build_linked_tables,
    ees_columns,
    protect_tables,
    render_ees_frame,
)
from pupilshare.stats.registry import StatisticsRegistry, StatisticsTable, default_registry
from pupilshare.stats.suppression import SuppressionError, TableSetError, suppress_table_set

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
_AUDIT_GATE, _FORMAT_GATE, _BUILD = "disclosure audit", "EES format check", "build"


class StatisticsRefusedError(RuntimeError):
    """A statistics table could not be built or failed a publish gate: nothing was published."""

    def __init__(self, table: str, gate: str, cause: Exception) -> None:
        self.table, self.gate = table, gate
        super().__init__(f"statistics table {table!r} refused at the {gate}: {cause}")


class StatisticsIntegrityError(RuntimeError):
    """The staged files are not the ones the gates passed, or not where they should be; nothing was published."""


def disclosure_config(settings: Settings) -> DisclosureConfig:
    """The threshold and protection width in force (``PUPILSHARE_SUPPRESSION_THRESHOLD`` / ``_PROTECTION``)."""
    return DisclosureConfig(threshold=settings.suppression_threshold, protection=settings.suppression_protection)


def local_authority(settings: Settings) -> LocalAuthority:
    return LocalAuthority(old_la_code=settings.la_code, new_la_code=settings.new_la_code, la_name=settings.la_name)


def publish_statistics(
    *, time_period: str | None = None, run_id: str, settings: Settings | None = None
) -> list[dict[str, Any]]:
    """Stage (suppress, audit gate, EES files, format gate) then publish and record every registered table; one
    result per time period published (see :func:`stage_statistics`)."""
    settings = settings or load_settings()
    stagings = stage_statistics(time_period=time_period, run_id=run_id, settings=settings)
    return [publish_staged_statistics(staging, settings=settings) for staging in stagings]


def stage_statistics(*, time_period: str | None = None, run_id: str, settings: Settings | None = None) -> list[str]:
    """Gate every registered table for each period to publish and stage the files; return one folder per period.

    The periods: ``time_period`` if given, else the latest period of each registered table with rows
    (:func:`periods_to_publish`); each period's folder holds every table with rows for that period. All or nothing:
    when a table of any period fails a gate, the periods already staged by this run are removed, the failure is
    recorded and :class:`StatisticsRefusedError` raised.
    """
    settings = settings or load_settings()
    settings.ensure_folders()
    registry, config = default_registry(), disclosure_config(settings)
    stagings: list[Path] = []
    with database_server(settings) as endpoints, psycopg.connect(endpoints.data_url) as conn:
        ensure_ledger_schema(conn)
        try:
            la = local_authority(settings)
            for period in [time_period] if time_period else periods_to_publish(conn, registry):
                period, frames = read_stats_models(conn, registry, period)
                staging = statistics_staging_dir(settings, period, run_id)
                stage_tables(registry, frames, staging, config=config, la=la, run_id=run_id, time_period=period)
                stagings.append(staging)
        except Exception as error:
            for staging in stagings:
                shutil.rmtree(staging, ignore_errors=True)
            _record_failure(conn, registry, run_id=run_id, time_period=time_period, config=config, error=error)
            raise
    return [str(staging) for staging in stagings]


def stage_tables(
    registry: StatisticsRegistry,
    frames: Mapping[str, pd.DataFrame],
    staging: Path,
    *,
    config: DisclosureConfig,
    la: LocalAuthority,
    run_id: str,
    time_period: str,
    suppress: Suppressor = suppress_table_set,
) -> dict[str, Any]:
    """Write every table's gated EES files and the manifest into a fresh ``staging``; remove it on any error."""
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    try:
        entries = [
            _stage_table(spec, frames[spec.name], staging, config, la, suppress)
            for spec in registry.tables
            if spec.name in frames
        ]
        if not entries:
            raise StatisticsRefusedError("*", _BUILD, LookupError(f"no registered table has rows for {time_period}"))
        manifest = {
            "time_period": time_period,
            "run_id": run_id,
            "registry_version": registry.version,
            "threshold": config.threshold,
            "protection": config.required_width,
            "local_authority": la.__dict__,
            "tables": entries,
            "skipped": sorted(spec.name for spec in registry.tables if spec.name not in frames),
            "staged_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        _write_json(staging / MANIFEST_NAME, manifest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _stage_table(
    spec: StatisticsTable,
    frame: pd.DataFrame,
    staging: Path,
    config: DisclosureConfig,
    la: LocalAuthority,
    suppress: Suppressor,
) -> dict[str, Any]:
    """One table through both gates into ``staging``; its manifest entry."""
    try:
        linked = build_linked_tables(spec, frame)
    except TableSetError as error:
        raise StatisticsRefusedError(spec.name, _BUILD, error) from error
    try:
        checked = protect_tables(linked, config, suppress=suppress)
    except (DisclosureRiskError, SuppressionError, AuditInputError) as error:
        raise StatisticsRefusedError(spec.name, _AUDIT_GATE, error) from error
    ees_frame = render_ees_frame(checked, la)
    try:
        files = write_ees_files(ees_frame, staging, spec.name, ees_columns(spec))
        assert_valid_ees(files.data, files.meta)
    except EESFormatError as error:
        raise StatisticsRefusedError(spec.name, _FORMAT_GATE, error) from error
    summary = checked.summary()
    log.info("statistics table %s: %s", spec.name, summary["audit"])
    return {
        "table": spec.name,
        "title": spec.title,
        "model": f"{spec.schema_name}.{spec.model}",
        "files": [files.data.name, files.meta.name],
        "sha256": {path.name: _sha256(path) for path in (files.data, files.meta)},
        "rows": len(ees_frame),
        **summary,
    }


def read_stats_models(
    conn: psycopg.Connection, registry: StatisticsRegistry, time_period: str | None
) -> tuple[str, dict[str, pd.DataFrame]]:
    """The period to publish (given, else the latest in any model) and each model's rows for it (tables with rows)."""
    _require_models(conn, registry)
    period = time_period or max(periods_to_publish(conn, registry))
    if not re.fullmatch(r"\d{4}(\d{2})?", period or ""):
        raise StatisticsRefusedError("*", _BUILD, ValueError(f"no time period to publish (got {period!r})"))
    frames = {}
    for spec in registry.tables:
        query = sql.SQL("select {columns} from {table} where time_period = %s").format(
            columns=sql.SQL(", ").join(sql.Identifier(column) for column in spec.model_columns),
            table=sql.Identifier(spec.schema_name, spec.model),
        )
        with conn.cursor() as cursor:
            cursor.execute(query, (period,))
            frame = pd.DataFrame(cursor.fetchall(), columns=list(spec.model_columns))
        if frame.empty:
            log.warning("statistics table %s has no rows for %s: not published this time", spec.name, period)
        else:
            frames[spec.name] = frame
    return period, frames


def periods_to_publish(conn: psycopg.Connection, registry: StatisticsRegistry) -> list[str]:
    """The latest time period of each registered table that has rows, oldest first (every table must exist).

    One latest period for all tables would never publish a table whose data lag a year behind the census (the
    autumn census carries the previous year's exclusions): each table's own latest period is published instead.
    """
    _require_models(conn, registry)
    selects = [
        sql.SQL("select max(time_period) as time_period from {}").format(sql.Identifier(spec.schema_name, spec.model))
        for spec in registry.tables
    ]
    query = sql.SQL("select distinct time_period from ({}) as periods where time_period is not null").format(
        sql.SQL(" union all ").join(selects)
    )
    periods = sorted(row[0] for row in conn.execute(query).fetchall())
    if not periods:
        raise StatisticsRefusedError("*", _BUILD, LookupError("no registered statistics table has any rows"))
    return periods


def _require_models(conn: psycopg.Connection, registry: StatisticsRegistry) -> None:
    for spec in registry.tables:
        exists = conn.execute("select to_regclass(%s) is not null", (f"{spec.schema_name}.{spec.model}",)).fetchone()
        if not exists[0]:
            raise StatisticsRefusedError(
                spec.name, _BUILD, LookupError(f"{spec.schema_name}.{spec.model} does not exist: run dbt first")
            )


def statistics_staging_dir(settings: Settings, time_period: str, run_id: str) -> Path:
    return settings.staging_dir / "statistics" / time_period / _slug(run_id)


def publish_staged_statistics(staging_dir: str | Path, *, settings: Settings | None = None) -> dict[str, Any]:
    """Move a gated, staged publication into ``outbox/statistics/<time_period>/`` and record it (fail closed).

    A rerun whose files are byte for byte the ones already published publishes and records nothing again.
    """
    settings = settings or load_settings()
    staging = _checked_staging(Path(staging_dir), settings)
    manifest = json.loads((staging / MANIFEST_NAME).read_text(encoding="utf-8"))
    _verify_staged_files(staging, manifest)
    target = settings.outbox_dir / "statistics" / manifest["time_period"]
    result = {"time_period": manifest["time_period"], "target": str(target), "tables": manifest["tables"]}
    if _already_published(target, manifest):
        shutil.rmtree(staging, ignore_errors=True)
        log.info("statistics for %s already published with these files; nothing published again", target.name)
        return {"status": "already_published", **result}
    registry, config = default_registry(), disclosure_config(settings)
    with database_server(settings) as endpoints, psycopg.connect(endpoints.data_url) as conn:
        ensure_ledger_schema(conn)
        try:
            _publish(conn, staging, target, manifest, settings)
        except Exception as error:
            _record_failure(
                conn, registry, run_id=manifest["run_id"], time_period=manifest["time_period"], config=config,
                error=error,
            )  # fmt: skip
            raise
    log.info("published statistics for %s: %s", manifest["time_period"], [t["table"] for t in manifest["tables"]])
    return {"status": "published", **result}


def _publish(conn: psycopg.Connection, staging: Path, target: Path, manifest: dict, settings: Settings) -> None:
    """Record and rename in one go: if the transaction fails the rename is undone, if the rename fails nothing is."""
    target.parent.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    superseded = settings.archive_dir / "statistics" / target.name / f"{stamp}_{uuid.uuid4().hex[:8]}"
    moved_old = moved_new = False
    try:
        with conn.transaction():
            for entry in manifest["tables"]:
                record_statistics_publication(conn, _ledger_row(manifest, entry, target))
            if target.exists():
                superseded.parent.mkdir(parents=True, exist_ok=True)
                os.rename(target, superseded)  # same file system (data_dir): atomic
                moved_old = True
            os.rename(staging, target)
            moved_new = True
    except BaseException:
        if moved_new:
            os.rename(target, staging)
        if moved_old:
            os.rename(superseded, target)
        raise


def _ledger_row(manifest: dict, entry: dict, target: Path) -> dict[str, Any]:
    return {
        "publication_id": str(uuid.uuid4()),
        "run_id": manifest["run_id"],
        "table_name": entry["table"],
        "time_period": manifest["time_period"],
        "status": "published",
        "files": entry["files"] + [MANIFEST_NAME],
        "sha256": entry["sha256"],
        "row_count": entry["rows"],
        "threshold": manifest["threshold"],
        "protection": manifest["protection"],
        "cells_primary": entry["cells_primary"],
        "cells_secondary": entry["cells_secondary"],
        "cells_derived_hidden": entry["cells_derived_hidden"],
        "min_protection_width": entry["min_protection_width"],
        "audit_ok": entry["audit_ok"],
        "failure": None,
        "target": str(target),
    }


def _record_failure(
    conn: psycopg.Connection,
    registry: StatisticsRegistry,
    *,
    run_id: str,
    time_period: str | None,
    config: DisclosureConfig,
    error: BaseException,
) -> None:
    """One ``failed`` row per registered table, in its own committed transaction: nothing of the run was published."""
    message = f"{type(error).__name__}: {error}"[:8000]
    log.error("statistics run %s published nothing: %s", run_id, message)
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        conn.rollback()
    with conn.transaction():
        for spec in registry.tables:
            record_statistics_publication(
                conn,
                {
                    "publication_id": str(uuid.uuid4()),
                    "run_id": run_id,
                    "table_name": spec.name,
                    "time_period": time_period,
                    "status": "failed",
                    "files": [],
                    "sha256": {},
                    "row_count": None,
                    "threshold": config.threshold,
                    "protection": config.required_width,
                    "cells_primary": None,
                    "cells_secondary": None,
                    "cells_derived_hidden": None,
                    "min_protection_width": None,
                    "audit_ok": _audit_verdict(spec.name, error),
                    "failure": message,
                    "target": None,
                },
            )


def _audit_verdict(table: str, error: BaseException) -> bool | None:
    """False when this table failed the audit, True when it passed it and failed later, else unknown."""
    if isinstance(error, StatisticsRefusedError) and error.table == table:
        return {_AUDIT_GATE: False, _FORMAT_GATE: True}.get(error.gate)
    return None


def _checked_staging(staging: Path, settings: Settings) -> Path:
    resolved = staging.resolve()
    root = (settings.staging_dir / "statistics").resolve()
    if root not in resolved.parents:
        raise StatisticsIntegrityError(f"{staging} is not inside {root}; nothing published")
    if not (resolved / MANIFEST_NAME).is_file():
        raise StatisticsIntegrityError(f"{resolved} has no {MANIFEST_NAME}: it was not gated; nothing published")
    return resolved


def _verify_staged_files(staging: Path, manifest: dict) -> None:
    """Every staged file is listed with the hash the gates saw, and nothing else is in the folder."""
    expected = {name: sha for entry in manifest["tables"] for name, sha in entry["sha256"].items()}
    present = {path.name for path in staging.iterdir()} - {MANIFEST_NAME}
    if present != set(expected):
        raise StatisticsIntegrityError(f"staged files {sorted(present)} are not the gated {sorted(expected)}")
    for name, sha in expected.items():
        if _sha256(staging / name) != sha:
            raise StatisticsIntegrityError(f"{staging / name} changed after the gates passed; nothing published")


def _already_published(target: Path, manifest: dict) -> bool:
    published = target / MANIFEST_NAME
    if not published.is_file():
        return False
    previous = json.loads(published.read_text(encoding="utf-8"))
    return _hashes(previous["tables"]) == _hashes(manifest["tables"])


def _hashes(entries: Sequence[dict]) -> dict[str, str]:
    return {name: sha for entry in entries for name, sha in entry["sha256"].items()}
