"""Subject access report rendering and UPN checks, without a database (the report itself: tests/integration)."""

from __future__ import annotations

import json

import pytest
from stdnum.gb import upn as upn_check

from pupilshare.sar import (
    RETURN_TYPES,
    InvalidUpnError,
    SubjectAccessReport,
    compact_upn,
    raw_table_return_types,
    report_to_html,
    report_to_json,
)

VALID = upn_check.calc_check_digit("92612345678A") + "92612345678A"


def _report(**changes) -> SubjectAccessReport:
    fields = {
        "upn": VALID,
        "held": {return_type: {} for return_type in RETURN_TYPES},
        "opt_outs": [],
        "disclosures": [],
    }
    return SubjectAccessReport(**{**fields, **changes})


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("A12", "length"),
        ("A926123456X8A", "format"),
        (upn_check.calc_check_digit("00112345678A") + "00112345678A", "component"),
        (("B" if VALID[0] != "B" else "C") + VALID[1:], "checksum"),
    ],
)
def test_compact_upn__refuses_each_kind_of_invalid_upn(value, problem):
    with pytest.raises(InvalidUpnError, match="not a valid UPN"):
        compact_upn(value)


def test_compact_upn__upper_cases_and_removes_spaces():
    assert compact_upn(f" {VALID[:5].lower()} {VALID[5:]} ") == VALID


def test_raw_table_return_types__come_from_the_ingest_table_definitions():
    assert raw_table_return_types() == {
        "ctf_pupils": "ctf",
        "eyfs_results": "eyfs",
        "ncmp_measurements": "ncmp",
        "ncmp_bmi_results": "ncmp",
        "optout_requests": "optouts",
        "post16_applications": "post16",
        "activity_updates": "activity",
    }


def test_report_to_json__has_exactly_the_issue_shape():
    disclosure = {
        "recipient": "yss",
        "feed_date": "2026-11-30",
        "fields": ["forename"],
        "legal_basis": "s.68(1)",
        "file_sha256": "abc",
        "run_id": "r1",
    }
    document = json.loads(report_to_json(_report(disclosures=[disclosure], notes=["not built"])))
    assert list(document) == ["upn", "held", "opt_outs", "disclosures", "retractions"]
    assert document["disclosures"] == [disclosure] and document["retractions"] == []


def test_report_to_html__escapes_values_keys_and_notes():
    hostile = "<img src=x onerror=alert(1)>"
    report = _report(
        held={"census": {"census_pupilonroll": [{"upn": VALID, "surname": hostile, hostile: "k"}]}},
        opt_outs=[{"scope_code": "yss", "explanation": hostile}],
        notes=[hostile],
    )
    page = report_to_html(report)
    assert "<img" not in page
    assert page.count("&lt;img src=x onerror=alert(1)&gt;") == 4
    assert "<script" not in page and "http" not in page  # self-contained: no scripts, no external resources
