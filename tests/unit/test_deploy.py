"""The production topology: docker-compose.yml wires what plugins/pupilshare/deploy.py (and the topology test) runs,
and the process group stops every process it started."""

from __future__ import annotations

import json
import re
import stat
import time
import tomllib
from pathlib import Path

import pytest
import yaml

from pupilshare import PROJECT_ROOT
from pupilshare.db import DatabaseEndpoints
from pupilshare.deploy import (
    AIRFLOW_SERVICES,
    INIT_COMMANDS,
    ServiceGroup,
    Topology,
    airflow_environment,
    service_environment,
    write_admin_password,
)
from pupilshare.settings import Settings

COMPOSE = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


def _topology(tmp_path: Path) -> Topology:
    return Topology(
        airflow_sqlalchemy_url="postgresql+psycopg2://u@h/airflow",
        broker_url="redis://h:6379/0",
        result_backend="db+postgresql://u@h/airflow",
        api_host="127.0.0.1",
        api_port=8080,
        jwt_secret="j",
        api_secret_key="k",
        fernet_key="f",
        admin_passwords_file=tmp_path / "passwords.json",
    )


def test_compose__every_airflow_service_runs_the_topology_command():
    for service, argv in AIRFLOW_SERVICES.items():
        command = COMPOSE["services"][service]["command"]
        assert ("airflow", *command.split()) == argv, service


def test_compose__init_runs_the_topology_init_commands_first():
    script = COMPOSE["services"]["airflow-init"]["command"][-1]
    assert script.startswith(" && ".join(" ".join(argv) for argv in INIT_COMMANDS))


def test_compose__shares_exactly_the_topology_airflow_settings(tmp_path):
    """Same keys in compose's x-airflow-common and in the environment the topology test gives its processes."""
    compose_env = COMPOSE["x-airflow-common"]["environment"]
    expected = set(airflow_environment(_topology(tmp_path), Settings(data_dir=tmp_path)))
    assert {key for key in compose_env if key.startswith("AIRFLOW")} == expected
    assert compose_env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"


def test_compose__gives_dbt_and_the_tasks_the_data_database(tmp_path):
    compose_env = COMPOSE["x-airflow-common"]["environment"]
    dbt_keys = DatabaseEndpoints("postgresql://u:p@h:5432/pupilshare", "x", embedded=False).dbt_env()
    assert {"PUPILSHARE_DATABASE_URL", "PUPILSHARE_DATA_DIR", *dbt_keys} <= set(compose_env)


def test_compose__image_matches_the_pinned_airflow():
    pins = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    airflow = next(pin for pin in pins if pin.startswith("apache-airflow=="))
    version = airflow.split("==")[1]
    dockerfile = COMPOSE["x-airflow-common"]["build"]["dockerfile_inline"]
    assert re.search(rf"FROM apache/airflow:{re.escape(version)}\b", dockerfile)
    assert any(pin.startswith("apache-airflow-providers-celery==") for pin in pins)


def test_compose__no_secret_in_the_file():
    text = (PROJECT_ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    for key in ("FERNET_KEY", "JWT_SECRET", "SECRET_KEY", "POSTGRES_PASSWORD:"):
        for line in text.splitlines():
            if key in line and ":" in line and not line.strip().startswith("#"):
                value = line.split(":", 1)[1].strip()
                assert value == "" or "${" in value, line


def test_service_environment__drops_inherited_airflow_and_pupilshare_variables(tmp_path):
    settings = Settings(data_dir=tmp_path, database_url="postgresql://u@h/data")
    endpoints = DatabaseEndpoints("postgresql://u@h/data", "postgresql+psycopg2://u@h/airflow", embedded=False)
    base = {"PATH": "/bin", "AIRFLOW__CORE__EXECUTOR": "LocalExecutor", "PUPILSHARE_LA_CODE": "123"}
    env = service_environment(_topology(tmp_path), settings, endpoints, base)
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert "PUPILSHARE_LA_CODE" not in env
    assert env["PUPILSHARE_DATABASE_URL"] == "postgresql://u@h/data"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:8080/execution/"


def test_write_admin_password__owner_only_json(tmp_path):
    path = tmp_path / "config" / "passwords.json"
    write_admin_password(path, "s3cret")
    assert json.loads(path.read_text()) == {"admin": "s3cret"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_write_admin_password__empty_is_refused(tmp_path):
    with pytest.raises(ValueError, match="PUPILSHARE_AIRFLOW_ADMIN_PASSWORD"):
        write_admin_password(tmp_path / "passwords.json", "")


def test_service_group_stop__ends_children_and_processes_that_ignore_sigterm(tmp_path):
    group = ServiceGroup(log_dir=tmp_path, env={"PATH": "/usr/bin:/bin"}, grace_seconds=2)
    group.start("tree", ("sh", "-c", "sleep 300 & sleep 300 & wait"))
    group.start("stubborn", ("sh", "-c", "trap '' TERM; sleep 300 & wait; sleep 300"))
    time.sleep(0.5)
    assert group.exited() == {}
    assert group.stop() == []
    assert set(group.exited()) == {"tree", "stubborn"}
