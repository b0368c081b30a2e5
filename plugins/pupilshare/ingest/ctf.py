"""Load Common Transfer Files (CTF): one XML file per file set, streamed with lxml ``iterparse`` into ``raw``.

Security first: a CTF arrives from outside the LA, so it is read as hostile. Before any parsing, the bytes are scanned
for ``<!DOCTYPE`` and ``<!ENTITY`` (as defusedxml does) and a file holding either is quarantined: no legitimate CTF
has a DTD, and a DTD is how entity-expansion ("billion laughs") and external-entity (XXE) attacks work. The parser
itself is also locked down (no entity resolution, no network, no DTD loading, no huge trees) and checks the parsed
document has no DTD, in case the byte scan is ever evaded. Memory stays constant: each ``Pupil`` element is
converted, streamed into COPY and then cleared.

Layout, tables and rules: docs/returns.md, "Common Transfer Files".
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from lxml import etree

from pupilshare.findings import Finding
from pupilshare.ingest.inbox import ReturnRejectedError, register_return
from pupilshare.ingest.raw_schema import record_findings
from pupilshare.ingest.tabular import already_loaded, finish_batch, read_census_context, register_batch
from pupilshare.ingest.upn import is_valid_upn

log = logging.getLogger(__name__)

RETURN_TYPE = "ctf"
#: ``LLLEEEE_CTF_DDDdddd_001.xml``: source LA and estab, destination LA and estab (``XXX``/``XXXX`` destination
#: unknown, ``MMM``/``MMMM`` abroad, independent or outside England and Wales), then a serial.
FILE_NAME = re.compile(r"^(\d{3})(\d{4})_CTF_(\d{3}|XXX|MMM)(\d{4}|XXXX|MMMM)_(\d{3})\.xml$")
_FORBIDDEN = (b"<!DOCTYPE", b"<!ENTITY")
_CHUNK = 1 << 20
_PUPIL_COLUMNS = (
    "upn", "surname", "forename", "dob", "sex", "middle_names", "preferred_surname", "nc_year_actual",
    "ethnicity", "first_language", "enrol_status", "saon", "paon", "street", "locality", "town",
    "administrative_area", "post_town", "uprn", "postcode", "fsm_history", "sen_history", "attendance",
    "school_history",
)  # fmt: skip
_JSON_COLUMNS = ("fsm_history", "sen_history", "attendance", "school_history")
_FILE_COLUMNS = (
    "file_name", "ctf_version", "date_time", "document_qualifier", "source_lea", "source_estab",
    "source_school_name", "dest_lea", "dest_estab", "pupil_count",
)  # fmt: skip

_DDL = f"""
create table if not exists raw.ctf_files (
    _load_batch_id bigint not null references raw.load_batches (load_batch_id),
    {", ".join(f"{name} text" for name in _FILE_COLUMNS)}
);
create index if not exists ctf_files__batch on raw.ctf_files (_load_batch_id);
create table if not exists raw.ctf_pupils (
    _load_batch_id bigint not null references raw.load_batches (load_batch_id),
    _row_number bigint not null,
    _rejected boolean not null default false,
    {", ".join(f"{name} {'jsonb' if name in _JSON_COLUMNS else 'text'}" for name in _PUPIL_COLUMNS)}
);
create index if not exists ctf_pupils__batch on raw.ctf_pupils (_load_batch_id);
create index if not exists ctf_pupils__upn on raw.ctf_pupils (upn);
"""


class CtfFileError(Exception):
    """The file cannot be read as a CTF; ``rule_id`` and the message say why."""

    def __init__(self, rule_id: str, message: str) -> None:
        self.rule_id = rule_id
        super().__init__(message)


def ensure_ctf_schema(conn: psycopg.Connection) -> None:
    """Create ``raw.ctf_files`` (one row per file) and ``raw.ctf_pupils`` (one row per pupil per file) if missing."""
    conn.execute("select pg_advisory_xact_lock(hashtext('pupilshare.raw_schema'))")
    conn.execute(_DDL)


@dataclass(frozen=True)
class CtfPass:
    """What every CTF of one inbox pass shares: the schools (LA, estab) of the loaded census.

    The census loads first in a pass and no CTF changes it, so this is read once per pass, not once per file."""

    schools: frozenset[tuple[str, str]]


def prepare_ctf_pass(conn: psycopg.Connection) -> CtfPass:
    """Make sure the CTF tables exist and read the census schools, once before the CTFs of an inbox pass load."""
    with conn.transaction():
        ensure_ctf_schema(conn)
        schools = read_census_context(conn, with_pupils=False).schools
    return CtfPass(schools=frozenset(schools))


def load_ctf(
    conn: psycopg.Connection,
    path: Path,
    *,
    max_file_bytes: int = 2 * 1024**3,
    pass_context: CtfPass | None = None,
) -> dict | None:
    """Load one CTF in a single transaction; None when the same bytes were loaded before.

    ``pass_context`` is what :func:`prepare_ctf_pass` read for the whole inbox pass; without it (one file loaded on
    its own) it is read here. Raises :class:`ReturnRejectedError` for a file-level problem (name, size,
    DTD/entities, malformed XML, header).
    """
    try:
        name = check_ctf_file(path, max_file_bytes)
        content_sha256 = scan_ctf_bytes(path)
        check_ctf_header(path, next(iter_ctf(path))[1], name)
    except CtfFileError as error:
        raise ReturnRejectedError([Finding(path.name, error.rule_id, "error", str(error), "ctf_files")]) from None
    ctf_pass = pass_context or prepare_ctf_pass(conn)
    try:
        with conn.transaction():
            conn.execute("select pg_advisory_xact_lock(hashtext('pupilshare.ingest.ctf'))")
            if already_loaded(conn, RETURN_TYPE, content_sha256):
                return None
            batch_id = register_batch(conn, RETURN_TYPE, path.name, content_sha256)
            rows, findings = _load_rows(conn, path, name, batch_id, ctf_pass.schools)
            record_findings(conn, return_type=RETURN_TYPE, load_batch_id=batch_id, findings=findings)
            finish_batch(conn, batch_id, rows)
    except CtfFileError as error:
        raise ReturnRejectedError([Finding(path.name, error.rule_id, "error", str(error), "ctf_files")]) from None
    log.info("loaded CTF %s as batch %s: %s", path.name, batch_id, rows)
    errors = sum(finding.severity == "error" for finding in findings)
    return {
        "source": path.name,
        "load_batch_id": batch_id,
        "rows": rows,
        "findings": {"error": errors, "query": len(findings) - errors},
    }


def check_ctf_file(path: Path, max_file_bytes: int) -> tuple[str, str, str, str]:
    """Source LA, source estab, destination LA, destination estab from the file name; checks kind and size."""
    if not path.is_file():
        raise CtfFileError("FILE-NOT-XML", "inbox/ctf holds single CTF .xml files, not folders")
    match = FILE_NAME.match(path.name)
    if not match:
        raise CtfFileError(
            "CTF-FILE-NAME",
            "the name must be LLLEEEE_CTF_DDDdddd_001.xml (source LA and estab, "
            "destination LA and estab or XXXXXXX / MMMMMMM, serial)",
        )
    size = path.stat().st_size
    if size > max_file_bytes:
        raise CtfFileError("FILE-TOO-LARGE", f"{size} bytes is over the limit of {max_file_bytes} bytes")
    return match.group(1), match.group(2), match.group(3), match.group(4)


def scan_ctf_bytes(path: Path) -> str:
    """SHA-256 of the file, refusing UTF-16/32 files and any DTD or entity declaration (before any XML parsing)."""
    digest = hashlib.sha256()
    tail = b""
    with path.open("rb") as handle:
        first = True
        while chunk := handle.read(_CHUNK):
            if first and (chunk[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in chunk[:4]):
                raise CtfFileError("FILE-ENCODING", "the file is UTF-16 or UTF-32; CTFs must be UTF-8")
            first = False
            window = tail + chunk
            for forbidden in _FORBIDDEN:
                if forbidden in window:
                    raise CtfFileError(
                        "CTF-DTD-FORBIDDEN",
                        f"the file contains a {forbidden.decode()} declaration. CTFs never carry a DTD; entity "
                        "declarations are how entity-expansion (billion laughs) and external-entity (XXE) attacks "
                        "work, so the file was not parsed at all. Ask the sending school's MIS supplier to re-export",
                    )
            tail = window[-16:]
            digest.update(chunk)
    return digest.hexdigest()


def iter_ctf(path: Path) -> Iterator[tuple[str, dict]]:
    """Stream a CTF: yields ``("header", {...})`` once, then ``("pupil", {column: value})`` per pupil in file order.

    Raises :class:`CtfFileError` for malformed XML, a DTD, a wrong root or a missing header. Call
    :func:`scan_ctf_bytes` first: this parser is hardened too, but the byte scan gives the clearer finding.
    """
    parser_args = dict(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        dtd_validation=False,
        remove_comments=True,
        remove_pis=True,
    )
    seen_header = False
    try:
        events = etree.iterparse(str(path), events=("end",), tag=("Header", "Pupil"), **parser_args)
        for _, element in events:
            if not seen_header:
                _check_root(element.getroottree().getroot())
            if element.tag == "Header":
                if element.getparent() is None or element.getparent().getparent() is not None:
                    raise CtfFileError("CTF-HEADER", "Header must be a child of CTfile")
                seen_header = True
                yield "header", _header(element)
            elif element.tag == "Pupil":
                if not seen_header:
                    raise CtfFileError("CTF-HEADER", "the Header must come before the pupils")
                yield "pupil", _pupil(element)
                element.clear(keep_tail=False)
                while element.getprevious() is not None:
                    del element.getparent()[0]
    except etree.XMLSyntaxError as error:
        raise CtfFileError(
            "CTF-MALFORMED",
            f"not well-formed XML: {error.msg} (line {error.lineno}); the file is "
            "damaged or incomplete, ask the school to send it again",
        ) from None
    if not seen_header:
        raise CtfFileError("CTF-HEADER", "the file has no Header element")


def _check_root(root: etree._Element) -> None:
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise CtfFileError("CTF-DTD-FORBIDDEN", "the document declares a DTD; CTFs never carry one")
    if root.tag != "CTfile":
        raise CtfFileError("CTF-ROOT", f"the root element is {root.tag!r}, not CTfile")


def _text(element: etree._Element | None, path: str) -> str:
    if element is None:
        return ""
    return (element.findtext(path) or "").strip()


def _header(header: etree._Element) -> dict:
    return {
        "ctf_version": _text(header, "CTFversion"),
        "date_time": _text(header, "DateTime"),
        "document_qualifier": _text(header, "DocumentQualifier"),
        "source_lea": _text(header, "SourceSchool/LEA"),
        "source_estab": _text(header, "SourceSchool/Estab"),
        "source_school_name": _text(header, "SourceSchool/SchoolName"),
        "dest_lea": _text(header, "DestSchool/LEA"),
        "dest_estab": _text(header, "DestSchool/Estab"),
    }


def _pupil(pupil: etree._Element) -> dict:
    """One pupil's columns, read in a single pass over its children (no path lookup per item).

    Same answers as looking each item up with ``findtext``/``find``: the first of a repeated item or group wins,
    text is stripped, a missing item is ``""``, and the repeated groups are lists of ``{child tag: text}``.
    """
    row: dict = {}
    groups: dict[str, etree._Element] = {}
    for child in pupil:
        tag = child.tag
        column = _PUPIL_TAGS.get(tag)
        if column is not None:
            if column not in row:
                row[column] = (child.text or "").strip()
        elif tag in _PUPIL_GROUPS and tag not in groups:
            groups[tag] = child
    if (basic := groups.get("BasicDetails")) is not None:
        _read_basic_details(basic, row)
    if (address := groups.get("Address")) is not None:
        _read_address(address, row)
    sen = groups.get("SENhistory")
    sen_history = {"provisions": [], "needs": []}
    if sen is not None:
        needs = None
        for child in sen:
            if child.tag == "SEN":
                sen_history["provisions"].append(_items(child))
            elif child.tag == "SENneeds" and needs is None:
                needs = child
                sen_history["needs"] = _children(child, "SENneed")
    for column in _PUPIL_TEXT_COLUMNS:
        row.setdefault(column, "")
    row["fsm_history"] = _children(groups.get("FSMhistory"), "FSMinstance")
    row["sen_history"] = sen_history
    row["attendance"] = _children(groups.get("Attendance"), "YearData")
    row["school_history"] = _children(groups.get("SchoolHistory"), "School")
    return row


def _read_basic_details(basic: etree._Element, row: dict) -> None:
    """Items of the first ``BasicDetails`` into ``row`` (the first ``Languages/Type/Language`` is the language)."""
    for child in basic:
        tag = child.tag
        column = _BASIC_TAGS.get(tag)
        if column is not None:
            if column not in row:
                row[column] = (child.text or "").strip()
        elif tag == "Languages" and "first_language" not in row:
            for kind in child:
                if kind.tag == "Type":
                    for language in kind:
                        if language.tag == "Language":
                            row["first_language"] = (language.text or "").strip()
                            break
                    if "first_language" in row:
                        break


def _read_address(address: etree._Element, row: dict) -> None:
    """``PostCode`` and the first ``BS7666Address``'s items of the first ``Address`` into ``row``."""
    bs7666_read = False
    for child in address:
        tag = child.tag
        if tag == "PostCode":
            if "postcode" not in row:
                row["postcode"] = (child.text or "").strip()
        elif tag == "BS7666Address" and not bs7666_read:
            bs7666_read = True
            for item in child:
                column = _ADDRESS_TAGS.get(item.tag)
                if column is not None and column not in row:
                    row[column] = (item.text or "").strip()


_PUPIL_TAGS = {"UPN": "upn", "Surname": "surname", "Forename": "forename", "DOB": "dob", "Sex": "sex"}
_PUPIL_GROUPS = frozenset(("BasicDetails", "Address", "FSMhistory", "SENhistory", "Attendance", "SchoolHistory"))
_BASIC_TAGS = {
    "MiddleNames": "middle_names", "PreferredSurname": "preferred_surname", "NCyearActual": "nc_year_actual",
    "Ethnicity": "ethnicity", "EnrolStatus": "enrol_status",
}  # fmt: skip
_ADDRESS_TAGS = {
    "SAON": "saon", "PAON": "paon", "Street": "street", "Locality": "locality", "Town": "town",
    "AdministrativeArea": "administrative_area", "PostTown": "post_town", "UniquePropertyReferenceNumber": "uprn",
}  # fmt: skip
_PUPIL_TEXT_COLUMNS = tuple(name for name in _PUPIL_COLUMNS if name not in _JSON_COLUMNS)


def _children(parent: etree._Element | None, tag: str) -> list[dict[str, str]]:
    """Repeated groups as lists of ``{child tag: text}`` (kept as sent; staging casts)."""
    if parent is None:
        return []
    return [_items(item) for item in parent if item.tag == tag]


def _items(group: etree._Element) -> dict[str, str]:
    """``{child tag: stripped text}`` of one group instance (the last of a repeated child tag wins, as before)."""
    return {child.tag: (child.text or "").strip() for child in group if isinstance(child.tag, str)}


def _load_rows(
    conn: psycopg.Connection, path: Path, name: tuple[str, str, str, str], batch_id: int, schools: frozenset
):
    findings: list[Finding] = []
    events = iter_ctf(path)
    _, header = next(events)
    findings += _check_source_school(path, header, schools)
    seen: set[str] = set()
    count = 0
    lines: list[str] = []
    columns = ", ".join(("_load_batch_id", "_row_number", "_rejected", *_PUPIL_TEXT_COLUMNS, *_JSON_COLUMNS))
    with conn.cursor() as cursor, cursor.copy(f"copy raw.ctf_pupils ({columns}) from stdin") as copy:
        for count, (_, pupil) in enumerate(events, 1):  # noqa: B007 - count is the pupil total afterwards
            issues = validate_ctf_pupil(pupil, seen)
            if issues:
                findings += [
                    Finding(path.name, rule, severity, message, "ctf_pupils", count, item)
                    for rule, severity, item, message in issues
                ]
            rejected = "t" if any(issue[1] == "error" for issue in issues) else "f"
            lines.append(f"{batch_id}\t{count}\t{rejected}\t{_copy_fields(pupil)}\n")
            if len(lines) == _COPY_LINES:
                copy.write("".join(lines))
                lines.clear()
        if lines:
            copy.write("".join(lines))
    if count == 0:
        findings.append(Finding(path.name, "CTF-NO-PUPILS", "query", "the CTF holds no pupils", "ctf_files"))
    # the file row goes in after its pupils, when their count is known (one statement, not an insert and an update)
    conn.execute(
        f"insert into raw.ctf_files (_load_batch_id, {', '.join(_FILE_COLUMNS)}) values ({', '.join(['%s'] * 11)})",
        (batch_id, path.name, *(header[column] for column in _FILE_COLUMNS[1:-1]), str(count)),
    )
    return {"ctf_files": 1, "ctf_pupils": count}, findings


def _copy_fields(pupil: dict) -> str:
    """The pupil's columns as one line of COPY text format, in ``(*_PUPIL_TEXT_COLUMNS, *_JSON_COLUMNS)`` order.

    Built as text rather than with ``copy.write_row`` (whose per-value adaptation was a tenth of the load): a blank
    text item is null (``\\N``), the repeated groups are JSON, and backslash, tab, newline and carriage return are
    escaped as COPY requires (checked once over the whole row; a field is only rewritten when the row has one).
    """
    fields = [pupil[name] for name in _PUPIL_TEXT_COLUMNS]
    fields += [json.dumps(pupil[name]) for name in _JSON_COLUMNS]
    if _COPY_SPECIAL.search("".join(fields)):
        fields = [_COPY_SPECIAL.sub(_copy_escape, field) for field in fields]
    return "\t".join([field or "\\N" for field in fields])


def _copy_escape(match: re.Match) -> str:
    return _COPY_ESCAPES[match.group()]


#: Characters COPY's text format gives a meaning to, with their escapes; rows are sent ``_COPY_LINES`` at a time.
_COPY_SPECIAL = re.compile(r"[\\\t\n\r]")
_COPY_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
_COPY_LINES = 500


def check_ctf_header(path: Path, header: dict, name: tuple[str, str, str, str]) -> None:
    """Refuse a header that disagrees with the file name, or has no valid DateTime."""
    in_header = (header["source_lea"], header["source_estab"], header["dest_lea"], header["dest_estab"])
    if in_header != name:
        raise CtfFileError(
            "CTF-NAME-MISMATCH",
            f"the file name says {name[0]}/{name[1]} to {name[2]}/{name[3]} but the header says "
            f"{in_header[0]}/{in_header[1]} to {in_header[2]}/{in_header[3]}; misnamed or tampered with",
        )
    try:
        dt.datetime.fromisoformat(header["date_time"])
    except ValueError:
        raise CtfFileError(
            "CTF-HEADER", f"Header/DateTime {header['date_time']!r} is not YYYY-MM-DDThh:mm:ss"
        ) from None


def _check_source_school(path: Path, header: dict, schools: set) -> list[Finding]:
    """A source school of this LA that the loaded census does not hold is a query (a new school, or a wrong estab)."""
    census_leas = {lea for lea, _ in schools}
    if header["source_lea"] in census_leas and (header["source_lea"], header["source_estab"]) not in schools:
        return [
            Finding(
                path.name,
                "CTF-SOURCE-UNKNOWN",
                "query",
                f"source school {header['source_lea']}/{header['source_estab']} is in this LA but not in the "
                "loaded census: a new school, or a wrong estab number in the sender's MIS",
                "ctf_files",
                item="SourceSchool/Estab",
            )
        ]
    return []


def validate_ctf_pupil(pupil: dict, seen: set[str]) -> list[tuple[str, str, str, str]]:
    """Row rules of one CTF pupil as ``(rule_id, severity, item, message)``; ``seen`` collects UPNs of the file."""
    issues = []
    for column, tag in (("surname", "Surname"), ("forename", "Forename")):
        if not pupil[column]:
            issues.append(("ROW-BLANK", "error", tag, f"{tag} is blank"))
    upn = pupil["upn"]
    if not is_valid_upn(upn):
        issues.append(("ROW-UPN-INVALID", "error", "UPN", f"{upn!r} is not a valid UPN (check letter or format)"))
    elif upn in seen:
        issues.append(("ROW-DUPLICATE", "error", "UPN", f"UPN {upn} appears twice in this CTF; the first stands"))
    seen.add(upn)
    try:
        dt.date.fromisoformat(pupil["dob"])
    except ValueError:
        issues.append(("ROW-DATE-INVALID", "error", "DOB", f"{pupil['dob']!r} is not a date written YYYY-MM-DD"))
    if pupil["sex"] not in ("M", "F"):
        issues.append(("CTF-SEX", "error", "Sex", f"{pupil['sex']!r} is not M or F"))
    return issues


register_return(
    RETURN_TYPE,
    load_ctf,
    prepare=prepare_ctf_pass,
    description="Common Transfer Files: one LLLEEEE_CTF_DDDdddd_001.xml per set",
)
