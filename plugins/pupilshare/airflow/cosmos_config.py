"""astronomer-cosmos configuration shared by every DAG that builds dbt models."""

from __future__ import annotations

from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import InvocationMode, LoadMode, TestBehavior, TestIndirectSelection

from pupilshare import PROJECT_ROOT

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"

#: dbt's var ``feed_date`` is the run's data-interval end (SHARING_RULES.md, "Dates and ages"); an asset-triggered
#: run has no data interval (and no ``data_interval_end`` in its context), so its feed date is the day it was
#: triggered (``run_after``).
FEED_DATE_TEMPLATE = "{{ (dag_run.data_interval_end or dag_run.run_after) | ds }}"


def dbt_vars() -> dict[str, str]:
    """The dbt vars of every publish build: the feed date (templated per run) and ``opt_out_persistence`` from the
    setting ``PUPILSHARE_OPT_OUT_PERSISTENCE`` (SHARING_RULES.md, "Who may opt out")."""
    from pupilshare.settings import load_settings

    return {"feed_date": FEED_DATE_TEMPLATE, "opt_out_persistence": load_settings().opt_out_persistence}


#: Every DAG builds a part of one dbt project that other DAGs share (staging, intermediate), so a test is rendered
#: and run only when every model it reads is in the DAG's selection (dbt's "cautious" indirect selection, for
#: ``dbt ls`` at render time through the environment and for each test task through ``--indirect-selection``). With
#: dbt's default ("eager") a relationships test from another recipient's mart to a shared model becomes a task of
#: this DAG and fails against a table this DAG never builds: the post-16 run failed on ``yss_feed``'s test whenever
#: the YSS DAG had not run first on that database.
INDIRECT_SELECTION_ENV = {"DBT_INDIRECT_SELECTION": "cautious"}


def project_config() -> ProjectConfig:
    return ProjectConfig(dbt_project_path=DBT_PROJECT_DIR, install_dbt_deps=False, env_vars=INDIRECT_SELECTION_ENV)


def profile_config() -> ProfileConfig:
    """Profile from ``dbt_project/profiles.yml``, which reads ``PUPILSHARE_DB_*`` from the environment."""
    return ProfileConfig(
        profile_name="pupilshare",
        target_name="default",
        profiles_yml_filepath=DBT_PROJECT_DIR / "profiles.yml",
    )


def execution_config() -> ExecutionConfig:
    """dbt runs in the task's process (dbtRunner): no interpreter start-up per model. A model's test task runs only
    the tests whose models are all selected; a test with parents in two models is a task of its own
    (``should_detach_multiple_parents_tests``), run once both are built."""
    return ExecutionConfig(
        invocation_mode=InvocationMode.DBT_RUNNER,
        test_indirect_selection=TestIndirectSelection.CAUTIOUS,
    )


def render_config(select: list[str] | None = None, *, selector: str | None = None) -> RenderConfig:
    """Render the selected models (a list, or a named selector of ``selectors.yml``) as one task each, with their
    dbt tests right after each model."""
    return RenderConfig(
        select=select or [],
        selector=selector,
        # dbt recommends running unit tests in development and CI only (they run in the test suite);
        # production runs build models and run their data tests.
        exclude=["resource_type:unit_test"],
        # a test with parents in two models runs once both are built, not with the first of them
        should_detach_multiple_parents_tests=True,
        load_method=LoadMode.DBT_LS,
        invocation_mode=InvocationMode.DBT_RUNNER,
        test_behavior=TestBehavior.AFTER_EACH,
    )


def build_models_group(render: RenderConfig) -> DbtTaskGroup:
    """The ``build_models`` task group of a publish DAG: the selected models, each followed by its data tests."""
    return DbtTaskGroup(
        group_id="build_models",
        project_config=project_config(),
        profile_config=profile_config(),
        execution_config=execution_config(),
        render_config=render,
        operator_args={"vars": dbt_vars()},
    )
