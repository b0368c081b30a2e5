"""Load post-16 applications and offers (Year 11 pupils) and young people's activity updates (NCCIS tracking).

Two return types, one CSV per file set each: ``post16`` (one row per pupil per provider per status change) and
``activity`` (one row per young person per activity update). Layout and rules: docs/returns.md.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import psycopg

from pupilshare.dates import age_in_years
from pupilshare.ingest.inbox import register_return
from pupilshare.ingest.tabular import (
    CsvReturn,
    CsvTable,
    Issue,
    LoadContext,
    check_code,
    check_upn,
    ensure_csv_tables,
    load_csv_return,
    parse_date,
)

POST16_COLUMNS = ("upn", "ukprn", "status", "status_date")
POST16_STATUSES = frozenset({"applied", "offered", "accepted", "declined", "enrolled", "withdrawn"})
_UKPRN = re.compile(r"^1\d{7}$")

ACTIVITY_COLUMNS = ("upn", "uln", "activity_code", "activity_date", "source")
ACTIVITY_SOURCES = frozenset({"yss", "school", "provider", "self", "other"})
#: NCCIS current activity code ranges (shared/SHARING_RULES.md): below leaving age, education, employment, training,
#: re-engagement, NEET available, NEET not available, other, not known.
NCCIS_ACTIVITY_RANGES = (
    (110, 150), (210, 290), (310, 381), (410, 460), (530, 530), (540, 619), (620, 680), (710, 710), (720, 720),
    (810, 830),
)  # fmt: skip
NCCIS_ACADEMIC_AGES = (16, 17)
_ULN = re.compile(r"^[1-9]\d{9}$")


def is_known_activity_code(code: str) -> bool:
    """Whether ``code`` is three digits inside one of :data:`NCCIS_ACTIVITY_RANGES`."""
    return code.isdigit() and len(code) == 3 and any(low <= int(code) <= high for low, high in NCCIS_ACTIVITY_RANGES)


def academic_age(dob: dt.date, on_date: dt.date) -> int:
    """Age on the 31 August before the start of the academic year holding ``on_date`` (NCCIS cohorts)."""
    year_start = on_date.year if on_date.month >= 9 else on_date.year - 1
    return age_in_years(dob, dt.date(year_start, 8, 31))


def validate_post16_row(row: dict[str, str], context: LoadContext) -> list[Issue]:
    """Row rules of a post-16 applications file (ids in docs/returns.md)."""
    issues = check_upn(row, context)
    if not _UKPRN.match(row["ukprn"]):
        issues.append(
            Issue(
                "POST16-UKPRN",
                "error",
                "ukprn",
                f"{row['ukprn']!r} is not a UKPRN (8 digits starting with 1); look it up on the UKRLP",
            )
        )
    issues += check_code(row, "status", POST16_STATUSES, "POST16-STATUS")
    parse_date(row, "status_date", issues)
    known = context.pupils.get(row["upn"])
    if known and known[1] and known[1] != "11":
        issues.append(
            Issue(
                "POST16-NOT-YEAR-11",
                "query",
                "upn",
                f"the census has this pupil in NC year {known[1]}; post-16 transition covers Year 11",
            )
        )
    return issues


def validate_activity_row(row: dict[str, str], context: LoadContext) -> list[Issue]:
    """Row rules of an activity update file (ids in docs/returns.md)."""
    issues: list[Issue] = []
    if not (row["upn"] or row["uln"]):
        issues.append(Issue("ACTIVITY-NO-ID", "error", "upn", "each update needs a UPN or a ULN"))
    issues += check_upn(row, context, required=False)
    if row["uln"] and not _ULN.match(row["uln"]):
        issues.append(Issue("ACTIVITY-ULN", "error", "uln", f"{row['uln']!r} is not a ULN (10 digits)"))
    if not is_known_activity_code(row["activity_code"]):
        issues.append(
            Issue(
                "ACTIVITY-CODE-RANGE",
                "error",
                "activity_code",
                f"{row['activity_code']!r} is not an NCCIS activity code (110-150, 210-290, 310-381, "
                "410-460, 530, 540-619, 620-680, 710, 720, 810-830)",
            )
        )
    issues += check_code(row, "source", ACTIVITY_SOURCES, "ACTIVITY-SOURCE")
    on_date = parse_date(row, "activity_date", issues)
    known = context.pupils.get(row["upn"])
    if on_date and known and known[0] and known[0] <= on_date:
        age = academic_age(known[0], on_date)
        if age not in NCCIS_ACADEMIC_AGES:
            issues.append(
                Issue(
                    "ACTIVITY-COHORT-AGE",
                    "query",
                    "activity_date",
                    f"academic age {age} on {on_date}: NCCIS tracks academic ages 16 and 17",
                )
            )
    return issues


POST16 = CsvReturn(
    "post16",
    (CsvTable("post16", "post16_applications", POST16_COLUMNS, frozenset(POST16_COLUMNS), validate_post16_row),),
)
ACTIVITY = CsvReturn(
    "activity",
    (CsvTable("activity", "activity_updates", ACTIVITY_COLUMNS, frozenset(ACTIVITY_COLUMNS), validate_activity_row),),
)


def ensure_post16_schema(conn: psycopg.Connection) -> None:
    """Create ``raw.post16_applications`` and ``raw.activity_updates`` if missing."""
    ensure_csv_tables(conn, POST16)
    ensure_csv_tables(conn, ACTIVITY)


def load_post16_applications(conn: psycopg.Connection, path: Path, *, max_file_bytes: int = 2 * 1024**3) -> dict | None:
    """Load one post-16 applications and offers CSV."""
    return load_csv_return(conn, path, spec=POST16, max_file_bytes=max_file_bytes)


def load_activity_updates(conn: psycopg.Connection, path: Path, *, max_file_bytes: int = 2 * 1024**3) -> dict | None:
    """Load one young people's activity updates CSV."""
    return load_csv_return(conn, path, spec=ACTIVITY, max_file_bytes=max_file_bytes)


register_return("post16", load_post16_applications, description="Post-16 applications and offers: one .csv")
register_return("activity", load_activity_updates, description="Young people's activity updates (NCCIS): one .csv")
