"""The current roll read straight from ``raw`` for the routed recipients' truths (post16, sure_start).

Independent of the dbt models on purpose: plain SQL over the raw text tables, then parsing, choosing and ruling in
Python. Grain of :func:`read_current_roll`: one :class:`RollPupil` per UPN on the current roll.

A county holds a million pupils, so the roll is streamed (:func:`rows_by_upn`: a server-side cursor ordered by UPN,
one pupil's rows in memory at a time) and a gate keeps only the pupils its check needs: the recipient's cohort plus
the UPNs its feed names (``keep``). Who is in the cohort is still decided here, in Python, for every pupil.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import psycopg

from pupilshare.dates import age_in_years, parse_census_date
from pupilshare.gates.by_upn import UPN_KEY_SQL, rows_by_upn
from pupilshare.gates.truth import NoCurrentCensusError, _read_requests
from pupilshare.optouts import SCOPES, OptOutState, Persistence, resolve_opt_outs

log = logging.getLogger(__name__)

#: Each school's most recent census return (latest reference date, then the later batch) is its current roll; rows
#: a validation rule rejected are left out. The school row and the first address row of the same batch come along.
_ROLL_SQL = f"""
with latest_return_per_school as (
    select distinct on (laestab) load_batch_id, schoolcensus_table_id, reference_date
    from raw.current_census_returns
    order by laestab, reference_date desc nulls last, load_batch_id desc
),
addresses as (
    select 'addressesonroll' as table_name, _load_batch_id, _row_number, pupilonrolltableid, postcode
    from raw.census_addressesonroll
    union all
    select 'addresses' as table_name, _load_batch_id, _row_number, pupilonrolltableid, postcode
    from raw.census_addresses
),
first_addresses as (
    -- a pupil may have several addresses: the first in the file
    select distinct on (_load_batch_id, trim(pupilonrolltableid))
        _load_batch_id, trim(pupilonrolltableid) as pupil_table_id, postcode
    from addresses
    where not exists (
        select 1 from raw.census_rejected_rows as rejected
        where rejected.load_batch_id = addresses._load_batch_id
            and rejected.table_name = addresses.table_name
            and rejected.row_number = addresses._row_number
    )
    order by _load_batch_id, trim(pupilonrolltableid), _row_number
)
select
    pupils.upn, {UPN_KEY_SQL.format(column="pupils.upn")} as upn_key,
    pupils.dob, pupils.ncyearactual, pupils.enrolstatus, pupils._load_batch_id, pupils._row_number,
    latest.reference_date, schools.phase, schools.lowestncyeargroup, first_addresses.postcode
from raw.census_pupilonroll as pupils
inner join latest_return_per_school as latest
    on pupils._load_batch_id = latest.load_batch_id
    and trim(pupils.schoolcensustableid) = latest.schoolcensus_table_id
left join raw.census_school as schools
    on schools._load_batch_id = pupils._load_batch_id
    and trim(schools.schoolcensustableid) = trim(pupils.schoolcensustableid)
left join first_addresses
    on first_addresses._load_batch_id = pupils._load_batch_id
    and first_addresses.pupil_table_id = trim(pupils.pupilonrolltableid)
where not exists (
    select 1 from raw.census_rejected_rows as rejected
    where rejected.load_batch_id = pupils._load_batch_id
        and rejected.table_name = 'pupilonroll'
        and rejected.row_number = pupils._row_number
)
order by upn_key
"""


@dataclass(frozen=True)
class RollPupil:
    """One pupil on the current roll, from their main registration (C or M enrolment first)."""

    upn: str
    date_of_birth: dt.date | None
    nc_year: str
    school_phase: str
    school_lowest_nc_year: str
    postcode: str
    #: Reference date of the census return holding the main registration, and where the row came from.
    reference_date: dt.date | None = None
    load_batch_id: int = 0
    row_number: int = 0


def read_current_roll(
    conn: psycopg.Connection, keep: Callable[[RollPupil], bool] | None = None
) -> dict[str, RollPupil]:
    """Each UPN on the current roll and their main registration; raises NoCurrentCensusError when none is loaded.

    Every pupil is read; only those ``keep`` accepts (all when None) are held, so a gate holds its cohort and its
    feed's pupils, not the county.
    """
    if not conn.execute("select count(*) from raw.current_census_returns").fetchone()[0]:
        raise NoCurrentCensusError("raw.current_census_returns is empty: load a census before publishing")
    roll = {}
    for upn, rows in rows_by_upn(conn, _ROLL_SQL):
        if not upn:
            continue
        pupil = main_registration(upn, rows)
        if keep is None or keep(pupil):
            roll[upn] = pupil
    return roll


def main_registration(upn: str, rows: list[tuple]) -> RollPupil:
    """The pupil's main registration among their rows on the current roll: a C or M enrolment first, then the
    latest census reference date, then the later batch, then the earlier row."""

    def rank(row: tuple) -> tuple:
        _dob, _nc_year, status, batch, row_number, reference, *_ = row
        main = 1 if (status or "").strip().upper() in ("C", "M") else 2
        return (main, -(reference or dt.date.min).toordinal(), -batch, row_number)

    dob, nc_year, _status, batch, row, reference, phase, lowest, postcode = min(rows, key=rank)
    return RollPupil(
        upn=upn,
        date_of_birth=_date_or_none(dob),
        nc_year=_code(nc_year),
        school_phase=_code(phase),
        school_lowest_nc_year=_code(lowest),
        postcode=(postcode or "").strip(),
        reference_date=reference,
        load_batch_id=batch,
        row_number=row,
    )


def opt_out_states(
    conn: psycopg.Connection,
    roll: Mapping[str, RollPupil],
    feed_date: dt.date,
    persistence: Persistence,
    scopes: tuple[str, ...] = SCOPES,
) -> dict[tuple[str, str], OptOutState]:
    """Each pupil's effective opt-out per scope in ``scopes`` on ``feed_date`` (pupilshare.optouts, from raw
    requests)."""
    dobs = {upn: pupil.date_of_birth for upn, pupil in roll.items()}
    return resolve_opt_outs(
        _read_requests(conn), (), dates_of_birth=dobs, feed_date=feed_date, persistence=persistence, scopes=scopes
    )


def age_on(pupil: RollPupil, feed_date: dt.date) -> int | None:
    """Completed years on ``feed_date``; None when the date of birth is unknown or after the feed date."""
    if pupil.date_of_birth is None or pupil.date_of_birth > feed_date:
        return None
    return age_in_years(pupil.date_of_birth, feed_date)


def table_exists(conn: psycopg.Connection, name: str) -> bool:
    return bool(conn.execute("select to_regclass(%s) is not null", (name,)).fetchone()[0])


def _code(text: str | None) -> str:
    return (text or "").strip().upper()


def _date_or_none(text: str | None) -> dt.date | None:
    if not text or not text.strip():
        return None
    try:
        return parse_census_date(text)
    except ValueError:
        return None
