"""Truth for the post-16 providers' gate: who should be in which provider's set, from the raw returns.

Independent of the dbt models (``int_post16_applications_resolved``, ``post16_feed``): the current roll, the raw
post-16 status rows and the raw opt-out requests are read and ruled on in Python, with the policy's cohort values.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass

import pandas as pd
import psycopg

from pupilshare.gates.truths.roll import RollPupil, age_on, opt_out_states, read_current_roll, table_exists
from pupilshare.optouts import OptOutState, Persistence
from pupilshare.policy import load_policy

_STATUS_SQL = """
select upn, ukprn, status, status_date, _load_batch_id, _row_number
from raw.post16_applications
where not _rejected
"""


@dataclass(frozen=True)
class StatusChange:
    """One raw post-16 status row (upn, provider, status, date) and where it came from."""

    upn: str
    ukprn: str
    status: str
    status_date: dt.date | None
    load_batch_id: int
    row_number: int


def load_post16_truth(
    conn: psycopg.Connection,
    feed_date: dt.date,
    *,
    persistence: Persistence = "persist",
    keys: Collection[str] | None = None,
) -> pd.DataFrame:
    """Who should be in each post-16 provider's set on ``feed_date``: one row per UPN on the current roll, or with
    ``keys`` (the UPNs the feed names) per pupil in the cohort or named by the feed."""
    in_cohort = cohort_rule()
    keep = None if keys is None else (lambda pupil: in_cohort(pupil) or pupil.upn in keys)
    roll = read_current_roll(conn, keep)
    changes = _read_status_changes(conn) if table_exists(conn, "raw.post16_applications") else []
    states = opt_out_states(conn, roll, feed_date, persistence, scopes=(_scope(),))
    return build_post16_truth(roll, changes, states, feed_date=feed_date)


def cohort_rule() -> Callable[[RollPupil], bool]:
    """Whether a pupil on the roll is in the post-16 cohort: their NC year is one of the policy's cohort years."""
    cohort_years = frozenset(load_policy().recipient("post16").cohort.nc_years)
    return lambda pupil: pupil.nc_year in cohort_years


def _scope() -> str:
    recipient = load_policy().recipient("post16")
    return recipient.opt_out.scope if recipient.opt_out else "post16"


def latest_status_changes(
    changes: Iterable[StatusChange], *, feed_date: dt.date
) -> dict[tuple[str, str], StatusChange]:
    """Each (UPN, UKPRN)'s latest status change dated on or before the feed date: latest date, then the later batch,
    then the later row. Changes without a date, a UPN or a provider are left out."""
    latest: dict[tuple[str, str], StatusChange] = {}
    for change in changes:
        if change.status_date is None or change.status_date > feed_date or not change.upn or not change.ukprn:
            continue
        key = (change.upn, change.ukprn)
        rank = (change.status_date, change.load_batch_id, change.row_number)
        held = latest.get(key)
        if held is None or rank > (held.status_date, held.load_batch_id, held.row_number):
            latest[key] = change
    return latest


def read_status_changes(conn: psycopg.Connection) -> list[StatusChange]:
    """Every raw post-16 status row not rejected at load (none when no post-16 return was ever loaded)."""
    return _read_status_changes(conn) if table_exists(conn, "raw.post16_applications") else []


def provider_sets(
    changes: Iterable[StatusChange], *, feed_date: dt.date, statuses: Iterable[str]
) -> dict[str, tuple[str, ...]]:
    """For each UPN, the providers whose set they are in: the latest change per provider dated on or before the
    feed date (latest date, then later batch, then later row) has one of ``statuses``."""
    latest = latest_status_changes(changes, feed_date=feed_date)
    live = set(statuses)
    routes: dict[str, list[str]] = {}
    for (upn, ukprn), change in latest.items():
        if change.status in live:
            routes.setdefault(upn, []).append(ukprn)
    return {upn: tuple(sorted(ukprns)) for upn, ukprns in routes.items()}


def build_post16_truth(
    roll: Mapping[str, RollPupil],
    changes: Iterable[StatusChange],
    opt_outs: Mapping[tuple[str, str], OptOutState],
    *,
    feed_date: dt.date,
) -> pd.DataFrame:
    """The truth frame (see pupilshare.gates.feed): ``is_in_cohort`` = NC year in the policy's cohort years,
    ``is_restricted`` = opted out of post16 (effect exclude: the pupil must be in no set), ``routes`` = the
    providers' UKPRNs whose set the pupil is in, ``gate_in_cohort`` (the frame's ``truth_in_cohort``)."""
    recipient = load_policy().recipient("post16")
    is_in_cohort = cohort_rule()
    scope = _scope()
    sets = provider_sets(changes, feed_date=feed_date, statuses=recipient.cohort.application_statuses)
    records = []
    for upn, pupil in sorted(roll.items()):
        in_cohort = is_in_cohort(pupil)
        state = opt_outs.get((upn, scope))
        opted_out = bool(state and state.is_opted_out)
        records.append(
            {
                "upn": upn,
                "date_of_birth": pupil.date_of_birth,
                "age_on_feed_date": age_on(pupil, feed_date),
                "is_in_cohort": in_cohort,
                "is_restricted": opted_out,
                "restriction_reason": state.cause if opted_out and state else None,
                "routes": sets.get(upn, ()),
                "gate_in_cohort": in_cohort,
            }
        )
    return _frame(records)


def _frame(records: list[dict]) -> pd.DataFrame:
    columns = [
        "upn", "date_of_birth", "age_on_feed_date", "is_in_cohort", "is_restricted", "restriction_reason", "routes",
        "gate_in_cohort",
    ]  # fmt: skip
    frame = pd.DataFrame.from_records(records, columns=columns)
    frame["age_on_feed_date"] = frame["age_on_feed_date"].astype("Int64")
    return frame


def _read_status_changes(conn: psycopg.Connection) -> list[StatusChange]:
    changes = []
    for upn, ukprn, status, status_date, batch, row in conn.execute(_STATUS_SQL):
        changes.append(
            StatusChange(
                upn=(upn or "").strip().upper(),
                ukprn=(ukprn or "").strip(),
                status=(status or "").strip().lower(),
                status_date=_iso(status_date),
                load_batch_id=batch,
                row_number=row,
            )
        )
    return changes


def _iso(text: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat((text or "").strip())
    except ValueError:
        return None
