"""publish_statistics end to end on a real PostgreSQL: stats model rows in, gated EES files in the outbox out.

A fresh database gets ``stats.stats_pupils_by_characteristic`` as dbt would build it (the contract's columns), from
synthetic pupils of 14 schools with many small counts, and the other registered models empty (skipped this time).
The publish must leave files that pass the EES checker with every count of 1 or 2 shown as ``c``, a manifest, and
one ledger row per table; a rerun publishes nothing twice; a publish whose suppression misses secondary cells is
refused by the audit and leaves nothing in the outbox.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import psycopg
import pytest
from psycopg import sql

from pupilshare.settings import Settings
from pupilshare.stats import SuppressionResult, assert_valid_ees, find_primary_cells
from pupilshare.stats import publish as stats_publish
from pupilshare.stats.publish import StatisticsRefusedError, publish_statistics
from pupilshare.stats.registry import default_registry

pytestmark = pytest.mark.integration

TIME_PERIOD = "202627"
_VALUES = {
    "Sex": ("Male", "Female"),
    "SEN provision": ("No SEN", "SEN support", "EHC plan"),
    "First language": ("Known or believed to be English", "Known or believed to be other than English"),
    "National curriculum year group": ("Year 5", "Year 6", "Year 7"),
}
_WEIGHTS = {
    "Sex": (1, 1),
    "SEN provision": (80, 14, 6),
    "First language": (85, 15),
    "National curriculum year group": (1, 1, 1),
}


def _model_rows(schools: int = 14, seed: int = 3) -> pd.DataFrame:
    """One row per school x characteristic x value (zero-filled), as the dbt model has it."""
    rng = random.Random(seed)
    rows = []
    for number in range(schools):
        urn, phase = 110001 + number, "Primary" if number % 3 else "Secondary"
        size = rng.randint(4, 60)
        for characteristic, values in _VALUES.items():
            picks = rng.choices(values, weights=_WEIGHTS[characteristic], k=size)
            for value in values:
                rows.append(
                    (TIME_PERIOD, "Academic year", urn, f"926{2001 + number}", f"Synthetic School {number + 1}",
                     phase, characteristic, value, picks.count(value))
                )  # fmt: skip
    columns = ["time_period", "time_identifier", "school_urn", "school_laestab", "school_name", "school_phase",
               "characteristic", "characteristic_value", "headcount"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def _create_empty_models(conn: psycopg.Connection) -> None:
    """The other registered stats models, empty (as dbt builds them before a return arrives): skipped, not failed."""
    for spec in default_registry().tables:
        if spec.model == "stats_pupils_by_characteristic":
            continue
        types = {column: "integer" for column in ("school_urn", *spec.count_columns)}
        types |= dict.fromkeys(spec.sum_columns, "numeric")
        columns = sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(column), sql.SQL(types.get(column, "text")))
            for column in spec.model_columns
        )
        conn.execute(sql.SQL("create table {} ({})").format(sql.Identifier(spec.schema_name, spec.model), columns))


@pytest.fixture
def stats_db(scratch_db: str) -> Iterator[str]:
    """The scratch database with the stats model table filled in."""
    frame = _model_rows()
    with psycopg.connect(scratch_db) as conn:
        conn.execute("create schema stats")
        conn.execute(
            """create table stats.stats_pupils_by_characteristic (
                   time_period text not null, time_identifier text not null, school_urn integer not null,
                   school_laestab text, school_name text, school_phase_code text, school_phase text not null,
                   characteristic text not null, characteristic_value text not null, headcount integer not null)"""
        )
        _create_empty_models(conn)
        with conn.cursor() as cursor:
            cursor.executemany(
                """insert into stats.stats_pupils_by_characteristic
                       (time_period, time_identifier, school_urn, school_laestab, school_name, school_phase,
                        characteristic, characteristic_value, headcount)
                   values (%s, %s, %s, %s, %s, %s, %s, %s, %s)""",
                list(frame.itertuples(index=False, name=None)),
            )
    yield scratch_db


@pytest.fixture
def settings(stats_db: str, tmp_path: Path) -> Settings:
    settings = Settings(database_url=stats_db, data_dir=tmp_path / "data", suppression_threshold=3)
    settings.ensure_folders()
    return settings


def _ledger(url: str) -> list[dict]:
    with psycopg.connect(url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cursor:
        return cursor.execute("select * from ledger.statistics_publications order by recorded_at").fetchall()


def test_publish_statistics__gated_files_manifest_and_ledger(settings, stats_db):
    [result] = publish_statistics(run_id="manual__1", settings=settings)

    folder = settings.outbox_dir / "statistics" / TIME_PERIOD
    assert result["status"] == "published" and result["target"] == str(folder)
    assert sorted(path.name for path in folder.iterdir()) == [
        "manifest.json",
        "pupils_by_characteristic.csv",
        "pupils_by_characteristic.meta.csv",
    ]
    assert_valid_ees(folder / "pupils_by_characteristic.csv", folder / "pupils_by_characteristic.meta.csv")
    rows = list(csv.DictReader((folder / "pupils_by_characteristic.csv").open(encoding="utf-8")))
    counts = [row["headcount"] for row in rows]
    assert "c" in counts and "0" in counts
    assert not {"1", "2"} & set(counts), "every count of 1 or 2 is published as c"
    assert {row["geographic_level"] for row in rows} == {"School", "Local authority"}
    assert {row["time_period"] for row in rows} == {TIME_PERIOD}

    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    table = manifest["tables"][0]
    assert manifest["threshold"] == 3 and table["audit_ok"] is True
    assert table["cells_primary"] > 0 and table["cells_secondary"] > 0 and table["min_protection_width"] >= 3
    assert table["rows"] == len(rows)
    assert not list((settings.staging_dir / "statistics").rglob("*.csv")), "staging is emptied by the publish"

    [record] = _ledger(stats_db)
    assert (record["status"], record["run_id"], record["time_period"]) == ("published", "manual__1", TIME_PERIOD)
    assert record["audit_ok"] is True and record["published_at"] is not None
    assert record["sha256"] == table["sha256"] and record["cells_primary"] == table["cells_primary"]


def test_publish_statistics__rerun_with_same_files_publishes_nothing_twice(settings, stats_db):
    publish_statistics(run_id="manual__1", settings=settings)
    [again] = publish_statistics(run_id="manual__2", settings=settings)
    assert again["status"] == "already_published"
    assert [record["run_id"] for record in _ledger(stats_db)] == ["manual__1"]


def test_publish_statistics__audit_failure_publishes_nothing_and_is_recorded(settings, stats_db, monkeypatch):
    """Secondary suppression switched off: the audit gate refuses, the outbox stays empty, the failure is recorded."""
    original = stats_publish.protect_tables

    def primary_only(linked, config, *, suppress):
        def only_primary(table_set, config):
            return SuppressionResult(find_primary_cells(table_set, config), frozenset())

        return original(linked, config, suppress=only_primary)

    monkeypatch.setattr(stats_publish, "protect_tables", primary_only)
    with pytest.raises(StatisticsRefusedError, match="disclosure audit"):
        publish_statistics(run_id="manual__bad", settings=settings)

    assert list((settings.outbox_dir).rglob("*")) == []
    assert list((settings.staging_dir / "statistics").rglob("*.csv")) == []
    records = {record["table_name"]: record for record in _ledger(stats_db)}
    assert set(records) == {spec.name for spec in default_registry().tables}, "one failed row per registered table"
    assert {record["status"] for record in records.values()} == {"failed"}
    record = records["pupils_by_characteristic"]
    assert (record["status"], record["audit_ok"], record["run_id"]) == ("failed", False, "manual__bad")
    assert "disclosure risk" in record["failure"] and record["published_at"] is None
    assert records["workforce"]["audit_ok"] is None, "a table with no rows was never audited"


def test_periods_to_publish__each_tables_latest_period(settings, stats_db):
    """pupils_by_characteristic has 2026/27 only; exclusions_by_reason's latest is 2025/26 (the Autumn census carries
    the summer term's exclusions): both periods are published, oldest first; a table's older periods are not."""
    with psycopg.connect(stats_db) as conn:
        for period in ("202425", "202526"):
            conn.execute("insert into stats.stats_exclusions_by_reason (time_period) values (%s)", (period,))
        conn.commit()
        assert stats_publish.periods_to_publish(conn, default_registry()) == ["202526", TIME_PERIOD]


def test_periods_to_publish__no_rows_anywhere_is_refused(settings, stats_db):
    with psycopg.connect(stats_db) as conn:
        conn.execute("delete from stats.stats_pupils_by_characteristic")
        with pytest.raises(StatisticsRefusedError, match="no registered statistics table has any rows"):
            stats_publish.periods_to_publish(conn, default_registry())
