"""The LA worklists DAG: build the LA's own worklists (``dbt_project/models/marts/la_worklists``, schema
``la_worklists``) and the models they read.

returns loaded? (short circuit) -> build every worklist model and its parents (dbt selector ``la_worklists``; cosmos
task group, tests after each model). Nothing is delivered: the worklists have no external recipient and are read in
place by the LA.

Scheduled on weekdays (London) and whenever the ingest DAG has loaded fresh returns (the ``RAW_CENSUS`` Asset), like
the publish DAGs. The children-missing-education list counts school days to the feed date, so it is rebuilt every
school day even when no return arrives.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, dag

from pupilshare.airflow import cosmos_config as dbt_config
from pupilshare.airflow.publish_dag import publish_default_args, publish_schedule, returns_loaded_guard

DAG_ID = "pupilshare_build_worklists"
#: Early every weekday (London): the missing-education day count moves with the feed date.
SCHEDULE = "0 6 * * 1-5"


def build_worklists_dag() -> DAG:
    """Return the DAG ``pupilshare_build_worklists``."""

    @dag(
        dag_id=DAG_ID,
        description="Build the LA worklists: SEN cohorts, missing education, lost pupils, absence, exclusions, moves",
        schedule=publish_schedule(SCHEDULE),
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_runs=1,
        tags=["pupilshare", "worklists"],
        default_args=publish_default_args(),
        doc_md='**Rules:** SHARING_RULES.md, "LA\'s own uses"; docs/policy.md, "LA worklists"',
    )
    def build_worklists():
        build = dbt_config.build_models_group(
            dbt_config.render_config(selector="la_worklists"),  # +path:models/marts/la_worklists, cautious
        )
        returns_loaded_guard() >> build

    return build_worklists()
