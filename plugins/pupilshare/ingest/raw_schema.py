"""DDL of the ``raw`` schema: one text table per census table, plus the load batch register.

Raw tables keep every value as text exactly as the school sent it; staging models cast and recode. Each row carries
``_load_batch_id`` (which file set it came from) and ``_row_number`` (its data row in the source file, 1 = first).
"""

from __future__ import annotations

from functools import cache

import psycopg
from psycopg import sql

from pupilshare.findings import Finding
from pupilshare.reference import census_columns, census_tables

RAW_SCHEMA = "raw"

_LOAD_BATCHES_DDL = """
create schema if not exists raw;
create table if not exists raw.load_batches (
    load_batch_id bigint generated always as identity primary key,
    return_type text not null,
    source_name text not null,
    content_sha256 text not null,
    status text not null check (status in ('loaded', 'superseded')),
    census_term text,
    census_year integer,
    reference_date date,
    row_counts jsonb not null default '{}'::jsonb,
    loaded_at timestamptz not null default now()
);
create index if not exists load_batches__return_sha on raw.load_batches (return_type, content_sha256);
create table if not exists raw.validation_findings (
    finding_id bigint generated always as identity primary key,
    load_batch_id bigint references raw.load_batches (load_batch_id),
    return_type text not null,
    file text not null,
    table_name text,
    row_number bigint,
    item text,
    rule_id text not null,
    severity text not null check (severity in ('error', 'query')),
    message text not null,
    found_at timestamptz not null default now()
);
create index if not exists validation_findings__batch on raw.validation_findings (load_batch_id);
"""


@cache
def census_raw_columns() -> dict[str, tuple[str, ...]]:
    """Column names (lowercased, schema order) of every census table, as the union over the three terms."""
    tables: dict[str, dict[str, None]] = {}
    for term in ("Autumn", "Spring", "Summer"):
        for table in census_tables(term):
            columns = tables.setdefault(table, {})
            for column in census_columns(table, term):
                columns.setdefault(column.lower(), None)
    return {table: tuple(columns) for table, columns in tables.items()}


@cache
def census_required_columns(table: str) -> frozenset[str]:
    """Lowercased columns that the schema marks ``canbeblank: no`` in every term that has the table."""
    required: set[str] | None = None
    for term in ("Autumn", "Spring", "Summer"):
        if table not in census_tables(term):
            continue
        names = {name.lower() for name, spec in census_columns(table, term).items() if spec.get("canbeblank") is False}
        required = names if required is None else required & names
    return frozenset(required or ())


def raw_table_name(table: str) -> str:
    return f"census_{table}"


def ensure_raw_schema(conn: psycopg.Connection) -> None:
    """Create the raw schema, the batch register and one table per census table (idempotent)."""
    conn.execute("select pg_advisory_xact_lock(hashtext('pupilshare.raw_schema'))")
    conn.execute(_LOAD_BATCHES_DDL)
    for table, columns in census_raw_columns().items():
        name = raw_table_name(table)
        column_defs = sql.SQL(",\n").join(sql.SQL("{} text").format(sql.Identifier(column)) for column in columns)
        conn.execute(
            sql.SQL(
                """
                create sequence if not exists {schema}.{seq};
                create table if not exists {schema}.{table} (
                    _load_batch_id bigint not null
                        default current_setting('pupilshare.load_batch_id')::bigint
                        references raw.load_batches (load_batch_id),
                    _row_number bigint not null default nextval({seq_literal}),
                    {columns}
                );
                create index if not exists {index} on {schema}.{table} (_load_batch_id);
                """
            ).format(
                schema=sql.Identifier(RAW_SCHEMA),
                table=sql.Identifier(name),
                seq=sql.Identifier(f"{name}__row_seq"),
                seq_literal=sql.Literal(f"{RAW_SCHEMA}.{name}__row_seq"),
                columns=column_defs,
                index=sql.Identifier(f"{name}__batch"),
            )
        )


def record_findings(
    conn: psycopg.Connection, *, return_type: str, load_batch_id: int | None, findings: list[Finding]
) -> None:
    """Append findings to ``raw.validation_findings`` (inside the caller's transaction), streamed with COPY."""
    with (
        conn.cursor() as cursor,
        cursor.copy(
            """copy raw.validation_findings
                   (load_batch_id, return_type, file, table_name, row_number, item, rule_id, severity, message)
               from stdin"""
        ) as copy,
    ):
        for finding in findings:
            copy.write_row(
                (
                    load_batch_id,
                    return_type,
                    finding.file,
                    finding.table,
                    finding.row,
                    finding.item,
                    finding.rule_id,
                    finding.severity,
                    finding.message,
                )
            )
