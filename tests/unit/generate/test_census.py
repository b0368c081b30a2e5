"""The synthetic census extract: schema-exact CSVs, valid UPNs, ages that fit NC years, Norfolk addresses, one seed
one set of bytes."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import re
import time
from collections import Counter
from pathlib import Path

import pytest
from stdnum.gb import upn as upn_check

from pupilshare.dates import age_in_years, parse_census_date
from pupilshare.generate import (
    NORFOLK_POSTCODE_DISTRICTS,
    CensusExtract,
    CensusGeneratorError,
    build_census_extract,
    generate_census_extract,
    write_census_extract,
)
from pupilshare.generate.census import TERM_TABLES, format_census_date
from pupilshare.reference import census_codes, census_columns

TABLES = ("school", "schoolcensus", "pupilonroll", "addressesonroll")
NC_YEARS = ["R"] + [str(year) for year in range(1, 14)]
REFERENCE_DATE = dt.date(2026, 10, 1)
# Royal Mail's shapes: A9, A99, AA9, AA99, A9A, AA9A, then a space and 9AA.
UK_POSTCODE = re.compile(r"^(?:[A-Z]{1,2}\d{1,2}|[A-Z]{1,2}\d[A-Z]) \d[ABD-HJLNP-UW-Z]{2}$")
CENSUS_DATETIME = re.compile(r"^\d{4}-(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)-\d{2} \d{2}:\d{2}:\d{2}$")


@pytest.fixture(scope="module")
def extract() -> CensusExtract:
    return build_census_extract(schools=20, pupils=3000, seed=3, reference_date=REFERENCE_DATE)


@pytest.fixture(scope="module")
def written(extract, tmp_path_factory) -> tuple[Path, dict[str, int]]:
    folder = tmp_path_factory.mktemp("census") / "extract"  # does not exist yet: the writer makes it
    return folder, write_census_extract(extract, folder)


def _read(folder: Path, table: str) -> tuple[list[str], list[dict[str, str]]]:
    with (folder / f"{table}.csv").open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def _files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


@pytest.mark.parametrize("table", TABLES)
def test_write_census_extract__header_is_every_schema_column_in_order(written, table):
    folder, _ = written
    header, _ = _read(folder, table)
    assert header == list(census_columns(table, "Autumn"))
    assert "NativeId" in header


def test_write_census_extract__every_autumn_table_with_counted_rows(written):
    folder, counts = written
    assert sorted(path.name for path in folder.iterdir()) == sorted(f"{table}.csv" for table in TERM_TABLES["Autumn"])
    assert {table: counts[table] for table in TABLES} == {
        "schoolcensus": 20,
        "school": 20,
        "pupilonroll": 3000,
        "addressesonroll": 3000,
    }
    for table, rows in counts.items():
        raw = (folder / f"{table}.csv").read_bytes()
        assert b"\r" not in raw and raw.endswith(b"\n"), "\\n line endings"
        assert len(_read(folder, table)[1]) == rows


def test_build_census_extract__upns_validate_and_are_unique(extract):
    upns = [pupil.upn for pupil in extract.pupils]
    assert len(set(upns)) == len(upns)
    estabs = {school.estab for school in extract.schools}
    for upn in upns:
        assert upn_check.validate(upn) == upn
        assert upn[1:4] == "926" and upn[4:8] in estabs, upn


def test_build_census_extract__upn_carries_the_la_code():
    extract = build_census_extract(schools=2, pupils=50, seed=1, la_code="873")
    assert {pupil.upn[1:4] for pupil in extract.pupils} == {"873"}
    assert all(upn_check.is_valid(pupil.upn) for pupil in extract.pupils)


def test_build_census_extract__full_upn_serials_spill_to_another_school():
    """Secondary pupils' UPNs come from a primary; 1,000+ in one year group overflow to the secondary's own estab."""
    extract = build_census_extract(schools=2, pupils=9000, seed=1)
    upns = [pupil.upn for pupil in extract.pupils]
    assert len(set(upns)) == len(upns) and all(upn_check.is_valid(upn) for upn in upns)
    secondary = next(school for school in extract.schools if school.phase == "SS")
    assert any(upn[4:8] == secondary.estab for upn in upns)


def test_build_census_extract__more_pupils_than_upn_serials_is_refused():
    with pytest.raises(CensusGeneratorError, match="serial numbers"):
        build_census_extract(schools=1, pupils=7500, seed=1)  # about 1,070 a year group, one school, 999 serials


@pytest.mark.parametrize("la_code", ["92", "9260", "abc", "000", "001"])  # 001 is in the schema, not a UPN LA
def test_build_census_extract__unknown_la_code_is_refused(la_code):
    with pytest.raises(CensusGeneratorError, match="la_code"):
        build_census_extract(schools=2, pupils=10, seed=1, la_code=la_code)


def test_build_census_extract__no_schools_is_refused():
    with pytest.raises(CensusGeneratorError, match="at least one school"):
        build_census_extract(schools=0, pupils=10, seed=1)


def test_generate_census_extract__same_seed_gives_identical_bytes(tmp_path):
    first = generate_census_extract(tmp_path / "first", schools=6, pupils=400, seed=42)
    second = generate_census_extract(tmp_path / "second", schools=6, pupils=400, seed=42)
    assert first == second
    assert _files(tmp_path / "first") == _files(tmp_path / "second")


def test_generate_census_extract__different_seed_gives_different_files(tmp_path):
    generate_census_extract(tmp_path / "one", schools=6, pupils=400, seed=1)
    generate_census_extract(tmp_path / "two", schools=6, pupils=400, seed=2)
    one, two = _files(tmp_path / "one"), _files(tmp_path / "two")
    assert one.keys() == two.keys()
    assert all(one[name] != two[name] for name in one)


@pytest.mark.parametrize(
    ("reference_date", "reception_born"),
    [
        # Reception in 2026/27 were born 2021-09-01 .. 2022-08-31: they turn 5 during the school year.
        (dt.date(2026, 10, 1), (dt.date(2021, 9, 1), dt.date(2022, 8, 31))),
        (dt.date(2027, 1, 21), (dt.date(2021, 9, 1), dt.date(2022, 8, 31))),  # spring: same academic year
        (dt.date(2026, 9, 1), (dt.date(2021, 9, 1), dt.date(2022, 8, 31))),  # first day of the academic year
        (dt.date(2026, 8, 31), (dt.date(2020, 9, 1), dt.date(2021, 8, 31))),  # last day of the one before
    ],
)
def test_build_census_extract__every_dob_fits_its_nc_year(reference_date, reception_born):
    extract = build_census_extract(schools=8, pupils=1500, seed=5, reference_date=reference_date)
    first, last = reception_born
    for pupil in extract.pupils:
        years_after_reception = NC_YEARS.index(pupil.nc_year)
        earliest = first.replace(year=first.year - years_after_reception)
        latest = last.replace(year=last.year - years_after_reception)
        assert earliest <= pupil.dob <= latest, (pupil.nc_year, pupil.dob)
    assert {pupil.nc_year for pupil in extract.pupils} >= {"R", "6", "7", "11"}


def test_build_census_extract__yssa_blank_under_13_and_a_mix_from_13(extract):
    ages = [(age_in_years(pupil.dob, REFERENCE_DATE), pupil.yssa) for pupil in extract.pupils]
    assert all(yssa == "" for age, yssa in ages if age < 13)
    older = [yssa for age, yssa in ages if age >= 13]
    assert len(older) > 300 and all(older)
    shares = {code: count / len(older) for code, count in Counter(older).items()}
    assert set(shares) == {"Yes", "No", "UNS", "SNR"}
    assert 0.70 < shares["Yes"] < 0.86  # 78% asked for, with room for sampling noise


def test_build_census_extract__sen_language_and_sex_mix(extract):
    pupils = extract.pupils
    sen = Counter(pupil.sen_provision for pupil in pupils)
    assert set(sen) == {"N", "K", "E"}
    assert 0.10 < sen["K"] / len(pupils) < 0.16 and 0.03 < sen["E"] / len(pupils) < 0.07
    languages = Counter(pupil.language for pupil in pupils)
    assert 0.75 < languages["ENG"] / len(pupils) < 0.85 and len(languages) >= 8
    assert 0.45 < Counter(pupil.sex for pupil in pupils)["M"] / len(pupils) < 0.56
    assert {pupil.enrol_status for pupil in pupils} == {"C"}


def test_write_census_extract__every_code_is_in_the_schema_list(written):
    folder, _ = written
    filled: set[str] = set()
    for table in TABLES:
        _, rows = _read(folder, table)
        for column, spec in census_columns(table, "Autumn").items():
            if "category" not in spec:
                continue
            codes = set(census_codes(table, column, "Autumn"))
            values = {row[column] for row in rows} - {""}
            assert values <= codes, (table, column, values - codes)
            filled |= {f"{table}.{column}"} if values else set()
    assert filled >= {
        "school.phase",
        "school.type",
        "school.governance",
        "school.intake",
        "school.lowestncyeargroup",
        "school.highestncyeargroup",
        "schoolcensus.term",
        "schoolcensus.lea",
        "pupilonroll.sex",
        "pupilonroll.yssa",
        "pupilonroll.language",
        "pupilonroll.senprovision",
        "pupilonroll.ncyearactual",
        "pupilonroll.enrolstatus",
    }


def test_write_census_extract__ids_are_filled_and_link(written):
    folder, _ = written
    tables = {table: _read(folder, table)[1] for table in TABLES}
    for table, rows in tables.items():
        required = [name for name, spec in census_columns(table, "Autumn").items() if spec.get("canbeblank") is False]
        assert all(row[name] for row in rows for name in required), table
    census_ids = [row["schoolcensustableid"] for row in tables["schoolcensus"]]
    assert len(set(census_ids)) == len(census_ids)
    assert sorted(row["schoolcensustableid"] for row in tables["school"]) == sorted(census_ids)
    pupil_ids = [row["pupilonrolltableid"] for row in tables["pupilonroll"]]
    assert len(set(pupil_ids)) == len(pupil_ids)
    assert {row["schoolcensustableid"] for row in tables["pupilonroll"]} <= set(census_ids)
    assert sorted(row["pupilonrolltableid"] for row in tables["addressesonroll"]) == sorted(pupil_ids)


def test_write_census_extract__rows_carry_the_extract(extract, written):
    """The school row, census return and address of each pupil are the pupil's own."""
    folder, _ = written
    census = {row["schoolcensustableid"]: row for row in _read(folder, "schoolcensus")[1]}
    addresses = {row["pupilonrolltableid"]: row for row in _read(folder, "addressesonroll")[1]}
    rows = _read(folder, "pupilonroll")[1]
    assert {(row["term"], row["year"], row["lea"]) for row in census.values()} == {("AUT", "2026", "926")}
    for pupil, row in zip(extract.pupils, rows, strict=True):
        assert row["upn"] == pupil.upn and parse_census_date(row["dob"]) == pupil.dob
        assert census[row["schoolcensustableid"]]["urn"] == str(pupil.school_urn)
        address = addresses[row["pupilonrolltableid"]]
        assert (address["postcode"], address["uniquepropertyreferencenumber"]) == (
            pupil.address.postcode,
            str(pupil.address.uprn),
        )


def test_write_census_extract__dates_use_the_census_format(written):
    folder, _ = written
    census_rows = _read(folder, "schoolcensus")[1]
    values = [row[name] for row in census_rows for name in ("referencedate", "datetime")]
    values += [row[name] for row in _read(folder, "pupilonroll")[1] for name in ("dob", "entrydate")]
    assert all(CENSUS_DATETIME.match(value) for value in values)
    assert {row["referencedate"] for row in census_rows} == {"2026-Oct-01 00:00:00"}
    assert all(dt.datetime.strptime(value, "%Y-%b-%d %H:%M:%S") for value in values)


def test_write_census_extract__pupil_of_a_school_not_in_the_extract_is_refused(extract, tmp_path):
    stray = dataclasses.replace(extract.pupils[0], school_urn=999999)
    broken = dataclasses.replace(extract, pupils=[stray, *extract.pupils[1:]])
    with pytest.raises(CensusGeneratorError, match="999999"):
        write_census_extract(broken, tmp_path)


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (dt.date(2012, 3, 1), "2012-Mar-01 00:00:00"),
        (dt.date(2012, 2, 29), "2012-Feb-29 00:00:00"),
        (dt.datetime(2026, 10, 2, 14, 5, 9), "2026-Oct-02 14:05:09"),
    ],
)
def test_format_census_date__schema_format(moment, text):
    assert format_census_date(moment) == text


def test_build_census_extract__schools_by_phase(extract):
    schools = extract.schools
    ranges = {(school.phase, school.lowest_nc_year, school.highest_nc_year) for school in schools}
    assert ranges <= {("PS", "R", "6"), ("SS", "7", "11"), ("SS", "7", "13"), ("AT", "R", "13")}
    assert 0.75 <= sum(school.phase == "PS" for school in schools) / len(schools) <= 0.9
    assert all(school.estab[0] == ("2" if school.phase == "PS" else "4") for school in schools)
    assert all(len(school.estab) == 4 for school in schools)
    assert len({school.urn for school in schools}) == len(schools)
    assert all(100_000 <= school.urn <= 999_999 for school in schools)
    assert len({school.name for school in schools}) == len(schools)
    assert all(school.name.endswith(("School", "Academy")) for school in schools)
    by_urn = {school.urn: school for school in schools}
    for pupil in extract.pupils:
        school = by_urn[pupil.school_urn]
        low, high = NC_YEARS.index(school.lowest_nc_year), NC_YEARS.index(school.highest_nc_year)
        assert low <= NC_YEARS.index(pupil.nc_year) <= high
    sizes = Counter(pupil.school_urn for pupil in extract.pupils)
    primary = [sizes[school.urn] for school in schools if school.phase == "PS"]
    secondary = [sizes[school.urn] for school in schools if school.phase != "PS"]
    assert sum(secondary) / len(secondary) > 2 * sum(primary) / len(primary), "secondaries are bigger"


def test_build_census_extract__addresses_are_in_norfolk(extract):
    districts = {district.outward: district for district in NORFOLK_POSTCODE_DISTRICTS}
    for pupil in extract.pupils:
        address = pupil.address
        assert UK_POSTCODE.match(address.postcode), address.postcode
        district = districts[address.postcode.split()[0]]
        assert (address.town, address.post_town) == (district.town, district.post_town)
        assert address.paon and address.street
        assert 1 <= address.uprn <= 999_999_999_999
    towns = {pupil.address.postcode.split()[0]: pupil.address.town for pupil in extract.pupils}
    expected = {"NR3": "Norwich", "NR30": "Great Yarmouth", "PE30": "King's Lynn", "IP24": "Thetford", "IP22": "Diss"}
    assert all(towns[outward] == town for outward, town in expected.items() if outward in towns)
    assert len(towns) > 10


def test_build_census_extract__one_uprn_one_address_and_household(extract):
    by_uprn: dict[int, set] = {}
    for pupil in extract.pupils:
        by_uprn.setdefault(pupil.address.uprn, set()).add((pupil.address, pupil.surname))
    assert all(len(households) == 1 for households in by_uprn.values())
    assert len(by_uprn) < len(extract.pupils), "some siblings share a home"


def test_build_census_extract__entry_dates_and_sessions_are_plausible(extract):
    for pupil in extract.pupils:
        assert age_in_years(pupil.dob, pupil.entry_date) >= 4 and pupil.entry_date <= REFERENCE_DATE
        assert pupil.entry_date.weekday() < 5 and pupil.entry_date.month != 8
        if pupil.nc_year in ("R", "12", "13"):
            assert pupil.sessions_possible is None
        if pupil.sessions_possible is not None:
            assert 0 <= pupil.sessions_authorised + pupil.sessions_unauthorised <= pupil.sessions_possible
    september = sum(pupil.entry_date.month == 9 for pupil in extract.pupils) / len(extract.pupils)
    assert september > 0.8
    assert sum(pupil.sessions_possible is not None for pupil in extract.pupils) > 1000


@pytest.mark.slow
def test_generate_census_extract__county_scale_in_well_under_a_minute(tmp_path):
    started = time.perf_counter()
    counts = generate_census_extract(tmp_path, schools=420, pupils=130_000, seed=1)
    elapsed = time.perf_counter() - started
    assert counts["pupilonroll"] == counts["addressesonroll"] == 130_000
    assert elapsed < 30, f"{elapsed:.1f}s"


# --- terms, detail tables and rates -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("term", "expected"),
    [("Autumn", dt.date(2026, 10, 1)), ("Spring", dt.date(2027, 1, 21)), ("Summer", dt.date(2027, 5, 20))],
)
def test_census_reference_date__thursdays(term, expected):
    from pupilshare.generate.census_extras import census_reference_date

    assert census_reference_date(term, 2026) == expected and expected.weekday() == 3


@pytest.fixture(scope="module")
def year_folders(tmp_path_factory) -> Path:
    from pupilshare.generate.census import generate_census_year

    folder = tmp_path_factory.mktemp("year")
    generate_census_year(folder, schools=20, pupils=3000, seed=4)
    return folder


@pytest.mark.parametrize(("term", "folder"), [("Autumn", "autumn_2026"), ("Spring", "spring_2027"),
                                              ("Summer", "summer_2027")])  # fmt: skip
def test_generate_census_year__each_term_has_its_tables_and_headers(year_folders, term, folder):
    extract = year_folders / folder
    assert sorted(path.stem for path in extract.iterdir()) == sorted(TERM_TABLES[term])
    for table in TERM_TABLES[term]:
        header, _ = _read(extract, table)
        assert header == list(census_columns(table, term))
    _, census = _read(extract, "schoolcensus")
    assert {row["term"] for row in census} == {{"Autumn": "AUT", "Spring": "SPR", "Summer": "SUM"}[term]}


def test_generate_census_year__codes_and_links_of_detail_tables(year_folders):
    from pupilshare.ingest.census_rules import SEN_NEED_TYPES

    extract = year_folders / "spring_2027"
    _, pupils = _read(extract, "pupilonroll")
    ids = {row["pupilonrolltableid"] for row in pupils}
    for table, column, codes in (
        ("senneeds", "sentype", set(SEN_NEED_TYPES)),
        ("termlyexclusionsonroll", "category", set(census_codes("termlyexclusionsonroll", "category", "Spring"))),
        ("termlyexclusionsonroll", "reason1", set(census_codes("termlyexclusionsonroll", "reason1", "Spring"))),
        ("termlysessiondetailsonroll", "attendancereason", set(census_codes("termlysessiondetailsonroll",
                                                                            "attendancereason", "Spring"))),
        ("pupilonroll", "ethnicity", set(census_codes("pupilonroll", "ethnicity", "Spring"))),
    ):  # fmt: skip
        _, rows = _read(extract, table)
        assert rows and {row[column] for row in rows} <= codes, (table, column)
        if table != "pupilonroll":
            assert {row["pupilonrolltableid"] for row in rows} <= ids
    _, needs = _read(extract, "senneeds")
    assert {row["sentyperank"] for row in needs} == {"1"}
    sen = sum(row["senprovision"] in ("K", "E") for row in pupils)
    assert len(needs) == sen, "one primary need per pupil with SEN support or an EHC plan"


def test_generate_census_year__rates_near_england(year_folders):
    """FSM ~25%, persistent absence ~20%, SEN support ~13%, EHC ~5%, EAL ~20%, some suspensions and exclusions."""
    extract = year_folders / "autumn_2026"
    _, pupils = _read(extract, "pupilonroll")
    _, fsm = _read(extract, "fsmperiodsonroll")
    _, sessions = _read(extract, "termlysessiondetailsonroll")
    _, exclusions = _read(extract, "termlyexclusionsonroll")
    eligible = {row["pupilonrolltableid"] for row in fsm if not row["fsmenddate"]}
    assert 0.21 < len(eligible) / len(pupils) < 0.29
    with_sessions = [row for row in pupils if row["termlysessionspossible"]]
    missed = [int(row["termlysessionsauthorised"]) + int(row["termlysessionsunauthorised"]) for row in with_sessions]
    persistent = sum(
        10 * absent >= int(row["termlysessionspossible"]) for absent, row in zip(missed, with_sessions, strict=True)
    )
    assert 0.15 < persistent / len(with_sessions) < 0.26
    by_pupil = Counter()
    for row in sessions:
        by_pupil[row["pupilonrolltableid"]] += int(row["sessions"])
    for absent, row in zip(missed, with_sessions, strict=True):
        assert by_pupil[row["pupilonrolltableid"]] == absent, "reasons add up to the pupil's absence"
    assert 0.10 < sum(row["senprovision"] == "K" for row in pupils) / len(pupils) < 0.16
    assert 0.03 < sum(row["senprovision"] == "E" for row in pupils) / len(pupils) < 0.07
    assert 0.15 < sum(row["language"] != "ENG" for row in pupils) / len(pupils) < 0.25
    assert {row["category"] for row in exclusions} >= {"SUSP"}
    assert 30 < len(exclusions) < 300


def test_generate_census_extract__unknown_preset_is_refused(tmp_path):
    with pytest.raises(CensusGeneratorError, match="preset"):
        generate_census_extract(tmp_path, preset="london")


def test_generate_census_extract__streaming_equals_build_then_write(tmp_path):
    generate_census_extract(tmp_path / "streamed", schools=4, pupils=300, seed=9, term="Summer")
    write_census_extract(build_census_extract(schools=4, pupils=300, seed=9, term="Summer"), tmp_path / "built")
    assert _files(tmp_path / "streamed") == _files(tmp_path / "built")
