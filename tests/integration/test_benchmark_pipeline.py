"""`pupilshare benchmark-pipeline` on a tiny county against the test PostgreSQL: every stage runs and reports rows."""

from __future__ import annotations

import re

import psycopg
import pytest
from typer.testing import CliRunner

from pupilshare.cli import app

pytestmark = pytest.mark.integration

_STAGES = [
    "ingest",
    "dbt build yss",
    "dbt build post16",
    "dbt build sure_start",
    "dbt build statistics",
    "gate yss",
    "gate post16",
    "gate sure_start",
    "statistics (suppress, audit, EES)",
    "deliver yss",
    "deliver post16",
    "deliver sure_start",
    "deliver statistics",
]


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
        app, ["benchmark-pipeline", "--pupils", "300", "--admin-url", admin_url, "--workdir", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    rows = {
        match["stage"]: (float(match["seconds"]), int(match["rows"].replace(",", "")), float(match["rss"]))
        for match in re.finditer(
            r"^\| (?P<stage>[^|]+?) \| (?P<seconds>[\d.]+) \| (?P<rows>[\d,]+) \| (?P<rss>\d+) \|$",
            result.output,
            re.MULTILINE,
        )
    }
    assert list(rows) == _STAGES
    assert all(count > 0 for _, count, _ in rows.values()), rows
    assert all(rss > 0 for _, _, rss in rows.values()), rows
    assert _scratch_databases(admin_url) <= before  # ours is gone (others' may come and go)
    assert list(tmp_path.iterdir()) == []
