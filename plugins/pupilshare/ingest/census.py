"""Load School Census LA extracts (a folder of CSVs named after the census tables) into ``raw``.

An extract is a folder ``inbox/census/<name>/`` holding ``<table>.csv`` files. It loads in one transaction under one
load batch; a later extract for the same census term and year supersedes the earlier one (history kept).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from pupilshare.findings import Finding
from pupilshare.ingest.inbox import ReturnRejectedError, register_return
from pupilshare.ingest.raw_schema import (
    RAW_SCHEMA,
    census_raw_columns,
    census_required_columns,
    raw_table_name,
)

log = logging.getLogger(__name__)

RETURN_TYPE = "census"
REQUIRED_TABLES = ("school", "schoolcensus", "pupilonroll", "addressesonroll")
_COPY_CHUNK = 1 << 20


@dataclass(frozen=True)
class _CensusFile:
    table: str
    path: Path
    columns: tuple[str, ...]


def load_census_extract(conn: psycopg.Connection, extract: Path, *, max_file_bytes: int = 2 * 1024**3) -> dict | None:
    """Load one extract folder in a single transaction.

    Returns ``{"source", "load_batch_id", "rows": {table: n}}``, or None when the same content was loaded before.
    Raises :class:`ReturnRejectedError` with findings when a file-level check or the COPY itself fails; the
    transaction is then rolled back and nothing from the extract remains.
    """
    if not extract.is_dir():
        raise ReturnRejectedError(
            [
                Finding(
                    extract.name,
                    "FILE-NOT-AN-EXTRACT",
                    "error",
                    "inbox/census holds one folder per census extract, each with <table>.csv files; "
                    "put loose files in a folder",
                )
            ]
        )
    files = _check_extract(extract, max_file_bytes)
    content_sha256 = _content_hash(files)
    term, year, reference_date = _census_header(files)
    try:
        with conn.transaction():
            conn.execute("select pg_advisory_xact_lock(hashtext('pupilshare.ingest.census'))")
            if _already_loaded(conn, content_sha256):
                return None
            batch_id = _register_batch(conn, extract.name, content_sha256, term, year, reference_date)
            rows = {census_file.table: _copy_file(conn, census_file) for census_file in files}
            conn.execute(
                "update raw.load_batches set row_counts = %s::jsonb where load_batch_id = %s",
                (_json(rows), batch_id),
            )
            _supersede_earlier(conn, batch_id, term, year)
    except psycopg.Error as error:
        raise ReturnRejectedError([_copy_finding(extract, error)]) from error
    log.info("loaded census extract %s as batch %s: %s", extract.name, batch_id, rows)
    return {"source": extract.name, "load_batch_id": batch_id, "rows": rows}


def _check_extract(extract: Path, max_file_bytes: int) -> list[_CensusFile]:
    findings: list[Finding] = []
    known = census_raw_columns()
    files: list[_CensusFile] = []
    present = {path.stem.lower(): path for path in extract.iterdir() if path.suffix.lower() == ".csv"}
    for path in sorted(extract.iterdir()):
        if path.suffix.lower() != ".csv" or path.stem.lower() not in known or path.is_symlink():
            findings.append(
                Finding(
                    path.name,
                    "FILE-UNKNOWN-TABLE",
                    "error",
                    f"not a census table file: expected <table>.csv with a table of the census schema, "
                    f"e.g. {', '.join(REQUIRED_TABLES)}",
                )
            )
    for table in REQUIRED_TABLES:
        if table not in present:
            findings.append(
                Finding(
                    f"{table}.csv",
                    "FILE-MISSING-TABLE",
                    "error",
                    f"the extract has no {table}.csv; an LA census extract must include {', '.join(REQUIRED_TABLES)}",
                    table=table,
                )
            )
    for table, path in sorted(present.items()):
        if table in known and not path.is_symlink():
            census_file, file_findings = _check_file(table, path, max_file_bytes)
            findings += file_findings
            if census_file:
                files.append(census_file)
    if findings:
        raise ReturnRejectedError(findings)
    return files


def _check_file(table: str, path: Path, max_file_bytes: int) -> tuple[_CensusFile | None, list[Finding]]:
    size = path.stat().st_size
    if size > max_file_bytes:
        return None, [
            Finding(
                path.name,
                "FILE-TOO-LARGE",
                "error",
                f"{size} bytes is over the limit of {max_file_bytes} (PUPILSHARE_MAX_INBOX_FILE_BYTES)",
                table=table,
            )
        ]
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            header = next(csv.reader(handle), None)
    except UnicodeDecodeError as error:
        return None, [
            Finding(
                path.name,
                "FILE-ENCODING",
                "error",
                f"the header is not UTF-8 ({error.reason} at byte {error.start}); save the file as UTF-8",
                table=table,
            )
        ]
    if not header:
        return None, [Finding(path.name, "FILE-EMPTY", "error", "the file is empty: no header row", table=table)]
    columns = tuple(name.strip().lower() for name in header)
    findings = []
    known = set(census_raw_columns()[table])
    unknown = [name for name in columns if name not in known]
    if unknown:
        findings.append(
            Finding(
                path.name,
                "FILE-UNKNOWN-COLUMN",
                "error",
                f"columns not in the census {table} table: {', '.join(unknown)}",
                table=table,
            )
        )
    duplicated = sorted({name for name in columns if columns.count(name) > 1})
    if duplicated:
        findings.append(
            Finding(
                path.name,
                "FILE-DUPLICATE-COLUMN",
                "error",
                f"columns named twice: {', '.join(duplicated)}",
                table=table,
            )
        )
    missing = sorted(census_required_columns(table) - set(columns))
    if missing:
        findings.append(
            Finding(
                path.name,
                "FILE-MISSING-COLUMN",
                "error",
                f"required columns missing: {', '.join(missing)}",
                table=table,
            )
        )
    return (None if findings else _CensusFile(table, path, columns)), findings


def _content_hash(files: list[_CensusFile]) -> str:
    digest = hashlib.sha256()
    for census_file in sorted(files, key=lambda item: item.table):
        digest.update(census_file.table.encode() + b"\0")
        with census_file.path.open("rb") as handle:
            while chunk := handle.read(_COPY_CHUNK):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


def _census_header(files: list[_CensusFile]) -> tuple[str | None, int | None, dt.date | None]:
    """Term, year and reference date from the first ``schoolcensus`` row (all returns of an extract share them)."""
    path = next(item.path for item in files if item.table == "schoolcensus")
    with path.open(encoding="utf-8-sig", newline="") as handle:
        first = next(csv.DictReader(handle), None)
    if first is None:
        raise ReturnRejectedError(
            [
                Finding(
                    path.name,
                    "FILE-NO-ROWS",
                    "error",
                    "schoolcensus.csv has no rows: which census is this?",
                    table="schoolcensus",
                )
            ]
        )
    row = {key.strip().lower(): (value or "").strip() for key, value in first.items() if key}
    year = int(row["year"]) if row.get("year", "").isdigit() else None
    reference_date = None
    if row.get("referencedate"):
        try:
            reference_date = dt.datetime.strptime(row["referencedate"], "%Y-%b-%d %H:%M:%S").date()
        except ValueError:
            raise ReturnRejectedError(
                [
                    Finding(
                        path.name,
                        "FILE-BAD-REFERENCE-DATE",
                        "error",
                        f"referencedate {row['referencedate']!r} is not like 2026-Oct-01 00:00:00",
                        table="schoolcensus",
                        row=1,
                        item="referencedate",
                    )
                ]
            ) from None
    return row.get("term") or None, year, reference_date


def _already_loaded(conn: psycopg.Connection, content_sha256: str) -> bool:
    found = conn.execute(
        "select 1 from raw.load_batches where return_type = %s and content_sha256 = %s",
        (RETURN_TYPE, content_sha256),
    ).fetchone()
    return found is not None


def _register_batch(conn, source_name, content_sha256, term, year, reference_date) -> int:
    batch_id = conn.execute(
        """insert into raw.load_batches
               (return_type, source_name, content_sha256, status, census_term, census_year, reference_date)
           values (%s, %s, %s, 'loaded', %s, %s, %s) returning load_batch_id""",
        (RETURN_TYPE, source_name, content_sha256, term, year, reference_date),
    ).fetchone()[0]
    conn.execute("select set_config('pupilshare.load_batch_id', %s, true)", (str(batch_id),))
    return batch_id


def _copy_file(conn: psycopg.Connection, census_file: _CensusFile) -> int:
    """COPY one CSV straight from disk; ``_row_number`` restarts at 1 for the file."""
    name = raw_table_name(census_file.table)
    conn.execute("select setval(%s, 1, false)", (f"{RAW_SCHEMA}.{name}__row_seq",))
    statement = sql.SQL("copy {}.{} ({}) from stdin with (format csv, header true, encoding 'UTF8')").format(
        sql.Identifier(RAW_SCHEMA),
        sql.Identifier(name),
        sql.SQL(", ").join(sql.Identifier(column) for column in census_file.columns),
    )
    with conn.cursor() as cursor:
        with cursor.copy(statement) as copy, census_file.path.open("rb") as handle:
            _skip_bom(handle)
            while chunk := handle.read(_COPY_CHUNK):
                copy.write(chunk)
        return cursor.rowcount


def _skip_bom(handle: io.BufferedReader) -> None:
    if handle.peek(3)[:3] == b"\xef\xbb\xbf":
        handle.read(3)


def _supersede_earlier(conn: psycopg.Connection, batch_id: int, term: str | None, year: int | None) -> None:
    conn.execute(
        """update raw.load_batches set status = 'superseded'
           where return_type = %s and census_term is not distinct from %s and census_year is not distinct from %s
             and load_batch_id < %s and status = 'loaded'""",
        (RETURN_TYPE, term, year, batch_id),
    )


def _copy_finding(extract: Path, error: psycopg.Error) -> Finding:
    diag = error.diag
    context = diag.context or ""
    match = re.search(r"COPY census_(\w+), line (\d+)", context)
    table, row = (match.group(1), int(match.group(2)) - 1) if match else (None, None)
    message = (diag.message_primary or str(error)).strip()
    file = f"{extract.name}/{table}.csv" if table else extract.name
    return Finding(
        file,
        "FILE-UNREADABLE-ROW",
        "error",
        f"PostgreSQL could not read this row: {message}. Check the row has one value per header column, "
        "quotes are balanced and the file is UTF-8",
        table=table,
        row=row,
    )


def _json(value: object) -> str:
    import json

    return json.dumps(value, sort_keys=True)


register_return(RETURN_TYPE, load_census_extract, description="School Census LA extract: a folder of <table>.csv")
