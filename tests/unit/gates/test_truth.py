"""The YSS truth folds raw census rows into one row per UPN: ages on the feed date, cohort, restriction."""

from __future__ import annotations

import datetime as dt

from pupilshare.gates.truth import TRUTH_COLUMNS, RawPupilRow, build_yss_truth

FEED_DATE = dt.date(2026, 3, 1)


def _truth(*rows: RawPupilRow):
    frame = build_yss_truth(rows, feed_date=FEED_DATE, min_age_years=13, load_batch_id=7)
    return frame, {record["upn"]: record for record in frame.to_dict("records")}


def test_build_yss_truth__ages_cohort_and_restriction():
    """
    upn  dob                    yssa   age on 2026-03-01  in cohort  restricted
    A    2013-Mar-01 00:00:00   Yes    13 (birthday)      yes        no
    B    2013-Mar-02 00:00:00   No     12                 no         yes
    C    2012-Feb-29 00:00:00   UNS    14 (from 1 March)  yes        no
    D    2010-Mar-01 00:00:00   No     16                 yes        yes
    """
    frame, by_upn = _truth(
        RawPupilRow("A", "2013-Mar-01 00:00:00", "Yes", 1),
        RawPupilRow("B", "2013-Mar-02 00:00:00", "No", 2),
        RawPupilRow("C", "2012-Feb-29 00:00:00", "UNS", 3),
        RawPupilRow("D", "2010-Mar-01 00:00:00", "No", 4),
    )
    assert tuple(frame.columns) == TRUTH_COLUMNS
    assert {upn: r["age_on_feed_date"] for upn, r in by_upn.items()} == {"A": 13, "B": 12, "C": 14, "D": 16}
    assert {upn for upn, r in by_upn.items() if r["is_in_cohort"]} == {"A", "C", "D"}
    assert {upn for upn, r in by_upn.items() if r["is_restricted"]} == {"B", "D"}
    assert by_upn["D"]["restriction_reason"] == "census item yssa = 'No' (load batch 7, pupilonroll row 4)"
    assert by_upn["A"]["restriction_reason"] is None
    assert by_upn["A"]["date_of_birth"] == dt.date(2013, 3, 1)


def test_build_yss_truth__dual_registration_is_one_row_restricted_if_any_row_says_no():
    frame, by_upn = _truth(
        RawPupilRow("E", "2012-Jan-01 00:00:00", "Yes", 1),
        RawPupilRow(" e ", "2012-Jan-01 00:00:00", "no ", 9),
    )
    assert len(frame) == 1
    assert by_upn["E"]["is_restricted"]
    assert "row 9" in by_upn["E"]["restriction_reason"]


def test_build_yss_truth__conflicting_dates_of_birth_take_the_later():
    _, by_upn = _truth(
        RawPupilRow("F", "2013-Feb-01 00:00:00", "Yes", 1),
        RawPupilRow("F", "2013-Apr-01 00:00:00", "Yes", 2),
    )
    assert by_upn["F"]["date_of_birth"] == dt.date(2013, 4, 1)
    assert by_upn["F"]["age_on_feed_date"] == 12 and not by_upn["F"]["is_in_cohort"]


def test_build_yss_truth__unknown_age_is_null_and_not_in_cohort():
    frame, by_upn = _truth(
        RawPupilRow("G", "", "Yes", 1),
        RawPupilRow("H", "not a date", "SNR", 2),
        RawPupilRow("J", "2027-Jan-01 00:00:00", "", 3),  # after the feed date
        RawPupilRow("", "2010-Jan-01 00:00:00", "", 4),  # no UPN: cannot be keyed
        RawPupilRow(None, None, None, 5),
    )
    assert sorted(by_upn) == ["G", "H", "J"]
    assert frame["age_on_feed_date"].isna().all()
    assert not frame["is_in_cohort"].any()
    assert all(record["date_of_birth"] in (None, dt.date(2027, 1, 1)) for record in by_upn.values())


def test_build_yss_truth__no_rows_is_an_empty_frame_with_the_columns():
    frame, _ = _truth()
    assert frame.empty and tuple(frame.columns) == TRUTH_COLUMNS
    assert str(frame["age_on_feed_date"].dtype) == "Int64"
