"""File-level checks of the census loader that need no database: zip members, the schoolcensus header."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from pupilshare.ingest.census import _census_header, _open_extract
from pupilshare.ingest.inbox import ReturnRejectedError


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _rules(error: ReturnRejectedError) -> set[str]:
    return {finding.rule_id for finding in error.findings}


@pytest.mark.parametrize(
    ("members", "rule_id"),
    [
        ({"../../etc/passwd": b"x"}, "FILE-ZIP-PATH"),
        ({"/abs/school.csv": b"x"}, "FILE-ZIP-PATH"),
        ({"folder/school.csv": b"x"}, "FILE-ZIP-PATH"),
        ({"school.txt": b"x"}, "FILE-UNKNOWN-TABLE"),
        ({"school.csv": b"," * (8 * 1024**2)}, "FILE-ZIP-BOMB"),
    ],
)
def test_open_extract__bad_zip_member_refuses_the_zip(tmp_path, members, rule_id):
    archive = _zip(tmp_path / "extract.zip", members)
    with pytest.raises(ReturnRejectedError) as caught, _open_extract(archive, 2 * 1024**3, 8 * 1024**3, 200):
        pass
    assert rule_id in _rules(caught.value)


def test_open_extract__total_uncompressed_size_is_limited(tmp_path):
    archive = _zip(tmp_path / "extract.zip", {"school.csv": b"a,b\n" * 1000, "pupilonroll.csv": b"a,b\n" * 1000})
    with pytest.raises(ReturnRejectedError) as caught, _open_extract(archive, 2 * 1024**3, 5000, 200):
        pass
    assert "FILE-TOO-LARGE" in _rules(caught.value)


def test_open_extract__good_zip_streams_members(tmp_path):
    archive = _zip(tmp_path / "extract.zip", {"School.csv": b"a\n1\n"})
    with _open_extract(archive, 1000, 1000, 200) as members:
        assert [(member.table, member.open().read()) for member in members] == [("school", b"a\n1\n")]


@pytest.mark.parametrize(
    ("row", "rule_id"),
    [
        ("1,WIN,2026,2026-Oct-01 00:00:00,926,2001", "FILE-BAD-TERM"),
        ("1,AUT,20x6,2026-Oct-01 00:00:00,926,2001", "FILE-BAD-YEAR"),
        ("1,AUT,2026,01/10/2026,926,2001", "FILE-BAD-REFERENCE-DATE"),
        ("1,AUT,2026,2026-Oct-01 00:00:00,926,", "FILE-BAD-SCHOOL"),
    ],
)
def test_census_header__bad_header_is_refused(tmp_path, row, rule_id):
    folder = tmp_path / "extract"
    folder.mkdir()
    (folder / "schoolcensus.csv").write_text(f"schoolcensustableid,term,year,referencedate,lea,estab\n{row}\n")
    with _open_extract(folder, 10**6, 10**6, 200) as members, pytest.raises(ReturnRejectedError) as caught:
        _census_header(folder, members)
    assert rule_id in _rules(caught.value)


def test_census_header__mixed_terms_are_refused(tmp_path):
    folder = tmp_path / "extract"
    folder.mkdir()
    (folder / "schoolcensus.csv").write_text(
        "schoolcensustableid,term,year,referencedate,lea,estab\n"
        "1,AUT,2026,2026-Oct-01 00:00:00,926,2001\n2,SPR,2027,2027-Jan-21 00:00:00,926,2002\n"
    )
    with _open_extract(folder, 10**6, 10**6, 200) as members, pytest.raises(ReturnRejectedError) as caught:
        _census_header(folder, members)
    assert "FILE-MIXED-CENSUS" in _rules(caught.value)
