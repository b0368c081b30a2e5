"""The shared machinery of the CSV returns (workforce, NCMP, EYFS, opt-outs, post-16, activity).

A return is declared as data, a :class:`CsvReturn` of one or more :class:`CsvTable` s, and loaded by
:func:`load_csv_return` the way the census loads: file-level checks first (a failure quarantines the whole file set),
then one transaction under an advisory lock that registers a load batch, skips content loaded before (SHA-256 of the
bytes) and streams every row into its raw table with COPY while each row is validated.

Row-level findings go to ``raw.validation_findings``. A row with an **error** finding is still loaded, with
``_rejected = true``: it is kept for the audit trail and for the school's correction, and downstream models must
filter on ``not _rejected``. A row with only **query** findings loads with ``_rejected = false`` and is flagged.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql
from stdnum.gb import upn as upn_check

from pupilshare.dates import parse_census_date
from pupilshare.db import is_server_fault
from pupilshare.findings import Finding, Severity
from pupilshare.ingest.inbox import ReturnRejectedError
from pupilshare.ingest.raw_schema import record_findings

log = logging.getLogger(__name__)

RAW_SCHEMA = "raw"
_CHUNK = 1 << 20
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class Issue:
    """A row-level problem found by a validator: becomes a :class:`Finding` with the file, table and row added."""

    rule_id: str
    severity: Severity
    item: str | None
    message: str


@dataclass
class LoadContext:
    """What validators may consult: the latest loaded census (pupils by UPN, schools by LA+estab) and per-load state.

    ``pupils`` maps UPN to ``(date of birth, NC year, school URN)``; ``schools`` holds ``(lea, estab)`` pairs and
    ``urns`` the census URNs. All are empty when no census has been loaded: the checks that need them are skipped.
    """

    pupils: dict[str, tuple[dt.date | None, str, str]] = field(default_factory=dict)
    schools: set[tuple[str, str]] = field(default_factory=set)
    urns: set[str] = field(default_factory=set)
    state: dict[str, object] = field(default_factory=dict)

    @property
    def has_census(self) -> bool:
        return bool(self.pupils or self.schools)


Validator = Callable[[dict[str, str], LoadContext], list[Issue]]
#: A step run inside the load's transaction once every row is copied: ``(conn, load_batch_id, file name)`` -> further
#: findings. It writes tables derived from the rows just loaded (NCMP: BMI SDS and centiles), so a failure in it
#: rolls the whole file set back and nothing is left half-loaded.
DeriveStep = Callable[[psycopg.Connection, int, str], list[Finding]]


@dataclass(frozen=True)
class CsvTable:
    """One CSV file of a return and the raw table it loads into (grain documented in docs/returns.md).

    ``columns`` is the full header in order (extra columns are refused); ``required`` must be present in the header;
    ``key`` are the columns that identify a row (a repeat is ``ROW-DUPLICATE``; empty = the whole row).
    """

    file_stem: str
    raw_table: str
    columns: tuple[str, ...]
    required: frozenset[str]
    validate: Validator
    key: tuple[str, ...] = ()


@dataclass(frozen=True)
class CsvReturn:
    """A return type: single-file (the inbox entry is one ``.csv``) or a folder of ``<file_stem>.csv`` files."""

    return_type: str
    tables: tuple[CsvTable, ...]
    folder: bool = False
    derive: DeriveStep | None = None


@dataclass(frozen=True)
class _CsvFile:
    table: CsvTable
    path: Path
    columns: tuple[str, ...]
    display: str


# --- schema ---------------------------------------------------------------------------------------------------------


def ensure_csv_tables(conn: psycopg.Connection, spec: CsvReturn) -> None:
    """Create the raw tables of ``spec`` (idempotent): provenance columns, ``_rejected``, then every column as text."""
    conn.execute("select pg_advisory_xact_lock(hashtext('pupilshare.raw_schema'))")
    for table in spec.tables:
        columns = sql.SQL(",\n").join(sql.SQL("{} text").format(sql.Identifier(name)) for name in table.columns)
        conn.execute(
            sql.SQL(
                """
                create table if not exists {schema}.{table} (
                    _load_batch_id bigint not null references raw.load_batches (load_batch_id),
                    _row_number bigint not null,
                    _rejected boolean not null default false,
                    {columns}
                );
                create index if not exists {index} on {schema}.{table} (_load_batch_id);
                """
            ).format(
                schema=sql.Identifier(RAW_SCHEMA),
                table=sql.Identifier(table.raw_table),
                columns=columns,
                index=sql.Identifier(f"{table.raw_table}__batch"),
            )
        )
        if "upn" in table.columns:
            # subject access (pupilshare.sar) finds a pupil's rows by UPN in under a second at county scale
            conn.execute(
                sql.SQL("create index if not exists {index} on {schema}.{table} (upn)").format(
                    index=sql.Identifier(f"{table.raw_table}__upn"),
                    schema=sql.Identifier(RAW_SCHEMA),
                    table=sql.Identifier(table.raw_table),
                )
            )


# --- loading --------------------------------------------------------------------------------------------------------


def load_csv_return(conn: psycopg.Connection, entry: Path, *, spec: CsvReturn, max_file_bytes: int) -> dict | None:
    """Load one file set of ``spec`` in a single transaction (see the module docstring for the rules).

    Returns ``{"source", "load_batch_id", "rows": {raw table: n}, "findings": {"error": n, "query": n}}`` or None
    when the same bytes were loaded before. Raises :class:`ReturnRejectedError` for any file-level problem.
    """
    files = _check_file_set(entry, spec, max_file_bytes)
    content_sha256 = _content_hash(files)
    with conn.transaction():
        ensure_csv_tables(conn, spec)
    findings: list[Finding] = []
    try:
        with conn.transaction():
            conn.execute("select pg_advisory_xact_lock(hashtext(%s))", (f"pupilshare.ingest.{spec.return_type}",))
            if already_loaded(conn, spec.return_type, content_sha256):
                return None
            batch_id = register_batch(conn, spec.return_type, entry.name, content_sha256)
            context = read_census_context(conn)
            rows = {
                csv_file.table.raw_table: _copy_rows(conn, csv_file, batch_id, context, findings) for csv_file in files
            }
            if spec.derive is not None:
                findings += spec.derive(conn, batch_id, entry.name)
            record_findings(conn, return_type=spec.return_type, load_batch_id=batch_id, findings=findings)
            finish_batch(conn, batch_id, rows)
    except psycopg.Error as error:
        if is_server_fault(error):
            raise  # the server or connection failed, not the file: the task retries, nothing is quarantined
        raise ReturnRejectedError(
            [
                Finding(
                    entry.name,
                    "FILE-UNREADABLE",
                    "error",
                    f"PostgreSQL refused the file set: {error.diag.message_primary or type(error).__name__}",
                )
            ]
        ) from error
    counts = {
        "error": sum(f.severity == "error" for f in findings),
        "query": sum(f.severity == "query" for f in findings),
    }
    log.info("loaded %s %s as batch %s: %s, findings %s", spec.return_type, entry.name, batch_id, rows, counts)
    return {"source": entry.name, "load_batch_id": batch_id, "rows": rows, "findings": counts}


def already_loaded(conn: psycopg.Connection, return_type: str, content_sha256: str) -> bool:
    """Whether a file set with these exact bytes was loaded before for this return type."""
    found = conn.execute(
        "select 1 from raw.load_batches where return_type = %s and content_sha256 = %s",
        (return_type, content_sha256),
    ).fetchone()
    return found is not None


def register_batch(conn: psycopg.Connection, return_type: str, source_name: str, content_sha256: str) -> int:
    """Insert the load batch row (status ``loaded``) and return its id."""
    return conn.execute(
        """insert into raw.load_batches (return_type, source_name, content_sha256, status)
           values (%s, %s, %s, 'loaded') returning load_batch_id""",
        (return_type, source_name, content_sha256),
    ).fetchone()[0]


def finish_batch(conn: psycopg.Connection, batch_id: int, rows: dict[str, int]) -> None:
    conn.execute(
        "update raw.load_batches set row_counts = %s::jsonb where load_batch_id = %s",
        (json.dumps(rows, sort_keys=True), batch_id),
    )


def read_census_context(conn: psycopg.Connection, *, with_pupils: bool = True) -> LoadContext:
    """Pupils (unless ``with_pupils`` is false) and schools of every census batch still ``loaded`` (not superseded);
    empty if there is none."""
    context = LoadContext()
    exists = conn.execute("select to_regclass('raw.census_pupilonroll'), to_regclass('raw.census_schoolcensus')")
    pupils_table, schools_table = exists.fetchone()
    if not (pupils_table and schools_table):
        return context
    loaded = "select load_batch_id from raw.load_batches where return_type = 'census' and status = 'loaded'"
    for lea, estab, urn in conn.execute(
        f"select lea, estab, urn from raw.census_schoolcensus where _load_batch_id in ({loaded})"
    ):
        context.schools.add(((lea or "").strip(), (estab or "").strip()))
        context.urns.add((urn or "").strip())
    if not with_pupils:
        return context
    urn_by_census = dict(
        conn.execute(
            f"""select schoolcensustableid, urn from raw.census_schoolcensus
                where _load_batch_id in ({loaded})"""
        ).fetchall()
    )
    for upn, dob, nc_year, census_id in conn.execute(
        f"""select upn, dob, ncyearactual, schoolcensustableid from raw.census_pupilonroll
            where _load_batch_id in ({loaded})"""
    ):
        context.pupils[(upn or "").strip()] = (_census_date(dob), (nc_year or "").strip(), urn_by_census.get(census_id))
    return context


def _census_date(text: str | None) -> dt.date | None:
    try:
        return parse_census_date(text or "")
    except ValueError:
        return None


# --- file-level checks ----------------------------------------------------------------------------------------------


def _check_file_set(entry: Path, spec: CsvReturn, max_file_bytes: int) -> list[_CsvFile]:
    if spec.folder:
        return _check_folder(entry, spec, max_file_bytes)
    if not entry.is_file() or entry.suffix.lower() != ".csv":
        raise ReturnRejectedError(
            [Finding(entry.name, "FILE-NOT-CSV", "error", f"inbox/{spec.return_type} holds single .csv files")]
        )
    csv_file, findings = _check_file(spec.tables[0], entry, entry.name, max_file_bytes)
    if findings or csv_file is None:
        raise ReturnRejectedError(findings)
    return [csv_file]


def _check_folder(entry: Path, spec: CsvReturn, max_file_bytes: int) -> list[_CsvFile]:
    stems = ", ".join(f"{table.file_stem}.csv" for table in spec.tables)
    if not entry.is_dir():
        raise ReturnRejectedError(
            [Finding(entry.name, "FILE-NOT-A-SET", "error", f"inbox/{spec.return_type} holds folders with {stems}")]
        )
    by_stem = {table.file_stem: table for table in spec.tables}
    findings: list[Finding] = []
    present: dict[str, Path] = {}
    for path in sorted(entry.iterdir()):
        if path.is_symlink() or path.suffix.lower() != ".csv" or path.stem.lower() not in by_stem:
            findings.append(
                Finding(f"{entry.name}/{path.name}", "FILE-UNKNOWN-TABLE", "error", f"not part of this return: {stems}")
            )
        else:
            present[path.stem.lower()] = path
    files = []
    for table in spec.tables:
        if table.file_stem not in present:
            display = f"{entry.name}/{table.file_stem}.csv"
            findings.append(Finding(display, "FILE-MISSING-TABLE", "error", f"missing; the set needs {stems}"))
            continue
        path = present[table.file_stem]
        csv_file, file_findings = _check_file(table, path, f"{entry.name}/{path.name}", max_file_bytes)
        findings += file_findings
        if csv_file:
            files.append(csv_file)
    if findings:
        raise ReturnRejectedError(findings)
    return files


def _check_file(table: CsvTable, path: Path, display: str, max_file_bytes: int) -> tuple[_CsvFile | None, list]:
    def refuse(rule: str, message: str) -> tuple[None, list[Finding]]:
        return None, [Finding(display, rule, "error", message, table=table.raw_table)]

    size = path.stat().st_size
    if size > max_file_bytes:
        return refuse("FILE-TOO-LARGE", f"{size} bytes is over the limit of {max_file_bytes} bytes")
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            header = next(csv.reader(handle), None)
    except (UnicodeDecodeError, csv.Error) as error:
        return refuse("FILE-ENCODING", f"the header row cannot be read as UTF-8 CSV ({error}); save the file as UTF-8")
    if not header:
        return refuse("FILE-EMPTY", "the file is empty: no header row")
    columns = tuple(name.strip().lower() for name in header)
    findings = []
    unknown = [name for name in columns if name not in table.columns]
    if unknown:
        findings.append(
            Finding(
                display,
                "FILE-UNKNOWN-COLUMN",
                "error",
                f"columns not in the layout: {', '.join(unknown)} (see docs/returns.md)",
                table=table.raw_table,
            )
        )
    duplicated = sorted({name for name in columns if columns.count(name) > 1})
    if duplicated:
        findings.append(
            Finding(
                display,
                "FILE-DUPLICATE-COLUMN",
                "error",
                f"columns named twice: {', '.join(duplicated)}",
                table=table.raw_table,
            )
        )
    missing = sorted(table.required - set(columns))
    if missing:
        findings.append(
            Finding(
                display,
                "FILE-MISSING-COLUMN",
                "error",
                f"required columns missing: {', '.join(missing)}",
                table=table.raw_table,
            )
        )
    return (None if findings else _CsvFile(table, path, columns, display)), findings


def _content_hash(files: list[_CsvFile]) -> str:
    digest = hashlib.sha256()
    for csv_file in sorted(files, key=lambda item: item.table.file_stem):
        digest.update(csv_file.table.file_stem.encode() + b"\0")
        with csv_file.path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


# --- rows -----------------------------------------------------------------------------------------------------------


def _copy_rows(
    conn: psycopg.Connection, csv_file: _CsvFile, batch_id: int, context: LoadContext, findings: list[Finding]
) -> int:
    """Validate and COPY every data row of one file; returns the number of rows loaded (rejected ones included)."""
    table = csv_file.table
    statement = sql.SQL("copy {}.{} ({}) from stdin").format(
        sql.Identifier(RAW_SCHEMA),
        sql.Identifier(table.raw_table),
        sql.SQL(", ").join(
            sql.Identifier(name) for name in ("_load_batch_id", "_row_number", "_rejected", *table.columns)
        ),
    )
    seen: set[bytes] = set()
    count = 0
    with conn.cursor() as cursor, cursor.copy(statement) as copy:
        for number, row in _read_rows(csv_file):
            issues = table.validate(row, context)
            key = hashlib.blake2b(
                "\x1f".join(row[name] for name in (table.key or table.columns)).encode(), digest_size=16
            ).digest()
            if key in seen:
                issues.append(_duplicate_issue(table))
            seen.add(key)
            rejected = any(issue.severity == "error" for issue in issues)
            findings += [
                Finding(
                    csv_file.display, issue.rule_id, issue.severity, issue.message, table.raw_table, number, issue.item
                )
                for issue in issues
            ]
            copy.write_row((batch_id, number, rejected, *(row[name] or None for name in table.columns)))
            count = number
    return count


def _duplicate_issue(table: CsvTable) -> Issue:
    what = f"the same {', '.join(table.key)}" if table.key else "the same values in every column"
    return Issue(
        "ROW-DUPLICATE",
        "error",
        table.key[0] if table.key else None,
        f"an earlier row has {what}; this repeat is rejected, the first one stands",
    )


def _read_rows(csv_file: _CsvFile) -> Iterator[tuple[int, dict[str, str]]]:
    """Data rows as ``(1-based number, {column: stripped value})``; every layout column present ('' if absent)."""
    blank = dict.fromkeys(csv_file.table.columns, "")
    width = len(csv_file.columns)
    number = 0
    try:
        with csv_file.path.open("rb") as raw, io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            next(reader, None)
            for number, values in enumerate(reader, 1):  # noqa: B007 - number is reported on failure
                if len(values) != width:
                    if not any(values):
                        continue
                    raise _file_error(
                        csv_file,
                        number,
                        "FILE-RAGGED-ROW",
                        f"has {len(values)} values but the header has {width} columns",
                    )
                yield (
                    number,
                    blank | {name: value.strip() for name, value in zip(csv_file.columns, values, strict=True)},
                )
    except UnicodeDecodeError as error:
        raise _file_error(
            csv_file, number + 1, "FILE-ENCODING", f"is not UTF-8 ({error.reason}); save the whole file as UTF-8"
        ) from None
    except csv.Error as error:
        raise _file_error(csv_file, number + 1, "FILE-UNREADABLE-ROW", f"cannot be read as CSV ({error})") from None


def _file_error(csv_file: _CsvFile, row: int, rule: str, message: str) -> ReturnRejectedError:
    return ReturnRejectedError(
        [Finding(csv_file.display, rule, "error", f"data row {row} {message}", csv_file.table.raw_table, row)]
    )


# --- validators shared by several returns ---------------------------------------------------------------------------


def check_required(row: dict[str, str], columns: tuple[str, ...]) -> list[Issue]:
    """``ROW-BLANK`` for each listed column left blank."""
    return [
        Issue("ROW-BLANK", "error", name, f"{name} is blank; it is required on every row")
        for name in columns
        if not row[name]
    ]


def check_upn(row: dict[str, str], context: LoadContext, column: str = "upn", *, required: bool = True) -> list[Issue]:
    """``ROW-UPN-INVALID`` (error) for a UPN whose check letter or format is wrong; ``ROW-UPN-NOT-IN-CENSUS`` (query)
    for a valid UPN that no loaded census holds."""
    value = row[column]
    if not value:
        return [Issue("ROW-BLANK", "error", column, f"{column} is blank")] if required else []
    if not upn_check.is_valid(value):
        return [
            Issue(
                "ROW-UPN-INVALID",
                "error",
                column,
                f"{value!r} is not a valid UPN (13 characters, check letter first); correct it from the school's MIS",
            )
        ]
    if context.pupils and value.upper() not in context.pupils:
        return [
            Issue(
                "ROW-UPN-NOT-IN-CENSUS",
                "query",
                column,
                f"UPN {value} is not on roll in the loaded census; check the UPN or the pupil's school",
            )
        ]
    return []


def parse_date(row: dict[str, str], column: str, issues: list[Issue], *, required: bool = True) -> dt.date | None:
    """The ISO date in ``column``; appends ``ROW-DATE-INVALID`` (error) when it is not one (or blank when required)."""
    value = row[column]
    if not value and not required:
        return None
    if _ISO_DATE.match(value):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    issues.append(Issue("ROW-DATE-INVALID", "error", column, f"{value!r} is not a date written YYYY-MM-DD"))
    return None


def check_code(row: dict[str, str], column: str, codes: frozenset[str] | set[str], rule_id: str) -> list[Issue]:
    """``rule_id`` (error) when ``column`` holds a value outside ``codes``."""
    if row[column] in codes:
        return []
    return [Issue(rule_id, "error", column, f"{row[column]!r} is not one of {', '.join(sorted(codes))}")]
