"""Every DAG imports cleanly, is tagged, retries, and its file holds wiring only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from pupilshare import PROJECT_ROOT

pytestmark = pytest.mark.dags
DAGS_DIR = PROJECT_ROOT / "dags"
DAG_FILES = sorted(DAGS_DIR.glob("*.py"))


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_DIR))


def test_dagbag__no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) >= {"pupilshare_ingest", "pupilshare_publish_yss"}


def test_dagbag__one_dag_per_file_named_after_its_dag_id(dagbag):
    for dag_id in dagbag.dag_ids:
        assert Path(dagbag.get_dag(dag_id).fileloc).stem == dag_id
    assert len(dagbag.dag_ids) == len(DAG_FILES)


def test_dagbag__every_dag_has_tags_schedule_and_retries(dagbag):
    for dag_id in dagbag.dag_ids:
        dag = dagbag.get_dag(dag_id)
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.catchup is False, f"{dag_id} must not catch up"
        assert dag.timetable is not None, f"{dag_id} has no explicit schedule"
        for task in dag.tasks:
            if task.task_id.endswith("gate_and_stage"):
                assert task.retries == 0, "a failed gate is a verdict, not a transient fault: no retry"
            else:
                assert task.retries >= 1, f"{dag_id}.{task.task_id} has no retries"


_ALLOWED_TOP_LEVEL = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.Expr, ast.Assign)
_FORBIDDEN_CALLS = {"open", "read_csv", "connect", "get", "execute", "read_text"}


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda path: path.name)
def test_dag_file__holds_wiring_only(path: Path):
    """Top level: imports, the DAG function and its call; task bodies call pupilshare and nothing heavier."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        assert isinstance(node, _ALLOWED_TOP_LEVEL), f"{path.name}:{node.lineno} is not wiring"
        if isinstance(node, ast.ImportFrom):
            assert node.module and node.module.split(".")[0] in {"airflow", "pupilshare", "datetime", "__future__"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
            assert name not in _FORBIDDEN_CALLS, f"{path.name}:{node.lineno} does I/O ({name}) in the DAG file"
    for function in (node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)):
        body = [stmt for stmt in function.body if not isinstance(stmt, ast.FunctionDef)]
        assert len(body) <= 6, f"{path.name}: {function.name} is more than wiring ({len(body)} statements)"


@pytest.fixture(scope="module")
def dbt_manifest(tmp_path_factory):
    """The dbt project parsed (no database needed) into a scratch target folder."""
    from dbt.cli.main import dbtRunner

    from pupilshare.airflow.cosmos_config import DBT_PROJECT_DIR

    scratch = tmp_path_factory.mktemp("dbt_parse")
    result = dbtRunner().invoke(
        ["parse", "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR)]
        + ["--target-path", str(scratch / "target"), "--log-path", str(scratch / "logs"), "--no-partial-parse"]
    )
    assert result.success, result.exception
    return result.result


def test_dbt_task_groups__every_test_reads_only_models_its_dag_builds(dagbag, dbt_manifest):
    """Each DAG builds a part of the shared dbt project: a test task whose models are not all built by the same DAG
    would run against a table another DAG may never have built there (a post-16 run failed on the YSS mart's
    relationships test on a database where the YSS DAG had not run)."""
    tests = {node.name: node for node in dbt_manifest.nodes.values() if node.resource_type == "test"}
    names = {unique_id: node.name for unique_id, node in dbt_manifest.nodes.items()}
    checked = 0
    for dag_id in dagbag.dag_ids:
        # cosmos task ids: build_models.<model>.run and .test (a model's group; .seed for a seed), and
        # build_models.<test>_test (a test with parents in two models, detached into a task of its own)
        dbt_tasks = [task.task_id.split(".")[1:] for task in dagbag.get_dag(dag_id).tasks]
        built = {parts[0] for parts in dbt_tasks if parts[-1:] in (["run"], ["seed"])}
        built |= {parts[0].removesuffix("_seed") for parts in dbt_tasks if parts and parts[0].endswith("_seed")}
        for task in dagbag.get_dag(dag_id).tasks:
            if not task.task_id.startswith("build_models.") or not task.task_id.endswith("test"):
                continue
            assert task.indirect_selection == "cautious", f"{dag_id}.{task.task_id} would also run other DAGs' tests"
            name = task.task_id.removeprefix("build_models.").removesuffix("_test")
            if name in tests:
                parents = {names[uid] for uid in tests[name].depends_on.nodes if uid in names}
                assert parents <= built, f"{dag_id}.{task.task_id} reads {sorted(parents - built)}, not built here"
                checked += 1
    assert checked, "no multi-parent test task found: the check checked nothing"
