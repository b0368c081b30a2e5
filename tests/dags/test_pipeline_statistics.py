"""End to end through real Airflow runs: a census extract becomes published, audited statistics in EES format.

The session shares one database and data folder with the other DAG tests, so nothing here assumes an empty outbox or
ledger: the run is identified by its run id and its files by the hashes in its manifest.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json

import psycopg
import pytest

from pupilshare.generate.census import build_census_extract, write_census_extract
from pupilshare.stats import assert_valid_ees
from pupilshare.summary import run_summary

pytestmark = [pytest.mark.dags, pytest.mark.integration]

FEED_DATE = dt.date(2026, 11, 29)
TIME_PERIOD = "202627"  # the Autumn 2026 census
EXCLUSIONS_PERIOD = "202526"  # the term before it, whose exclusions the Autumn census carries


@pytest.fixture(scope="module")
def statistics_run(isolated_pipeline):
    """Load a small synthetic census with the ingest DAG, then run the statistics DAG once for the module."""
    from airflow.dag_processing.dagbag import DagBag

    settings = isolated_pipeline
    settings.ensure_folders()
    extract = build_census_extract(schools=4, pupils=260, seed=23)
    write_census_extract(extract, settings.inbox_dir / "census" / "autumn_2026_statistics")
    bag = DagBag(dag_folder=str(settings.dags_dir))
    assert bag.import_errors == {}
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    ingest = bag.get_dag("pupilshare_ingest").test(logical_date=now)
    feed_moment = dt.datetime.combine(FEED_DATE, dt.time(), tzinfo=dt.UTC)
    statistics = bag.get_dag("pupilshare_publish_statistics").test(logical_date=feed_moment)
    return settings, extract, ingest, statistics


def _states(dag_run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}


def test_statistics_dag__runs_succeed(statistics_run):
    _, _, ingest, statistics = statistics_run
    assert str(ingest.state) == "success", _states(ingest)
    assert str(statistics.state) == "success", _states(statistics)
    states = _states(statistics)
    assert states["suppress_audit_gate_and_stage"] == "success"
    assert states["publish_and_record"] == "success"
    assert any(task_id.startswith("build_models.stats_pupils_by_characteristic") for task_id in states)


def test_statistics_dag__outbox_holds_checked_files_matching_the_manifest(statistics_run):
    settings, extract, _, _ = statistics_run
    folder = settings.outbox_dir / "statistics" / TIME_PERIOD
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["time_period"] == TIME_PERIOD and manifest["threshold"] == settings.suppression_threshold
    for table in manifest["tables"]:
        assert table["audit_ok"] is True
        for name, sha in table["sha256"].items():
            assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == sha, name
        assert_valid_ees(folder / f"{table['table']}.csv", folder / f"{table['table']}.meta.csv")

    rows = list(csv.DictReader((folder / "pupils_by_characteristic.csv").open(encoding="utf-8")))
    assert not {"1", "2"} & {row["headcount"] for row in rows}, "every count of 1 or 2 is published as c"
    la = {
        (row["characteristic"], row["characteristic_value"]): row["headcount"]
        for row in rows
        if row["geographic_level"] == "Local authority" and row["school_phase"] == "Total"
    }
    pupils = {pupil.upn: pupil for pupil in extract.pupils}
    assert la[("Total", "Total")] == str(len(pupils)), "the LA headcount is every pupil of the census"
    males = sum(pupil.sex == "M" for pupil in pupils.values())
    assert la[("Sex", "Male")] in {str(males), "c"}
    schools = {row["school_urn"] for row in rows if row["geographic_level"] == "School"}
    assert schools == {str(school.urn) for school in extract.schools}


def test_statistics_dag__publication_is_recorded(statistics_run):
    settings, _, _, statistics = statistics_run
    folder = settings.outbox_dir / "statistics" / TIME_PERIOD
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    with psycopg.connect(settings.database_url) as conn:
        records = conn.execute(
            """select table_name, status, sha256, audit_ok from ledger.statistics_publications
               where run_id = %s and time_period = %s""",
            (statistics.run_id, TIME_PERIOD),
        ).fetchall()
    # one row per table with rows for the period (the census alone gives pupils_by_characteristic and pupil_absence)
    assert {table for table, *_ in records} == {table["table"] for table in manifest["tables"]}
    assert {table for table, *_ in records} >= {"pupils_by_characteristic", "pupil_absence"}
    assert {(status, audit_ok) for _, status, _, audit_ok in records} == {("published", True)}
    hashes = {table: sha for table, _, sha, _ in records}
    assert all(hashes[table["table"]] == table["sha256"] for table in manifest["tables"])


def test_statistics_dag__exclusions_of_the_year_before_are_published_in_their_own_period(statistics_run):
    """The Autumn 2026 census carries the summer term's exclusions (2025/26): the run publishes that period too,
    not only the census's own 2026/27, so the exclusions table is never left out."""
    settings, extract, _, statistics = statistics_run
    assert any(pupil.exclusions for pupil in extract.pupils), "the synthetic census has exclusions"
    folder = settings.outbox_dir / "statistics" / EXCLUSIONS_PERIOD
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["time_period"] == EXCLUSIONS_PERIOD and manifest["run_id"] == statistics.run_id
    assert "exclusions_by_reason" in {table["table"] for table in manifest["tables"]}
    assert_valid_ees(folder / "exclusions_by_reason.csv", folder / "exclusions_by_reason.meta.csv")
    with psycopg.connect(settings.database_url) as conn:
        periods = conn.execute(
            """select distinct time_period from ledger.statistics_publications
               where run_id = %s and table_name = 'exclusions_by_reason' and status = 'published'""",
            (statistics.run_id,),
        ).fetchall()
    assert periods == [(EXCLUSIONS_PERIOD,)]


def test_statistics_dag__run_summary_lists_the_publication(statistics_run):
    """What `pupilshare run` prints: time period, table and files of each publication of the run."""
    settings, _, _, statistics = statistics_run
    with psycopg.connect(settings.database_url) as conn:
        publications = run_summary(conn, [statistics.run_id])["statistics"]
    [publication] = [item for item in publications if item["table_name"] == "pupils_by_characteristic"]
    assert (publication["time_period"], publication["table_name"], publication["status"]) == (
        TIME_PERIOD,
        "pupils_by_characteristic",
        "published",
    )
    assert set(publication["files"]) == {
        "pupils_by_characteristic.csv",
        "pupils_by_characteristic.meta.csv",
        "manifest.json",
    }
