"""The NCCIS gate: truth from raw rows (cohort by academic age, activity precedence, restriction), the policy's
restricted_extra_fields, and the GX suite on planted leaks.

Truth, feed date 2026-11-29 (academic year 2026/27: ages on 2026-08-31), census day 2026-10-01::

    upn  year  born        restricted  returns                                           activity       offer
    A    12    2010-08-31  no          roll 210                                          210 2026-10-01  -
    B    12    2010-01-10  yes         roll 210, YSS 610 10-15, provider 320 11-01       610 2026-10-15  -
    C    13    2009-05-05  yes         roll 210, provider 320 11-01                      810 none        -
    D    11    2011-02-02  no          roll 110, offered by 10000001 2026-11-20          110 2026-10-01  true
    E    11    2011-03-03  yes         roll 110, offered                                 810 none        none
    F    10    2010-06-06  no          (academic age 16 in Year 10)                      810 none        -
    G    10    2010-09-01  no          academic age 15, Year 10: out
    H    13    2008-08-31  no          academic age 18: out
    I    12    2010-04-04  no          roll 210, enrolled 10000002 2026-10-20, update
                                       540 dated 2026-11-30 (after the feed date)        230 2026-10-20  -
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import yaml
from pydantic import ValidationError

from pupilshare.gates import run_feed_gate
from pupilshare.gates.truths.nccis import (
    SEEDS_DIR,
    ActivityEvent,
    ActivityMappingError,
    build_nccis_truth,
    read_code_map,
)
from pupilshare.gates.truths.post16 import StatusChange
from pupilshare.gates.truths.roll import RollPupil
from pupilshare.policy import POLICY_PATH, load_policy

FEED_DATE = dt.date(2026, 11, 29)
CENSUS_DAY = dt.date(2026, 10, 1)
NCCIS = load_policy().recipient("nccis")
SCHOOL_ROLL = {"11": "110", "12": "210", "13": "210"}
ENROLMENT = {"": "230"}
_PUPILS = {
    "A": ("12", dt.date(2010, 8, 31)),
    "B": ("12", dt.date(2010, 1, 10)),
    "C": ("13", dt.date(2009, 5, 5)),
    "D": ("11", dt.date(2011, 2, 2)),
    "E": ("11", dt.date(2011, 3, 3)),
    "F": ("10", dt.date(2010, 6, 6)),
    "G": ("10", dt.date(2010, 9, 1)),
    "H": ("13", dt.date(2008, 8, 31)),
    "I": ("12", dt.date(2010, 4, 4)),
}


def _upn(letter: str) -> str:
    return f"{letter}926400112001"


def _update(letter: str, code: str, day: dt.date, *, yss: bool, row: int) -> tuple[str, ActivityEvent]:
    return _upn(letter), ActivityEvent(day, 2, 7, row, code, yss)


def _truth() -> pd.DataFrame:
    roll = {
        _upn(key): RollPupil(_upn(key), dob, year, "SS", "7", "NR1 1AA", CENSUS_DAY, 1, row)
        for row, (key, (year, dob)) in enumerate(_PUPILS.items(), start=1)
    }
    restricted = {_upn(key): "census item yssa = 'No'" for key in "BCE"}
    changes = [
        StatusChange(_upn("D"), "10000001", "offered", dt.date(2026, 11, 20), 5, 1),
        StatusChange(_upn("E"), "10000001", "offered", dt.date(2026, 11, 20), 5, 2),
        StatusChange(_upn("I"), "10000002", "enrolled", dt.date(2026, 10, 20), 5, 3),
    ]
    updates = [
        _update("B", "610", dt.date(2026, 10, 15), yss=True, row=1),
        _update("B", "320", dt.date(2026, 11, 1), yss=False, row=2),
        _update("C", "320", dt.date(2026, 11, 1), yss=False, row=3),
        _update("I", "540", dt.date(2026, 11, 30), yss=True, row=4),
    ]
    return build_nccis_truth(
        roll, restricted, changes, updates, school_roll_codes=SCHOOL_ROLL, enrolment_codes=ENROLMENT,
        feed_date=FEED_DATE,
    )  # fmt: skip


def _expected(truth: pd.DataFrame, letter: str) -> tuple:
    row = truth.set_index("upn").loc[_upn(letter)]
    return row["gate_activity_code"], row["gate_activity_date"], row["gate_september_guarantee"]


def test_build_nccis_truth__cohort_by_academic_age_or_year_11():
    truth = _truth().set_index("upn")
    in_cohort = {upn[0] for upn in truth.index[truth["is_in_cohort"]]}
    assert in_cohort == set("ABCDEFI")
    assert truth.loc[_upn("A"), "gate_academic_age"] == 16  # born 31 August: 16 on 2026-08-31
    assert truth.loc[_upn("G"), "gate_academic_age"] == 15  # born 1 September: 15
    assert truth.loc[_upn("H"), "gate_academic_age"] == 18


@pytest.mark.parametrize(
    ("letter", "activity"),
    [
        ("A", ("210", CENSUS_DAY, None)),  # school sixth form from the roll
        ("B", ("610", dt.date(2026, 10, 15), None)),  # restricted: YSS activity only, not the later provider 320
        ("C", ("810", None, None)),  # restricted, nothing from YSS: not known
        ("D", ("110", CENSUS_DAY, True)),  # Year 11 with an offer
        ("E", ("810", None, None)),  # restricted Year 11: no roll code, no offer flag
        ("F", ("810", None, None)),  # academic age 16 in Year 10: no roll code, nothing reported
        ("I", ("230", dt.date(2026, 10, 20), None)),  # enrolment beats the roll; an update after the feed date waits
    ],
)
def test_build_nccis_truth__activity_precedence_and_restriction(letter, activity):
    assert _expected(_truth(), letter) == activity


def test_build_nccis_truth__same_day_update_beats_roll_and_enrolment():
    roll = {_upn("A"): RollPupil(_upn("A"), dt.date(2010, 1, 1), "12", "SS", "7", "", CENSUS_DAY, 1, 1)}
    changes = [StatusChange(_upn("A"), "10000002", "enrolled", CENSUS_DAY, 9, 9)]
    updates = [_update("A", "620", CENSUS_DAY, yss=False, row=1)]
    truth = build_nccis_truth(
        roll, {}, changes, updates, school_roll_codes=SCHOOL_ROLL, enrolment_codes=ENROLMENT, feed_date=FEED_DATE
    )
    assert _expected(truth, "A") == ("620", CENSUS_DAY, None)
    truth = build_nccis_truth(
        roll, {}, changes, [], school_roll_codes=SCHOOL_ROLL, enrolment_codes=ENROLMENT, feed_date=FEED_DATE
    )
    assert _expected(truth, "A") == ("230", CENSUS_DAY, None)


def test_read_code_map__shipped_seeds_have_a_default_and_cover_sixth_form():
    assert read_code_map(SEEDS_DIR / "nccis_school_roll_activity_codes.csv", "nc_year_code") == SCHOOL_ROLL
    assert read_code_map(SEEDS_DIR / "nccis_enrolment_activity_codes.csv", "provider_ukprn")[""] == "230"


def test_read_code_map__key_listed_twice_is_refused(tmp_path):
    path = tmp_path / "codes.csv"
    path.write_text("nc_year_code,activity_code,note\n12,210,a\n12,220,b\n", encoding="utf-8")
    with pytest.raises(ActivityMappingError, match="line 3"):
        read_code_map(path, "nc_year_code")


def test_seed_activity_codes__every_code_the_loader_accepts():
    from pupilshare.ingest.post16 import is_known_activity_code

    codes = pd.read_csv(SEEDS_DIR / "nccis_activity_codes.csv", dtype=str)["activity_code"]
    assert set(codes) == {f"{code}" for code in range(100, 1000) if is_known_activity_code(str(code))}


# --- policy ------------------------------------------------------------------------------------------------------


def test_nccis_policy__restricted_row_may_carry_only_the_yss_activity():
    assert NCCIS.opt_out is not None and (NCCIS.opt_out.scope, NCCIS.opt_out.effect) == ("yss", "restrict")
    assert NCCIS.restricted_extra_fields == ("activity_code", "activity_date")
    assert set(NCCIS.restricted_blank_fields) == set(NCCIS.further_fields) - {"activity_code", "activity_date"}
    assert NCCIS.delivery.schedule == "0 6 1 * *"
    assert "Department for Education (DfE)" in NCCIS.notice_clause


def _write(tmp_path, mutate):
    raw = yaml.safe_load(POLICY_PATH.read_text(encoding="utf-8"))
    mutate(raw["recipients"])
    path = tmp_path / "recipients.yml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def test_load_policy__restricted_extra_field_must_be_a_further_field(tmp_path):
    path = _write(tmp_path, lambda recipients: recipients["nccis"]["restricted_extra_fields"].append("school_name"))
    with pytest.raises(ValidationError, match="are not further_fields"):
        load_policy(path)


def test_load_policy__restricted_extra_fields_need_effect_restrict(tmp_path):
    path = _write(tmp_path, lambda recipients: recipients["post16"].update(restricted_extra_fields=["is_fsm_eligible"]))
    with pytest.raises(ValidationError, match="need opt_out effect restrict"):
        load_policy(path)


# --- the suite on planted leaks ----------------------------------------------------------------------------------


def _clean_feed(truth: pd.DataFrame) -> pd.DataFrame:
    """The feed the truth says must be delivered: one row per young person in the cohort."""
    rows = []
    for _, row in truth[truth["is_in_cohort"]].iterrows():
        restricted = row["is_restricted"]
        year = _PUPILS[row["upn"][0]][0]
        rows.append(
            {
                "ledger_upn": row["upn"],
                "forename": "Forename",
                "surname": "Surname",
                "date_of_birth": row["date_of_birth"],
                "postcode": "NR1 1AA",
                "upn": None if restricted else row["upn"],
                "sex": None if restricted else "F",
                "sen_provision_code": None if restricted else "N",
                "nc_year": None if restricted else year,
                "has_september_guarantee_offer": row["gate_september_guarantee"],
                "activity_code": row["gate_activity_code"],
                "activity_date": row["gate_activity_date"],
            }
        )
    return pd.DataFrame.from_records(rows, columns=list(NCCIS.mart_columns))


def _gate(feed: pd.DataFrame, truth: pd.DataFrame, tmp_path):
    return run_feed_gate(
        feed, truth, recipient=NCCIS, feed_date=FEED_DATE, run_id="unit", data_docs_dir=tmp_path / "docs"
    )


def test_nccis_gate__clean_feed_passes(tmp_path):
    truth = _truth()
    result = _gate(_clean_feed(truth), truth, tmp_path)
    assert result.success, result.failures


def _set(feed: pd.DataFrame, letter: str, **values) -> pd.DataFrame:
    feed = feed.copy()
    for column, value in values.items():
        feed[column] = feed[column].astype(object)
        feed.loc[feed["ledger_upn"] == _upn(letter), column] = value
    return feed


@pytest.mark.parametrize(
    ("leak", "check"),
    [
        (lambda feed: _set(feed, "B", upn=_upn("B")), "restricted_has_no_school_data"),
        (lambda feed: _set(feed, "C", activity_code="210", activity_date=CENSUS_DAY), "activity_code_matches_truth"),
        (lambda feed: _set(feed, "B", activity_code="320"), "activity_code_matches_truth"),
        (lambda feed: _set(feed, "C", activity_date=CENSUS_DAY), "activity_date_matches_truth"),
        (lambda feed: _set(feed, "E", has_september_guarantee_offer=True), "september_guarantee_matches_truth"),
        (lambda feed: _set(feed, "D", has_september_guarantee_offer=False), "september_guarantee_matches_truth"),
        (lambda feed: _set(feed, "A", upn=_upn("D")), "upn_is_the_pupils"),
        (lambda feed: feed[feed["ledger_upn"] != _upn("F")], "whole_cohort"),
        (
            lambda feed: pd.concat([feed, _set(feed, "A", ledger_upn=_upn("G")).iloc[[0]]], ignore_index=True),
            "in_nccis_cohort",
        ),
        (lambda feed: feed.assign(school_urn=100001), "columns_match_policy"),
    ],
    ids=[
        "restricted_upn", "restricted_school_roll_code", "restricted_provider_code", "restricted_roll_date",
        "restricted_offer", "wrong_offer", "another_upn", "dropped_row", "year_10_age_15", "extra_column",
    ],
)  # fmt: skip
def test_nccis_gate__planted_leak_fails(tmp_path, leak, check):
    truth = _truth()
    result = _gate(leak(_clean_feed(truth)), truth, tmp_path)
    assert not result.success
    assert any(check in failure for failure in result.failures), result.failures
