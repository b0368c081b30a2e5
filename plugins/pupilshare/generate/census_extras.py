"""Per-pupil detail of the synthetic census beyond the core roll: FSM periods, SEN primary need, ethnicity,
suspensions and permanent exclusions, and last term's absence by reason.

Drawn from a Random of its own (seeded from the generator's seed) after the core pupil is made, so adding detail
never changes the core pupils a seed gives. Rates are near England's (DfE statistics 2023/24): about 25% eligible
for free school meals, about 20% persistently absent (10% or more of possible sessions missed), suspensions about
3 a term per 100 secondary pupils and fewer in primaries, permanent exclusions about 1 in 2,000 secondary pupils a
term.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from pupilshare.reference import CensusTerm

#: Census reference day per term: (month, which Thursday of the month).
REFERENCE_THURSDAY = {"Autumn": (10, 1), "Spring": (1, 3), "Summer": (5, 3)}
TERM_CODES = {"Autumn": "AUT", "Spring": "SPR", "Summer": "SUM"}

_FSM_ELIGIBLE = 0.25
_FSM_EVER_ONLY = 0.08  # eligible once, not now (an ended period)
_PERSISTENT_ABSENCE_BETA = (1.15, 16.0)  # share of sessions missed: mean about 6.7%, about 20% at 10% or more
_AUTHORISED_REASONS = (("I", 0.62), ("M", 0.14), ("C", 0.12), ("R", 0.04), ("H", 0.03), ("E", 0.05))
_UNAUTHORISED_REASONS = (("O", 0.6), ("G", 0.2), ("U", 0.1), ("N", 0.1))
_SUSPENSION_RATE = {"secondary": 0.03, "primary": 0.006}
_PERMANENT_RATE = {"secondary": 0.0005, "primary": 0.00005}
_EXCLUSION_REASONS = (
    ("PP", 0.22), ("VP", 0.08), ("VA", 0.05), ("PA", 0.2), ("DM", 0.05), ("DA", 0.03), ("OW", 0.06), ("BU", 0.02),
    ("RA", 0.01), ("LG", 0.01), ("SM", 0.01), ("DS", 0.02), ("TH", 0.01), ("MT", 0.03), ("PH", 0.2),
)  # fmt: skip
_SEN_NEEDS = {
    "K": (("SLCN", 0.24), ("SEMH", 0.2), ("MLD", 0.17), ("SPLD", 0.13), ("ASD", 0.09), ("OTH", 0.05), ("PD", 0.03),
          ("HI", 0.02), ("VI", 0.01), ("NSA", 0.04), ("SLD", 0.01)),
    "E": (("ASD", 0.33), ("SEMH", 0.15), ("SLCN", 0.2), ("SLD", 0.08), ("MLD", 0.07), ("PMLD", 0.02), ("PD", 0.05),
          ("HI", 0.02), ("VI", 0.01), ("MSI", 0.01), ("SPLD", 0.03), ("OTH", 0.03)),
}  # fmt: skip
_ETHNICITY = (
    ("WBRI", 0.80), ("WOTH", 0.06), ("WIRI", 0.005), ("WROM", 0.003), ("MWBC", 0.01), ("MWBA", 0.006),
    ("MWAS", 0.01), ("MOTH", 0.015), ("AIND", 0.01), ("APKN", 0.004), ("ABAN", 0.004), ("AOTH", 0.008),
    ("BAFR", 0.012), ("BCRB", 0.003), ("BOTH", 0.002), ("CHNE", 0.005), ("OOTH", 0.008),
)  # fmt: skip


@dataclass(frozen=True)
class Exclusion:
    """One suspension (``SUSP``) or permanent exclusion (``PERM``) in the term before the census."""

    start_date: dt.date
    category: str
    reason: str
    sessions: int


def census_reference_date(term: CensusTerm, academic_year: int) -> dt.date:
    """Census day of ``term`` in the academic year beginning September ``academic_year``.

    Autumn: first Thursday of October; Spring: third Thursday of January; Summer: third Thursday of May.
    """
    month, nth = REFERENCE_THURSDAY[term]
    year = academic_year if month >= 9 else academic_year + 1
    first = dt.date(year, month, 1)
    first_thursday = first + dt.timedelta(days=(3 - first.weekday()) % 7)
    return first_thursday + dt.timedelta(weeks=nth - 1)


def term_of(reference_date: dt.date) -> CensusTerm:
    """The census term whose census day falls in ``reference_date``'s month range."""
    return "Autumn" if reference_date.month >= 9 else "Spring" if reference_date.month <= 3 else "Summer"


def previous_term_window(reference_date: dt.date) -> tuple[dt.date, dt.date]:
    """First and last day of the term before the census (the term whose attendance and exclusions it collects)."""
    year = reference_date.year
    match term_of(reference_date):
        case "Autumn":
            return dt.date(year, 4, 20), dt.date(year, 7, 21)
        case "Spring":
            return dt.date(year - 1, 9, 3), dt.date(year - 1, 12, 19)
        case _:
            return dt.date(year, 1, 5), dt.date(year, 4, 1)


class PupilDetail:
    """Draws the detail of each pupil in turn from its own Random (call order = pupil order: deterministic)."""

    def __init__(self, seed: int, reference_date: dt.date) -> None:
        self.rng = random.Random(seed * 1_000_003 + 17)  # noqa: S311 - reproducible synthetic data
        self.reference_date = reference_date
        self.term_start, self.term_end = previous_term_window(reference_date)
        self.term_days = (self.term_end - self.term_start).days

    def fsm_periods(self, dob: dt.date, entry_date: dt.date) -> tuple[tuple[dt.date, dt.date | None], ...]:
        """An open period for about 25% of pupils (some with an earlier ended one), an ended one for some more."""
        rng = self.rng
        roll = rng.random()
        if roll >= _FSM_ELIGIBLE + _FSM_EVER_ONLY:
            return ()
        earliest = max(entry_date, dob + dt.timedelta(days=4 * 365))
        span = max((self.reference_date - earliest).days, 1)
        start = earliest + dt.timedelta(days=rng.randrange(span))
        if roll < _FSM_ELIGIBLE:
            periods: list[tuple[dt.date, dt.date | None]] = [(start, None)]
            if rng.random() < 0.15 and (start - earliest).days > 120:
                first = earliest + dt.timedelta(days=rng.randrange((start - earliest).days - 60))
                periods.insert(0, (first, first + dt.timedelta(days=rng.randrange(30, 60))))
            return tuple(periods)
        return ((start, min(start + dt.timedelta(days=rng.randrange(60, 700)), self.reference_date)),)

    def sen_need(self, sen_provision: str) -> str:
        return _pick(self.rng, _SEN_NEEDS[sen_provision]) if sen_provision in _SEN_NEEDS else ""

    def ethnicity(self) -> str:
        return _pick(self.rng, _ETHNICITY)

    def absence(self, possible: int | None) -> tuple[int | None, int | None, tuple[tuple[str, int], ...]]:
        """Authorised and unauthorised sessions out of ``possible`` and their split by attendance reason code."""
        if possible is None:
            return None, None, ()
        rng = self.rng
        absent = min(round(possible * rng.betavariate(*_PERSISTENT_ABSENCE_BETA)), possible)
        unauthorised = 0 if rng.random() < 0.5 else round(absent * rng.random() * 0.7)
        authorised = absent - unauthorised
        reasons = _split(rng, authorised, _AUTHORISED_REASONS) + _split(rng, unauthorised, _UNAUTHORISED_REASONS)
        return authorised, unauthorised, tuple(reasons)

    def exclusions(self, nc_year: str) -> tuple[Exclusion, ...]:
        """Suspensions (1-3, 1-10 sessions each) and the rare permanent exclusion, in the previous term."""
        if nc_year in ("R", "12", "13"):
            return ()
        rng = self.rng
        phase = "secondary" if int(nc_year) >= 7 else "primary"
        made = []
        if rng.random() < _SUSPENSION_RATE[phase]:
            for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
                made.append(Exclusion(self._term_day(), "SUSP", _pick(rng, _EXCLUSION_REASONS), rng.randint(1, 10)))
        if rng.random() < _PERMANENT_RATE[phase]:
            made.append(Exclusion(self._term_day(), "PERM", _pick(rng, _EXCLUSION_REASONS), 0))
        return tuple(sorted(made, key=lambda exclusion: exclusion.start_date))

    def _term_day(self) -> dt.date:
        day = self.term_start + dt.timedelta(days=self.rng.randrange(self.term_days))
        return day + dt.timedelta(days=7 - day.weekday()) if day.weekday() >= 5 else day


def _pick(rng: random.Random, weighted: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([code for code, _ in weighted], weights=[weight for _, weight in weighted])[0]


def _split(rng: random.Random, total: int, weighted: tuple[tuple[str, float], ...]) -> list[tuple[str, int]]:
    """``total`` sessions spread over reason codes (one to three of them), largest share to the first drawn."""
    if total <= 0:
        return []
    codes = list(dict.fromkeys(_pick(rng, weighted) for _ in range(rng.randint(1, 3))))
    shares = [1.0 + rng.random()] + [rng.random() for _ in codes[1:]]
    counts = [int(total * share / sum(shares)) for share in shares]
    counts[0] += total - sum(counts)
    return [(code, count) for code, count in zip(codes, counts, strict=True) if count]
