"""Truth for the NCCIS gate: who should be in the DfE feed, with what activity, from the raw returns.

Independent of the dbt models (``int_nccis_activities_unioned``, ``nccis_feed``): the current roll, the raw census
``yssa`` items and opt-out requests (the YSS restriction, :func:`pupilshare.gates.truth.yss_restrictions`), the raw
post-16 status rows and the raw activity updates are read and ruled on in Python. The two activity mappings are read
from the seed files themselves (the LA's configuration), not from the built seed tables.

Grain of the truth: one row per UPN on the current roll. For each young person it says whether they are in the
cohort (academic age 16 or 17, or Year 11), whether the YSS restriction applies, and exactly what the feed's
activity code, activity date and September Guarantee flag must be, restriction applied.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import psycopg

from pupilshare import PROJECT_ROOT
from pupilshare.gates.truth import yss_restrictions
from pupilshare.gates.truths.post16 import StatusChange, latest_status_changes, read_status_changes
from pupilshare.gates.truths.roll import RollPupil, age_on, read_current_roll, table_exists
from pupilshare.ingest.post16 import academic_age
from pupilshare.optouts import Persistence
from pupilshare.policy import RecipientPolicy, load_policy

SEEDS_DIR = PROJECT_ROOT / "dbt_project" / "seeds"
#: The code of a young person whose activity nobody has reported (NCCIS 810-830 not known).
NOT_KNOWN_CODE = "810"
#: The activity-update source whose reports are YSS's own collection (still reported for a restricted young person).
YSS_SOURCE = "yss"
#: The post-16 status that is an enrolment with the provider.
ENROLLED = "enrolled"
#: Same-day precedence between sources, higher wins: an activity update, then an enrolment, then the school roll.
_RANK_UPDATE, _RANK_ENROLMENT, _RANK_ROLL = 2, 1, 0
_UPDATES_SQL = """
select upn, activity_code, activity_date, source, _load_batch_id, _row_number
from raw.activity_updates
where not _rejected
"""
TRUTH_COLUMNS = (
    "upn", "date_of_birth", "age_on_feed_date", "is_in_cohort", "is_restricted", "restriction_reason",
    "gate_academic_age", "gate_in_cohort", "gate_activity_code", "gate_activity_date", "gate_september_guarantee",
)  # fmt: skip


class ActivityMappingError(ValueError):
    """An NCCIS activity mapping seed cannot be used (a key listed twice, no default, a blank code)."""


@dataclass(frozen=True, order=True)
class ActivityEvent:
    """One dated activity of a young person; ordering is precedence (later date, then source rank, batch, row)."""

    activity_date: dt.date
    rank: int
    load_batch_id: int
    row_number: int
    activity_code: str
    is_yss_collected: bool


def load_nccis_truth(
    conn: psycopg.Connection,
    feed_date: dt.date,
    *,
    persistence: Persistence = "persist",
    keys: Collection[str] | None = None,
) -> pd.DataFrame:
    """Who should be in the NCCIS feed on ``feed_date``, and with what: one row per UPN on the current roll, or with
    ``keys`` (the UPNs the feed names) per young person in the cohort or named by the feed."""
    in_cohort = cohort_rule(load_policy().recipient("nccis"), feed_date)
    roll = read_current_roll(conn, None if keys is None else (lambda pupil: in_cohort(pupil) or pupil.upn in keys))
    restricted = yss_restrictions(conn, feed_date, roll.keys(), persistence=persistence)
    updates = _read_updates(conn) if table_exists(conn, "raw.activity_updates") else []
    return build_nccis_truth(
        roll,
        restricted,
        read_status_changes(conn),
        updates,
        school_roll_codes=read_code_map(SEEDS_DIR / "nccis_school_roll_activity_codes.csv", "nc_year_code"),
        enrolment_codes=read_code_map(SEEDS_DIR / "nccis_enrolment_activity_codes.csv", "provider_ukprn"),
        feed_date=feed_date,
    )


def read_code_map(path: Path, key_column: str) -> dict[str, str]:
    """``{key: activity code}`` from a mapping seed; a blank key is the default (``""``). A key listed twice or a
    blank code is an error: the mapping would be ambiguous."""
    codes: dict[str, str] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            key, code = (row[key_column] or "").strip().upper(), (row["activity_code"] or "").strip()
            if key in codes or not code:
                raise ActivityMappingError(f"{path}, line {line}: {key_column} {key!r} listed twice or no code")
            codes[key] = code
    return codes


def build_nccis_truth(
    roll: Mapping[str, RollPupil],
    restricted: Mapping[str, str | None],
    changes: Iterable[StatusChange],
    updates: Iterable[tuple[str, ActivityEvent]],
    *,
    school_roll_codes: Mapping[str, str],
    enrolment_codes: Mapping[str, str],
    feed_date: dt.date,
) -> pd.DataFrame:
    """The truth frame (see pupilshare.gates.feed). ``restricted``: UPN -> reason for each restricted young person.

    ``gate_activity_code``/``gate_activity_date``: the latest event on or before the feed date (restricted: YSS
    updates only), else 810 and no date. ``gate_september_guarantee``: Year 11 and not restricted: holds an offer.
    """
    recipient = load_policy().recipient("nccis")
    latest = latest_status_changes(changes, feed_date=feed_date)
    events = _events_by_upn(roll, latest, updates, school_roll_codes, enrolment_codes, feed_date)
    offers = {upn for (upn, _), change in latest.items() if change.status in recipient.cohort.offer_statuses}
    is_in_cohort = cohort_rule(recipient, feed_date)
    records = []
    for upn, pupil in sorted(roll.items()):
        is_restricted = upn in restricted
        academic = _academic_age(pupil, feed_date)
        in_cohort = is_in_cohort(pupil)
        allowed = [event for event in events.get(upn, ()) if event.is_yss_collected or not is_restricted]
        current = max(allowed, default=None)
        guarantee_year = pupil.nc_year in recipient.cohort.nc_years
        records.append(
            {
                "upn": upn,
                "date_of_birth": pupil.date_of_birth,
                "age_on_feed_date": age_on(pupil, feed_date),
                "is_in_cohort": in_cohort,
                "is_restricted": is_restricted,
                "restriction_reason": restricted.get(upn),
                "gate_academic_age": academic,
                "gate_in_cohort": in_cohort,
                "gate_activity_code": current.activity_code if current else NOT_KNOWN_CODE,
                "gate_activity_date": current.activity_date if current else None,
                "gate_september_guarantee": (upn in offers) if guarantee_year and not is_restricted else None,
            }
        )
    frame = pd.DataFrame.from_records(records, columns=list(TRUTH_COLUMNS))
    for column in ("age_on_feed_date", "gate_academic_age"):
        frame[column] = frame[column].astype("Int64")
    return frame


def cohort_rule(recipient: RecipientPolicy, feed_date: dt.date) -> Callable[[RollPupil], bool]:
    """Whether a young person on the roll is in the NCCIS cohort on ``feed_date``: an academic age of the policy's,
    or an NC year of the policy's (Year 11)."""
    ages, years = frozenset(recipient.cohort.academic_ages), frozenset(recipient.cohort.nc_years)
    return lambda pupil: _academic_age(pupil, feed_date) in ages or pupil.nc_year in years


def _academic_age(pupil: RollPupil, feed_date: dt.date) -> int | None:
    return academic_age(pupil.date_of_birth, feed_date) if pupil.date_of_birth else None


def _events_by_upn(
    roll: Mapping[str, RollPupil],
    latest: Mapping[tuple[str, str], StatusChange],
    updates: Iterable[tuple[str, ActivityEvent]],
    school_roll_codes: Mapping[str, str],
    enrolment_codes: Mapping[str, str],
    feed_date: dt.date,
) -> dict[str, list[ActivityEvent]]:
    """Every known event per UPN on the roll, dated on or before the feed date."""
    found: dict[str, list[ActivityEvent]] = {}

    def add(upn: str, event: ActivityEvent) -> None:
        if upn in roll and event.activity_date <= feed_date:
            found.setdefault(upn, []).append(event)

    for upn, pupil in roll.items():
        code = school_roll_codes.get(pupil.nc_year)
        if code and pupil.reference_date is not None:
            event = ActivityEvent(pupil.reference_date, _RANK_ROLL, pupil.load_batch_id, pupil.row_number, code, False)
            add(upn, event)
    for (upn, ukprn), change in latest.items():
        if change.status == ENROLLED:
            code = enrolment_codes.get(ukprn) or enrolment_codes.get("")
            if code is None:
                raise ActivityMappingError("nccis_enrolment_activity_codes has no default row (blank provider_ukprn)")
            event = ActivityEvent(
                change.status_date, _RANK_ENROLMENT, change.load_batch_id, change.row_number, code, False
            )
            add(upn, event)
    for upn, event in updates:
        add(upn, event)
    return found


def _read_updates(conn: psycopg.Connection) -> list[tuple[str, ActivityEvent]]:
    """Raw activity updates with a UPN and a readable date, as (UPN, event); ULN-only updates cannot be tied to a
    pupil on the roll and are left out."""
    updates = []
    for upn, code, on_date, source, batch, row in conn.execute(_UPDATES_SQL):
        key = (upn or "").strip().upper()
        day = _iso(on_date)
        if not key or day is None:
            continue
        is_yss = (source or "").strip().lower() == YSS_SOURCE
        updates.append((key, ActivityEvent(day, _RANK_UPDATE, batch, row, (code or "").strip(), is_yss)))
    return updates


def _iso(text: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat((text or "").strip())
    except ValueError:
        return None
