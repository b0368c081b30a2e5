"""Truth for the publish gates, worked out from the raw returns independently of the dbt models.

The gate compares what a mart is about to deliver with who *should* be in it. If the truth were read from the same
dbt models, a bug in a model would agree with itself; so this module reads the raw rows exactly as the schools sent
them, and parses dates, computes ages and applies the opt-out rule in Python.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd
import psycopg

from pupilshare.dates import age_in_years, parse_census_date
from pupilshare.optouts import CensusRefusal, OptOutRequest, Persistence, resolve_opt_outs
from pupilshare.policy import load_policy

log = logging.getLogger(__name__)

#: Columns of every truth frame, in order.
TRUTH_COLUMNS = ("upn", "date_of_birth", "age_on_feed_date", "is_in_cohort", "is_restricted", "restriction_reason")

_CURRENT_CENSUS_SQL = """
select max(load_batch_id)
from raw.load_batches
where return_type = 'census'
    and status = 'loaded'
"""
_PUPILS_SQL = """
select upn, dob, yssa, _row_number
from raw.census_pupilonroll
where _load_batch_id = %s
order by _row_number
"""
_REFERENCE_DATE_SQL = "select reference_date from raw.load_batches where load_batch_id = %s"
_REQUESTS_SQL = """
select _load_batch_id, _row_number, _rejected, upn, scope, action, requested_by, requested_on
from raw.optout_requests
"""
#: The census item ``yssa`` (Youth Support Services agreement) value that restricts like an opt-out.
_YSSA_RESTRICTS = "no"


class NoCurrentCensusError(LookupError):
    """No census batch is loaded, so there is no truth to gate a feed against; nothing may be published."""


@dataclass(frozen=True)
class RawPupilRow:
    """One row of ``raw.census_pupilonroll`` as the school sent it (all text)."""

    upn: str | None
    dob: str | None
    yssa: str | None
    row_number: int


def load_yss_truth(
    conn: psycopg.Connection, feed_date: dt.date, *, persistence: Persistence = "persist"
) -> pd.DataFrame:
    """Who should be in the Youth Support Services feed on ``feed_date``, from the current census in ``raw``.

    Grain: one row per UPN on roll in the current census batch (the highest ``load_batch_id`` of a census batch
    with status ``loaded``). Columns: see :func:`build_yss_truth`.

    Raises NoCurrentCensusError when no census is loaded.
    """
    load_batch_id = conn.execute(_CURRENT_CENSUS_SQL).fetchone()[0]
    if load_batch_id is None:
        raise NoCurrentCensusError(
            "raw.load_batches has no census batch with status 'loaded': load a census before publishing"
        )
    rows = [
        RawPupilRow(upn=upn, dob=dob, yssa=yssa, row_number=row_number)
        for upn, dob, yssa, row_number in conn.execute(_PUPILS_SQL, (load_batch_id,))
    ]
    min_age_years = load_policy().recipient("yss").cohort.min_age_years
    if min_age_years is None:
        raise ValueError("the yss policy has no cohort.min_age_years; the truth cannot say who is in the cohort")
    truth = build_yss_truth(rows, feed_date=feed_date, min_age_years=min_age_years, load_batch_id=load_batch_id)
    reference_date = conn.execute(_REFERENCE_DATE_SQL, (load_batch_id,)).fetchone()[0]
    return apply_opt_out_requests(
        truth,
        rows,
        _read_requests(conn),
        feed_date=feed_date,
        reference_date=reference_date,
        load_batch_id=load_batch_id,
        persistence=persistence,
    )


def apply_opt_out_requests(
    truth: pd.DataFrame,
    rows: list[RawPupilRow],
    requests: list[OptOutRequest],
    *,
    feed_date: dt.date,
    reference_date: dt.date | None,
    load_batch_id: int,
    persistence: Persistence,
) -> pd.DataFrame:
    """Replace the census-only restriction with the full opt-out rules (requests, withdrawals, census yssa)."""
    dobs = dict(zip(truth["upn"], truth["date_of_birth"], strict=True))
    refusals: dict[str, CensusRefusal] = {}
    if reference_date is not None:
        for row in rows:
            upn = (row.upn or "").strip().upper()
            if upn and (row.yssa or "").strip().lower() == _YSSA_RESTRICTS and upn not in refusals:
                refusals[upn] = CensusRefusal(upn, reference_date, load_batch_id, row.row_number)
    states = resolve_opt_outs(
        requests, refusals.values(), dates_of_birth=dobs, feed_date=feed_date, persistence=persistence
    )
    truth = truth.copy()
    truth["is_restricted"] = [states[(upn, "yss")].is_opted_out for upn in truth["upn"]]
    reasons = [states[(upn, "yss")].cause if states[(upn, "yss")].is_opted_out else None for upn in truth["upn"]]
    truth["restriction_reason"] = pd.Series(reasons, index=truth.index, dtype="object")
    return truth


def _read_requests(conn: psycopg.Connection) -> list[OptOutRequest]:
    """Every opt-out request line in raw (none when no opt-out return was ever loaded)."""
    if not conn.execute("select to_regclass('raw.optout_requests') is not null").fetchone()[0]:
        return []
    requests = []
    for batch, row_number, rejected, upn, scope, action, by, requested_on in conn.execute(_REQUESTS_SQL):
        requests.append(
            OptOutRequest(
                request_id=f"{batch}-{row_number}",
                upn=(upn or "").strip().upper(),
                scope=(scope or "").strip().lower(),
                action=(action or "").strip().lower(),
                requested_by=(by or "").strip().lower(),
                requested_on=_iso_date(requested_on),
                load_batch_id=batch,
                row_number=row_number,
                rejected_at_load=bool(rejected),
            )
        )
    return requests


def _iso_date(text: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat((text or "").strip())
    except ValueError:
        return None


def build_yss_truth(
    rows: Iterable[RawPupilRow], *, feed_date: dt.date, min_age_years: int, load_batch_id: int
) -> pd.DataFrame:
    """Fold raw pupil rows of one census batch into the truth: one row per UPN.

    - ``upn``: trimmed and upper-cased; rows with a blank UPN cannot be keyed and are left out.
    - ``date_of_birth`` (date or None), ``age_on_feed_date`` (Int64, completed years, null when the date of birth is
      blank, unreadable or after the feed date). A pupil on roll at two schools (dual registration) has two rows;
      if their dates of birth differ the later one wins, so a pupil joins the cohort only when every record agrees.
    - ``is_in_cohort``: age on the feed date is at least ``min_age_years`` (false when the age is unknown).
    - ``is_restricted``: any of the pupil's rows has ``yssa`` = ``No`` (case and spaces ignored: when unsure,
      restrict); ``restriction_reason`` says which census row caused it, else None.
    """
    by_upn: dict[str, list[RawPupilRow]] = defaultdict(list)
    blank_upns = 0
    for row in rows:
        upn = (row.upn or "").strip().upper()
        if upn:
            by_upn[upn].append(row)
        else:
            blank_upns += 1
    if blank_upns:
        log.warning("census batch %s: %s pupil rows have no UPN and are not in the truth", load_batch_id, blank_upns)
    records = [_truth_record(upn, found, feed_date, min_age_years, load_batch_id) for upn, found in by_upn.items()]
    columns = list(zip(*records, strict=True)) if records else [()] * len(TRUTH_COLUMNS)
    dtypes = ("str", "object", "Int64", "bool", "bool", "object")  # object keeps None as None, not NaN
    return pd.DataFrame(
        {
            name: pd.Series(list(values), dtype=dtype)
            for name, values, dtype in zip(TRUTH_COLUMNS, columns, dtypes, strict=True)
        }
    )


def _truth_record(
    upn: str, rows: list[RawPupilRow], feed_date: dt.date, min_age_years: int, load_batch_id: int
) -> tuple:
    dobs = [dob for dob in (_read_dob(row, load_batch_id) for row in rows) if dob is not None]
    dob = max(dobs, default=None)
    age = age_in_years(dob, feed_date) if dob is not None and dob <= feed_date else None
    reasons = [
        f"census item yssa = 'No' (load batch {load_batch_id}, pupilonroll row {row.row_number})"
        for row in rows
        if (row.yssa or "").strip().lower() == _YSSA_RESTRICTS
    ]
    return (
        upn,
        dob,
        age,
        age is not None and age >= min_age_years,
        bool(reasons),
        "; ".join(reasons) if reasons else None,
    )


def _read_dob(row: RawPupilRow, load_batch_id: int) -> dt.date | None:
    """The row's date of birth, or None when blank or unreadable (logged by row number, never by value)."""
    if not row.dob or not row.dob.strip():
        return None
    try:
        return parse_census_date(row.dob)
    except ValueError:
        log.warning(
            "census batch %s, pupilonroll row %s: dob is not a date; age unknown", load_batch_id, row.row_number
        )
        return None
