"""Row-level validation of a School Census extract, COLLECT-style, run set-based in PostgreSQL.

The rules run inside the load transaction, after COPY, over the batch's raw rows. Each rule is SQL that writes
``raw.validation_findings`` rows (file, table, ``_row_number``, item, rule id, severity, message). A finding of
severity ``error`` rejects its row: the view ``raw.census_rejected_rows`` lists every rejected
``(load_batch_id, table_name, row_number)`` and staging drops those rows. A ``query`` loads and is only flagged.
Rows that hang off a rejected pupil (addresses, FSM periods, sessions ...) are rejected with it
(``CENSUS-PARENT-REJECTED``), so no orphan reaches the marts.

Most rules of one table share one scan: a ``cross join lateral (values ...)`` yields one candidate finding per rule
per row and only those with a message are kept. Dates and UPNs are checked by SQL functions that mirror
``pupilshare.dates.parse_census_date`` and ``stdnum.gb.upn`` (see :mod:`pupilshare.ingest.raw_schema`).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

import psycopg
from psycopg import sql

from pupilshare.reference import CensusTerm, census_codes, census_columns

RETURN_TYPE = "census"

#: Every row-level rule: id -> (severity, what it checks). Severity ``error`` rejects the row.
RULES: dict[str, tuple[str, str]] = {
    "CENSUS-ITEM-MISSING": (
        "error",
        "a required pupil item (UPN, names, DOB, sex, NC year, enrolment status) is blank",
    ),
    "CENSUS-UPN-FORMAT": ("error", "the UPN is not 13 characters: a letter, 11 digits, then a digit or letter"),
    "CENSUS-UPN-LA": ("error", "the UPN's characters 2-4 are not a Local Authority number"),
    "CENSUS-UPN-CHECK-LETTER": ("error", "the UPN's check letter does not match its other 12 characters"),
    "CENSUS-UPN-TEMPORARY": ("query", "the UPN is temporary (ends in a letter): replace it with the permanent one"),
    "CENSUS-UPN-DUPLICATE": ("error", "the same UPN is on one school's roll more than once"),
    "CENSUS-CODE-UNKNOWN": ("error", "a value is not in the census code list of a required code item"),
    "CENSUS-CODE-UNKNOWN-QUERY": ("query", "a value is not in the census code list of an optional code item"),
    "CENSUS-DATE-FORMAT": ("error", "a date is not like 2012-Mar-01 00:00:00 (or 2012-03-01), or is no real date"),
    "CENSUS-NUMBER-FORMAT": ("error", "a count of sessions is not a whole number"),
    "CENSUS-DOB-FUTURE": ("error", "the date of birth is after the census reference date"),
    "CENSUS-AGE-OVER-25": ("error", "the pupil is more than 25 years old on the census reference date"),
    "CENSUS-DOB-NCYEAR": ("query", "the date of birth is outside the usual range for the NC year"),
    "CENSUS-ENTRY-BEFORE-DOB": ("error", "the entry date is before the date of birth"),
    "CENSUS-SESSIONS-EXCEED": ("error", "authorised plus unauthorised absence sessions exceed the possible sessions"),
    "CENSUS-ADDRESS-MISSING": ("query", "a pupil on roll has no address row"),
    "CENSUS-FSM-END-BEFORE-START": ("error", "an FSM period ends before it starts"),
    "CENSUS-PUPIL-UNKNOWN": ("error", "a row refers to a pupilonrolltableid that is not in pupilonroll"),
    "CENSUS-SCHOOL-UNKNOWN": ("error", "a row refers to a schoolcensustableid that is not in schoolcensus"),
    "CENSUS-PARENT-REJECTED": ("error", "the pupil this row belongs to was rejected by another rule"),
}

#: Code items whose unknown values are errors (the rest are queries): COLLECT cannot fund or count without them.
ERROR_CODE_ITEMS = {
    "pupilonroll": {"sex", "ncyearactual", "enrolstatus", "senprovision", "yssa"},
    "termlyexclusionsonroll": {"category"},
    "termlysessiondetailsonroll": {"attendancereason"},
}
#: DfE SEN primary need type codes (the census schema gives ``senneeds.sentype`` no list).
SEN_NEED_TYPES = ("SPLD", "MLD", "SLD", "PMLD", "SEMH", "SLCN", "HI", "VI", "MSI", "PD", "ASD", "OTH", "NSA")
_REQUIRED_PUPIL_ITEMS = ("upn", "surname", "forename", "dob", "sex", "ncyearactual", "enrolstatus")
_SESSION_ITEMS = ("termlysessionspossible", "termlysessionsauthorised", "termlysessionsunauthorised")
_FINDINGS_INSERT = """
insert into raw.validation_findings
    (load_batch_id, return_type, file, table_name, row_number, item, rule_id, severity, message)
"""


@dataclass(frozen=True)
class CensusBatch:
    """What the rules need to know about the batch being loaded: ``files`` maps table -> file name in findings."""

    load_batch_id: int
    term: CensusTerm
    reference_date: dt.date
    files: dict[str, str]


def validate_census_batch(conn: psycopg.Connection, batch: CensusBatch) -> dict[str, int]:
    """Run every row-level rule over ``batch`` (inside the caller's transaction); returns findings per severity."""
    _parse_dates_once(conn, batch)
    for table in batch.files:
        _run(conn, batch, table, _table_checks(batch, table))
    if "pupilonroll" in batch.files:
        _run(conn, batch, "pupilonroll", _pupil_checks(batch), base=_pupil_base())
        _duplicate_upns(conn, batch)
        _missing_addresses(conn, batch)
    _unknown_parents(conn, batch)
    _cascade_rejected_pupils(conn, batch)
    counts = conn.execute(
        "select severity, count(*) from raw.validation_findings where load_batch_id = %s group by severity",
        (batch.load_batch_id,),
    ).fetchall()
    return {"error": 0, "query": 0} | dict(counts)


# --- one-scan checks ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Check:
    rule_id: str
    item: str
    message: sql.Composable  # an expression that is null when the row passes


def _run(
    conn: psycopg.Connection,
    batch: CensusBatch,
    table: str,
    checks: list[_Check],
    *,
    base: sql.Composable | None = None,
) -> None:
    if not checks:
        return
    values = sql.SQL(",\n").join(
        sql.SQL("({}, {}, {}, {})").format(
            sql.Literal(check.rule_id), sql.Literal(RULES[check.rule_id][0]), sql.Literal(check.item), check.message
        )
        for check in checks
    )
    source = base or _table_source(batch, table)
    statement = sql.SQL(_FINDINGS_INSERT) + sql.SQL(
        """select %(batch)s, %(return_type)s, %(file)s, %(table)s, row_._row_number, check_.item, check_.rule_id,
               check_.severity, check_.message
           from (select * from ({source}) as row_ where {any_failed} offset 0) as row_
           cross join lateral (values {values}) as check_ (rule_id, severity, item, message)
           where check_.message is not null"""
    ).format(
        source=source,
        values=values,
        any_failed=sql.SQL(" or ").join(sql.SQL("({}) is not null").format(check.message) for check in checks),
    )
    conn.execute(statement, _params(batch, table))


def _params(batch: CensusBatch, table: str) -> dict[str, object]:
    return {
        "batch": batch.load_batch_id,
        "return_type": RETURN_TYPE,
        "file": batch.files.get(table, f"{table}.csv"),
        "table": table,
        "reference_date": batch.reference_date,
    }


def _table_checks(batch: CensusBatch, table: str) -> list[_Check]:
    """Code lists of every categorical item, dates and session counts of one table."""
    checks = []
    columns = census_columns(table, batch.term)
    for column, spec in columns.items():
        name = column.lower()
        value = sql.SQL("btrim(row_.{})").format(sql.Identifier(name))
        codes = census_codes(table, column, batch.term) if spec.get("category") else None
        if table == "senneeds" and name == "sentype":
            codes = list(SEN_NEED_TYPES)
        if codes:
            severe = name in ERROR_CODE_ITEMS.get(table, set())
            rule = "CENSUS-CODE-UNKNOWN" if severe else "CENSUS-CODE-UNKNOWN-QUERY"
            shown = ", ".join(codes[:12]) + (" ..." if len(codes) > 12 else "")
            message = sql.SQL(
                "case when {value} <> '' and upper({value}) <> all({codes}) then "
                "format('%%s %%L is not a census code; use one of: %%s', {item}, {value}, {shown}) end"
            ).format(
                value=value,
                codes=sql.Literal([code.upper() for code in codes]),
                item=sql.Literal(name),
                shown=sql.Literal(shown),
            )
            checks.append(_Check(rule, name, message))
        elif "date" in spec and table != "pupilonroll":
            checks.append(_Check("CENSUS-DATE-FORMAT", name, _date_format(value, name)))  # see _date_columns
        elif name == "sessions":
            checks.append(_Check("CENSUS-NUMBER-FORMAT", name, _number_format(value, name)))
    if table in ("fsmperiodsonroll", "fsmperiod"):
        start, end = (sql.SQL("row_.{}").format(sql.Identifier(f"{c}__date")) for c in _FSM_DATES)
        checks.append(
            _Check(
                "CENSUS-FSM-END-BEFORE-START",
                "fsmenddate",
                sql.SQL(
                    "case when {end} < {start} then format('the FSM period ends on %%s, before it starts on %%s: "
                    "correct fsmstartdate or fsmenddate', {end}, {start}) end"
                ).format(start=start, end=end),
            )
        )
    return checks


_FSM_DATES = ("fsmstartdate", "fsmenddate")


def _date_format(value: sql.Composable, item: str) -> sql.Composable:
    """``value`` is ``btrim(row_.<item>)``; ``row_.<item>__date`` is its parse from :func:`_parse_dates_once`."""
    return sql.SQL(
        "case when {value} <> '' and row_.{parsed} is null then "
        "format('%%s %%L is not a date like 2012-Mar-01 00:00:00', {item}, {value}) end"
    ).format(value=value, parsed=sql.Identifier(f"{item}__date"), item=sql.Literal(item))


def _date_columns(batch: CensusBatch, table: str) -> list[str]:
    """Lowercased date items of ``table`` that the rules check (code items are checked against their list)."""
    if table == "pupilonroll":
        return ["dob", "entrydate"]
    return [
        column.lower()
        for column, spec in census_columns(table, batch.term).items()
        if "date" in spec and not (spec.get("category") and census_codes(table, column, batch.term))
    ]


def _parse_dates_once(conn: psycopg.Connection, batch: CensusBatch) -> None:
    """Parse every distinct date text of the batch once into ``pg_temp.census_batch_dates`` (text -> date).

    A census holds few distinct dates (birth dates span about 25 years: under 10,000 values for a million pupils),
    and parsing one in SQL costs several microseconds, so the rules join this lookup (a hash probe) instead of
    parsing each row's dates. ``dob_ncyear`` is the NC year a pupil born on that date is usually in.
    """
    selects = [
        sql.SQL(
            "select distinct btrim(date_value.value) from raw.{table} as source_row "
            "cross join lateral (values {columns}) as date_value (value) where source_row._load_batch_id = %(batch)s"
        ).format(
            table=sql.Identifier(f"census_{table}"),
            columns=sql.SQL(", ").join(sql.SQL("(source_row.{})").format(sql.Identifier(column)) for column in columns),
        )
        for table in batch.files
        if (columns := _date_columns(batch, table))
    ]
    conn.execute("drop table if exists pg_temp.census_batch_dates")
    conn.execute(
        "create temp table census_batch_dates (value text primary key, parsed date, dob_ncyear integer) on commit drop"
    )
    if selects:
        conn.execute(
            sql.SQL(
                """insert into pg_temp.census_batch_dates (value, parsed, dob_ncyear)
                   select value, parsed, extract(year from age(make_date(extract(year from
                       %(reference_date)s::date - interval '8 months')::int, 8, 31), parsed))::int - 4
                   from (select value, raw.census_date(value) as parsed
                         from ({values}) as date_value (value) where value <> '' offset 0) as parsed_value"""
            ).format(values=sql.SQL("\nunion\n").join(selects)),
            {"batch": batch.load_batch_id, "reference_date": batch.reference_date},
        )
    conn.execute("analyze pg_temp.census_batch_dates")


def _with_dates(batch: CensusBatch, table: str, row: str) -> tuple[sql.Composable, sql.Composable]:
    """Select-list items ``<item>__date`` and the left joins to the parsed-date lookup for ``table``'s dates."""
    columns = _date_columns(batch, table)
    items = sql.SQL("").join(
        sql.SQL(", {alias}.parsed as {name}").format(
            alias=sql.Identifier(f"{column}__lookup"), name=sql.Identifier(f"{column}__date")
        )
        for column in columns
    )
    joins = sql.SQL("").join(
        sql.SQL(" left join pg_temp.census_batch_dates as {alias} on {alias}.value = btrim({row}.{column})").format(
            alias=sql.Identifier(f"{column}__lookup"), row=sql.Identifier(row), column=sql.Identifier(column)
        )
        for column in columns
    )
    return items, joins


def _table_source(batch: CensusBatch, table: str) -> sql.Composable:
    items, joins = _with_dates(batch, table, "source_row")
    return sql.SQL(
        "select source_row.*{items} from raw.{table} as source_row{joins} "
        "where source_row._load_batch_id = %(batch)s offset 0"
    ).format(items=items, table=sql.Identifier(f"census_{table}"), joins=joins)


def _number_format(value: sql.Composable, item: str) -> sql.Composable:
    return sql.SQL(
        "case when {value} <> '' and {value} !~ '^[0-9]{{1,6}}$' then "
        "format('%%s %%L is not a whole number of sessions', {item}, {value}) end"
    ).format(value=value, item=sql.Literal(item))


def _pupil_base() -> sql.Composable:
    """Each pupil row with its UPN compacted (as stdnum does), dates parsed (once per distinct text, from
    :func:`_parse_dates_once`) and session counts read."""
    sessions = sql.SQL(", ").join(
        sql.SQL("case when btrim({name}) ~ '^[0-9]{{1,6}}$' then btrim({name})::integer end as {alias}").format(
            name=sql.Identifier(item), alias=sql.Identifier(f"{item}_n")
        )
        for item in _SESSION_ITEMS
    )
    return sql.SQL(
        """select pupil.*, raw.upn_problem(upn_compact) as upn_problem,
                  dob__lookup.parsed as dob_date, dob__lookup.parsed as dob__date, dob__lookup.dob_ncyear,
                  entrydate__lookup.parsed as entry_date, entrydate__lookup.parsed as entrydate__date
           from (
               select *, upper(replace(btrim(upn), ' ', '')) as upn_compact, {sessions}
               from raw.census_pupilonroll
               where _load_batch_id = %(batch)s
               offset 0
           ) as pupil
           left join pg_temp.census_batch_dates as dob__lookup on dob__lookup.value = btrim(pupil.dob)
           left join pg_temp.census_batch_dates as entrydate__lookup on entrydate__lookup.value = btrim(pupil.entrydate)
           offset 0"""
    ).format(sessions=sessions)


def _pupil_checks(batch: CensusBatch) -> list[_Check]:
    checks = [
        _Check(
            "CENSUS-ITEM-MISSING",
            item,
            sql.SQL("case when coalesce(btrim(row_.{}), '') = '' then {} end").format(
                sql.Identifier(item), sql.Literal(f"{item} is blank: every pupil on roll needs it")
            ),
        )
        for item in _REQUIRED_PUPIL_ITEMS
    ]
    checks += [
        _Check(rule, item, sql.SQL(re.sub(r"%(?!\()", "%%", message))) for rule, item, message in _PUPIL_SQL_CHECKS
    ]
    checks += [
        _Check("CENSUS-DATE-FORMAT", item, _date_format(sql.SQL("btrim(row_.{})").format(sql.Identifier(item)), item))
        for item in ("dob", "entrydate")
    ]
    checks += [
        _Check(
            "CENSUS-NUMBER-FORMAT", item, _number_format(sql.SQL("btrim(row_.{})").format(sql.Identifier(item)), item)
        )
        for item in _SESSION_ITEMS
    ]
    return checks


# (rule, item, SQL that is null when the row passes); ``row_`` is a row of _pupil_base().
_PUPIL_SQL_CHECKS = (
    (
        "CENSUS-UPN-FORMAT",
        "upn",
        "case when row_.upn_compact <> '' and row_.upn_problem in ('length', 'format') then format("
        "'UPN %L is not a letter, 11 digits and a final digit or letter (13 characters): check it against the "
        "admission form or the CTF from the last school', row_.upn) end",
    ),
    (
        "CENSUS-UPN-LA",
        "upn",
        "case when row_.upn_problem = 'la' then format('UPN %L: characters 2-4 (%s) are not a Local Authority "
        "number, so the UPN cannot be right', row_.upn, substr(row_.upn_compact, 2, 3)) end",
    ),
    (
        "CENSUS-UPN-CHECK-LETTER",
        "upn",
        "case when row_.upn_problem = 'check' then format('UPN %L has check letter %s but its other characters need "
        "%s: a character was probably mistyped', row_.upn, left(row_.upn_compact, 1), "
        "raw.upn_check_letter(right(row_.upn_compact, 12))) end",
    ),
    (
        "CENSUS-UPN-TEMPORARY",
        "upn",
        "case when row_.upn_problem is null and right(row_.upn_compact, 1) !~ '[0-9]' then format('UPN %L is a "
        "temporary UPN: replace it with the permanent UPN (from the CTF or the previous school)', row_.upn) end",
    ),
    (
        "CENSUS-DOB-FUTURE",
        "dob",
        "case when row_.dob_date > %(reference_date)s::date then format('date of birth %s is after the census "
        "reference date %s', row_.dob_date, %(reference_date)s::date) end",
    ),
    (
        "CENSUS-AGE-OVER-25",
        "dob",
        "case when row_.dob_date <= (%(reference_date)s::date - interval '26 years')::date then format("
        "'date of birth %s makes the pupil older than 25 on the census reference date: check the year', "
        "row_.dob_date) end",
    ),
    (
        "CENSUS-DOB-NCYEAR",
        "ncyearactual",
        "case when upper(btrim(row_.ncyearactual)) in ('R','1','2','3','4','5','6','7','8','9','10','11','12','13') "
        "and row_.dob_date <= %(reference_date)s::date "
        "and row_.dob_date > (%(reference_date)s::date - interval '26 years')::date "
        "and row_.dob_ncyear <> case upper(btrim(row_.ncyearactual)) when 'R' then 0 "
        "else btrim(row_.ncyearactual)::int end "
        "then format('a pupil born %s is usually in NC year %s, not %s: check the date of birth and NC year', "
        "row_.dob_date, case when row_.dob_ncyear = 0 then 'R' else row_.dob_ncyear::text end, "
        "btrim(row_.ncyearactual)) end",
    ),
    (
        "CENSUS-ENTRY-BEFORE-DOB",
        "entrydate",
        "case when row_.entry_date < row_.dob_date then format('entry date %s is before the date of birth %s', "
        "row_.entry_date, row_.dob_date) end",
    ),
    (
        "CENSUS-SESSIONS-EXCEED",
        "termlysessionsauthorised",
        "case when row_.termlysessionsauthorised_n + row_.termlysessionsunauthorised_n > "
        "row_.termlysessionspossible_n then format('%s authorised + %s unauthorised absence sessions is more than "
        "the %s possible sessions', row_.termlysessionsauthorised_n, row_.termlysessionsunauthorised_n, "
        "row_.termlysessionspossible_n) end",
    ),
)


# --- checks across rows and tables ----------------------------------------------------------------------------------


def _duplicate_upns(conn: psycopg.Connection, batch: CensusBatch) -> None:
    """UPNs on one school's roll more than once: duplicate keys are found by hashing, only their rows are listed."""
    conn.execute(
        _FINDINGS_INSERT
        + """select %(batch)s, %(return_type)s, %(file)s, %(table)s, _row_number, 'upn', 'CENSUS-UPN-DUPLICATE',
                 'error', format('UPN %%L is on this school''s roll %%s times (rows %%s): keep one row per pupil',
                 upn, copies, rows)
             from (
                 select pupil._row_number, pupil.upn,
                     count(*) over upn_in_school as copies,
                     string_agg(pupil._row_number::text, ', ') over upn_in_school as rows
                 from raw.census_pupilonroll as pupil
                 join (
                     select coalesce(schoolcensustableid, '') as school_key,
                         upper(replace(btrim(upn), ' ', '')) as upn_key
                     from raw.census_pupilonroll
                     where _load_batch_id = %(batch)s and btrim(upn) <> ''
                     group by 1, 2
                     having count(*) > 1
                 ) as duplicated
                     on coalesce(pupil.schoolcensustableid, '') = duplicated.school_key
                         and upper(replace(btrim(pupil.upn), ' ', '')) = duplicated.upn_key
                 where pupil._load_batch_id = %(batch)s
                 window upn_in_school as (partition by duplicated.school_key, duplicated.upn_key)
             ) as pupil
             where copies > 1""",
        _params(batch, "pupilonroll"),
    )


def _address_table(batch: CensusBatch) -> str | None:
    return next((table for table in ("addressesonroll", "addresses") if table in batch.files), None)


def _missing_addresses(conn: psycopg.Connection, batch: CensusBatch) -> None:
    address_table = _address_table(batch)
    if address_table is None:
        return
    conn.execute(
        sql.SQL(_FINDINGS_INSERT)
        + sql.SQL(
            """select %(batch)s, %(return_type)s, %(file)s, %(table)s, pupil._row_number, 'upn',
                   'CENSUS-ADDRESS-MISSING', 'query',
                   format('pupil %%s %%s (UPN %%L) has no row in %%s: add the home address',
                       pupil.forename, pupil.surname, pupil.upn, {address})
               from raw.census_pupilonroll as pupil
               where pupil._load_batch_id = %(batch)s
                   and not exists (
                       select from raw.{table} as address
                       where address._load_batch_id = %(batch)s
                           and address.pupilonrolltableid = pupil.pupilonrolltableid
                   )"""
        ).format(address=sql.Literal(address_table), table=sql.Identifier(f"census_{address_table}")),
        _params(batch, "pupilonroll"),
    )


def _children(batch: CensusBatch, parent_column: str) -> list[str]:
    """Tables of the batch whose rows point at a parent row through ``parent_column``."""
    return [
        table
        for table in batch.files
        if parent_column in {name.lower() for name in census_columns(table, batch.term)}
        and table != parent_column.removesuffix("tableid")
    ]


def _unknown_parents(conn: psycopg.Connection, batch: CensusBatch) -> None:
    """Rows pointing at a pupil (or school return) that the extract does not hold."""
    for parent, column, rule in (
        ("pupilonroll", "pupilonrolltableid", "CENSUS-PUPIL-UNKNOWN"),
        ("schoolcensus", "schoolcensustableid", "CENSUS-SCHOOL-UNKNOWN"),
    ):
        if parent not in batch.files:
            continue
        for table in _children(batch, column):
            conn.execute(
                sql.SQL(_FINDINGS_INSERT)
                + sql.SQL(
                    """select %(batch)s, %(return_type)s, %(file)s, %(table)s, child._row_number, {item}, {rule},
                           'error', format('%%s %%L is not in %%s: this row belongs to no pupil or school of '
                           'the extract', {item}, child.{column}, {parent})
                       from raw.{child_table} as child
                       where child._load_batch_id = %(batch)s
                           and not exists (
                               select from raw.{parent_table} as parent
                               where parent._load_batch_id = %(batch)s and parent.{column} = child.{column}
                           )"""
                ).format(
                    item=sql.Literal(column),
                    rule=sql.Literal(rule),
                    parent=sql.Literal(f"{parent}.csv"),
                    column=sql.Identifier(column),
                    child_table=sql.Identifier(f"census_{table}"),
                    parent_table=sql.Identifier(f"census_{parent}"),
                ),
                _params(batch, table),
            )


def _cascade_rejected_pupils(conn: psycopg.Connection, batch: CensusBatch) -> None:
    """Reject every row hanging off a rejected pupil, so that staging never sees an orphan."""
    for table in _children(batch, "pupilonrolltableid"):
        conn.execute(
            sql.SQL(_FINDINGS_INSERT)
            + sql.SQL(
                """select %(batch)s, %(return_type)s, %(file)s, %(table)s, child._row_number, 'pupilonrolltableid',
                       'CENSUS-PARENT-REJECTED', 'error',
                       format('pupilonroll row %%s, the pupil this row belongs to, was rejected', pupil._row_number)
                   from raw.{child_table} as child
                   join raw.census_pupilonroll as pupil
                       on pupil._load_batch_id = %(batch)s and pupil.pupilonrolltableid = child.pupilonrolltableid
                   where child._load_batch_id = %(batch)s
                       and pupil._row_number in (
                           select row_number from raw.validation_findings
                           where load_batch_id = %(batch)s and table_name = 'pupilonroll' and severity = 'error'
                       )"""
            ).format(child_table=sql.Identifier(f"census_{table}")),
            _params(batch, table),
        )
