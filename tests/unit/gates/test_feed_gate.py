"""The YSS feed gate passes a clean feed and fails every planted leak, naming the check and the field.

Truth (what the raw census says), with the feed date 2026-11-30::

    upn   age  restricted   in cohort (13+)
    P01   15   no           yes
    P02   14   yes          yes
    P03   13   no           yes   (13th birthday on the feed date)
    P04   12   no           no
    P05   16   yes          yes

A clean feed has one row for each of P01, P02, P03, P05; restricted rows carry name, address and date of birth only.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pupilshare.gates import GateFailedError, GateResult, build_validation_frame, gx_runner, run_feed_gate
from pupilshare.policy import load_policy

FEED_DATE = dt.date(2026, 11, 30)
YSS = load_policy().recipient("yss")
TRUTH_PUPILS = [("P01", 15, False), ("P02", 14, True), ("P03", 13, False), ("P04", 12, False), ("P05", 16, True)]


def _truth(pupils=TRUTH_PUPILS) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "upn": [upn for upn, _, _ in pupils],
            "date_of_birth": [dt.date(FEED_DATE.year - age, 1, 1) for _, age, _ in pupils],
            "age_on_feed_date": pd.array([age for _, age, _ in pupils], dtype="Int64"),
            "is_in_cohort": [age >= 13 for _, age, _ in pupils],
            "is_restricted": [restricted for _, _, restricted in pupils],
            "restriction_reason": ["census item yssa = 'No'" if restricted else None for _, _, restricted in pupils],
        }
    )


def _row(upn: str, age: int, *, restricted: bool) -> dict:
    row = {
        "ledger_upn": upn,
        "forename": f"Forename{upn}",
        "surname": f"Surname{upn}",
        "date_of_birth": dt.date(FEED_DATE.year - age, 1, 1),
        "address_line_1": "1 Example Street",
        "address_line_2": None,
        "town": "Exampletown",
        "postcode": "ZZ99 9ZZ",
        "upn": upn,
        "school_urn": "100001",
        "school_laestab": "9264001",
        "school_name": "Example Academy",
        "nc_year": "9",
        "sex": "F",
        "sen_provision_code": "N",
    }
    if restricted:
        row.update(dict.fromkeys(YSS.further_fields))
    return row


def _clean_feed() -> pd.DataFrame:
    rows = [_row(upn, age, restricted=restricted) for upn, age, restricted in TRUTH_PUPILS if age >= 13]
    return pd.DataFrame(rows, columns=list(YSS.mart_columns))


def _gate(feed: pd.DataFrame, docs: Path, truth: pd.DataFrame | None = None, run_id: str = "test_run") -> GateResult:
    truth = _truth() if truth is None else truth
    return run_feed_gate(feed, truth, recipient=YSS, feed_date=FEED_DATE, run_id=run_id, data_docs_dir=docs)


def _failed_checks(result: GateResult) -> dict[str, str]:
    return {failure.split(":", 1)[0]: failure for failure in result.failures}


def test_run_feed_gate__clean_feed_passes_and_builds_data_docs(tmp_path):
    result = _gate(_clean_feed(), tmp_path / "docs")

    assert result.success, result.failures
    assert result.failures == ()
    assert result.suite_name == "yss__feed"
    assert result.evaluated_rows == 4
    assert result.result_id.startswith("yss__feed/2026-11-30__test_run/")
    assert result.data_docs_index == tmp_path / "docs" / "index.html"
    assert result.data_docs_index.is_file()
    assert list((tmp_path / "docs" / "validations" / "yss__feed").iterdir()), "a validation page was built"


def _set(upn: str, column: str, value):
    def mutate(feed: pd.DataFrame) -> pd.DataFrame:
        feed[column] = feed[column].astype(object)
        feed.loc[feed["ledger_upn"] == upn, column] = value
        return feed

    return mutate


def _add_row(upn: str, age: int, restricted: bool = False):
    return lambda feed: pd.concat([feed, pd.DataFrame([_row(upn, age, restricted=restricted)])], ignore_index=True)


def _drop(upn: str):
    return lambda feed: feed[feed["ledger_upn"] != upn].reset_index(drop=True)


def _add_column(name: str, value):
    return lambda feed: feed.assign(**{name: value})


def _duplicate(upn: str):
    return lambda feed: pd.concat([feed, feed[feed["ledger_upn"] == upn]], ignore_index=True)


@pytest.mark.parametrize(
    ("mutate", "expected_checks", "named"),
    [
        pytest.param(
            _set("P02", "school_urn", "100001"),
            {"restricted_has_no_further_fields[school_urn]"},
            "school_urn",
            id="restricted-pupil-with-school-urn",
        ),
        pytest.param(
            _set("P05", "sen_provision_code", ""),
            {"restricted_has_no_further_fields[sen_provision_code]"},
            "sen_provision_code",
            id="restricted-pupil-with-empty-string-sen-code",
        ),
        pytest.param(_add_row("P04", 12), {"age_in_cohort", "whole_cohort"}, "truth_age", id="pupil-aged-12-in-feed"),
        pytest.param(_drop("P03"), {"whole_cohort"}, "observed 3", id="eligible-pupil-missing"),
        pytest.param(
            _add_column("ethnicity_code", "WBRI"), {"columns_match_policy"}, "ethnicity_code", id="extra-column"
        ),
        pytest.param(_duplicate("P01"), {"key_unique", "whole_cohort"}, "ledger_upn", id="duplicate-key"),
        pytest.param(_add_row("Q99", 14), {"pupil_on_roll", "whole_cohort"}, "truth_known", id="unknown-upn"),
        pytest.param(
            _set("P02", "forename", None),
            {"restricted_keeps_identity[forename]"},
            "forename",
            id="restricted-pupil-without-forename",
        ),
    ],
)
def test_run_feed_gate__planted_leak_fails_naming_the_field(tmp_path, mutate, expected_checks, named):
    result = _gate(mutate(_clean_feed()), tmp_path / "docs")

    assert not result.success
    failed = _failed_checks(result)
    assert set(failed) == expected_checks, result.failures
    assert any(named in failure for failure in failed.values()), result.failures
    assert result.data_docs_index is not None and result.data_docs_index.is_file()


def test_run_feed_gate__missing_key_column_fails_without_raising(tmp_path):
    result = _gate(_clean_feed().drop(columns=["ledger_upn"]), tmp_path / "docs")

    assert not result.success
    failed = _failed_checks(result)
    assert {"columns_match_policy", "key_present", "key_unique", "pupil_on_roll"} <= set(failed)
    assert "missing columns ['ledger_upn']" in failed["columns_match_policy"]


def test_run_feed_gate__error_inside_gx_fails_closed(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("metric store unavailable")

    monkeypatch.setattr(gx_runner, "validate_frame", broken)
    result = _gate(_clean_feed(), tmp_path / "docs")

    assert not result.success
    assert result.failures == ("the gate could not run, so it fails: RuntimeError: metric store unavailable",)
    assert result.result_id.endswith("/gate-error")


def test_run_feed_gate__malformed_truth_fails_closed(tmp_path):
    result = _gate(_clean_feed(), tmp_path / "docs", truth=_truth().drop(columns=["is_restricted"]))

    assert not result.success
    assert "is_restricted" in result.failures[0]


def test_run_feed_gate__feed_column_with_reserved_prefix_fails_closed(tmp_path):
    result = _gate(_clean_feed().assign(truth_known=True), tmp_path / "docs")

    assert not result.success
    assert "truth_known" in result.failures[0]


def test_run_feed_gate__data_docs_index_lists_every_run(tmp_path):
    docs = tmp_path / "docs"
    _gate(_clean_feed(), docs, run_id="first_run")
    result = _gate(_drop("P01")(_clean_feed()), docs, run_id="second_run")

    index = result.data_docs_index.read_text(encoding="utf-8")
    assert "2026-11-30__first_run" in index and "2026-11-30__second_run" in index


def test_gate_failed_error__message_lists_failures_and_data_docs(tmp_path):
    result = _gate(_set("P02", "school_urn", "100001")(_clean_feed()), tmp_path / "docs")

    message = str(GateFailedError(result))

    assert "publish gate yss__feed failed" in message
    assert "restricted_has_no_further_fields[school_urn]" in message
    assert str(result.data_docs_index) in message
    assert "expectations/yss__feed.yml" in message


def test_build_validation_frame__feed_columns_first_then_truth():
    frame = build_validation_frame(_add_row("Q99", 14)(_clean_feed()), _truth(), key_column="ledger_upn")

    assert list(frame.columns) == [*YSS.mart_columns, "truth_known", "truth_age", "truth_restricted"]
    by_key = frame.set_index("ledger_upn")
    assert by_key.loc["P02", "truth_restricted"] and not by_key.loc["P01", "truth_restricted"]
    assert by_key.loc["P03", "truth_age"] == 13
    assert not by_key.loc["Q99", "truth_known"] and pd.isna(by_key.loc["Q99", "truth_age"])


_EMPTY = st.sampled_from([None, float("nan"), pd.NA])
_VALUE = st.sampled_from(["", "0", "X"])
_PUPIL = st.tuples(
    st.booleans(),  # restricted
    st.fixed_dictionaries({field: st.one_of(_EMPTY, _VALUE) for field in YSS.further_fields}),
)


# Each example runs GX and builds Data Docs (~0.5 s): 25 examples keep the file fast; one bug is shrunk, not all.
@settings(max_examples=25, deadline=None, report_multiple_bugs=False, suppress_health_check=[HealthCheck.too_slow])
@given(pupils=st.lists(_PUPIL, min_size=1, max_size=4))
def test_run_feed_gate__fails_iff_a_restricted_row_has_a_further_field(pupils):
    """For any restriction flags and further-field values (nulls of every kind, '' and real values):
    the gate fails exactly when some restricted row carries a non-null further field, and only on those fields."""
    truth = _truth([(f"H{number:02d}", 14, restricted) for number, (restricted, _) in enumerate(pupils)])
    rows = [{**_row(f"H{number:02d}", 14, restricted=False), **further} for number, (_, further) in enumerate(pupils)]
    feed = pd.DataFrame(rows, columns=list(YSS.mart_columns))
    leaked = {
        f"restricted_has_no_further_fields[{field}]"
        for restricted, further in pupils
        if restricted
        for field, value in further.items()
        if not pd.isna(value)
    }

    with tempfile.TemporaryDirectory() as docs:
        result = _gate(feed, Path(docs), truth=truth)

    assert result.success is (not leaked), result.failures
    assert set(_failed_checks(result)) == leaked


def test_run_feed_gate__data_docs_hold_no_pupil_values_from_a_leak(tmp_path):
    """A failed gate's Data Docs count the failing rows but never copy the leaked values or the pupil's name."""
    feed = _clean_feed()
    leaked = feed.index[feed["ledger_upn"] == "P02"][0]
    feed.loc[leaked, "school_name"] = "Leaky Lane Academy"
    feed.loc[leaked, "forename"] = "Zebedee"
    result = _gate(feed, tmp_path / "docs")
    assert not result.success
    written = "".join(
        path.read_text(encoding="utf-8", errors="replace") for path in (tmp_path / "docs").rglob("*") if path.is_file()
    )
    assert "school_name" in written, "the failing check is documented"
    assert "Leaky Lane Academy" not in written and "Zebedee" not in written
