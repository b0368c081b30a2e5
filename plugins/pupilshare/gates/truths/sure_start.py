"""Truth for the Sure Start Children's Centres' gate: who should be in which centre's set, from the raw returns.

Independent of the dbt models (``int_sure_start_pupils_routed``, ``sure_start_feed``): the current roll with each
pupil's school and home postcode, the raw EYFS profile rows and the raw opt-out requests are read and ruled on in
Python; the reach areas are read from the seed file itself (the LA's configuration), not from the built seed table.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import Callable, Collection, Mapping
from pathlib import Path

import pandas as pd
import psycopg

from pupilshare import PROJECT_ROOT
from pupilshare.gates.truths.roll import RollPupil, age_on, opt_out_states, read_current_roll, table_exists
from pupilshare.ingest.eyfs import GLD_GOALS
from pupilshare.optouts import OptOutState, Persistence
from pupilshare.policy import RecipientPolicy, load_policy

SEEDS_DIR = PROJECT_ROOT / "dbt_project" / "seeds"
_UK_POSTCODE = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]?[0-9][A-Z]{2}$")
_EYFS_SQL = f"""
select distinct on (upper(trim(upn))) upper(trim(upn)), {", ".join(GLD_GOALS)}
from raw.eyfs_results
where not _rejected and trim(coalesce(upn, '')) <> ''
order by upper(trim(upn)), _load_batch_id desc, _row_number desc
"""


class ReachAreaError(ValueError):
    """The reach-area lookup cannot route safely (an area listed twice, a malformed code)."""


def load_sure_start_truth(
    conn: psycopg.Connection,
    feed_date: dt.date,
    *,
    persistence: Persistence = "persist",
    keys: Collection[str] | None = None,
) -> pd.DataFrame:
    """Who should be in each children's centre's set on ``feed_date``: one row per UPN on the current roll, or with
    ``keys`` (the UPNs the feed names) per pupil in the cohort or named by the feed."""
    gld = _read_gld(conn) if table_exists(conn, "raw.eyfs_results") else {}
    in_cohort = cohort_rule(gld)
    roll = read_current_roll(conn, None if keys is None else (lambda pupil: in_cohort(pupil) or pupil.upn in keys))
    recipient = load_policy().recipient("sure_start")
    areas = read_reach_areas(SEEDS_DIR / f"{recipient.routing.lookup_seed}.csv")
    states = opt_out_states(conn, roll, feed_date, persistence, scopes=(_scope(recipient),))
    return build_sure_start_truth(roll, gld, areas, states, feed_date=feed_date)


def cohort_rule(gld: Mapping[str, bool]) -> Callable[[RollPupil], bool]:
    """Whether a pupil on the roll is in the Sure Start cohort: the policy's NC year (Reception) at a school of the
    policy's phases whose lowest year is in the policy's list, with EYFS results (``gld`` holds a result per UPN)."""
    cohort = load_policy().recipient("sure_start").cohort
    return lambda pupil: (
        pupil.nc_year in cohort.nc_years
        and pupil.school_phase in cohort.school_phases
        and pupil.school_lowest_nc_year in cohort.school_lowest_nc_years
        and pupil.upn in gld
    )


def _scope(recipient: RecipientPolicy) -> str:
    return recipient.opt_out.scope if recipient.opt_out else "sure_start"


def read_reach_areas(path: Path) -> dict[str, str]:
    """``{reach area code: centre id}`` from the seed CSV; an area listed twice is an error (routing ambiguous)."""
    areas: dict[str, str] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            code = " ".join((row["reach_area_code"] or "").upper().split())
            if not code or code in areas:
                raise ReachAreaError(f"{path}, line {line}: reach area {code!r} is blank or listed twice")
            areas[code] = row["children_centre_id"].strip()
    return areas


def route_postcode(postcode: str, areas: Mapping[str, str]) -> str | None:
    """The centre whose reach area covers ``postcode``: its sector (``NR1 3``) first, else its district (``NR1``)."""
    compact = "".join(postcode.upper().split())
    if not _UK_POSTCODE.match(compact):
        return None
    outward, inward = compact[:-3], compact[-3:]
    return areas.get(f"{outward} {inward[0]}") or areas.get(outward)


def build_sure_start_truth(
    roll: Mapping[str, RollPupil],
    gld: Mapping[str, bool],
    areas: Mapping[str, str],
    opt_outs: Mapping[tuple[str, str], OptOutState],
    *,
    feed_date: dt.date,
) -> pd.DataFrame:
    """The truth frame (see pupilshare.gates.feed): ``is_in_cohort`` = the policy's NC year (Reception) at a school of
    the policy's phases whose lowest year is in the policy's list, with EYFS results; ``is_restricted`` = opted out of
    sure_start (effect exclude); ``routes`` = the one centre covering the postcode, or none; ``gate_in_cohort`` and
    ``gate_gld`` (GLD from the raw outcomes) become the frame's ``truth_in_cohort`` and ``truth_gld``."""
    scope = _scope(load_policy().recipient("sure_start"))
    is_in_cohort = cohort_rule(gld)
    records = []
    for upn, pupil in sorted(roll.items()):
        in_cohort = is_in_cohort(pupil)
        centre = route_postcode(pupil.postcode, areas)
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
                "routes": (centre,) if centre else (),
                "gate_in_cohort": in_cohort,
                "gate_gld": gld.get(upn),
            }
        )
    columns = [
        "upn", "date_of_birth", "age_on_feed_date", "is_in_cohort", "is_restricted", "restriction_reason", "routes",
        "gate_in_cohort", "gate_gld",
    ]  # fmt: skip
    frame = pd.DataFrame.from_records(records, columns=columns)
    frame["age_on_feed_date"] = frame["age_on_feed_date"].astype("Int64")
    return frame


def _read_gld(conn: psycopg.Connection) -> dict[str, bool]:
    """GLD per UPN from the latest raw EYFS row: expected (2) in all 12 GLD goals."""
    return {upn: all((value or "").strip() == "2" for value in outcomes) for upn, *outcomes in conn.execute(_EYFS_SQL)}
