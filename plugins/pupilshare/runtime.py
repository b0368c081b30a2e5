"""Process environment for Airflow and dbt, derived from the settings and the running database.

Airflow reads its configuration when ``airflow`` is first imported, so :func:`export_runtime_environment` must run
before that import. Nothing here imports Airflow.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pupilshare import PROJECT_ROOT
from pupilshare.db import DatabaseEndpoints
from pupilshare.settings import Settings


def runtime_environment(settings: Settings, endpoints: DatabaseEndpoints) -> dict[str, str]:
    """The variables Airflow, Cosmos, dbt and the tasks need to find the project, the data and the databases."""
    env = endpoints.dbt_env()
    env["PATH"] = _path_with_venv_bin()
    env.update(
        {
            "PUPILSHARE_DATA_DIR": str(settings.data_dir),
            "AIRFLOW_HOME": str(settings.airflow_home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": endpoints.airflow_sqlalchemy_url,
            "AIRFLOW__CORE__DAGS_FOLDER": str(settings.dags_dir),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(settings.airflow_home / "logs"),
            "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING"),
            "AIRFLOW__COSMOS__CACHE_DIR": str(settings.airflow_home / "cosmos_cache"),
            "AIRFLOW__COSMOS__ENABLE_CACHE_DBT_LS": "True",
            # Each publish DAG renders its dbt graph with `dbt ls` when first parsed (cached afterwards); with four
            # publish DAGs on a busy 2-core machine a first parse can exceed Airflow's 30 s default import timeout.
            "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": os.environ.get("AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT", "300"),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
            "DO_NOT_TRACK": "1",
            "SCARF_ANALYTICS": "false",
            "GX_ANALYTICS_ENABLED": "False",
        }
    )
    return env


def export_runtime_environment(settings: Settings, endpoints: DatabaseEndpoints) -> dict[str, str]:
    """Put :func:`runtime_environment` into ``os.environ`` (inherited by task subprocesses); return it."""
    env = runtime_environment(settings, endpoints)
    os.environ.update(env)
    return env


def _path_with_venv_bin() -> str:
    """PATH with this interpreter's bin folder first, so cosmos finds the ``dbt`` installed beside Airflow."""
    bin_dir = str(Path(sys.executable).parent)
    parts = os.environ.get("PATH", "").split(os.pathsep)
    return os.pathsep.join([bin_dir, *(part for part in parts if part and part != bin_dir)])
