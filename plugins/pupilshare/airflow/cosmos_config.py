"""astronomer-cosmos configuration shared by every DAG that builds dbt models."""

from __future__ import annotations

from cosmos import ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import InvocationMode, LoadMode, TestBehavior

from pupilshare import PROJECT_ROOT

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"

#: dbt's var ``feed_date`` is the run's data-interval end (SHARING_RULES.md, "Dates and ages").
FEED_DATE_TEMPLATE = "{{ data_interval_end | ds }}"


def project_config() -> ProjectConfig:
    return ProjectConfig(dbt_project_path=DBT_PROJECT_DIR, install_dbt_deps=False)


def profile_config() -> ProfileConfig:
    """Profile from ``dbt_project/profiles.yml``, which reads ``PUPILSHARE_DB_*`` from the environment."""
    return ProfileConfig(
        profile_name="pupilshare",
        target_name="default",
        profiles_yml_filepath=DBT_PROJECT_DIR / "profiles.yml",
    )


def execution_config() -> ExecutionConfig:
    """dbt runs in the task's process (dbtRunner): no interpreter start-up per model."""
    return ExecutionConfig(invocation_mode=InvocationMode.DBT_RUNNER)


def render_config(select: list[str]) -> RenderConfig:
    """Render the selected models as one task each, with their dbt tests right after each model."""
    return RenderConfig(
        select=select,
        # dbt recommends running unit tests in development and CI only (they run in the test suite);
        # production runs build models and run their data tests.
        exclude=["resource_type:unit_test"],
        # a test with parents in two models runs once both are built, not with the first of them
        should_detach_multiple_parents_tests=True,
        load_method=LoadMode.DBT_LS,
        invocation_mode=InvocationMode.DBT_RUNNER,
        test_behavior=TestBehavior.AFTER_EACH,
    )
