"""The post16 and sure_start gates: independent truth from raw rows, routes, and the GX suites on planted leaks.

Post-16 truth, feed date 2027-03-01::

    upn  year  opted out  provider sets (latest status on or before the feed date)
    A    11    no         10000001 (offered), 10000002 (applied)
    B    11    yes        10000001
    C    10    no         10000001
    D    11    no         none (declined)

A clean post-16 feed has two rows, both for A; every leak below adds or changes one row.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from pupilshare.gates import build_validation_frame, run_feed_gate
from pupilshare.gates.feed import GateInputError, expected_row_count
from pupilshare.gates.truths.post16 import StatusChange, build_post16_truth, provider_sets
from pupilshare.gates.truths.roll import RollPupil
from pupilshare.gates.truths.sure_start import (
    SEEDS_DIR,
    ReachAreaError,
    build_sure_start_truth,
    read_reach_areas,
    route_postcode,
)
from pupilshare.optouts import OptOutState
from pupilshare.policy import load_policy

FEED_DATE = dt.date(2027, 3, 1)
POST16 = load_policy().recipient("post16")
SURE_START = load_policy().recipient("sure_start")
AREAS = {"NR1 3": "SSCC01", "NR1": "SSCC02", "PE30": "SSCC13"}


def _pupil(upn: str, year: str, *, phase="SS", lowest="7", postcode="NR1 1AA", dob=dt.date(2011, 5, 5)) -> RollPupil:
    return RollPupil(upn, dob, year, phase, lowest, postcode)


def _change(upn, ukprn, status, day, row=1, batch=1) -> StatusChange:
    return StatusChange(upn, ukprn, status, day, batch, row)


def _opted_out(upn: str, scope: str) -> dict:
    return {(upn, scope): OptOutState(upn, scope, True, "opt-out request 9-1", "parent")}


def _upn(letter: str) -> str:
    """A UPN-shaped key for pupil ``letter``: ``A`` -> ``A926400112001``."""
    return f"{letter}926400112001"


def _post16_truth() -> pd.DataFrame:
    roll = {_upn(key): _pupil(_upn(key), year) for key, year in (("A", "11"), ("B", "11"), ("C", "10"), ("D", "11"))}
    changes = [
        _change(_upn("A"), "10000001", "applied", dt.date(2026, 11, 1), 1),
        _change(_upn("A"), "10000001", "offered", dt.date(2027, 2, 1), 2),
        _change(_upn("A"), "10000002", "applied", dt.date(2026, 12, 1), 3),
        _change(_upn("A"), "10000003", "applied", dt.date(2027, 3, 2), 4),
        _change(_upn("B"), "10000001", "applied", dt.date(2026, 11, 1), 5),
        _change(_upn("C"), "10000001", "applied", dt.date(2026, 11, 1), 6),
        _change(_upn("D"), "10000001", "offered", dt.date(2027, 2, 1), 7),
        _change(_upn("D"), "10000001", "declined", dt.date(2027, 3, 1), 8),
    ]
    return build_post16_truth(roll, changes, _opted_out(_upn("B"), "post16"), feed_date=FEED_DATE)


def _post16_row(key: str, ukprn: int) -> dict:
    upn = _upn(key)
    return {
        "ledger_upn": upn,
        "provider_ukprn": ukprn,
        "forename": f"F{key}",
        "surname": f"S{key}",
        "date_of_birth": dt.date(2011, 5, 5),
        "upn": upn,
        "is_fsm_eligible": False,
        "sen_provision_code": "N",
        "sen_primary_need_code": None,
        "first_language_code": "ENG",
        "suspension_count": 0,
        "permanent_exclusion_count": 0,
    }


def _post16_feed(rows: list[tuple[str, int]]) -> pd.DataFrame:
    return pd.DataFrame([_post16_row(upn, ukprn) for upn, ukprn in rows], columns=list(POST16.mart_columns))


def _failed_checks(result) -> set[str]:
    return {failure.split(":", 1)[0].split("[", 1)[0] for failure in result.failures}


def test_route_postcode__sector_wins_over_district():
    assert route_postcode("NR1 3AB", AREAS) == "SSCC01"
    assert route_postcode("nr13ab", AREAS) == "SSCC01"
    assert route_postcode("NR1 7ZZ", AREAS) == "SSCC02"
    assert route_postcode("NR22 6AB", AREAS) is None, "in no reach area"
    assert route_postcode("", AREAS) is None
    assert route_postcode("not a postcode", AREAS) is None
    assert route_postcode("NR10 1AA", AREAS) is None, "NR10 is not NR1: whole outward codes only"


def test_read_reach_areas__shipped_seed_routes_every_generator_district_but_three():
    from pupilshare.generate.norfolk import NORFOLK_POSTCODE_DISTRICTS

    areas = read_reach_areas(SEEDS_DIR / "sure_start_reach_areas.csv")
    unrouted = {d.outward for d in NORFOLK_POSTCODE_DISTRICTS if route_postcode(f"{d.outward} 5AB", areas) is None}
    assert unrouted == {"NR22", "PE35", "IP26"}
    assert route_postcode("NR1 2AB", areas) != route_postcode("NR1 7AB", areas), "NR1 is split by sector"


def test_read_reach_areas__area_listed_twice_is_refused(tmp_path):
    path = tmp_path / "areas.csv"
    path.write_text(
        "children_centre_id,children_centre_name,reach_area_code,reach_area_level\n"
        "C1,One,NR1,district\nC2,Two,nr1,district\n",
        encoding="utf-8",
    )
    with pytest.raises(ReachAreaError, match="line 3"):
        read_reach_areas(path)


def test_provider_sets__latest_status_on_the_feed_date():
    changes = [
        _change("A", "1", "applied", dt.date(2027, 1, 1), 1),
        _change("A", "1", "withdrawn", dt.date(2027, 2, 1), 2),
        _change("A", "2", "offered", dt.date(2027, 2, 1), 3),
        _change("A", "2", "declined", dt.date(2027, 3, 2), 4),
        _change("B", "1", "offered", dt.date(2027, 2, 1), 5),
        _change("B", "1", "declined", dt.date(2027, 2, 1), 6),
        _change("C", "3", "applied", dt.date(2027, 3, 2), 7),
    ]
    statuses = POST16.cohort.application_statuses
    assert provider_sets(changes, feed_date=FEED_DATE, statuses=statuses) == {"A": ("2",)}


def test_build_post16_truth__cohort_routes_and_opt_out():
    truth = _post16_truth().set_index("upn")
    assert truth.loc[_upn("A"), "routes"] == ("10000001", "10000002")
    assert truth.loc[_upn("B"), "is_restricted"] and truth.loc[_upn("B"), "routes"] == ("10000001",)
    assert not truth.loc[_upn("C"), "is_in_cohort"]
    assert truth.loc[_upn("D"), "routes"] == ()
    assert expected_row_count(POST16, truth.reset_index()) == 2, "A twice; B opted out; C not Year 11; D declined"


def test_build_sure_start_truth__school_results_and_route():
    roll = {
        "R1": _pupil("R1", "R", phase="PS", lowest="R", postcode="NR1 3AB"),
        "R2": _pupil("R2", "R", phase="PS", lowest="3", postcode="NR1 3AB"),
        "R3": _pupil("R3", "R", phase="PS", lowest="N2", postcode="NR22 6AB"),
        "R4": _pupil("R4", "R", phase="PS", lowest="R", postcode="PE30 1AA"),
        "R5": _pupil("R5", "R", phase="PS", lowest="R", postcode="NR1 7AA"),
    }
    gld = {"R1": True, "R2": True, "R3": False, "R5": False}
    truth = build_sure_start_truth(roll, gld, AREAS, _opted_out("R5", "sure_start"), feed_date=FEED_DATE)
    truth = truth.set_index("upn")
    assert truth["is_in_cohort"].to_dict() == {"R1": True, "R2": False, "R3": True, "R4": False, "R5": True}
    assert truth.loc["R1", "routes"] == ("SSCC01",) and truth.loc["R3", "routes"] == ()
    assert expected_row_count(SURE_START, truth.reset_index()) == 1, "R1 only: R3 unrouted, R5 opted out"


def test_build_validation_frame__route_ok_per_row():
    feed = _post16_feed([("A", 10000001), ("A", 10000003), ("Z", 10000001)])
    frame = build_validation_frame(feed, _post16_truth(), key_column="ledger_upn", route_column="provider_ukprn")
    assert frame["truth_route_ok"].tolist() == [True, False, False]
    assert frame["truth_in_cohort"].tolist() == [True, True, None]
    assert list(frame.columns)[-2:] == ["truth_in_cohort", "truth_route_ok"]


def test_build_validation_frame__routed_feed_needs_truth_routes():
    with pytest.raises(GateInputError, match="routes"):
        build_validation_frame(
            _post16_feed([("A", 10000001)]),
            _post16_truth().drop(columns=["routes"]),
            key_column="ledger_upn",
            route_column="provider_ukprn",
        )


@pytest.fixture(scope="module")
def docs(tmp_path_factory):
    return tmp_path_factory.mktemp("data_docs")


def _gate(feed: pd.DataFrame, docs):
    return run_feed_gate(
        feed, _post16_truth(), recipient=POST16, feed_date=FEED_DATE, run_id="unit", data_docs_dir=docs
    )


CLEAN = [("A", 10000001), ("A", 10000002)]


def test_post16_gate__clean_feed_passes(docs):
    result = _gate(_post16_feed(CLEAN), docs)
    assert result.success, result.failures


@pytest.mark.parametrize(
    ("rows", "check"),
    [
        ([*CLEAN, ("B", 10000001)], "opted_out_pupil_absent"),
        ([*CLEAN, ("C", 10000001)], "pupil_in_year_11"),
        ([("A", 10000001), ("A", 10000003)], "routed_to_own_provider"),
        ([("A", 10000001)], "every_set_complete"),
        ([*CLEAN, ("A", 10000002)], "one_row_per_pupil_per_provider"),
    ],
    ids=["opted_out", "outside_cohort", "wrong_provider", "missing_row", "duplicate"],
)
def test_post16_gate__planted_leak_fails(docs, rows, check):
    result = _gate(_post16_feed(rows), docs)
    assert not result.success
    assert check in _failed_checks(result), result.failures


def test_post16_gate__column_outside_allow_list_fails(docs):
    feed = _post16_feed(CLEAN)
    feed["home_postcode"] = "NR1 1AA"
    result = _gate(feed, docs)
    assert "columns_match_policy" in _failed_checks(result), result.failures


def test_post16_gate__empty_feed_passes_when_no_set_has_anyone(docs):
    """Before any application (or with none loaded) every set is empty: an empty feed passes, a row would not."""
    truth = _post16_truth()
    truth["routes"] = [()] * len(truth)
    empty = _post16_feed([])
    result = run_feed_gate(empty, truth, recipient=POST16, feed_date=FEED_DATE, run_id="unit", data_docs_dir=docs)
    assert result.success, result.failures
