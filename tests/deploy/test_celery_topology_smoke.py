"""The reduced, CI-sized form of tests/deploy/test_celery_topology.py (which needs an hour or more on 2 heavily
loaded cores and runs with ``-m topology``): the same services, started the same way, come up healthy; the ingest
DAG's cron run executes on the Celery worker, loads the inbox and updates the ``pupilshare_raw_census`` Asset; the
Asset event creates a run of each publish DAG. The publish runs themselves are not awaited (the full test does)."""

from __future__ import annotations

import time

import pytest

#: The whole test's budget. It passes in 4 minutes on 2 idle cores; the waits share this budget, so a hung service
#: fails the test with every service's log tail well before pytest-timeout (below) would kill it without them.
BUDGET_S = 1500

pytestmark = [pytest.mark.integration, pytest.mark.timeout(BUDGET_S + 300)]

INGEST = "pupilshare_ingest"
PUBLISH = ("pupilshare_publish_yss", "pupilshare_publish_statistics")


def _asset_triggered_run(api, dag_id: str):
    return next((run for run in api.runs(dag_id) if run["run_type"] == "asset_triggered"), None)


def test_topology_smoke__ingest_on_the_worker_triggers_both_publish_dags(topology):
    api = topology.api
    topology.deadline = time.monotonic() + BUDGET_S
    topology.start_up()
    for dag_id in (*PUBLISH, INGEST):
        api.unpause(dag_id)
    ingest = topology.finished_run(INGEST, "scheduled")
    instances = api.task_instances(INGEST, ingest["dag_run_id"])
    assert [(ti["task_id"], ti["state"], ti["queue"]) for ti in instances] == [
        ("load_census_returns", "success", topology.spec.queue)
    ]
    assert list(topology.settings.archive_dir.rglob("*.csv")), "the ingest run archived nothing it loaded"
    for dag_id in PUBLISH:
        run = topology.wait(f"an asset-triggered run of {dag_id}", lambda d=dag_id: _asset_triggered_run(api, d))
        path = f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}/upstreamAssetEvents"
        events = api.get(path).raise_for_status().json()["asset_events"]
        assert (INGEST, ingest["dag_run_id"]) in {(event["source_dag_id"], event["source_run_id"]) for event in events}
