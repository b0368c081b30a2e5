"""Load School Census LA extracts (a folder or a .zip of CSVs named after the census tables) into ``raw``.

An extract is ``inbox/census/<name>/`` holding ``<table>.csv`` files, or ``inbox/census/<name>.zip`` holding the
same files at its top level. The term comes from ``schoolcensus.term`` (``AUT``, ``SPR``, ``SUM``); which tables are
required and which columns exist follow the census schema of that term.

One extract loads in one transaction under one load batch: file-level checks first (nothing loads if one fails),
then COPY of every file (zip members are streamed, never extracted to disk), then the row-level rules of
:mod:`pupilshare.ingest.census_rules` (errors reject rows, queries flag them).

Supersession: an LA extract covers many schools and a resubmission may cover one. Each school return is keyed by
(``laestab`` = LA number and establishment number, term, year). The return from the latest batch that holds a key
is current; the view ``raw.current_census_returns`` lists the current (batch, school) pairs, history stays in
``raw.census_school_returns``. A batch none of whose returns is current any more gets status ``superseded``.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import logging
import re
import stat
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import psycopg
from psycopg import sql

from pupilshare.db import is_server_fault
from pupilshare.findings import Finding
from pupilshare.ingest.census_rules import CensusBatch, validate_census_batch
from pupilshare.ingest.inbox import ReturnRejectedError, register_return
from pupilshare.ingest.raw_schema import RAW_SCHEMA, census_raw_columns, raw_table_name
from pupilshare.reference import CensusTerm, census_columns, census_tables

log = logging.getLogger(__name__)

RETURN_TYPE = "census"
#: ``schoolcensus.term`` code -> the schema's term.
TERM_CODES: dict[str, CensusTerm] = {"AUT": "Autumn", "SPR": "Spring", "SUM": "Summer"}
#: Tables every extract of a term must hold.
REQUIRED_TABLES: dict[CensusTerm, tuple[str, ...]] = {
    "Autumn": ("school", "schoolcensus", "pupilonroll", "addressesonroll"),
    "Spring": ("school", "schoolcensus", "pupilonroll", "addresses"),
    "Summer": ("school", "schoolcensus", "pupilonroll", "addresses"),
}
#: Zip limits: the sum of uncompressed member sizes, and the uncompressed/compressed ratio of any one member.
#: CSVs with many blank columns compress about 10-40 times; a zip bomb compresses hundreds or thousands of times.
MAX_EXTRACT_BYTES = 8 * 1024**3
MAX_COMPRESSION_RATIO = 200
_COPY_CHUNK = 1 << 20
_MEMBER_NAME = re.compile(r"^[A-Za-z0-9_]{1,64}\.csv$", re.IGNORECASE)
_BOM = b"\xef\xbb\xbf"


class _DuplicateContentError(Exception):
    """The extract's content was loaded before: roll back and report a duplicate."""


@dataclass
class _Member:
    """One ``<table>.csv`` of an extract, from a folder or a zip; ``open`` gives a binary stream."""

    table: str
    name: str
    open: Callable[[], IO[bytes]]
    columns: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class _Header:
    term: CensusTerm
    year: int
    reference_date: dt.date
    returns: list[tuple[str, str]]  # (schoolcensustableid, laestab)


def load_census_extract(
    conn: psycopg.Connection,
    extract: Path,
    *,
    max_file_bytes: int = 2 * 1024**3,
    max_extract_bytes: int = MAX_EXTRACT_BYTES,
    max_compression_ratio: float = MAX_COMPRESSION_RATIO,
) -> dict | None:
    """Load one extract (folder or .zip) in a single transaction, validating its rows.

    Returns ``{"source", "load_batch_id", "rows": {table: n}, "term", "findings": {"error": n, "query": n},
    "seconds": {"copy": s, "validate": s}}``, or
    None when the same content was loaded before. Raises :class:`ReturnRejectedError` with findings when a
    file-level check or the COPY itself fails; the transaction is then rolled back and nothing remains.
    """
    with _open_extract(extract, max_file_bytes, max_extract_bytes, max_compression_ratio) as members:
        header = _census_header(extract, members)
        _check_members(extract, members, header.term)
        try:
            with conn.transaction():
                result = _load(conn, extract, members, header)
        except _DuplicateContentError:
            return None
        except psycopg.Error as error:
            if is_server_fault(error):
                raise  # the server or connection failed, not the file: the task retries, nothing is quarantined
            raise ReturnRejectedError([_copy_finding(extract, error)]) from error
    log.info("loaded census extract %s as batch %s: %s", extract.name, result["load_batch_id"], result["rows"])
    return {"source": extract.name, **result}


def _load(conn: psycopg.Connection, extract: Path, members: list[_Member], header: _Header) -> dict:
    conn.execute("select pg_advisory_xact_lock(hashtext('pupilshare.ingest.census'))")
    batch_id = _register_batch(conn, extract.name, header)
    digest = hashlib.sha256()
    started = time.perf_counter()
    rows = {member.table: _copy_member(conn, member, digest) for member in sorted(members, key=lambda m: m.table)}
    copied = time.perf_counter()
    content_sha256 = digest.hexdigest()
    if _already_loaded(conn, content_sha256):
        raise _DuplicateContentError
    conn.execute(
        "update raw.load_batches set row_counts = %s::jsonb, content_sha256 = %s where load_batch_id = %s",
        (json.dumps(rows, sort_keys=True), content_sha256, batch_id),
    )
    _record_school_returns(conn, batch_id, header)
    for member in members:
        _analyze_join_columns(conn, member)
    files = {member.table: f"{extract.name}/{member.name}" for member in members}
    findings = validate_census_batch(conn, CensusBatch(batch_id, header.term, header.reference_date, files))
    _supersede_earlier(conn, batch_id)
    seconds = {"copy": round(copied - started, 3), "validate": round(time.perf_counter() - copied, 3)}
    return {"load_batch_id": batch_id, "rows": rows, "term": header.term, "findings": findings, "seconds": seconds}


# --- opening folders and zips ---------------------------------------------------------------------------------------


@contextmanager
def _open_extract(
    extract: Path, max_file_bytes: int, max_extract_bytes: int, max_ratio: float
) -> Iterator[list[_Member]]:
    if extract.is_dir() and not extract.is_symlink():
        yield _folder_members(extract, max_file_bytes)
    elif extract.is_file() and extract.suffix.lower() == ".zip":
        try:
            archive = zipfile.ZipFile(extract)
        except (zipfile.BadZipFile, OSError) as error:
            raise _rejected(extract.name, "FILE-NOT-A-ZIP", f"the .zip cannot be opened ({error})") from error
        with archive:
            yield _zip_members(extract, archive, max_file_bytes, max_extract_bytes, max_ratio)
    else:
        raise _rejected(
            extract.name,
            "FILE-NOT-AN-EXTRACT",
            "inbox/census holds one folder or .zip per census extract, each with <table>.csv files; "
            "put loose files in a folder",
        )


def _folder_members(extract: Path, max_file_bytes: int) -> list[_Member]:
    findings: list[Finding] = []
    members = []
    for path in sorted(extract.iterdir()):
        name = f"{extract.name}/{path.name}"
        if path.is_symlink():
            findings.append(Finding(name, "FILE-SYMLINK", "error", "links are not followed: put the file itself here"))
        elif not path.is_file() or not _MEMBER_NAME.match(path.name):
            findings.append(Finding(name, "FILE-UNKNOWN-TABLE", "error", "expected only <table>.csv files"))
        elif (size := path.stat().st_size) > max_file_bytes:
            findings.append(_too_large(name, size, max_file_bytes))
        else:
            members.append(_Member(path.stem.lower(), path.name, lambda path=path: path.open("rb")))
    if findings:
        raise ReturnRejectedError(findings)
    return members


def _zip_members(
    extract: Path, archive: zipfile.ZipFile, max_file_bytes: int, max_extract_bytes: int, max_ratio: float
) -> list[_Member]:
    """Check every member's name, kind and size before anything is read; a bad member refuses the whole zip."""
    findings: list[Finding] = []
    members = []
    total = 0
    for info in archive.infolist():
        name = f"{extract.name}/{info.filename}"
        total += info.file_size
        mode = info.external_attr >> 16
        if info.is_dir() or "/" in info.filename or "\\" in info.filename or ".." in info.filename:
            findings.append(
                Finding(
                    name,
                    "FILE-ZIP-PATH",
                    "error",
                    "zip members must be <table>.csv at the top level: no folders, no '..', no absolute paths",
                )
            )
        elif stat.S_ISLNK(mode):
            findings.append(Finding(name, "FILE-SYMLINK", "error", "the zip holds a link: links are not followed"))
        elif not _MEMBER_NAME.match(info.filename):
            findings.append(Finding(name, "FILE-UNKNOWN-TABLE", "error", "expected only <table>.csv members"))
        elif info.flag_bits & 0x1:
            findings.append(Finding(name, "FILE-ZIP-ENCRYPTED", "error", "encrypted members cannot be read"))
        elif info.file_size > max_file_bytes:
            findings.append(_too_large(name, info.file_size, max_file_bytes))
        elif info.file_size > max_ratio * max(info.compress_size, 1) and info.file_size > 1024**2:
            findings.append(
                Finding(
                    name,
                    "FILE-ZIP-BOMB",
                    "error",
                    f"expands {info.file_size / max(info.compress_size, 1):.0f} "
                    f"times (limit {max_ratio:.0f}): refused as a possible zip bomb",
                )
            )
        else:
            members.append(_Member(Path(info.filename).stem.lower(), info.filename, lambda i=info: archive.open(i)))
    if total > max_extract_bytes:
        findings.append(
            Finding(
                extract.name,
                "FILE-TOO-LARGE",
                "error",
                f"the zip expands to {total} bytes, over the limit of {max_extract_bytes} for a whole extract",
            )
        )
    if len({member.table for member in members}) != len(members):
        findings.append(Finding(extract.name, "FILE-DUPLICATE-TABLE", "error", "a table's file is in the zip twice"))
    if findings:
        raise ReturnRejectedError(findings)
    return members


def _too_large(name: str, size: int, limit: int) -> Finding:
    return Finding(
        name, "FILE-TOO-LARGE", "error", f"{size} bytes is over the limit of {limit} (PUPILSHARE_MAX_INBOX_FILE_BYTES)"
    )


def _rejected(file: str, rule_id: str, message: str, **where: object) -> ReturnRejectedError:
    return ReturnRejectedError([Finding(file, rule_id, "error", message, **where)])


# --- file-level checks ----------------------------------------------------------------------------------------------


def _census_header(extract: Path, members: list[_Member]) -> _Header:
    """Term, year, reference date and school returns from ``schoolcensus`` (one row per school return)."""
    member = next((member for member in members if member.table == "schoolcensus"), None)
    file = f"{extract.name}/schoolcensus.csv"
    if member is None:
        raise _rejected(file, "FILE-MISSING-TABLE", "the extract has no schoolcensus.csv: which census is this?")
    rows = _read_small_csv(member, file)
    if not rows:
        raise _rejected(file, "FILE-NO-ROWS", "schoolcensus.csv has no rows: which census is this?")
    terms = {row.get("term", "") for row in rows}
    years = {row.get("year", "") for row in rows}
    dates = {row.get("referencedate", "") for row in rows}
    if len(terms) > 1 or len(years) > 1 or len(dates) > 1:
        raise _rejected(
            file,
            "FILE-MIXED-CENSUS",
            f"one extract holds one census; found terms {sorted(terms)}, "
            f"years {sorted(years)}, reference dates {sorted(dates)}",
        )
    term_code, year, reference_text = terms.pop(), years.pop(), dates.pop()
    if term_code.upper() not in TERM_CODES:
        raise _rejected(
            file,
            "FILE-BAD-TERM",
            f"term {term_code!r} is not a census term: use AUT, SPR or SUM",
            table="schoolcensus",
            row=1,
            item="term",
        )
    if not year.isdigit():
        raise _rejected(file, "FILE-BAD-YEAR", f"year {year!r} is not a year like 2026", table="schoolcensus", row=1)
    try:
        reference_date = dt.datetime.strptime(reference_text, "%Y-%b-%d %H:%M:%S").date()
    except ValueError:
        raise _rejected(
            file,
            "FILE-BAD-REFERENCE-DATE",
            f"referencedate {reference_text!r} is not like 2026-Oct-01 00:00:00",
            table="schoolcensus",
            row=1,
            item="referencedate",
        ) from None
    returns = [(row.get("schoolcensustableid", ""), row.get("lea", "") + row.get("estab", "")) for row in rows]
    laestabs = [laestab for _, laestab in returns]
    if any(not re.fullmatch(r"\d{7}", laestab) for laestab in laestabs) or len(set(laestabs)) != len(laestabs):
        raise _rejected(
            file,
            "FILE-BAD-SCHOOL",
            "every schoolcensus row needs a 3-digit lea and 4-digit estab, "
            "and each school may make one return per extract",
            table="schoolcensus",
        )
    return _Header(TERM_CODES[term_code.upper()], int(year), reference_date, returns)


def _read_small_csv(member: _Member, file: str) -> list[dict[str, str]]:
    try:
        with member.open() as raw, io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            return [
                {key.strip().lower(): (value or "").strip() for key, value in row.items() if isinstance(key, str)}
                for row in reader
            ]
    except (UnicodeDecodeError, csv.Error) as error:
        raise _rejected(file, "FILE-ENCODING", f"schoolcensus.csv cannot be read as UTF-8 CSV ({error})") from error


def _check_members(extract: Path, members: list[_Member], term: CensusTerm) -> None:
    """Tables, headers and encodings against the term's schema; every problem of every file is reported at once."""
    findings: list[Finding] = []
    allowed = set(census_tables(term))
    present = {member.table for member in members}
    for member in members:
        file = f"{extract.name}/{member.name}"
        if member.table not in allowed:
            findings.append(
                Finding(
                    file,
                    "FILE-UNKNOWN-TABLE",
                    "error",
                    f"{member.table} is not a table of the {term} census; its tables are {', '.join(sorted(allowed))}",
                )
            )
            continue
        findings += _check_header(member, file, term)
    for table in REQUIRED_TABLES[term]:
        if table not in present:
            findings.append(
                Finding(
                    f"{extract.name}/{table}.csv",
                    "FILE-MISSING-TABLE",
                    "error",
                    f"the extract has "
                    f"no {table}.csv; a {term} census extract must include "
                    f"{', '.join(REQUIRED_TABLES[term])}",
                    table=table,
                )
            )
    if findings:
        raise ReturnRejectedError(findings)


def _check_header(member: _Member, file: str, term: CensusTerm) -> list[Finding]:
    table = member.table
    try:
        with member.open() as raw:
            first = raw.readline(1024**2)
        header = next(csv.reader([first.decode("utf-8-sig")]), None)
    except UnicodeDecodeError as error:
        return [
            Finding(
                file,
                "FILE-ENCODING",
                "error",
                f"the header is not UTF-8 ({error.reason} at byte {error.start}); save the file as UTF-8",
                table=table,
            )
        ]
    except csv.Error as error:
        return [Finding(file, "FILE-UNREADABLE-ROW", "error", f"the header cannot be read ({error})", table=table)]
    if not header or not any(name.strip() for name in header):
        return [Finding(file, "FILE-EMPTY", "error", "the file is empty: no header row", table=table)]
    columns = tuple(name.strip().lower() for name in header)
    schema = census_columns(table, term)
    known = {name.lower() for name in schema}
    findings = []
    if unknown := [name for name in columns if name not in known]:
        findings.append(
            Finding(
                file,
                "FILE-UNKNOWN-COLUMN",
                "error",
                f"columns not in the {term} census {table} table: {', '.join(unknown)}",
                table=table,
            )
        )
    if duplicated := sorted({name for name in columns if columns.count(name) > 1}):
        findings.append(
            Finding(
                file, "FILE-DUPLICATE-COLUMN", "error", f"columns named twice: {', '.join(duplicated)}", table=table
            )
        )
    required = {name.lower() for name, spec in schema.items() if spec.get("canbeblank") is False}
    if missing := sorted(required - set(columns)):
        findings.append(
            Finding(
                file, "FILE-MISSING-COLUMN", "error", f"required columns missing: {', '.join(missing)}", table=table
            )
        )
    if not findings and not set(columns) <= set(census_raw_columns()[table]):
        findings.append(Finding(file, "FILE-UNKNOWN-COLUMN", "error", "raw table lacks a column", table=table))
    member.columns = columns
    return findings


# --- loading --------------------------------------------------------------------------------------------------------


def _already_loaded(conn: psycopg.Connection, content_sha256: str) -> bool:
    found = conn.execute(
        "select 1 from raw.load_batches where return_type = %s and content_sha256 = %s",
        (RETURN_TYPE, content_sha256),
    ).fetchone()
    return found is not None


def _register_batch(conn: psycopg.Connection, source_name: str, header: _Header) -> int:
    batch_id = conn.execute(
        """insert into raw.load_batches
               (return_type, source_name, content_sha256, status, census_term, census_year, reference_date)
           values (%s, %s, '', 'loaded', %s, %s, %s) returning load_batch_id""",
        (RETURN_TYPE, source_name, _term_code(header.term), header.year, header.reference_date),
    ).fetchone()[0]
    conn.execute("select set_config('pupilshare.load_batch_id', %s, true)", (str(batch_id),))
    return batch_id


def _term_code(term: CensusTerm) -> str:
    return next(code for code, name in TERM_CODES.items() if name == term)


def _copy_member(conn: psycopg.Connection, member: _Member, digest: hashlib._Hash) -> int:
    """Stream one CSV into COPY (hashing it on the way); ``_row_number`` restarts at 1 for the file."""
    name = raw_table_name(member.table)
    conn.execute("select setval(%s, 1, false)", (f"{RAW_SCHEMA}.{name}__row_seq",))
    statement = sql.SQL("copy {}.{} ({}) from stdin with (format csv, header true, encoding 'UTF8')").format(
        sql.Identifier(RAW_SCHEMA),
        sql.Identifier(name),
        sql.SQL(", ").join(sql.Identifier(column) for column in member.columns),
    )
    digest.update(member.table.encode() + b"\0")
    with conn.cursor() as cursor:
        with cursor.copy(statement) as copy, member.open() as handle:
            chunk = handle.read(_COPY_CHUNK)
            digest.update(chunk)
            copy.write(chunk.removeprefix(_BOM))
            while chunk := handle.read(_COPY_CHUNK):
                digest.update(chunk)
                copy.write(chunk)
        digest.update(b"\0")
        return cursor.rowcount


#: The columns the rules join and filter on; the rules only need statistics for these.
_JOIN_COLUMNS = ("_load_batch_id", "_row_number", "pupilonrolltableid", "schoolcensustableid")


def _analyze_join_columns(conn: psycopg.Connection, member: _Member) -> None:
    """Fresh statistics so the rules' anti-joins plan as hash joins, not nested loops.

    Only the join and filter columns: statistics of every column of a 64-column table cost as much as its COPY.
    """
    columns = [column for column in _JOIN_COLUMNS if column.startswith("_") or column in member.columns]
    conn.execute(
        sql.SQL("analyze {}.{} ({})").format(
            sql.Identifier(RAW_SCHEMA),
            sql.Identifier(raw_table_name(member.table)),
            sql.SQL(", ").join(sql.Identifier(column) for column in columns),
        )
    )


def _record_school_returns(conn: psycopg.Connection, batch_id: int, header: _Header) -> None:
    with conn.cursor() as cursor:
        cursor.executemany(
            """insert into raw.census_school_returns
                   (load_batch_id, schoolcensus_table_id, laestab, census_term, census_year, reference_date)
               values (%s, %s, %s, %s, %s, %s)""",
            [
                (batch_id, table_id, laestab, _term_code(header.term), header.year, header.reference_date)
                for table_id, laestab in header.returns
            ],
        )


def _supersede_earlier(conn: psycopg.Connection, batch_id: int) -> None:
    """Mark ``superseded`` every earlier census batch none of whose school returns is current any more."""
    conn.execute(
        """update raw.load_batches as batch set status = 'superseded'
           where batch.return_type = %s and batch.status = 'loaded' and batch.load_batch_id < %s
               and exists (select from raw.census_school_returns as held
                           where held.load_batch_id = batch.load_batch_id)
               and not exists (select from raw.current_census_returns as current_return
                               where current_return.load_batch_id = batch.load_batch_id)""",
        (RETURN_TYPE, batch_id),
    )


def _copy_finding(extract: Path, error: psycopg.Error) -> Finding:
    diag = error.diag
    context = diag.context or ""
    match = re.search(r"COPY census_(\w+), line (\d+)", context)
    table, row = (match.group(1), int(match.group(2)) - 1) if match else (None, None)
    message = (diag.message_primary or str(error)).strip()
    file = f"{extract.name}/{table}.csv" if table else extract.name
    rule_id = "FILE-ENCODING" if error.sqlstate in ("22021", "22P05") else "FILE-UNREADABLE-ROW"
    return Finding(
        file,
        rule_id,
        "error",
        f"PostgreSQL could not read this row: {message}. Check the row has one value per header column, "
        "quotes are balanced and the file is UTF-8",
        table=table,
        row=row,
    )


register_return(RETURN_TYPE, load_census_extract, description="School Census LA extract: a folder or .zip of CSVs")
