"""Replay (``pupilshare replay``): a past YSS delivery is rebuilt from the load batches current when it was delivered
and reproduces the ledger's checksum after a resubmission changed the data; a tampered raw row of the past batch is a
mismatch, reported with why.

A small generated county is loaded through the ingest into a scratch database, the YSS models are built by dbt, and
the feed is gated and delivered by the publish functions, exactly as the DAG's tasks call them.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import shutil
import uuid

import psycopg
import psycopg.rows
import pytest
from psycopg import sql
from typer.testing import CliRunner

from pupilshare.cli import app
from pupilshare.dates import age_in_years
from pupilshare.db import with_database
from pupilshare.generate.census import build_census_extract, write_census_extract
from pupilshare.generate.returns import generate_all_returns
from pupilshare.ingest import ingest_inbox
from pupilshare.policy import load_policy
from pupilshare.publish import _read_mart, _stage, deliver_feed, gate_feed, staged_files
from pupilshare.replay import _as_of_batch, build_recipient_models, mismatch_reasons
from pupilshare.settings import Settings

pytestmark = pytest.mark.integration

FEED_DATE = dt.date(2026, 11, 30)
CENSUS_FOLDER = "autumn_2026"


@pytest.fixture(scope="module")
def county(tmp_path_factory, admin_url):
    """A loaded county with one YSS delivery: yields (settings, extract, delivery result, census folder)."""
    name = f"pupilshare_scratch_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    try:
        tmp = tmp_path_factory.mktemp("replay")
        settings = Settings(database_url=with_database(admin_url, name), data_dir=tmp / "data")
        settings.ensure_folders()
        extract = build_census_extract(schools=3, pupils=150, seed=7)
        generated = tmp / "generated"
        write_census_extract(extract, generated / CENSUS_FOLDER)
        shutil.copytree(generated / CENSUS_FOLDER, settings.inbox_dir / "census" / CENSUS_FOLDER)
        generate_all_returns(extract, settings.inbox_dir, seed=7)
        assert ingest_inbox(settings).loaded
        delivered = _publish(settings)
        yield settings, extract, delivered, generated
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def _publish(settings: Settings) -> dict:
    """Build, gate and deliver the YSS feed as the publish DAG's tasks do."""
    yss = load_policy().recipient("yss")
    build_recipient_models(settings.database_url, yss, feed_date=FEED_DATE, persistence="persist", run_tests=True)
    staging = gate_feed("yss", feed_date=FEED_DATE, run_id=f"run-{uuid.uuid4().hex[:8]}", settings=settings)
    result = deliver_feed(staging, settings=settings)
    assert result["status"] == "delivered"
    return result


def _resubmit_with_new_surname(settings: Settings, generated, upn: str) -> None:
    """The census extract again with one cohort pupil's surname corrected: supersedes every school's return."""
    target = settings.inbox_dir / "census" / f"{CENSUS_FOLDER}_corrected"
    shutil.copytree(generated / CENSUS_FOLDER, target)
    path = target / "pupilonroll.csv"
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    columns = list(rows[0])
    surname = next(column for column in columns if column.lower() == "surname")
    upn_column = next(column for column in columns if column.lower() == "upn")
    changed = [row for row in rows if row[upn_column] == upn]
    assert changed, f"{upn} is in the extract"
    for row in changed:
        row[surname] = "Resubmitted"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    assert ingest_inbox(settings).loaded


def _current_checksum(settings: Settings, tmp_path) -> str:
    """The checksum the live mart would be delivered with now (same staging code)."""
    yss = load_policy().recipient("yss")
    with psycopg.connect(settings.database_url) as conn:
        columns, rows = _read_mart(conn, yss)
    scratch = settings.model_copy(update={"data_dir": tmp_path / "now"})
    staging = _stage(yss, columns, rows, feed_date=FEED_DATE, run_id="now", settings=scratch)
    return staged_files(json.loads((staging / "stage.json").read_text()))[0]["file_sha256"]


def _cli(settings: Settings, *args: str):
    env = {"PUPILSHARE_DATABASE_URL": settings.database_url, "PUPILSHARE_DATA_DIR": str(settings.data_dir)}
    return CliRunner().invoke(app, ["replay", *args], env=env)


def _cohort_pupil(extract) -> str:
    return next(pupil.upn for pupil in extract.pupils if age_in_years(pupil.dob, FEED_DATE) >= 14)


def test_replay__reproduces_the_past_feed_after_a_resubmission_changed_the_data(county, tmp_path):
    settings, extract, delivered, generated = county
    with psycopg.connect(settings.database_url) as conn:
        recorded = conn.execute(
            """select contexts.max_load_batch_id, contexts.dbt_version, contexts.policy_version,
                      register.dbt_version
               from ledger.deliveries as deliveries
               join ledger.build_contexts as contexts using (gate_result_id)
               join ledger.disclosure_register as register using (delivery_id)
               where deliveries.delivery_id = %s limit 1""",
            (delivered["delivery_id"],),
        ).fetchone()
    assert recorded is not None and recorded[1].startswith("dbt-core ") and recorded[3] == recorded[1]
    assert recorded[2] == load_policy().version

    _resubmit_with_new_surname(settings, generated, _cohort_pupil(extract))
    yss = load_policy().recipient("yss")
    build_recipient_models(settings.database_url, yss, feed_date=FEED_DATE, persistence="persist", run_tests=True)
    with psycopg.connect(settings.database_url) as conn:
        assert conn.execute("select count(*) from yss.yss_feed where surname = 'Resubmitted'").fetchone()[0] == 1
        newest = conn.execute("select max(load_batch_id) from raw.load_batches").fetchone()[0]
    assert _current_checksum(settings, tmp_path) != delivered["sha256"], "the resubmission changed the feed"
    assert newest > recorded[0], "the resubmission is a later batch than the delivery's"

    result = _cli(settings, delivered["delivery_id"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["match"] and report["actual_sha256"] == delivered["sha256"]
    assert report["max_load_batch_id"] == recorded[0]
    with psycopg.connect(settings.database_url) as conn:
        # the live mart is untouched by the replay: still the resubmitted data
        assert conn.execute("select count(*) from yss.yss_feed where surname = 'Resubmitted'").fetchone()[0] == 1

    by_date = _cli(settings, "--recipient", "yss", "--feed-date", FEED_DATE.isoformat())
    assert by_date.exit_code == 0 and json.loads(by_date.stdout)["delivery_id"] == delivered["delivery_id"]


def test_replay__a_tampered_raw_row_of_the_past_batch_is_a_mismatch_with_why(county):
    settings, extract, delivered, _ = county
    upn = _cohort_pupil(extract)
    with psycopg.connect(settings.database_url) as conn:
        first = conn.execute("select min(load_batch_id) from raw.load_batches where return_type = 'census'").fetchone()[
            0
        ]
        changed = conn.execute(
            "update raw.census_pupilonroll set forename = 'Tampered' where _load_batch_id = %s and upn = %s",
            (first, upn),
        ).rowcount
    assert changed >= 1
    result = _cli(settings, delivered["delivery_id"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert not report["match"] and report["actual_sha256"] != delivered["sha256"]
    assert any("first difference at line" in reason for reason in report["reasons"])
    assert any("raw data of the load batches" in reason for reason in report["reasons"])
    assert "MISMATCH" in result.stderr


def test_replay__an_unknown_delivery_cannot_be_replayed(county):
    settings = county[0]
    result = _cli(settings, str(uuid.uuid4()))
    assert result.exit_code == 2 and "no delivery" in result.stderr


def test_mismatch_reasons__a_policy_or_dbt_version_that_differs_is_named(county):
    """The recorded versions of a delivery against the code now (a delivery row as the replay reads it)."""
    settings, _, delivered, _ = county
    with psycopg.connect(settings.database_url, row_factory=psycopg.rows.dict_row) as conn:
        row = conn.execute(
            """select d.*, c.max_load_batch_id, c.dbt_version, c.dbt_project_sha256, true as has_context
               from ledger.deliveries as d join ledger.build_contexts as c using (gate_result_id)
               where d.delivery_id = %s""",
            (delivered["delivery_id"],),
        ).fetchone()
    reasons = mismatch_reasons(
        {**row, "policy_version": "2025.01.1", "dbt_version": "dbt-core 1.8.0 / dbt-postgres 1.8.0"}, None
    )
    assert any("policy version differs: delivered under 2025.01.1" in reason for reason in reasons)
    assert any("dbt version differs: delivered with dbt-core 1.8.0" in reason for reason in reasons)
    assert not any("raw data" in reason for reason in reasons), "a version difference explains it"


def test_as_of_batch__a_delivery_without_a_build_context_uses_the_batches_loaded_before_its_gate(county):
    """Deliveries recorded before build contexts existed: the newest batch loaded at or before the gate ran."""
    settings = county[0]
    with psycopg.connect(settings.database_url) as conn:
        batches = conn.execute("select load_batch_id, loaded_at from raw.load_batches order by 1").fetchall()
        (first_id, first_at), (last_id, _) = batches[0], batches[-1]
        assert last_id > first_id
        batch, notes = _as_of_batch(conn, {"has_context": False, "gate_checked_at": first_at, "delivered_at": None})
    assert batch == max(batch_id for batch_id, loaded_at in batches if loaded_at <= first_at)
    assert batch < last_id and "no build context recorded" in notes[0]
