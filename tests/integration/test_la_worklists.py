"""dbt builds the LA worklists (``--selector la_worklists``) from a generated county loaded by the real ingest.

A small county (8 schools, 2,000 pupils, its leavers and every other return) is made with the project's generator,
with boundary pupils planted before it is written, loaded with ``ingest_inbox`` into a fresh database, and built with
``dbt build --selector la_worklists`` on feed date Wednesday 2026-10-14 (census day Thursday 2026-10-01). Every
worklist must be non-empty, and the lists are reconciled with the same rules worked out here in Python from the
generated pupils and CTF files (not from the database):

    planted                                 sessions / dates                        expected
    ABSENCE_10   possible 100, 10 missed     exactly 10%                             persistent
    ABSENCE_999  possible 10000, 999 missed  9.99%                                   not listed
    ABSENCE_50   possible 100, 50 missed     exactly 50%                             severe
    LEFT_10_DAYS leaver, left Wed 2026-09-30 10 school days to the feed date         missing education
    LEFT_9_DAYS  leaver, left Thu 2026-10-01  9 school days                          not yet
    EXCLUDED     Year 9 pupil: a suspension and a permanent exclusion                both listed
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
import xml.etree.ElementTree as ET  # noqa: S405 - parses the generator's own files, written in this test
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest
from dbt.cli.main import dbtRunner
from psycopg import sql

from pupilshare import PROJECT_ROOT
from pupilshare.dates import age_in_years
from pupilshare.db import DatabaseEndpoints, with_database
from pupilshare.generate.census import CensusExtract, Pupil, build_census_extract, write_census_extract
from pupilshare.generate.census_extras import Exclusion
from pupilshare.generate.returns import generate_all_returns
from pupilshare.ingest import ingest_inbox
from pupilshare.settings import Settings

pytestmark = pytest.mark.integration

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
FEED_DATE = dt.date(2026, 10, 14)
SCHOOL_DAYS = 10  # the dbt var's default (dbt_project.yml `missing_education_school_days`)
#: The dbt var `absence_reason_codes` (DfE absence codes), restated here for the independent computation.
ABSENCE_CODES = {"C", "E", "H", "I", "M", "R", "S", "T", "G", "N", "O", "U"}
WORKLISTS = (
    "la_worklist_sen_cohorts",
    "la_worklist_missing_education",
    "la_worklist_lost_pupils",
    "la_worklist_absence",
    "la_worklist_exclusions",
    "la_worklist_transfer_history",
)


@dataclasses.dataclass(frozen=True)
class County:
    url: str
    extract: CensusExtract
    planted: dict[str, str]  # name -> UPN
    lost_ctf_pupils: Counter  # (upn, reason) -> count, read from the CTF files


def _absence(possible: int, missed: int, code: str) -> dict:
    authorised = missed if code in {"I", "M", "C", "R", "H", "E"} else 0
    return {
        "sessions_possible": possible,
        "sessions_authorised": authorised,
        "sessions_unauthorised": missed - authorised,
        "absence_reasons": ((code, missed),),
    }


def _plant(extract: CensusExtract) -> tuple[CensusExtract, dict[str, str]]:
    """Boundary pupils, made from generated ones so everything else about them stays realistic."""
    pupils = list(extract.pupils)
    attenders = [i for i, pupil in enumerate(pupils) if pupil.sessions_possible and pupil.nc_year in {"3", "4", "5"}]
    year_9 = next(i for i, pupil in enumerate(pupils) if pupil.nc_year == "9" and not pupil.exclusions)
    changes = {
        "ABSENCE_10": (attenders[0], _absence(100, 10, "I")),
        "ABSENCE_999": (attenders[1], _absence(10000, 999, "I")),
        "ABSENCE_50": (attenders[2], _absence(100, 50, "O")),
        "EXCLUDED": (year_9, {"exclusions": (
            Exclusion(dt.date(2026, 5, 11), "SUSP", "PP", 4), Exclusion(dt.date(2026, 6, 15), "PERM", "PA", 0),
        )}),
    }  # fmt: skip
    planted = {}
    for name, (index, values) in changes.items():
        pupils[index] = dataclasses.replace(pupils[index], **values)
        planted[name] = pupils[index].upn
    leavers = list(extract.leavers)
    school_age = [i for i, pupil in enumerate(leavers) if pupil.nc_year in {"3", "4", "5", "6"}]
    for name, index, left in (
        ("LEFT_10_DAYS", school_age[0], dt.date(2026, 9, 30)),
        ("LEFT_9_DAYS", school_age[1], dt.date(2026, 10, 1)),
    ):
        leavers[index] = dataclasses.replace(leavers[index], leaving_date=left)
        planted[name] = leavers[index].upn
    return dataclasses.replace(extract, pupils=pupils, leavers=leavers), planted


def _lost_ctf_pupils(ctf_folder: Path) -> Counter:
    """(UPN, reason) of every pupil in a CTF whose destination is XXX/XXXX or MMM/MMMM, from the XML itself."""
    found: Counter = Counter()
    for path in sorted(ctf_folder.glob("*.xml")):
        root = ET.parse(path).getroot()  # noqa: S314 - the generator's own output
        lea, estab = root.findtext("Header/DestSchool/LEA"), root.findtext("Header/DestSchool/Estab")
        if "XXX" in (lea, estab) or "XXXX" in (lea, estab):
            reason = "destination_unknown"
        elif "MMM" in (lea, estab) or "MMMM" in (lea, estab):
            reason = "outside_maintained"
        else:
            continue
        for pupil in root.iter("Pupil"):
            found[(pupil.findtext("UPN"), reason)] += 1
    return found


@pytest.fixture(scope="module")
def county(admin_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[County]:
    """A fresh database with the generated county ingested and the worklists built; dropped afterwards."""
    name = f"pupilshare_worklists_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    url = with_database(admin_url, name)
    workdir = tmp_path_factory.mktemp("worklists")
    try:
        extract, planted = _plant(build_census_extract(schools=8, pupils=2000, seed=11))
        inbox = workdir / "data" / "inbox"
        write_census_extract(extract, inbox / "census" / "autumn_2026")
        generate_all_returns(extract, inbox, seed=11)
        lost = _lost_ctf_pupils(inbox / "ctf")
        summary = ingest_inbox(Settings(database_url=url, data_dir=workdir / "data"))
        assert not summary.quarantined, summary
        env = DatabaseEndpoints(url, "", embedded=False).dbt_env()
        with pytest.MonkeyPatch.context() as patch:
            for key, value in env.items():
                patch.setenv(key, value)
            result = _dbt(workdir, "build", "--selector", "la_worklists")
        assert result.success, f"dbt build failed: {_failed(result) or result.exception}"
        yield County(url, extract, planted, lost)
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


def _rows(url: str, query: str) -> list[dict]:
    with psycopg.connect(url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cursor:
        return cursor.execute(query).fetchall()


def _persistent(pupil: Pupil, percent: int = 10) -> bool:
    missed = sum(sessions for code, sessions in pupil.absence_reasons if code in ABSENCE_CODES)
    return bool(pupil.sessions_possible) and missed * 100 >= pupil.sessions_possible * percent


def _school_days_after(left: dt.date) -> int:
    """Monday-to-Friday days after ``left`` up to and including the feed date (numpy counts [start, end))."""
    return int(np.busday_count(left + dt.timedelta(days=1), FEED_DATE + dt.timedelta(days=1)))


def test_la_worklists__every_list_built_in_its_schema_and_non_empty(county):
    for table in WORKLISTS:
        [row] = _rows(county.url, f"select count(*) as n from la_worklists.{table}")  # noqa: S608 - fixed names
        assert row["n"] > 0, f"la_worklists.{table} is empty"


def test_la_worklist_absence__reconciles_with_the_generated_sessions(county):
    rows = _rows(
        county.url, "select upn, absence_band, sessions_missed, sessions_possible from la_worklists.la_worklist_absence"
    )
    listed = {row["upn"]: row for row in rows}
    assert len(listed) == len(rows), "one row per pupil: the county has one census return and no dual registration"
    expected = {pupil.upn for pupil in county.extract.pupils if _persistent(pupil)}
    severe = {pupil.upn for pupil in county.extract.pupils if _persistent(pupil, 50)}
    assert set(listed) == expected
    assert {upn for upn, row in listed.items() if row["absence_band"] == "severe"} == severe
    assert listed[county.planted["ABSENCE_10"]]["absence_band"] == "persistent", "exactly 10% is in"
    assert county.planted["ABSENCE_999"] not in listed, "9.99% is out"
    assert listed[county.planted["ABSENCE_50"]]["absence_band"] == "severe", "exactly 50% is severe"


def test_la_worklist_lost_pupils__reconciles_with_the_ctf_files(county):
    rows = _rows(county.url, "select upn, lost_reason from la_worklists.la_worklist_lost_pupils")
    assert Counter((row["upn"], row["lost_reason"]) for row in rows) == county.lost_ctf_pupils
    assert {reason for _, reason in county.lost_ctf_pupils} == {"destination_unknown", "outside_maintained"}


def test_la_worklist_missing_education__leavers_past_the_school_day_limit(county):
    rows = _rows(county.url, "select upn, school_days_since_leaving from la_worklists.la_worklist_missing_education")
    listed = {row["upn"]: row["school_days_since_leaving"] for row in rows}
    expected = {
        leaver.upn
        for leaver in county.extract.leavers
        if 5 <= age_in_years(leaver.dob, leaver.leaving_date) <= 15 and _school_days_after(leaver.leaving_date) >= 10
    }
    assert set(listed) == expected
    assert listed[county.planted["LEFT_10_DAYS"]] == SCHOOL_DAYS, "the tenth school day after leaving is a case"
    assert county.planted["LEFT_9_DAYS"] not in listed, "the ninth is not yet"
    on_roll = {pupil.upn for pupil in county.extract.pupils}
    assert not set(listed) & on_roll, "a pupil on a roll since leaving is not missing education"


def test_la_worklist_exclusions_and_sen_cohorts__reconcile_with_the_generated_pupils(county):
    exclusions = _rows(county.url, "select upn, exclusion_category_code from la_worklists.la_worklist_exclusions")
    expected = Counter((pupil.upn, item.category) for pupil in county.extract.pupils for item in pupil.exclusions)
    assert Counter((row["upn"], row["exclusion_category_code"]) for row in exclusions) == expected
    assert expected[(county.planted["EXCLUDED"], "PERM")] == 1
    cohorts = _rows(county.url, "select upn, sen_cohort from la_worklists.la_worklist_sen_cohorts")
    names = {"E": "ehc_plan", "K": "sen_support"}
    expected_cohorts = {
        pupil.upn: names[pupil.sen_provision] for pupil in county.extract.pupils if pupil.sen_provision in names
    }
    assert {row["upn"]: row["sen_cohort"] for row in cohorts} == expected_cohorts


def test_la_worklist_transfer_history__a_leaver_and_a_year_7_pupil(county):
    rows = _rows(
        county.url,
        "select upn, transfer_sequence, record_source, school_laestab from la_worklists.la_worklist_transfer_history "
        "order by upn, transfer_sequence",
    )
    sources = {}
    for row in rows:
        sources.setdefault(row["upn"], []).append(row["record_source"])
    assert "census_off_roll" in sources[county.planted["LEFT_10_DAYS"]]
    assert any(history[-1] == "census_on_roll" and "ctf_transfer" in history for history in sources.values()), (
        "a Year 7 pupil: the primary's CTF, then the secondary's roll"
    )
