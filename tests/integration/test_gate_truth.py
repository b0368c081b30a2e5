"""load_yss_truth reads only the current census batch from raw and works out ages and restriction itself.

Batches in the scratch database (feed date 2026-03-01)::

    id  return_type  status      pupils
    1   census       loaded      A (yssa No), Z           an older census: ignored
    2   census       loaded      A, B, C, D, E, E', F     the current census
    3   census       superseded  Y                        not loaded: ignored even with a higher id
    4   workforce    loaded      X                        not a census: ignored
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import psycopg
import pytest

from pupilshare.gates.by_upn import UPN_KEY_SQL, RollReadError, rows_by_upn
from pupilshare.gates.truth import TRUTH_COLUMNS, NoCurrentCensusError, load_yss_truth, yss_restrictions
from pupilshare.ingest.loaders import ensure_all_raw_tables

pytestmark = pytest.mark.integration

FEED_DATE = dt.date(2026, 3, 1)

BATCHES = [(1, "census", "loaded"), (2, "census", "loaded"), (3, "census", "superseded"), (4, "workforce", "loaded")]
# (batch, row, upn, dob, enrolstatus, yssa)
PUPILS = [
    (1, 1, "A926000000001", "2013-Mar-01 00:00:00", "C", "No"),
    (1, 2, "Z926000000099", "2010-Jan-01 00:00:00", "C", "Yes"),
    (2, 1, "A926000000001", "2013-Mar-01 00:00:00", "C", "Yes"),  # 13th birthday on the feed date
    (2, 2, "B926000000002", "2013-Mar-02 00:00:00", "C", "No"),  # 12: 13th birthday is tomorrow; restricted
    (2, 3, "C926000000003", "2012-Feb-29 00:00:00", "C", "UNS"),  # 14 from 1 March in a non-leap year
    (2, 4, "D926000000004", "2010-Mar-01 00:00:00", "C", "No"),  # 16 from 2026-03-01 inclusive; restricted
    (2, 5, "E926000000005", "2011-Jun-15 00:00:00", "M", "Yes"),  # dual registration: main ...
    (2, 6, "E926000000005", "2011-Jun-15 00:00:00", "S", "No"),  # ... and subsidiary says No
    (2, 7, "F926000000006", "", "C", "SNR"),  # no date of birth: age unknown
    (2, 8, "", "2011-Jun-15 00:00:00", "C", "Yes"),  # no UPN: cannot be keyed
    (3, 1, "Y926000000098", "2010-Jan-01 00:00:00", "C", "Yes"),
    (4, 1, "X926000000097", "2010-Jan-01 00:00:00", "C", "Yes"),
]


@pytest.fixture
def conn(scratch_db: str):
    """A connection to a fresh scratch database (dropped by the fixture) holding the raw tables."""
    with psycopg.connect(scratch_db) as connection:
        ensure_all_raw_tables(connection)
        yield connection


def _load(conn: psycopg.Connection, batches=BATCHES, pupils=PUPILS) -> None:
    with conn.cursor() as cursor:
        cursor.executemany(
            """insert into raw.load_batches (load_batch_id, return_type, status, source_name, content_sha256,
                   reference_date)
               overriding system value values (%s, %s, %s, 'test', md5(random()::text), '2025-10-02')""",
            batches,
        )
        cursor.executemany(
            """insert into raw.census_school_returns
                   (load_batch_id, schoolcensus_table_id, laestab, census_term, census_year, reference_date)
               values (%s, '1', '9261001', 'AUT', 2025, '2025-10-02')""",
            [(batch,) for batch, return_type, status in batches if return_type == "census" and status == "loaded"],
        )
        cursor.executemany(
            """insert into raw.census_pupilonroll
                   (_load_batch_id, _row_number, pupilonrolltableid, schoolcensustableid, upn, surname, forename,
                    dob, enrolstatus, yssa)
               values (%s, %s, %s, '1', %s, 'Surname', 'Forename', %s, %s, %s)""",
            [(batch, row, f"{batch}-{row}", upn, dob, enrol, yssa) for batch, row, upn, dob, enrol, yssa in pupils],
        )


def test_load_yss_truth__only_the_latest_loaded_census(conn):
    _load(conn)
    truth = load_yss_truth(conn, FEED_DATE)

    assert tuple(truth.columns) == TRUTH_COLUMNS
    assert sorted(truth["upn"]) == [
        "A926000000001",
        "B926000000002",
        "C926000000003",
        "D926000000004",
        "E926000000005",
        "F926000000006",
    ]
    assert truth["upn"].is_unique


def test_load_yss_truth__ages_cohort_and_restriction(conn):
    _load(conn)
    by_upn = load_yss_truth(conn, FEED_DATE).set_index("upn")

    ages = by_upn["age_on_feed_date"]
    assert ages.loc["A926000000001"] == 13
    assert ages.loc["B926000000002"] == 12
    assert ages.loc["C926000000003"] == 14
    assert ages.loc["D926000000004"] == 16
    assert ages.loc["E926000000005"] == 14
    assert ages.isna().loc["F926000000006"]
    assert by_upn.loc["C926000000003", "date_of_birth"] == dt.date(2012, 2, 29)
    assert set(by_upn.index[by_upn["is_in_cohort"]]) == {
        "A926000000001",
        "C926000000003",
        "D926000000004",
        "E926000000005",
    }
    restricted = by_upn.index[by_upn["is_restricted"]]
    assert set(restricted) == {"B926000000002", "D926000000004", "E926000000005"}, "A's 'No' was in an older census"
    assert by_upn.loc["E926000000005", "restriction_reason"] == "census yssa = No (load batch 2, pupilonroll row 6)"
    assert by_upn.loc["A926000000001", "restriction_reason"] is None


def test_load_yss_truth__ages_move_with_the_feed_date(conn):
    _load(conn)
    by_upn = load_yss_truth(conn, FEED_DATE - dt.timedelta(days=1)).set_index("upn")

    assert by_upn.loc["A926000000001", "age_on_feed_date"] == 12, "the day before the 13th birthday"
    assert by_upn.loc["C926000000003", "age_on_feed_date"] == 13, "born 29 Feb: still 13 on 28 Feb 2026"
    assert not by_upn.loc["A926000000001", "is_in_cohort"]


def test_load_yss_truth__no_loaded_census_is_an_error(conn):
    _load(conn, batches=[(3, "census", "superseded"), (4, "workforce", "loaded")], pupils=[])

    with pytest.raises(NoCurrentCensusError, match="current_census_returns is empty"):
        load_yss_truth(conn, FEED_DATE)


def test_load_yss_truth__opt_out_requests_and_withdrawals_apply(conn):
    """A parent's request for B (12) restricts; D's own withdrawal on their 16th birthday lifts the census No;
    a parent's request for A made on A's... (13, valid) and one rejected at load has no effect."""
    _load(conn)
    conn.execute(
        """insert into raw.load_batches (load_batch_id, return_type, status, source_name, content_sha256)
           overriding system value values (9, 'optouts', 'loaded', 'optouts.csv', 'x')"""
    )
    conn.execute(
        """insert into raw.optout_requests
               (_load_batch_id, _row_number, _rejected, upn, scope, action, requested_by, requested_on, channel)
           values (9, 1, false, 'C926000000003', 'all', 'opt_out', 'parent', '2026-01-05', 'letter'),
                  (9, 2, false, 'D926000000004', 'yss', 'withdraw', 'pupil', '2026-03-01', 'form'),
                  (9, 3, true, 'A926000000001', 'yss', 'opt_out', 'parent', '2026-01-05', 'letter')"""
    )
    truth = load_yss_truth(conn, FEED_DATE).set_index("upn")
    assert truth.loc["C926000000003", "is_restricted"]
    assert truth.loc["C926000000003", "restriction_reason"] == "opt-out request 9-1"
    assert not truth.loc["D926000000004", "is_restricted"]
    assert not truth.loc["A926000000001", "is_restricted"]


def test_load_yss_truth__with_keys_holds_the_cohort_and_the_named_pupils_as_the_whole_truth_has_them(conn):
    _load(conn)
    whole = load_yss_truth(conn, FEED_DATE)

    keyed = load_yss_truth(conn, FEED_DATE, keys={"B926000000002", "NOBODY"})

    expected = whole[whole["is_in_cohort"] | whole["upn"].eq("B926000000002")].reset_index(drop=True)
    assert set(expected["upn"]) == {"A926000000001", "B926000000002", "C926000000003", "D926000000004", "E926000000005"}
    pd.testing.assert_frame_equal(keyed.reset_index(drop=True), expected)


def test_yss_restrictions__reasons_for_the_asked_pupils_only(conn):
    _load(conn)

    restricted = yss_restrictions(conn, FEED_DATE, {"B926000000002", "C926000000003", "E926000000005"})

    assert set(restricted) == {"B926000000002", "E926000000005"}
    assert all(reason and "census" in reason for reason in restricted.values())


def test_rows_by_upn__one_group_per_pupil_however_the_school_cased_or_padded_the_upn(conn):
    query = f"""
        select upn, {UPN_KEY_SQL.format(column="upn")} as upn_key, row_number
        from (values ('a926000000001', 1), ('', 2), (' A926000000001\t', 3), ('B926000000002', 4),
                     (null, 5), ('\u3000a926000000001', 6)) as rows (upn, row_number)
        order by upn_key, row_number
    """

    groups = [(key, [row for (row,) in rows]) for key, rows in rows_by_upn(conn, query)]

    assert groups == [("", [2, 5]), ("A926000000001", [1, 3, 6]), ("B926000000002", [4])]


def test_rows_by_upn__a_upn_postgresql_and_python_key_differently_is_an_error_not_a_split_pupil(conn):
    query = f"select upn, {UPN_KEY_SQL.format(column='upn')} as upn_key from (values ('straße')) as rows (upn)"

    with pytest.raises(RollReadError, match="correct the UPN"):
        list(rows_by_upn(conn, query))
