"""The returns generator writes every return for the pupils of a census extract, reproducibly, and what it writes
passes the loaders' own row rules (apart from the opt-out edge cases it plants on purpose)."""

from __future__ import annotations

import csv
import hashlib
import random
from pathlib import Path

import pytest

from pupilshare.generate.census import build_census_extract
from pupilshare.generate.returns import (
    _FEEDERS_PER_SECONDARY,
    INBOX_FOLDERS,
    generate_all_returns,
    write_activity_updates,
)
from pupilshare.ingest.ctf import FILE_NAME, iter_ctf, scan_ctf_bytes
from pupilshare.ingest.eyfs import EYFS, has_good_level_of_development
from pupilshare.ingest.ncmp import NCMP
from pupilshare.ingest.optouts import OPTOUTS
from pupilshare.ingest.post16 import ACTIVITY, POST16
from pupilshare.ingest.tabular import LoadContext
from pupilshare.ingest.workforce import WORKFORCE


@pytest.fixture(scope="module")
def extract():
    return build_census_extract(schools=12, pupils=2500, seed=3)


@pytest.fixture(scope="module")
def inbox(extract, tmp_path_factory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("inbox")
    return folder, generate_all_returns(extract, folder, seed=3)


def _context(extract) -> LoadContext:
    urns = {school.urn: str(school.urn) for school in extract.schools}
    return LoadContext(
        pupils={pupil.upn: (pupil.dob, pupil.nc_year, urns[pupil.school_urn]) for pupil in extract.pupils},
        schools={(extract.la_code, school.estab) for school in extract.schools},
        urns=set(urns.values()),
    )


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return digest.hexdigest()


def test_generate_all_returns__writes_every_inbox_folder(inbox):
    folder, summary = inbox
    assert set(summary) == set(INBOX_FOLDERS)
    for name in INBOX_FOLDERS:
        assert any((folder / name).iterdir()), name
        assert all(count > 0 for count in summary[name]["rows"].values()), name


def test_generate_all_returns__same_seed_same_bytes_other_seed_differs(extract, tmp_path):
    generate_all_returns(extract, tmp_path / "a", seed=9)
    generate_all_returns(extract, tmp_path / "b", seed=9)
    generate_all_returns(extract, tmp_path / "c", seed=10)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b") != _digest(tmp_path / "c")


@pytest.mark.parametrize("spec", [NCMP, EYFS, POST16, ACTIVITY], ids=lambda spec: spec.return_type)
def test_generated_csv_returns__pass_their_row_rules(extract, inbox, spec):
    folder, _ = inbox
    context = _context(extract)
    (path,) = (folder / spec.return_type).glob("*.csv")
    rows = _rows(path)
    assert tuple(rows[0]) == spec.tables[0].columns
    issues = [issue for row in rows for issue in spec.tables[0].validate(row, context)]
    assert issues == []


def test_generated_workforce__passes_its_row_rules(extract, inbox):
    folder, _ = inbox
    (set_folder,) = (folder / "workforce").iterdir()
    context = _context(extract)
    for table in WORKFORCE.tables:
        rows = _rows(set_folder / f"{table.file_stem}.csv")
        assert [issue for row in rows for issue in table.validate(row, context)] == [], table.file_stem


def test_generated_optouts__hold_the_planned_edge_cases(extract, inbox):
    folder, _ = inbox
    (path,) = (folder / "optouts").glob("*.csv")
    context = _context(extract)
    rows = _rows(path)
    rules = [issue.rule_id for row in rows for issue in OPTOUTS.tables[0].validate(row, context)]
    assert sorted(rules) == ["OPTOUT-SAME-DAY", "OPTOUT-WRONG-PARTY"]
    assert {row["action"] for row in rows} == {"opt_out", "withdraw"}
    assert {row["requested_by"] for row in rows} == {"parent", "pupil"}


def test_generated_returns__refer_to_census_pupils(extract, inbox):
    folder, _ = inbox
    by_upn = {pupil.upn: pupil for pupil in extract.pupils}
    (ncmp,) = (folder / "ncmp").glob("*.csv")
    for row in _rows(ncmp):
        pupil = by_upn[row["upn"]]
        assert (row["forename"], row["surname"], row["date_of_birth"]) == (
            pupil.forename, pupil.surname, pupil.dob.isoformat(),
        )  # fmt: skip
        assert pupil.nc_year in ("R", "6")
    expected = sum(pupil.nc_year in ("R", "6") for pupil in extract.pupils)
    assert len(_rows(ncmp)) == expected
    (post16,) = (folder / "post16").glob("*.csv")
    assert {by_upn[row["upn"]].nc_year for row in _rows(post16)} == {"11"}


def test_generated_eyfs__about_two_thirds_reach_gld(inbox):
    folder, _ = inbox
    (path,) = (folder / "eyfs").glob("*.csv")
    rows = _rows(path)
    share = sum(map(has_good_level_of_development, rows)) / len(rows)
    assert 0.58 < share < 0.76


def test_generated_ctf__names_match_headers_and_pupils_are_the_census_ones(extract, inbox):
    folder, summary = inbox
    by_upn = {pupil.upn: pupil for pupil in [*extract.pupils, *getattr(extract, "leavers", [])]}
    destinations = set()
    pupils = 0
    for path in sorted((folder / "ctf").glob("*.xml")):
        match = FILE_NAME.match(path.name)
        assert match, path.name
        scan_ctf_bytes(path)
        events = iter_ctf(path)
        _, header = next(events)
        assert (
            header["source_lea"],
            header["source_estab"],
            header["dest_lea"],
            header["dest_estab"],
        ) == match.groups()[:4]
        destinations.add(header["dest_lea"])
        for _, row in events:
            pupils += 1
            assert by_upn[row["upn"]].dob.isoformat() == row["dob"]
    assert pupils == summary["ctf"]["rows"]["ctf_pupils"]
    assert {"XXX", "MMM", extract.la_code} <= destinations


def test_generated_ctf__year7_intake_comes_from_a_handful_of_feeder_primaries(extract, inbox):
    """Each secondary gets its July Year 7 CTFs from at most ``_FEEDERS_PER_SECONDARY`` primaries (one file each), as
    real catchments send them, not one file from nearly every primary (which made the file count quadratic)."""
    folder, _ = inbox
    secondaries = {school.estab for school in extract.schools if school.phase == "SS"}
    senders: dict[str, set[str]] = {estab: set() for estab in secondaries}
    intake_pupils = 0
    for path in sorted((folder / "ctf").glob("*.xml")):
        events = iter_ctf(path)
        _, header = next(events)
        if header["dest_estab"] in secondaries and header["date_time"][5:7] == "07":
            assert header["source_estab"] not in senders[header["dest_estab"]], "one file per sender and date"
            senders[header["dest_estab"]].add(header["source_estab"])
            intake_pupils += sum(1 for _ in events)
    assert all(0 < len(sources) <= _FEEDERS_PER_SECONDARY for sources in senders.values()), senders
    assert intake_pupils / sum(map(len, senders.values())) > 5


def test_generated_csv_files__have_no_repeated_rows(inbox):
    """The loader rejects a repeated row as ROW-DUPLICATE, so the generator must never write one."""
    folder, _ = inbox
    for path in folder.rglob("*.csv"):
        with path.open(encoding="utf-8", newline="") as handle:
            rows = [tuple(row) for row in csv.reader(handle)]
        assert len(rows) == len(set(rows)), path.name


def test_write_activity_updates__restricted_sixth_formers_have_yss_contacts(tmp_path):
    """The NCCIS feed needs restricted young people (census yssa No) whose activity YSS collected itself: about half
    of the restricted Year 12 and 13 pupils get a YSS update of their own (without that rule about 6% would, from the
    later changes alone)."""
    county = build_census_extract(schools=30, pupils=9000, seed=3)
    write_activity_updates(county, tmp_path, random.Random("3:activity"))  # noqa: S311 - synthetic data
    rows = [row for path in sorted(tmp_path.glob("*.csv")) for row in _rows(path)]
    restricted = {pupil.upn for pupil in county.pupils if pupil.nc_year in ("12", "13") and pupil.yssa == "No"}
    with_yss = {row["upn"] for row in rows if row["source"] == "yss" and row["upn"] in restricted}
    assert len(restricted) >= 12
    assert len(restricted) // 3 <= len(with_yss) < len(restricted)
    assert {row["source"] for row in rows} >= {"school", "yss", "provider"}
