"""End to end through real Airflow runs: a census extract becomes a gated, delivered, recorded YSS feed (the other
recipients' runs are tests/dags/test_pipeline_routed_feeds.py's and tests/dags/test_pipeline_statistics.py's).

Also: a leak planted into the built mart makes the gate fail, and then nothing is delivered or recorded; and the
delivery target fails (once, then on every try; and an SFTP server down on the first try): the deliver task retries and
alerts, and a feed is delivered and recorded exactly once.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import hashlib
import json
import logging

import psycopg
import pytest

from pupilshare.dates import age_in_years
from pupilshare.files import sha256_file
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
# The delivery fault tests: a feed date each, so neither collides with the module's delivery nor with each other.
TRANSIENT_FEED_DATE = dt.date(2026, 12, 6)
PERSISTENT_FEED_DATE = dt.date(2026, 12, 13)
SFTP_FEED_DATE = dt.date(2026, 12, 20)
SFTP_OUTAGE_FEED_DATE = dt.date(2026, 12, 27)
RETRY_DELAY_SECONDS = 2  # production waits 30 s, then 60 s; 2 s, then 4 s keeps a test's three tries short
OUTAGE_NOTE = "the recipient's outbox share is not mounted\n"


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


class _AlertRecords(logging.Handler):
    """Every message the ``pupilshare.alerts`` logger emits (the alert callbacks only log)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def about(self, kind: str, task_id: str) -> list[str]:
        return [message for message in self.messages if message.startswith(kind) and f".{task_id} " in message]


@pytest.fixture
def alerts():
    handler = _AlertRecords()
    logger = logging.getLogger("pupilshare.alerts")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def _build_mart_for(settings: Settings, feed_date: dt.date, folder) -> None:
    """Rebuild the YSS mart (and what it reads) for ``feed_date``: ages are taken on the feed date, and the gate
    checks the mart against the cohort of that date. This also replaces a mart the planted-leak test altered."""
    from dbt.cli.main import dbtRunner

    from pupilshare.airflow.cosmos_config import DBT_PROJECT_DIR

    dbt_vars = {"feed_date": feed_date.isoformat(), "opt_out_persistence": settings.opt_out_persistence}
    result = dbtRunner().invoke(
        ["run", "--select", f"+{YSS.mart}", "--quiet",
         "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
         "--target-path", str(folder / "target"), "--log-path", str(folder / "logs"),
         "--vars", json.dumps(dbt_vars)]
    )  # fmt: skip
    assert result.success, result.exception


def _publish_yss_dag(single_dag, monkeypatch: pytest.MonkeyPatch):
    """The YSS publish DAG alone, parsed with a short retry delay (PUPILSHARE_PUBLISH_RETRY_DELAY_SECONDS)."""
    monkeypatch.setenv("PUPILSHARE_PUBLISH_RETRY_DELAY_SECONDS", str(RETRY_DELAY_SECONDS))
    dag = single_dag("pupilshare_publish_yss")
    deliver = dag.get_task("deliver_and_record")
    assert deliver.retries == 2 and deliver.retry_delay == dt.timedelta(seconds=RETRY_DELAY_SECONDS)
    return dag


def _run_publish(dag, feed_date: dt.date):
    """One real run of the publish DAG for ``feed_date``; the mart is already built for it, so the dbt build is
    marked success without running. A second call for the same date reruns the same run: ``run_after`` is pinned,
    so the run id is the same, and dag.test replaces the run of that logical date."""
    moment = dt.datetime.combine(feed_date, dt.time(), tzinfo=dt.UTC)
    dag_run = dag.test(run_after=moment, logical_date=moment, mark_success_pattern=r"build_models\..*")
    return dag_run, {ti.task_id: ti for ti in dag_run.get_task_instances()}


def _occupy_target(settings: Settings, feed_date: dt.date):
    """Make the delivery target unavailable: a plain file where the feed date's outbox folder must be (as when the
    recipient's share is not mounted). Tests run as root, so a chmod would not stop a write; a file in the way does."""
    target = settings.outbox_dir / "yss" / feed_date.isoformat()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(OUTAGE_NOTE, encoding="utf-8")
    return target


def _assert_delivered_once(settings: Settings, feed_date: dt.date) -> dict:
    """Exactly one delivery for ``feed_date``, one ledger row per delivered pupil, and the files in the outbox are the
    feed and its manifest only, byte for byte what the manifest and the ledger say."""
    deliveries = _ledger(
        settings,
        "select delivery_id, delivery_key, file_sha256, row_count from ledger.deliveries where feed_date = %s",
        (feed_date,),
    )
    assert len(deliveries) == 1, deliveries
    delivery_id, delivery_key, ledger_sha, row_count = deliveries[0]
    disclosures = _ledger(
        settings, "select upn, delivery_id from ledger.disclosures where feed_date = %s", (feed_date,)
    )
    assert {row[1] for row in disclosures} == {delivery_id}, "every ledger row of the feed date is of that delivery"
    folder = settings.outbox_dir / "yss" / feed_date.isoformat()
    feed_file = folder / f"yss_{feed_date.isoformat()}.csv"
    manifest_file = folder / f"yss_{feed_date.isoformat()}.manifest.json"
    assert sorted(path.name for path in folder.iterdir()) == sorted([feed_file.name, manifest_file.name])
    manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    with feed_file.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sha256_file(feed_file) == manifest["sha256"] == ledger_sha
    assert len(rows) == manifest["row_count"] == row_count == len(disclosures) > 0
    assert len({row[0] for row in disclosures}) == len(disclosures), "one ledger row per pupil"
    assert manifest["delivery_id"] == str(delivery_id) and manifest["feed_date"] == feed_date.isoformat()
    assert delivery_key.endswith(manifest["sha256"])
    return manifest


def test_pipeline__delivery_target_down_on_first_try__retry_delivers_once(
    pipeline, single_dag, monkeypatch, alerts, tmp_path
):
    """Try 1: the target folder is unavailable, the task fails and is put up for retry (a retry alert); the target
    comes back while it waits; try 2 delivers, and the feed is delivered and recorded exactly once."""
    settings, _, _, _ = pipeline
    _build_mart_for(settings, TRANSIENT_FEED_DATE, tmp_path)
    target = _occupy_target(settings, TRANSIENT_FEED_DATE)
    dag = _publish_yss_dag(single_dag, monkeypatch)
    deliver = dag.get_task("deliver_and_record")
    # the target comes back during the retry delay: restored when Airflow puts the task up for retry
    deliver.on_retry_callback = [*_callbacks(deliver.on_retry_callback), lambda context: target.unlink()]

    dag_run, tasks = _run_publish(dag, TRANSIENT_FEED_DATE)

    assert str(dag_run.state) == "success", {task_id: str(ti.state) for task_id, ti in tasks.items()}
    assert str(tasks["deliver_and_record"].state) == "success"
    assert tasks["deliver_and_record"].try_number == 2, "try 1 met the unavailable target; try 2 delivered"
    retried = alerts.about("PUPILSHARE RETRY", "deliver_and_record")
    assert len(retried) == 1 and "DeliveryWriteError" in retried[0] and "try 1" in retried[0], alerts.messages
    assert not alerts.about("PUPILSHARE ALERT", "deliver_and_record"), "a retry that succeeds is no failure"
    _assert_delivered_once(settings, TRANSIENT_FEED_DATE)


def test_pipeline__delivery_target_down_on_every_try__fails_alerts_and_rerun_delivers_once(
    pipeline, single_dag, monkeypatch, alerts, tmp_path
):
    """Every try meets the unavailable target: the task fails after its 2 retries, the failure alert names it, and
    nothing is delivered, recorded or left half-written. Once the target is back, rerunning the same run delivers the
    feed exactly once, and delivering the same staged feed again is refused by its delivery key."""
    from pupilshare.files import slug
    from pupilshare.publish import deliver_feed

    settings, _, _, _ = pipeline
    _build_mart_for(settings, PERSISTENT_FEED_DATE, tmp_path)
    target = _occupy_target(settings, PERSISTENT_FEED_DATE)
    outbox_before = sorted(str(path) for path in settings.outbox_dir.rglob("*"))
    dag = _publish_yss_dag(single_dag, monkeypatch)

    dag_run, tasks = _run_publish(dag, PERSISTENT_FEED_DATE)

    assert str(dag_run.state) == "failed"
    assert str(tasks["gate_and_stage"].state) == "success"
    assert str(tasks["deliver_and_record"].state) == "failed"
    assert tasks["deliver_and_record"].try_number == 3, "the first try and both retries met the unavailable target"
    assert len(alerts.about("PUPILSHARE RETRY", "deliver_and_record")) == 2, alerts.messages
    (failed,) = alerts.about("PUPILSHARE ALERT", "deliver_and_record")
    assert f"pupilshare_publish_yss.deliver_and_record failed in run {dag_run.run_id}" in failed
    assert "DeliveryWriteError" in failed and "Nothing was delivered and nothing recorded" in failed
    assert not _ledger(settings, "select 1 from ledger.deliveries where feed_date = %s", (PERSISTENT_FEED_DATE,))
    assert not _ledger(settings, "select 1 from ledger.disclosures where feed_date = %s", (PERSISTENT_FEED_DATE,))
    assert sorted(str(path) for path in settings.outbox_dir.rglob("*")) == outbox_before, "no partial file left"
    assert target.read_text(encoding="utf-8") == OUTAGE_NOTE

    target.unlink()  # the target is back
    rerun, tasks = _run_publish(dag, PERSISTENT_FEED_DATE)

    assert rerun.run_id == dag_run.run_id, "the same run, rerun"
    assert str(rerun.state) == "success", {task_id: str(ti.state) for task_id, ti in tasks.items()}
    manifest = _assert_delivered_once(settings, PERSISTENT_FEED_DATE)
    staging = settings.staging_dir / "yss" / PERSISTENT_FEED_DATE.isoformat() / slug(rerun.run_id)
    again = deliver_feed(staging, settings=settings)
    assert again["status"] == "already_delivered"
    assert _assert_delivered_once(settings, PERSISTENT_FEED_DATE) == manifest, "nothing delivered twice"


def _callbacks(callback) -> list:
    if callback is None:
        return []
    return list(callback) if isinstance(callback, (list, tuple)) else [callback]


def test_pipeline__sftp_server_down_on_first_try__retry_delivers_once(
    pipeline, single_dag, monkeypatch, alerts, tmp_path, sftp_server, delivery_policy
):
    """The same outage with the SFTP target (a real asyncssh server on loopback, its connection from the
    environment): try 1 cannot connect and is put up for retry with a warning naming the server; the server is back
    during the retry delay; try 2 uploads the feed and its manifest, recorded exactly once."""
    settings, _, _, _ = pipeline
    _build_mart_for(settings, SFTP_FEED_DATE, tmp_path)
    (sftp_server.root / "inbound").mkdir()
    monkeypatch.setenv("AIRFLOW_CONN_PUPILSHARE_SFTP_YSS", sftp_server.connection())
    monkeypatch.setenv("PUPILSHARE_SFTP_CONNECT_ATTEMPTS", "1")
    delivery_policy("yss", target="sftp", sftp={"base_path": "/inbound"})
    sftp_server.stop()
    outbox_before = sorted(str(path) for path in settings.outbox_dir.rglob("*"))
    dag = _publish_yss_dag(single_dag, monkeypatch)
    deliver = dag.get_task("deliver_and_record")
    deliver.on_retry_callback = [*_callbacks(deliver.on_retry_callback), lambda context: sftp_server.start()]

    dag_run, tasks = _run_publish(dag, SFTP_FEED_DATE)

    assert str(dag_run.state) == "success", {task_id: str(ti.state) for task_id, ti in tasks.items()}
    assert tasks["deliver_and_record"].try_number == 2, "try 1 met the server down; try 2 delivered"
    (retried,) = alerts.about("PUPILSHARE RETRY", "deliver_and_record")
    assert "DeliveryWriteError" in retried and f"127.0.0.1:{sftp_server.port}" in retried, alerts.messages
    assert not alerts.about("PUPILSHARE ALERT", "deliver_and_record")
    (delivery,) = _ledger(
        settings,
        "select delivery_id, file_sha256, row_count, target from ledger.deliveries where feed_date = %s",
        (SFTP_FEED_DATE,),
    )
    folder = f"inbound/yss/{SFTP_FEED_DATE}"
    assert delivery[3] == f"sftp://pupilshare@127.0.0.1:{sftp_server.port}/{folder}"
    files = sftp_server.files()
    feed, manifest = f"{folder}/yss_{SFTP_FEED_DATE}.csv", f"{folder}/yss_{SFTP_FEED_DATE}.manifest.json"
    assert sorted(files) == [feed, manifest]
    assert json.loads(files[manifest])["sha256"] == delivery[1] == hashlib.sha256(files[feed]).hexdigest()
    assert json.loads(files[manifest])["delivery_id"] == str(delivery[0])
    assert (
        files[feed].count(b"\n") - 1
        == delivery[2]
        == len(_ledger(settings, "select 1 from ledger.disclosures where delivery_id = %s", (delivery[0],)))
    )
    assert sorted(str(path) for path in settings.outbox_dir.rglob("*")) == outbox_before, "nothing in the outbox"


def test_pipeline__sftp_server_down_on_every_try__fails_alerts_and_rerun_delivers_once(
    pipeline, single_dag, monkeypatch, alerts, tmp_path, sftp_server, delivery_policy
):
    """Every try meets the SFTP server down: the task fails after its 2 retries with an alert naming the server and
    path; nothing is recorded or left on the server, and the staged feed is kept. Once the server is back, rerunning
    the same run delivers it exactly once, and delivering the same staged feed again is refused by its delivery key."""
    from pupilshare.files import slug
    from pupilshare.publish import deliver_feed

    settings, _, _, _ = pipeline
    _build_mart_for(settings, SFTP_OUTAGE_FEED_DATE, tmp_path)
    (sftp_server.root / "inbound").mkdir()
    monkeypatch.setenv("AIRFLOW_CONN_PUPILSHARE_SFTP_YSS", sftp_server.connection())
    monkeypatch.setenv("PUPILSHARE_SFTP_CONNECT_ATTEMPTS", "1")
    delivery_policy("yss", target="sftp", sftp={"base_path": "/inbound"})
    sftp_server.stop()
    dag = _publish_yss_dag(single_dag, monkeypatch)

    dag_run, tasks = _run_publish(dag, SFTP_OUTAGE_FEED_DATE)

    assert str(dag_run.state) == "failed"
    assert tasks["deliver_and_record"].try_number == 3, "the first try and both retries met the server down"
    assert len(alerts.about("PUPILSHARE RETRY", "deliver_and_record")) == 2, alerts.messages
    (failed,) = alerts.about("PUPILSHARE ALERT", "deliver_and_record")
    remote = f"sftp://pupilshare@127.0.0.1:{sftp_server.port}/inbound/yss/{SFTP_OUTAGE_FEED_DATE}"
    assert remote in failed and "could not connect" in failed and "Nothing was delivered" in failed, failed
    query = "select 1 from ledger.{} where feed_date = %s"
    assert not _ledger(settings, query.format("deliveries"), (SFTP_OUTAGE_FEED_DATE,))
    assert not _ledger(settings, query.format("disclosures"), (SFTP_OUTAGE_FEED_DATE,))
    staging = settings.staging_dir / "yss" / SFTP_OUTAGE_FEED_DATE.isoformat() / slug(dag_run.run_id)
    assert (staging / f"yss_{SFTP_OUTAGE_FEED_DATE}.csv").is_file(), "the staged feed is kept"

    sftp_server.start()  # the server is back
    rerun, tasks = _run_publish(dag, SFTP_OUTAGE_FEED_DATE)

    assert rerun.run_id == dag_run.run_id and str(rerun.state) == "success"
    (delivery,) = _ledger(
        settings, "select file_sha256, target from ledger.deliveries where feed_date = %s", (SFTP_OUTAGE_FEED_DATE,)
    )
    assert delivery[1] == remote
    feed = sftp_server.files()[f"inbound/yss/{SFTP_OUTAGE_FEED_DATE}/yss_{SFTP_OUTAGE_FEED_DATE}.csv"]
    assert hashlib.sha256(feed).hexdigest() == delivery[0]
    files = sftp_server.files()
    assert deliver_feed(staging, settings=settings)["status"] == "already_delivered"
    assert sftp_server.files() == files and len(files) == 2, "nothing delivered twice"
