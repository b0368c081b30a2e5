"""The CTF loader writes COPY text itself: values holding tabs, newlines, carriage returns, backslashes, quotes or
non-ASCII letters must reach ``raw.ctf_pupils`` exactly as ``iter_ctf`` read them, blanks as null."""

from __future__ import annotations

import psycopg
import pytest

from pupilshare.ingest.ctf import _JSON_COLUMNS, _PUPIL_TEXT_COLUMNS, iter_ctf, load_ctf
from pupilshare.ingest.raw_schema import ensure_raw_schema

pytestmark = pytest.mark.integration

CTF = """<?xml version="1.0" encoding="UTF-8"?>
<CTfile><Header><CTFversion>20.0</CTFversion><DateTime>2026-07-10T09:00:00</DateTime>
<SourceSchool><LEA>926</LEA><Estab>2001</Estab><SchoolName>A \\ School</SchoolName></SourceSchool>
<DestSchool><LEA>926</LEA><Estab>4001</Estab></DestSchool></Header>
<CTFpupilData>
<Pupil><UPN>W926206426003</UPN><Surname>O\tBrien\\N</Surname><Forename>Zoë&#13;
Ann</Forename><DOB>2015-02-03</DOB><Sex>F</Sex><BasicDetails><MiddleNames>\\.</MiddleNames></BasicDetails>
<SchoolHistory><School><SchoolName>St "Mary's" \\ \t Infant</SchoolName></School></SchoolHistory></Pupil>
<Pupil><UPN>W926206426003</UPN><Surname>Smith</Surname></Pupil>
</CTFpupilData></CTfile>
"""


def test_load_ctf__awkward_text_round_trips_through_copy(tmp_path, scratch_db):
    path = tmp_path / "9262001_CTF_9264001_001.xml"
    path.write_text(CTF, encoding="utf-8")
    expected = [row for kind, row in iter_ctf(path) if kind == "pupil"]
    assert expected[0]["surname"] == "O\tBrien\\N" and expected[0]["forename"] == "Zoë\r\nAnn"
    columns = (*_PUPIL_TEXT_COLUMNS, *_JSON_COLUMNS)
    with psycopg.connect(scratch_db) as conn:
        with conn.transaction():
            ensure_raw_schema(conn)
        result = load_ctf(conn, path)
        stored = conn.execute(
            f"select _row_number, _rejected, {', '.join(columns)} from raw.ctf_pupils order by _row_number"
        ).fetchall()
    assert result["rows"]["ctf_pupils"] == 2
    assert [(row[0], row[1]) for row in stored] == [(1, False), (2, True)]  # the second repeats the UPN and more
    for row, pupil in zip(stored, expected, strict=True):
        assert dict(zip(columns, row[2:], strict=True)) == {
            name: pupil[name] if name in _JSON_COLUMNS else pupil[name] or None for name in columns
        }
