"""Retraction notices after a late opt-out: ask a recipient to delete what it was sent and may no longer hold.

Issue 6: "when an opt-out arrives for a pupil already disclosed to a recipient it now excludes or restricts, a
retraction notice for that recipient lists what was sent and asks for deletion; it is delivered and recorded."

:func:`issue_retractions` runs in every publish DAG right after the recipient's dbt build, so the opt-outs it reads
(``analytics.int_opt_outs_effective``) are the ones this run resolved. A pupil is retracted from a delivery when

- their effective opt-out for the recipient's scope is in force (``is_opted_out``), and
- the delivery carried a field they may no longer receive: any field for a recipient that *excludes* opted-out
  pupils (post-16, Sure Start), a field beyond the identity fields for one that *restricts* them (YSS: name, address
  and date of birth stay), and
- no retraction of that pupil from that delivery is recorded yet (a rerun retracts nothing twice).

One notice per recipient and route (a post-16 provider, a children's centre): a CSV, one row per pupil per delivery,
with the identifiers the recipient needs to find the record (only those it was sent), the feed date, file and
checksum, the fields sent and the opt-out that caused it; a letter (``.txt``) asking for deletion and a manifest with
both checksums. A notice reaches the recipient by the route its feeds take: the recipient's delivery target (the
outbox folder or its SFTP server, :mod:`pupilshare.delivery`), age-encrypted when its policy says so, in
``<recipient>/[<route>/]retractions/<feed date>/``. Files and ``ledger.retractions`` rows (one per pupil per notice)
land together in one transaction or not at all (fail closed); any error fails the task, which alerts.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
import tempfile
import uuid
from pathlib import Path
from typing import Any

import psycopg
import psycopg.rows

from pupilshare.db import database_server
from pupilshare.delivery import TargetSession, open_target
from pupilshare.delivery.encryption import AGE_SUFFIX, encrypt_file
from pupilshare.files import sha256_file, slug
from pupilshare.ledger import ensure_ledger_schema
from pupilshare.policy import RecipientPolicy, load_policy
from pupilshare.settings import Settings, load_settings

log = logging.getLogger(__name__)

#: The identifiers a notice may carry, in this order, each only if the recipient was sent it.
IDENTIFIERS = ("upn", "forename", "surname", "date_of_birth", "postcode")
NOTICE_COLUMNS = (*IDENTIFIERS, "feed_date", "file_name", "file_sha256", "fields_sent", "opt_out")
_OPT_OUTS = "analytics.int_opt_outs_effective"
_PUPILS = "analytics.int_pupils_on_roll_latest"


class RetractionError(RuntimeError):
    """Retractions cannot be worked out (opt-outs not resolved); nothing is delivered or recorded."""


def issue_retractions(
    recipient_id: str, *, feed_date: dt.date, run_id: str, settings: Settings | None = None
) -> dict[str, Any]:
    """Deliver and record a retraction notice per route of ``recipient_id`` for every pupil still to be retracted."""
    settings = settings or load_settings()
    policy = load_policy()
    recipient = policy.recipient(recipient_id)
    if recipient.opt_out is None:
        return {"status": "no_opt_out_rule", "notices": []}
    with database_server(settings) as endpoints, psycopg.connect(endpoints.data_url) as conn:
        ensure_ledger_schema(conn)
        with conn.transaction():
            conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (f"pupilshare.retractions.{recipient_id}",))
            pending = pending_retractions(conn, recipient)
            if not pending:
                log.info("no retraction due for %s", recipient_id)
                return {"status": "nothing_to_retract", "notices": []}
            notices = _deliver_notices(conn, recipient, pending, feed_date, run_id, policy.version, settings)
    log.info("retraction notices for %s: %s", recipient_id, [notice["file"] for notice in notices])
    return {"status": "retracted", "notices": notices}


def pending_retractions(conn: psycopg.Connection, recipient: RecipientPolicy) -> list[dict[str, Any]]:
    """One row per pupil per delivery still to be retracted (see the module docstring), oldest delivery first."""
    for relation in (_OPT_OUTS, _PUPILS):
        if conn.execute("select to_regclass(%s)", (relation,)).fetchone()[0] is None:
            raise RetractionError(
                f"{relation} is not built: the opt-outs are not resolved, so no retraction can be worked out "
                f"(build the {recipient.recipient_id} models first); nothing delivered or recorded"
            )
    allowed = _restricted_fields(recipient) if recipient.opt_out.effect == "restrict" else []
    with conn.cursor(row_factory=psycopg.rows.dict_row) as cursor:
        return cursor.execute(
            f"""select disclosures.upn, disclosures.route, disclosures.delivery_id, disclosures.feed_date,
                       deliveries.file_name, disclosures.file_sha256, disclosures.fields_sent,
                       opt_outs.explanation as reason, opt_outs.cause_id,
                       pupils.forename, pupils.surname, pupils.date_of_birth, pupils.postcode
                from ledger.disclosures as disclosures
                join ledger.deliveries as deliveries on deliveries.delivery_id = disclosures.delivery_id
                join {_OPT_OUTS} as opt_outs
                    on opt_outs.upn = disclosures.upn and opt_outs.scope_code = %(scope)s and opt_outs.is_opted_out
                left join {_PUPILS} as pupils on pupils.upn = disclosures.upn
                where disclosures.recipient_id = %(recipient)s
                    and not (disclosures.fields_sent <@ %(allowed)s::text[])
                    and not exists (
                        select from ledger.retractions as done
                        where done.upn = disclosures.upn and disclosures.delivery_id = any(done.delivery_ids)
                    )
                order by disclosures.route nulls first, disclosures.upn, deliveries.delivered_at""",  # noqa: S608 - fixed names
            {"scope": recipient.opt_out.scope, "recipient": recipient.recipient_id, "allowed": allowed},
        ).fetchall()


def _deliver_notices(conn, recipient, pending, feed_date, run_id, policy_version, settings) -> list[dict[str, Any]]:
    """Put every route's notice on the recipient's delivery target (the feeds' own: outbox folder or SFTP, age-encrypted
    when the policy says so) under hidden temporary names, record them, then rename them into place (all or none)."""
    by_route: dict[str | None, list[dict[str, Any]]] = {}
    for row in pending:
        by_route.setdefault(row["route"], []).append(row)
    notices = []
    left: list[str] = []
    where = f"the {recipient.delivery.target} target of {recipient.recipient_id}"
    settings.staging_dir.mkdir(parents=True, exist_ok=True)
    try:
        with (
            open_target(recipient, settings) as target,
            tempfile.TemporaryDirectory(prefix=".retract-", dir=settings.staging_dir) as work,
        ):
            where = target.location((recipient.recipient_id,))
            try:
                target.connect()
                for route, rows in by_route.items():
                    notice = _write_notice(recipient, route, rows, feed_date, run_id, policy_version, Path(work))
                    notice = _put_notice(target, recipient, notice, Path(work))
                    _record(conn, recipient, route, rows, notice, run_id, policy_version)
                    notices.append({key: notice[key] for key in _NOTICE_SUMMARY})
                target.publish()  # the notices are in place only when the ledger rows commit with them
            except BaseException:
                left = target.rollback()
                raise
    except BaseException as error:
        if isinstance(error, OSError) and not isinstance(error, psycopg.Error):
            leftover = f" Could not remove what this attempt wrote: {'; '.join(left)}." if left else ""
            raise RetractionWriteError(
                f"could not deliver the retraction notices of {recipient.recipient_id} to {where}: "
                f"{error.strerror or error}. Nothing was delivered or recorded; make the delivery target reachable "
                f"and writable again and rerun the task.{leftover}"
            ) from error
        raise
    return notices


class RetractionWriteError(OSError):
    """A notice could not be delivered to the recipient's target; nothing is delivered or recorded."""


_NOTICE_SUMMARY = ("retraction_id", "route", "file", "file_name", "file_sha256", "target", "pupils")


def _write_notice(recipient, route, rows, feed_date, run_id, policy_version, work: Path) -> dict[str, Any]:
    """Write the notice CSV and its letter into the private folder ``work``; return the notice: its id, the target
    folder (``<recipient>/[<route>/]retractions/<feed date>``), the local files and the plain manifest."""
    retraction_id = str(uuid.uuid4())
    folder = [
        recipient.recipient_id,
        *([slug(route)] if route is not None else []),
        "retractions",
        feed_date.isoformat(),
    ]
    stem = "_".join(
        part for part in ("retraction", recipient.recipient_id, route and slug(route), feed_date.isoformat()) if part
    )
    stem = f"{stem}_{retraction_id[:8]}"
    sent = {field for row in rows for field in row["fields_sent"]}
    identifiers = [name for name in IDENTIFIERS if name in sent] or ["forename", "surname"]
    files = {kind: work / f"{stem}{suffix}" for kind, suffix in (("csv", ".csv"), ("letter", ".txt"))}
    _write_csv(files["csv"], identifiers, rows)
    files["letter"].write_text(_letter(recipient, route, rows, retraction_id, files["csv"].name), encoding="utf-8")
    manifest = {
        "retraction_id": retraction_id,
        "recipient": recipient.name,
        "recipient_id": recipient.recipient_id,
        "route": route,
        "feed_date": feed_date.isoformat(),
        "pupils": len({row["upn"] for row in rows}),
        "rows": len(rows),
        "columns": [*identifiers, *NOTICE_COLUMNS[len(IDENTIFIERS) :]],
        "files": {kind: {"file_name": path.name, "sha256": sha256_file(path)} for kind, path in files.items()},
        "legal_basis": recipient.legal_basis,
        "policy_version": policy_version,
        "run_id": run_id,
    }
    return {
        "retraction_id": retraction_id,
        "route": route,
        "folder": folder,
        "files": files,
        "manifest": manifest,
        "manifest_name": f"{stem}.manifest.json",
        "file_name": files["csv"].name,
        "file_sha256": manifest["files"]["csv"]["sha256"],
        "pupils": manifest["pupils"],
    }


def _put_notice(target: TargetSession, recipient, notice: dict[str, Any], work: Path) -> dict[str, Any]:
    """Put the CSV and letter (each age-encrypted when the policy says so, as ``<name>.age``) and then the plain
    manifest (with ``encryption``: scheme, public keys, each ciphertext's name and SHA-256) on ``target``; return the
    notice with where it went (``target``, ``file``)."""
    folder, manifest, delivered = notice["folder"], dict(notice["manifest"]), {}
    encryption = recipient.delivery.encryption
    for kind, path in notice["files"].items():
        delivered[kind] = path
        if encryption is not None:
            delivered[kind] = work / f"{path.name}{AGE_SUFFIX}"
            encrypt_file(path, delivered[kind], encryption.recipients)
        target.put(folder, delivered[kind].name, delivered[kind])
    if encryption is not None:
        manifest["encryption"] = {
            "scheme": "age",
            "recipients": list(encryption.recipients),
            "files": {kind: {"file_name": path.name, "sha256": sha256_file(path)} for kind, path in delivered.items()},
        }
    manifest_bytes = (json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n").encode("utf-8")
    target.put(folder, notice["manifest_name"], manifest_bytes)
    return {
        **notice,
        "manifest": manifest,
        "target": target.location(folder),
        "file": target.location(folder, delivered["csv"].name),
    }


def _write_csv(path: Path, identifiers: list[str], rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow([*identifiers, *NOTICE_COLUMNS[len(IDENTIFIERS) :]])
        for row in rows:
            values = [_text(row.get(name)) for name in identifiers]
            writer.writerow(
                [
                    *values,
                    row["feed_date"].isoformat(),
                    row["file_name"],
                    row["file_sha256"],
                    ";".join(row["fields_sent"]),
                    row["reason"],
                ]
            )


def _text(value: object) -> str:
    if value is None:
        return ""
    return value.isoformat() if isinstance(value, dt.date) else str(value)


def _restricted_fields(recipient: RecipientPolicy) -> list[str]:
    """What a restricted pupil's row may still carry: identity, and (nccis) what did not come from school data."""
    return [*recipient.identity_fields, *recipient.restricted_extra_fields]


def _letter(recipient: RecipientPolicy, route: str | None, rows, retraction_id: str, csv_name: str) -> str:
    pupils = len({row["upn"] for row in rows})
    deliveries = sorted({(row["feed_date"].isoformat(), row["file_name"], row["file_sha256"]) for row in rows})
    listed = "\n".join(f"  - feed date {day}: {name} (SHA-256 {sha})" for day, name, sha in deliveries)
    what = (
        "any information about them"
        if recipient.opt_out.effect == "exclude"
        else f"any information about them beyond {', '.join(_restricted_fields(recipient))}"
    )
    return (
        f"Retraction notice {retraction_id}\n"
        f"To: {recipient.name}{f' ({recipient.routing.column} {route})' if route else ''}\n\n"
        f"An opt-out is now in force for {pupils} pupil(s) listed in {csv_name}, made under the privacy notice's\n"
        f"right to ask that {what} is not passed on to you (the opt-out of each pupil, and who made it, is in the\n"
        f"column opt_out). Their data reached you in these deliveries before the opt-out was received:\n{listed}\n\n"
        f"Please delete the fields listed for each pupil (column fields_sent) from your records and any copies of\n"
        f"those files, and confirm the deletion to the Local Authority quoting notice {retraction_id}.\n"
    )


def _record(conn, recipient, route, rows, notice, run_id, policy_version) -> None:
    """One ``ledger.retractions`` row per pupil of the notice (their deliveries, feed dates and fields)."""
    by_pupil: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_pupil.setdefault(row["upn"], []).append(row)
    with conn.cursor() as cursor:
        cursor.executemany(
            """insert into ledger.retractions
                   (retraction_id, recipient_id, route, upn, delivery_ids, feed_dates, fields_sent, reason, cause_id,
                    file_name, file_sha256, target, run_id, policy_version)
               values (%s, %s, %s, %s, %s::uuid[], %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
            [
                (
                    notice["retraction_id"],
                    recipient.recipient_id,
                    route,
                    upn,
                    [str(item["delivery_id"]) for item in items],
                    sorted({item["feed_date"] for item in items}),
                    sorted({field for item in items for field in item["fields_sent"]}),
                    items[-1]["reason"],
                    items[-1]["cause_id"],
                    notice["file_name"],
                    notice["file_sha256"],
                    notice["target"],
                    run_id,
                    policy_version,
                )
                for upn, items in by_pupil.items()
            ],
        )
