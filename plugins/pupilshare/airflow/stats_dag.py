"""The statistics publish DAG, built from the statistics table registry (``pupilshare/stats/tables.yml``).

build every model in ``models/stats`` and its parents (dbt selector ``statistics``; cosmos task group, tests after
each model) -> suppress, audit gate, EES files, format gate, stage each period to publish (no retry: a failed gate is a
verdict) -> publish and record.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, dag, get_current_context, task

from pupilshare.airflow import cosmos_config as dbt_config
from pupilshare.airflow.assets import feed_asset
from pupilshare.airflow.publish_dag import publish_default_args, publish_schedule, returns_loaded_guard
from pupilshare.stats.registry import default_registry

DAG_ID = "pupilshare_publish_statistics"
#: Monthly, early on the 1st (London), and after fresh returns: statistics follow the termly census, a month is fresh
#: enough and reruns are no-ops.
SCHEDULE = "0 6 1 * *"


def build_statistics_dag() -> DAG:
    """Return the DAG ``pupilshare_publish_statistics``."""
    tables = ", ".join(table.name for table in default_registry().tables)

    @dag(
        dag_id=DAG_ID,
        description="Build the stats models, suppress and audit them, publish EES open data files, record them",
        schedule=publish_schedule(SCHEDULE),
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_runs=1,
        tags=["pupilshare", "publish", "statistics"],
        default_args=publish_default_args(),
        doc_md=f"**Tables:** {tables}\n\n**Rules:** SHARING_RULES.md, 'Disclosure control for statistics'",
    )
    def publish():
        build = dbt_config.build_models_group(
            dbt_config.render_config(selector="statistics"),  # +path:models/stats, cautious
        )

        @task(retries=0)
        def suppress_audit_gate_and_stage() -> list[str]:
            from pupilshare.stats.publish import stage_statistics

            return stage_statistics(run_id=get_current_context()["run_id"])

        @task(outlets=[feed_asset("statistics")])
        def publish_and_record(staging_dirs: list[str]) -> list[dict]:
            from pupilshare.stats.publish import publish_staged_statistics

            return [publish_staged_statistics(staging_dir) for staging_dir in staging_dirs]

        staged = suppress_audit_gate_and_stage()
        returns_loaded_guard() >> build >> staged
        publish_and_record(staged)

    return publish()
