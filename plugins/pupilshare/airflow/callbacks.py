"""Alerts: every failed task is logged loudly with what failed, and every retry is logged as a warning first."""

from __future__ import annotations

import logging
from typing import Any

from pupilshare.redact import describe_error

log = logging.getLogger("pupilshare.alerts")


def alert_on_failure(context: dict[str, Any]) -> None:
    """Airflow ``on_failure_callback``: log an alert naming the DAG, task, run and the error."""
    task_instance = context.get("task_instance") or context.get("ti")
    error = context.get("exception")
    log.error(
        "PUPILSHARE ALERT: %s.%s failed in run %s: %s",
        getattr(task_instance, "dag_id", "?"),
        getattr(task_instance, "task_id", "?"),
        context.get("run_id"),
        describe_error(error),  # never the values: error texts can quote a pupil's row
    )


def alert_on_retry(context: dict[str, Any]) -> None:
    """Airflow ``on_retry_callback``: warn that a task failed and will be retried (a delivery target or the database
    is flapping); the final failure, if the retries run out, is :func:`alert_on_failure`."""
    task_instance = context.get("task_instance") or context.get("ti")
    error = context.get("exception")
    log.warning(
        "PUPILSHARE RETRY: %s.%s failed on try %s in run %s and will be retried: %s",
        getattr(task_instance, "dag_id", "?"),
        getattr(task_instance, "task_id", "?"),
        getattr(task_instance, "try_number", "?"),
        context.get("run_id"),
        describe_error(error),
    )
