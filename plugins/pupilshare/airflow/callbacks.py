"""Failure alerts: every failed task is logged loudly with what failed and where to look."""

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
