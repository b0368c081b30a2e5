"""dbt builds the Youth Support Services feed from raw census rows on a real PostgreSQL.

A fresh database gets the loader's raw schema (``ensure_raw_schema``) and a small synthetic census: an old batch, a
superseded resubmission and the current batch, with boundary pupils. ``dbt build`` (models, data tests, unit tests)
must pass, and ``yss.yss_feed`` must hold exactly the pupils aged 13 or over on the feed date, restricted pupils with
name, address and date of birth only. All names and numbers are made up.

Feed date 2026-11-29; current batch 3 (schools 9264001 and 9264002):

    UPN            dob (as sent)          yssa   notes                                  in feed   restricted
    T000000000001  2013-Nov-29 00:00:00   Yes    13 on the feed date                    yes       no
    T000000000002  2013-Nov-30 00:00:00          13 the day after                       no
    T000000000003  2011-May-05 00:00:00   No     SEN K                                  yes       yes
    T000000000004  2010-Mar-01 00:00:00   UNS    16                                     yes       no
    T000000000005  2012-Feb-29 00:00:00   SNR    29 February birthday, 14               yes       no
    T000000000006  2012-Jan-10 00:00:00   Yes    dual: S at school 2 first, M at 1      yes       no (school 1)
    T000000000007  2014-Jan-01 00:00:00   No     12                                     no
    T000000000008  (blank)                Yes    age unknown                            no
    T000000000009  not a date             Yes    age unknown                            no
    T000000000010  2011-Jul-07 00:00:00   Yes/No dual: main Yes, subsidiary No          yes       yes
    t000000000011  2012-Sep-01 00:00:00   no     lower case as sent                     yes       yes
    (blank UPN)    2011-Jan-01 00:00:00   Yes    cannot be keyed                        no
    T000000000098  only in batch 1 (older census)                                       no
    T000000000099  only in batch 2 (superseded)                                         no
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from dbt.cli.main import dbtRunner
from psycopg import sql

from pupilshare import PROJECT_ROOT
from pupilshare.db import DatabaseEndpoints, with_database
from pupilshare.gates.truth import load_yss_truth
from pupilshare.ingest.loaders import ensure_all_raw_tables
from pupilshare.policy import load_policy

pytestmark = pytest.mark.integration

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
FEED_DATE = dt.date(2026, 11, 29)
YSS = load_policy().recipient("yss")

EXPECTED_FULL = {"T000000000001", "T000000000004", "T000000000005", "T000000000006"}
EXPECTED_RESTRICTED = {"T000000000003", "T000000000010", "T000000000011"}

_LOAD_BATCHES = [
    # load_batch_id, status, census_year, reference_date
    (1, "loaded", 2025, dt.date(2025, 10, 2)),
    (2, "superseded", 2026, dt.date(2026, 10, 1)),
    (3, "loaded", 2026, dt.date(2026, 10, 1)),
]
_SCHOOL_RETURNS = [
    # batch, schoolcensustableid, lea, estab, urn, referencedate
    (1, "1", "926", "4001", "121001", "2025-Oct-02 00:00:00"),
    (2, "1", "926", "4001", "121001", "2026-Oct-01 00:00:00"),
    (3, "1", "926", "4001", "121001", "2026-Oct-01 00:00:00"),
    (3, "2", "926", "4002", "121002", "2026-Oct-01 00:00:00"),
]
_SCHOOLS = [
    # batch, schooltableid, schoolcensustableid, schoolname
    (1, "1", "1", "Synthetic High School"),
    (2, "1", "1", "Synthetic High School"),
    (3, "1", "1", "Synthetic High School"),
    (3, "2", "2", "Example Academy"),
]
_PUPILS = [
    # batch, pupilonrolltableid, schoolcensustableid, upn, forename, surname, dob, sex, ncyear, enrol, yssa, sen
    (1, "1", "1", "T000000000098", "Oldia", "Formerly", "2011-Feb-02 00:00:00", "F", "9", "C", "Yes", "N"),
    (2, "1", "1", "T000000000099", "Supera", "Seded", "2011-Mar-03 00:00:00", "M", "10", "C", "Yes", "N"),
    (3, "1", "1", "T000000000001", "Todaya", "Birthday", "2013-Nov-29 00:00:00", "F", "9", "C", "Yes", "N"),
    (3, "2", "1", "T000000000002", "Morrowa", "Birthday", "2013-Nov-30 00:00:00", "M", "9", "C", "", "N"),
    (3, "3", "1", "T000000000003", "Restricta", "Example", "2011-May-05 00:00:00", "F", "11", "C", "No", "K"),
    (3, "4", "1", "T000000000004", "Sixteena", "Example", "2010-Mar-01 00:00:00", "M", "12", "C", "UNS", "N"),
    (3, "5", "2", "T000000000005", "Leapa", "Dayson", "2012-Feb-29 00:00:00", "F", "9", "C", "SNR", "E"),
    (3, "6", "2", "T000000000006", "Duala", "Registra", "2012-Jan-10 00:00:00", "M", "9", "S", "Yes", "N"),
    (3, "7", "1", "T000000000006", "Duala", "Registra", "2012-Jan-10 00:00:00", "M", "9", "M", "Yes", "N"),
    (3, "8", "1", "T000000000007", "Twelva", "Young", "2014-Jan-01 00:00:00", "F", "8", "C", "No", "N"),
    (3, "9", "1", "T000000000008", "Nodoba", "Blank", "", "M", "10", "C", "Yes", "N"),
    (3, "10", "1", "T000000000009", "Baddoba", "Garbled", "not a date", "F", "10", "C", "Yes", "N"),
    (3, "11", "1", "T000000000010", "Splitta", "Answer", "2011-Jul-07 00:00:00", "M", "11", "M", "Yes", "N"),
    (3, "12", "2", "T000000000010", "Splitta", "Answer", "2011-Jul-07 00:00:00", "M", "11", "S", "No", "N"),
    (3, "13", "2", "t000000000011", "Lowera", "Case", "2012-Sep-01 00:00:00", "F", "9", "C", "no", "N"),
    (3, "14", "2", "", "Nokeya", "Blank", "2011-Jan-01 00:00:00", "M", "11", "C", "Yes", "N"),
]
_ADDRESSES = [
    # batch, addressesonrolltableid, pupilonrolltableid, saon, paon, street, locality, town, posttown, postcode
    (1, "1", "1", "", "9", "Old Lane", "", "Testham", "TESTHAM", "ZZ1 0AA"),
    (3, "1", "1", "", "14", "High Street", "Thorpe", "Testbury", "TESTBURY", "zz1 1aa"),
    (3, "2", "3", "Flat 2", "7", "Mill Lane", "", "Testbury", "TESTBURY", "ZZ1 3CC"),
    (3, "3", "4", "", "Rose Cottage", "Church Road", "Little Testing", "Testham", "", "ZZ2 4DD"),
    (3, "4", "7", "", "3", "Dual Way", "", "", "TESTBURY", "ZZ1 7EE"),
    (3, "5", "6", "", "99", "Subsidiary Street", "", "", "TESTHAM", "ZZ2 6FF"),
]


def load_synthetic_census(conn: psycopg.Connection) -> None:
    """Create the raw schema as the loader does and insert the synthetic census above (all values as text)."""
    ensure_all_raw_tables(conn)
    for load_batch_id, status, year, reference_date in _LOAD_BATCHES:
        conn.execute(
            """insert into raw.load_batches
                   (load_batch_id, return_type, source_name, content_sha256, status, census_term, census_year,
                    reference_date)
               overriding system value
               values (%s, 'census', %s, %s, %s, 'AUT', %s, %s)""",
            (load_batch_id, f"autumn_{year}_{load_batch_id}", f"{load_batch_id:064x}", status, year, reference_date),
        )
    _insert(
        conn, "census_schoolcensus", ("schoolcensustableid", "lea", "estab", "urn", "referencedate"), _SCHOOL_RETURNS
    )
    batches = {batch: (year, reference_date) for batch, _, year, reference_date in _LOAD_BATCHES}
    for batch, table_id, lea, estab, _, _ in _SCHOOL_RETURNS:  # the loader registers every school return it loads
        conn.execute(
            """insert into raw.census_school_returns
                   (load_batch_id, schoolcensus_table_id, laestab, census_term, census_year, reference_date)
               values (%s, %s, %s, 'AUT', %s, %s)""",
            (batch, table_id, lea + estab, *batches[batch]),
        )
    _insert(conn, "census_school", ("schooltableid", "schoolcensustableid", "schoolname"), _SCHOOLS)
    pupil_columns = (
        "pupilonrolltableid", "schoolcensustableid", "upn", "forename", "surname", "dob", "sex", "ncyearactual",
        "enrolstatus", "yssa", "senprovision",
    )  # fmt: skip
    _insert(conn, "census_pupilonroll", pupil_columns, _PUPILS)
    address_columns = (
        "addressesonrolltableid", "pupilonrolltableid", "saon", "paon", "street", "locality", "town", "posttown",
        "postcode",
    )  # fmt: skip
    _insert(conn, "census_addressesonroll", address_columns, _ADDRESSES)


def _insert(conn: psycopg.Connection, table: str, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """Insert rows (first item the load batch id) numbering them per batch as the loader does (1 = first row)."""
    statement = sql.SQL("insert into raw.{table} (_load_batch_id, _row_number, {columns}) values ({values})").format(
        table=sql.Identifier(table),
        columns=sql.SQL(", ").join(sql.Identifier(column) for column in columns),
        values=sql.SQL(", ").join(sql.Placeholder() for _ in range(len(columns) + 2)),
    )
    row_numbers: dict[int, int] = {}
    for load_batch_id, *values in rows:
        row_numbers[load_batch_id] = row_numbers.get(load_batch_id, 0) + 1
        conn.execute(statement, (load_batch_id, row_numbers[load_batch_id], *values))


@pytest.fixture
def census_db(admin_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh database holding the synthetic census, with PUPILSHARE_DB_* pointing dbt at it; dropped afterwards."""
    name = f"pupilshare_dbt_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    url = with_database(admin_url, name)
    try:
        with psycopg.connect(url) as conn:
            load_synthetic_census(conn)
        for key, value in DatabaseEndpoints(url, "", embedded=False).dbt_env().items():
            monkeypatch.setenv(key, value)
        yield url
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def _dbt(tmp_path: Path, *args: str):
    """Run dbt in-process against the project, writing target/ and logs/ under tmp_path (not into the repo)."""
    return dbtRunner().invoke(
        [
            *args,
            "--project-dir", str(DBT_PROJECT_DIR),
            "--profiles-dir", str(DBT_PROJECT_DIR),
            "--target-path", str(tmp_path / "target"),
            "--log-path", str(tmp_path / "logs"),
            "--vars", json.dumps({"feed_date": FEED_DATE.isoformat()}),
        ]
    )  # fmt: skip


def _feed(url: str) -> dict[str, dict]:
    with psycopg.connect(url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cursor:
        rows = cursor.execute("select * from yss.yss_feed").fetchall()
    return {row["ledger_upn"]: row for row in rows}


def _failed(result) -> list[str]:
    return [
        f"{item.node.name}: {item.status}" for item in (result.result or []) if str(item.status) in {"error", "fail"}
    ]


def test_dbt_build__yss_feed_is_the_cohort_and_restricted_rows_carry_identity_only(census_db, tmp_path):
    result = _dbt(tmp_path, "build")
    assert result.success, f"dbt build failed: {_failed(result) or result.exception}"
    kinds = {item.node.resource_type for item in result.result}
    assert {"model", "test", "unit_test"} <= {str(kind) for kind in kinds}

    feed = _feed(census_db)
    assert set(feed) == EXPECTED_FULL | EXPECTED_RESTRICTED
    first_row = next(iter(feed.values()))
    assert tuple(first_row) == YSS.mart_columns, "the mart's columns are the policy's, in order"

    for upn in EXPECTED_RESTRICTED:
        row = feed[upn]
        assert all(row[field] is None for field in YSS.further_fields), row
        assert row["forename"] and row["surname"] and row["date_of_birth"], row
    for upn in EXPECTED_FULL:
        row = feed[upn]
        assert row["upn"] == upn and row["school_urn"] and row["nc_year"] and row["sex"], row

    assert feed["T000000000001"]["date_of_birth"] == dt.date(2013, 11, 29)
    assert feed["T000000000001"]["address_line_1"] == "14 High Street"
    assert feed["T000000000001"]["postcode"] == "ZZ1 1AA"
    assert feed["T000000000003"]["address_line_1"] == "Flat 2, 7 Mill Lane", "identity kept for the restricted"
    assert feed["T000000000004"]["address_line_1"] == "Rose Cottage, Church Road"
    assert feed["T000000000004"]["town"] == "Testham", "town when there is no post town"
    dual = feed["T000000000006"]
    assert (dual["school_urn"], dual["school_laestab"], dual["address_line_1"]) == (121001, "9264001", "3 Dual Way")
    assert feed["T000000000011"]["ledger_upn"] == "T000000000011", "UPNs are upper-cased"


def test_dbt_build__yss_feed_agrees_with_the_gate_truth(census_db, tmp_path):
    """The gate's truth (worked out from raw in Python, not by dbt) expects the same pupils and restrictions."""
    assert _dbt(tmp_path, "build").success
    with psycopg.connect(census_db) as conn:
        truth = load_yss_truth(conn, FEED_DATE)
    cohort = truth[truth["is_in_cohort"]]
    feed = _feed(census_db)
    assert set(cohort["upn"]) == set(feed)
    assert set(cohort.loc[cohort["is_restricted"], "upn"]) == EXPECTED_RESTRICTED


def test_dbt_test__restricted_rows_test_fails_on_a_planted_leak(census_db, tmp_path):
    """The generic test `restricted_rows_carry_identity_only` can fail: plant a value in a restricted row."""
    assert _dbt(tmp_path, "build").success
    with psycopg.connect(census_db) as conn:
        updated = conn.execute("update yss.yss_feed set sex = 'F' where ledger_upn = %s", ("T000000000003",)).rowcount
    assert updated == 1
    # every instance of the test (nccis_feed has one of its own); the yss_feed one must fail on the planted row. An
    # intersection "yss_feed,test_name:..." selects nothing when DBT_INDIRECT_SELECTION=cautious is in the
    # environment (the DAG tests of the same session leave it there), so the instance is picked from the results.
    result = _dbt(tmp_path, "test", "--select", "test_name:restricted_rows_carry_identity_only")
    assert not result.success
    yss = [item for item in result.result if item.node.attached_node == "model.pupilshare.yss_feed"]
    assert [str(item.status) for item in yss] == ["fail"]
    assert yss[0].failures == 1
