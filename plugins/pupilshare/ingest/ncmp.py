"""Load National Child Measurement Programme (NCMP) exports: one CSV per file set, one row per Reception or Year 6
child, measured or with the reason they were not.

Layout and rules: docs/returns.md, "NCMP measurements".

In the same transaction as the rows, every measured row that loaded (not rejected) gets its BMI, BMI SDS and BMI
centile on the UK-WHO reference from rcpchgrowth (:mod:`pupilshare.bmi`) in ``raw.ncmp_bmi_results``, keyed by the
measurement (load batch and row). dbt on PostgreSQL cannot call Python, so this is the one place they are computed;
the NCMP category is then decided in dbt from the centile. A measurement rcpchgrowth cannot classify gets a row with
no SDS and its reason, and a query finding ``NCMP-BMI-UNCLASSIFIED``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import psycopg

from pupilshare.bmi import RCPCHGROWTH_VERSION, REFERENCE, Measured, bmi_results
from pupilshare.findings import Finding
from pupilshare.ingest.inbox import register_return
from pupilshare.ingest.tabular import (
    CsvReturn,
    CsvTable,
    Issue,
    LoadContext,
    check_code,
    check_required,
    check_upn,
    ensure_csv_tables,
    load_csv_return,
    parse_date,
)

RETURN_TYPE = "ncmp"
COLUMNS = (
    "upn", "forename", "surname", "date_of_birth", "sex", "school_urn", "school_year",
    "measurement_date", "height_cm", "weight_kg", "not_measured_reason",
)  # fmt: skip
#: Why a child was not measured: parental opt-out, absent on the day(s), child refused, physical disability
#: preventing an accurate measurement, left the school before measurement.
NOT_MEASURED_REASONS = frozenset({"OPTOUT", "ABSENT", "REFUSED", "DISABILITY", "LEFT"})
SCHOOL_YEARS = frozenset({"R", "6"})
#: Plausibility bounds from the issue: a value outside is a measurement or keying error, never a real child.
HEIGHT_CM = (50.0, 220.0)
WEIGHT_KG = (8.0, 200.0)


def validate_ncmp_row(row: dict[str, str], context: LoadContext) -> list[Issue]:
    """Row rules of an NCMP export (ids in docs/returns.md)."""
    issues = check_required(row, ("forename", "surname", "school_urn")) + check_upn(row, context)
    issues += check_code(row, "sex", {"M", "F"}, "NCMP-SEX")
    issues += check_code(row, "school_year", SCHOOL_YEARS, "NCMP-YEAR-GROUP")
    dob = parse_date(row, "date_of_birth", issues)
    measured_on = parse_date(row, "measurement_date", issues, required=False)
    measured = bool(row["height_cm"] or row["weight_kg"])
    if row["not_measured_reason"]:
        issues += check_code(row, "not_measured_reason", NOT_MEASURED_REASONS, "NCMP-REASON-UNKNOWN")
        if measured:
            issues.append(
                Issue(
                    "NCMP-MEASURED-AND-REASON",
                    "error",
                    "not_measured_reason",
                    "the row has a measurement and a reason for not measuring; keep one",
                )
            )
        return issues
    if not (measured and measured_on):
        issues.append(
            Issue(
                "NCMP-NO-OUTCOME",
                "error",
                "not_measured_reason",
                "give measurement_date, height_cm and weight_kg, or a not_measured_reason",
            )
        )
        return issues
    issues += _check_range(row, "height_cm", HEIGHT_CM, "NCMP-HEIGHT-RANGE", "cm")
    issues += _check_range(row, "weight_kg", WEIGHT_KG, "NCMP-WEIGHT-RANGE", "kg")
    if dob and measured_on and measured_on < dob:
        issues.append(
            Issue(
                "NCMP-MEASURED-BEFORE-BIRTH",
                "error",
                "measurement_date",
                f"measured on {measured_on} but born on {dob}: one of the dates is wrong",
            )
        )
    known = context.pupils.get(row["upn"])
    if known and dob and known[0] and known[0] != dob:
        issues.append(
            Issue(
                "NCMP-DOB-MISMATCH", "query", "date_of_birth", f"the census has date of birth {known[0]} for this UPN"
            )
        )
    return issues


def _check_range(row: dict[str, str], column: str, bounds: tuple[float, float], rule: str, unit: str) -> list[Issue]:
    try:
        value = float(row[column])
    except ValueError:
        return [Issue(rule, "error", column, f"{row[column]!r} is not a number of {unit}")]
    if not bounds[0] <= value <= bounds[1]:
        return [
            Issue(
                rule,
                "error",
                column,
                f"{value:g} {unit} is impossible for a child (allowed {bounds[0]:g}-{bounds[1]:g} {unit}); "
                "re-check the measurement record",
            )
        ]
    return []


BMI_RESULTS_DDL = """
create table if not exists raw.ncmp_bmi_results (
    _load_batch_id bigint not null references raw.load_batches (load_batch_id),
    _row_number bigint not null,
    reference text not null,
    rcpchgrowth_version text not null,
    bmi double precision not null,
    bmi_sds double precision,
    bmi_centile double precision,
    unclassified_reason text,
    primary key (_load_batch_id, _row_number),
    check ((bmi_sds is null) = (unclassified_reason is not null)),
    check ((bmi_sds is null) = (bmi_centile is null))
);
comment on table raw.ncmp_bmi_results is
    'One row per measured NCMP row that loaded (raw.ncmp_measurements, same load batch and row number): BMI, '
    'BMI SDS and centile on the UK-WHO reference from rcpchgrowth, computed at load; no SDS and a reason when it '
    'cannot classify.';
"""
_MEASURED_SQL = """
select _row_number, date_of_birth, measurement_date, sex, height_cm, weight_kg
from raw.ncmp_measurements
where _load_batch_id = %s and not _rejected and coalesce(not_measured_reason, '') = ''
order by _row_number
"""


def derive_bmi_results(conn: psycopg.Connection, load_batch_id: int, source_name: str) -> list[Finding]:
    """Write ``raw.ncmp_bmi_results`` for one batch (inside its load transaction); a finding per unclassified row.

    Only rows that passed every error rule reach here, so dates, sex and numbers are well formed. The decimal age is
    not stored: with the measurement date it would give back the exact date of birth that retention coarsens.
    """
    rows = conn.execute(_MEASURED_SQL, (load_batch_id,)).fetchall()
    measured = [
        Measured(dt.date.fromisoformat(dob), dt.date.fromisoformat(measured_on), sex, float(height), float(weight))
        for _, dob, measured_on, sex, height, weight in rows
    ]
    results = bmi_results(measured)
    findings = []
    statement = (
        "copy raw.ncmp_bmi_results (_load_batch_id, _row_number, reference, rcpchgrowth_version, bmi, bmi_sds, "
        "bmi_centile, unclassified_reason) from stdin"
    )
    with conn.cursor() as cursor, cursor.copy(statement) as copy:
        for (row_number, *_), result in zip(rows, results, strict=True):
            copy.write_row(
                (load_batch_id, row_number, REFERENCE, RCPCHGROWTH_VERSION, result.bmi, result.bmi_sds,
                 result.bmi_centile, result.unclassified_reason)
            )  # fmt: skip
            if result.unclassified_reason:
                findings.append(
                    Finding(
                        source_name,
                        "NCMP-BMI-UNCLASSIFIED",
                        "query",
                        f"rcpchgrowth cannot give a BMI centile: {result.unclassified_reason}. The child is left out "
                        "of the health feed and the statistics until the school or NCMP team corrects the row",
                        "ncmp_measurements",
                        row_number,
                        "height_cm",
                    )
                )
    return findings


NCMP = CsvReturn(
    RETURN_TYPE,
    (CsvTable("ncmp", "ncmp_measurements", COLUMNS, frozenset(COLUMNS), validate_ncmp_row, key=("upn",)),),
    derive=derive_bmi_results,
)


def ensure_ncmp_schema(conn: psycopg.Connection) -> None:
    """Create ``raw.ncmp_measurements`` (one row per child per export) and ``raw.ncmp_bmi_results`` if missing."""
    ensure_csv_tables(conn, NCMP)
    conn.execute(BMI_RESULTS_DDL)


def load_ncmp_export(conn: psycopg.Connection, path: Path, *, max_file_bytes: int = 2 * 1024**3) -> dict | None:
    """Load one NCMP export CSV (see :func:`pupilshare.ingest.tabular.load_csv_return`) and its BMI results."""
    with conn.transaction():
        ensure_ncmp_schema(conn)
    return load_csv_return(conn, path, spec=NCMP, max_file_bytes=max_file_bytes)


register_return(RETURN_TYPE, load_ncmp_export, description="NCMP measurements export: one .csv per file set")
