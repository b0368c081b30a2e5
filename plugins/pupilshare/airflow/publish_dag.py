"""The publish DAG of one recipient, built from the recipient policy.

returns loaded? (short circuit) -> build the recipient's models (cosmos task group, tests after each model) -> gate
and stage -> deliver and record; and, after the build, retraction notices for late opt-outs
(:mod:`pupilshare.retraction`).

Scheduled on the policy's cron (Europe/London) *or* whenever the ingest DAG has loaded fresh returns (the
``RAW_CENSUS`` Asset). An asset-triggered run has no data interval: its feed date is the day it was triggered
(:data:`FEED_DATE_TEMPLATE`).
"""

from __future__ import annotations

import datetime as dt
from datetime import datetime, timedelta

from airflow.sdk import DAG, AssetOrTimeSchedule, CronTriggerTimetable, dag, get_current_context, task

from pupilshare.airflow import cosmos_config as dbt_config
from pupilshare.airflow.assets import RAW_CENSUS, feed_asset
from pupilshare.airflow.callbacks import alert_on_failure, alert_on_retry
from pupilshare.policy import load_policy

DEFAULT_ARGS = {
    "owner": "pupilshare",
    "retries": 2,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": 2.0,
    "on_failure_callback": alert_on_failure,
    "on_retry_callback": alert_on_retry,
}


def publish_default_args() -> dict:
    """:data:`DEFAULT_ARGS` with the retry delay from ``PUPILSHARE_PUBLISH_RETRY_DELAY_SECONDS`` (30 s unless set)."""
    from pupilshare.settings import load_settings

    return {**DEFAULT_ARGS, "retry_delay": timedelta(seconds=load_settings().publish_retry_delay_seconds)}


#: The policy's delivery times are London times (``plugins/pupilshare/policy/recipients.yml``).
SCHEDULE_TIMEZONE = "Europe/London"


def publish_schedule(cron: str) -> AssetOrTimeSchedule:
    """Run on ``cron`` (London time) and also as soon as the ingest DAG has loaded fresh returns."""
    return AssetOrTimeSchedule(timetable=CronTriggerTimetable(cron, timezone=SCHEDULE_TIMEZONE), assets=RAW_CENSUS)


def feed_date_of_run(context) -> dt.date:
    """The run's feed date: its data-interval end, or for an asset-triggered run (no interval) the day it was
    triggered (SHARING_RULES.md, "Dates and ages")."""
    dag_run = context["dag_run"]
    moment = dag_run.data_interval_end or dag_run.run_after
    return moment.date()


def returns_loaded_guard():
    """A short-circuit task: with no return loaded yet there is nothing to publish, so the rest of the run is
    skipped (the first scheduled run after deployment, before the first ingest)."""

    @task.short_circuit(task_id="returns_loaded")
    def returns_loaded() -> bool:
        from pupilshare.ingest.inbox import has_loaded_returns

        return has_loaded_returns()

    return returns_loaded()


def build_publish_dag(recipient_id: str) -> DAG:
    """Return the DAG ``pupilshare_publish_<recipient_id>`` scheduled as the policy says."""
    recipient = load_policy().recipient(recipient_id)

    @dag(
        dag_id=f"pupilshare_publish_{recipient_id}",
        description=f"Build, gate, deliver and record the feed for {recipient.name}",
        schedule=publish_schedule(recipient.delivery.schedule),
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_runs=1,
        tags=["pupilshare", "publish", recipient_id],
        default_args=publish_default_args(),
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
            return gate_feed(recipient_id, feed_date=feed_date_of_run(context), run_id=context["run_id"])

        @task(outlets=[feed_asset(recipient_id)])
        def deliver_and_record(staging_dir: str) -> dict:
            from pupilshare.publish import deliver_feed

            return deliver_feed(staging_dir)

        @task
        def retract_late_opt_outs() -> dict:
            from pupilshare.retraction import issue_retractions

            context = get_current_context()
            return issue_retractions(recipient_id, feed_date=feed_date_of_run(context), run_id=context["run_id"])

        staged = gate_and_stage()
        returns_loaded_guard() >> build >> staged
        deliver_and_record(staged)
        # after the build (it reads the opt-outs this run resolved), not after the gate: a late opt-out is honoured
        # even when the new feed's gate fails; the new feed itself never carries what is retracted (its gate checks it)
        build >> retract_late_opt_outs()

    return publish()
