"""Truth for the health (NCMP) gate: who should be in the feed on the feed date, and each child's BMI category.

Independent of the dbt models and of the BMI results the load stored: ``raw.ncmp_measurements`` is read as the
school sent it, each child's latest row is chosen in Python, and every child measured in the school year gets a BMI
SDS and centile afresh from rcpchgrowth's public ``sds_for_measurement`` (not the cached look-up
:func:`pupilshare.bmi.bmi_results` the load uses) and a category from :func:`pupilshare.bmi.population_category`
(the SQL uses dbt vars). A wrong threshold, join or year filter in the models makes the feed disagree and the gate
fail.

Grain of the truth: one row per child (UPN) in any NCMP export; pseudonymised rows (``PSN-``) are left out.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass

import pandas as pd
import psycopg
from rcpchgrowth import bmi_from_height_weight, centile, chronological_decimal_age, sds_for_measurement
from rcpchgrowth.constants import (
    MAXIMUM_BMI_ERROR_SDS,
    MAXIMUM_HEIGHT_WEIGHT_OFC_ERROR_SDS,
    MINIMUM_BMI_ERROR_SDS,
    MINIMUM_HEIGHT_WEIGHT_OFC_ERROR_SDS,
)

from pupilshare.bmi import REFERENCE, SEXES, population_category
from pupilshare.dates import age_in_years
from pupilshare.gates.truths.roll import table_exists
from pupilshare.optouts import Persistence
from pupilshare.policy import load_policy
from pupilshare.retention import PSEUDONYM_PREFIX

#: The NCMP export's reason for a parent's opt-out of the programme.
NCMP_OPT_OUT = "OPTOUT"
_NCMP_SQL = """
select _load_batch_id, _row_number, upn, date_of_birth, sex, school_year, measurement_date, height_cm, weight_kg,
       not_measured_reason
from raw.ncmp_measurements
where not _rejected
"""
_COLUMNS = [
    "upn", "date_of_birth", "age_on_feed_date", "is_in_cohort", "is_restricted", "restriction_reason",
    "gate_in_cohort", "gate_bmi_category",
]  # fmt: skip


@dataclass(frozen=True)
class NcmpRow:
    """One raw NCMP row (text as sent, trimmed), with its place in the load order."""

    load_batch_id: int
    row_number: int
    upn: str
    date_of_birth: str
    sex: str
    school_year: str
    measurement_date: str
    height_cm: str
    weight_kg: str
    not_measured_reason: str


def load_health_truth(
    conn: psycopg.Connection,
    feed_date: dt.date,
    *,
    persistence: Persistence = "persist",
    keys: Collection[str] | None = None,
) -> pd.DataFrame:
    """Who should be in the health feed on ``feed_date`` (``persistence`` is unused: NCMP has its own opt-out); with
    ``keys`` (the UPNs the feed names), only the children in the cohort or named by the feed."""
    if not table_exists(conn, "raw.ncmp_measurements"):
        return build_health_truth([], feed_date=feed_date)
    rows = [
        NcmpRow(batch, row, *((value or "").strip() for value in values))
        for batch, row, *values in conn.execute(_NCMP_SQL)
    ]
    return build_health_truth(rows, feed_date=feed_date, keys=keys)


def build_health_truth(rows: list[NcmpRow], *, feed_date: dt.date, keys: Collection[str] | None = None) -> pd.DataFrame:
    """The truth frame (see pupilshare.gates.feed): each child's latest row decides.

    ``is_in_cohort``: that row is a measurement in a policy school year (Reception, Year 6), taken in the school year
    of the feed date on or before it, that rcpchgrowth can classify. ``is_restricted``: that row says the child was
    not measured because of the NCMP opt-out. ``gate_bmi_category``: the category of a child in the cohort.
    """
    nc_years = load_policy().recipient("health").cohort.nc_years
    latest: dict[str, NcmpRow] = {}
    for row in sorted(rows, key=lambda item: (item.load_batch_id, item.row_number)):
        upn = row.upn.upper()
        if upn and not upn.startswith(PSEUDONYM_PREFIX):
            latest[upn] = row
    records = []
    for upn, row in sorted(latest.items()):
        dob = _date(row.date_of_birth)
        category = _category_this_year(row, dob, feed_date) if row.school_year.upper() in nc_years else None
        opted_out = row.not_measured_reason.upper() == NCMP_OPT_OUT
        if keys is not None and category is None and upn not in keys:
            continue  # neither in the cohort nor in the feed: nothing the gate compares
        records.append(
            (
                upn,
                dob,
                age_in_years(dob, feed_date) if dob and dob <= feed_date else None,
                category is not None,
                opted_out,
                f"NCMP export row {row.load_batch_id}-{row.row_number}: not measured, parental opt-out"
                if opted_out
                else None,
                category is not None,
                category,
            )
        )
    frame = pd.DataFrame.from_records(records, columns=_COLUMNS)
    frame["age_on_feed_date"] = frame["age_on_feed_date"].astype("Int64")
    return frame


def classify_with_rcpchgrowth(
    dob: dt.date, measured_on: dt.date, sex: str, height_cm: float, weight_kg: float
) -> tuple[float, str] | None:
    """``(centile, category)`` from rcpchgrowth's public functions, or None when it cannot classify (no reference
    for the age; a height, weight or BMI beyond its error limits)."""
    age = chronological_decimal_age(dob, measured_on)
    bmi = bmi_from_height_weight(height_cm, weight_kg)
    reference_sex = SEXES.get(sex.upper())
    if reference_sex is None:
        return None
    limits = {
        "height": (height_cm, MINIMUM_HEIGHT_WEIGHT_OFC_ERROR_SDS, MAXIMUM_HEIGHT_WEIGHT_OFC_ERROR_SDS),
        "weight": (weight_kg, MINIMUM_HEIGHT_WEIGHT_OFC_ERROR_SDS, MAXIMUM_HEIGHT_WEIGHT_OFC_ERROR_SDS),
        "bmi": (bmi, MINIMUM_BMI_ERROR_SDS, MAXIMUM_BMI_ERROR_SDS),
    }
    sds = {}
    try:
        for method, (value, low, high) in limits.items():
            sds[method] = sds_for_measurement(REFERENCE, age, method, value, reference_sex)
            if not low <= sds[method] <= high:
                return None
    except LookupError:
        return None
    bmi_centile = float(centile(sds["bmi"]))
    return bmi_centile, population_category(bmi_centile)


def _category_this_year(row: NcmpRow, dob: dt.date | None, feed_date: dt.date) -> str | None:
    measured_on = _date(row.measurement_date)
    if row.not_measured_reason or dob is None or measured_on is None or measured_on > feed_date:
        return None
    if _academic_year(measured_on) != _academic_year(feed_date):
        return None
    try:
        height, weight = float(row.height_cm), float(row.weight_kg)
    except ValueError:
        return None
    result = classify_with_rcpchgrowth(dob, measured_on, row.sex, height, weight)
    return result[1] if result else None


def _academic_year(day: dt.date) -> int:
    """The year the academic year of ``day`` starts in (1 September)."""
    return day.year if day.month >= 9 else day.year - 1


def _date(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None
