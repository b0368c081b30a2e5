"""Retention: purge NCMP identities, expired raw returns and delivered files as the policy says; record every purge."""

from datetime import datetime, timedelta

from airflow.sdk import dag, get_current_context, task

from pupilshare.airflow.callbacks import alert_on_failure


@dag(
    dag_id="pupilshare_retention",
    description="Apply policy/retention.yml as of the run's data-interval end; every purge in ledger.retention_purges",
    schedule="30 2 * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["pupilshare", "retention"],
    default_args={
        "owner": "pupilshare",
        "retries": 2,
        "retry_delay": timedelta(minutes=5),
        "on_failure_callback": alert_on_failure,
    },
)
def pupilshare_retention():
    @task
    def apply_rule(rule: str) -> dict:
        from pupilshare.retention import apply_retention_rule

        context = get_current_context()
        return apply_retention_rule(rule, context["data_interval_end"].date(), run_id=context["run_id"])

    ncmp = apply_rule.override(task_id="purge_ncmp_identities")("ncmp_identities")
    raw = apply_rule.override(task_id="purge_raw_returns")("raw_returns")
    delivered = apply_rule.override(task_id="clear_delivered_files")("delivered_files")
    ncmp >> raw >> delivered


pupilshare_retention()
