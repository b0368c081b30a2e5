"""The ingest DAG loads every kind of return from the inbox, and row counts reconcile with the files."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import psycopg
import pytest

from pupilshare.generate.census import build_census_extract, write_census_extract
from pupilshare.generate.returns import generate_all_returns

pytestmark = [pytest.mark.dags, pytest.mark.integration]

EVERY_RETURN = {"census", "ctf", "workforce", "ncmp", "eyfs", "optouts", "post16", "activity"}


def _csv_rows(folder: Path) -> dict[str, int]:
    """Data rows per CSV file stem under ``folder`` (all file sets of one return type)."""
    counts: dict[str, int] = {}
    for path in folder.rglob("*.csv"):
        with path.open(encoding="utf-8", newline="") as handle:
            counts[path.stem] = counts.get(path.stem, 0) + sum(1 for _ in csv.reader(handle)) - 1
    return counts


def test_ingest_dag__loads_every_return_and_counts_reconcile(tmp_path, scratch_db, monkeypatch, single_dag):
    data_dir = tmp_path / "data"
    inbox = data_dir / "inbox"
    extract = build_census_extract(schools=6, pupils=900, seed=5)
    write_census_extract(extract, inbox / "census" / "autumn_2026")
    generate_all_returns(extract, inbox, seed=5)
    expected_census = _csv_rows(inbox / "census")
    ctf_files = len(list((inbox / "ctf").glob("*.xml")))
    monkeypatch.setenv("PUPILSHARE_DATABASE_URL", scratch_db)
    monkeypatch.setenv("PUPILSHARE_DATA_DIR", str(data_dir))

    dag = single_dag("pupilshare_ingest")
    dag_run = dag.test(logical_date=dt.datetime(2026, 11, 29, 12, tzinfo=dt.UTC))
    assert str(dag_run.state) == "success"

    with psycopg.connect(scratch_db) as conn:
        loaded = dict(
            conn.execute("select return_type, count(*) from raw.load_batches group by return_type").fetchall()
        )
        assert set(loaded) == EVERY_RETURN, "every return type was loaded"
        assert loaded["ctf"] == ctf_files
        for table, rows in expected_census.items():
            assert conn.execute(f"select count(*) from raw.census_{table}").fetchone()[0] == rows, table
        batch_rows = conn.execute("select return_type, row_counts from raw.load_batches").fetchall()
    assert not list((data_dir / "quarantine").rglob("REPORT.txt")), "nothing generated is quarantined"
    assert not [path for path in inbox.rglob("*") if path.is_file()], "everything left the inbox"
    archive_counts = {}
    for return_type in EVERY_RETURN - {"census", "ctf"}:
        archive_counts.update(_csv_rows(data_dir / "archive" / return_type))
    recorded: dict[str, int] = {}
    for return_type, counts in batch_rows:
        if return_type not in {"census", "ctf"}:
            for table, rows in counts.items():
                recorded[table] = recorded.get(table, 0) + rows
    assert sum(recorded.values()) == sum(archive_counts.values()), (recorded, archive_counts)
