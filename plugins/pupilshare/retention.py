"""Retention: pupil data leaves when its time is up, and every purge is recorded.

The periods are policy (``policy/retention.yml``, loaded into strict models) and the recipients' ``retention_days``.
Each rule takes an ``as_of`` date (the retention DAG passes its run's data-interval end), so tests move the clock:

- :func:`purge_ncmp_identities`: NCMP rows measured more than ``ncmp.identity_days`` ago lose forename and surname;
  the UPN becomes a keyed-hash pseudonym (``PSN-`` + 24 hex) and the date of birth the first of its month. The
  measurement stays.
- :func:`purge_raw_returns`: load batches past their period go with every row they loaded (every table with a foreign
  key to ``raw.load_batches``, and dbt's copies in ``analytics`` that carry ``load_batch_id``); oldest first, so an
  older superseded return never becomes current again. Archived and quarantined files past their period go too.
- :func:`clear_delivered_files`: a delivered file's outbox copy goes ``grace_days_after_confirmation`` after the
  recipient confirmed it (:func:`confirm_delivery`), or at the recipient's ``retention_days`` if never confirmed:
  every feed (a routed recipient's per-provider or per-centre files too) and every ad-hoc extract (at the ``adhoc``
  entry's ``retention_days``). Retraction notices go on the same rule (:func:`clear_retraction_notices`, confirmed
  with :func:`confirm_retraction`); staged working copies after ``staging_days``.

Every purge writes a row to ``ledger.retention_purges`` (append-only) in the same transaction as the database change
(pass an autocommit connection: each purge is then committed on its own); no purge record names a pupil.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import secrets
import shutil
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path, PurePath

import psycopg
import yaml
from psycopg import sql
from pydantic import BaseModel, ConfigDict, Field

from pupilshare.delivery.encryption import AGE_SUFFIX
from pupilshare.files import slug
from pupilshare.ledger import append_only_triggers_ddl, ensure_ledger_schema
from pupilshare.policy import Policy, load_policy
from pupilshare.settings import Settings, load_settings

log = logging.getLogger(__name__)

RETENTION_POLICY_PATH = Path(__file__).with_name("policy") / "retention.yml"
PSEUDONYM_PREFIX = "PSN-"
_STAMP = re.compile(r"^(\d{8})T\d{6}\d*Z__")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NcmpRetention(_Strict):
    identity_days: int = Field(gt=0)


class RawReturnRetention(_Strict):
    default_days: int = Field(gt=0)
    days: dict[str, int] = Field(default_factory=dict)
    superseded_days: int = Field(gt=0)
    quarantine_days: int = Field(gt=0)

    def days_for(self, return_type: str) -> int:
        return self.days.get(return_type, self.default_days)


class DeliveredFileRetention(_Strict):
    grace_days_after_confirmation: int = Field(ge=0)
    staging_days: int = Field(gt=0)


class RetentionPolicy(_Strict):
    version: str
    ncmp: NcmpRetention
    raw_returns: RawReturnRetention
    delivered_files: DeliveredFileRetention


@cache
def load_retention_policy(path: Path = RETENTION_POLICY_PATH) -> RetentionPolicy:
    """Load and validate ``retention.yml``."""
    with path.open(encoding="utf-8") as handle:
        return RetentionPolicy.model_validate(yaml.safe_load(handle))


#: The ``rule`` of a ``ledger.retention_purges`` row.
PURGE_RULES = (
    "ncmp_identity",
    "raw_batch",
    "archived_file",
    "quarantined_file",
    "delivered_file",
    "retraction_notice",
    "staged_file",
)
_PURGE_RULES_SQL = ", ".join(f"'{rule}'" for rule in PURGE_RULES)
_PURGE_RULES_LIKE = ", ".join(f"'%''{rule}''%'" for rule in PURGE_RULES)
#: The recipient id of an ad-hoc delivery in the ledger is ``adhoc:<agency>`` (:data:`pupilshare.adhoc.ADHOC`).
_ADHOC_PREFIX = "adhoc:"

_RETENTION_DDL = f"""
create table if not exists ledger.retention_purges (
    purge_id bigint generated always as identity primary key,
    run_id text not null,
    as_of date not null,
    rule text not null,
    subject text not null,
    rows_affected bigint not null default 0,
    detail jsonb not null default '{{}}'::jsonb,
    policy_version text not null,
    purged_at timestamptz not null default now()
);
create index if not exists retention_purges__rule_subject on ledger.retention_purges (rule, subject);
-- the rules a purge may name; a ledger made before a rule was added gets the wider check (idempotent)
do $$
begin
    if not exists (
        select from pg_constraint
        where conrelid = 'ledger.retention_purges'::regclass and conname = 'retention_purges_rule_check'
            and pg_get_constraintdef(oid) like all (array[{_PURGE_RULES_LIKE}])
    ) then
        alter table ledger.retention_purges drop constraint if exists retention_purges_rule_check;
        alter table ledger.retention_purges add constraint retention_purges_rule_check
            check (rule in ({_PURGE_RULES_SQL}));
    end if;
end $$;
comment on table ledger.retention_purges is
    'One row per purge by the retention DAG: which rule, what (a batch, delivery or file; never a pupil), '
    'how many rows.';
create table if not exists ledger.delivery_confirmations (
    confirmation_id bigint generated always as identity primary key,
    delivery_id uuid not null references ledger.deliveries (delivery_id),
    confirmed_by text not null,
    confirmed_at timestamptz not null,
    note text,
    recorded_at timestamptz not null default now()
);
create index if not exists delivery_confirmations__delivery on ledger.delivery_confirmations (delivery_id);
comment on table ledger.delivery_confirmations is
    'One row per confirmation by a recipient that a delivered file arrived intact; the outbox copy is then cleared '
    'after the grace period in policy/retention.yml.';
create table if not exists ledger.retraction_confirmations (
    confirmation_id bigint generated always as identity primary key,
    retraction_id uuid not null,
    confirmed_by text not null,
    confirmed_at timestamptz not null,
    note text,
    recorded_at timestamptz not null default now()
);
create index if not exists retraction_confirmations__retraction on ledger.retraction_confirmations (retraction_id);
comment on table ledger.retraction_confirmations is
    'One row per confirmation by a recipient that it received a retraction notice (and deleted what it lists); the '
    'outbox copy of the notice is then cleared after the grace period in policy/retention.yml.';
""" + append_only_triggers_ddl(("retention_purges", "delivery_confirmations", "retraction_confirmations"))


class UnknownDeliveryError(LookupError):
    """A confirmation names a delivery (or a retraction notice) the ledger does not hold."""


@dataclass
class RetentionReport:
    """What one retention pass purged, by rule: a count of subjects (batches, files) and of rows."""

    as_of: str
    subjects: dict[str, int] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)

    def add(self, rule: str, rows: int = 0) -> None:
        self.subjects[rule] = self.subjects.get(rule, 0) + 1
        self.rows[rule] = self.rows.get(rule, 0) + rows

    def as_dict(self) -> dict:
        return {"as_of": self.as_of, "subjects": self.subjects, "rows": self.rows}


def ensure_retention_schema(conn: psycopg.Connection) -> None:
    """Create ``ledger.retention_purges`` and ``ledger.delivery_confirmations``, append-only (idempotent)."""
    ensure_ledger_schema(conn)
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext('pupilshare.ledger_schema'))")
        conn.execute(_RETENTION_DDL)


def confirm_delivery(
    conn: psycopg.Connection,
    delivery_id: str,
    *,
    confirmed_by: str,
    confirmed_at: dt.datetime | None = None,
    note: str | None = None,
) -> None:
    """Record that the recipient confirmed receipt of a delivery (the grace period before clearing starts now)."""
    _confirm(
        conn, "deliveries", "delivery_confirmations", "delivery_id", delivery_id, (confirmed_by, confirmed_at, note),
        missing=f"no delivery {delivery_id} in ledger.deliveries: check the manifest's id",
    )  # fmt: skip


def confirm_retraction(
    conn: psycopg.Connection,
    retraction_id: str,
    *,
    confirmed_by: str,
    confirmed_at: dt.datetime | None = None,
    note: str | None = None,
) -> None:
    """Record that the recipient confirmed a retraction notice (the grace period before clearing it starts now)."""
    _confirm(
        conn, "retractions", "retraction_confirmations", "retraction_id", retraction_id,
        (confirmed_by, confirmed_at, note),
        missing=f"no retraction notice {retraction_id} in ledger.retractions: check the notice's manifest",
    )  # fmt: skip


def _confirm(
    conn: psycopg.Connection, table: str, confirmations: str, id_column: str, subject_id: str, by_at_note: tuple,
    *, missing: str,
) -> None:  # fmt: skip
    """Insert a confirmation of ``ledger.<table>``'s ``subject_id`` into ``ledger.<confirmations>``; refused with
    :class:`UnknownDeliveryError` (``missing``) when the ledger has no such row."""
    ensure_retention_schema(conn)
    with conn.transaction():
        known = conn.execute(
            sql.SQL("select 1 from ledger.{} where {} = %s limit 1").format(
                sql.Identifier(table), sql.Identifier(id_column)
            ),
            (subject_id,),
        ).fetchone()
        if known is None:
            raise UnknownDeliveryError(missing)
        conn.execute(
            sql.SQL(
                "insert into ledger.{} ({}, confirmed_by, confirmed_at, note) values (%s, %s, coalesce(%s, now()), %s)"
            ).format(sql.Identifier(confirmations), sql.Identifier(id_column)),
            (subject_id, *by_at_note),
        )


def apply_retention(
    as_of: dt.date, *, run_id: str, settings: Settings | None = None, policy: RetentionPolicy | None = None
) -> dict:
    """Apply every retention rule as of ``as_of``; return what was purged (counts only)."""
    report = RetentionReport(as_of.isoformat())
    for rule in RULES:
        apply_retention_rule(rule, as_of, run_id=run_id, settings=settings, policy=policy, report=report)
    return report.as_dict()


def apply_retention_rule(
    rule: str,
    as_of: dt.date,
    *,
    run_id: str,
    settings: Settings | None = None,
    policy: RetentionPolicy | None = None,
    report: RetentionReport | None = None,
) -> dict:
    """Apply one rule of :data:`RULES` (``ncmp_identities``, ``raw_returns``, ``delivered_files``) as of ``as_of``."""
    from pupilshare.db import database_server

    if rule not in RULES:
        raise KeyError(f"no retention rule {rule!r}; known: {', '.join(RULES)}")
    settings = settings or load_settings()
    policy = policy or load_retention_policy()
    report = report or RetentionReport(as_of.isoformat())
    # autocommit: each purge (its record and its change) commits in its own transaction
    with database_server(settings) as endpoints, psycopg.connect(endpoints.data_url, autocommit=True) as conn:
        ensure_retention_schema(conn)
        RULES[rule](conn, as_of=as_of, run_id=run_id, policy=policy, settings=settings, report=report)
    log.info("retention %s as of %s: %s", rule, as_of, report.as_dict())
    return report.as_dict()


def _record(conn, *, run_id, as_of, rule, subject, rows, detail, policy: RetentionPolicy, report) -> None:
    conn.execute(
        """insert into ledger.retention_purges (run_id, as_of, rule, subject, rows_affected, detail, policy_version)
           values (%s, %s, %s, %s, %s, %s::jsonb, %s)""",
        (run_id, as_of, rule, subject, rows, json.dumps(detail, sort_keys=True), policy.version),
    )
    if report is not None:
        report.add(rule, rows)


# --- NCMP identities ------------------------------------------------------------------------------------------------


def purge_ncmp_identities(
    conn: psycopg.Connection,
    *,
    as_of: dt.date,
    run_id: str,
    policy: RetentionPolicy | None = None,
    settings: Settings | None = None,
    report: RetentionReport | None = None,
) -> int:
    """Pseudonymise NCMP rows whose measurement (else load) date is more than ``identity_days`` before ``as_of``.

    Returns the number of rows changed; one ``ncmp_identity`` purge row per load batch touched.
    """
    policy = policy or load_retention_policy()
    settings = settings or load_settings()
    ensure_retention_schema(conn)
    if not _table_exists(conn, "raw", "ncmp_measurements"):
        return 0
    key = settings.pseudonymisation_key.get_secret_value() if settings.pseudonymisation_key else None
    cutoff = as_of - dt.timedelta(days=policy.ncmp.identity_days)
    with conn.transaction():
        changed = conn.execute(
            """update raw.ncmp_measurements as m set
                   forename = null,
                   surname = null,
                   upn = %(prefix)s
                       || left(encode(sha256(convert_to(%(key)s || coalesce(m.upn, ''), 'UTF8')), 'hex'), 24),
                   date_of_birth = case when m.date_of_birth ~ '^\\d{4}-\\d{2}-\\d{2}$'
                                        then left(m.date_of_birth, 8) || '01' end
               from raw.load_batches as b
               where b.load_batch_id = m._load_batch_id
                   and coalesce(case when m.measurement_date ~ '^\\d{4}-\\d{2}-\\d{2}$'
                                     then m.measurement_date::date end, b.loaded_at::date) < %(cutoff)s
                   and (m.forename is not null or m.surname is not null
                        or coalesce(m.upn, '') not like %(prefix)s || '%%')
               returning m._load_batch_id""",
            {"prefix": PSEUDONYM_PREFIX, "key": key or secrets.token_hex(32), "cutoff": cutoff},
        ).fetchall()
        per_batch: dict[int, int] = {}
        for (batch_id,) in changed:
            per_batch[batch_id] = per_batch.get(batch_id, 0) + 1
        for batch_id, rows in sorted(per_batch.items()):
            _record(
                conn,
                run_id=run_id,
                as_of=as_of,
                rule="ncmp_identity",
                subject=f"raw.load_batches {batch_id}",
                rows=rows,
                detail={"measured_before": cutoff.isoformat(), "keyed": key is not None},
                policy=policy,
                report=report,
            )
    return len(changed)


# --- raw returns ----------------------------------------------------------------------------------------------------


def expired_batches(conn: psycopg.Connection, *, as_of: dt.date, policy: RetentionPolicy) -> list[tuple[int, str]]:
    """``(load_batch_id, return_type)`` of every batch past its period, closed downwards per return type.

    A batch goes when it was loaded more than ``days_for(return_type)`` days before ``as_of``, or is superseded and
    was loaded more than ``superseded_days`` before it. Every earlier batch of the same return type as a batch that
    expired by age goes with it, so removal never leaves an older superseded return to become current again.
    """
    if not _table_exists(conn, "raw", "load_batches"):
        return []
    rows = conn.execute(
        "select load_batch_id, return_type, status, loaded_at::date from raw.load_batches order by load_batch_id"
    ).fetchall()
    rules = policy.raw_returns
    expired: dict[int, str] = {}
    newest_by_age: dict[str, int] = {}
    for batch_id, return_type, status, loaded_on in rows:
        age = (as_of - loaded_on).days
        if age > rules.days_for(return_type):
            expired[batch_id] = return_type
            newest_by_age[return_type] = batch_id
        elif status == "superseded" and age > rules.superseded_days:
            expired[batch_id] = return_type
    for batch_id, return_type, _, _ in rows:  # close downwards: everything older than an expired batch
        if batch_id < newest_by_age.get(return_type, 0):
            expired[batch_id] = return_type
    return sorted(expired.items())


def purge_raw_returns(
    conn: psycopg.Connection,
    *,
    as_of: dt.date,
    run_id: str,
    policy: RetentionPolicy | None = None,
    settings: Settings | None = None,
    report: RetentionReport | None = None,
) -> list[int]:
    """Remove expired batches (with every row they loaded) and expired archived and quarantined files."""
    policy = policy or load_retention_policy()
    settings = settings or load_settings()
    ensure_retention_schema(conn)
    removed = []
    for batch_id, return_type in expired_batches(conn, as_of=as_of, policy=policy):
        with conn.transaction():
            rows = _delete_batch(conn, batch_id)
            _record(
                conn,
                run_id=run_id,
                as_of=as_of,
                rule="raw_batch",
                subject=f"raw.load_batches {batch_id}",
                rows=sum(rows.values()),
                detail={"return_type": return_type, "rows": rows},
                policy=policy,
                report=report,
            )
        removed.append(batch_id)
    _purge_dated_entries(conn, settings.archive_dir, "archived_file", as_of, run_id, policy, report, settings)
    _purge_dated_entries(conn, settings.quarantine_dir, "quarantined_file", as_of, run_id, policy, report, settings)
    return removed


def _delete_batch(conn: psycopg.Connection, batch_id: int) -> dict[str, int]:
    """Delete one batch's rows from every table that references it, dbt's batch-keyed copies, then the batch."""
    rows: dict[str, int] = {}
    for schema, table, column in _batch_referencing_columns(conn):
        statement = sql.SQL("delete from {}.{} where {} = %s").format(
            sql.Identifier(schema), sql.Identifier(table), sql.Identifier(column)
        )
        deleted = conn.execute(statement, (batch_id,)).rowcount
        if deleted:
            rows[f"{schema}.{table}"] = deleted
    conn.execute("delete from raw.load_batches where load_batch_id = %s", (batch_id,))
    return rows


def _batch_referencing_columns(conn: psycopg.Connection) -> list[tuple[str, str, str]]:
    """Every (schema, table, column) holding a load batch id: foreign keys to ``raw.load_batches``, every raw table
    with ``_load_batch_id`` (the census tables carry no foreign key, for load speed) and the dbt tables in
    ``analytics`` with a ``load_batch_id`` column (rebuilt copies of raw rows)."""
    return conn.execute(
        """select n.nspname, c.relname, a.attname
           from pg_constraint as k
           join pg_class as c on c.oid = k.conrelid
           join pg_namespace as n on n.oid = c.relnamespace
           join pg_attribute as a on a.attrelid = k.conrelid and a.attnum = k.conkey[1]
           where k.contype = 'f' and k.confrelid = 'raw.load_batches'::regclass
           union
           select table_schema, table_name, column_name
           from information_schema.columns
           join information_schema.tables using (table_schema, table_name)
           where table_type = 'BASE TABLE' and (
               (table_schema = 'raw' and column_name = '_load_batch_id')
               or (table_schema = 'analytics' and column_name = 'load_batch_id'))
           order by 1, 2"""
    ).fetchall()


def _purge_dated_entries(conn, folder: Path, rule: str, as_of, run_id, policy: RetentionPolicy, report, settings):
    """Archived (``archive/<type>/<stamp>__name``) or quarantined entries older than their period."""
    if not folder.is_dir():
        return
    rules = policy.raw_returns
    for type_folder in sorted(path for path in folder.iterdir() if path.is_dir()):
        days = rules.quarantine_days if rule == "quarantined_file" else rules.days_for(type_folder.name)
        for entry in sorted(type_folder.iterdir()):
            stamp = _STAMP.match(entry.name)
            if not stamp or (as_of - dt.datetime.strptime(stamp.group(1), "%Y%m%d").date()).days <= days:
                continue
            with conn.transaction():
                _record(
                    conn,
                    run_id=run_id,
                    as_of=as_of,
                    rule=rule,
                    subject=str(entry.relative_to(settings.data_dir)),
                    rows=0,
                    detail={"return_type": type_folder.name, "period_days": days},
                    policy=policy,
                    report=report,
                )
                _remove(entry)


# --- delivered and staged files -------------------------------------------------------------------------------------


def clear_delivered_files(
    conn: psycopg.Connection,
    *,
    as_of: dt.date,
    run_id: str,
    policy: RetentionPolicy | None = None,
    settings: Settings | None = None,
    recipients: Policy | None = None,
    report: RetentionReport | None = None,
) -> list[str]:
    """Clear the outbox copy of each delivery past its period, then the retraction notices and staged copies past
    theirs; return the delivery ids cleared.

    A delivery is in ``outbox/<recipient>/<feed date>/``, a routed recipient's in ``outbox/<recipient>/<route>/<feed
    date>/`` and an ad-hoc extract (recipient ``adhoc:<agency>``, route = the request's reference) in
    ``outbox/adhoc/<agency>/<reference>/``. A delivery to SFTP left nothing in the outbox: its purge is recorded with
    no files.
    """
    policy = policy or load_retention_policy()
    settings = settings or load_settings()
    recipients = recipients or load_policy()
    ensure_retention_schema(conn)
    deliveries = conn.execute(
        """select d.delivery_id::text, d.recipient_id, d.route, d.feed_date, d.file_name, d.delivered_at::date,
                  min(c.confirmed_at)::date
           from ledger.deliveries as d
           left join ledger.delivery_confirmations as c using (delivery_id)
           where not exists (select from ledger.retention_purges as p
                             where p.rule = 'delivered_file' and p.subject = d.delivery_id::text)
           group by d.delivery_id
           order by d.delivered_at"""
    ).fetchall()
    cleared = []
    for delivery_id, recipient_id, route, feed_date, file_name, delivered_on, confirmed_on in deliveries:
        due = _due(recipient_id, delivered_on, confirmed_on, policy, recipients)
        if due is None or as_of <= due[0]:
            continue
        folder = _delivery_folder(recipient_id, route, feed_date, settings)
        manifest = folder / Path(file_name).with_suffix(".manifest.json").name
        paths = [folder / file_name, folder / f"{file_name}{AGE_SUFFIX}", manifest]  # .age: an encrypted delivery
        _purge_files(
            conn, paths, folder, "delivered_file", delivery_id, due[1], as_of, run_id, policy, report, settings
        )
        cleared.append(delivery_id)
    clear_retraction_notices(
        conn, as_of=as_of, run_id=run_id, policy=policy, settings=settings, recipients=recipients, report=report
    )
    _clear_staging(conn, as_of, run_id, policy, report, settings)
    return cleared


def clear_retraction_notices(
    conn: psycopg.Connection,
    *,
    as_of: dt.date,
    run_id: str,
    policy: RetentionPolicy | None = None,
    settings: Settings | None = None,
    recipients: Policy | None = None,
    report: RetentionReport | None = None,
) -> list[str]:
    """Clear the outbox copy of each retraction notice past its period (the rule of delivered files: confirmed
    (:func:`confirm_retraction`) plus the grace days, else the recipient's ``retention_days`` after it was issued);
    return the retraction ids cleared. A notice is its CSV, letter (each possibly ``.age``) and manifest in
    ``outbox/<recipient>/[<route>/]retractions/<feed date>/``; one ``retraction_notice`` purge row per notice."""
    policy = policy or load_retention_policy()
    settings = settings or load_settings()
    recipients = recipients or load_policy()
    ensure_retention_schema(conn)
    notices = conn.execute(
        """select r.retraction_id::text, r.recipient_id, r.route, r.file_name, r.target, min(r.retracted_at)::date,
                  min(c.confirmed_at)::date
           from ledger.retractions as r
           left join ledger.retraction_confirmations as c using (retraction_id)
           where not exists (select from ledger.retention_purges as p
                             where p.rule = 'retraction_notice' and p.subject = r.retraction_id::text)
           group by r.retraction_id, r.recipient_id, r.route, r.file_name, r.target
           order by min(r.retracted_at)"""
    ).fetchall()
    cleared = []
    for retraction_id, recipient_id, route, file_name, target, issued_on, confirmed_on in notices:
        due = _due(recipient_id, issued_on, confirmed_on, policy, recipients)
        if due is None or as_of <= due[0]:
            continue
        # the notice's folder is named by the feed date of the run that issued it, the last part of its target
        folder = settings.outbox_dir / recipient_id
        folder = (folder / slug(route) if route is not None else folder) / "retractions" / PurePath(target).name
        stem = file_name.removesuffix(".csv")
        names = [f"{stem}.csv", f"{stem}.txt"]
        paths = [folder / name for name in names] + [folder / f"{name}{AGE_SUFFIX}" for name in names]
        paths.append(folder / f"{stem}.manifest.json")
        _purge_files(
            conn, paths, folder, "retraction_notice", retraction_id, due[1], as_of, run_id, policy, report, settings
        )
        cleared.append(retraction_id)
    return cleared


def _due(recipient_id: str, sent_on, confirmed_on, policy: RetentionPolicy, recipients: Policy):
    """``(last day kept, reason)`` of a delivered file or notice, or None for a recipient the policy no longer has
    (kept: nothing says how long)."""
    if confirmed_on is not None:
        return confirmed_on + dt.timedelta(days=policy.delivered_files.grace_days_after_confirmation), "confirmed"
    if recipient_id.startswith(_ADHOC_PREFIX):
        if recipients.adhoc is None:
            return None
        days = recipients.adhoc.retention_days
    elif recipient_id in recipients.recipients:
        days = recipients.recipient(recipient_id).retention_days
    else:
        return None
    return sent_on + dt.timedelta(days=days), "unconfirmed_beyond_retention"


def _delivery_folder(recipient_id: str, route: str | None, feed_date: dt.date, settings: Settings) -> Path:
    """The outbox folder of a delivery (see :func:`clear_delivered_files`), as publish and adhoc write it."""
    if recipient_id.startswith(_ADHOC_PREFIX):
        return settings.outbox_dir / "adhoc" / slug(recipient_id.removeprefix(_ADHOC_PREFIX)) / str(route)
    folder = settings.outbox_dir / recipient_id
    return (folder / slug(route) if route is not None else folder) / feed_date.isoformat()


def _purge_files(conn, paths, folder: Path, rule, subject, reason, as_of, run_id, policy, report, settings) -> None:
    """Record one purge of ``subject`` naming the ``paths`` present, remove them and then the emptied folders."""
    with conn.transaction():
        present = [path for path in paths if _inside(path, settings.outbox_dir) and path.exists()]
        _record(
            conn,
            run_id=run_id,
            as_of=as_of,
            rule=rule,
            subject=subject,
            rows=0,
            detail={"reason": reason, "files": [str(path.relative_to(settings.data_dir)) for path in present]},
            policy=policy,
            report=report,
        )
        for path in present:
            path.unlink()
    _prune_empty(folder, settings.outbox_dir)


def _clear_staging(conn, as_of: dt.date, run_id: str, policy: RetentionPolicy, report, settings: Settings) -> None:
    """Staged feeds (working copies) older than ``staging_days``, by the files' modification date."""
    if not settings.staging_dir.is_dir():
        return
    cutoff = as_of - dt.timedelta(days=policy.delivered_files.staging_days)
    for path in sorted(settings.staging_dir.rglob("*")):
        if not path.is_file() or dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC).date() >= cutoff:
            continue
        with conn.transaction():
            _record(
                conn,
                run_id=run_id,
                as_of=as_of,
                rule="staged_file",
                subject=str(path.relative_to(settings.data_dir)),
                rows=0,
                detail={"staging_days": policy.delivered_files.staging_days},
                policy=policy,
                report=report,
            )
            path.unlink()
    for folder in sorted((path for path in settings.staging_dir.rglob("*") if path.is_dir()), reverse=True):
        _prune_empty(folder, settings.staging_dir)


# --- helpers --------------------------------------------------------------------------------------------------------


def _table_exists(conn: psycopg.Connection, schema: str, table: str) -> bool:
    return conn.execute("select to_regclass(%s) is not null", (f"{schema}.{table}",)).fetchone()[0]


def _inside(path: Path, root: Path) -> bool:
    return root.resolve() in path.resolve().parents


def _remove(entry: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry)
    else:
        entry.unlink(missing_ok=True)


def _prune_empty(folder: Path, root: Path) -> None:
    """Remove ``folder`` and its parents up to (not including) ``root`` while they are empty."""
    while folder != root and _inside(folder, root) and folder.is_dir() and not any(folder.iterdir()):
        os.rmdir(folder)
        folder = folder.parent


#: The retention rules in the order the DAG applies them.
RULES = {
    "ncmp_identities": purge_ncmp_identities,
    "raw_returns": purge_raw_returns,
    "delivered_files": clear_delivered_files,
}
