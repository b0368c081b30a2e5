"""Tables with several counts, ratios and sums (absence, EYFS, workforce): the registry refuses inconsistent entries,
the linked table set links the counts to each other, and rates and sums are ``c`` wherever a count they rest on is
hidden. No database: inline frames, tmp_path."""

from __future__ import annotations

import csv

import pandas as pd
import pytest
from pydantic import ValidationError

from pupilshare.stats import (
    DisclosureConfig,
    DisclosureRiskError,
    SuppressionResult,
    TableSetError,
    assert_valid_ees,
    audit_suppression,
    find_primary_cells,
)
from pupilshare.stats.benchmark import benchmark_table
from pupilshare.stats.publication import LocalAuthority, build_linked_tables, protect_tables, sibling_cell
from pupilshare.stats.publish import stage_tables
from pupilshare.stats.registry import StatisticsRegistry, StatisticsTable, load_registry

LA = LocalAuthority(old_la_code="926", new_la_code="E10000020", la_name="Norfolk")
CONFIG = DisclosureConfig(threshold=3)
REGISTRY = load_registry()
ABSENCE = REGISTRY.table("pupil_absence")
WORKFORCE = REGISTRY.table("workforce")
EYFS = REGISTRY.table("eyfs_gld")
_BASE = ("202627", "Academic year")


def _absence_frame(rows: dict[int, tuple[str, int, int, int, int, int]]) -> pd.DataFrame:
    """``{urn: (phase, enrolled, persistently absent, possible, authorised, unauthorised)}``, one row per school."""
    return pd.DataFrame(
        [
            {
                "time_period": _BASE[0],
                "time_identifier": _BASE[1],
                "school_urn": urn,
                "school_laestab": f"926{urn % 10000:04d}",
                "school_name": f"School {urn}",
                "school_phase": phase,
                "pupils_enrolled": enrolled,
                "pupils_persistently_absent": persistent,
                "sessions_possible": possible,
                "sessions_authorised": authorised,
                "sessions_unauthorised": unauthorised,
                "sessions_overall": authorised + unauthorised,
            }  # fmt: skip
            for urn, (phase, enrolled, persistent, possible, authorised, unauthorised) in rows.items()
        ]
    )


@pytest.fixture
def absence() -> pd.DataFrame:
    """
    school  phase      enrolled  persistent  possible  authorised  unauthorised  overall
    100001  Primary    40        1           4000      150         2             152     <- a 1 and a 2
    100002  Primary    55        6           5500      200         40            240
    100003  Primary    30        4           3000      120         30            150
    100004  Secondary  90        12          9000      400         90            490
    100005  Secondary  80        9           8000      350         70            420
    """
    return _absence_frame(
        {
            100001: ("Primary", 40, 1, 4000, 150, 2),
            100002: ("Primary", 55, 6, 5500, 200, 40),
            100003: ("Primary", 30, 4, 3000, 120, 30),
            100004: ("Secondary", 90, 12, 9000, 400, 90),
            100005: ("Secondary", 80, 9, 8000, 350, 70),
        }
    )


@pytest.fixture
def workforce() -> pd.DataFrame:
    """Five schools; school 100001 has 2 staff (FTE 1.6, 3 days lost), the others 8 to 40."""
    rows = [
        (100001, "Primary", 2, 0, 1.6, 3.0),
        (100002, "Primary", 12, 1, 10.4, 21.5),
        (100003, "Primary", 8, 0, 7.2, 0.0),
        (100004, "Secondary", 40, 2, 36.15, 80.0),
        (100005, "Secondary", 35, 1, 31.0, 55.5),
    ]
    return pd.DataFrame(
        [
            {
                "time_period": _BASE[0],
                "time_identifier": _BASE[1],
                "school_urn": urn,
                "school_laestab": f"926{urn % 10000:04d}",
                "school_name": f"School {urn}",
                "school_phase": phase,
                "staff_headcount": headcount,
                "vacancies": vacancies,
                "staff_fte": fte,
                "sickness_days_lost": days,
            }  # fmt: skip
            for urn, phase, headcount, vacancies, fte, days in rows
        ]
    )


def _primary_only(table_set, config):
    return SuppressionResult(find_primary_cells(table_set, config), frozenset())


def _entry(**changes) -> dict:
    entry = {
        "name": "t", "title": "T", "description": "D", "model": "m", "count": "a",
        "school_groups": [{"column": "school_phase", "label": "Phase"}],
        "geographic_levels": ["School", "Local authority"],
        "indicators": [
            {"column": "a", "label": "A", "kind": "count"},
            {"column": "b", "label": "B", "kind": "count"},
        ],
    }  # fmt: skip
    entry.update(changes)
    return entry


@pytest.mark.parametrize(
    ("indicator", "message"),
    [
        ({"column": "r", "label": "R", "kind": "ratio", "numerator": "a"}, "needs a numerator and a denominator"),
        ({"column": "r", "label": "R", "kind": "ratio", "numerator": "a", "denominator": "x"}, "not counts or sums"),
        ({"column": "s", "label": "S", "kind": "sum"}, "needs the count it `follows`"),
        ({"column": "s", "label": "S", "kind": "sum", "follows": "s"}, "not other counts"),
        ({"column": "c", "label": "C", "kind": "count", "sum_of": ["a", "x"]}, "not other counts"),
        ({"column": "c", "label": "C", "kind": "count", "sum_of": ["a", "c"]}, "not other counts"),
        ({"column": "c", "label": "C", "kind": "count", "follows": "a"}, "a count has no \\['follows'\\]"),
        ({"column": "p", "label": "P", "kind": "percent", "of": [], "unit": "%"}, "percent needs `of`"),
    ],
)
def test_statistics_table__inconsistent_indicators_are_refused(indicator, message):
    entry = _entry()
    entry["indicators"] = [*entry["indicators"], indicator]
    with pytest.raises(ValidationError, match=message):
        StatisticsTable.model_validate(entry)


def test_statistics_table__needs_a_dimension_or_a_school_group():
    with pytest.raises(ValidationError, match="needs a dimension or a school group"):
        StatisticsTable.model_validate(_entry(school_groups=[]))


def test_statistics_table__the_first_count_is_the_tables_count():
    with pytest.raises(ValidationError, match="first count indicator must be"):
        StatisticsTable.model_validate(_entry(count="b"))


def test_load_registry__new_tables_read_every_count_and_sum_column():
    assert ABSENCE.count_columns[0] == "pupils_enrolled" and "sessions_overall" in ABSENCE.count_columns
    assert WORKFORCE.sum_columns == ("staff_fte", "sickness_days_lost")
    assert set(WORKFORCE.model_columns) >= {"staff_headcount", "vacancies", "staff_fte", "sickness_days_lost"}
    assert isinstance(REGISTRY, StatisticsRegistry)


def test_build_linked_tables__overall_absence_is_linked_to_its_parts(absence):
    """overall = authorised + unauthorised in every cell: hiding the 2 unauthorised alone would give it back."""
    linked = build_linked_tables(ABSENCE, absence)
    first = next(cell.cell_id for cell in linked.published if cell.school_urn == "100001")
    overall, authorised, unauthorised = (
        sibling_cell(linked.table_set, first, ABSENCE, column)
        for column in ("sessions_overall", "sessions_authorised", "sessions_unauthorised")
    )
    links = [c for c in linked.table_set.constraints if c.total == overall]
    assert any(set(c.parts) == {authorised, unauthorised} for c in links)
    assert not audit_suppression(linked.table_set, {unauthorised}, CONFIG).publishable


def test_build_linked_tables__overall_that_is_not_the_sum_is_refused(absence):
    broken = absence.copy()
    broken.loc[0, "sessions_overall"] = 999
    with pytest.raises(TableSetError, match="do not add up|would not add up"):
        build_linked_tables(ABSENCE, broken)


def test_stage_tables__rates_on_hidden_counts_are_c_and_the_files_pass(absence, tmp_path):
    staging = tmp_path / "staging"
    manifest = stage_tables(
        REGISTRY, {ABSENCE.name: absence}, staging, config=CONFIG, la=LA, run_id="r", time_period="202627"
    )
    assert_valid_ees(staging / "pupil_absence.csv", staging / "pupil_absence.meta.csv")
    rows = list(csv.DictReader((staging / "pupil_absence.csv").open(encoding="utf-8")))
    school = next(row for row in rows if row["school_urn"] == "100001")
    assert school["pupils_persistently_absent"] == "c" and school["persistent_absence_rate"] == "c"
    assert school["sessions_unauthorised"] == "c" and school["unauthorised_absence_rate"] == "c"
    assert "c" in (school["sessions_overall"], school["sessions_authorised"]), "else overall - authorised gives 2"
    la = next(row for row in rows if row["geographic_level"] == "Local authority" and row["school_phase"] == "Total")
    assert la["sessions_possible"] == "29500" and la["overall_absence_rate"] == f"{100 * 1452 / 29500:.1f}"
    for row in rows:
        for count in ABSENCE.count_columns:
            assert row[count] not in {"1", "2"}
    assert manifest["tables"][0]["audit_ok"] is True


def test_stage_tables__primary_suppression_alone_is_refused_for_several_counts(absence, tmp_path):
    linked = build_linked_tables(ABSENCE, absence)
    with pytest.raises(DisclosureRiskError):
        protect_tables(linked, CONFIG, suppress=_primary_only)


def test_stage_tables__workforce_sums_follow_the_headcount(workforce, tmp_path):
    """School 100001's 2 staff are hidden, so are its FTE and days lost, and whatever hides its headcount."""
    staging = tmp_path / "staging"
    stage_tables(REGISTRY, {WORKFORCE.name: workforce}, staging, config=CONFIG, la=LA, run_id="r", time_period="202627")
    assert_valid_ees(staging / "workforce.csv", staging / "workforce.meta.csv")
    rows = list(csv.DictReader((staging / "workforce.csv").open(encoding="utf-8")))
    small = next(row for row in rows if row["school_urn"] == "100001")
    assert (small["staff_headcount"], small["staff_fte"], small["sickness_days_lost"]) == ("c", "c", "c")
    for row in rows:
        hidden = row["staff_headcount"] == "c"
        for column in ("staff_fte", "sickness_days_lost", "sickness_days_per_fte"):
            assert (row[column] == "c") == hidden, (row["school_urn"], column)
    la = next(row for row in rows if row["geographic_level"] == "Local authority" and row["school_phase"] == "Total")
    assert (la["staff_headcount"], la["staff_fte"], la["sickness_days_lost"]) == ("97", "86.3", "160.0")
    assert la["sickness_days_per_fte"] == f"{160 / 86.35:.1f}"


def test_protect_tables__a_published_sum_on_a_hidden_headcount_is_refused(workforce):
    """The audit, independent of the suppression code, refuses a pattern that publishes FTE of a hidden headcount."""
    linked = build_linked_tables(WORKFORCE, workforce)

    def sums_left_out(table_set, config):
        return SuppressionResult(find_primary_cells(table_set, config), frozenset())

    checked_ids = set(linked.derived)
    assert any(derived_id.endswith("#staff_fte") for derived_id in checked_ids)
    small = next(cell.cell_id for cell in linked.published if cell.school_urn == "100001")
    report = audit_suppression(linked.table_set, {small}, CONFIG, derived=linked.derived)
    assert f"{small}#staff_fte" in {exposure.cell_id for exposure in report.exposures}
    with pytest.raises(DisclosureRiskError):
        protect_tables(linked, CONFIG, suppress=sums_left_out)


def test_stage_tables__gld_percent_is_z_when_nobody_was_assessed(tmp_path):
    frame = pd.DataFrame(
        [
            {
                "time_period": _BASE[0],
                "time_identifier": _BASE[1],
                "school_urn": 100000 + n,
                "school_laestab": f"926{n:04d}",
                "school_name": f"School {n}",
                "school_phase": "Primary",
                "pupils_assessed": assessed,
                "pupils_reaching_gld": gld,
            }  # fmt: skip
            for n, (assessed, gld) in enumerate([(0, 0), (30, 20), (25, 17), (40, 27)], start=1)
        ]
    )
    staging = tmp_path / "staging"
    stage_tables(REGISTRY, {EYFS.name: frame}, staging, config=CONFIG, la=LA, run_id="r", time_period="202627")
    assert_valid_ees(staging / "eyfs_gld.csv", staging / "eyfs_gld.meta.csv")
    rows = {row["school_urn"]: row for row in csv.DictReader((staging / "eyfs_gld.csv").open(encoding="utf-8"))}
    assert rows["100001"]["gld_percent"] == "z"
    assert rows["100002"]["gld_percent"] == f"{100 * 20 / 30:.1f}"


@pytest.mark.parametrize("table", [spec.name for spec in REGISTRY.tables])
def test_benchmark_table__every_registered_table_runs_on_synthetic_rows(table):
    """The timing command's synthetic rows fit every registered table (a small run; county scale is by hand)."""
    result = benchmark_table(table, n_schools=8, n_categories=3, seed=1)
    assert result.publishable and result.cells > 0
