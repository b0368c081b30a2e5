"""Row rules of the CSV returns: each rule fires on its bad case and stays quiet on the good one."""

from __future__ import annotations

import datetime as dt

import pytest

from pupilshare.ingest.eyfs import GOALS, validate_eyfs_row
from pupilshare.ingest.ncmp import validate_ncmp_row
from pupilshare.ingest.optouts import validate_optout_row
from pupilshare.ingest.post16 import academic_age, is_known_activity_code, validate_activity_row, validate_post16_row
from pupilshare.ingest.tabular import LoadContext
from pupilshare.ingest.workforce import validate_absence_row, validate_contract_row, validate_staff_row

UPN = "W926206426003"
CONTEXT = LoadContext(pupils={UPN: (dt.date(2010, 3, 1), "11", "122247")})


def _rules(issues) -> list[str]:
    return sorted(issue.rule_id for issue in issues)


NCMP_ROW = {
    "upn": UPN, "forename": "Ann", "surname": "Lee", "date_of_birth": "2010-03-01", "sex": "F", "school_urn": "122247",
    "school_year": "6", "measurement_date": "2021-01-10", "height_cm": "140.2", "weight_kg": "35.0",
    "not_measured_reason": "",
}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ({"height_cm": "49.9"}, "NCMP-HEIGHT-RANGE"),
        ({"height_cm": "220.1"}, "NCMP-HEIGHT-RANGE"),
        ({"weight_kg": "7.9"}, "NCMP-WEIGHT-RANGE"),
        ({"weight_kg": "heavy"}, "NCMP-WEIGHT-RANGE"),
        ({"measurement_date": "2009-01-10"}, "NCMP-MEASURED-BEFORE-BIRTH"),
        ({"not_measured_reason": "OPTOUT"}, "NCMP-MEASURED-AND-REASON"),
        ({"height_cm": "", "weight_kg": "", "not_measured_reason": "HOLIDAY"}, "NCMP-REASON-UNKNOWN"),
        ({"height_cm": "", "weight_kg": ""}, "NCMP-NO-OUTCOME"),
        ({"school_year": "5"}, "NCMP-YEAR-GROUP"),
        ({"upn": "A926206426003"}, "ROW-UPN-INVALID"),
        ({"date_of_birth": "01/03/2010"}, "ROW-DATE-INVALID"),
    ],
)
def test_validate_ncmp_row__each_rule(change, rule):
    assert validate_ncmp_row(NCMP_ROW, CONTEXT) == []
    assert rule in _rules(validate_ncmp_row(NCMP_ROW | change, CONTEXT))


def test_validate_ncmp_row__boundaries_are_allowed():
    edge = NCMP_ROW | {"height_cm": "50", "weight_kg": "200", "measurement_date": "2010-03-01"}
    assert validate_ncmp_row(edge, CONTEXT) == []


def test_validate_ncmp_row__not_measured_with_reason_is_clean():
    row = NCMP_ROW | {"measurement_date": "", "height_cm": "", "weight_kg": "", "not_measured_reason": "OPTOUT"}
    assert validate_ncmp_row(row, CONTEXT) == []


def test_validate_eyfs_row__outcomes_outside_1_2_a_are_errors():
    row = {"upn": UPN, "school_urn": "1", "academic_year": "2026/27"} | dict.fromkeys(GOALS, "2")
    assert _rules(validate_eyfs_row(row, LoadContext())) == []
    bad = row | {"writing": "3", "number": "", "speaking": "a"}
    assert _rules(validate_eyfs_row(bad, LoadContext())) == ["EYFS-OUTCOME"] * 3


OPTOUT = {"upn": UPN, "scope": "yss", "action": "opt_out", "requested_by": "parent", "requested_on": "2026-02-28",
          "channel": "letter"}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ({"scope": "connexions"}, "OPTOUT-SCOPE"),
        ({"action": "delete"}, "OPTOUT-ACTION"),
        ({"requested_by": "grandparent"}, "OPTOUT-PARTY"),
        ({"channel": "email"}, "OPTOUT-CHANNEL"),
        ({"requested_on": "2026-03-01"}, "OPTOUT-WRONG-PARTY"),  # the 16th birthday: only the pupil now
    ],
)
def test_validate_optout_row__each_rule(change, rule):
    assert validate_optout_row(OPTOUT, LoadContext(pupils=CONTEXT.pupils)) == []
    assert _rules(validate_optout_row(OPTOUT | change, LoadContext(pupils=CONTEXT.pupils))) == [rule]


def test_validate_optout_row__pupil_under_16_is_wrong_party_and_same_day_is_a_query():
    context = LoadContext(pupils=CONTEXT.pupils)
    assert _rules(validate_optout_row(OPTOUT | {"requested_by": "pupil"}, context)) == ["OPTOUT-WRONG-PARTY"]
    assert _rules(validate_optout_row(OPTOUT | {"action": "withdraw"}, context)) == ["OPTOUT-SAME-DAY"]


@pytest.mark.parametrize(
    ("code", "known"),
    [("110", True), ("150", True), ("151", False), ("210", True), ("381", True), ("382", False), ("530", True),
     ("531", False), ("540", True), ("680", True), ("700", False), ("710", True), ("720", True), ("715", False),
     ("830", True), ("831", False), ("21", False), ("abc", False)],
)  # fmt: skip
def test_is_known_activity_code__ranges(code, known):
    assert is_known_activity_code(code) is known


def test_validate_activity_row__rules():
    row = {"upn": UPN, "uln": "", "activity_code": "210", "activity_date": "2026-09-10", "source": "school"}
    assert _rules(validate_activity_row(row, CONTEXT)) == []
    assert _rules(validate_activity_row(row | {"activity_code": "999"}, CONTEXT)) == ["ACTIVITY-CODE-RANGE"]
    assert _rules(validate_activity_row(row | {"upn": ""}, CONTEXT)) == ["ACTIVITY-NO-ID"]
    assert _rules(validate_activity_row(row | {"uln": "12345"}, CONTEXT)) == ["ACTIVITY-ULN"]
    assert _rules(validate_activity_row(row | {"activity_date": "2029-09-10"}, CONTEXT)) == ["ACTIVITY-COHORT-AGE"]


def test_academic_age__is_age_on_31_august_before_the_year():
    assert academic_age(dt.date(2010, 8, 31), dt.date(2026, 9, 10)) == 16
    assert academic_age(dt.date(2010, 9, 1), dt.date(2027, 8, 31)) == 15


def test_validate_post16_row__rules():
    row = {"upn": UPN, "ukprn": "10012345", "status": "offered", "status_date": "2027-03-01"}
    assert _rules(validate_post16_row(row, CONTEXT)) == []
    assert _rules(validate_post16_row(row | {"ukprn": "20012345"}, CONTEXT)) == ["POST16-UKPRN"]
    assert _rules(validate_post16_row(row | {"status": "rejected"}, CONTEXT)) == ["POST16-STATUS"]


def test_workforce_rules__staff_must_exist_and_dates_fte_days_make_sense():
    context = LoadContext()
    staff = {"lea": "926", "estab": "2001", "staff_id": "S00001", "teacher_reference_number": "1234567",
             "gender": "F", "date_of_birth": "1980-01-01", "ethnicity": "WBRI", "qt_status": "true"}  # fmt: skip
    assert validate_staff_row(staff, context) == []
    assert _rules(validate_staff_row(staff | {"teacher_reference_number": "12AB"}, LoadContext())) == ["SWC-TRN"]
    contract = {"lea": "926", "estab": "2001", "staff_id": "S00001", "contract_id": "C1", "contract_type": "FXT",
                "role": "TCH", "start_date": "2025-09-01", "end_date": "2026-08-31", "fte": "1.00",
                "hours_per_week": "32.5"}  # fmt: skip
    assert validate_contract_row(contract, context) == []
    assert _rules(validate_contract_row(contract | {"staff_id": "S9"}, context)) == ["SWC-STAFF-UNKNOWN"]
    assert _rules(validate_contract_row(contract | {"fte": "1.2"}, context)) == ["SWC-FTE"]
    assert _rules(validate_contract_row(contract | {"end_date": "2025-01-01"}, context)) == ["SWC-DATES"]
    absence = {"lea": "926", "estab": "2001", "staff_id": "S00001", "first_day": "2025-10-06",
               "last_day": "2025-10-07", "working_days_lost": "2", "absence_category": "SIC"}  # fmt: skip
    assert validate_absence_row(absence, context) == []
    assert _rules(validate_absence_row(absence | {"working_days_lost": "5"}, context)) == ["SWC-DAYS-LOST"]
