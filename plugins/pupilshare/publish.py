"""Publish a recipient's feed: gate the built mart, stage exactly what passed, deliver it and record it.

Two steps, each an Airflow task: :func:`gate_feed` reads the mart, runs the recipient's Great Expectations gate
against truth worked out from the raw returns, and only on success writes the feed into ``staging/``;
:func:`deliver_feed` checks the staged file is byte for byte the one the gate passed, puts it (age-encrypted when the
policy says so) with a manifest on the recipient's delivery target (the outbox folder, or an SFTP server:
:mod:`pupilshare.delivery`) and writes the ledger in the same transaction. Any error means nothing is delivered and
nothing is recorded as disclosed (fail closed); a gate failure is itself recorded.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import json
import logging
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
from psycopg import sql

from pupilshare.db import database_server
from pupilshare.delivery import TargetSession, open_target
from pupilshare.delivery.encryption import AGE_SUFFIX, encrypt_file
from pupilshare.files import sha256_file as _sha256
from pupilshare.files import slug as _slug
from pupilshare.files import write_json as _write_json
from pupilshare.gates import GateFailedError, run_feed_gate
from pupilshare.gates.feed import feed_keys
from pupilshare.gates.result import GateResult
from pupilshare.gates.truth import load_yss_truth
from pupilshare.gates.truths.health import load_health_truth
from pupilshare.gates.truths.nccis import load_nccis_truth
from pupilshare.gates.truths.post16 import load_post16_truth
from pupilshare.gates.truths.sure_start import load_sure_start_truth
from pupilshare.ledger import (
    LedgerRow,
    delivery_exists,
    ensure_ledger_schema,
    record_build_context,
    record_delivery,
    record_gate_result,
)
from pupilshare.policy import RecipientPolicy, load_policy
from pupilshare.replay import build_context
from pupilshare.settings import Settings, load_settings

log = logging.getLogger(__name__)

#: Independent truth per recipient: who is in the cohort and who is restricted, from the raw returns.
TRUTH_LOADERS: dict[str, Callable[..., pd.DataFrame]] = {
    "yss": load_yss_truth,
    "post16": load_post16_truth,
    "sure_start": load_sure_start_truth,
    "nccis": load_nccis_truth,
    "health": load_health_truth,
}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n")
_REMEDY = "make the delivery target reachable and writable again and rerun the deliver task"


class DeliveryIntegrityError(RuntimeError):
    """The staged feed is not the one the gate passed; nothing is delivered."""


class DeliveryWriteError(OSError):
    """The feed could not be written to the outbox (a full disk, say); nothing is delivered or recorded."""


def gate_feed(recipient_id: str, *, feed_date: dt.date, run_id: str, settings: Settings | None = None) -> str:
    """Gate the recipient's built mart for ``feed_date`` and stage it; return the staging folder.

    Raises :class:`GateFailedError` (after recording the result) when the gate fails: nothing is staged.
    """
    settings = settings or load_settings()
    settings.ensure_folders()
    policy = load_policy()
    recipient = policy.recipient(recipient_id)
    with database_server(settings) as endpoints, psycopg.connect(endpoints.data_url) as conn:
        ensure_ledger_schema(conn)
        # read before the mart: the newest batch recorded is at least the newest the build could read (replay)
        context = build_context(
            conn, recipient_id=recipient_id, feed_date=feed_date, policy_version=policy.version, settings=settings
        )
        columns, rows = _read_mart(conn, recipient)
        feed = pd.DataFrame.from_records(rows, columns=columns)
        # the truth of the cohort and of the pupils the feed names: all the gate compares, not the whole roll
        keys = feed_keys(feed, recipient.key_column)
        truth = TRUTH_LOADERS[recipient_id](conn, feed_date, persistence=settings.opt_out_persistence, keys=keys)
        result = gate_and_record(
            conn, feed, truth, recipient, ledger_id=recipient_id, feed_date=feed_date, run_id=run_id, settings=settings
        )
        del feed, truth, keys  # staging needs only the rows: a county's frames are not held while it writes
        record_build_context(conn, gate_result_id=result.result_id, context=context)
    if not result.success:
        log.error("gate %s failed for %s: %s", result.suite_name, feed_date, "; ".join(result.failures))
        raise GateFailedError(result)
    staging = _stage(recipient, columns, rows, feed_date=feed_date, run_id=run_id, settings=settings)
    _write_json(staging / "gate.json", {**_gate_record(result), "policy_version": policy.version})
    return str(staging)


def gate_and_record(
    conn: psycopg.Connection,
    feed: pd.DataFrame,
    truth: pd.DataFrame,
    recipient: RecipientPolicy,
    *,
    ledger_id: str,
    feed_date: dt.date,
    run_id: str,
    settings: Settings,
) -> GateResult:
    """Run the recipient's gate suite on ``feed`` against ``truth`` and record the verdict in ``ledger.gate_results``
    under ``ledger_id`` (a recipient, or ``adhoc``); return the result, pass or fail (the caller acts on it)."""
    result = run_feed_gate(
        feed, truth, recipient=recipient, feed_date=feed_date, run_id=run_id, data_docs_dir=settings.data_docs_dir
    )
    record_gate_result(
        conn,
        gate_result_id=result.result_id,
        recipient_id=ledger_id,
        suite_name=result.suite_name,
        feed_date=feed_date,
        run_id=run_id,
        success=result.success,
        evaluated_rows=result.evaluated_rows,
        failures=list(result.failures),
        data_docs_index=str(result.data_docs_index) if result.data_docs_index else None,
    )
    return result


def deliver_feed(staging_dir: str | Path, *, settings: Settings | None = None) -> dict[str, Any]:
    """Deliver a gated, staged feed to the outbox and record every disclosure; a rerun delivers nothing twice.

    A routed recipient's feed is one file per route (provider, children's centre): every file is checked, then all
    are delivered and recorded in one transaction (all or nothing); a file already delivered is not sent again.
    """
    settings = settings or load_settings()
    staging = _checked_staging(Path(staging_dir), settings)
    stage = json.loads((staging / "stage.json").read_text(encoding="utf-8"))
    gate = json.loads((staging / "gate.json").read_text(encoding="utf-8"))
    files = staged_files(stage)
    for item in files:
        feed_file = staging / item["file_name"]
        if not gate.get("success") or _sha256(feed_file) != item["file_sha256"]:
            raise DeliveryIntegrityError(f"{feed_file} is not the file the gate passed; nothing delivered")
    recipient = load_policy().recipient(stage["recipient_id"])
    with database_server(settings) as endpoints, psycopg.connect(endpoints.data_url) as conn:
        ensure_ledger_schema(conn)
        pending = [item for item in files if not delivery_exists(conn, _delivery_key(recipient, stage, item))]
        if not pending:
            keys = [_delivery_key(recipient, stage, item) for item in files]
            log.info("deliveries %s already made (or nothing to deliver); nothing delivered again", keys)
            status = "already_delivered" if files else "nothing_to_deliver"
            return {"status": status, "delivery_key": keys[0] if len(keys) == 1 else keys}
        if stage.get("route_column") is None:
            item = pending[0]
            return _deliver(conn, recipient, stage, gate, staging, _delivery_key(recipient, stage, item), settings)
        return _deliver_routes(conn, recipient, stage, gate, staging, pending, settings)


def staged_files(stage: dict[str, Any]) -> list[dict[str, Any]]:
    """The files of a staged feed: one per route for a routed recipient, else the one file (``route`` None)."""
    if "files" in stage:
        return list(stage["files"])
    return [
        {
            "route": None,
            "file_name": stage["file_name"],
            "file_sha256": stage["file_sha256"],
            "row_count": stage["row_count"],
        }
    ]


def _delivery_key(recipient: RecipientPolicy, stage: dict[str, Any], item: dict[str, Any]) -> str:
    if item.get("route") is None:
        return f"{recipient.recipient_id}|{stage['feed_date']}|{item['file_sha256']}"
    return f"{recipient.recipient_id}|{stage['feed_date']}|{item['route']}|{item['file_sha256']}"


def _deliver_routes(conn, recipient, stage, gate, staging, files, settings) -> dict[str, Any]:
    """Deliver each route's file with its manifest into ``<recipient>/<route>/<feed date>/`` of the target and record
    them all in one transaction: every file lands with its ledger rows, or none does."""
    by_route: dict[str, list[LedgerRow]] = {}
    for item in _read_ledger_rows(staging):
        by_route.setdefault(str(item["route"]), []).append(LedgerRow(item["upn"], tuple(item["fields_sent"])))
    deliveries = []
    what = f"the {len(files)} route files"
    with (
        _delivery_attempt(recipient, settings, what, (recipient.recipient_id,)) as target,
        _scratch(settings) as work,
        conn.transaction(),
    ):
        for item in files:
            folder = (recipient.recipient_id, _slug(str(item["route"])), stage["feed_date"])
            delivery_id = str(uuid.uuid4())
            manifest = {
                **_manifest(recipient, stage, gate, item, delivery_id),
                "route_column": recipient.route_column,
                "route": item["route"],
            }
            delivered, manifest = _put_feed(target, folder, staging / item["file_name"], manifest, recipient, work)
            record_delivery(
                conn,
                delivery={
                    **_delivery_row(recipient, stage, gate, item, delivery_id, target.location(folder)),
                    "delivery_key": _delivery_key(recipient, stage, item),
                    "route": str(item["route"]),
                },
                rows=by_route.get(str(item["route"]), []),
            )
            deliveries.append({"delivery_id": delivery_id, "file": delivered, **manifest})
        target.publish()
    log.info(
        "delivered %s files (%s rows) for %s", len(deliveries), sum(f["row_count"] for f in files), stage["feed_date"]
    )
    return {"status": "delivered", "deliveries": deliveries}


def _manifest(recipient, stage, gate, item, delivery_id) -> dict[str, Any]:
    return {
        "recipient": recipient.name,
        "recipient_id": recipient.recipient_id,
        "feed_date": stage["feed_date"],
        "file_name": item["file_name"],
        "row_count": item["row_count"],
        "sha256": item["file_sha256"],
        "columns": list(recipient.delivered_fields),
        "legal_basis": recipient.legal_basis,
        "delivery_id": delivery_id,
        "policy_version": gate["policy_version"],
        "gate_result_id": gate["result_id"],
    }


def _delivery_row(recipient, stage, gate, item, delivery_id, target: str) -> dict[str, Any]:
    return {
        "delivery_id": delivery_id,
        "recipient_id": recipient.recipient_id,
        "feed_date": stage["feed_date"],
        "file_name": item["file_name"],
        "file_sha256": item["file_sha256"],
        "row_count": item["row_count"],
        "target": target,
        "legal_basis": recipient.legal_basis,
        "run_id": stage["run_id"],
        "policy_version": gate["policy_version"],
        "gate_result_id": gate["result_id"],
    }


def _deliver(conn, recipient, stage, gate, staging, delivery_key, settings) -> dict[str, Any]:
    folder = (recipient.recipient_id, stage["feed_date"])
    delivery_id = str(uuid.uuid4())
    manifest = {
        "recipient": recipient.name,
        "recipient_id": recipient.recipient_id,
        "feed_date": stage["feed_date"],
        "file_name": stage["file_name"],
        "row_count": stage["row_count"],
        "sha256": stage["file_sha256"],
        "columns": list(recipient.delivered_fields),
        "legal_basis": recipient.legal_basis,
        "delivery_id": delivery_id,
        "policy_version": gate["policy_version"],
        "gate_result_id": gate["result_id"],
    }
    ledger_rows = [LedgerRow(item["upn"], tuple(item["fields_sent"])) for item in _read_ledger_rows(staging)]
    with _delivery_attempt(recipient, settings, stage["file_name"], folder) as target, _scratch(settings) as work:
        where = target.location(folder)
        delivered, manifest = _put_feed(target, folder, staging / stage["file_name"], manifest, recipient, work)
        with conn.transaction():
            record_delivery(
                conn,
                delivery={
                    "delivery_id": delivery_id,
                    "delivery_key": delivery_key,
                    "recipient_id": recipient.recipient_id,
                    "feed_date": stage["feed_date"],
                    "file_name": stage["file_name"],
                    "file_sha256": stage["file_sha256"],
                    "row_count": stage["row_count"],
                    "target": where,
                    "legal_basis": recipient.legal_basis,
                    "run_id": stage["run_id"],
                    "policy_version": gate["policy_version"],
                    "gate_result_id": gate["result_id"],
                },
                rows=ledger_rows,
            )
            target.publish()
    log.info("delivered %s rows to %s", stage["row_count"], delivered)
    return {"status": "delivered", "delivery_id": delivery_id, "file": delivered, **manifest}


@contextlib.contextmanager
def _delivery_attempt(recipient: RecipientPolicy, settings: Settings, what: str, folder) -> Iterator[TargetSession]:
    """Open the recipient's delivery target for one attempt. On any error, remove exactly what this attempt wrote (an
    earlier delivery of the same feed date, with other data and so another delivery key, has the same file names, and
    its files stay as delivered) and raise :class:`DeliveryWriteError` for a failure of the target itself."""
    left: list[str] = []
    where, remedy = f"the {recipient.delivery.target} target of {recipient.recipient_id}", _REMEDY
    try:
        with open_target(recipient, settings) as target:
            where, remedy = target.location(folder), target.remedy
            try:
                target.connect()
                yield target
            except BaseException:
                left = target.rollback()
                raise
    except BaseException as error:
        _raise_write_error(error, what, where, remedy, left)
        raise


@contextlib.contextmanager
def _scratch(settings: Settings) -> Iterator[Path]:
    """A private folder beside the staged feeds for one attempt's encrypted copies, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=".deliver-", dir=settings.staging_dir) as folder:
        yield Path(folder)


def _put_feed(target: TargetSession, folder, feed_file: Path, manifest: dict, recipient, work: Path):
    """Put the feed (age-encrypted when the policy says so) and then its plain manifest; return the delivered file's
    location and the manifest as delivered (``encryption``: scheme, public keys, ciphertext name and SHA-256)."""
    delivered = feed_file
    encryption = recipient.delivery.encryption
    if encryption is not None:
        delivered = work / f"{feed_file.name}{AGE_SUFFIX}"
        encrypt_file(feed_file, delivered, encryption.recipients)
        manifest = {
            **manifest,
            "encryption": {
                "scheme": "age",
                "recipients": list(encryption.recipients),
                "file_name": delivered.name,
                "sha256": _sha256(delivered),
            },
        }
    target.put(folder, delivered.name, delivered)
    manifest_bytes = (json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n").encode("utf-8")
    target.put(folder, feed_file.with_suffix(".manifest.json").name, manifest_bytes)
    return target.location(folder, delivered.name), manifest


def _raise_write_error(error: BaseException, what: str, where: str, remedy: str, left: Sequence[str] = ()) -> None:
    """Raise :class:`DeliveryWriteError` for an operating-system error writing the target (not the database's);
    return for anything else, which the caller re-raises as it is."""
    if isinstance(error, OSError) and not isinstance(error, psycopg.Error):
        leftover = f" Could not remove what this attempt wrote: {'; '.join(left)}." if left else ""
        raise DeliveryWriteError(
            f"could not write {what} into {where}: {error.strerror or error}. Nothing was delivered and nothing "
            f"recorded; {remedy}.{leftover}"
        ) from error


def _read_mart(conn: psycopg.Connection, recipient: RecipientPolicy) -> tuple[list[str], list[tuple]]:
    """Every column and row of the built mart, exactly as built (the gate must see extras too)."""
    order = [recipient.key_column, *([recipient.route_column] if recipient.route_column else [])]
    query = sql.SQL("select * from {}.{} order by {}").format(
        sql.Identifier(recipient.schema_name),
        sql.Identifier(recipient.mart),
        sql.SQL(", ").join(sql.Identifier(column) for column in order),
    )
    with conn.cursor() as cursor:
        cursor.execute(query)
        columns = [column.name for column in cursor.description]
        return columns, cursor.fetchall()


def _stage(recipient: RecipientPolicy, columns, rows, *, feed_date: dt.date, run_id: str, settings: Settings) -> Path:
    """Write the delivered columns of the gated rows, and the ledger rows, into a fresh staging folder."""
    staging = settings.staging_dir / recipient.recipient_id / feed_date.isoformat() / _slug(run_id)
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    if recipient.route_column is not None:
        return _stage_routes(recipient, columns, rows, staging, feed_date=feed_date, run_id=run_id)
    file_name = f"{recipient.recipient_id}_{feed_date.isoformat()}.csv"
    ledger_rows = _write_feed_file(recipient, columns, rows, staging / file_name)
    _write_json(staging / "ledger_rows.json", ledger_rows)
    _write_json(
        staging / "stage.json",
        {
            "recipient_id": recipient.recipient_id,
            "feed_date": feed_date.isoformat(),
            "run_id": run_id,
            "file_name": file_name,
            "file_sha256": _sha256(staging / file_name),
            "row_count": len(rows),
        },
    )
    return staging


def _stage_routes(recipient: RecipientPolicy, columns, rows, staging: Path, *, feed_date: dt.date, run_id: str) -> Path:
    """One file per route value (``<recipient>_<route>_<feed date>.csv``); the route column is not written."""
    route_position = columns.index(recipient.route_column)
    by_route: dict[str, list[tuple]] = {}
    for row in rows:
        by_route.setdefault(str(row[route_position]), []).append(row)
    files, ledger_rows = [], []
    for route in sorted(by_route):
        file_name = f"{recipient.recipient_id}_{_slug(route)}_{feed_date.isoformat()}.csv"
        written = _write_feed_file(recipient, columns, by_route[route], staging / file_name)
        ledger_rows += [{**item, "route": route} for item in written]
        files.append(
            {
                "route": route,
                "file_name": file_name,
                "file_sha256": _sha256(staging / file_name),
                "row_count": len(by_route[route]),
            }
        )
    _write_json(staging / "ledger_rows.json", ledger_rows)
    _write_json(
        staging / "stage.json",
        {
            "recipient_id": recipient.recipient_id,
            "feed_date": feed_date.isoformat(),
            "run_id": run_id,
            "route_column": recipient.route_column,
            "row_count": len(rows),
            "files": files,
        },
    )
    return staging


def _write_feed_file(recipient: RecipientPolicy, columns, rows, path: Path) -> list[dict[str, Any]]:
    """Write the delivered fields of ``rows`` as CSV at ``path``; return the ledger rows (pupil, fields sent)."""
    delivered = recipient.delivered_fields
    positions = [columns.index(name) for name in delivered]
    key_position = columns.index(recipient.key_column)
    ledger_rows = []
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(delivered)
        for row in rows:
            values = [row[position] for position in positions]
            writer.writerow([_cell(value) for value in values])
            sent = [name for name, value in zip(delivered, values, strict=True) if value is not None]
            ledger_rows.append({"upn": row[key_position], "fields_sent": sent})
    return ledger_rows


def _cell(value: object) -> str:
    """A CSV cell: null is empty, dates are ISO 8601, text that a spreadsheet would run as a formula is defused."""
    if value is None:
        return ""
    if isinstance(value, dt.date):
        return value.isoformat()
    # a lone carriage return is a row break to CSV readers but is not quoted by the writer (lineterminator "\n"):
    # normalised to "\n", which the writer quotes, so no value can split a row
    text = str(value).replace("\r\n", "\n").replace("\r", "\n")
    return "'" + text if text.startswith(_FORMULA_START) else text


def _gate_record(result) -> dict[str, Any]:
    return {
        "result_id": result.result_id,
        "suite_name": result.suite_name,
        "success": result.success,
        "evaluated_rows": result.evaluated_rows,
        "data_docs_index": str(result.data_docs_index) if result.data_docs_index else None,
    }


def _checked_staging(staging: Path, settings: Settings) -> Path:
    resolved = staging.resolve()
    if settings.staging_dir.resolve() not in resolved.parents:
        raise DeliveryIntegrityError(f"{staging} is not inside the staging folder {settings.staging_dir}")
    for name in ("stage.json", "gate.json", "ledger_rows.json"):
        if not (resolved / name).is_file():
            raise DeliveryIntegrityError(f"{resolved} has no {name}: the feed was not gated; nothing delivered")
    return resolved


def _read_ledger_rows(staging: Path) -> Sequence[dict]:
    return json.loads((staging / "ledger_rows.json").read_text(encoding="utf-8"))
