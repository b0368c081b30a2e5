"""The production topology outside Docker: the services docker-compose.yml wires, run as processes here.

api-server, scheduler, dag-processor, triggerer and a Celery worker (CeleryExecutor; broker: the machine's Redis;
metadata, Celery results and pupil data: fresh databases on the machine's PostgreSQL, as PUPILSHARE_DATABASE_URL in
external mode) take a synthetic county from the inbox to delivered feeds through real scheduling, driven only
through the REST API:

1. the publish DAGs are unpaused first: their cron timetable starts a catch-up run at once, and with no return loaded
   yet it short-circuits (nothing built, nothing delivered);
2. the ingest DAG is unpaused: its cron run loads the inbox and updates the ``pupilshare_raw_census`` Asset;
3. that Asset event triggers a run of each publish DAG, which builds the dbt models, gates, delivers and records.

The test then checks the feeds and the ledger, that every task ran on the worker's queue, and that stopping the
services leaves no process behind. Deselected by default (``-m topology`` selects it): it needs an hour or more on
2 heavily loaded cores; tests/deploy/test_celery_topology_smoke.py is the CI-sized form.
"""

from __future__ import annotations

import csv
import datetime as dt
import time

import psycopg
import pytest

pytestmark = [pytest.mark.topology, pytest.mark.integration, pytest.mark.timeout(5400)]

INGEST = "pupilshare_ingest"
PUBLISH = ("pupilshare_publish_yss", "pupilshare_publish_statistics")


@pytest.fixture(scope="module")
def pipeline(topology):
    """Drive the topology through the REST API as an operator would; return what it did."""
    started = time.monotonic()
    topology.start_up()
    for dag_id in PUBLISH:
        topology.api.unpause(dag_id)
    catch_up = {dag_id: topology.finished_run(dag_id, "scheduled") for dag_id in PUBLISH}
    topology.api.unpause(INGEST)
    ingest = topology.finished_run(INGEST, "scheduled")
    published = {dag_id: topology.finished_run(dag_id, "asset_triggered") for dag_id in PUBLISH}
    return {"catch_up": catch_up, "ingest": ingest, "published": published, "seconds": time.monotonic() - started}


def test_topology__catch_up_runs_short_circuit_before_any_return_is_loaded(topology, pipeline):
    api = topology.api
    for dag_id, run in pipeline["catch_up"].items():
        states = {ti["task_id"]: ti["state"] for ti in api.task_instances(dag_id, run["dag_run_id"])}
        assert states.pop("returns_loaded") == "success"
        assert set(states.values()) == {"skipped"}, (dag_id, states)


def test_topology__ingest_asset_event_triggers_both_publish_dags(topology, pipeline):
    api = topology.api
    ingest_run = pipeline["ingest"]["dag_run_id"]
    for dag_id, run in pipeline["published"].items():
        events = api.get(f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}/upstreamAssetEvents").raise_for_status().json()
        sources = {(event["source_dag_id"], event["source_run_id"], event["name"]) for event in events["asset_events"]}
        assert (INGEST, ingest_run, "pupilshare_raw_census") in sources, (dag_id, sources)


def test_topology__every_task_ran_on_the_celery_worker(topology, pipeline):
    spec, api = topology.spec, topology.api
    runs = [(INGEST, pipeline["ingest"]), *pipeline["published"].items()]
    for dag_id, run in runs:
        instances = api.task_instances(dag_id, run["dag_run_id"])
        assert instances and {ti["queue"] for ti in instances} == {spec.queue}, dag_id
        assert {ti["state"] for ti in instances} == {"success"}, (
            dag_id,
            {ti["task_id"]: ti["state"] for ti in instances},
        )
        # the worker's task supervisor writes each attempt's log under AIRFLOW_HOME/logs; the services run no other
        # executor, and the queue is this test's own, so a log for every task is the worker's
        logs = topology.settings.airflow_home / "logs" / f"dag_id={dag_id}" / f"run_id={run['dag_run_id']}"
        missing = [ti["task_id"] for ti in instances if not list((logs / f"task_id={ti['task_id']}").glob("*.log"))]
        assert not missing, (dag_id, "no worker log for", missing)


def test_topology__feed_delivered_and_every_row_in_the_ledger(topology, pipeline):
    settings = topology.settings
    run = pipeline["published"]["pupilshare_publish_yss"]
    feed_date = dt.datetime.fromisoformat(run["run_after"]).date().isoformat()
    feed = settings.outbox_dir / "yss" / feed_date / f"yss_{feed_date}.csv"
    with feed.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows, "the delivered YSS feed is empty"
    # a restricted pupil's row carries name, address and date of birth only: its upn is blank in the feed
    upns = [row["upn"] for row in rows if row["upn"]]
    with psycopg.connect(settings.database_url) as conn:
        ledger = conn.execute(
            "select d.upn from ledger.disclosures d join ledger.deliveries v using (delivery_id) "
            "where v.recipient_id = 'yss' and v.run_id = %s",
            (run["dag_run_id"],),
        ).fetchall()
        statistics = conn.execute(
            "select count(*) from ledger.statistics_publications where status = 'published'"
        ).fetchone()[0]
    assert len(ledger) == len(rows), "one ledger row per delivered row"
    assert set(upns) <= {upn for (upn,) in ledger} and len({upn for (upn,) in ledger}) == len(ledger)
    assert len(upns) < len(rows), "the synthetic county has restricted pupils (blank upn in the feed)"
    assert statistics >= 1
    assert list((settings.outbox_dir / "statistics").rglob("*.meta.csv")), "no statistics file was published"
    print(f"topology pipeline: {pipeline['seconds']:.0f}s from start-up to the last publish")
