"""`pupilshare benchmark-pipeline` on a tiny county against the test PostgreSQL: every stage runs and reports rows;
with --keep the scratch database and folder stay."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from typer.testing import CliRunner

from pupilshare.cli import app
from pupilshare.db import with_database

pytestmark = pytest.mark.integration

_STAGES = [
    "ingest",
    "dbt build yss",
    "dbt build post16",
    "dbt build sure_start",
    "dbt build nccis",
    "dbt build health",
    "dbt build statistics",
    "gate yss",
    "gate post16",
    "gate sure_start",
    "gate nccis",
    "gate health",
    "statistics (suppress, audit, EES)",
    "deliver yss",
    "deliver post16",
    "deliver sure_start",
    "deliver nccis",
    "deliver health",
    "deliver statistics",
]
#: A fixed feed date in the generated county's school year (2026/27): NCMP visits start in November, so the health
#: feed has children measured on or before it (with today's date the feed could be empty outside that year).
_FEED_DATE = "2026-12-07"


def _scratch_databases(admin_url: str) -> set[str]:
    with psycopg.connect(admin_url) as conn:
        rows = conn.execute("select datname from pg_database where datname like 'pupilshare_pipebench_%'").fetchall()
    return {row[0] for row in rows}


def test_benchmark_pipeline__every_stage_reports_rows_and_the_database_is_dropped(admin_url, tmp_path, monkeypatch):
    # as from a shell: without Airflow's metadata URL, nothing may create a `<scratch>_airflow` database either
    monkeypatch.delenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", raising=False)
    monkeypatch.delenv("PUPILSHARE_AIRFLOW_DATABASE_URL", raising=False)
    before = _scratch_databases(admin_url)
    result = CliRunner().invoke(
        app,
        ["benchmark-pipeline", "--pupils", "300", "--admin-url", admin_url, "--workdir", str(tmp_path)]
        + ["--feed-date", _FEED_DATE],
    )
    assert result.exit_code == 0, result.output
    rows = _stage_rows(result.output)
    assert list(rows) == _STAGES
    assert all(count > 0 for _, count, _ in rows.values()), rows
    assert all(rss > 0 for _, _, rss in rows.values()), rows
    assert "kept" not in result.output
    assert _scratch_databases(admin_url) <= before  # ours is gone (others' may come and go)
    assert list(tmp_path.iterdir()) == []


def _stage_rows(output: str) -> dict[str, tuple[float, int, float]]:
    return {
        match["stage"]: (float(match["seconds"]), int(match["rows"].replace(",", "")), float(match["rss"]))
        for match in re.finditer(
            r"^\| (?P<stage>[^|]+?) \| (?P<seconds>[\d.]+) \| (?P<rows>[\d,]+) \| (?P<rss>\d+) \|$",
            output,
            re.MULTILINE,
        )
    }


@pytest.mark.slow  # a second whole-pipeline run (minutes under load); the suite runs the one above
def test_benchmark_pipeline__keep_leaves_the_database_and_folder_and_says_where(admin_url, tmp_path, monkeypatch):
    """With --keep the scratch database holds the marts the stages built and the folder the delivered feeds; the
    output names both (then this test drops the database it names, and no other: other sessions run benchmarks)."""
    monkeypatch.delenv("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", raising=False)
    monkeypatch.delenv("PUPILSHARE_AIRFLOW_DATABASE_URL", raising=False)
    result = CliRunner().invoke(
        app,
        ["benchmark-pipeline", "--pupils", "300", "--admin-url", admin_url, "--workdir", str(tmp_path)]
        + ["--feed-date", _FEED_DATE, "--keep"],
    )
    match = re.search(r"PUPILSHARE_DATABASE_URL=(?P<url>\S+) PUPILSHARE_DATA_DIR=(?P<data>\S+) ", result.output)
    notes = " ".join(getattr(result.exception, "__notes__", []))  # a failed run names what it kept in a note
    kept = re.findall(r"pupilshare_pipebench_[0-9a-f]{8}", f"{match[0] if match else ''} {notes}")
    try:
        assert result.exit_code == 0, f"{result.output}\n{notes}"
        assert match is not None, result.output
        (database,) = set(kept)
        assert match["url"] == with_database(admin_url, database)
        assert database in _scratch_databases(admin_url)
        rows = _stage_rows(result.output)
        with psycopg.connect(match["url"]) as conn:
            marts = {
                name: conn.execute(f"select count(*) from {name}").fetchone()[0]
                for name in ("nccis.nccis_feed", "health.health_feed")
            }
        assert marts == {"nccis.nccis_feed": rows["gate nccis"][1], "health.health_feed": rows["gate health"][1]}
        data_dir = Path(match["data"])
        assert data_dir.parent.parent == tmp_path
        assert {path.name for path in (data_dir / "outbox").iterdir()} >= {"nccis", "health"}
    finally:
        for name in set(kept):
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
