"""The publish DAG of one recipient, built from the recipient policy.

build the recipient's models (cosmos task group, tests after each model) -> gate and stage -> deliver and record.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, dag, get_current_context, task

from pupilshare.airflow import cosmos_config as dbt_config
from pupilshare.airflow.assets import feed_asset
from pupilshare.airflow.callbacks import alert_on_failure
from pupilshare.policy import load_policy

DEFAULT_ARGS = {
    "owner": "pupilshare",
    "retries": 2,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": 2.0,
    "on_failure_callback": alert_on_failure,
}


def build_publish_dag(recipient_id: str) -> DAG:
    """Return the DAG ``pupilshare_publish_<recipient_id>`` scheduled as the policy says."""
    recipient = load_policy().recipient(recipient_id)

    @dag(
        dag_id=f"pupilshare_publish_{recipient_id}",
        description=f"Build, gate, deliver and record the feed for {recipient.name}",
        schedule=recipient.delivery.schedule,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_runs=1,
        tags=["pupilshare", "publish", recipient_id],
        default_args=DEFAULT_ARGS,
        doc_md=f"**Legal basis:** {recipient.legal_basis}\n\n**Cohort:** {recipient.cohort.description}",
    )
    def publish():
        # the mart and all it reads, plus the batch register the staging tests check batch ids against
        build = dbt_config.build_models_group(
            dbt_config.render_config([f"+{recipient.mart}", "stg_pipeline__load_batches"])
        )

        @task(retries=0)
        def gate_and_stage() -> str:
            from pupilshare.publish import gate_feed

            context = get_current_context()
            return gate_feed(recipient_id, feed_date=context["data_interval_end"].date(), run_id=context["run_id"])

        @task(outlets=[feed_asset(recipient_id)])
        def deliver_and_record(staging_dir: str) -> dict:
            from pupilshare.publish import deliver_feed

            return deliver_feed(staging_dir)

        staged = gate_and_stage()
        build >> staged
        deliver_and_record(staged)

    return publish()
