"""The production topology as data: the Airflow services, the commands they run and the environment they share.

``docker-compose.yml`` wires exactly these commands and environment keys (``tests/unit/test_deploy.py`` checks it),
and ``tests/deploy/test_celery_topology.py`` runs them as processes on one machine, against a real PostgreSQL and
Redis, with :class:`ServiceGroup`. Nothing here imports Airflow.

Topology (CeleryExecutor): one PostgreSQL server holds the data database and Airflow's metadata database (which is
also Celery's result backend); Redis is the Celery broker; ``api-server`` (REST API, UI and the execution API the
workers report to), ``scheduler``, ``dag-processor``, ``triggerer`` and any number of ``celery worker`` processes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pupilshare import PROJECT_ROOT
from pupilshare.db import DatabaseEndpoints
from pupilshare.runtime import runtime_environment
from pupilshare.settings import Settings

log = logging.getLogger(__name__)

#: docker-compose service name -> the command it runs (the official image's entrypoint prefixes ``airflow``).
AIRFLOW_SERVICES: dict[str, tuple[str, ...]] = {
    "airflow-apiserver": ("airflow", "api-server"),
    "airflow-scheduler": ("airflow", "scheduler"),
    "airflow-dag-processor": ("airflow", "dag-processor"),
    "airflow-triggerer": ("airflow", "triggerer"),
    "airflow-worker": ("airflow", "celery", "worker"),
}

#: What the one-off ``airflow-init`` service runs before the others start.
INIT_COMMANDS: tuple[tuple[str, ...], ...] = (("pupilshare", "deploy-init"), ("airflow", "db", "migrate"))

SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
ADMIN_USER = "admin"


@dataclass(frozen=True)
class Topology:
    """Where the services find each other. Secrets come from the caller (the environment in production)."""

    airflow_sqlalchemy_url: str
    broker_url: str
    result_backend: str
    api_host: str
    api_port: int
    jwt_secret: str
    api_secret_key: str
    fernet_key: str
    admin_passwords_file: Path
    queue: str = "default"
    worker_concurrency: int = 2
    worker_log_server_port: int = 8793
    trigger_log_server_port: int = 8794
    scheduler_health_port: int = 8974

    @property
    def api_url(self) -> str:
        return f"http://{self.api_host}:{self.api_port}"


def airflow_environment(topology: Topology, settings: Settings) -> dict[str, str]:
    """The ``AIRFLOW__*`` settings every service of the topology shares (docker-compose's ``x-airflow-common``).

    Timeouts are generous, as seen on 2 loaded cores: the workers' 5-second default for execution API calls failed
    task attempts before they started, and parsing a publish DAG runs ``dbt ls`` (cached by cosmos), which takes tens
    of seconds. The dbt project only changes on deploy, so DAG files are re-parsed every 10 minutes.
    """
    return {
        "AIRFLOW_HOME": str(settings.airflow_home),
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(topology.admin_passwords_file),
        "AIRFLOW__CORE__FERNET_KEY": topology.fernet_key,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{topology.api_url}/execution/",
        "AIRFLOW__CORE__DAGS_FOLDER": str(settings.dags_dir),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "600",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": topology.airflow_sqlalchemy_url,
        "AIRFLOW__CELERY__BROKER_URL": topology.broker_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": topology.result_backend,
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(topology.worker_concurrency),
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": topology.queue,
        "AIRFLOW__API__PORT": str(topology.api_port),
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__SECRET_KEY": topology.api_secret_key,
        "AIRFLOW__API_AUTH__JWT_SECRET": topology.jwt_secret,
        "AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT": "600",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "600",
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "1800",
        # a task's calls to the api-server (default 5 s) time out on a loaded machine and fail the attempt
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "True",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(topology.scheduler_health_port),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(topology.worker_log_server_port),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(topology.trigger_log_server_port),
        "AIRFLOW__COSMOS__ENABLE_CACHE_DBT_LS": "True",
        "AIRFLOW__COSMOS__CACHE_DIR": str(settings.airflow_home / "cosmos_cache"),
    }


def service_environment(
    topology: Topology, settings: Settings, endpoints: DatabaseEndpoints, base: Mapping[str, str]
) -> dict[str, str]:
    """The full process environment of a service: ``base`` without any ``AIRFLOW*``/``PUPILSHARE*`` variable, then
    the project's runtime variables (data folder, ``PUPILSHARE_DB_*`` for dbt), then the topology's."""
    env = {key: value for key, value in base.items() if not key.startswith(("AIRFLOW", "PUPILSHARE"))}
    env.update(runtime_environment(settings, endpoints))
    env["PUPILSHARE_DATABASE_URL"] = endpoints.data_url
    env.update(airflow_environment(topology, settings))
    return env


def write_admin_password(passwords_file: Path, password: str, user: str = ADMIN_USER) -> None:
    """Write the simple auth manager's password file (readable by its owner only) so the admin password is the
    one from the environment, not one generated and printed to a log."""
    if not password:
        raise ValueError("the Airflow admin password is empty: set PUPILSHARE_AIRFLOW_ADMIN_PASSWORD")
    passwords_file.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(passwords_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump({user: password}, handle)


@dataclass
class ServiceGroup:
    """Processes started in their own sessions, each logging to ``<log_dir>/<name>.log``; :meth:`stop` ends every
    process of every group, children included (SIGTERM, then SIGKILL after ``grace_seconds``)."""

    log_dir: Path
    env: Mapping[str, str]
    grace_seconds: float = 60.0
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def start(self, name: str, argv: tuple[str, ...]) -> subprocess.Popen:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with (self.log_dir / f"{name}.log").open("ab") as log_file:
            process = subprocess.Popen(  # noqa: S603 - fixed argv from AIRFLOW_SERVICES
                argv,
                env=dict(self.env),
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.processes[name] = process
        log.info("started %s (pid %s): %s", name, process.pid, " ".join(argv))
        return process

    def exited(self) -> dict[str, int]:
        """Services that have stopped, with their exit codes (a healthy topology has none)."""
        return {name: code for name, process in self.processes.items() if (code := process.poll()) is not None}

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])

    def stop(self) -> list[int]:
        """Stop every service and its children; return the pids of any process still alive in the groups
        afterwards (empty when everything stopped)."""
        groups = [process.pid for process in self.processes.values()]
        for pgid in groups:
            _signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace_seconds
        while time.monotonic() < deadline and any(_group_members(pgid) for pgid in groups):
            for process in self.processes.values():
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=0.5)
        for pgid in groups:
            if _group_members(pgid):
                log.warning("process group %s did not stop on SIGTERM: SIGKILL", pgid)
                _signal_group(pgid, signal.SIGKILL)
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
        time.sleep(0.5)
        return [pid for pgid in groups for pid in _group_members(pgid)]


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is ``pgid``, read from /proc."""
    members = []
    for entry in _proc_entries():
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces, so split after the last ')'
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def _proc_entries() -> Iterator[Path]:
    return (entry for entry in Path("/proc").iterdir() if entry.name.isdigit())
