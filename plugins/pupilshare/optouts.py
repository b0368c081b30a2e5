"""Opt-out rules in plain Python: who may ask, which request wins, and whether an opt-out is in force.

This is the independent statement of the rules that the publish gates check the dbt marts against
(``dbt_project/models/intermediate/opt_outs/``). The two are written separately on purpose: a bug in one is caught
by the other. SHARING_RULES.md, "Who may opt out, and for what":

- until the 16th birthday only a parent may make or withdraw a request; from it only the pupil may;
- the latest valid request per pupil and scope wins (latest date; on one date an explicit request over the census
  item; then the later load batch; then the later row); scope ``all`` counts for every scope;
- the census item ``yssa`` = No is an opt-out of scope ``yss`` dated at the census reference date;
- with ``persist`` (default) a parent's opt-out stays in force after 16 until the pupil decides; with ``lapse`` it
  stops at the 16th birthday.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from pupilshare.dates import age_in_years

SCOPES = ("yss", "post16", "sure_start")
PUPIL_DECIDES_FROM_AGE = 16
Persistence = Literal["persist", "lapse"]


@dataclass(frozen=True)
class OptOutRequest:
    """One request line as received (codes already lower-cased)."""

    request_id: str
    upn: str
    scope: str
    action: str
    requested_by: str
    requested_on: dt.date | None
    load_batch_id: int
    row_number: int
    rejected_at_load: bool = False


@dataclass(frozen=True)
class CensusRefusal:
    """The census item yssa = No for a pupil: an opt-out of scope yss at the census reference date."""

    upn: str
    reference_date: dt.date
    load_batch_id: int
    row_number: int


@dataclass(frozen=True)
class OptOutState:
    """The effective state of one pupil for one scope, and its cause."""

    upn: str
    scope: str
    is_opted_out: bool
    cause: str | None
    requested_by: str | None


@dataclass(frozen=True)
class _Event:
    scope: str
    action: str
    requested_by: str
    requested_on: dt.date
    same_day_rank: int
    load_batch_id: int
    row_number: int
    cause: str


def rejection_reason(request: OptOutRequest, date_of_birth: dt.date | None, feed_date: dt.date) -> str | None:
    """Why a request has no effect, or None when it is valid."""
    if request.rejected_at_load:
        return "rejected at load"
    if date_of_birth is None:
        return "pupil not on roll"
    if request.requested_on is None:
        return "no valid request date"
    if request.requested_on > feed_date:
        return "dated after the feed date"
    if request.requested_on < date_of_birth:
        return "dated before the pupil was born"
    if request.scope not in (*SCOPES, "all") or request.action not in ("opt_out", "withdraw"):
        return "unknown scope or action"
    allowed = "pupil" if age_in_years(date_of_birth, request.requested_on) >= PUPIL_DECIDES_FROM_AGE else "parent"
    if request.requested_by != allowed:
        return f"only the {allowed} may make or withdraw a request at that age"
    return None


def resolve_opt_outs(
    requests: Iterable[OptOutRequest],
    census_refusals: Iterable[CensusRefusal],
    *,
    dates_of_birth: Mapping[str, dt.date | None],
    feed_date: dt.date,
    persistence: Persistence = "persist",
    scopes: Iterable[str] = SCOPES,
) -> dict[tuple[str, str], OptOutState]:
    """The effective state of every pupil in ``dates_of_birth`` for every scope in ``scopes`` (default all) on
    ``feed_date``. A gate asks only for its own scope: a state per pupil per scope is the memory of a big roll."""
    wanted = tuple(scopes)
    unknown = [scope for scope in wanted if scope not in SCOPES]
    if unknown:
        raise ValueError(f"opt-out scopes {unknown} are not among {SCOPES}")
    events: dict[tuple[str, str], list[_Event]] = {}
    for request in requests:
        if rejection_reason(request, dates_of_birth.get(request.upn), feed_date) is not None:
            continue
        for scope in SCOPES if request.scope == "all" else (request.scope,):
            events.setdefault((request.upn, scope), []).append(_request_event(request, scope))
    for refusal in census_refusals:
        dob = dates_of_birth.get(refusal.upn)
        if dob is not None:
            events.setdefault((refusal.upn, "yss"), []).append(_census_event(refusal, dob))
    return {
        (upn, scope): _state(upn, scope, events.get((upn, scope), []), dob, feed_date, persistence)
        for upn, dob in dates_of_birth.items()
        for scope in wanted
    }


def _request_event(request: OptOutRequest, scope: str) -> _Event:
    return _Event(
        scope,
        request.action,
        request.requested_by,
        request.requested_on,  # type: ignore[arg-type]  # valid requests have a date
        1,
        request.load_batch_id,
        request.row_number,
        f"opt-out request {request.request_id}",
    )


def _census_event(refusal: CensusRefusal, dob: dt.date) -> _Event:
    by = "pupil" if age_in_years(dob, refusal.reference_date) >= PUPIL_DECIDES_FROM_AGE else "parent"
    return _Event(
        "yss",
        "opt_out",
        by,
        refusal.reference_date,
        0,
        refusal.load_batch_id,
        refusal.row_number,
        f"census yssa = No (load batch {refusal.load_batch_id}, pupilonroll row {refusal.row_number})",
    )


def _state(upn, scope, events: list[_Event], dob, feed_date, persistence: Persistence) -> OptOutState:
    if not events:
        return OptOutState(upn, scope, False, None, None)
    latest = max(events, key=lambda e: (e.requested_on, e.same_day_rank, e.load_batch_id, e.row_number))
    lapsed = (
        persistence == "lapse"
        and latest.requested_by == "parent"
        and dob is not None
        and age_in_years(dob, feed_date) >= PUPIL_DECIDES_FROM_AGE
    )
    return OptOutState(upn, scope, latest.action == "opt_out" and not lapsed, latest.cause, latest.requested_by)
