"""Registered statistics tables: the registry is strict, the EES files pass the checker, and the audit gate refuses
a pattern that leaves a count recoverable, so that nothing reaches the outbox. No database: inline frames, tmp_path."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd
import pytest
import yaml
from pydantic import ValidationError

from pupilshare.stats import (
    TOTAL,
    DisclosureConfig,
    DisclosureRiskError,
    SuppressionResult,
    TableSet,
    assert_valid_ees,
    audit_suppression,
    find_primary_cells,
    make_cell_id,
)
from pupilshare.stats.publication import (
    LocalAuthority,
    StatisticsModelError,
    build_linked_tables,
    protect_tables,
)
from pupilshare.stats.publish import MANIFEST_NAME, StatisticsRefusedError, stage_tables
from pupilshare.stats.registry import REGISTRY_PATH, StatisticsRegistry, load_registry

LA = LocalAuthority(old_la_code="926", new_la_code="E10000020", la_name="Norfolk")
CONFIG = DisclosureConfig(threshold=3)
REGISTRY = load_registry()
SPEC = REGISTRY.table("pupils_by_characteristic")
_SCHOOLS = {
    # urn: (laestab, name, phase)
    100001: ("9262001", "Alpha Primary", "Primary"),
    100002: ("9262002", "Beta Primary", "Primary"),
    100003: ("9262003", "Gamma High", "Secondary"),
}


def _frame(counts: dict[int, dict[tuple[str, str], int]]) -> pd.DataFrame:
    """A stats model frame from ``{urn: {(characteristic, value): headcount}}``."""
    rows = []
    for urn, cells in counts.items():
        laestab, name, phase = _SCHOOLS[urn]
        for (characteristic, value), headcount in cells.items():
            rows.append(
                {
                    "time_period": "202627",
                    "time_identifier": "Academic year",
                    "school_urn": urn,
                    "school_laestab": laestab,
                    "school_name": name,
                    "school_phase": phase,
                    "characteristic": characteristic,
                    "characteristic_value": value,
                    "headcount": headcount,
                }
            )
    return pd.DataFrame(rows)


def _sex_and_sen(male: int, female: int, sen: int) -> dict[tuple[str, str], int]:
    return {
        ("Sex", "Male"): male,
        ("Sex", "Female"): female,
        ("SEN provision", "SEN support"): sen,
        ("SEN provision", "No SEN"): male + female - sen,
    }


@pytest.fixture
def small_counts() -> pd.DataFrame:
    """
    school          phase      Male  Female  SEN support  No SEN   headcount
    Alpha Primary   Primary     1     10      0            11       11      <- a 1
    Beta Primary    Primary     6     6       2            10       12      <- a 2
    Gamma High      Secondary   5     5       5            5        10
    """
    return _frame({100001: _sex_and_sen(1, 10, 0), 100002: _sex_and_sen(6, 6, 2), 100003: _sex_and_sen(5, 5, 5)})


def _cell(table: str, **coordinates: str) -> str:
    return make_cell_id(f"pupils_by_characteristic:{table}", coordinates)


def test_load_registry__shipped_registry_is_valid():
    assert SPEC.model == "stats_pupils_by_characteristic"
    assert SPEC.geographic_levels == ("School", "Local authority")
    assert [indicator.kind for indicator in SPEC.indicators] == ["count", "percent"]


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("tables", 0, "modle"), "x", "modle"),  # a typo in a key
        (("tables", 0, "indicators", 1, "of"), ["no_such_dimension"], "not dimensions"),
        (("tables", 0, "geographic_levels"), ["School"], "Local authority"),
        (("tables", 0, "indicators", 0, "kind"), "percent", "percent needs"),
        (("tables", 0, "count"), "pupils", "first count indicator must be the table's `count`"),
        (("tables", 0, "indicators", 1, "kind"), "ratio", "a ratio has no \\['of'\\]"),
        (("tables", 0, "indicators", 0, "follows"), "headcount", "a count has no \\['follows'\\]"),
        (("tables", 0, "dimensions"), [], "not dimensions"),
        (("tables", 0, "filters"), {"no_such_column": ["x"]}, "not filters"),
    ],
)
def test_load_registry__mistakes_are_refused_at_load(tmp_path: Path, path, value, message):
    raw = yaml.safe_load(REGISTRY_PATH.read_text(encoding="utf-8"))
    target = raw
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    broken = tmp_path / "tables.yml"
    broken.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(ValidationError, match=message):
        load_registry(broken)


def test_load_registry__table_names_are_unique():
    raw = yaml.safe_load(REGISTRY_PATH.read_text(encoding="utf-8"))
    raw["tables"].append(raw["tables"][0])
    with pytest.raises(ValidationError, match="unique"):
        StatisticsRegistry.model_validate(raw)


def test_build_linked_tables__la_row_is_linked_to_schools_and_phases(small_counts):
    """The LA total is one cell shared by both tables, and each phase is the sum of its schools."""
    linked = build_linked_tables(SPEC, small_counts)
    cells = linked.table_set.cells
    la_male = _cell("la", school_phase=TOTAL, characteristic="Sex", characteristic_value="Male")
    school_total_male = _cell("school", school_urn=TOTAL, characteristic="Sex", characteristic_value="Male")
    primary_male = _cell("la", school_phase="Primary", characteristic="Sex", characteristic_value="Male")
    assert cells[la_male] == cells[school_total_male] == 12
    assert cells[primary_male] == 7
    links = {(c.total, c.parts) for c in linked.table_set.constraints}
    assert (school_total_male, (la_male,)) in links
    alpha = _cell("school", school_urn="100001", characteristic="Sex", characteristic_value="Male")
    beta = _cell("school", school_urn="100002", characteristic="Sex", characteristic_value="Male")
    assert (primary_male, (alpha, beta)) in links
    published = {cell.cell_id for cell in linked.published}
    assert school_total_male not in published, "the LA row of the school table is published once, as the LA row"


def test_build_linked_tables__characteristics_must_cover_the_same_pupils(small_counts):
    broken = small_counts.copy()
    broken.loc[(broken["school_urn"] == 100003) & (broken["characteristic_value"] == "No SEN"), "headcount"] = 6
    with pytest.raises(StatisticsModelError, match="must cover the same pupils"):
        build_linked_tables(SPEC, broken)


def test_stage_tables__files_pass_the_ees_checker_and_small_counts_are_c(small_counts, tmp_path):
    staging = tmp_path / "staging" / "run"
    manifest = stage_tables(
        REGISTRY, {SPEC.name: small_counts}, staging, config=CONFIG, la=LA, run_id="run", time_period="202627"
    )
    data, meta = staging / "pupils_by_characteristic.csv", staging / "pupils_by_characteristic.meta.csv"
    assert_valid_ees(data, meta)
    rows = list(csv.DictReader(data.open(encoding="utf-8")))
    alpha_male = next(r for r in rows if r["school_urn"] == "100001" and r["characteristic_value"] == "Male")
    assert alpha_male["headcount"] == "c" and alpha_male["percent_of_headcount"] == "c"
    beta_sen = next(r for r in rows if r["school_urn"] == "100002" and r["characteristic_value"] == "SEN support")
    assert beta_sen["headcount"] == "c"
    assert not [r for r in rows if r["headcount"] in {"1", "2"}], "every count of 1 or 2 is hidden"
    la_rows = [r for r in rows if r["geographic_level"] == "Local authority" and r["school_phase"] == TOTAL]
    la_total = next(r for r in la_rows if r["characteristic"] == TOTAL)
    assert (la_total["headcount"], la_total["percent_of_headcount"]) == ("33", "100.0")
    assert {r["old_la_code"] for r in rows} == {"926"} and {r["country_code"] for r in rows} == {"E92000001"}
    entry = manifest["tables"][0]
    # primary: Alpha's Male 1, Beta's SEN support 2 and the LA's Primary SEN support 0 + 2
    assert entry["audit_ok"] and entry["cells_primary"] == 3 and entry["cells_secondary"] > 0
    assert entry["min_protection_width"] >= CONFIG.threshold
    assert (staging / MANIFEST_NAME).is_file()


def _primary_only(table_set, config):
    return SuppressionResult(find_primary_cells(table_set, config), frozenset())


def test_stage_tables__primary_suppression_alone_is_refused_and_nothing_is_staged(small_counts, tmp_path):
    """Hiding Alpha's 1 Male but publishing its 10 Female and its headcount 11 gives the 1 back: the audit refuses."""
    staging, outbox = tmp_path / "staging" / "run", tmp_path / "outbox"
    outbox.mkdir()
    with pytest.raises(StatisticsRefusedError, match="disclosure audit") as caught:
        stage_tables(
            REGISTRY, {SPEC.name: small_counts}, staging, config=CONFIG, la=LA, run_id="run", time_period="202627",
            suppress=_primary_only,
        )  # fmt: skip
    assert isinstance(caught.value.__cause__, DisclosureRiskError)
    assert "100001" in str(caught.value)
    assert not staging.exists(), "a refused table leaves nothing staged"
    assert list(outbox.iterdir()) == []


def test_protect_tables__cell_recoverable_across_school_and_la_tables_is_refused(small_counts):
    """
    Hidden: Alpha Male (1) and Female (10), and Gamma High's Male and Female (both 5), which protects Alpha
    within the school table alone (Alpha's row and the Male column each have two hidden cells).
    But the LA table publishes Primary Male = 7, and Beta Primary Male = 6 is published: 7 - 6 = 1.
    """
    linked = build_linked_tables(SPEC, small_counts)
    alpha_male = _cell("school", school_urn="100001", characteristic="Sex", characteristic_value="Male")
    hidden = {
        alpha_male,
        _cell("school", school_urn="100001", characteristic="Sex", characteristic_value="Female"),
        _cell("school", school_urn="100003", characteristic="Sex", characteristic_value="Male"),
        _cell("school", school_urn="100003", characteristic="Sex", characteristic_value="Female"),
        _cell("school", school_urn="100002", characteristic="SEN provision", characteristic_value="SEN support"),
        _cell("school", school_urn="100002", characteristic="SEN provision", characteristic_value="No SEN"),
        _cell("school", school_urn="100003", characteristic="SEN provision", characteristic_value="SEN support"),
        _cell("school", school_urn="100003", characteristic="SEN provision", characteristic_value="No SEN"),
    }
    school_only = [c for c in linked.table_set.constraints if all(":school" in cell for cell in (c.total, *c.parts))]
    school_cells = {cell_id: value for cell_id, value in linked.table_set.cells.items() if ":school" in cell_id}
    school_table = TableSet(school_cells, tuple(school_only))
    assert audit_suppression(school_table, hidden, CONFIG).publishable, "safe if the LA table were not published"
    primary = find_primary_cells(linked.table_set, CONFIG)

    def fixed(table_set, config):
        return SuppressionResult(primary, frozenset(hidden) - primary)

    with pytest.raises(DisclosureRiskError) as caught:
        protect_tables(linked, CONFIG, suppress=fixed)
    exposed = {exposure.cell_id for exposure in caught.value.report.exposures}
    assert alpha_male in exposed


def test_protect_tables__percentages_on_hidden_counts_are_hidden(small_counts):
    checked = protect_tables(build_linked_tables(SPEC, small_counts), CONFIG)
    for derived_id, (numerator, denominator) in checked.linked.derived.items():
        if {numerator, denominator} & checked.suppression.hidden:
            assert derived_id in checked.hidden
        else:
            assert derived_id not in checked.hidden
