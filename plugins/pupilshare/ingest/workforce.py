"""Load School Workforce Census (SWC) returns: a folder per file set with ``staff.csv``, ``contracts.csv``,
``absence.csv`` and ``vacancies.csv`` (the DfE SWC modules, flattened; one set may hold many schools).

Staff are pseudonymous: a staff id per school plus the teacher reference number (TRN), no names.
Layout and rules: docs/returns.md, "School Workforce Census".
"""

from __future__ import annotations

import re
from pathlib import Path

import psycopg

from pupilshare.ingest.inbox import register_return
from pupilshare.ingest.tabular import (
    CsvReturn,
    CsvTable,
    Issue,
    LoadContext,
    check_code,
    check_required,
    ensure_csv_tables,
    load_csv_return,
    parse_date,
)

RETURN_TYPE = "workforce"
STAFF_COLUMNS = ("lea", "estab", "staff_id", "teacher_reference_number", "gender", "date_of_birth", "ethnicity",
                 "qt_status")  # fmt: skip
CONTRACT_COLUMNS = ("lea", "estab", "staff_id", "contract_id", "contract_type", "role", "start_date", "end_date",
                    "fte", "hours_per_week")  # fmt: skip
ABSENCE_COLUMNS = ("lea", "estab", "staff_id", "first_day", "last_day", "working_days_lost", "absence_category")
VACANCY_COLUMNS = ("lea", "estab", "vacancy_id", "post", "tenure", "subject", "temporarily_filled")
#: DfE SWC contract types: permanent, fixed term, temporary (under a year), service agreement, agency.
CONTRACT_TYPES = frozenset({"PRM", "FXT", "TMP", "SLA", "AGY"})
#: DfE SWC role identifiers (a subset): head, executive head, deputy, assistant head, classroom teacher, leading
#: practitioner, teaching assistant, higher level TA, support staff, administrative staff, technician.
ROLES = frozenset({"HDT", "EXH", "DHT", "AHT", "TCH", "LDT", "TAS", "HLT", "SUP", "ADM", "TEC"})
VACANCY_POSTS = frozenset({"HDT", "DHT", "AHT", "TCH", "LDT"})
ABSENCE_CATEGORIES = frozenset({"SIC", "PRG"})  # sickness, pregnancy-related sickness
GENDERS = frozenset({"M", "F"})
_TRN = re.compile(r"^\d{7}$")
_MAX_DAYS_LOST = 195  # teachers' directed days in a school year: more cannot be lost in one absence record


def validate_staff_row(row: dict[str, str], context: LoadContext) -> list[Issue]:
    issues = check_required(row, ("lea", "estab", "staff_id")) + _check_school(row, context)
    trn = row["teacher_reference_number"]
    if trn and not _TRN.match(trn):
        issues.append(Issue("SWC-TRN", "error", "teacher_reference_number", f"{trn!r} is not a TRN (7 digits)"))
    if row["qt_status"] == "true" and not trn:
        issues.append(
            Issue(
                "SWC-TRN-MISSING",
                "query",
                "teacher_reference_number",
                "a teacher with qualified teacher status needs a TRN; find it on the Teacher Services",
            )
        )
    issues += check_code(row, "qt_status", {"true", "false"}, "SWC-CODE")
    issues += check_code(row, "gender", GENDERS, "SWC-CODE")
    parse_date(row, "date_of_birth", issues)
    context.state.setdefault("workforce.staff", set()).add((row["lea"], row["estab"], row["staff_id"]))
    return issues


def validate_contract_row(row: dict[str, str], context: LoadContext) -> list[Issue]:
    issues = check_required(row, ("contract_id",)) + _check_staff_known(row, context)
    issues += check_code(row, "contract_type", CONTRACT_TYPES, "SWC-CODE")
    issues += check_code(row, "role", ROLES, "SWC-CODE")
    start = parse_date(row, "start_date", issues)
    end = parse_date(row, "end_date", issues, required=row["contract_type"] in {"FXT", "TMP"})
    if start and end and end < start:
        issues.append(Issue("SWC-DATES", "error", "end_date", f"the contract ends ({end}) before it starts ({start})"))
    try:
        fte = float(row["fte"])
    except ValueError:
        fte = -1.0
    if not 0 < fte <= 1:
        issues.append(Issue("SWC-FTE", "error", "fte", f"FTE {row['fte']!r} must be a number above 0 and at most 1"))
    return issues


def validate_absence_row(row: dict[str, str], context: LoadContext) -> list[Issue]:
    issues = _check_staff_known(row, context)
    issues += check_code(row, "absence_category", ABSENCE_CATEGORIES, "SWC-CODE")
    first = parse_date(row, "first_day", issues)
    last = parse_date(row, "last_day", issues, required=False)
    if first and last and last < first:
        issues.append(Issue("SWC-DATES", "error", "last_day", f"the absence ends ({last}) before it starts ({first})"))
    try:
        days = float(row["working_days_lost"])
    except ValueError:
        days = -1.0
    if not 0 < days <= _MAX_DAYS_LOST or (first and last and days > (last - first).days + 1):
        issues.append(
            Issue(
                "SWC-DAYS-LOST",
                "error",
                "working_days_lost",
                f"{row['working_days_lost']!r} working days lost is impossible for this absence",
            )
        )
    return issues


def validate_vacancy_row(row: dict[str, str], context: LoadContext) -> list[Issue]:
    issues = check_required(row, ("vacancy_id",)) + _check_school(row, context)
    issues += check_code(row, "post", VACANCY_POSTS, "SWC-CODE")
    issues += check_code(row, "tenure", {"PRM", "FXT"}, "SWC-CODE")
    issues += check_code(row, "temporarily_filled", {"true", "false"}, "SWC-CODE")
    return issues


def _check_school(row: dict[str, str], context: LoadContext) -> list[Issue]:
    if context.schools and (row["lea"], row["estab"]) not in context.schools:
        return [
            Issue(
                "SWC-SCHOOL-UNKNOWN",
                "query",
                "estab",
                f"school {row['lea']}/{row['estab']} is not in the loaded census",
            )
        ]
    return []


def _check_staff_known(row: dict[str, str], context: LoadContext) -> list[Issue]:
    if (row["lea"], row["estab"], row["staff_id"]) not in context.state.get("workforce.staff", set()):
        return [
            Issue(
                "SWC-STAFF-UNKNOWN",
                "error",
                "staff_id",
                f"staff id {row['staff_id']!r} of school {row['lea']}/{row['estab']} is not in staff.csv",
            )
        ]
    return []


WORKFORCE = CsvReturn(
    RETURN_TYPE,
    (
        CsvTable(
            "staff",
            "swc_staff",
            STAFF_COLUMNS,
            frozenset(STAFF_COLUMNS),
            validate_staff_row,
            key=("lea", "estab", "staff_id"),
        ),
        CsvTable(
            "contracts",
            "swc_contracts",
            CONTRACT_COLUMNS,
            frozenset(CONTRACT_COLUMNS),
            validate_contract_row,
            key=("lea", "estab", "contract_id"),
        ),
        CsvTable("absence", "swc_absences", ABSENCE_COLUMNS, frozenset(ABSENCE_COLUMNS), validate_absence_row),
        CsvTable(
            "vacancies",
            "swc_vacancies",
            VACANCY_COLUMNS,
            frozenset(VACANCY_COLUMNS),
            validate_vacancy_row,
            key=("lea", "estab", "vacancy_id"),
        ),
    ),
    folder=True,
)


def ensure_workforce_schema(conn: psycopg.Connection) -> None:
    """Create ``raw.swc_staff``, ``raw.swc_contracts``, ``raw.swc_absences`` and ``raw.swc_vacancies`` if missing."""
    ensure_csv_tables(conn, WORKFORCE)


def load_workforce_census(conn: psycopg.Connection, path: Path, *, max_file_bytes: int = 2 * 1024**3) -> dict | None:
    """Load one workforce census folder; staff.csv loads first so contracts and absences can be checked against it."""
    return load_csv_return(conn, path, spec=WORKFORCE, max_file_bytes=max_file_bytes)


register_return(RETURN_TYPE, load_workforce_census, description="School Workforce Census: a folder of 4 CSVs")
