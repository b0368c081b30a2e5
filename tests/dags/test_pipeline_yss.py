"""End to end through real Airflow runs: a census extract becomes a gated, delivered, recorded YSS feed (the other
recipients' runs are tests/dags/test_pipeline_routed_feeds.py's and tests/dags/test_pipeline_statistics.py's).

Also: a leak planted into the built mart makes the gate fail, and then nothing is delivered or recorded.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json

import psycopg
import pytest

from pupilshare.dates import age_in_years
from pupilshare.generate.census import build_census_extract, write_census_extract
from pupilshare.policy import load_policy
from pupilshare.settings import Settings

# the module fixture runs the ingest and YSS publish DAGs (about 40 dbt tasks) inside the first test: on 2 loaded
# cores that has taken over 13 minutes, beyond the suite's default 15-minute timeout with little to spare
pytestmark = [pytest.mark.dags, pytest.mark.integration, pytest.mark.timeout(3600)]
YSS_PIPELINE = ("pupilshare_ingest", "pupilshare_publish_yss")

FEED_DATE = dt.date(2026, 11, 29)
BIRTHDAY_TODAY = dt.date(2013, 11, 29)  # 13 on the feed date: in
BIRTHDAY_TOMORROW = dt.date(2013, 11, 30)  # 13 the day after: out
OPT_OUT_DATE = dt.date(2026, 11, 2)
YSS = load_policy().recipient("yss")


@pytest.fixture(scope="module")
def pipeline(isolated_pipeline):
    """Load a synthetic extract with boundary pupils and run ingest + publish once for the module."""
    settings = isolated_pipeline
    settings.ensure_folders()
    extract = build_census_extract(schools=3, pupils=240, seed=11)
    older = [pupil for pupil in extract.pupils if age_in_years(pupil.dob, FEED_DATE) >= 14]
    planted = {
        "today": dataclasses.replace(older[0], dob=BIRTHDAY_TODAY, yssa="Yes"),
        "tomorrow": dataclasses.replace(older[1], dob=BIRTHDAY_TOMORROW, yssa=""),
        "restricted": dataclasses.replace(older[2], yssa="No", sen_provision="K"),
        "full": dataclasses.replace(older[3], yssa="Yes"),
    }
    under_16 = [pupil for pupil in older[4:] if age_in_years(pupil.dob, OPT_OUT_DATE) < 16]
    planted["parent_request"] = dataclasses.replace(under_16[0], yssa="Yes")
    replaced = {pupil.upn: pupil for pupil in planted.values()}
    pupils = [replaced.get(pupil.upn, pupil) for pupil in extract.pupils]
    extract = dataclasses.replace(extract, pupils=pupils)
    write_census_extract(extract, settings.inbox_dir / "census" / "autumn_2026")
    optouts = settings.inbox_dir / "optouts"
    optouts.mkdir(parents=True, exist_ok=True)
    (optouts / "optouts_926_2026-11-02.csv").write_text(
        "upn,scope,action,requested_by,requested_on,channel\n"
        f"{planted['parent_request'].upn},yss,opt_out,parent,{OPT_OUT_DATE.isoformat()},letter\n",
        encoding="utf-8",
    )

    from pupilshare.airflow.runner import run_pipeline

    outcomes = run_pipeline(settings, FEED_DATE, YSS_PIPELINE)
    return settings, extract, planted, outcomes


def _feed_rows(settings: Settings) -> list[dict[str, str]]:
    folder = settings.outbox_dir / "yss" / FEED_DATE.isoformat()
    with (folder / f"yss_{FEED_DATE.isoformat()}.csv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _ledger(settings: Settings, query: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(settings.database_url) as conn:
        return conn.execute(query, params).fetchall()


def test_pipeline__every_run_succeeds(pipeline):
    _, _, _, outcomes = pipeline
    assert [(outcome.dag_id, outcome.state) for outcome in outcomes] == [(dag_id, "success") for dag_id in YSS_PIPELINE]


def test_pipeline__feed_holds_exactly_pupils_aged_13_or_over(pipeline):
    settings, extract, planted, _ = pipeline
    rows = _feed_rows(settings)
    expected = {
        (p.forename, p.surname, p.dob.isoformat()) for p in extract.pupils if age_in_years(p.dob, FEED_DATE) >= 13
    }
    assert {(row["forename"], row["surname"], row["date_of_birth"]) for row in rows} == expected
    upns = {row["upn"] for row in rows}
    assert planted["today"].upn in upns, "13th birthday on the feed date: in"
    assert planted["tomorrow"].upn not in upns, "13th birthday the day after: out"
    assert all(age_in_years(dt.date.fromisoformat(row["date_of_birth"]), FEED_DATE) >= 13 for row in rows)


def test_pipeline__restricted_pupil_has_only_name_address_and_dob(pipeline):
    settings, _, planted, _ = pipeline
    restricted = planted["restricted"]
    rows = [
        row
        for row in _feed_rows(settings)
        if row["forename"] == restricted.forename
        and row["surname"] == restricted.surname
        and row["date_of_birth"] == restricted.dob.isoformat()
    ]
    assert len(rows) == 1
    row = rows[0]
    assert all(row[field] == "" for field in YSS.further_fields), row
    assert row["postcode"] == restricted.address.postcode
    full = next(row for row in _feed_rows(settings) if row["upn"] == planted["full"].upn)
    assert full["school_urn"] and full["nc_year"] and full["sex"]


def test_pipeline__parent_opt_out_request_restricts(pipeline):
    settings, _, planted, _ = pipeline
    requested = planted["parent_request"]
    rows = [
        row
        for row in _feed_rows(settings)
        if (row["forename"], row["surname"], row["date_of_birth"])
        == (requested.forename, requested.surname, requested.dob.isoformat())
    ]
    assert len(rows) == 1
    assert all(rows[0][field] == "" for field in YSS.further_fields)
    assert requested.upn not in {row["upn"] for row in _feed_rows(settings)}


def test_pipeline__manifest_ledger_and_data_docs(pipeline):
    settings, _, planted, outcomes = pipeline
    folder = settings.outbox_dir / "yss" / FEED_DATE.isoformat()
    manifest = json.loads((folder / f"yss_{FEED_DATE.isoformat()}.manifest.json").read_text(encoding="utf-8"))
    rows = _feed_rows(settings)
    assert manifest["row_count"] == len(rows)
    assert manifest["columns"] == list(YSS.delivered_fields)
    ledger = _ledger(settings, "select upn, fields_sent, legal_basis, file_sha256, run_id from ledger.disclosures")
    assert len(ledger) == len(rows), "one ledger row per pupil per delivery"
    assert {entry[3] for entry in ledger} == {manifest["sha256"]}
    yss_run = next(outcome.run_id for outcome in outcomes if outcome.dag_id == "pupilshare_publish_yss")
    assert {entry[4] for entry in ledger} == {yss_run}
    restricted_fields = next(entry[1] for entry in ledger if entry[0] == planted["restricted"].upn)
    assert set(restricted_fields) <= set(YSS.identity_fields)
    assert (settings.data_docs_dir / "index.html").is_file()


def test_pipeline__planted_leak_fails_gate_and_nothing_is_delivered(pipeline):
    settings, _, planted, _ = pipeline
    before_files = sorted(path.name for path in settings.outbox_dir.rglob("*"))
    before_ledger = _ledger(settings, "select count(*) from ledger.disclosures")[0][0]
    with psycopg.connect(settings.database_url) as conn:
        conn.execute(
            "update yss.yss_feed set school_urn = 123456, sen_provision_code = 'K' where ledger_upn = %s",
            (planted["restricted"].upn,),
        )
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(settings.dags_dir)).get_dag("pupilshare_publish_yss")
    feed_moment = dt.datetime.combine(FEED_DATE, dt.time(), tzinfo=dt.UTC)
    # The dbt build is marked success without running, so the gate sees the planted leak in the built mart.
    dag_run = dag.test(logical_date=feed_moment, mark_success_pattern=r"build_models\..*")
    states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
    assert str(dag_run.state) == "failed"
    assert states["gate_and_stage"] == "failed"
    assert states["deliver_and_record"] == "upstream_failed"
    assert sorted(path.name for path in settings.outbox_dir.rglob("*")) == before_files
    assert _ledger(settings, "select count(*) from ledger.disclosures")[0][0] == before_ledger
    failures = _ledger(settings, "select failures::text from ledger.gate_results where not success")
    assert failures and "school_urn" in failures[-1][0]
