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
from pathlib import Path

import psycopg
from lxml import etree
from stdnum.gb import upn as upn_check

from pupilshare.findings import Finding
from pupilshare.ingest.inbox import ReturnRejectedError, register_return
from pupilshare.ingest.raw_schema import record_findings
from pupilshare.ingest.tabular import already_loaded, finish_batch, read_census_context, register_batch

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


def load_ctf(conn: psycopg.Connection, path: Path, *, max_file_bytes: int = 2 * 1024**3) -> dict | None:
    """Load one CTF in a single transaction; None when the same bytes were loaded before.

    Raises :class:`ReturnRejectedError` for a file-level problem (name, size, DTD/entities, malformed XML, header).
    """
    try:
        name = check_ctf_file(path, max_file_bytes)
        content_sha256 = scan_ctf_bytes(path)
        check_ctf_header(path, next(iter_ctf(path))[1], name)
    except CtfFileError as error:
        raise ReturnRejectedError([Finding(path.name, error.rule_id, "error", str(error), "ctf_files")]) from None
    with conn.transaction():
        ensure_ctf_schema(conn)
    try:
        with conn.transaction():
            conn.execute("select pg_advisory_xact_lock(hashtext('pupilshare.ingest.ctf'))")
            if already_loaded(conn, RETURN_TYPE, content_sha256):
                return None
            batch_id = register_batch(conn, RETURN_TYPE, path.name, content_sha256)
            rows, findings = _load_rows(conn, path, name, batch_id)
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
    basic = pupil.find("BasicDetails")
    address = pupil.find("Address")
    bs7666 = address.find("BS7666Address") if address is not None else None
    sen = pupil.find("SENhistory")
    return {
        "upn": _text(pupil, "UPN"),
        "surname": _text(pupil, "Surname"),
        "forename": _text(pupil, "Forename"),
        "dob": _text(pupil, "DOB"),
        "sex": _text(pupil, "Sex"),
        "middle_names": _text(basic, "MiddleNames"),
        "preferred_surname": _text(basic, "PreferredSurname"),
        "nc_year_actual": _text(basic, "NCyearActual"),
        "ethnicity": _text(basic, "Ethnicity"),
        "first_language": _text(basic, "Languages/Type/Language"),
        "enrol_status": _text(basic, "EnrolStatus"),
        **{column: _text(bs7666, tag) for column, tag in _ADDRESS_TAGS.items()},
        "postcode": _text(address, "PostCode"),
        "fsm_history": _children(pupil.find("FSMhistory"), "FSMinstance"),
        "sen_history": {
            "provisions": _children(sen, "SEN"),
            "needs": _children(sen.find("SENneeds") if sen is not None else None, "SENneed"),
        },
        "attendance": _children(pupil.find("Attendance"), "YearData"),
        "school_history": _children(pupil.find("SchoolHistory"), "School"),
    }


_ADDRESS_TAGS = {
    "saon": "SAON", "paon": "PAON", "street": "Street", "locality": "Locality", "town": "Town",
    "administrative_area": "AdministrativeArea", "post_town": "PostTown", "uprn": "UniquePropertyReferenceNumber",
}  # fmt: skip


def _children(parent: etree._Element | None, tag: str) -> list[dict[str, str]]:
    """Repeated groups as lists of ``{child tag: text}`` (kept as sent; staging casts)."""
    if parent is None:
        return []
    return [
        {child.tag: (child.text or "").strip() for child in item if isinstance(child.tag, str)}
        for item in parent.iterfind(tag)
    ]


def _load_rows(conn: psycopg.Connection, path: Path, name: tuple[str, str, str, str], batch_id: int):
    findings: list[Finding] = []
    events = iter_ctf(path)
    _, header = next(events)
    findings += _check_source_school(path, header, read_census_context(conn, with_pupils=False).schools)
    conn.execute(
        f"insert into raw.ctf_files (_load_batch_id, {', '.join(_FILE_COLUMNS)}) values ({', '.join(['%s'] * 11)})",
        (batch_id, path.name, *(header[column] for column in _FILE_COLUMNS[1:-1]), None),
    )
    seen: set[str] = set()
    count = 0
    columns = ", ".join(("_load_batch_id", "_row_number", "_rejected", *_PUPIL_COLUMNS))
    with conn.cursor() as cursor, cursor.copy(f"copy raw.ctf_pupils ({columns}) from stdin") as copy:
        for count, (_, pupil) in enumerate(events, 1):  # noqa: B007 - count is the pupil total afterwards
            issues = validate_ctf_pupil(pupil, seen)
            findings += [
                Finding(path.name, rule, severity, message, "ctf_pupils", count, item)
                for rule, severity, item, message in issues
            ]
            values = (
                json.dumps(pupil[name]) if name in _JSON_COLUMNS else pupil[name] or None for name in _PUPIL_COLUMNS
            )
            copy.write_row((batch_id, count, any(issue[1] == "error" for issue in issues), *values))
    if count == 0:
        findings.append(Finding(path.name, "CTF-NO-PUPILS", "query", "the CTF holds no pupils", "ctf_files"))
    conn.execute("update raw.ctf_files set pupil_count = %s where _load_batch_id = %s", (str(count), batch_id))
    return {"ctf_files": 1, "ctf_pupils": count}, findings


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
    if not upn_check.is_valid(upn):
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


register_return(RETURN_TYPE, load_ctf, description="Common Transfer Files: one LLLEEEE_CTF_DDDdddd_001.xml per set")
