"""Synthetic School Census LA extract: a fictional Norfolk-like county's census of any term, as the LA receives it.

:func:`build_census_extract` makes schools and pupils in memory; :func:`write_census_extract` writes them, and
:func:`generate_census_extract` makes and writes school by school (streaming: memory does not grow with the county).
Tables written, each a CSV whose header is exactly the term's schema columns (:mod:`pupilshare.reference`):
``schoolcensus``, ``school``, ``pupilonroll``, ``pupilnolongeronroll``, the address table (``addressesonroll`` in
Autumn, ``addresses`` in Spring and Summer), FSM periods (``fsmperiodsonroll`` / ``fsmperiod``), ``senneeds``
(Spring), ``termlyexclusionsonroll`` and ``termlysessiondetailsonroll``. Detail beyond the core roll comes from
:mod:`pupilshare.generate.census_extras`. Everything is drawn from one ``random.Random(seed)``
and a Faker seeded with the same seed, so the same arguments give byte-identical files (for one Faker version: its
name lists can change between releases).

No real person is described: names are Faker's, dates of birth are uniform within the NC year group's range, and
postcodes are random inward codes inside real Norfolk districts (they may or may not exist).
"""

from __future__ import annotations

import bisect
import csv
import dataclasses
import datetime as dt
import itertools
import random
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from faker import Faker
from stdnum.exceptions import ValidationError
from stdnum.gb import upn as upn_check

from pupilshare.dates import age_in_years
from pupilshare.generate.census_extras import (
    TERM_CODES,
    Exclusion,
    PupilDetail,
    census_reference_date,
    term_of,
)
from pupilshare.generate.names import BOYS_NAMES, GIRLS_NAMES
from pupilshare.generate.norfolk import (
    HOUSE_NAMES,
    INWARD_UNIT_LETTERS,
    NORFOLK_POSTCODE_DISTRICTS,
    STREET_STEMS,
    STREET_SUFFIXES,
    WHOLE_STREETS,
    PostcodeDistrict,
)
from pupilshare.reference import CensusTerm, census_codes, census_columns

#: The tables an Autumn extract must hold (the loader's minimum).
CENSUS_TABLES = ("schoolcensus", "school", "pupilonroll", "addressesonroll")
#: Every table the generator writes, per term, in the order they are written.
TERM_TABLES: dict[str, tuple[str, ...]] = {
    "Autumn": ("schoolcensus", "school", "pupilonroll", "addressesonroll", "fsmperiodsonroll",
               "termlyexclusionsonroll", "termlysessiondetailsonroll", "pupilnolongeronroll"),
    "Spring": ("schoolcensus", "school", "pupilonroll", "addresses", "fsmperiod", "senneeds",
               "termlyexclusionsonroll", "termlysessiondetailsonroll", "pupilnolongeronroll"),
    "Summer": ("schoolcensus", "school", "pupilonroll", "addresses", "fsmperiod",
               "termlyexclusionsonroll", "termlysessiondetailsonroll", "pupilnolongeronroll"),
}  # fmt: skip
#: Named sizes: ``small`` for demos and tests, ``county`` a Norfolk-sized LA (about 420 schools, 130,000 pupils).
PRESETS = {"small": (20, 3000), "county": (420, 130_000)}
#: ``ncyearactual`` codes from Reception to Year 13; the index is the number of years after Reception.
NC_YEARS = ("R", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13")
TERM = "AUT"

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_POOL_SIZE = 3000
_SECONDARY_SHARE = 0.15  # Norfolk: about 1 school in 7 is secondary
_ALL_THROUGH_SHARE = 0.015
_SIXTH_FORM_SHARE = 0.5
_LIVES_IN_SCHOOL_DISTRICT = 0.85
_JOINS_HOUSEHOLD = 0.3  # chance a new pupil is a sibling of one already made in the same district
_IN_YEAR_ADMISSION = 0.1  # joined the school later than the start of its first year
_UPRN_BASE = 100_090_000_000
_UPRN_STEP = 17
_LEAVER_SHARE = 0.02  # pupils who left since the last census, as a share of those on roll
# (code, weight) lists; every code is checked against the schema's code list before anything is built.
_GOVERNANCE = {
    "PS": (("CA", 0.55), ("CO", 0.20), ("VC", 0.17), ("VA", 0.05), ("FO", 0.03)),
    "SS": (("CA", 0.90), ("CO", 0.04), ("FO", 0.03), ("VA", 0.03)),
}
# School ``type`` by governance, in Get Information about Schools' numbering (the schema's list has no labels):
# 01 community, 02 voluntary aided, 03 voluntary controlled, 05 foundation, 28 academy.
_SCHOOL_TYPE = {"CO": "01", "VA": "02", "VC": "03", "FO": "05", "CA": "28"}
_SOFTWARE = (("SIMS", 0.5), ("Arbor", 0.25), ("Bromcom", 0.15), ("ScholarPack", 0.1))
_YSSA = (("Yes", 0.78), ("UNS", 0.10), ("SNR", 0.08), ("No", 0.04))
# SEN support (K) and EHC plans (E) are about twice as common for boys: overall about 13% K and 5% E.
_SEN = {"M": (("K", 0.165), ("E", 0.068), ("N", 0.767)), "F": (("K", 0.095), ("E", 0.032), ("N", 0.873))}
# About 80% English; the rest the languages most heard in Norfolk schools, plus "not obtained" and "refused".
_LANGUAGES = (
    ("ENG", 80.0), ("POL", 3.0), ("LIT", 2.8), ("POR", 2.8), ("RMN", 2.2), ("LTV", 1.4), ("BUL", 1.0),
    ("RUS", 0.9), ("UKR", 0.9), ("ARA", 0.8), ("BNG", 0.6), ("URD", 0.5), ("TUR", 0.5), ("SPA", 0.5),
    ("CHI", 0.5), ("TGL", 0.4), ("MLM", 0.4), ("HIN", 0.4), ("NOT", 0.3), ("REF", 0.1),
)  # fmt: skip
_PRIMARY_NAMES = {
    "CA": ("Primary Academy", "Primary School", "Church of England Primary Academy"),
    "CO": ("Primary School", "Community Primary School"),
    "VC": ("Church of England Primary School", "CE VC Primary School"),
    "VA": ("Church of England Primary School", "CE VA Primary School"),
    "FO": ("Primary School",),
}
_SECONDARY_NAMES = {
    "CA": ("Academy", "High School", "Church of England Academy"),
    "CO": ("High School", "Community High School"),
    "VA": ("Church of England High School",),
    "FO": ("High School",),
}
_ALL_THROUGH_NAMES = ("Academy", "School")


class CensusGeneratorError(ValueError):
    """The generator was asked for something it cannot make (an unknown LA code, too many schools ...)."""


@dataclass(frozen=True)
class Address:
    """A BS7666-style address: ``saon`` (flat), ``paon`` (number or house name), ``street`` ... ``uprn``."""

    saon: str
    paon: str
    street: str
    locality: str
    town: str
    post_town: str
    postcode: str
    uprn: int


@dataclass(frozen=True)
class School:
    """One school (one census return). Codes are the schema's: ``phase`` from ``school.phase`` and so on."""

    urn: int
    estab: str
    name: str
    phase: str
    lowest_nc_year: str
    highest_nc_year: str
    school_type: str
    governance: str
    intake: str = "COMP"
    software_code: str = "SIMS"


@dataclass(frozen=True)
class Pupil:
    """One pupil on roll on census day; codes are the schema's ``pupilonroll`` codes.

    ``sessions_*`` are last summer term's attendance sessions, None when the pupil was not on this school's roll
    then or was not of compulsory school age.
    """

    upn: str
    forename: str
    surname: str
    middlenames: str
    dob: dt.date
    sex: str
    nc_year: str
    yssa: str
    sen_provision: str
    language: str
    enrol_status: str
    school_urn: int
    entry_date: dt.date
    address: Address
    sessions_possible: int | None = None
    sessions_authorised: int | None = None
    sessions_unauthorised: int | None = None
    absence_reasons: tuple[tuple[str, int], ...] = ()
    fsm_periods: tuple[tuple[dt.date, dt.date | None], ...] = ()
    sen_need: str = ""
    ethnicity: str = ""
    exclusions: tuple[Exclusion, ...] = ()
    leaving_date: dt.date | None = None


@dataclass(frozen=True)
class CensusExtract:
    """An LA-wide census extract: one return per school in ``schools``, every pupil on roll in ``pupils``."""

    la_code: str
    reference_date: dt.date
    term: str
    year: int
    schools: list[School]
    pupils: list[Pupil]
    leavers: list[Pupil] = field(default_factory=list)


@dataclass(frozen=True)
class _NamePools:
    male: tuple[str, ...]
    female: tuple[str, ...]
    male_middle: tuple[str, ...]
    female_middle: tuple[str, ...]
    surnames: tuple[str, ...]


@dataclass(frozen=True)
class _SchoolPlan:
    school: School
    district: PostcodeDistrict
    weight: float
    years: tuple[int, ...]
    year_weights: tuple[float, ...]
    summer_sessions: int


@dataclass
class _Household:
    surname: str
    language: str
    address: Address
    dobs: list[dt.date] = field(default_factory=list)


def build_census_extract(
    *,
    schools: int,
    pupils: int,
    seed: int,
    la_code: str = "926",
    reference_date: dt.date | None = None,
    term: CensusTerm | None = None,
) -> CensusExtract:
    """Make a census extract of ``schools`` schools (about 85% primary) and ``pupils`` pupils, in memory.

    ``term`` (default Autumn) and ``reference_date`` (default that term's census day in 2026/27) may be given
    alone or together. Grain: one :class:`School` per school, one :class:`Pupil` per pupil on roll (ordered by
    school, NC year, name), one per leaver in ``leavers``. Raises :class:`CensusGeneratorError` for an ``la_code``
    that UPNs or the schema do not accept.
    """
    plan = _ExtractPlan.make(schools, pupils, seed, la_code, reference_date, term)
    on_roll = [pupil for made in plan.pupils_by_school() for pupil in made]
    return CensusExtract(
        la_code=la_code,
        reference_date=plan.reference_date,
        term=TERM_CODES[plan.term],
        year=plan.reference_date.year,
        schools=[school_plan.school for school_plan in plan.plans],
        pupils=on_roll,
        leavers=list(plan.leavers()),
    )


def write_census_extract(extract: CensusExtract, out_dir: Path) -> dict[str, int]:
    """Write ``extract`` as ``<table>.csv`` files in ``out_dir`` (created if missing); returns rows per table.

    Grain: ``schoolcensus`` and ``school`` one row per school, ``pupilonroll`` and the address table one row per
    pupil, the other tables one row per period, need, exclusion or absence reason. Headers hold every schema column
    of the table for the extract's term, in schema order; columns not generated are blank.
    """
    term = next((name for name, code in TERM_CODES.items() if code == extract.term), None)
    if term is None:
        raise CensusGeneratorError(f"term {extract.term!r} is not AUT, SPR or SUM")
    with _ExtractWriter(out_dir, extract, term) as writer:
        for pupil in extract.pupils:
            writer.write_pupil(pupil)
        for leaver in extract.leavers:
            writer.write_leaver(leaver)
    return writer.counts


def generate_census_extract(
    out_dir: Path,
    *,
    schools: int | None = None,
    pupils: int | None = None,
    seed: int = 1,
    la_code: str = "926",
    reference_date: dt.date | None = None,
    term: CensusTerm | None = None,
    preset: str | None = None,
) -> dict[str, int]:
    """Make a synthetic extract and stream it into ``out_dir`` school by school; returns rows written per table.

    ``preset`` (``small`` or ``county``) gives the schools and pupils unless they are given; with neither, ``small``.
    """
    if preset is not None and preset not in PRESETS:
        raise CensusGeneratorError(f"preset {preset!r} is not one of {', '.join(PRESETS)}")
    default_schools, default_pupils = PRESETS[preset or "small"]
    plan = _ExtractPlan.make(
        schools or default_schools, default_pupils if pupils is None else pupils, seed, la_code, reference_date, term
    )
    header = CensusExtract(
        la_code=la_code,
        reference_date=plan.reference_date,
        term=TERM_CODES[plan.term],
        year=plan.reference_date.year,
        schools=[school_plan.school for school_plan in plan.plans],
        pupils=[],
    )
    with _ExtractWriter(out_dir, header, plan.term) as writer:
        for made in plan.pupils_by_school():
            for pupil in made:
                writer.write_pupil(pupil)
        for leaver in plan.leavers():
            writer.write_leaver(leaver)
    return writer.counts


def generate_census_year(out_dir: Path, *, academic_year: int = 2026, **options: object) -> dict[str, dict[str, int]]:
    """Write the Autumn, Spring and Summer extracts of one academic year into ``out_dir/<term>_<year>/``."""
    written = {}
    for term in ("Autumn", "Spring", "Summer"):
        reference_date = census_reference_date(term, academic_year)
        folder = out_dir / f"{term.lower()}_{reference_date.year}"
        written[term] = generate_census_extract(folder, term=term, reference_date=reference_date, **options)
    return written


@dataclass
class _ExtractPlan:
    """Schools planned and the population that makes pupils; pupils are made one school at a time."""

    seed: int
    term: CensusTerm
    reference_date: dt.date
    plans: list[_SchoolPlan]
    counts: list[int]
    population: _Population
    detail: PupilDetail

    @classmethod
    def make(cls, schools, pupils, seed, la_code, reference_date, term) -> _ExtractPlan:
        _check_request(schools, pupils, la_code)
        if reference_date is None:
            reference_date = census_reference_date(term or "Autumn", 2026)
        term = term or term_of(reference_date)
        rng = random.Random(seed)  # noqa: S311 - reproducible synthetic data, not security
        pools = _build_name_pools(seed)
        plans = _plan_schools(rng, pools, schools)
        population = _Population(rng, pools, la_code, reference_date, plans)
        counts = _share(pupils, [plan.weight for plan in plans])
        return cls(seed, term, reference_date, plans, counts, population, PupilDetail(seed, reference_date))

    def pupils_by_school(self) -> Iterator[list[Pupil]]:
        for plan, count in zip(self.plans, self.counts, strict=True):
            made = [self.population.make_pupil(plan) for _ in range(count)]
            made.sort(key=lambda pupil: (NC_YEARS.index(pupil.nc_year), pupil.surname, pupil.forename, pupil.upn))
            yield [self._with_detail(pupil) for pupil in made]

    def leavers(self) -> Iterator[Pupil]:
        """About 2% of each school's roll left since the last census (made after everyone on roll)."""
        rng = self.detail.rng
        for plan, count in zip(self.plans, self.counts, strict=True):
            for _ in range(round(count * _LEAVER_SHARE)):
                pupil = self.population.make_pupil(plan)
                span = max((self.reference_date - pupil.entry_date).days, 1)
                leaving = pupil.entry_date + dt.timedelta(days=min(span, 120) - rng.randrange(min(span, 120)))
                yield dataclasses.replace(pupil, leaving_date=min(leaving, self.reference_date), yssa="")

    def _with_detail(self, pupil: Pupil) -> Pupil:
        detail = self.detail
        authorised, unauthorised, reasons = detail.absence(pupil.sessions_possible)
        return dataclasses.replace(
            pupil,
            sessions_authorised=authorised,
            sessions_unauthorised=unauthorised,
            absence_reasons=reasons,
            fsm_periods=detail.fsm_periods(pupil.dob, pupil.entry_date),
            sen_need=detail.sen_need(pupil.sen_provision) if self.term == "Spring" else "",
            ethnicity=detail.ethnicity() if self.term == "Spring" else "",
            exclusions=detail.exclusions(pupil.nc_year),
        )


def academic_year_start(on_date: dt.date) -> int:
    """The calendar year in which the academic year holding ``on_date`` began (it begins on 1 September)."""
    return on_date.year if on_date.month >= 9 else on_date.year - 1


def format_census_date(moment: dt.date | dt.datetime) -> str:
    """A date as census extracts write it: ``2012-Mar-01 00:00:00`` (English month names whatever the locale)."""
    clock = moment.strftime("%H:%M:%S") if isinstance(moment, dt.datetime) else "00:00:00"
    return f"{moment.year:04d}-{_MONTHS[moment.month - 1]}-{moment.day:02d} {clock}"


# --- checks ---------------------------------------------------------------------------------------------------------


def _check_request(schools: int, pupils: int, la_code: str) -> None:
    if schools < 1 or pupils < 0:
        raise CensusGeneratorError(f"need at least one school and no negative pupils, got {schools=} {pupils=}")
    if not (len(la_code) == 3 and la_code.isdigit()) or la_code not in census_codes("schoolcensus", "lea"):
        raise CensusGeneratorError(f"la_code {la_code!r} is not a 3-digit LA code of the census schema")
    body = f"{la_code}200000001"  # any estab, year and serial: only the LA part can make it invalid
    try:
        upn_check.validate(upn_check.calc_check_digit(body) + body)
    except ValidationError as error:
        raise CensusGeneratorError(f"la_code {la_code!r} is not an LA number that UPNs can carry") from error
    _check_codes()


@cache
def _check_codes() -> None:
    """Every code the generator writes must be in the schema's code list for its column."""
    used = {
        ("school", "phase"): {"PS", "SS", "AT"},
        ("school", "governance"): set(_SCHOOL_TYPE),
        ("school", "type"): set(_SCHOOL_TYPE.values()),
        ("school", "intake"): {"COMP"},
        ("school", "lowestncyeargroup"): set(NC_YEARS),
        ("schoolcensus", "term"): {TERM},
        ("schoolcensus", "collection"): {"SC"},
        ("schoolcensus", "sourcelevel"): {"S"},
        ("schoolcensus", "name"): {"School Census"},
        ("pupilonroll", "ncyearactual"): set(NC_YEARS),
        ("pupilonroll", "yssa"): {code for code, _ in _YSSA},
        ("pupilonroll", "senprovision"): {code for codes in _SEN.values() for code, _ in codes},
        ("pupilonroll", "language"): {code for code, _ in _LANGUAGES},
        ("pupilonroll", "sex"): {"M", "F"},
        ("pupilonroll", "enrolstatus"): {"C"},
    }
    for (table, column), codes in used.items():
        unknown = codes - set(census_codes(table, column))
        if unknown:
            raise CensusGeneratorError(f"generator codes {sorted(unknown)} are not in the schema's {table}.{column}")


# --- schools --------------------------------------------------------------------------------------------------------


def _build_name_pools(seed: int) -> _NamePools:
    """Draw names once (Faker is slow); pupils then sample these pools with the Random.

    Forenames: three in four from the children's names of :mod:`pupilshare.generate.names` (popular ones more
    often), one in four from Faker's en_GB first names; middle names and surnames all from Faker.
    """
    fake = Faker("en_GB")
    fake.seed_instance(seed)
    male_middle = tuple(fake.first_name_male() for _ in range(_POOL_SIZE))
    female_middle = tuple(fake.first_name_female() for _ in range(_POOL_SIZE))
    return _NamePools(
        male=_children_names(fake.random, BOYS_NAMES, male_middle),
        female=_children_names(fake.random, GIRLS_NAMES, female_middle),
        male_middle=male_middle,
        female_middle=female_middle,
        surnames=tuple(fake.last_name() for _ in range(_POOL_SIZE)),
    )


def _children_names(rng: random.Random, popular: Sequence[str], general: Sequence[str]) -> tuple[str, ...]:
    """A pool of forenames: ``popular`` weighted by rank (Zipf-like), topped up with a quarter from ``general``."""
    weights = [1 / (rank**0.7) for rank in range(1, len(popular) + 1)]
    share = _POOL_SIZE * 3 // 4
    return tuple(rng.choices(popular, weights=weights, k=share)) + tuple(general[: _POOL_SIZE - share])


def _plan_schools(rng: random.Random, pools: _NamePools, count: int) -> list[_SchoolPlan]:
    """Phases, numbers, names and sizes of ``count`` schools, ordered by establishment number."""
    secondaries = 0 if count < 2 else max(1, round(count * _SECONDARY_SHARE))
    all_through = min(round(count * _ALL_THROUGH_SHARE), max(secondaries - 1, 0))
    phases = ["PS"] * (count - secondaries) + ["AT"] * all_through + ["SS"] * (secondaries - all_through)
    if max(count - secondaries, secondaries) > 1000:
        raise CensusGeneratorError(f"{count} schools is more than 1000 of one phase: estab numbers would run out")
    estabs = iter(rng.sample(range(2000, 3000), count - secondaries) + rng.sample(range(4000, 5000), secondaries))
    names: set[str] = set()
    urns: set[int] = set()
    plans = [_plan_school(rng, pools, phase, next(estabs), names, urns) for phase in phases]
    return sorted(plans, key=lambda plan: plan.school.estab)


def _plan_school(
    rng: random.Random, pools: _NamePools, phase: str, estab: int, names: set[str], urns: set[int]
) -> _SchoolPlan:
    district = _pick_district(rng)
    governance = _pick(rng, _GOVERNANCE["PS" if phase == "PS" else "SS"])
    lowest, highest = {"PS": ("R", "6"), "AT": ("R", "13")}.get(phase, ("7", "11"))
    if phase == "SS" and rng.random() < _SIXTH_FORM_SHARE:
        highest = "13"
    years = tuple(range(NC_YEARS.index(lowest), NC_YEARS.index(highest) + 1))
    # Relative cohort sizes: a year group of a secondary is about six primary classes; sixth forms are half size.
    year_weights = tuple(
        (0.5 if year >= 12 else 1.0) * (0.35 if phase == "AT" and year <= 6 else 1.0) for year in years
    )
    # Many small rural primaries, a few large town ones (about 8 to 600 a school); secondaries vary less.
    scale = min(max(rng.lognormvariate(0, 0.6), 0.2), 3.0) if phase == "PS" else 6.0 * rng.lognormvariate(0, 0.35)
    school = School(
        urn=_new_urn(rng, governance, urns),
        estab=str(estab),
        name=_school_name(rng, pools, district, phase, governance, names),
        phase=phase,
        lowest_nc_year=lowest,
        highest_nc_year=highest,
        school_type=_SCHOOL_TYPE[governance],
        governance=governance,
        software_code=_pick(rng, _SOFTWARE),
    )
    return _SchoolPlan(
        school=school,
        district=district,
        weight=scale * sum(year_weights),
        years=years,
        year_weights=tuple(itertools.accumulate(year_weights)),
        summer_sessions=rng.randrange(116, 128, 2),
    )


def _new_urn(rng: random.Random, governance: str, taken: set[int]) -> int:
    """Six-digit URNs: maintained schools keep old 12xxxx numbers, academies have newer 13xxxx-14xxxx ones."""
    low, high = (136_000, 150_000) if governance == "CA" else (120_000, 123_000)
    while (urn := rng.randrange(low, high)) in taken:
        pass
    taken.add(urn)
    return urn


def _school_name(
    rng: random.Random, pools: _NamePools, district: PostcodeDistrict, phase: str, governance: str, taken: set[str]
) -> str:
    """``<Place> Primary School`` and the like, unique; a street's name stands in once the places run out."""
    styles = {"PS": _PRIMARY_NAMES, "SS": _SECONDARY_NAMES}.get(phase, {}).get(governance, _ALL_THROUGH_NAMES)
    attempts = 0
    while True:
        place = rng.choice(district.localities) or district.town
        if attempts >= 10:
            place = _street_name(rng, pools)
        name = f"{place} {rng.choice(styles)}"
        if name not in taken:
            taken.add(name)
            return name
        attempts += 1


# --- helpers --------------------------------------------------------------------------------------------------------


def _pick(rng: random.Random, weighted: Sequence[tuple[str, float]]) -> str:
    return rng.choices([code for code, _ in weighted], weights=[weight for _, weight in weighted])[0]


@cache
def _district_cum_weights() -> tuple[float, ...]:
    return tuple(itertools.accumulate(district.weight for district in NORFOLK_POSTCODE_DISTRICTS))


def _pick_district(rng: random.Random) -> PostcodeDistrict:
    return rng.choices(NORFOLK_POSTCODE_DISTRICTS, cum_weights=_district_cum_weights())[0]


def _share(total: int, weights: Sequence[float]) -> list[int]:
    """Split ``total`` in proportion to ``weights`` (largest remainders; ties to the earlier item)."""
    whole = sum(weights)
    exact = [total * weight / whole for weight in weights]
    counts = [int(value) for value in exact]
    by_remainder = sorted(range(len(weights)), key=lambda index: (counts[index] - exact[index], index))
    for index in by_remainder[: total - sum(counts)]:
        counts[index] += 1
    return counts


def _street_name(rng: random.Random, pools: _NamePools) -> str:
    roll = rng.random()
    if roll < 0.1:
        return rng.choice(WHOLE_STREETS)
    stem = rng.choice(STREET_STEMS) if roll < 0.4 else rng.choice(pools.surnames)
    return f"{stem} {rng.choice(STREET_SUFFIXES)}"


def _term_start(year: int) -> dt.date:
    """First school day of the academic year beginning in ``year``: the first weekday on or after 3 September."""
    return _weekday_from(dt.date(year, 9, 3))


def _weekday_from(day: dt.date) -> dt.date:
    """``day`` itself on a weekday, else the Monday after."""
    return day + dt.timedelta(days=7 - day.weekday()) if day.weekday() >= 5 else day


# --- pupils ---------------------------------------------------------------------------------------------------------


class _Population:
    """Makes pupils one at a time, keeping what must stay consistent: UPN serials, households, streets, UPRNs."""

    def __init__(
        self,
        rng: random.Random,
        pools: _NamePools,
        la_code: str,
        reference_date: dt.date,
        plans: list[_SchoolPlan],
    ) -> None:
        self.rng = rng
        self.pools = pools
        self.la_code = la_code
        self.reference_date = reference_date
        self.academic_year = academic_year_start(reference_date)
        self.estabs = [plan.school.estab for plan in plans]
        self.primary_estabs = [plan.school.estab for plan in plans if plan.school.phase != "SS"] or self.estabs
        self.serials: dict[tuple[str, int], int] = defaultdict(int)
        self.households: dict[str, list[_Household]] = defaultdict(list)
        self.streets: dict[str, list[tuple[str, str, tuple[str, ...]]]] = {}
        self.postcodes: set[str] = set()
        self.addresses: set[tuple[str, str, str, str, str]] = set()
        self.uprns = itertools.count(1)

    def make_pupil(self, plan: _SchoolPlan) -> Pupil:
        """One pupil on the roll of ``plan``'s school."""
        rng = self.rng
        year = plan.years[bisect.bisect_right(plan.year_weights, rng.random() * plan.year_weights[-1])]
        dob = self._dob(year)
        sex = "M" if rng.random() < 0.512 else "F"
        forename, middlenames = self._given_names(sex)
        district = plan.district if rng.random() < _LIVES_IN_SCHOOL_DISTRICT else _pick_district(rng)
        household = self._household(district, dob)
        entry_date = self._entry_date(plan, year)
        possible, authorised, unauthorised = self._summer_sessions(plan, year, entry_date)
        return Pupil(
            upn=self._upn(plan, year),
            forename=forename,
            surname=household.surname,
            middlenames=middlenames,
            dob=dob,
            sex=sex,
            nc_year=NC_YEARS[year],
            yssa="" if age_in_years(dob, self.reference_date) < 13 else _pick(rng, _YSSA),
            sen_provision=_pick(rng, _SEN[sex]),
            language=household.language,
            enrol_status="C",
            school_urn=plan.school.urn,
            entry_date=entry_date,
            address=household.address,
            sessions_possible=possible,
            sessions_authorised=authorised,
            sessions_unauthorised=unauthorised,
        )

    def _dob(self, year: int) -> dt.date:
        """Uniform over the year group's birth year: ``year`` years after Reception is born 1 Sep .. 31 Aug."""
        first = dt.date(self.academic_year - year - 5, 9, 1)
        last = dt.date(self.academic_year - year - 4, 8, 31)
        return first + dt.timedelta(days=self.rng.randrange((last - first).days + 1))

    def _given_names(self, sex: str) -> tuple[str, str]:
        male = sex == "M"
        forename = self.rng.choice(self.pools.male if male else self.pools.female)
        roll = self.rng.random()
        middle_count = 2 if roll < 0.08 else 1 if roll < 0.48 else 0
        middles: list[str] = []
        while len(middles) < middle_count:
            name = self.rng.choice(self.pools.male_middle if male else self.pools.female_middle)
            if name != forename and name not in middles:
                middles.append(name)
        return forename, " ".join(middles)

    def _household(self, district: PostcodeDistrict, dob: dt.date) -> _Household:
        """An existing household of the district (a sibling at least 10 months apart), else a new one."""
        rng = self.rng
        known = self.households[district.outward]
        if known and rng.random() < _JOINS_HOUSEHOLD:
            household = rng.choice(known)
            if len(household.dobs) < 5 and all(abs((dob - other).days) > 300 for other in household.dobs):
                household.dobs.append(dob)
                return household
        surname = rng.choice(self.pools.surnames)
        if rng.random() < 0.03:
            surname = f"{surname}-{rng.choice(self.pools.surnames)}"
        household = _Household(surname, _pick(rng, _LANGUAGES), self._address(district), [dob])
        known.append(household)
        return household

    def _address(self, district: PostcodeDistrict) -> Address:
        rng = self.rng
        streets = self._district_streets(district)
        while True:
            street, locality, postcodes = rng.choice(streets)
            roll = rng.random()
            saon = f"Flat {rng.randint(1, 12)}" if roll < 0.08 else ""
            paon = rng.choice(HOUSE_NAMES) if 0.08 <= roll < 0.13 else str(rng.randint(1, 60 if saon else 140))
            key = (district.outward, locality, street, saon, paon)
            if key not in self.addresses:
                self.addresses.add(key)
                break
        uprn = _UPRN_BASE + next(self.uprns) * _UPRN_STEP + rng.randrange(_UPRN_STEP)
        return Address(saon, paon, street, locality, district.town, district.post_town, rng.choice(postcodes), uprn)

    def _district_streets(self, district: PostcodeDistrict) -> list[tuple[str, str, tuple[str, ...]]]:
        """The district's streets, made on first use: (street, locality, postcodes), each street 1-3 postcodes."""
        if district.outward not in self.streets:
            rng = self.rng
            streets: dict[tuple[str, str], tuple[str, ...]] = {}
            while len(streets) < 20 + round(40 * district.weight):
                key = (_street_name(rng, self.pools), rng.choice(district.localities))
                streets.setdefault(key, tuple(self._new_postcode(district) for _ in range(rng.randint(1, 3))))
            self.streets[district.outward] = [
                (street, locality, codes) for (street, locality), codes in streets.items()
            ]
        return self.streets[district.outward]

    def _new_postcode(self, district: PostcodeDistrict) -> str:
        while True:
            inward = f"{self.rng.randint(1, 9)}{''.join(self.rng.choices(INWARD_UNIT_LETTERS, k=2))}"
            postcode = f"{district.outward} {inward}"
            if postcode not in self.postcodes:
                self.postcodes.add(postcode)
                return postcode

    def _entry_date(self, plan: _SchoolPlan, year: int) -> dt.date:
        """Start of the school's first year group the pupil was in; some joined later (in-year admissions)."""
        rng = self.rng
        first_year = NC_YEARS.index(plan.school.lowest_nc_year)
        if plan.school.phase == "SS" and year >= 12 and rng.random() < 0.25:
            first_year = 12  # joined for the sixth form
        entry = _term_start(self.academic_year - (year - first_year))
        if rng.random() < _IN_YEAR_ADMISSION and (window := (self.reference_date - entry).days) > 1:
            entry += dt.timedelta(days=rng.randrange(window))
            # Nobody starts in the summer holidays: a late-July or August start waits for the new school year.
            entry = _weekday_from(entry)
            if (7, 22) <= (entry.month, entry.day) < (9, 1):
                entry = _term_start(entry.year)
        return min(entry, self.reference_date)

    def _summer_sessions(
        self, plan: _SchoolPlan, year: int, entry_date: dt.date
    ) -> tuple[int | None, int | None, int | None]:
        """Last summer term's sessions, for Years 1-11 on this school's roll before that term began."""
        if not 1 <= year <= 11 or entry_date >= dt.date(self.academic_year, 4, 20):
            return None, None, None
        possible = plan.summer_sessions
        absent = round(possible * self.rng.betavariate(1.1, 18))  # mean about 6% of sessions missed
        unauthorised = 0 if self.rng.random() < 0.55 else round(absent * self.rng.random() * 0.8)
        return possible, absent - unauthorised, unauthorised

    def _upn(self, plan: _SchoolPlan, year: int) -> str:
        """UPN issued when the pupil started Reception, by this school or (for secondaries) a primary of the LA."""
        issuer = plan.school.estab if plan.school.phase != "SS" else self.rng.choice(self.primary_estabs)
        allocation_year = (self.academic_year - year) % 100
        for estab in itertools.chain([issuer], self.estabs):
            key = (estab, allocation_year)
            if self.serials[key] < 999:
                self.serials[key] += 1
                body = f"{self.la_code}{estab}{allocation_year:02d}{self.serials[key]:03d}"
                return upn_check.calc_check_digit(body) + body
        raise CensusGeneratorError(
            f"all 999 UPN serial numbers of every school for allocation year {allocation_year:02d} are used "
            f"({len(self.estabs)} schools): ask for more schools or fewer pupils"
        )


# --- writing --------------------------------------------------------------------------------------------------------


class _ExtractWriter:
    """Open CSV writers for every table of a term; pupils are written one at a time (rows of all their tables)."""

    def __init__(self, out_dir: Path, extract: CensusExtract, term: CensusTerm) -> None:
        self.out_dir = out_dir
        self.extract = extract
        self.term = term
        self.tables = TERM_TABLES[term]
        self.address_table = "addressesonroll" if term == "Autumn" else "addresses"
        self.fsm_table = "fsmperiodsonroll" if term == "Autumn" else "fsmperiod"
        self.census_ids = {school.urn: str(number) for number, school in enumerate(extract.schools, 1)}
        if len(self.census_ids) != len(extract.schools):
            raise CensusGeneratorError("two schools share a URN: each school makes exactly one census return")
        self.counts = dict.fromkeys(self.tables, 0)
        self._handles: list = []
        self._writers: dict[str, tuple[object, list[str]]] = {}

    def __enter__(self) -> _ExtractWriter:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for table in self.tables:
            columns = list(census_columns(table, self.term))
            handle = (self.out_dir / f"{table}.csv").open("w", encoding="utf-8", newline="")
            self._handles.append(handle)
            writer = csv.writer(handle, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
            writer.writerow(columns)
            self._writers[table] = (writer, columns)
        for row in _schoolcensus_rows(self.extract):
            self._write("schoolcensus", row)
        for row in _school_rows(self.extract):
            self._write("school", row)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for handle in self._handles:
            handle.close()

    def _write(self, table: str, row: dict[str, str]) -> str:
        """Write one row (its bookkeeping ids added); returns its table id."""
        writer, columns = self._writers[table]
        number = self.counts[table] = self.counts[table] + 1
        row = _ids(table, number, row.pop("sourceid", "")) | row
        if number == 1 and not row.keys() <= set(columns):
            raise CensusGeneratorError(f"{table} row has columns the schema lacks: {sorted(row.keys() - set(columns))}")
        writer.writerow([row.get(column, "") for column in columns])
        return str(number)

    def _census_id(self, pupil: Pupil) -> str:
        if pupil.school_urn not in self.census_ids:
            raise CensusGeneratorError(
                f"pupil {pupil.upn} is on the roll of URN {pupil.school_urn}, not in the extract"
            )
        return self.census_ids[pupil.school_urn]

    def write_pupil(self, pupil: Pupil) -> None:
        census_id = self._census_id(pupil)
        pupil_id = self._write("pupilonroll", _pupil_row(pupil, census_id, self.term))
        link = {"sourceid": census_id, "pupilonrolltableid": pupil_id}
        self._write(self.address_table, dict(link) | _address_row(pupil.address))
        for start, end in pupil.fsm_periods:
            self._write(self.fsm_table, dict(link) | {"fsmstartdate": format_census_date(start),
                        "fsmenddate": "" if end is None else format_census_date(end), "ukcountry": "ENG"})  # fmt: skip
        if pupil.sen_need and "senneeds" in self._writers:
            self._write("senneeds", dict(link) | {"sentyperank": "1", "sentype": pupil.sen_need})
        for exclusion in pupil.exclusions:
            reason = {"reason": exclusion.reason} if self.term == "Autumn" else {"reason1": exclusion.reason}
            self._write("termlyexclusionsonroll", dict(link) | reason | {
                "startdate": format_census_date(exclusion.start_date), "category": exclusion.category,
                "sessions": str(exclusion.sessions) if exclusion.category == "SUSP" else "",
                "senprovision": pupil.sen_provision})  # fmt: skip
        for code, sessions in pupil.absence_reasons:
            self._write(
                "termlysessiondetailsonroll", dict(link) | {"sessions": str(sessions), "attendancereason": code}
            )

    def write_leaver(self, pupil: Pupil) -> None:
        row = _pupil_row(pupil, self._census_id(pupil), self.term)
        row["leavingdate"] = format_census_date(pupil.leaving_date or self.extract.reference_date)
        columns = set(self._writers["pupilnolongeronroll"][1])
        self._write("pupilnolongeronroll", {key: value for key, value in row.items() if key in columns})


def _ids(table: str, number: int, source: str) -> dict[str, str]:
    """The non-blank bookkeeping columns every table has: its table id, NativeId, order and source."""
    text = str(number)
    return {f"{table}tableid": text, "NativeId": text, f"{table}orderseqcolumn": text, "sourceid": source}


def _schoolcensus_rows(extract: CensusExtract) -> Iterator[dict[str, str]]:
    for number, school in enumerate(extract.schools, 1):
        created = dt.datetime.combine(extract.reference_date, dt.time(8 + school.urn % 9, school.urn * 7 % 60))
        created += dt.timedelta(days=school.urn % 5, seconds=school.urn * 13 % 60)
        yield {
            "sourceid": str(number),
            "name": "School Census",
            "collection": "SC",
            "term": extract.term,
            "year": str(extract.year),
            "referencedate": format_census_date(extract.reference_date),
            "serialno": "1",
            "sourcelevel": "S",
            "estab": school.estab,
            "softwarecode": school.software_code,
            "urn": str(school.urn),
            "datetime": format_census_date(created),
            "lea": extract.la_code,
        }


def _school_rows(extract: CensusExtract) -> Iterator[dict[str, str]]:
    for number, school in enumerate(extract.schools, 1):
        yield {
            "sourceid": str(number),
            "schoolcensustableid": str(number),
            "schoolname": school.name,
            "intake": school.intake,
            "phase": school.phase,
            "type": school.school_type,
            "highestncyeargroup": school.highest_nc_year,
            "governance": school.governance,
            "lowestncyeargroup": school.lowest_nc_year,
        }


def _pupil_row(pupil: Pupil, census_id: str, term: CensusTerm) -> dict[str, str]:
    row = {
        "sourceid": census_id,
        "schoolcensustableid": census_id,
        "upn": pupil.upn,
        "surname": pupil.surname,
        "forename": pupil.forename,
        "middlenames": pupil.middlenames,
        "preferredsurname": pupil.surname,
        "dob": format_census_date(pupil.dob),
        "entrydate": format_census_date(pupil.entry_date),
        "termlysessionspossible": _text(pupil.sessions_possible),
        "termlysessionsauthorised": _text(pupil.sessions_authorised),
        "termlysessionsunauthorised": _text(pupil.sessions_unauthorised),
        "sex": pupil.sex,
        "yssa": pupil.yssa,
        "language": pupil.language,
        "enrolstatus": pupil.enrol_status,
        "senprovision": pupil.sen_provision,
        "ncyearactual": pupil.nc_year,
    }
    if term == "Spring":
        row["ethnicity"] = pupil.ethnicity
    return row


def _address_row(address: Address) -> dict[str, str]:
    return {
        "uniquepropertyreferencenumber": str(address.uprn),
        "postcode": address.postcode,
        "saon": address.saon,
        "paon": address.paon,
        "street": address.street,
        "locality": address.locality,
        "town": address.town,
        "administrativearea": "Norfolk",
        "posttown": address.post_town,
    }


def _text(value: int | None) -> str:
    return "" if value is None else str(value)
