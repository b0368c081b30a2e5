"""The whole-pipeline benchmark's arithmetic and argument handling (no database, no run)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pupilshare import PROJECT_ROOT
from pupilshare.benchmarks.pipeline import (
    PipelineRun,
    StageResult,
    _stages,
    linear_limit,
    memory_flags,
    runs_to_markdown,
    scaling,
    schools_for,
)
from pupilshare.cli import app
from pupilshare.policy import load_policy


def _run(pupils: int, seconds: dict[str, float], rss: float = 100.0, census_s: float = 4.0) -> PipelineRun:
    stages = tuple(StageResult(name, value, pupils, rss) for name, value in seconds.items())
    return PipelineRun(pupils, schools_for(pupils), 1.0, stages, census_load_s=census_s, raw_copy_s=2.0)


def test_linear_limit__ten_times_the_pupils_allows_eleven():
    assert linear_limit(100_000, 1_000_000) == pytest.approx(11.0)


@pytest.mark.parametrize(("small", "large"), [(100, 100), (1000, 100), (0, 100)])
def test_linear_limit__sizes_that_do_not_grow_are_refused(small, large):
    with pytest.raises(ValueError, match="must grow"):
        linear_limit(small, large)


def test_scaling__flags_only_stages_over_the_linear_limit():
    """ingest 10 s -> 100 s is linear (10x); dbt 10 s -> 111 s is over 11 (superlinear); gate 10 -> 110 is at 11."""
    small = _run(100, {"ingest": 10.0, "dbt": 10.0, "gate": 10.0})
    large = _run(1000, {"ingest": 100.0, "dbt": 111.0, "gate": 110.0})
    result = {item.stage: item for item in scaling(small, large)}
    assert result["ingest"].ratio == pytest.approx(10.0)
    assert [name for name, item in result.items() if item.superlinear] == ["dbt"]


def test_memory_flags__names_stages_over_one_gigabyte():
    run = PipelineRun(100, 20, 1.0, (StageResult("a", 1.0, 1, 1024.0), StageResult("b", 1.0, 1, 1025.0)), 1.0, 1.0)
    assert memory_flags(run) == ["b"]


def test_ingest_share_of_copy__raw_copy_time_over_census_load_time():
    assert _run(100, {"ingest": 1.0}, census_s=4.0).ingest_share_of_copy == pytest.approx(0.5)


def test_runs_to_markdown__ratio_column_and_flags():
    small = _run(100, {"ingest": 1.0, "dbt build yss": 1.0}, census_s=5.0)
    large = _run(1000, {"ingest": 10.0, "dbt build yss": 12.0}, rss=2048.0)
    table = runs_to_markdown([small, large])
    assert "ratio 1,000 / 100" in table
    assert "| dbt build yss | 1.0 | 100 | 100 | 12.0 | 1,000 | 2048 **over 1 GB** | 12.0 **over 11** |" in table
    assert "| 100 | 1.0 | 5.0 | 2.0 | 40% **under 50%** | 0 | 0 |" in table
    assert "| 1,000 | 1.0 | 4.0 | 2.0 | 50% | 0 | 0 |" in table


def _stage_names() -> list[str]:
    stages = _stages("postgresql://nowhere/x", Path("data"), dt.date(2026, 12, 7), "benchmark__x", Path("folder"))
    return [name for name, _, _ in stages]


def test_stages__every_recipient_with_a_publish_dag_is_built_gated_and_delivered():
    """A recipient of the policy with ``dags/pupilshare_publish_<id>.py`` has its three stages (nccis and health
    were once forgotten); statistics is built and delivered too."""
    with_dag = [
        recipient_id
        for recipient_id in load_policy().recipients
        if (PROJECT_ROOT / "dags" / f"pupilshare_publish_{recipient_id}.py").is_file()
    ]
    assert {"nccis", "health"} <= set(with_dag)  # the DAG files are where this test looks for them
    names = _stage_names()
    missing = [
        stage
        for recipient_id in (*with_dag, "statistics")
        for stage in (f"dbt build {recipient_id}", f"gate {recipient_id}", f"deliver {recipient_id}")
        if stage not in names and stage != "gate statistics"  # statistics is gated in its own stage
    ]
    assert missing == []


def test_stages__dag_order_ingest_builds_gates_statistics_deliveries():
    names = _stage_names()
    kinds = [name.split(" ")[0] for name in names]
    assert names[0] == "ingest"
    assert kinds[1:] == sorted(kinds[1:], key=["dbt", "gate", "statistics", "deliver"].index)
    assert names.index("dbt build statistics") == kinds.index("gate") - 1  # statistics built after every feed
    assert names[-1] == "deliver statistics"
    assert len(names) == len(set(names))


def test_schools_for__norfolk_ratio_with_floor_and_cap():
    assert (schools_for(300), schools_for(100_000), schools_for(10_000_000)) == (20, 323, 1000)


@pytest.mark.parametrize("sizes", [["1000", "100"], ["100", "100"]])
def test_benchmark_pipeline_cli__sizes_must_grow(sizes):
    arguments = [item for size in sizes for item in ("--pupils", size)]
    result = CliRunner().invoke(app, ["benchmark-pipeline", *arguments])
    assert result.exit_code == 2
    assert "sizes must grow" in result.output


def test_benchmark_pipeline_cli__zero_pupils_refused():
    result = CliRunner().invoke(app, ["benchmark-pipeline", "--pupils", "0"])
    assert result.exit_code == 2


def test_benchmark_pipeline_cli__bad_feed_date_refused():
    result = CliRunner().invoke(app, ["benchmark-pipeline", "--feed-date", "2026-13-01"])
    assert result.exit_code == 2
    assert "is not a date" in result.output
