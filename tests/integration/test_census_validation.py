"""Row-level census rules: each rule finds what it should on a mutated synthetic extract, errors reject rows
(and the rows hanging off a rejected pupil), queries load; the SQL UPN check agrees with stdnum; supersession."""

from __future__ import annotations

import csv
import random
import shutil
import uuid
import zipfile
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from stdnum.gb import upn as upn_check

from pupilshare.db import with_database
from pupilshare.generate.census import generate_census_extract
from pupilshare.ingest.census import load_census_extract
from pupilshare.ingest.raw_schema import ensure_raw_schema

pytestmark = pytest.mark.integration


def _edit(folder: Path, table: str, row: int, **changes: str) -> None:
    """Change data row ``row`` (1-based) of ``<table>.csv``."""
    path = folder / f"{table}.csv"
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        header, rows = reader.fieldnames, list(reader)
    rows[row - 1].update(changes)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, header, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _value(folder: Path, table: str, row: int, column: str) -> str:
    with (folder / f"{table}.csv").open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))[row - 1][column]


@pytest.fixture
def database(admin_url: str):
    name = f"pupilshare_rules_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    url = with_database(admin_url, name)
    with psycopg.connect(url) as conn, conn.transaction():
        ensure_raw_schema(conn)
    yield url
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def clean_extract(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("rules") / "clean"
    generate_census_extract(folder, schools=3, pupils=200, seed=11)
    return folder


def _mutated(clean: Path, target: Path) -> Path:
    shutil.copytree(clean, target)
    upn = _value(target, "pupilonroll", 1, "upn")
    _edit(target, "pupilonroll", 2, upn=("A" if upn[0] != "A" else "B") + upn[1:])  # wrong check letter
    body = _value(target, "pupilonroll", 3, "upn")[1:12] + "A"
    _edit(target, "pupilonroll", 3, upn=upn_check.calc_check_digit(body) + body)  # temporary UPN
    _edit(target, "pupilonroll", 4, upn=_value(target, "pupilonroll", 5, "upn"))  # duplicate of row 5
    _edit(target, "pupilonroll", 6, dob="2030-Jan-01 00:00:00")  # future
    _edit(target, "pupilonroll", 7, dob="1990-Jan-01 00:00:00")  # over 25
    _edit(target, "pupilonroll", 8, sex="X")  # unknown code, required list
    _edit(target, "pupilonroll", 9, language="QQQ")  # unknown code, optional list
    _edit(target, "pupilonroll", 10, entrydate="2001-Jan-01 00:00:00")  # before dob
    _edit(target, "pupilonroll", 11, ncyearactual="1" if _value(target, "pupilonroll", 11, "ncyearactual") != "1"
          else "3")  # fmt: skip
    _edit(target, "pupilonroll", 12, termlysessionspossible="10", termlysessionsauthorised="8",
          termlysessionsunauthorised="5")  # fmt: skip
    _edit(target, "pupilonroll", 13, dob="2012-Feb-30 00:00:00")
    _edit(target, "pupilonroll", 14, upn="")
    _edit(target, "pupilonroll", 15, upn="A00120000100")
    _edit(target, "addressesonroll", 16, pupilonrolltableid="999999")  # pupil 16 loses its address
    _edit(target, "fsmperiodsonroll", 1, fsmstartdate="2026-Sep-01 00:00:00", fsmenddate="2026-Jan-01 00:00:00")
    _edit(target, "termlysessiondetailsonroll", 1, pupilonrolltableid="888888")
    _edit(target, "termlysessiondetailsonroll", 2, sessions="many")
    _edit(target, "school", 1, schoolcensustableid="77")
    return target


@pytest.fixture
def loaded(database, clean_extract, tmp_path) -> tuple[str, dict, dict]:
    extract = _mutated(clean_extract, tmp_path / "mutated")
    with psycopg.connect(database) as conn:
        result = load_census_extract(conn, extract)
        findings = {
            (rule, table, row): severity
            for rule, table, row, severity in conn.execute(
                "select rule_id, table_name, row_number, severity from raw.validation_findings"
            )
        }
    return database, result, findings


RULE_CASES = [
    ("CENSUS-UPN-CHECK-LETTER", "pupilonroll", 2, "error"),
    ("CENSUS-UPN-TEMPORARY", "pupilonroll", 3, "query"),
    ("CENSUS-UPN-DUPLICATE", "pupilonroll", 4, "error"),
    ("CENSUS-UPN-DUPLICATE", "pupilonroll", 5, "error"),
    ("CENSUS-DOB-FUTURE", "pupilonroll", 6, "error"),
    ("CENSUS-AGE-OVER-25", "pupilonroll", 7, "error"),
    ("CENSUS-CODE-UNKNOWN", "pupilonroll", 8, "error"),
    ("CENSUS-CODE-UNKNOWN-QUERY", "pupilonroll", 9, "query"),
    ("CENSUS-ENTRY-BEFORE-DOB", "pupilonroll", 10, "error"),
    ("CENSUS-DOB-NCYEAR", "pupilonroll", 11, "query"),
    ("CENSUS-SESSIONS-EXCEED", "pupilonroll", 12, "error"),
    ("CENSUS-DATE-FORMAT", "pupilonroll", 13, "error"),
    ("CENSUS-ITEM-MISSING", "pupilonroll", 14, "error"),
    ("CENSUS-UPN-FORMAT", "pupilonroll", 15, "error"),
    ("CENSUS-ADDRESS-MISSING", "pupilonroll", 16, "query"),
    ("CENSUS-PUPIL-UNKNOWN", "addressesonroll", 16, "error"),
    ("CENSUS-FSM-END-BEFORE-START", "fsmperiodsonroll", 1, "error"),
    ("CENSUS-PUPIL-UNKNOWN", "termlysessiondetailsonroll", 1, "error"),
    ("CENSUS-NUMBER-FORMAT", "termlysessiondetailsonroll", 2, "error"),
    ("CENSUS-SCHOOL-UNKNOWN", "school", 1, "error"),
]


@pytest.mark.parametrize(("rule_id", "table", "row", "severity"), RULE_CASES)
def test_validate_census_batch__rule_finds_its_row(loaded, rule_id, table, row, severity):
    _, _, findings = loaded
    assert findings.get((rule_id, table, row)) == severity


def test_validate_census_batch__clean_extract_has_no_errors(database, clean_extract):
    with psycopg.connect(database) as conn:
        result = load_census_extract(conn, clean_extract)
    assert result["findings"]["error"] == 0


def test_validate_census_batch__errors_reject_rows_queries_do_not(loaded):
    database, result, findings = loaded
    with psycopg.connect(database) as conn:
        rejected = set(conn.execute("select table_name, row_number from raw.census_rejected_rows").fetchall())
        pupil_id = conn.execute(
            "select pupilonrolltableid from raw.census_pupilonroll where _row_number = 6"
        ).fetchone()[0]
        children = conn.execute(
            "select _row_number from raw.census_addressesonroll where pupilonrolltableid = %s", (pupil_id,)
        ).fetchall()
    assert ("pupilonroll", 2) in rejected and ("pupilonroll", 6) in rejected
    assert ("pupilonroll", 3) not in rejected and ("pupilonroll", 9) not in rejected, "queries load"
    assert all(("addressesonroll", row) in rejected for (row,) in children), "a rejected pupil's address goes too"
    assert result["rows"]["pupilonroll"] == 200, "rejected rows stay in raw, marked"


def test_upn_problem__sql_agrees_with_stdnum(database):
    rng = random.Random(5)
    upns = []
    for _ in range(3000):
        body = f"{rng.choice((926, 201, 1, 5, 999, 938))}{rng.randrange(10**8):08d}" + rng.choice("0123456789AZ")
        upn = upn_check.calc_check_digit(body) + body
        mutation = rng.random()
        if mutation < 0.3:
            position = rng.randrange(13)
            upn = upn[:position] + rng.choice("0123456789ABCIOSZ") + upn[position + 1 :]
        elif mutation < 0.35:
            upn = upn[: rng.randrange(14)]
        elif mutation < 0.4:
            upn = upn.lower()
        upns.append(upn)
    with psycopg.connect(database) as conn:
        got = conn.execute(
            "select raw.upn_problem(upper(replace(btrim(value), ' ', ''))) is null from unnest(%s::text[]) as value",
            (upns,),
        ).fetchall()
    assert [valid for (valid,) in got] == [upn_check.is_valid(upn) for upn in upns]
    assert 500 < sum(valid for (valid,) in got) < 2900, "a mix of valid and invalid UPNs was tested"


def test_load_census_extract__one_school_resubmission_supersedes_that_school_only(database, clean_extract, tmp_path):
    resubmission = tmp_path / "one_school"
    resubmission.mkdir()
    with (clean_extract / "schoolcensus.csv").open(encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    (resubmission / "schoolcensus.csv").write_text("\n".join(lines[:2]) + "\n", encoding="utf-8")
    for table in ("school", "pupilonroll", "addressesonroll"):
        shutil.copy(clean_extract / f"{table}.csv", resubmission / f"{table}.csv")
    with psycopg.connect(database) as conn:
        first = load_census_extract(conn, clean_extract)["load_batch_id"]
        second = load_census_extract(conn, resubmission)["load_batch_id"]
        current = dict(conn.execute("select laestab, load_batch_id from raw.current_census_returns").fetchall())
        statuses = conn.execute("select status from raw.load_batches order by load_batch_id").fetchall()
    assert sorted(current.values()) == [first, first, second]
    assert statuses == [("loaded",), ("loaded",)], "the LA batch still holds two current school returns"
    with psycopg.connect(database) as conn:
        third = load_census_extract(conn, _mutated(clean_extract, tmp_path / "whole_la_again"))["load_batch_id"]
        statuses = conn.execute("select status from raw.load_batches order by load_batch_id").fetchall()
        current = {batch for (batch,) in conn.execute("select load_batch_id from raw.current_census_returns")}
    assert current == {third}
    assert statuses == [("superseded",), ("superseded",), ("loaded",)]


def test_load_census_extract__zip_streams_and_equals_the_folder(database, clean_extract, tmp_path):
    archive = tmp_path / "extract.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as handle:
        for path in clean_extract.iterdir():
            handle.write(path, path.name)
    with psycopg.connect(database) as conn:
        from_zip = load_census_extract(conn, archive)
        again = load_census_extract(conn, clean_extract)
    assert from_zip["rows"]["pupilonroll"] == 200
    assert again is None, "same content as a folder is a duplicate"


@pytest.mark.parametrize("term", ["Spring", "Summer"])
def test_load_census_extract__every_term_loads_clean(database, tmp_path, term):
    folder = tmp_path / term
    generate_census_extract(folder, schools=3, pupils=150, seed=2, term=term)
    with psycopg.connect(database) as conn:
        result = load_census_extract(conn, folder)
    assert result["term"] == term and result["findings"]["error"] == 0
    assert "addresses" in result["rows"] and "addressesonroll" not in result["rows"]
