"""The disclosure ledger: one row per pupil per delivery, append-only, and the publish gate register.

Published statistics are recorded too (``ledger.statistics_publications``): one row per table per publish run,
published or failed, with the files, their hashes, the threshold and the audit summary.

Any past feed can be answered for later: who received which child's data, when, under what law, in which file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date

import psycopg


def append_only_triggers_ddl(tables: tuple[str, ...]) -> str:
    """DDL that makes each ``ledger.<table>`` append-only (no update, delete or truncate for any role, the owner
    included), idempotently; ``ledger.refuse_change()`` must exist (it is created by the ledger's own DDL)."""
    names = ", ".join(f"'{table}'" for table in tables)
    return f"""
do $$
declare
    ledger_table text;
begin
    foreach ledger_table in array array[{names}] loop
        if not exists (
            select 1 from pg_trigger
            where tgname = 'append_only' and tgrelid = ('ledger.' || ledger_table)::regclass
        ) then
            execute format(
                'create trigger append_only before update or delete on ledger.%I '
                'for each row execute function ledger.refuse_change()', ledger_table);
            execute format(
                'create trigger append_only_truncate before truncate on ledger.%I '
                'for each statement execute function ledger.refuse_change()', ledger_table);
        end if;
    end loop;
end $$;
"""


_LEDGER_DDL = """
create schema if not exists ledger;
create table if not exists ledger.gate_results (
    gate_result_id text primary key,
    recipient_id text not null,
    suite_name text not null,
    feed_date date not null,
    run_id text not null,
    success boolean not null,
    evaluated_rows integer not null,
    failures jsonb not null,
    data_docs_index text,
    checked_at timestamptz not null default now()
);
create table if not exists ledger.deliveries (
    delivery_id uuid primary key,
    delivery_key text not null unique,
    recipient_id text not null,
    feed_date date not null,
    file_name text not null,
    file_sha256 text not null,
    row_count integer not null,
    target text not null,
    legal_basis text not null,
    run_id text not null,
    policy_version text not null,
    gate_result_id text not null references ledger.gate_results (gate_result_id),
    delivered_at timestamptz not null default now()
);
create table if not exists ledger.disclosures (
    disclosure_id bigint generated always as identity primary key,
    delivery_id uuid not null references ledger.deliveries (delivery_id),
    recipient_id text not null,
    upn text not null,
    feed_date date not null,
    fields_sent text[] not null,
    legal_basis text not null,
    file_sha256 text not null,
    run_id text not null,
    policy_version text not null,
    gate_result_id text not null,
    disclosed_at timestamptz not null default now()
);
create index if not exists disclosures__upn on ledger.disclosures (upn);
-- routed recipients (one file per provider or children's centre): which route a delivery and its rows went to
alter table ledger.deliveries add column if not exists route text;
alter table ledger.disclosures add column if not exists route text;
create table if not exists ledger.statistics_publications (
    publication_id uuid primary key,
    run_id text not null,
    table_name text not null,
    time_period text,
    status text not null check (status in ('published', 'failed')),
    files jsonb not null,
    sha256 jsonb not null,
    row_count integer,
    threshold integer not null,
    protection integer not null,
    cells_primary integer,
    cells_secondary integer,
    cells_derived_hidden integer,
    min_protection_width double precision,
    audit_ok boolean,
    failure text,
    target text,
    recorded_at timestamptz not null default now(),
    published_at timestamptz
);
create index if not exists statistics_publications__run on ledger.statistics_publications (run_id);
-- what a feed was built from, one row per gate run (pass or fail): the newest load batch the build could read and
-- the versions of the code that built it, so `pupilshare replay` can rebuild a delivered feed as it stood
create table if not exists ledger.build_contexts (
    gate_result_id text primary key references ledger.gate_results (gate_result_id),
    recipient_id text not null,
    feed_date date not null,
    max_load_batch_id bigint,
    dbt_version text not null,
    dbt_project_sha256 text not null,
    pupilshare_version text not null,
    policy_version text not null,
    opt_out_persistence text not null,
    recorded_at timestamptz not null default now()
);
-- the issue 6 register: one row per pupil per disclosure with everything needed to regenerate the file
create or replace view ledger.disclosure_register as
select
    disclosures.disclosure_id, disclosures.delivery_id, disclosures.recipient_id, disclosures.route, disclosures.upn,
    disclosures.feed_date, disclosures.fields_sent, disclosures.legal_basis, disclosures.file_sha256,
    disclosures.run_id, disclosures.policy_version, contexts.dbt_version, contexts.dbt_project_sha256,
    contexts.max_load_batch_id, disclosures.gate_result_id, disclosures.disclosed_at
from ledger.disclosures as disclosures
left join ledger.build_contexts as contexts on contexts.gate_result_id = disclosures.gate_result_id;
-- retraction notices after a late opt-out: one row per pupil per notice
create table if not exists ledger.retractions (
    retraction_row_id bigint generated always as identity primary key,
    retraction_id uuid not null,
    recipient_id text not null,
    route text,
    upn text not null,
    delivery_ids uuid[] not null,
    feed_dates date[] not null,
    fields_sent text[] not null,
    reason text not null,
    cause_id text,
    file_name text not null,
    file_sha256 text not null,
    target text not null,
    run_id text not null,
    policy_version text not null,
    retracted_at timestamptz not null default now()
);
create index if not exists retractions__upn on ledger.retractions (upn);
create index if not exists retractions__recipient on ledger.retractions (recipient_id);
create or replace function ledger.refuse_change() returns trigger language plpgsql as $$
begin
    raise exception 'ledger.% is append-only: % is not allowed', tg_table_name, tg_op
        using errcode = 'insufficient_privilege';
end $$;
""" + append_only_triggers_ddl(
    ("gate_results", "deliveries", "disclosures", "statistics_publications", "build_contexts", "retractions")
)


@dataclass(frozen=True)
class LedgerRow:
    """One pupil in one delivered file, and which fields of theirs it carried."""

    upn: str
    fields_sent: tuple[str, ...]


def ensure_ledger_schema(conn: psycopg.Connection) -> None:
    """Create the ledger tables and their append-only triggers (idempotent)."""
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext('pupilshare.ledger_schema'))")
        conn.execute(_LEDGER_DDL)


def record_gate_result(
    conn: psycopg.Connection,
    *,
    gate_result_id: str,
    recipient_id: str,
    suite_name: str,
    feed_date: date,
    run_id: str,
    success: bool,
    evaluated_rows: int,
    failures: list[str],
    data_docs_index: str | None,
) -> None:
    """Record a gate outcome, pass or fail, in its own committed transaction."""
    with conn.transaction():
        conn.execute(
            """insert into ledger.gate_results
                   (gate_result_id, recipient_id, suite_name, feed_date, run_id, success, evaluated_rows,
                    failures, data_docs_index)
               values (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s)""",
            (
                gate_result_id,
                recipient_id,
                suite_name,
                feed_date,
                run_id,
                success,
                evaluated_rows,
                json.dumps(failures),
                data_docs_index,
            ),
        )


def delivery_exists(conn: psycopg.Connection, delivery_key: str) -> bool:
    return (
        conn.execute("select 1 from ledger.deliveries where delivery_key = %s", (delivery_key,)).fetchone() is not None
    )


def record_delivery(conn: psycopg.Connection, *, delivery: dict, rows: list[LedgerRow]) -> None:
    """Insert the delivery and one disclosure row per pupil. Call inside the caller's transaction.

    ``delivery["route"]`` (optional) is the provider or children's centre a routed recipient's file went to.
    """
    delivery = {**delivery, "route": delivery.get("route")}
    conn.execute(
        """insert into ledger.deliveries
               (delivery_id, delivery_key, recipient_id, feed_date, file_name, file_sha256, row_count, target,
                legal_basis, run_id, policy_version, gate_result_id, route)
           values (%(delivery_id)s, %(delivery_key)s, %(recipient_id)s, %(feed_date)s, %(file_name)s,
                   %(file_sha256)s, %(row_count)s, %(target)s, %(legal_basis)s, %(run_id)s, %(policy_version)s,
                   %(gate_result_id)s, %(route)s)""",
        delivery,
    )
    with (
        conn.cursor() as cursor,
        cursor.copy(
            """copy ledger.disclosures (delivery_id, recipient_id, upn, feed_date, fields_sent, legal_basis,
                   file_sha256, run_id, policy_version, gate_result_id, route) from stdin"""
        ) as copy,
    ):
        for row in rows:
            copy.write_row(
                (
                    delivery["delivery_id"],
                    delivery["recipient_id"],
                    row.upn,
                    delivery["feed_date"],
                    list(row.fields_sent),
                    delivery["legal_basis"],
                    delivery["file_sha256"],
                    delivery["run_id"],
                    delivery["policy_version"],
                    delivery["gate_result_id"],
                    delivery["route"],
                )
            )


def record_statistics_publication(conn: psycopg.Connection, row: dict) -> None:
    """Insert one ``ledger.statistics_publications`` row (keys: its columns). Call inside the caller's transaction."""
    conn.execute(
        """insert into ledger.statistics_publications
               (publication_id, run_id, table_name, time_period, status, files, sha256, row_count, threshold,
                protection, cells_primary, cells_secondary, cells_derived_hidden, min_protection_width, audit_ok,
                failure, target, published_at)
           values (%(publication_id)s, %(run_id)s, %(table_name)s, %(time_period)s, %(status)s, %(files)s::jsonb,
                   %(sha256)s::jsonb, %(row_count)s, %(threshold)s, %(protection)s, %(cells_primary)s,
                   %(cells_secondary)s, %(cells_derived_hidden)s, %(min_protection_width)s, %(audit_ok)s,
                   %(failure)s, %(target)s, case when %(status)s = 'published' then now() end)""",
        {**row, "files": json.dumps(row["files"]), "sha256": json.dumps(row["sha256"])},
    )


def record_build_context(conn: psycopg.Connection, *, gate_result_id: str, context: dict) -> None:
    """Insert one ``ledger.build_contexts`` row (keys: its columns but ``gate_result_id``) in its own transaction."""
    with conn.transaction():
        conn.execute(
            """insert into ledger.build_contexts
                   (gate_result_id, recipient_id, feed_date, max_load_batch_id, dbt_version, dbt_project_sha256,
                    pupilshare_version, policy_version, opt_out_persistence)
               values (%(gate_result_id)s, %(recipient_id)s, %(feed_date)s, %(max_load_batch_id)s, %(dbt_version)s,
                       %(dbt_project_sha256)s, %(pupilshare_version)s, %(policy_version)s, %(opt_out_persistence)s)""",
            {**context, "gate_result_id": gate_result_id},
        )
