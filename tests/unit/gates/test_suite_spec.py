"""Gate suites are data: the shipped suite loads, and a typo in a suite file is an error at load."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from pupilshare.gates.spec import SuiteSpecError, load_suite_spec, resolve_expectations, suite_path

SHIPPED = suite_path("yss__feed")


def _write(tmp_path: Path, mutate, name: str = "yss__feed") -> Path:
    raw = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
    mutate(raw)
    (tmp_path / f"{name}.yml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    return tmp_path


def test_load_suite_spec__shipped_suite_is_valid_and_every_check_says_why():
    spec = load_suite_spec("yss__feed")
    assert spec.suite == "yss__feed"
    assert all(len(item.why) >= 20 for item in spec.expectations)


def test_resolve_expectations__expands_columns_and_splices_lists():
    spec = load_suite_spec("yss__feed")
    variables = {
        "key_column": "k",
        "mart_columns": ["k", "a", "b"],
        "truth_columns": ["truth_known"],
        "further_fields": ["b"],
        "identity_required": ["a"],
        "min_age_years": 13,
        "cohort_row_count": 5,
    }
    resolved = {item.check: item for item in resolve_expectations(spec, variables)}
    assert resolved["columns_match_policy"].kwargs["column_list"] == ["k", "a", "b", "truth_known"]
    assert resolved["restricted_has_no_further_fields[b]"].kwargs["column"] == "b"
    assert resolved["restricted_keeps_identity[a]"].row_condition.column == "truth_restricted"
    assert resolved["age_in_cohort"].kwargs["min_value"] == 13
    assert resolved["whole_cohort"].kwargs["value"] == 5


def test_resolve_expectations__missing_value_is_an_error():
    with pytest.raises(SuiteSpecError, match=r"\$cohort_row_count"):
        resolve_expectations(
            load_suite_spec("yss__feed"),
            {"key_column": "k", "mart_columns": [], "truth_columns": [], "min_age_years": 13},
        )


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda raw: raw["expectations"][0].update(wyh="typo"), "wyh"),
        (lambda raw: raw["expectations"][0].update(expectation="ExpectTableColumnsToMatchList"), "not a Great"),
        (lambda raw: raw["expectations"][1]["kwargs"].update(column="$key_colum"), "key_colum"),
        (lambda raw: raw["expectations"][1].update(why="because"), "why"),
        (lambda raw: raw["expectations"].append(raw["expectations"][0]), "listed twice"),
    ],
    ids=["unknown-key", "unknown-gx-class", "unknown-variable", "why-too-short", "duplicate-check"],
)
def test_load_suite_spec__typo_is_refused(tmp_path, mutate, message):
    with pytest.raises(ValidationError, match=message):
        load_suite_spec("yss__feed", _write(tmp_path, mutate))


def test_load_suite_spec__suite_name_must_match_file(tmp_path):
    folder = _write(tmp_path, lambda raw: raw.update(suite="yss__other"))
    with pytest.raises(SuiteSpecError, match="yss__other.yml"):
        load_suite_spec("yss__feed", folder)
