"""BMI, BMI SDS and BMI centile of NCMP measurements on the UK-WHO reference, with rcpchgrowth (RCPCH).

The UK-WHO reference (``uk-who``) uses UK90 from age 4, so every Reception and Year 6 child is measured against UK90:
for a child of decimal age *t* (days / 365.25) and sex, UK90 gives the Box-Cox parameters L, M and S (interpolated
between monthly entries) and

    SDS = ((BMI / M) ** L - 1) / (L * S),    centile = 100 * Phi(SDS)

rcpchgrowth holds the UK90 tables and does the arithmetic; nothing here re-implements it. Two ways in:

- :func:`bmi_results` (ingest, many children at once): rcpchgrowth's own LMS look-up (``fetch_lms``), cached per
  sex and age (a county's ~20,000 measurements share ~2,000 ages to the day), its ``z_score`` and its ``centile``
  over the whole batch as one array. About 13x faster than calling ``sds_for_measurement`` per child, and equal
  to it (tests/unit/test_bmi.py compares the two).
- the gate's truth (``pupilshare.gates.truths.health``) calls the public ``sds_for_measurement`` per child instead,
  so the two paths check each other.

A measurement rcpchgrowth cannot classify is not guessed at: :class:`BmiResult` then has no SDS and says why
(no reference data for the age, or a value rcpchgrowth's ``Measurement`` would call an error: BMI SDS beyond +-15,
height or weight SDS beyond +-8).

The NCMP population categories are decided in dbt (``int_ncmp_measurements_classified``) from the centile; the
thresholds below are the same national definitions, kept here for the gate's independent check.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import rcpchgrowth
from rcpchgrowth import bmi_from_height_weight, centile, chronological_decimal_age
from rcpchgrowth.constants import (
    MAXIMUM_BMI_ERROR_SDS,
    MAXIMUM_HEIGHT_WEIGHT_OFC_ERROR_SDS,
    MINIMUM_BMI_ERROR_SDS,
    MINIMUM_HEIGHT_WEIGHT_OFC_ERROR_SDS,
)
from rcpchgrowth.global_functions import fetch_lms, lms_value_array_for_measurement_for_reference, z_score

#: The reference NCMP uses: UK-WHO, which is UK90 from age 4 (SHARING_RULES.md, "Domain facts").
REFERENCE = "uk-who"
RCPCHGROWTH_VERSION: str = rcpchgrowth.__version__
SEXES = {"M": "male", "F": "female"}

#: NCMP population monitoring categories on the UK90 BMI centile (SHARING_RULES.md, "Domain facts"; OHID, "National
#: Child Measurement Programme: operational guidance"). Each bound is inclusive ("at or below", "at or above").
UNDERWEIGHT_AT_OR_BELOW_CENTILE = 2.0
OVERWEIGHT_AT_OR_ABOVE_CENTILE = 85.0
OBESE_AT_OR_ABOVE_CENTILE = 95.0
SEVERELY_OBESE_AT_OR_ABOVE_CENTILE = 99.6
#: Category codes as delivered (``bmi_category``), lowest first. Severely obese children are also obese (NCMP counts
#: them in both); the code names the narrowest category.
CATEGORIES = ("underweight", "healthy_weight", "overweight", "obese", "severely_obese")


@dataclass(frozen=True)
class Measured:
    """One measured child as the NCMP export holds them (already validated at load)."""

    date_of_birth: dt.date
    measurement_date: dt.date
    sex: str  # M or F
    height_cm: float
    weight_kg: float


@dataclass(frozen=True)
class BmiResult:
    """rcpchgrowth's result for one measurement: ``bmi_sds`` and ``bmi_centile`` are None when it cannot classify,
    and ``unclassified_reason`` says why."""

    age_years: float
    bmi: float
    bmi_sds: float | None
    bmi_centile: float | None
    unclassified_reason: str | None = None


def population_category(bmi_centile: float) -> str:
    """The NCMP population category of a UK90 BMI centile (thresholds above, each bound inclusive)."""
    if bmi_centile <= UNDERWEIGHT_AT_OR_BELOW_CENTILE:
        return "underweight"
    if bmi_centile >= SEVERELY_OBESE_AT_OR_ABOVE_CENTILE:
        return "severely_obese"
    if bmi_centile >= OBESE_AT_OR_ABOVE_CENTILE:
        return "obese"
    if bmi_centile >= OVERWEIGHT_AT_OR_ABOVE_CENTILE:
        return "overweight"
    return "healthy_weight"


def bmi_results(measurements: Iterable[Measured]) -> list[BmiResult]:
    """BMI, BMI SDS and centile of every measurement, in order (see the module docstring)."""
    partial: list[tuple[float, float, float | None, str | None]] = []
    for item in measurements:
        partial.append(_bmi_sds(item))
    sds = np.array([value if value is not None else 0.0 for _, _, value, _ in partial], dtype=float)
    centiles = centile(sds) if len(sds) else np.array([])
    return [
        BmiResult(age, bmi, None, None, reason)
        if value is None
        else BmiResult(age, bmi, float(value), float(centiles[index]))
        for index, (age, bmi, value, reason) in enumerate(partial)
    ]


def _bmi_sds(item: Measured) -> tuple[float, float, float | None, str | None]:
    """``(age, bmi, sds or None, reason or None)`` for one measurement."""
    age = chronological_decimal_age(item.date_of_birth, item.measurement_date)
    bmi = bmi_from_height_weight(item.height_cm, item.weight_kg)
    sex = SEXES.get(item.sex)
    if sex is None:
        return age, bmi, None, f"sex {item.sex!r} is not M or F: the reference is by sex"
    try:
        height_sds = z_score(*_lms("height", sex, age), item.height_cm)
        weight_sds = z_score(*_lms("weight", sex, age), item.weight_kg)
        bmi_sds = z_score(*_lms("bmi", sex, age), bmi)
    except LookupError as error:  # rcpchgrowth: no reference data for this age
        return age, bmi, None, f"no {REFERENCE} reference at age {age:.2f} years ({error})"
    for name, value, low, high, unit in (
        ("height", height_sds, MINIMUM_HEIGHT_WEIGHT_OFC_ERROR_SDS, MAXIMUM_HEIGHT_WEIGHT_OFC_ERROR_SDS, "cm"),
        ("weight", weight_sds, MINIMUM_HEIGHT_WEIGHT_OFC_ERROR_SDS, MAXIMUM_HEIGHT_WEIGHT_OFC_ERROR_SDS, "kg"),
        ("BMI", bmi_sds, MINIMUM_BMI_ERROR_SDS, MAXIMUM_BMI_ERROR_SDS, "kg/m2"),
    ):
        if not low <= value <= high:
            shown = {"height": item.height_cm, "weight": item.weight_kg, "BMI": round(bmi, 1)}[name]
            reason = (
                f"{name} {shown} {unit} is {value:+.1f} SDS at age {age:.2f} years, beyond rcpchgrowth's error "
                f"limit of {low:+g} to {high:+g} SDS: a measurement or keying error"
            )
            return age, bmi, None, reason
    return age, bmi, bmi_sds, None


@functools.lru_cache(maxsize=65536)
def _lms(measurement_method: str, sex: str, age: float) -> tuple[float, float, float]:
    """L, M, S of the UK-WHO reference for one measurement method, sex and decimal age (rcpchgrowth's tables)."""
    table = lms_value_array_for_measurement_for_reference(
        reference=REFERENCE, age=age, measurement_method=measurement_method, sex=sex, default_youngest_reference=False
    )
    lms = fetch_lms(age=age, lms_value_array_for_measurement=table)
    return lms["l"], lms["m"], lms["s"]
