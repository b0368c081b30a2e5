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
create table if not exists raw.census_school_returns (
    load_batch_id bigint not null references raw.load_batches (load_batch_id),
    schoolcensus_table_id text not null,
    laestab text not null,
    census_term text not null,
    census_year integer not null,
    reference_date date,
    primary key (load_batch_id, schoolcensus_table_id)
);
create index if not exists census_school_returns__key
    on raw.census_school_returns (laestab, census_term, census_year, load_batch_id);
create or replace view raw.current_census_returns as
select distinct on (laestab, census_term, census_year)
    load_batch_id, schoolcensus_table_id, laestab, census_term, census_year, reference_date
from raw.census_school_returns
order by laestab, census_term, census_year, load_batch_id desc;
comment on view raw.current_census_returns is
    'One row per school (laestab) per census term and year: the return from the latest census batch that held that '
    'school. Marts read census rows only through these (load_batch_id, schoolcensus_table_id) pairs.';
create or replace view raw.census_rejected_rows as
select distinct load_batch_id, table_name, row_number
from raw.validation_findings
where return_type = 'census' and severity = 'error' and row_number is not null and table_name is not null;
comment on view raw.census_rejected_rows is
    'One row per census raw row (load batch, table, _row_number) that an error-severity rule rejected. Staging '
    'models drop these rows with an anti-join on (_load_batch_id, table, _row_number).';
"""

#: Regex pieces of ``raw.census_date``: an optional time of day, and an ISO month-day that exists in some year.
_TIME = r"( [0-9:.]{5,15})?"
#: Local Authority numbers a UPN may carry, as python-stdnum's ``stdnum.gb.upn`` knows them (mirrored in SQL).
_UPN_ALPHABET = "ABCDEFGHJKLMNPQRTUVWXYZ0123456789"


def _upn_functions_ddl() -> str:
    """SQL functions that mirror ``stdnum.gb.upn`` so that UPN checks run set-based, inside PostgreSQL.

    Both are single expressions so the planner inlines them (no per-row function call). ``raw.upn_problem`` takes
    a compacted UPN (upper case, spaces removed) and returns null when valid, else ``length``, ``format``, ``la``
    or ``check``, in stdnum's order of checks. Tests compare them with stdnum on thousands of UPNs.
    """
    from stdnum.gb import upn

    la_numbers = ", ".join(str(number) for number in sorted(upn._la_numbers))  # noqa: SLF001 - mirrored on purpose
    weighted = " + ".join(
        f"{weight} * (strpos('{_UPN_ALPHABET}', substr(body, {position}, 1)) - 1)"
        for position, weight in enumerate(range(2, 14), 1)
    )
    census_day = _checked_date(
        "left(value, 4)::integer",
        "array_position(array['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'], "
        "lower(substr(value, 6, 3)))",
        "split_part(split_part(value, ' ', 1), '-', 3)::integer",
    )
    iso_day = _checked_date("left(value, 4)::integer", "substr(value, 6, 2)::integer", "substr(value, 9, 2)::integer")
    return f"""
create or replace function raw.upn_check_letter(body text) returns text
    language sql immutable parallel safe
    return substr('{_UPN_ALPHABET}', (({weighted}) % 23) + 1, 1);
create or replace function raw.upn_problem(compact text) returns text
    language sql immutable parallel safe
    return case
        when length(compact) <> 13 then 'length'
        when substr(compact, 2, 11) !~ '^[0-9]{{11}}$'
            or strpos('{_UPN_ALPHABET}', right(compact, 1)) = 0 then 'format'
        when substr(compact, 2, 3)::integer <> all ('{{{la_numbers}}}'::integer[]) then 'la'
        when left(compact, 1) <> raw.upn_check_letter(right(compact, 12)) then 'check'
    end;
create or replace function raw.census_date(value text) returns date
    language sql immutable parallel safe
    return case
        when value ~ '^[0-9]{{4}}-[A-Za-z]{{3}}-[0-9]{{1,2}}{_TIME}$' then {census_day}
        when value ~ '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}$' then {iso_day}
    end;
"""


def _checked_date(year: str, month: str, day: str) -> str:
    """SQL for ``make_date(year, month, day)`` that is null (never an error) when no such date exists.

    Plain arithmetic on already-matched digits (no function calls, no costly regex) keeps it inlinable and fast:
    about a microsecond a value, where a try/except function would start a subtransaction per row.
    """
    leap = f"case when {year} % 4 = 0 and ({year} % 100 <> 0 or {year} % 400 = 0) then 1 else 0 end"
    days = (
        f"case {month} when 2 then 28 + {leap} when 4 then 30 when 6 then 30 when 9 then 30 when 11 then 30 else 31 end"
    )
    return (
        f"case when {year} >= 1 and {month} between 1 and 12 and {day} >= 1 then "
        f"case when {day} <= {days} then make_date({year}, {month}, {day}) end end"
    )


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
    """Create the raw schema, the batch register and one table per census table (idempotent).

    The census raw tables are built for COPY speed. ``_load_batch_id`` comes from the transaction setting that
    ``_register_batch`` sets right after inserting the batch row (COPY fails if it is unset), so every raw row
    belongs to an existing batch by construction; a per-row foreign key check to ``raw.load_batches`` cost five
    times the COPY itself and is not declared (databases made before are migrated by dropping it). The batch
    index is BRIN: loads are serialised and append, so each batch is a contiguous run of pages and the index costs
    next to nothing per row. ``_row_number`` comes from a sequence with a session cache, reset per file.
    """
    conn.execute("select pg_advisory_xact_lock(hashtext('pupilshare.raw_schema'))")
    conn.execute(_LOAD_BATCHES_DDL)
    conn.execute(_upn_functions_ddl())
    for table, columns in census_raw_columns().items():
        name = raw_table_name(table)
        column_defs = sql.SQL(",\n").join(sql.SQL("{} text").format(sql.Identifier(column)) for column in columns)
        conn.execute(
            sql.SQL(
                """
                create sequence if not exists {schema}.{seq} cache {cache};
                alter sequence {schema}.{seq} cache {cache};
                create table if not exists {schema}.{table} (
                    _load_batch_id bigint not null default current_setting('pupilshare.load_batch_id')::bigint,
                    _row_number bigint not null default nextval({seq_literal}),
                    {columns}
                );
                drop index if exists {schema}.{old_index};
                create index if not exists {index} on {schema}.{table} using brin (_load_batch_id);
                """
            ).format(
                schema=sql.Identifier(RAW_SCHEMA),
                table=sql.Identifier(name),
                seq=sql.Identifier(f"{name}__row_seq"),
                seq_literal=sql.Literal(f"{RAW_SCHEMA}.{name}__row_seq"),
                cache=sql.Literal(_ROW_SEQUENCE_CACHE),
                columns=column_defs,
                old_index=sql.Identifier(f"{name}__batch"),
                index=sql.Identifier(f"{name}__batch_brin"),
            )
        )
        _ensure_subject_access_index(conn, name, columns)
    conn.execute(_DROP_CENSUS_RAW_FOREIGN_KEYS)


#: Census tables that carry a pupil's rows without their UPN link to the pupil row through one of these ids.
CENSUS_PUPIL_LINKS = {"pupilonrolltableid": "pupilonroll", "pupilnolongeronrolltableid": "pupilnolongeronroll"}


def _ensure_subject_access_index(conn: psycopg.Connection, name: str, columns: tuple[str, ...]) -> None:
    """A B-tree index that lets subject access (:mod:`pupilshare.sar`) find one pupil's rows without a scan: on
    ``upn`` where the table has it, else on the id that links the row to its pupil row (then the load batch).

    These are the only B-tree indexes on census raw tables (COPY speed, see :func:`ensure_raw_schema`); one index
    on one text column per table is the price of answering a subject access request in under a second.
    """
    if "upn" in columns:
        key = [sql.Identifier("upn")]
    elif link := next((column for column in CENSUS_PUPIL_LINKS if column in columns), None):
        key = [sql.Identifier(link), sql.Identifier("_load_batch_id")]
    else:
        return
    conn.execute(
        sql.SQL("create index if not exists {index} on {schema}.{table} ({key})").format(
            index=sql.Identifier(f"{name}__subject"),
            schema=sql.Identifier(RAW_SCHEMA),
            table=sql.Identifier(name),
            key=sql.SQL(", ").join(key),
        )
    )


#: Row numbers a session takes from a census table's sequence at a time (``setval`` per file resets the cache).
_ROW_SEQUENCE_CACHE = 1000
#: Migration: census raw tables of databases created before had a per-row foreign key to ``raw.load_batches``.
_DROP_CENSUS_RAW_FOREIGN_KEYS = """
do $$
declare
    foreign_key record;
begin
    for foreign_key in
        select constraint_.conrelid::regclass as table_name, constraint_.conname as constraint_name
        from pg_constraint as constraint_
        join pg_class as class_ on class_.oid = constraint_.conrelid
        where constraint_.contype = 'f'
            and constraint_.confrelid = 'raw.load_batches'::regclass
            and class_.relnamespace = 'raw'::regnamespace
            and class_.relname like 'census\\_%'
            and class_.relname <> 'census_school_returns'
    loop
        execute format('alter table %s drop constraint %I', foreign_key.table_name, foreign_key.constraint_name);
    end loop;
end
$$;
"""


def record_findings(
    conn: psycopg.Connection, *, return_type: str, load_batch_id: int | None, findings: list[Finding]
) -> None:
    """Append findings to ``raw.validation_findings`` (inside the caller's transaction), streamed with COPY."""
    if not findings:
        return  # no COPY round trip for a clean file set
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
