"""The health (NCMP) feed from generated returns: BMI categories agree with rcpchgrowth for every child.

A fresh database gets a generated county (census plus every other return, NCMP among them) through the real loader,
then a second NCMP export of corrections (file ``ncmp_926_2026-27_corrections.csv``, loaded after the generated
one) for three children of the first:

    child   correction                                   expected
    P1      height 80 cm in Year 6 (height SDS < -8)     NCMP-BMI-UNCLASSIFIED finding; not in the feed
    P2      born 2000-01-01 (27 at measurement)          NCMP-BMI-UNCLASSIFIED (no UK90 data over 20); not in feed
    P3      not measured: OPTOUT                         the later row wins: not in the feed

``dbt build --select +health_feed`` (models, data tests, unit tests) must pass with feed date 2027-07-01 (school
year 2026/27, after every generated measurement). Every classified measurement's category is then compared with one
computed in this test straight from rcpchgrowth's ``Measurement`` class and the NCMP thresholds as written in
SHARING_RULES.md; the feed must be exactly the measured, classifiable children, and the publish gate (with its own
truth from the raw rows) must pass, and fail once the SQL's overweight threshold is wrong.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import psycopg
import pytest
from dbt.cli.main import dbtRunner
from psycopg import sql
from rcpchgrowth import Measurement

from pupilshare import PROJECT_ROOT
from pupilshare.db import DatabaseEndpoints, with_database
from pupilshare.gates import run_feed_gate
from pupilshare.gates.truths.health import load_health_truth
from pupilshare.generate.census import build_census_extract, write_census_extract
from pupilshare.generate.returns import generate_all_returns
from pupilshare.ingest import ingest_inbox
from pupilshare.ingest.ncmp import COLUMNS
from pupilshare.policy import load_policy
from pupilshare.settings import Settings

pytestmark = pytest.mark.integration

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
FEED_DATE = dt.date(2027, 7, 1)
HEALTH = load_policy().recipient("health")


def _category(centile: float) -> str:
    """SHARING_RULES.md "Domain facts", written out here on purpose (not imported from pupilshare)."""
    if centile <= 2:
        return "underweight"
    if centile >= 99.6:
        return "severely_obese"
    if centile >= 95:
        return "obese"
    if centile >= 85:
        return "overweight"
    return "healthy_weight"


@pytest.fixture(scope="module")
def county(admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A generated county with the corrections export, loaded and built up to health_feed."""
    name = f"pupilshare_health_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    url = with_database(admin_url, name)
    folder = tmp_path_factory.mktemp("health_county")
    patch = pytest.MonkeyPatch()
    try:
        settings = Settings(database_url=url, data_dir=folder / "data")
        settings.ensure_folders()
        extract = build_census_extract(schools=20, pupils=1400, seed=11)
        write_census_extract(extract, settings.inbox_dir / "census" / "autumn_2026")
        generate_all_returns(extract, settings.inbox_dir, seed=13)
        planted = _write_corrections(settings.inbox_dir / "ncmp")
        summary = ingest_inbox(settings)
        assert not summary.quarantined, summary.quarantined
        for key, value in DatabaseEndpoints(url, "", embedded=False).dbt_env().items():
            patch.setenv(key, value)
        result = _dbt(folder, "build", "--select", "+health_feed", "--indirect-selection", "cautious")
        assert result.success, f"dbt build failed: {_failed(result) or result.exception}"
        yield {"url": url, "folder": folder, "planted": planted}
    finally:
        patch.undo()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def _write_corrections(folder: Path) -> dict[str, str]:
    """A second export re-sending three measured Year 6 children of the generated one (see the module docstring)."""
    (generated,) = sorted(folder.glob("*.csv"))
    with generated.open(encoding="utf-8", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["school_year"] == "6" and row["height_cm"]]
    tall, old, opted = (dict(row) for row in rows[:3])
    tall.update(height_cm="80.0", weight_kg="25.0")
    old.update(date_of_birth="2000-01-01")
    opted.update(measurement_date="", height_cm="", weight_kg="", not_measured_reason="OPTOUT")
    path = folder / f"{generated.stem}_corrections.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows([tall, old, opted])
    return {"unclassified_height": tall["upn"], "unclassified_age": old["upn"], "opted_out": opted["upn"]}


def _dbt(folder: Path, *args: str, extra_vars: dict | None = None):
    return dbtRunner().invoke(
        [
            *args,
            "--project-dir", str(DBT_PROJECT_DIR),
            "--profiles-dir", str(DBT_PROJECT_DIR),
            "--target-path", str(folder / "target"),
            "--log-path", str(folder / "logs"),
            "--vars", json.dumps({"feed_date": FEED_DATE.isoformat(), **(extra_vars or {})}),
        ]
    )  # fmt: skip


def _failed(result) -> list[str]:
    return [
        f"{item.node.name}: {item.status}" for item in (result.result or []) if str(item.status) in {"error", "fail"}
    ]


def _rcpchgrowth_centile(dob: dt.date, measured_on: dt.date, sex: str, height: float, weight: float) -> float:
    """The chronological BMI centile from rcpchgrowth's Measurement class (reference uk-who)."""
    measurement = Measurement(
        birth_date=dob,
        measurement_method="bmi",
        observation_date=measured_on,
        observation_value=weight / (height / 100) ** 2,
        reference="uk-who",
        sex={"M": "male", "F": "female"}[sex],
    ).measurement
    return measurement["measurement_calculated_values"]["chronological_centile"]


def _read(url: str, query: str) -> pd.DataFrame:
    with psycopg.connect(url) as conn:
        cursor = conn.execute(query)
        return pd.DataFrame(cursor.fetchall(), columns=[column.name for column in cursor.description])


def test_bmi_category__agrees_with_rcpchgrowth_for_every_generated_child(county):
    classified = _read(
        county["url"],
        """select upn, date_of_birth, measurement_date, sex_code, height_cm::float, weight_kg::float,
                  bmi_category_code
           from analytics.int_ncmp_measurements_classified
           where bmi_category_code is not null""",
    )
    assert len(classified) > 200, "the generated county should measure a couple of hundred children"
    expected = [
        _category(_rcpchgrowth_centile(row.date_of_birth, row.measurement_date, row.sex_code, row.height_cm,
                                       row.weight_kg))
        for row in classified.itertuples()
    ]  # fmt: skip
    disagree = classified.loc[classified["bmi_category_code"] != expected, "upn"].tolist()
    assert not disagree, f"categories differ from rcpchgrowth for {disagree}"
    assert {"healthy_weight", "overweight", "obese"} <= set(expected), "the generator should span the categories"


def test_health_feed__exactly_the_measured_children_with_their_category(county):
    feed = _read(county["url"], "select * from health.health_feed")
    assert tuple(feed.columns) == HEALTH.mart_columns
    measured = _read(
        county["url"],
        """select upn, bmi_category_code from analytics.int_ncmp_measurements_classified
           where is_latest_for_child and bmi_category_code is not null""",
    )
    assert dict(zip(feed["ledger_upn"], feed["bmi_category"], strict=True)) == dict(
        zip(measured["upn"], measured["bmi_category_code"], strict=True)
    )
    planted = county["planted"]
    assert not set(planted.values()) & set(feed["ledger_upn"])
    opted_out = _read(
        county["url"], "select upper(trim(upn)) as upn from raw.ncmp_measurements where not_measured_reason = 'OPTOUT'"
    )
    assert len(opted_out) > 1 and not set(opted_out["upn"]) & set(feed["ledger_upn"])
    on_roll = feed["postcode"].notna()
    assert on_roll.mean() > 0.9, "measured children on the census roll get their home address"


def test_unclassifiable_measurement__finding_and_no_row_in_feed(county):
    findings = _read(
        county["url"],
        """select f.row_number, f.severity, f.message, m.upn
           from raw.validation_findings as f
           join raw.ncmp_measurements as m on m._load_batch_id = f.load_batch_id and m._row_number = f.row_number
           where f.rule_id = 'NCMP-BMI-UNCLASSIFIED'""",
    )
    by_upn = dict(zip(findings["upn"], findings["message"], strict=True))
    planted = county["planted"]
    assert set(by_upn) == {planted["unclassified_height"], planted["unclassified_age"]}
    assert "height 80.0 cm" in by_upn[planted["unclassified_height"]]
    assert "20 years" in by_upn[planted["unclassified_age"]]
    assert set(findings["severity"]) == {"query"}
    stored = _read(
        county["url"], "select count(*) as n from raw.ncmp_bmi_results where unclassified_reason is not null"
    )
    assert stored["n"][0] == 2


def test_health_gate__passes_and_fails_on_a_wrong_sql_threshold(county, tmp_path):
    def gate():
        with psycopg.connect(county["url"]) as conn:
            feed = _read(county["url"], "select * from health.health_feed")
            truth = load_health_truth(conn, FEED_DATE)
        return run_feed_gate(
            feed, truth, recipient=HEALTH, feed_date=FEED_DATE, run_id="test", data_docs_dir=tmp_path / "docs"
        )

    passed = gate()
    assert passed.success, passed.failures
    try:
        wrong = _dbt(
            county["folder"], "run", "--select", "int_ncmp_measurements_classified", "health_feed",
            extra_vars={"ncmp_overweight_at_or_above_centile": 80},
        )  # fmt: skip
        assert wrong.success
        failed = gate()
        assert not failed.success
        assert any(failure.startswith("category_matches_rcpchgrowth") for failure in failed.failures), failed.failures
    finally:
        assert _dbt(county["folder"], "run", "--select", "int_ncmp_measurements_classified", "health_feed").success


def test_load_ncmp_export__bmi_failure_leaves_nothing_loaded(scratch_db, tmp_path, monkeypatch):
    """The BMI step runs in the load's transaction: when it fails, neither the rows nor the batch are kept; the
    same file then loads with one BMI row per measured row."""
    import random

    import pupilshare.ingest.ncmp as ncmp
    from pupilshare.generate.returns import write_ncmp_export
    from pupilshare.ingest.loaders import ensure_all_raw_tables

    extract = build_census_extract(schools=3, pupils=200, seed=3)
    write_ncmp_export(extract, tmp_path, random.Random(1))
    (path,) = tmp_path.glob("*.csv")

    def broken(measurements):
        raise RuntimeError("rcpchgrowth failed")

    with psycopg.connect(scratch_db) as conn:
        ensure_all_raw_tables(conn)
        conn.commit()
        monkeypatch.setattr(ncmp, "bmi_results", broken)
        with pytest.raises(RuntimeError, match="rcpchgrowth failed"):
            ncmp.load_ncmp_export(conn, path)
        counts = "select (select count(*) from raw.ncmp_measurements), (select count(*) from raw.load_batches), " \
                 "(select count(*) from raw.ncmp_bmi_results)"  # fmt: skip
        assert conn.execute(counts).fetchone() == (0, 0, 0)
        monkeypatch.undo()
        assert ncmp.load_ncmp_export(conn, path) is not None
        measured = conn.execute(
            "select count(*) from raw.ncmp_measurements where not _rejected and not_measured_reason is null"
        ).fetchone()[0]
        assert measured > 10
        assert conn.execute("select count(*) from raw.ncmp_bmi_results").fetchone()[0] == measured


def test_publish_health__gated_delivered_and_recorded(county):
    """The publish step of the DAG (gate_feed, deliver_feed) on the built mart: one file, one ledger row per child."""
    from pupilshare.publish import deliver_feed, gate_feed

    settings = Settings(database_url=county["url"], data_dir=county["folder"] / "publish")
    staging = gate_feed("health", feed_date=FEED_DATE, run_id="manual__health", settings=settings)
    delivered = deliver_feed(staging, settings=settings)
    assert delivered["status"] == "delivered"
    path = Path(delivered["file"])
    assert path == settings.outbox_dir / "health" / FEED_DATE.isoformat() / f"health_{FEED_DATE.isoformat()}.csv"
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == HEALTH.delivered_fields, "the internal key is never a column of the file"
    assert {row["bmi_category"] for row in rows} >= {"healthy_weight", "overweight", "obese"}
    with psycopg.connect(county["url"]) as conn:
        recorded = conn.execute(
            """select count(*), min(d.legal_basis) from ledger.disclosures as s
               join ledger.deliveries as d using (delivery_id) where d.recipient_id = 'health'"""
        ).fetchone()
    assert recorded == (len(rows), HEALTH.legal_basis)
    assert deliver_feed(staging, settings=settings)["status"] != "delivered", "a rerun delivers nothing twice"
