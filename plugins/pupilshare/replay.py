"""Replay a past delivery: rebuild its feed from the data as it stood when it was delivered and compare checksums.

``pupilshare replay DELIVERY_ID`` (or ``--recipient R --feed-date D [--route X]``):

1. reads the delivery and its build context from the ledger (``ledger.build_contexts``, recorded by
   :func:`pupilshare.publish.gate_feed` for every gate run): the newest load batch the build could read, the
   opt-out persistence setting, the dbt and dbt project versions, the policy version;
2. creates a scratch database on the same server and copies into it every raw row of the load batches up to that
   batch (and the batch register and validation findings of those batches); the raw views (current census returns,
   rejected rows) are recreated by the ingest's own DDL, so a later resubmission that superseded a school's return is
   simply not there and the earlier return is current again, as it was;
3. builds the recipient's dbt models into that scratch database (seeds and models, no tests: tests do not change the
   file) with the recorded ``feed_date`` and ``opt_out_persistence``; the live marts are untouched;
4. reads the mart and writes the feed with the delivery's own functions (:func:`pupilshare.publish._read_mart` and
   :func:`pupilshare.publish._stage`) into ``<data_dir>/replay/<delivery id>/``, then drops the scratch database;
5. compares the SHA-256 of the regenerated file (the delivery's route, for a routed recipient) with the ledger's, and
   on a mismatch says why it can: which recorded version differs from the code now, and where the file first
   differs from the delivered copy if that is still in the outbox.

Deliveries recorded before build contexts existed have no recorded batch: the replay then takes the batches loaded
before the gate ran (``ledger.gate_results.checked_at``) and says so.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import logging
import os
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import psycopg.rows
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

import pupilshare
from pupilshare.db import DatabaseEndpoints, database_server, with_database
from pupilshare.files import sha256_file
from pupilshare.policy import RecipientPolicy, load_policy
from pupilshare.settings import Settings, load_settings

log = logging.getLogger(__name__)

#: What of the dbt project decides what a feed holds (tests and docs do not).
_DBT_CODE_PARTS = ("dbt_project.yml", "models", "macros", "seeds")
#: The column naming a raw row's load batch: ``_load_batch_id`` in the return tables, ``load_batch_id`` in the batch
#: register, the census school returns and the validation findings.
_BATCH_COLUMNS = ("_load_batch_id", "load_batch_id")


class ReplayError(RuntimeError):
    """The delivery cannot be replayed (unknown id, no scratch database, a failed build); nothing was compared."""


@dataclass
class ReplayResult:
    """The outcome of one replay: ``match`` is True when the regenerated file has the ledger's SHA-256."""

    delivery_id: str
    recipient_id: str
    route: str | None
    feed_date: str
    expected_sha256: str
    actual_sha256: str | None
    regenerated_file: str | None
    max_load_batch_id: int | None
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def match(self) -> bool:
        return self.actual_sha256 == self.expected_sha256

    def to_dict(self) -> dict[str, Any]:
        return {
            "delivery_id": self.delivery_id,
            "recipient_id": self.recipient_id,
            "route": self.route,
            "feed_date": self.feed_date,
            "match": self.match,
            "expected_sha256": self.expected_sha256,
            "actual_sha256": self.actual_sha256,
            "regenerated_file": self.regenerated_file,
            "max_load_batch_id": self.max_load_batch_id,
            "reasons": self.reasons,
            "notes": self.notes,
        }


# --- recording the build context (called by publish.gate_feed) --------------------------------------------------------


def dbt_version() -> str:
    """The dbt-core and dbt-postgres versions installed (``dbt-core 1.11.2 / dbt-postgres 1.10.0``)."""
    parts = []
    for package in ("dbt-core", "dbt-postgres"):
        try:
            parts.append(f"{package} {importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            parts.append(f"{package} missing")
    return " / ".join(parts)


def dbt_project_sha256(project_dir: Path | None = None) -> str:
    """SHA-256 over the dbt project's models, macros, seeds and ``dbt_project.yml`` (path and bytes of each file)."""
    root = project_dir or Path(pupilshare.PROJECT_ROOT) / "dbt_project"
    digest = hashlib.sha256()
    files: list[Path] = []
    for part in _DBT_CODE_PARTS:
        path = root / part
        files += [path] if path.is_file() else sorted(item for item in path.rglob("*") if item.is_file())
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def build_context(
    conn: psycopg.Connection, *, recipient_id: str, feed_date: Any, policy_version: str, settings: Settings
) -> dict[str, Any]:
    """What a feed is built from now: the newest load batch, the code versions and the setting that shapes it.

    Read before the gate reads the mart, so the batch recorded is at least the newest the build could have read.
    """
    max_batch = None
    if conn.execute("select to_regclass('raw.load_batches')").fetchone()[0] is not None:
        max_batch = conn.execute("select max(load_batch_id) from raw.load_batches").fetchone()[0]
    return {
        "recipient_id": recipient_id,
        "feed_date": feed_date,
        "max_load_batch_id": max_batch,
        "dbt_version": dbt_version(),
        "dbt_project_sha256": dbt_project_sha256(),
        "pupilshare_version": pupilshare.__version__,
        "policy_version": policy_version,
        "opt_out_persistence": settings.opt_out_persistence,
    }


# --- replaying -------------------------------------------------------------------------------------------------------


def find_delivery(conn: psycopg.Connection, *, recipient_id: str, feed_date: Any, route: str | None) -> str:
    """The id of the latest delivery to ``recipient_id`` (and ``route``) for ``feed_date``."""
    found = conn.execute(
        """select delivery_id::text from ledger.deliveries
           where recipient_id = %s and feed_date = %s and route is not distinct from %s
           order by delivered_at desc limit 1""",
        (recipient_id, feed_date, route),
    ).fetchone()
    if found is None:
        raise ReplayError(f"no delivery to {recipient_id} (route {route}) for feed date {feed_date} in the ledger")
    return found[0]


def replay_delivery(delivery_id: str, *, settings: Settings | None = None) -> ReplayResult:
    """Regenerate delivery ``delivery_id`` from the data as it stood and compare its SHA-256 with the ledger's."""
    settings = settings or load_settings()
    with database_server(settings) as endpoints:
        with psycopg.connect(endpoints.data_url) as conn:
            delivery = _read_delivery(conn, delivery_id)
            batch, notes = _as_of_batch(conn, delivery)
        recipient = load_policy().recipient(delivery["recipient_id"])
        persistence = delivery["opt_out_persistence"] or settings.opt_out_persistence
        with _scratch_database(endpoints.data_url) as scratch_url:
            _copy_raw(endpoints.data_url, scratch_url, batch)
            build_recipient_models(scratch_url, recipient, feed_date=delivery["feed_date"], persistence=persistence)
            regenerated = _export(scratch_url, recipient, delivery, settings)
    result = ReplayResult(
        delivery_id=delivery_id,
        recipient_id=recipient.recipient_id,
        route=delivery["route"],
        feed_date=delivery["feed_date"].isoformat(),
        expected_sha256=delivery["file_sha256"],
        actual_sha256=sha256_file(regenerated) if regenerated else None,
        regenerated_file=str(regenerated) if regenerated else None,
        max_load_batch_id=batch,
        notes=notes,
    )
    if not result.match:
        result.reasons = mismatch_reasons(delivery, regenerated)
    return result


def _read_delivery(conn: psycopg.Connection, delivery_id: str) -> dict[str, Any]:
    try:
        uuid.UUID(delivery_id)
    except ValueError:
        raise ReplayError(f"{delivery_id!r} is not a delivery id (a UUID from ledger.deliveries)") from None
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cursor:
        row = cursor.execute(
            """select deliveries.*, contexts.max_load_batch_id, contexts.dbt_version, contexts.dbt_project_sha256,
                      contexts.opt_out_persistence, contexts.gate_result_id is not null as has_context,
                      gates.checked_at as gate_checked_at
               from ledger.deliveries as deliveries
               left join ledger.build_contexts as contexts on contexts.gate_result_id = deliveries.gate_result_id
               left join ledger.gate_results as gates on gates.gate_result_id = deliveries.gate_result_id
               where deliveries.delivery_id = %s""",
            (delivery_id,),
        ).fetchone()
    if row is None:
        raise ReplayError(f"no delivery {delivery_id} in ledger.deliveries")
    return row


def _as_of_batch(conn: psycopg.Connection, delivery: dict[str, Any]) -> tuple[int | None, list[str]]:
    """The newest load batch the delivered build could read, and a note when it had to be inferred."""
    if delivery["has_context"]:
        return delivery["max_load_batch_id"], []
    moment = delivery["gate_checked_at"] or delivery["delivered_at"]
    batch = conn.execute("select max(load_batch_id) from raw.load_batches where loaded_at <= %s", (moment,)).fetchone()
    return batch[0], [
        f"no build context recorded for this delivery (made before build contexts existed): the batches loaded "
        f"before {moment.isoformat()} were used, and the current dbt project, policy and opt-out setting"
    ]


@contextlib.contextmanager
def _scratch_database(data_url: str) -> Iterator[str]:
    """A new empty database on the same server, dropped afterwards."""
    base = conninfo_to_dict(data_url).get("dbname") or "pupilshare"
    name = f"{base[:40]}_replay_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(data_url, autocommit=True) as conn:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    except psycopg.errors.InsufficientPrivilege as error:
        raise ReplayError(
            f"cannot create the scratch database {name}: {error.diag.message_primary}. Replay builds the past feed in "
            "a scratch database so the live marts are untouched: run it as a user with CREATEDB"
        ) from None
    try:
        yield with_database(data_url, name)
    finally:
        with psycopg.connect(data_url, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def _copy_raw(source_url: str, target_url: str, max_batch: int | None) -> None:
    """Copy every raw row of the batches up to ``max_batch`` (none when it is None) into the scratch database."""
    from pupilshare.ingest.loaders import ensure_all_raw_tables

    with psycopg.connect(source_url) as source, psycopg.connect(target_url) as target:
        ensure_all_raw_tables(target)
        tables = _raw_tables(source)
        target_tables = _raw_tables(target)
        with target.transaction():
            # the batch register first: the other tables' batch ids are foreign keys to it
            for table, columns in sorted(tables.items(), key=lambda item: item[0] != "load_batches"):
                wanted = [column for column in columns if column in target_tables.get(table, ())]
                batch_column = next((name for name in _BATCH_COLUMNS if name in columns), None)
                if batch_column is None:
                    raise ReplayError(
                        f"raw.{table} has no load batch column ({_BATCH_COLUMNS}): which of its rows stood at the "
                        "delivery cannot be told, so the replay stops"
                    )
                if wanted:
                    _copy_table(source, target, table, wanted, batch_column, max_batch)


def _raw_tables(conn: psycopg.Connection) -> dict[str, list[str]]:
    rows = conn.execute(
        """select c.table_name, c.column_name from information_schema.columns as c
           join information_schema.tables as t using (table_schema, table_name)
           where c.table_schema = 'raw' and t.table_type = 'BASE TABLE'
           order by c.table_name, c.ordinal_position"""
    ).fetchall()
    tables: dict[str, list[str]] = {}
    for table, column in rows:
        tables.setdefault(table, []).append(column)
    return tables


def _copy_table(source, target, table: str, columns: list[str], batch_column: str, max_batch: int | None) -> None:
    names = sql.SQL(", ").join(sql.Identifier(column) for column in columns)
    out = sql.SQL("copy (select {} from raw.{} where {} <= {}) to stdout").format(
        names, sql.Identifier(table), sql.Identifier(batch_column), sql.Literal(max_batch if max_batch else 0)
    )
    into = sql.SQL("copy raw.{} ({}) from stdin").format(sql.Identifier(table), names)
    with (
        source.cursor() as reader,
        target.cursor() as writer,
        reader.copy(out) as copy_out,
        writer.copy(into) as copy_in,
    ):
        for chunk in copy_out:
            copy_in.write(chunk)


def build_recipient_models(
    database_url: str, recipient: RecipientPolicy, *, feed_date: Any, persistence: str, run_tests: bool = False
) -> None:
    """dbt build (in process) of the recipient's mart and all it reads into the database at ``database_url``.

    ``run_tests=False`` (replay): seeds and models only, since tests do not change what a model holds;
    ``run_tests=True``: also the data tests and the batch register, as the publish DAG builds them.
    """
    from dbt.cli.main import dbtRunner

    project = Path(pupilshare.PROJECT_ROOT) / "dbt_project"
    select = [f"+{recipient.mart}", *(["stg_pipeline__load_batches"] if run_tests else [])]
    exclude = ["resource_type:unit_test", *([] if run_tests else ["resource_type:test"])]
    env = {**DatabaseEndpoints(database_url, "", embedded=False).dbt_env(), "DBT_INDIRECT_SELECTION": "cautious"}
    with tempfile.TemporaryDirectory(prefix="pupilshare-replay-") as workdir, _environment(env):
        result = dbtRunner().invoke(
            [
                "build", "--select", *select, "--exclude", *exclude,
                "--project-dir", str(project), "--profiles-dir", str(project),
                "--target-path", str(Path(workdir) / "target"), "--log-path", str(Path(workdir) / "logs"),
                "--vars", json.dumps({"feed_date": feed_date.isoformat(), "opt_out_persistence": persistence}),
                "--quiet",
            ]
        )  # fmt: skip
    if not result.success:
        failed = [
            f"{item.node.name}: {item.message}"
            for item in (result.result or [])
            if str(item.status) in {"error", "fail"}
        ]
        raise ReplayError(f"the dbt build of {recipient.mart} failed: {failed or result.exception}")


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _export(scratch_url: str, recipient: RecipientPolicy, delivery: dict[str, Any], settings: Settings) -> Path | None:
    """Write the rebuilt mart with the delivery's own staging code; return the file of the delivery's route."""
    from pupilshare.publish import _read_mart, _stage, staged_files

    replay_dir = settings.data_dir / "replay" / str(delivery["delivery_id"])
    replay_settings = settings.model_copy(update={"data_dir": replay_dir})
    with psycopg.connect(scratch_url) as conn:
        columns, rows = _read_mart(conn, recipient)
    staging = _stage(
        recipient,
        columns,
        rows,
        feed_date=delivery["feed_date"],
        run_id=f"replay-{delivery['delivery_id']}",
        settings=replay_settings,
    )
    stage = json.loads((staging / "stage.json").read_text(encoding="utf-8"))
    for item in staged_files(stage):
        if item["route"] == delivery["route"]:
            return staging / item["file_name"]
    return None


def mismatch_reasons(delivery: dict[str, Any], regenerated: Path | None) -> list[str]:
    """Why a replay can differ: each recorded version that is not the code's now, a delivered copy changed since, and
    where the regenerated file first differs from the delivered copy (when it is still in the outbox)."""
    reasons = []
    if regenerated is None:
        reasons.append(f"the rebuilt feed has no rows for route {delivery['route']}: the file was not regenerated")
    versions = []
    policy_now = load_policy().version
    if delivery["policy_version"] != policy_now:
        versions.append(f"policy version differs: delivered under {delivery['policy_version']}, now {policy_now}")
    if delivery["has_context"] and delivery["dbt_version"] != dbt_version():
        versions.append(f"dbt version differs: delivered with {delivery['dbt_version']}, now {dbt_version()}")
    if delivery["has_context"] and delivery["dbt_project_sha256"] != dbt_project_sha256():
        versions.append("the dbt project (models, macros, seeds) changed since the delivery")
    reasons += versions
    delivered = Path(delivery["target"]) / delivery["file_name"]
    if delivered.is_file() and sha256_file(delivered) != delivery["file_sha256"]:
        reasons.append(f"the delivered copy {delivered} no longer has the ledger's checksum (changed after delivery)")
    elif delivered.is_file() and regenerated is not None:
        reasons.append(_first_difference(delivered, regenerated))
    if not versions:
        reasons.append(
            "the code and versions are as recorded, so the raw data of the load batches up to "
            f"{delivery.get('max_load_batch_id')} differs from when it was delivered (a raw row changed, or a batch "
            "was purged by retention)"
        )
    return reasons


def _first_difference(delivered: Path, regenerated: Path) -> str:
    """Where two CSV files first differ: line number and column names only (no pupil's data in the message)."""
    old = delivered.read_text(encoding="utf-8").splitlines()
    new = regenerated.read_text(encoding="utf-8").splitlines()
    if old[:1] != new[:1]:
        return f"the header differs: delivered {old[:1]}, regenerated {new[:1]}"
    for number, (left, right) in enumerate(zip(old, new, strict=False), start=1):
        if left != right:
            return f"first difference at line {number} of {len(old)} (delivered) / {len(new)} (regenerated)"
    return f"the delivered file has {len(old)} lines, the regenerated one {len(new)}"
