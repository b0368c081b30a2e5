"""Synthetic non-census school returns for the pupils of a generated census extract.

:func:`generate_all_returns` writes every return into its inbox folder (layouts: docs/returns.md): Common Transfer
Files, the School Workforce Census, the NCMP export, EYFS profile results, opt-out requests, post-16 applications and
offers, and young people's activity updates. Every pupil-level row is a pupil of the extract (same UPN, names, date
of birth), so the returns join to the census. Each return draws from its own ``random.Random`` seeded from ``seed``
and the return's name, so the output is byte-identical for the same extract and seed, and adding a return does not
change the others. Rows are written as they are made (no whole file in memory).

The returns describe the academic year of the census (autumn ``Y``): CTFs for the Year 7 intake (sent in July of
``Y``), in-year admissions and leavers after census day; NCMP measured between November ``Y`` and June ``Y+1``; EYFS
profiles completed in June ``Y+1`` for the Reception pupils; post-16 applications of the Year 11 pupils.
"""

from __future__ import annotations

import csv
import datetime as dt
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from xml.sax.saxutils import escape

from pupilshare.dates import age_in_years
from pupilshare.generate.census import CensusExtract, Pupil, School, academic_year_start
from pupilshare.ingest.eyfs import COLUMNS as EYFS_COLUMNS
from pupilshare.ingest.eyfs import GLD_GOALS, OTHER_GOALS
from pupilshare.ingest.ncmp import COLUMNS as NCMP_COLUMNS
from pupilshare.ingest.optouts import COLUMNS as OPTOUT_COLUMNS
from pupilshare.ingest.post16 import ACTIVITY_COLUMNS, POST16_COLUMNS
from pupilshare.ingest.workforce import ABSENCE_COLUMNS, CONTRACT_COLUMNS, STAFF_COLUMNS, VACANCY_COLUMNS

#: Inbox sub-folder of each return (the inbox driver's return type names).
INBOX_FOLDERS = ("ctf", "workforce", "ncmp", "eyfs", "optouts", "post16", "activity")
_NEIGHBOUR_LAS = ("935", "873", "874", "881")  # Suffolk, Cambridgeshire, Peterborough, Essex: in-year arrivals
_SEN_NEEDS = ("SPLD", "MLD", "SEMH", "SLCN", "ASD", "OTH", "PD", "HI", "VI")
_ETHNICITIES = (("WBRI", 0.82), ("WOTH", 0.07), ("MWBC", 0.02), ("AIND", 0.01), ("BAFR", 0.01), ("NOBT", 0.07))


def generate_all_returns(census_extract: CensusExtract, out_inbox_dir: Path, seed: int) -> dict[str, dict]:
    """Write every non-census return for ``census_extract`` under ``out_inbox_dir/<return type>/``.

    Returns ``{return type: {"files": n, "rows": {file kind: n}}}``. Deterministic for ``(census_extract, seed)``.
    """
    out_inbox_dir = Path(out_inbox_dir)
    writers = {
        "ctf": write_ctf_files,
        "workforce": write_workforce_census,
        "ncmp": write_ncmp_export,
        "eyfs": write_eyfs_results,
        "optouts": write_optout_requests,
        "post16": write_post16_applications,
        "activity": write_activity_updates,
    }
    return {
        name: writer(census_extract, out_inbox_dir / name, random.Random(f"{seed}:{name}"))  # noqa: S311
        for name, writer in writers.items()
    }


# --- helpers --------------------------------------------------------------------------------------------------------


def _write_csv(path: Path, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow(row)
            count += 1
    return count


def _weekday(day: dt.date) -> dt.date:
    return day + dt.timedelta(days=7 - day.weekday()) if day.weekday() >= 5 else day


def _day_between(rng: random.Random, first: dt.date, last: dt.date) -> dt.date:
    return _weekday(first + dt.timedelta(days=rng.randrange(max((last - first).days, 1))))


def _after_working_days(first: dt.date, days: int) -> dt.date:
    """The last day of an absence of ``days`` working days (Monday to Friday) starting on weekday ``first``."""
    last = first
    for _ in range(days - 1):
        last += dt.timedelta(days=3 if last.weekday() == 4 else 1)
    return last


def _pick(rng: random.Random, weighted: Sequence[tuple[str, float]]) -> str:
    return rng.choices([code for code, _ in weighted], weights=[weight for _, weight in weighted])[0]


def _by_year(extract: CensusExtract, *years: str) -> Iterator[Pupil]:
    return (pupil for pupil in extract.pupils if pupil.nc_year in years)


# --- Common Transfer Files ------------------------------------------------------------------------------------------


def write_ctf_files(extract: CensusExtract, folder: Path, rng: random.Random) -> dict:
    """CTFs: the Year 7 intake from the LA's primaries (one file per feeder primary and secondary, sent in July),
    in-year admissions (one file per pupil, some from neighbouring LAs) and leavers after census day to ``XXXXXXX``
    (not known) or ``MMMMMMM`` (abroad, independent). Pupils in a file are the extract's (same UPN, names, DOB)."""
    folder.mkdir(parents=True, exist_ok=True)
    year = academic_year_start(extract.reference_date)
    schools = {school.urn: school for school in extract.schools}
    by_estab = {school.estab: school for school in extract.schools}
    primaries = [school for school in extract.schools if school.phase != "SS"]
    feeders = _feeder_primaries(extract.schools, rng)
    batches: dict[tuple, list[Pupil]] = defaultdict(list)
    for pupil in extract.pupils:
        school = schools[pupil.school_urn]
        issuer = by_estab.get(pupil.upn[4:8])
        if pupil.nc_year == "7" and school.phase == "SS" and issuer is not None and issuer.phase != "SS":
            sender = _year6_school(issuer, feeders[school.estab], rng)
            sent = _weekday(dt.date(year, 7, 8 + pupil.school_urn % 10))
            batches[(extract.la_code, sender.estab, sender.name, extract.la_code, school.estab, sent)].append(pupil)
        elif pupil.entry_date > dt.date(year, 9, 20) and rng.random() < 0.5:
            sent = pupil.entry_date - dt.timedelta(days=rng.randint(1, 5))
            if rng.random() < 0.3 or not primaries:
                source = (rng.choice(_NEIGHBOUR_LAS), str(rng.randrange(2000, 5000)), "Out of county school")
            else:
                other = rng.choice([item for item in extract.schools if item.phase == school.phase] or primaries)
                source = (extract.la_code, other.estab, other.name)
            batches[(*source, extract.la_code, school.estab, sent, pupil.upn)].append(pupil)
        elif rng.random() < 0.004:
            dest = "XXX" if rng.random() < 0.6 else "MMM"
            sent = _weekday(extract.reference_date + dt.timedelta(days=rng.randint(10, 60)))
            batches[(extract.la_code, school.estab, school.name, dest, dest + dest[0], sent)].append(pupil)
    for pupil in getattr(extract, "leavers", ()):
        left = getattr(pupil, "leaving_date", None)
        school = schools.get(pupil.school_urn)
        if left and school and extract.reference_date - left < dt.timedelta(days=365) and rng.random() < 0.3:
            dest = "XXX" if rng.random() < 0.6 else "MMM"
            batches[(extract.la_code, school.estab, school.name, dest, dest + dest[0], left, pupil.upn)].append(pupil)
    serials: Counter = Counter()
    pupils_written = 0
    for key in sorted(batches, key=lambda item: tuple(str(part) for part in item)):
        source_lea, source_estab, source_name, dest_lea, dest_estab, sent = key[:6]
        serials[(source_lea, source_estab, dest_lea, dest_estab)] += 1
        serial = serials[(source_lea, source_estab, dest_lea, dest_estab)]
        name = f"{source_lea}{source_estab}_CTF_{dest_lea}{dest_estab}_{serial:03d}.xml"
        header = (source_lea, source_estab, source_name, dest_lea, dest_estab, sent)
        write_ctf(folder / name, header, batches[key], rng, schools)
        pupils_written += len(batches[key])
    return {"files": len(batches), "rows": {"ctf_files": len(batches), "ctf_pupils": pupils_written}}


#: Feeder primaries per secondary: English secondaries take most of their Year 7 from a handful of primaries, so a
#: primary's July CTFs go to one to three secondaries and the file count grows with the schools, not their square.
_FEEDERS_PER_SECONDARY = 6


def _feeder_primaries(schools: Sequence[School], rng: random.Random) -> dict[str, tuple[School, ...]]:
    """``{secondary estab: its feeder primaries}``, drawn once per extract."""
    primaries = sorted((school for school in schools if school.phase != "SS"), key=lambda school: school.estab)
    secondaries = sorted((school for school in schools if school.phase == "SS"), key=lambda school: school.estab)
    feeders: dict[str, tuple[School, ...]] = {}
    step = max(len(primaries) // max(len(secondaries), 1), 1)
    for number, secondary in enumerate(secondaries):
        # the secondary's own run of `step` primaries (the runs cover all but a few primaries), plus two drawn at random
        run = [primaries[(number * step + offset) % len(primaries)] for offset in range(min(step, len(primaries)))]
        drawn = rng.sample(primaries, min(2, len(primaries))) if primaries else []
        feeders[secondary.estab] = tuple(dict.fromkeys([*run, *drawn]))[: max(_FEEDERS_PER_SECONDARY, step)]
    return feeders


def _year6_school(issuer: School, feeders: tuple[School, ...], rng: random.Random) -> School:
    """The primary a Year 7 pupil left in July: the school that issued the UPN when it feeds this secondary (or
    when the secondary has no feeders), otherwise one of the secondary's feeders (the pupil moved in Key Stage 2)."""
    if issuer in feeders or not feeders:
        return issuer
    return rng.choice(feeders)


def write_ctf(
    path: Path, header: tuple, pupils: Iterable[Pupil], rng: random.Random, schools: dict[int, School] | None = None
) -> int:
    """Write one CTF (streamed, pupil by pupil); ``header`` is (source LA, estab, name, dest LA, estab, date)."""
    source_lea, source_estab, source_name, dest_lea, dest_estab, sent = header
    moment = dt.datetime.combine(sent, dt.time(9 + rng.randrange(8), rng.randrange(60), rng.randrange(60)))
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        handle.write(
            '<?xml version="1.0" encoding="UTF-8"?>\n<CTfile>\n<Header>'
            "<DocumentName>Common Transfer File</DocumentName><CTFversion>20.0</CTFversion>"
            f"<DateTime>{moment.isoformat()}</DateTime><DocumentQualifier>full</DocumentQualifier>"
            "<SupplierID>SIMS</SupplierID>"
            f"<SourceSchool><LEA>{source_lea}</LEA><Estab>{source_estab}</Estab>"
            f"<SchoolName>{escape(source_name)}</SchoolName><AcademicYear>{academic_year_start(sent)}</AcademicYear>"
            f"</SourceSchool><DestSchool><LEA>{dest_lea}</LEA><Estab>{dest_estab}</Estab></DestSchool>"
            "</Header>\n<CTFpupilData>\n"
        )
        for pupil in pupils:
            handle.write(_ctf_pupil(pupil, rng, header, sent))
            count += 1
        handle.write("</CTFpupilData>\n</CTfile>\n")
    return count


def _ctf_pupil(pupil: Pupil, rng: random.Random, header: tuple, sent: dt.date) -> str:
    address = pupil.address
    year = academic_year_start(sent)
    periods = getattr(pupil, "fsm_periods", ())
    if not periods and rng.random() < 0.22:
        periods = (
            (_day_between(rng, max(pupil.dob + dt.timedelta(days=4 * 365), dt.date(year - 3, 9, 1)), sent), None),
        )
    fsm = "".join(
        f"<FSMinstance><FSMstartDate>{start}</FSMstartDate>"
        + (f"<FSMendDate>{end}</FSMendDate>" if end else "")
        + "<UKcountry>ENG</UKcountry></FSMinstance>"
        for start, end in periods
    )
    sen = ""
    if pupil.sen_provision in ("K", "E"):
        need = getattr(pupil, "sen_need", "") or rng.choice(_SEN_NEEDS)
        sen = (
            f"<SEN><StartDate>{dt.date(year - 1, 9, 1)}</StartDate><SENprovision>{pupil.sen_provision}</SENprovision>"
            f"</SEN><SENneeds><SENneed><SENtypeRank>1</SENtypeRank><SENtype>{need}</SENtype>"
            "</SENneed></SENneeds>"
        )
    possible = pupil.sessions_possible or rng.randrange(300, 330, 2)
    absent = round(possible * rng.betavariate(1.1, 18))
    unauthorised = 0 if rng.random() < 0.55 else round(absent * rng.random() * 0.8)
    return (
        f"<Pupil><UPN>{pupil.upn}</UPN><Surname>{escape(pupil.surname)}</Surname>"
        f"<Forename>{escape(pupil.forename)}</Forename><DOB>{pupil.dob}</DOB><Sex>{pupil.sex}</Sex>"
        f"<BasicDetails><MiddleNames>{escape(pupil.middlenames)}</MiddleNames>"
        f"<PreferredSurname>{escape(pupil.surname)}</PreferredSurname><NCyearActual>{pupil.nc_year}</NCyearActual>"
        f"<Ethnicity>{getattr(pupil, 'ethnicity', '') or _pick(rng, _ETHNICITIES)}</Ethnicity>"
        f"<Languages><Type><LanguageType>F</LanguageType><Language>{pupil.language}</Language></Type></Languages>"
        f"<EnrolStatus>{pupil.enrol_status}</EnrolStatus></BasicDetails>"
        f"<FSMhistory>{fsm}</FSMhistory><SENhistory>{sen}</SENhistory>"
        f"<Address><BS7666Address><SAON>{escape(address.saon)}</SAON><PAON>{escape(address.paon)}</PAON>"
        f"<Street>{escape(address.street)}</Street><Locality>{escape(address.locality)}</Locality>"
        f"<Town>{escape(address.town)}</Town><AdministrativeArea>Norfolk</AdministrativeArea>"
        f"<PostTown>{escape(address.post_town)}</PostTown>"
        f"<UniquePropertyReferenceNumber>{address.uprn}</UniquePropertyReferenceNumber></BS7666Address>"
        f"<PostCode>{address.postcode}</PostCode></Address>"
        f"<Attendance><YearData><Year>{year}</Year><LEA>{header[0]}</LEA><Estab>{header[1]}</Estab>"
        f"<SessionsPossible>{possible}</SessionsPossible><SessionsAuthorised>{absent - unauthorised}"
        f"</SessionsAuthorised><SessionsUnauthorised>{unauthorised}</SessionsUnauthorised></YearData></Attendance>"
        f"<SchoolHistory><School><LEA>{header[0]}</LEA><Estab>{header[1]}</Estab>"
        f"<SchoolName>{escape(header[2])}</SchoolName><EntryDate>{dt.date(year - 2, 9, 3)}</EntryDate>"
        f"<LeavingDate>{sent}</LeavingDate></School></SchoolHistory></Pupil>\n"
    )


# --- School Workforce Census ----------------------------------------------------------------------------------------


def write_workforce_census(extract: CensusExtract, folder: Path, rng: random.Random) -> dict:
    """One LA-wide SWC set ``swc_<LA>_<year>/`` (staff, contracts, absence, vacancies) sized from each school's roll:
    about one teacher per 20 pupils, one teaching assistant per 25, one other support post per 30."""
    year = academic_year_start(extract.reference_date)
    target = folder / f"swc_{extract.la_code}_{year}"
    target.mkdir(parents=True, exist_ok=True)
    roll = Counter(pupil.school_urn for pupil in extract.pupils)
    staff, contracts, absences, vacancies = [], [], [], []
    trns = rng.sample(range(1_000_000, 9_999_999), sum(roll.values()) // 15 + 50 * len(extract.schools))
    for school in extract.schools:
        _school_workforce(rng, extract.la_code, school, roll[school.urn], year, trns, staff, contracts, absences)
        for number in range(1, 2 + int(rng.random() < 0.3)):
            if rng.random() < 0.35:
                post = "TCH" if rng.random() < 0.85 else rng.choice(("HDT", "DHT", "AHT"))
                subject = rng.choice(("MAT", "ENG", "PHY", "CHE", "BIO", "COM", "FRE")) if school.phase != "PS" else ""
                vacancies.append((extract.la_code, school.estab, f"V{number:03d}", post,
                                  "PRM" if rng.random() < 0.8 else "FXT", subject,
                                  "true" if rng.random() < 0.4 else "false"))  # fmt: skip
    rows = {
        "swc_staff": _write_csv(target / "staff.csv", STAFF_COLUMNS, staff),
        "swc_contracts": _write_csv(target / "contracts.csv", CONTRACT_COLUMNS, contracts),
        "swc_absences": _write_csv(target / "absence.csv", ABSENCE_COLUMNS, absences),
        "swc_vacancies": _write_csv(target / "vacancies.csv", VACANCY_COLUMNS, vacancies),
    }
    return {"files": 4, "rows": rows}


def _school_workforce(rng, la_code, school, pupils, year, trns, staff, contracts, absences) -> None:
    teachers = max(2, round(pupils / 20))
    roles = ["HDT"] + (["DHT"] if pupils > 150 else []) + (["AHT"] * 2 if school.phase != "PS" else [])
    roles += ["TCH"] * max(teachers - len(roles), 1)
    roles += ["TAS" if rng.random() < 0.85 else "HLT" for _ in range(round(pupils / 25))]
    roles += [rng.choice(("SUP", "ADM", "ADM", "TEC")) for _ in range(1 + round(pupils / 30))]
    for number, role in enumerate(roles, 1):
        staff_id = f"S{number:05d}"
        teacher = role in ("HDT", "DHT", "AHT", "TCH")
        qualified = teacher and rng.random() < 0.96
        dob = dt.date(year - rng.randint(22, 64), rng.randint(1, 12), rng.randint(1, 28))
        staff.append((la_code, school.estab, staff_id, str(trns.pop()) if qualified else "",
                      "F" if rng.random() < (0.62 if teacher else 0.88) else "M", dob.isoformat(),
                      _pick(rng, _ETHNICITIES), "true" if qualified else "false"))  # fmt: skip
        kind = "PRM" if rng.random() < 0.85 else rng.choice(("FXT", "TMP"))
        start = dt.date(year - rng.randint(0, 20), 9, 1)
        end = (start + dt.timedelta(days=365 * rng.randint(1, 2) - 1)).isoformat() if kind != "PRM" else ""
        fte = 1.0 if teacher and rng.random() < 0.75 else round(rng.uniform(0.4, 0.95), 2)
        contracts.append((la_code, school.estab, staff_id, f"C{number:05d}", kind, role, start.isoformat(), end,
                          f"{fte:.2f}", f"{fte * (32.5 if teacher else 37):.1f}"))  # fmt: skip
        episodes = rng.choices((0, 1, 2, 3), weights=(50, 30, 14, 6))[0]
        # One episode per school term at most, so that episodes of one person never overlap.
        for term_start in sorted(
            rng.sample((dt.date(year - 1, 9, 1), dt.date(year, 1, 5), dt.date(year, 4, 20)), episodes)
        ):
            days = rng.randint(1, 5) if rng.random() < 0.9 else rng.randint(10, 45)
            first = _day_between(rng, term_start, term_start + dt.timedelta(days=40))
            last = _after_working_days(first, days)
            absences.append((la_code, school.estab, staff_id, first.isoformat(), last.isoformat(), str(days),
                             "SIC" if rng.random() < 0.97 else "PRG"))  # fmt: skip


# --- NCMP -----------------------------------------------------------------------------------------------------------


def write_ncmp_export(extract: CensusExtract, folder: Path, rng: random.Random) -> dict:
    """The NCMP system export for the year: every Reception and Year 6 pupil, measured on their school's visit day
    (height about 111 cm / 145 cm, weight skewed upwards as real BMI is) or with the reason they were not."""
    year = academic_year_start(extract.reference_date)
    visits: dict[tuple[int, str], dt.date] = {}

    def rows() -> Iterator[tuple]:
        for pupil in _by_year(extract, "R", "6"):
            key = (pupil.school_urn, pupil.nc_year)
            if key not in visits:
                visits[key] = _day_between(rng, dt.date(year, 11, 2), dt.date(year + 1, 6, 30))
            reason = rng.choices(("", "OPTOUT", "ABSENT", "REFUSED", "DISABILITY", "LEFT"),
                                 weights=(95.0, 1.5, 2.4, 0.5, 0.2, 0.4))[0]  # fmt: skip
            measured = ("", "", "")
            if not reason:
                height, weight = _body(rng, pupil.nc_year)
                measured = (visits[key].isoformat(), f"{height:.1f}", f"{weight:.1f}")
            yield (pupil.upn, pupil.forename, pupil.surname, pupil.dob.isoformat(), pupil.sex, pupil.school_urn,
                   pupil.nc_year, *measured, reason)  # fmt: skip

    count = _write_csv(folder / f"ncmp_{extract.la_code}_{year}-{(year + 1) % 100:02d}.csv", NCMP_COLUMNS, rows())
    return {"files": 1, "rows": {"ncmp_measurements": count}}


def _body(rng: random.Random, nc_year: str) -> tuple[float, float]:
    """Height (cm) and weight (kg): normal height, weight from a right-skewed BMI (about a fifth overweight)."""
    height = rng.gauss(111.0, 4.8) if nc_year == "R" else rng.gauss(145.0, 7.0)
    bmi = (15.4 if nc_year == "R" else 17.2) * rng.lognormvariate(0, 0.12 if nc_year == "R" else 0.17)
    return height, bmi * (height / 100) ** 2


# --- EYFS -----------------------------------------------------------------------------------------------------------


def write_eyfs_results(extract: CensusExtract, folder: Path, rng: random.Random) -> dict:
    """EYFSP outcomes for every Reception pupil; about two thirds reach a good level of development."""
    year = academic_year_start(extract.reference_date)

    def rows() -> Iterator[tuple]:
        for pupil in _by_year(extract, "R"):
            yield (pupil.upn, pupil.school_urn, f"{year}/{(year + 1) % 100:02d}", *_outcomes(rng))

    count = _write_csv(folder / f"eyfsp_{extract.la_code}_{year + 1}.csv", EYFS_COLUMNS, rows())
    return {"files": 1, "rows": {"eyfs_results": count}}


def _outcomes(rng: random.Random) -> list[str]:
    roll = rng.random()
    if roll < 0.005:
        return ["A"] * (len(GLD_GOALS) + len(OTHER_GOALS))
    if roll < 0.672:
        gld = ["2"] * len(GLD_GOALS)
    else:
        gld = ["1" if rng.random() < 0.4 else "2" for _ in GLD_GOALS]
        gld[rng.randrange(len(gld))] = "1"
    return gld + ["2" if rng.random() < (0.93 if roll < 0.672 else 0.6) else "1" for _ in OTHER_GOALS]


# --- opt-outs -------------------------------------------------------------------------------------------------------


def write_optout_requests(extract: CensusExtract, folder: Path, rng: random.Random) -> dict:
    """Opt-out requests and withdrawals since the start of last school year, with the edge cases the rules must
    handle: a parent's request after the 16th birthday (wrong party), pupils' own requests, withdrawals, and two
    requests for one pupil on one day. Rows are in request order."""
    year = academic_year_start(extract.reference_date)
    first, last = dt.date(year - 1, 9, 1), extract.reference_date
    requests: list[tuple] = []
    edge_cases = {"wrong_party": False, "same_day": False}
    for pupil in extract.pupils:
        age = age_in_years(pupil.dob, last)
        if pupil.nc_year == "R" and rng.random() < 0.01:
            requests += _requests(rng, pupil, "sure_start", first, last)
        elif age >= 13 and rng.random() < 0.03:
            requests += _requests(rng, pupil, rng.choice(("yss", "yss", "post16", "all")), first, last)
        elif age >= 16 and not edge_cases["wrong_party"]:
            requests.append((pupil.upn, "yss", "opt_out", "parent", last.isoformat(), "letter"))
            edge_cases["wrong_party"] = True
        elif 13 <= age < 16 and not edge_cases["same_day"]:
            day = _day_between(rng, first, last).isoformat()
            requests.append((pupil.upn, "all", "opt_out", "parent", day, "form"))
            requests.append((pupil.upn, "all", "withdraw", "parent", day, "school"))
            edge_cases["same_day"] = True
    requests.sort(key=lambda row: row[4])
    count = _write_csv(folder / f"optouts_{extract.la_code}_{last.isoformat()}.csv", OPTOUT_COLUMNS, requests)
    return {"files": 1, "rows": {"optout_requests": count}}


def _requests(rng: random.Random, pupil: Pupil, scope: str, first: dt.date, last: dt.date) -> list[tuple]:
    """An opt-out by the right party for the pupil's age on the day, and sometimes its later withdrawal."""
    day = _day_between(rng, max(first, pupil.dob), last)
    party = "pupil" if age_in_years(pupil.dob, day) >= 16 else "parent"
    rows = [(pupil.upn, scope, "opt_out", party, day.isoformat(), rng.choice(("letter", "school", "form")))]
    if rng.random() < 0.1 and day < last - dt.timedelta(days=3):
        later = _day_between(rng, day + dt.timedelta(days=1), last)
        party = "pupil" if age_in_years(pupil.dob, later) >= 16 else "parent"
        rows.append((pupil.upn, scope, "withdraw", party, later.isoformat(), "form"))
    return rows


# --- post-16 and activity -------------------------------------------------------------------------------------------


def write_post16_applications(extract: CensusExtract, folder: Path, rng: random.Random) -> dict:
    """Year 11 applications to 1-3 providers (UKPRNs 8 digits from 1), each status change a row: applied, offered,
    then one accepted (the others declined) and enrolled in September."""
    year = academic_year_start(extract.reference_date)
    providers = sorted(rng.sample(range(10_000_000, 10_090_000), 40))

    def rows() -> Iterator[tuple]:
        for pupil in _by_year(extract, "11"):
            chosen = rng.sample(providers, rng.choices((1, 2, 3), weights=(40, 40, 20))[0])
            offers = []
            for ukprn in chosen:
                applied = _day_between(rng, dt.date(year, 10, 15), dt.date(year + 1, 1, 31))
                yield (pupil.upn, ukprn, "applied", applied.isoformat())
                if rng.random() < 0.85:
                    offered = _day_between(rng, dt.date(year + 1, 2, 1), dt.date(year + 1, 4, 30))
                    offers.append(ukprn)
                    yield (pupil.upn, ukprn, "offered", offered.isoformat())
            if offers:
                accepted = rng.choice(offers)
                for ukprn in offers:
                    status = "accepted" if ukprn == accepted else "declined"
                    yield (
                        pupil.upn,
                        ukprn,
                        status,
                        _day_between(rng, dt.date(year + 1, 5, 1), dt.date(year + 1, 6, 30)).isoformat(),
                    )
                if rng.random() < 0.9:
                    yield (pupil.upn, accepted, "enrolled", _weekday(dt.date(year + 1, 9, 4)).isoformat())

    count = _write_csv(folder / f"post16_{extract.la_code}_{year + 1}.csv", POST16_COLUMNS, rows())
    return {"files": 1, "rows": {"post16_applications": count}}


def write_activity_updates(extract: CensusExtract, folder: Path, rng: random.Random) -> dict:
    """Activity updates for the academic-age 16-17 cohort on roll (Years 12 and 13): school sixth form (210) in
    September, and for some a later change (college, apprenticeship, employment, NEET). Some rows carry a ULN, a few
    only the ULN. Youth Support Services keep in touch with young people whose census ``yssa`` is No (restricted):
    half of them get a YSS contact of their own (re-engagement, NEET or still at school), so the NCCIS feed has
    restricted young people with YSS-collected activity."""
    year = academic_year_start(extract.reference_date)
    later = (("220", "provider"), ("310", "provider"), ("320", "provider"), ("540", "yss"), ("610", "yss"),
             ("810", "yss"))  # fmt: skip

    def rows() -> Iterator[tuple]:
        for pupil in _by_year(extract, "12", "13"):
            uln = str(rng.randrange(1_000_000_000, 9_999_999_999)) if rng.random() < 0.4 else ""
            upn = "" if uln and rng.random() < 0.08 else pupil.upn
            yield (upn, uln, "210", _day_between(rng, dt.date(year, 9, 5), dt.date(year, 9, 30)).isoformat(), "school")
            if rng.random() < 0.12:
                code, source = rng.choice(later)
                day = _day_between(rng, dt.date(year, 10, 1), extract.reference_date + dt.timedelta(days=90))
                yield (upn, uln, code, day.isoformat(), source)
            if pupil.yssa == "No" and rng.random() < 0.5:
                code = rng.choice(("210", "530", "610"))
                day = _day_between(rng, dt.date(year, 10, 1), extract.reference_date + dt.timedelta(days=60))
                yield (pupil.upn, "", code, day.isoformat(), "yss")

    count = _write_csv(folder / f"activity_{extract.la_code}_{extract.reference_date.isoformat()}.csv",
                       ACTIVITY_COLUMNS, rows())  # fmt: skip
    return {"files": 1, "rows": {"activity_updates": count}}
