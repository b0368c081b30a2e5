"""Every registered statistics table built by dbt from generated returns, then through suppression, audit and format.

A fresh database gets a generated county (census plus every other return: workforce, EYFS, NCMP...) through the real
loader; ``dbt build --selector statistics`` (the statistics DAG's selection: models, data tests, unit tests) must pass.
Then, for the 2026/27 period (2025/26 for exclusions, which the Autumn 2026 census collects for the summer term
before it), every registered table must stage through both publish gates (the disclosure audit and
the EES checker), and each table with only primary suppression must be refused by the audit.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import psycopg
import pytest
from dbt.cli.main import dbtRunner
from psycopg import sql

from pupilshare import PROJECT_ROOT
from pupilshare.db import DatabaseEndpoints, with_database
from pupilshare.generate.census import build_census_extract, write_census_extract
from pupilshare.generate.returns import generate_all_returns
from pupilshare.ingest import ingest_inbox
from pupilshare.settings import Settings
from pupilshare.stats import DisclosureConfig, DisclosureRiskError, SuppressionResult, find_primary_cells
from pupilshare.stats.ees import assert_valid_ees
from pupilshare.stats.publication import LocalAuthority, build_linked_tables, protect_tables
from pupilshare.stats.publish import read_stats_models, stage_tables
from pupilshare.stats.registry import default_registry

pytestmark = pytest.mark.integration

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
TIME_PERIOD = "202627"
EXCLUSIONS_PERIOD = "202526"
NEW_TABLES = ("pupil_absence", "exclusions_by_reason", "eyfs_gld", "workforce", "ncmp_prevalence")
#: The count of each table made to hold exactly one small cell in the primary-only test.
SMALL_COLUMNS = {
    "pupil_absence": "pupils_persistently_absent",
    "exclusions_by_reason": "exclusions",
    "eyfs_gld": "pupils_reaching_gld",
    "workforce": "vacancies",
    "ncmp_prevalence": "children_measured",
}
CONFIG = DisclosureConfig(threshold=5)  # an LA threshold (SHARING_RULES.md: often 5 or 10)
LA = LocalAuthority(old_la_code="926", new_la_code="E10000020", la_name="Norfolk")


@pytest.fixture(scope="module")
def stats_frames(admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, pd.DataFrame]]:
    """A generated county loaded and built by dbt; every registered stats model's rows for 2026/27."""
    name = f"pupilshare_stats_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    url = with_database(admin_url, name)
    folder = tmp_path_factory.mktemp("stats_county")
    patch = pytest.MonkeyPatch()
    try:
        settings = Settings(database_url=url, data_dir=folder / "data")
        settings.ensure_folders()
        extract = build_census_extract(schools=30, pupils=1800, seed=5)  # small schools: small counts to hide
        write_census_extract(extract, settings.inbox_dir / "census" / "autumn_2026")
        generate_all_returns(extract, settings.inbox_dir, seed=7)
        ingest_inbox(settings)
        for key, value in DatabaseEndpoints(url, "", embedded=False).dbt_env().items():
            patch.setenv(key, value)
        result = _dbt(folder, "build", "--selector", "statistics")
        assert result.success, f"dbt build failed: {_failed(result) or result.exception}"
        with psycopg.connect(url) as conn:
            _, frames = read_stats_models(conn, default_registry(), TIME_PERIOD)
            # an Autumn census collects the summer term before it: its exclusions belong to the year before
            _, earlier = read_stats_models(conn, default_registry(), EXCLUSIONS_PERIOD)
        yield {**frames, "exclusions_by_reason": earlier["exclusions_by_reason"]}
    finally:
        patch.undo()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def _dbt(folder: Path, *args: str):
    """Run dbt in-process against the project, writing target/ and logs/ under ``folder`` (not into the repo)."""
    return dbtRunner().invoke(
        [
            *args,
            "--project-dir", str(DBT_PROJECT_DIR),
            "--profiles-dir", str(DBT_PROJECT_DIR),
            "--target-path", str(folder / "target"),
            "--log-path", str(folder / "logs"),
            "--vars", json.dumps({"feed_date": "2026-11-29"}),
        ]
    )  # fmt: skip


def _failed(result) -> list[str]:
    return [
        f"{item.node.name}: {item.status}" for item in (result.result or []) if str(item.status) in {"error", "fail"}
    ]


def _primary_only(table_set, config):
    return SuppressionResult(find_primary_cells(table_set, config), frozenset())


def test_stats_tables__every_table_passes_the_audit_and_the_ees_checker(stats_frames, tmp_path):
    assert set(NEW_TABLES) <= set(stats_frames), f"tables without rows for {TIME_PERIOD}: {sorted(stats_frames)}"
    manifest = stage_tables(
        default_registry(), stats_frames, tmp_path / "staged", config=CONFIG, la=LA, run_id="test",
        time_period=TIME_PERIOD,
    )  # fmt: skip
    entries = {entry["table"]: entry for entry in manifest["tables"]}
    for table in NEW_TABLES:
        entry = entries[table]
        assert entry["audit_ok"] is True, entry["audit"]
        assert entry["cells_primary"] > 0, f"{table}: the generated county should have small counts to hide"
        assert_valid_ees(tmp_path / "staged" / f"{table}.csv", tmp_path / "staged" / f"{table}.meta.csv")


def test_stats_tables__derived_values_follow_hidden_counts(stats_frames, tmp_path):
    """Rates on a hidden count and workforce FTE / sickness days on a hidden headcount are written as c."""
    stage_tables(
        default_registry(), stats_frames, tmp_path / "staged", config=CONFIG, la=LA, run_id="test",
        time_period=TIME_PERIOD,
    )  # fmt: skip
    workforce = pd.read_csv(tmp_path / "staged" / "workforce.csv", dtype=str)
    hidden = workforce["staff_headcount"] == "c"
    assert (workforce.loc[hidden, ["staff_fte", "sickness_days_lost"]] == "c").all().all()
    assert not (workforce.loc[~hidden, ["staff_fte", "sickness_days_lost"]] == "c").any().any()
    absence = pd.read_csv(tmp_path / "staged" / "pupil_absence.csv", dtype=str)
    rate_inputs = {
        "overall_absence_rate": ("sessions_overall", "sessions_possible"),
        "persistent_absence_rate": ("pupils_persistently_absent", "pupils_enrolled"),
    }
    for rate, inputs in rate_inputs.items():
        on_hidden = (absence[list(inputs)] == "c").any(axis=1)
        assert (absence.loc[on_hidden, rate] == "c").all(), rate
    assert not {"1", "2"} & set(absence["pupils_persistently_absent"])


@pytest.mark.parametrize(("table", "column"), SMALL_COLUMNS.items())
def test_stats_tables__primary_suppression_alone_is_refused_by_the_audit(stats_frames, table, column):
    """One count of the generated table made the only small one of its column: hiding it alone gives it back.

    (With many small schools, primary suppression alone can happen to be safe: small cells in one total cover each
    other, and the audit rightly passes them. So the test leaves exactly one small cell in ``column``: every other
    count from 1 to threshold - 1 there is raised to the threshold, and the first school's is set to 1.)
    """
    spec = default_registry().table(table)
    frame = stats_frames[table].copy()
    values = frame[column]
    frame[column] = values.where((values == 0) | (values >= CONFIG.threshold), CONFIG.threshold)
    frame.loc[frame.index[0], column] = 1
    linked = build_linked_tables(spec, frame)
    assert find_primary_cells(linked.table_set, CONFIG), "the frame has a small count"
    with pytest.raises(DisclosureRiskError) as caught:
        protect_tables(linked, CONFIG, suppress=_primary_only)
    assert caught.value.report.exposures
    assert protect_tables(linked, CONFIG).report.publishable, "full suppression protects the same frame"


def test_stats_tables__ncmp_prevalence_adds_up_and_hides_small_categories(stats_frames, tmp_path):
    """NCMP prevalence: the categories of each year group add up to the children measured at LA level, and each
    published percentage is of the year group's total, `c` on a hidden count."""
    frame = stats_frames["ncmp_prevalence"]
    assert set(frame["nc_year"]) == {"Reception", "Year 6"}
    assert (frame["children_measured"] > 0).any() and (frame["children_measured"] == 0).any()
    stage_tables(
        default_registry(), stats_frames, tmp_path / "staged", config=CONFIG, la=LA, run_id="test",
        time_period=TIME_PERIOD,
    )  # fmt: skip
    staged = pd.read_csv(tmp_path / "staged" / "ncmp_prevalence.csv", dtype=str)
    la = staged[(staged["geographic_level"] == "Local authority") & (staged["school_phase"] == "Total")]
    for year, rows in la[la["nc_year"] != "Total"].groupby("nc_year"):
        total = rows.loc[rows["bmi_category"] == "Total", "children_measured"].astype(int).item()
        assert total == int(frame.loc[frame["nc_year"] == year, "children_measured"].sum())
        parts = rows[rows["bmi_category"] != "Total"]
        if not (parts["children_measured"] == "c").any():
            assert parts["children_measured"].astype(int).sum() == total
    hidden = staged["children_measured"] == "c"
    assert hidden.any(), "a county of small schools has small categories to hide"
    assert (staged.loc[hidden, "prevalence_percent"] == "c").all()
    assert not {"1", "2", "3", "4"} & set(staged["children_measured"])
