"""Load the school returns waiting in the inbox into the raw schema."""

from datetime import datetime, timedelta

from airflow.sdk import dag, task
from airflow.sdk.exceptions import AirflowSkipException

from pupilshare.airflow.assets import RAW_CENSUS
from pupilshare.airflow.callbacks import alert_on_failure


@dag(
    dag_id="pupilshare_ingest",
    description="Load census extracts from the inbox into raw (COPY, one transaction per file set)",
    schedule="*/15 * * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["pupilshare", "ingest"],
    default_args={
        "owner": "pupilshare",
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "on_failure_callback": alert_on_failure,
    },
)
def pupilshare_ingest():
    @task(outlets=[RAW_CENSUS])
    def load_census_returns() -> dict:
        from pupilshare.ingest import ingest_inbox

        summary = ingest_inbox().as_dict()
        if not summary["loaded"]:
            # skipped: no Asset event, so the publish DAGs run only after fresh returns (or on their own schedule)
            raise AirflowSkipException(f"nothing new loaded from the inbox: {summary}")
        return summary

    load_census_returns()


pupilshare_ingest()
