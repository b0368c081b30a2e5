"""Truth for the publish gates, worked out from the raw returns independently of the dbt models.

The gate compares what a mart is about to deliver with who *should* be in it. If the truth were read from the same
dbt models, a bug in a model would agree with itself; so this module reads the raw rows exactly as the schools sent
them, and parses dates, computes ages and applies the opt-out rule in Python.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass

import pandas as pd
import psycopg

from pupilshare.dates import age_in_years, parse_census_date
from pupilshare.gates.by_upn import UPN_KEY_SQL, rows_by_upn
from pupilshare.optouts import CensusRefusal, OptOutRequest, OptOutState, Persistence, resolve_opt_outs
from pupilshare.policy import load_policy

log = logging.getLogger(__name__)

#: Columns of every truth frame, in order.
TRUTH_COLUMNS = ("upn", "date_of_birth", "age_on_feed_date", "is_in_cohort", "is_restricted", "restriction_reason")

_CURRENT_RETURNS_SQL = "select count(*) from raw.current_census_returns"
#: Registrations on the current roll: each school's most recent census return (latest reference date, then the later
#: batch), without the rows a validation rule rejected. Read from raw, not from the dbt models.
_PUPILS_SQL = f"""
with latest_return_per_school as (
    select distinct on (laestab) load_batch_id, schoolcensus_table_id, reference_date
    from raw.current_census_returns
    order by laestab, reference_date desc nulls last, load_batch_id desc
)
select
    pupils.upn, {UPN_KEY_SQL.format(column="pupils.upn")} as upn_key,
    pupils.dob, pupils.yssa, pupils._row_number, pupils._load_batch_id, latest.reference_date
from raw.census_pupilonroll as pupils
inner join latest_return_per_school as latest
    on pupils._load_batch_id = latest.load_batch_id
    and pupils.schoolcensustableid = latest.schoolcensus_table_id
where not exists (
    select 1
    from raw.census_rejected_rows as rejected
    where rejected.load_batch_id = pupils._load_batch_id
        and rejected.table_name = 'pupilonroll'
        and rejected.row_number = pupils._row_number
)
order by upn_key, pupils._load_batch_id, pupils._row_number
"""
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
    load_batch_id: int | None = None
    reference_date: dt.date | None = None


def load_yss_truth(
    conn: psycopg.Connection,
    feed_date: dt.date,
    *,
    persistence: Persistence = "persist",
    keys: Collection[str] | None = None,
) -> pd.DataFrame:
    """Who should be in the Youth Support Services feed on ``feed_date``, from the current census in ``raw``.

    Grain: one row per UPN on the current roll (each school's most recent census return, rejected rows left out;
    see raw.current_census_returns). Columns: see :func:`build_yss_truth`. With ``keys`` (the UPNs the feed names)
    only the cohort and those pupils are kept: everything the gate compares, without holding a county's roll.

    Raises NoCurrentCensusError when no census is loaded.
    """
    if keys is None:
        return _load_yss_truth(conn, feed_date, persistence, keep=None)
    return _load_yss_truth(conn, feed_date, persistence, keep=lambda upn, in_cohort: in_cohort or upn in keys)


def yss_restrictions(
    conn: psycopg.Connection, feed_date: dt.date, upns: Collection[str], *, persistence: Persistence = "persist"
) -> dict[str, str | None]:
    """``{UPN: reason}`` for each of ``upns`` on the current roll whom the YSS restriction covers on ``feed_date``
    (an opt-out of scope yss, or the census item yssa = No), by the rules of :func:`load_yss_truth`."""
    truth = _load_yss_truth(conn, feed_date, persistence, keep=lambda upn, _in_cohort: upn in upns)
    restricted = truth[truth["is_restricted"]]
    return dict(zip(restricted["upn"], restricted["restriction_reason"], strict=True))


def _load_yss_truth(
    conn: psycopg.Connection,
    feed_date: dt.date,
    persistence: Persistence,
    keep: Callable[[str, bool], bool] | None,
) -> pd.DataFrame:
    """The YSS truth of the pupils ``keep(upn, in_cohort)`` accepts (all when None), streamed one pupil at a time."""
    if not conn.execute(_CURRENT_RETURNS_SQL).fetchone()[0]:
        raise NoCurrentCensusError("raw.current_census_returns is empty: load a census before publishing")
    min_age_years = load_policy().recipient("yss").cohort.min_age_years
    if min_age_years is None:
        raise ValueError("the yss policy has no cohort.min_age_years; the truth cannot say who is in the cohort")
    records, refusals, blank_upns = [], [], 0
    for upn, found in rows_by_upn(conn, _PUPILS_SQL):
        rows = [
            RawPupilRow(upn=upn, dob=dob, yssa=yssa, row_number=row, load_batch_id=batch, reference_date=reference)
            for dob, yssa, row, batch, reference in found
        ]
        if not upn:
            blank_upns += len(rows)
            continue
        record = _truth_record(upn, rows, feed_date, min_age_years, load_batch_id=0)
        if keep is None or keep(upn, record[3]):
            records.append(record)
            refusal = census_refusal(upn, rows)
            if refusal is not None:
                refusals.append(refusal)
    if blank_upns:
        log.warning("current census: %s pupil rows have no UPN and are not in the truth", blank_upns)
    truth = _truth_frame(records)
    states = resolve_opt_outs(
        _read_requests(conn),
        refusals,
        dates_of_birth=dict(zip(truth["upn"], truth["date_of_birth"], strict=True)),
        feed_date=feed_date,
        persistence=persistence,
        scopes=("yss",),
    )
    return _with_states(truth, states)


def census_refusal(upn: str, rows: Iterable[RawPupilRow]) -> CensusRefusal | None:
    """A pupil's census refusal: their most recent registration recording yssa = No (latest reference date, then
    the later batch, then the earlier row), dated at that census's reference date; None when no row says No."""
    ordered = sorted(
        (row for row in rows if row.reference_date is not None),
        key=lambda row: (-row.reference_date.toordinal(), -(row.load_batch_id or 0), row.row_number),
    )
    for row in ordered:
        if (row.yssa or "").strip().lower() == _YSSA_RESTRICTS:
            return CensusRefusal(upn, row.reference_date, row.load_batch_id or 0, row.row_number)
    return None


def _with_states(truth: pd.DataFrame, states: Mapping[tuple[str, str], OptOutState]) -> pd.DataFrame:
    """The truth with ``is_restricted`` and ``restriction_reason`` from the pupils' yss opt-out states."""
    truth = truth.copy()
    truth["is_restricted"] = pd.Series(
        [states[(upn, "yss")].is_opted_out for upn in truth["upn"]], index=truth.index, dtype=bool
    )
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
    return _truth_frame(
        [_truth_record(upn, found, feed_date, min_age_years, load_batch_id) for upn, found in by_upn.items()]
    )


def _truth_frame(records: list[tuple]) -> pd.DataFrame:
    """Truth records (one tuple per pupil, :data:`TRUTH_COLUMNS` in order) as the truth frame."""
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
        f"census item yssa = 'No' (load batch {row.load_batch_id or load_batch_id}, pupilonroll row {row.row_number})"
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
