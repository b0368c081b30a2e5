"""The production topology as processes: fresh databases, a data folder with a synthetic county in its inbox, and
the services of ``pupilshare.deploy.AIRFLOW_SERVICES`` running against the machine's PostgreSQL and Redis."""

from __future__ import annotations

import json
import os
import secrets
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg import sql

from pupilshare.db import DatabaseEndpoints, to_sqlalchemy_url, with_database
from pupilshare.deploy import AIRFLOW_SERVICES, INIT_COMMANDS, ServiceGroup, Topology, service_environment
from pupilshare.settings import Settings

REDIS = ("127.0.0.1", 6379)
INGEST = "pupilshare_ingest"
PUBLISH = ("pupilshare_publish_yss", "pupilshare_publish_statistics")
HEALTH_TIMEOUT = 600  # seconds: five Airflow processes start on two loaded cores
PARSE_TIMEOUT = 900  # the dag-processor's first parse runs `dbt ls` for each publish DAG
RUN_TIMEOUT = 3600  # ingest plus both publish runs, task by task on a worker with concurrency 2


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _redis_answers() -> bool:
    try:
        with socket.create_connection(REDIS, timeout=3) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class Api:
    """The api-server's REST API, logged in as the admin through the simple auth manager."""

    def __init__(self, base_url: str, password: str) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=60)
        self.password = password

    def health(self) -> dict:
        return self.client.get("/api/v2/monitor/health").raise_for_status().json()

    def login(self) -> None:
        response = self.client.post("/auth/token", json={"username": "admin", "password": self.password})
        response.raise_for_status()
        self.client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def get(self, path: str, **params) -> httpx.Response:
        return self.client.get(f"/api/v2{path}", params=params)

    def unpause(self, dag_id: str) -> None:
        self.client.patch(f"/api/v2/dags/{dag_id}", json={"is_paused": False}).raise_for_status()

    def runs(self, dag_id: str) -> list[dict]:
        return self.get(f"/dags/{dag_id}/dagRuns", order_by="run_after").raise_for_status().json()["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances"
        return self.get(path, limit=1000).raise_for_status().json()["task_instances"]


def _wait(what: str, check, timeout: float, services: ServiceGroup, interval: float = 5.0):
    """Poll ``check`` until it returns something truthy; fail with the services' logs on timeout or a crash."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if exited := services.exited():
            logs = "\n".join(f"--- {name}\n{services.log_tail(name)}" for name in exited)
            pytest.fail(f"while waiting for {what}, services exited {exited}:\n{logs}")
        try:
            result = check()
        except (httpx.HTTPError, KeyError) as error:
            result, last_error = None, error
        else:
            last_error = None
        if result:
            return result
        time.sleep(interval)
    logs = "\n".join(f"--- {name}\n{services.log_tail(name, 15)}" for name in services.processes)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last error: {last_error}):\n{logs}")


def _finished_run(api: Api, dag_id: str, run_type: str, airflow_home: Path):
    """The first run of ``run_type`` once it has finished; fails at once, with the failed task's log, if it failed."""

    def check():
        for run in api.runs(dag_id):
            if run["run_type"] != run_type or run["state"] in {"queued", "running"}:
                continue
            if run["state"] != "success":
                instances = api.task_instances(dag_id, run["dag_run_id"])
                failed = sorted(ti["task_id"] for ti in instances if ti["state"] == "failed")
                detail = _task_log_tail(airflow_home, dag_id, run["dag_run_id"], failed[0]) if failed else ""
                pytest.fail(
                    f"{dag_id} {run_type} run {run['dag_run_id']} ended {run['state']}; failed {failed}\n{detail}"
                )
            return run
        return None

    return check


def _task_log_tail(airflow_home: Path, dag_id: str, run_id: str, task_id: str, lines: int = 25) -> str:
    """The warnings and errors of a task's last attempt, from the worker's log files (JSON lines)."""
    attempts = sorted(
        (airflow_home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}").glob("*.log")
    )
    if not attempts:
        return f"(no log for {task_id})"
    events = []
    for line in attempts[-1].read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            events.append(line)
            continue
        if event.get("level") in {"error", "critical"} or "error_detail" in event:
            events.append(f"{event.get('event')} {event.get('error_detail', '')}"[:3000])
    return f"--- {attempts[-1].name} of {task_id}\n" + "\n".join(events[-lines:])


@pytest.fixture(scope="module")
def topology(admin_url: str, tmp_path_factory: pytest.TempPathFactory):
    """Fresh databases, a data folder with a synthetic county in its inbox, and the five services, running; stopped
    and dropped afterwards whatever happened."""
    if not _redis_answers():
        pytest.skip("no Redis on 127.0.0.1:6379 (the Celery broker)")
    from pupilshare.generate.census import build_census_extract, write_census_extract
    from pupilshare.generate.returns import generate_all_returns

    name = f"pupilshare_topology_{uuid.uuid4().hex[:8]}"
    databases = (name, f"{name}_airflow")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for database in databases:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(database)))
    root = tmp_path_factory.mktemp("topology")
    settings = Settings(database_url=with_database(admin_url, name), data_dir=root / "data")
    settings.ensure_folders()
    extract = build_census_extract(schools=3, pupils=240, seed=23)
    write_census_extract(extract, settings.inbox_dir / "census" / "autumn_2026")
    generate_all_returns(extract, settings.inbox_dir, seed=23)

    from cryptography.fernet import Fernet

    airflow_url = to_sqlalchemy_url(with_database(admin_url, databases[1]))
    spec = Topology(
        airflow_sqlalchemy_url=airflow_url,
        broker_url=f"redis://{REDIS[0]}:{REDIS[1]}/0",
        result_backend="db+" + airflow_url.replace("+psycopg2", ""),
        api_host="127.0.0.1",
        api_port=_free_port(),
        jwt_secret=secrets.token_urlsafe(64),
        api_secret_key=secrets.token_urlsafe(32),
        fernet_key=Fernet.generate_key().decode(),
        admin_passwords_file=root / "airflow-admin-password.json",
        queue=name,  # a queue of its own: other sessions' workers on the same Redis never take these tasks
        worker_log_server_port=_free_port(),
        trigger_log_server_port=_free_port(),
        scheduler_health_port=_free_port(),
    )
    endpoints = DatabaseEndpoints(settings.database_url, airflow_url, embedded=False)
    env = service_environment(spec, settings, endpoints, os.environ)
    password = secrets.token_urlsafe(16)
    services = ServiceGroup(log_dir=root / "logs", env={**env, "PUPILSHARE_AIRFLOW_ADMIN_PASSWORD": password})
    try:
        for argv in INIT_COMMANDS:
            process = services.start(argv[1] if argv[0] == "pupilshare" else "db-migrate", argv)
            if process.wait(timeout=900) != 0:
                pytest.fail(f"{' '.join(argv)} failed:\n{services.log_tail(argv[1])}{services.log_tail('db-migrate')}")
        services.processes.clear()
        for service, argv in AIRFLOW_SERVICES.items():
            services.start(service, argv)
        api = Api(spec.api_url, password)
        yield Deployment(settings, spec, services, api)
    finally:
        leftovers = services.stop()
        _forget_queue(spec.queue)
        with psycopg.connect(admin_url, autocommit=True) as conn:
            for database in databases:
                conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(database)))
        assert leftovers == [], f"processes left running after stop: {leftovers}"


def _healthy(api: Api) -> bool:
    health = api.health()
    components = ("metadatabase", "scheduler", "dag_processor", "triggerer")
    return all(health.get(component, {}).get("status") == "healthy" for component in components)


def _forget_queue(queue: str) -> None:
    """Remove the run's Celery queue and kombu bindings from Redis (tasks left queued when the services stopped)."""
    import redis

    client = redis.Redis(host=REDIS[0], port=REDIS[1], db=0)
    client.delete(queue, *client.keys(f"_kombu.binding*.{queue}"))
    client.close()


@dataclass
class Deployment:
    """The running topology and the operator's view of it (the REST API)."""

    settings: Settings
    spec: Topology
    services: ServiceGroup
    api: Api

    #: ``time.monotonic()`` by which every wait must end (``None``: each wait only has its own timeout). A test set
    #: it so that a hung topology fails with the services' logs before pytest-timeout kills the test without them.
    deadline: float | None = None

    def wait(self, what: str, check, timeout: float = RUN_TIMEOUT):
        if self.deadline is not None:
            timeout = max(min(timeout, self.deadline - time.monotonic()), 1.0)
        return _wait(what, check, timeout, self.services)

    def finished_run(self, dag_id: str, run_type: str) -> dict:
        check = _finished_run(self.api, dag_id, run_type, self.settings.airflow_home)
        return self.wait(f"{dag_id}'s {run_type} run", check)

    def start_up(self) -> None:
        """Wait for healthy services and parsed DAGs; log in."""
        self.wait(
            "a healthy api-server, scheduler, dag-processor and triggerer", lambda: _healthy(self.api), HEALTH_TIMEOUT
        )
        self.api.login()
        dag_ids = (INGEST, *PUBLISH)
        self.wait(
            "the DAGs to be parsed",
            lambda: all(self.api.get(f"/dags/{d}").status_code == 200 for d in dag_ids),
            PARSE_TIMEOUT,
        )
