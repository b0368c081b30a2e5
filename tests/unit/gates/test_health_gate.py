"""The health (NCMP) gate: truth from raw NCMP rows with rcpchgrowth, and the GX suite on planted leaks.

Raw NCMP rows, feed date 2026-11-30 (school year 2026/27)::

    child  batch-row  as sent                                          truth
    A      1-1        Year 6 boy, measured 2026-10-02, 140.0 cm 40.5 kg  in, overweight (centile 94.2)
    B      1-2        Year 6 girl, measured 2026-09-20, 150 cm 30 kg     measured ...
    B      2-1        OPTOUT                                            ... then opted out: restricted, not in cohort
    C      1-3        Reception girl measured 2026-05-12 (last year)    not in cohort
    D      1-4        Year 6 boy, 80 cm (height beyond -8 SDS)          not in cohort (rcpchgrowth cannot classify)
    E      1-5        Year 6 girl, measured 2026-12-01                  not in cohort (after the feed date)
    F      1-6        Year 3 girl, measured 2026-10-02                  not in cohort (not an NCMP year)
    PSN-x  1-7        pseudonymised                                     not in the truth

A clean feed is one row, A's; every leak below changes or adds one row.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from pupilshare.gates import run_feed_gate
from pupilshare.gates.feed import expected_row_count
from pupilshare.gates.truths.health import NcmpRow, build_health_truth, classify_with_rcpchgrowth
from pupilshare.policy import load_policy

FEED_DATE = dt.date(2026, 11, 30)
HEALTH = load_policy().recipient("health")
ROWS = [
    NcmpRow(1, 1, "a926400112001", "2016-02-01", "M", "6", "2026-10-02", "140.0", "40.5", ""),
    NcmpRow(1, 2, "B926400112001", "2016-01-20", "F", "6", "2026-09-20", "150.0", "30.0", ""),
    NcmpRow(2, 1, "B926400112001", "2016-01-20", "F", "6", "", "", "", "OPTOUT"),
    NcmpRow(1, 3, "C926400112001", "2021-01-10", "F", "R", "2026-05-12", "110.0", "17.6", ""),
    NcmpRow(1, 4, "D926400112001", "2016-02-01", "M", "6", "2026-10-02", "80.0", "25.0", ""),
    NcmpRow(1, 5, "E926400112001", "2016-02-01", "F", "6", "2026-12-01", "140.0", "35.0", ""),
    NcmpRow(1, 6, "F926400112001", "2019-02-01", "F", "3", "2026-10-02", "125.0", "25.0", ""),
    NcmpRow(1, 7, "PSN-0123456789abcdef01234567", "2016-02-01", "M", "6", "2026-10-02", "140.0", "40.5", ""),
]


def _truth() -> pd.DataFrame:
    return build_health_truth(ROWS, feed_date=FEED_DATE)


def _row(upn: str, category: str = "overweight") -> dict:
    return {
        "ledger_upn": upn,
        "forename": "Synthetic",
        "surname": "Child",
        "date_of_birth": dt.date(2016, 2, 1),
        "sex": "M",
        "address_line_1": "1 Synthetic Street",
        "address_line_2": None,
        "town": "Norwich",
        "postcode": "NR1 1AA",
        "school_urn": 120001,
        "school_name": "Synthetic Primary",
        "nc_year": "6",
        "measurement_date": dt.date(2026, 10, 2),
        "height_cm": 140.0,
        "weight_kg": 40.5,
        "bmi": 20.7,
        "bmi_sds": 1.57,
        "bmi_centile": 94.1,
        "bmi_category": category,
    }


def _gate(rows: list[dict], tmp_path):
    feed = pd.DataFrame(rows, columns=list(HEALTH.mart_columns))
    return run_feed_gate(
        feed, _truth(), recipient=HEALTH, feed_date=FEED_DATE, run_id="unit", data_docs_dir=tmp_path / "docs"
    )


def _failed_checks(result) -> set[str]:
    return {failure.split(":", 1)[0].split("[", 1)[0] for failure in result.failures}


def test_build_health_truth__latest_row_year_and_rcpchgrowth_decide():
    truth = _truth().set_index("upn")
    assert sorted(truth.index) == [f"{letter}926400112001" for letter in "ABCDEF"], "PSN- rows are not in the truth"
    assert truth.loc["A926400112001", "gate_bmi_category"] == "overweight"
    assert truth["is_in_cohort"].sum() == 1
    assert truth.loc["B926400112001", "is_restricted"] and not truth.loc["B926400112001", "is_in_cohort"]
    assert "2-1" in truth.loc["B926400112001", "restriction_reason"]
    assert expected_row_count(HEALTH, truth.reset_index()) == 1


def test_classify_with_rcpchgrowth__worked_example_and_limits():
    """The Year 6 boy of tests/unit/test_bmi.py: centile 94.18, overweight; 80 cm at 10 cannot be classified."""
    centile, category = classify_with_rcpchgrowth(dt.date(2016, 2, 1), dt.date(2026, 10, 2), "M", 140.0, 40.5)
    assert centile == pytest.approx(94.18, abs=0.01) and category == "overweight"
    assert classify_with_rcpchgrowth(dt.date(2016, 2, 1), dt.date(2026, 10, 2), "M", 80.0, 25.0) is None
    assert classify_with_rcpchgrowth(dt.date(2000, 1, 1), dt.date(2026, 10, 2), "M", 140.0, 40.5) is None


def test_health_gate__clean_feed_passes(tmp_path):
    result = _gate([_row("A926400112001")], tmp_path)
    assert result.success, result.failures


@pytest.mark.parametrize(
    ("rows", "check"),
    [
        ([_row("A926400112001", "healthy_weight")], "category_matches_rcpchgrowth"),
        ([_row("A926400112001"), _row("B926400112001")], "opted_out_child_absent"),
        ([_row("A926400112001"), _row("C926400112001")], "measured_this_school_year"),
        ([_row("A926400112001"), _row("E926400112001")], "measured_this_school_year"),
        ([_row("A926400112001"), _row("Z926400112001")], "child_in_ncmp_return"),
        ([], "every_child_present"),
        ([{**_row("A926400112001"), "forename": None}], "identity_present"),
    ],
    ids=["wrong_category", "opted_out", "last_year", "after_feed_date", "unknown", "child_dropped", "no_name"],
)
def test_health_gate__planted_leak_fails(rows, check, tmp_path):
    result = _gate(rows, tmp_path)
    assert not result.success
    assert check in _failed_checks(result), result.failures


def test_health_gate__extra_column_fails(tmp_path):
    feed = pd.DataFrame([_row("A926400112001")], columns=list(HEALTH.mart_columns)).assign(upn="A926400112001")
    result = run_feed_gate(
        feed, _truth(), recipient=HEALTH, feed_date=FEED_DATE, run_id="unit", data_docs_dir=tmp_path / "docs"
    )
    assert "columns_match_policy" in _failed_checks(result)
