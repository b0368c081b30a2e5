"""The NCCIS feed end to end on a real PostgreSQL: generated county -> ingest -> dbt -> gate -> delivery and ledger.

A county with sixth forms (8 schools, 2,000 pupils, seed 3: Years 11, 12 and 13 on roll, some with census
yssa = No) and every other return is made with the project's generator; a few planted returns are added; the
inbox is loaded with ``ingest_inbox`` into a fresh database and ``dbt build --select +nccis_feed`` builds the mart
(seeds, models, data tests and unit tests). Feed date Monday 2027-03-01 (academic year 2026/27, ages on
2026-08-31; census day 2026-10-01; generated offers from February 2027 on).

    planted                               returns                                            expected activity
    ENROLLED     Year 12, not restricted  post-16 enrolled at 10999999 on 2026-11-02          230 on 2026-11-02
    RESTRICTED   Year 12, census yssa No  YSS 610 on 2026-10-20, provider 320 on 2026-11-03  610 on 2026-10-20
    NO_YSS       Year 13, census yssa No  provider 320 on 2026-11-03 only                    810, no date
    LATE         Year 13, not restricted  YSS 540 on 2027-03-02 (after the feed date)        210 (school roll)

The mart must equal the gate's truth (computed from raw in Python) and the cohort worked out here from the
generated pupils; the gate must pass and the feed be delivered and recorded; a school-data leak planted in the built
mart must fail the gate, delivering and recording nothing.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import psycopg
import pytest
from dbt.cli.main import dbtRunner
from psycopg import sql

from pupilshare import PROJECT_ROOT
from pupilshare.db import DatabaseEndpoints, with_database
from pupilshare.gates import GateFailedError
from pupilshare.gates.truths.nccis import load_nccis_truth
from pupilshare.generate.census import CensusExtract, build_census_extract, write_census_extract
from pupilshare.generate.returns import generate_all_returns
from pupilshare.ingest import ingest_inbox
from pupilshare.ingest.post16 import academic_age
from pupilshare.policy import load_policy
from pupilshare.publish import deliver_feed, gate_feed
from pupilshare.settings import Settings

pytestmark = pytest.mark.integration

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
FEED_DATE = dt.date(2027, 3, 1)
NCCIS = load_policy().recipient("nccis")


@dataclasses.dataclass(frozen=True)
class County:
    url: str
    settings: Settings
    extract: CensusExtract
    planted: dict[str, str]  # name -> UPN


def _plant(extract: CensusExtract, activity_folder: Path) -> tuple[CensusExtract, dict[str, str]]:
    """Pick (and where needed restrict) the planted young people from generated Year 12 and 13 pupils whose only
    generated activity update is the school's 210, so the planted updates decide their activity."""
    updates = Counter(row["upn"] for path in activity_folder.glob("*.csv") for row in csv.DictReader(path.open()))
    pupils = list(extract.pupils)
    quiet = [i for i, pupil in enumerate(pupils) if pupil.yssa != "No" and updates[pupil.upn] == 1]
    year_12 = [i for i in quiet if pupils[i].nc_year == "12"]
    year_13 = [i for i in quiet if pupils[i].nc_year == "13"]
    chosen = {"ENROLLED": year_12[0], "RESTRICTED": year_12[1], "NO_YSS": year_13[0], "LATE": year_13[1]}
    for name in ("RESTRICTED", "NO_YSS"):
        pupils[chosen[name]] = dataclasses.replace(pupils[chosen[name]], yssa="No")
    return dataclasses.replace(extract, pupils=pupils), {name: pupils[i].upn for name, i in chosen.items()}


def _write_planted_returns(inbox: Path, planted: dict[str, str]) -> None:
    (inbox / "post16" / "post16_926_planted.csv").write_text(
        f"upn,ukprn,status,status_date\n{planted['ENROLLED']},10999999,enrolled,2026-11-02\n", encoding="utf-8"
    )
    rows = [
        (planted["RESTRICTED"], "610", "2026-10-20", "yss"),
        (planted["RESTRICTED"], "320", "2026-11-03", "provider"),
        (planted["NO_YSS"], "320", "2026-11-03", "provider"),
        (planted["LATE"], "540", "2027-03-02", "yss"),
    ]
    lines = "".join(f"{upn},,{code},{day},{source}\n" for upn, code, day, source in rows)
    (inbox / "activity" / "activity_926_planted.csv").write_text(
        "upn,uln,activity_code,activity_date,source\n" + lines, encoding="utf-8"
    )


@pytest.fixture(scope="module")
def county(admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[County]:
    """A fresh database with the generated county ingested and the NCCIS mart built; dropped afterwards."""
    name = f"pupilshare_nccis_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    url = with_database(admin_url, name)
    workdir = tmp_path_factory.mktemp("nccis")
    try:
        generated = build_census_extract(schools=8, pupils=2000, seed=3)
        inbox = workdir / "data" / "inbox"
        generate_all_returns(generated, inbox, seed=3)
        extract, planted = _plant(generated, inbox / "activity")
        write_census_extract(extract, inbox / "census" / "autumn_2026")
        _write_planted_returns(inbox, planted)
        settings = Settings(database_url=url, data_dir=workdir / "data")
        summary = ingest_inbox(settings)
        assert not summary.quarantined, summary
        env = DatabaseEndpoints(url, "", embedded=False).dbt_env()
        with pytest.MonkeyPatch.context() as patch:
            for key, value in env.items():
                patch.setenv(key, value)
            # the publish DAG's selection, tests cautious as in every DAG (pupilshare.airflow.cosmos_config)
            result = _dbt(workdir, "build", "--select", f"+{NCCIS.mart}", "--indirect-selection", "cautious")
        assert result.success, f"dbt build failed: {_failed(result) or result.exception}"
        yield County(url, settings, extract, planted)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def _dbt(workdir: Path, *args: str):
    """Run dbt in-process against the project, writing target/ and logs/ under workdir (not into the repo)."""
    return dbtRunner().invoke(
        [
            *args,
            "--project-dir", str(DBT_PROJECT_DIR),
            "--profiles-dir", str(DBT_PROJECT_DIR),
            "--target-path", str(workdir / "target"),
            "--log-path", str(workdir / "logs"),
            "--vars", json.dumps({"feed_date": FEED_DATE.isoformat()}),
        ]
    )  # fmt: skip


def _failed(result) -> list[str]:
    return [
        f"{item.node.name}: {item.status}" for item in (result.result or []) if str(item.status) in {"error", "fail"}
    ]


def _feed(url: str) -> pd.DataFrame:
    with psycopg.connect(url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cursor:
        rows = cursor.execute(f"select * from {NCCIS.schema_name}.{NCCIS.mart} order by ledger_upn").fetchall()  # noqa: S608
    return pd.DataFrame.from_records(rows)


def _truth(url: str) -> pd.DataFrame:
    with psycopg.connect(url) as conn:
        return load_nccis_truth(conn, FEED_DATE)


def test_nccis_feed__cohort_is_academic_age_16_17_and_year_11(county):
    feed = _feed(county.url)
    expected = {
        pupil.upn
        for pupil in county.extract.pupils
        if academic_age(pupil.dob, FEED_DATE) in (16, 17) or pupil.nc_year == "11"
    }
    assert set(feed["ledger_upn"]) == expected
    assert {pupil.nc_year for pupil in county.extract.pupils if pupil.upn in expected} == {"11", "12", "13"}
    assert feed["ledger_upn"].is_unique


def test_nccis_feed__equals_the_truth_row_for_row(county):
    """Every row's activity, date and offer flag are what the raw returns say (truth in Python, not dbt)."""
    feed = _feed(county.url).set_index("ledger_upn")
    truth = _truth(county.url).set_index("upn")
    assert set(feed.index) == set(truth.index[truth["is_in_cohort"]])
    truth = truth.loc[feed.index]
    assert list(feed["activity_code"]) == list(truth["gate_activity_code"])
    assert [None if pd.isna(day) else day for day in feed["activity_date"]] == list(truth["gate_activity_date"])
    assert [None if pd.isna(flag) else bool(flag) for flag in feed["has_september_guarantee_offer"]] == list(
        truth["gate_september_guarantee"]
    )
    restricted = truth["is_restricted"]
    assert restricted.sum() >= 2, "the county must have restricted young people"
    assert feed.loc[restricted.values, list(NCCIS.restricted_blank_fields)].isna().all().all()
    assert feed.loc[~restricted.values, "upn"].tolist() == feed.index[~restricted.values].tolist()


def test_nccis_feed__planted_young_people(county):
    feed = _feed(county.url).set_index("ledger_upn")
    planted = {name: feed.loc[upn] for name, upn in county.planted.items()}
    assert (planted["ENROLLED"]["activity_code"], planted["ENROLLED"]["activity_date"]) == ("230", dt.date(2026, 11, 2))
    assert planted["ENROLLED"]["upn"] == county.planted["ENROLLED"]
    restricted = planted["RESTRICTED"]
    assert (restricted["activity_code"], restricted["activity_date"]) == ("610", dt.date(2026, 10, 20))
    assert restricted[["upn", "sex", "sen_provision_code", "nc_year"]].isna().all()
    assert restricted["forename"] and restricted["date_of_birth"]
    assert planted["NO_YSS"]["activity_code"] == "810" and pd.isna(planted["NO_YSS"]["activity_date"])
    assert (planted["LATE"]["activity_code"], planted["LATE"]["activity_date"]) == ("210", dt.date(2026, 10, 1))


def test_nccis_feed__generated_county_exercises_every_source(county):
    """The generator gives a useful cohort: sixth-form pupils (210), YSS and provider updates, restricted young people
    with YSS activity, and Year 11 pupils with and without an offer on the feed date."""
    feed = _feed(county.url)
    truth = _truth(county.url).set_index("upn").loc[feed["ledger_upn"]]
    codes = set(feed["activity_code"])
    assert {"110", "210", "230", "810"} <= codes
    assert len(codes - {"110", "210", "230", "810"}) >= 2, "later activity from updates"
    restricted_with_yss = feed[truth["is_restricted"].values & feed["activity_date"].notna().values]
    assert len(restricted_with_yss) >= 2, "restricted young people with YSS-collected activity"
    offers = feed["has_september_guarantee_offer"].dropna()
    assert offers.any() and not offers.all()


def test_publish_nccis__gate_passes_delivers_and_records(county):
    staging = gate_feed("nccis", feed_date=FEED_DATE, run_id="nccis-test", settings=county.settings)
    outcome = deliver_feed(staging, settings=county.settings)
    assert outcome["status"] == "delivered", outcome
    delivered = county.settings.outbox_dir / "nccis" / FEED_DATE.isoformat() / f"nccis_{FEED_DATE.isoformat()}.csv"
    header = delivered.read_text(encoding="utf-8").splitlines()[0]
    assert header == ",".join(NCCIS.delivered_fields)
    with delivered.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    feed = _feed(county.url)
    assert len(rows) == len(feed)
    assert {row["upn"] for row in rows if row["upn"]} == set(feed.loc[feed["upn"].notna(), "ledger_upn"])
    restricted = [row for row in rows if not row["upn"]]
    assert len(restricted) == feed["upn"].isna().sum() >= 2
    assert all(not row["sex"] and not row["nc_year"] and row["activity_code"] for row in restricted)
    with psycopg.connect(county.url) as conn:
        recorded = conn.execute("select count(*) from ledger.disclosures where recipient_id = 'nccis'").fetchone()[0]
    assert recorded == len(_feed(county.url))


@pytest.mark.parametrize(
    ("leak", "failed_check"),
    [
        ("update {mart} set upn = ledger_upn where ledger_upn = %(restricted)s", "restricted_has_no_school_data"),
        (
            "update {mart} set activity_code = '210', activity_date = '2026-10-01' where ledger_upn = %(no_yss)s",
            "activity_code_matches_truth",
        ),
        ("update {mart} set activity_date = '2026-10-01' where ledger_upn = %(no_yss)s", "activity_date_matches_truth"),
        (
            "update {mart} set has_september_guarantee_offer = true where ledger_upn = %(restricted)s",
            "restricted_has_no_school_data",
        ),
        ("delete from {mart} where ledger_upn = %(enrolled)s", "whole_cohort"),
    ],
    ids=["upn", "school_roll_activity", "activity_date", "offer_flag", "dropped_row"],
)
def test_publish_nccis__planted_leak_fails_the_gate_and_records_nothing(county, leak, failed_check):
    mart = f"{NCCIS.schema_name}.{NCCIS.mart}"
    feed_date = FEED_DATE + dt.timedelta(days=1)  # a fresh feed date: nothing delivered for it yet
    params = {
        "restricted": county.planted["RESTRICTED"],
        "no_yss": county.planted["NO_YSS"],
        "enrolled": county.planted["ENROLLED"],
    }
    with psycopg.connect(county.url) as conn:
        conn.execute(f"create table public.nccis_backup as select * from {mart}")  # noqa: S608
        conn.execute(leak.format(mart=mart), params)
    try:
        with pytest.raises(GateFailedError) as failure:
            gate_feed("nccis", feed_date=feed_date, run_id=f"leak-{failed_check}", settings=county.settings)
        assert any(failed_check in message for message in failure.value.result.failures), failure.value.result
        assert not (county.settings.outbox_dir / "nccis" / feed_date.isoformat()).exists()
        with psycopg.connect(county.url) as conn:
            delivered = conn.execute(
                "select count(*) from ledger.deliveries where recipient_id = 'nccis' and feed_date = %s", (feed_date,)
            ).fetchone()[0]
            verdict = conn.execute(
                "select success from ledger.gate_results where run_id = %s", (f"leak-{failed_check}",)
            ).fetchone()
        assert delivered == 0 and verdict == (False,)
    finally:
        with psycopg.connect(county.url) as conn:
            conn.execute(f"delete from {mart}")  # noqa: S608
            conn.execute(f"insert into {mart} select * from public.nccis_backup")  # noqa: S608
            conn.execute("drop table public.nccis_backup")
