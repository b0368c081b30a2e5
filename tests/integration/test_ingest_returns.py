"""Every non-census return, generated from one census extract, loads through the inbox driver: row counts reconcile
with the files, reloads change nothing, and hostile or broken file sets are quarantined with a clear finding while
the good file sets beside them still load in full."""

from __future__ import annotations

import csv
import datetime as dt
import random
import shutil
from pathlib import Path

import psycopg
import pytest

from pupilshare.generate.census import build_census_extract, write_census_extract
from pupilshare.generate.returns import generate_all_returns, write_ctf
from pupilshare.ingest import ingest_inbox
from pupilshare.settings import Settings

pytestmark = pytest.mark.integration

RAW_TABLES = {
    "workforce": ("swc_staff", "swc_contracts", "swc_absences", "swc_vacancies"),
    "ncmp": ("ncmp_measurements",),
    "eyfs": ("eyfs_results",),
    "optouts": ("optout_requests",),
    "post16": ("post16_applications",),
    "activity": ("activity_updates",),
    "ctf": ("ctf_files", "ctf_pupils"),
}


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> tuple[Path, dict]:
    """A small county: census extract and every return, in an inbox layout (copied into each test's data dir)."""
    root = tmp_path_factory.mktemp("returns")
    extract = build_census_extract(schools=12, pupils=1500, seed=3)
    write_census_extract(extract, root / "inbox" / "census" / "autumn_2026")
    summary = generate_all_returns(extract, root / "inbox", seed=11)
    return root / "inbox", summary


@pytest.fixture
def settings(tmp_path: Path, scratch_db: str) -> Settings:
    return Settings(database_url=scratch_db, data_dir=tmp_path / "data")


def _fill_inbox(settings: Settings, source: Path) -> None:
    settings.ensure_folders()
    shutil.copytree(source, settings.inbox_dir, dirs_exist_ok=True)


def _query(settings: Settings, statement: str, *args) -> list[tuple]:
    with psycopg.connect(settings.database_url) as conn:
        return conn.execute(statement, args).fetchall()


def _csv_rows(folder: Path, name: str) -> int:
    total = 0
    for path in folder.rglob(f"{name}*.csv") if name else folder.rglob("*.csv"):
        with path.open(encoding="utf-8", newline="") as handle:
            total += sum(1 for _ in csv.reader(handle)) - 1
    return total


def test_ingest_inbox__every_return_loads_and_reconciles(settings, generated):
    inbox, summary = generated
    _fill_inbox(settings, inbox)
    result = ingest_inbox(settings)
    assert not result.quarantined, result.quarantined
    for return_type, tables in RAW_TABLES.items():
        for table in tables:
            expected = summary[return_type]["rows"][table]
            assert expected > 0, f"the generator wrote no {table} rows"
            assert _query(settings, f"select count(*) from raw.{table}")[0][0] == expected, table
    assert summary["ncmp"]["rows"]["ncmp_measurements"] == _csv_rows(inbox / "ncmp", "")
    files = len(list((inbox / "ctf").glob("*.xml")))
    assert len([batch for batch in result.loaded if batch["return_type"] == "ctf"]) == files
    # Generated data is clean apart from the deliberate opt-out edge cases (wrong party; two requests on one day).
    findings = dict(_query(settings, "select rule_id, count(*) from raw.validation_findings group by rule_id"))
    assert set(findings) <= {"OPTOUT-WRONG-PARTY", "OPTOUT-SAME-DAY"}, findings
    assert findings.get("OPTOUT-WRONG-PARTY") == 1 and findings.get("OPTOUT-SAME-DAY") == 1
    rejected = _query(settings, "select count(*) from raw.optout_requests where _rejected")[0][0]
    assert rejected == 1


def test_ingest_inbox__same_files_twice_load_once(settings, generated):
    inbox, _ = generated
    _fill_inbox(settings, inbox)
    first = ingest_inbox(settings)
    _fill_inbox(settings, inbox)
    second = ingest_inbox(settings)
    assert first.loaded and not second.loaded and not second.quarantined
    assert len(second.duplicates) == len(first.loaded)
    assert (
        _query(settings, "select count(*) from raw.ncmp_measurements")[0][0]
        == (first.loaded[[b["return_type"] for b in first.loaded].index("ncmp")]["rows"]["ncmp_measurements"])
    )


def test_ingest_inbox__census_schools_read_once_per_pass_and_unknown_sender_still_a_query(
    settings, generated, monkeypatch
):
    """Every CTF of a pass is checked against the census schools read once, after the census of the same pass loaded:
    a CTF from an LA school the census does not hold is a CTF-SOURCE-UNKNOWN query, the generated ones are not."""
    import pupilshare.ingest.ctf as ctf

    inbox, _ = generated
    _fill_inbox(settings, inbox)
    unknown = settings.inbox_dir / "ctf" / "9262990_CTF_9264990_001.xml"
    pupils = build_census_extract(schools=2, pupils=40, seed=1).pupils[:3]
    write_ctf(unknown, ("926", "2990", "A New School", "926", "4990", dt.date(2026, 7, 10)), pupils, random.Random(1))
    reads = []
    real_read = ctf.read_census_context
    monkeypatch.setattr(ctf, "read_census_context", lambda *args, **kw: reads.append(1) or real_read(*args, **kw))
    result = ingest_inbox(settings)
    ctf_loads = [batch for batch in result.loaded if batch["return_type"] == "ctf"]
    assert len(ctf_loads) == len(list((inbox / "ctf").glob("*.xml"))) + 1 > 2 and not result.quarantined
    assert len(reads) == 1
    flagged = _query(settings, "select file from raw.validation_findings where rule_id = 'CTF-SOURCE-UNKNOWN'")
    assert flagged == [(unknown.name,)]


# --- hostile and broken inputs --------------------------------------------------------------------------------------

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE CTfile [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<CTfile><Header><SourceSchool><LEA>926</LEA><Estab>2999</Estab></SourceSchool>
<DestSchool><LEA>926</LEA><Estab>4999</Estab></DestSchool></Header>
<CTFpupilData><Pupil><Surname>&lol3;</Surname></Pupil></CTFpupilData></CTfile>
"""
XXE = """<?xml version="1.0"?>
<!DOCTYPE CTfile [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<CTfile><Header><SourceSchool><LEA>926</LEA><Estab>2998</Estab></SourceSchool>
<DestSchool><LEA>926</LEA><Estab>4998</Estab></DestSchool></Header>
<CTFpupilData><Pupil><UPN>&xxe;</UPN><Surname>&xxe;</Surname></Pupil></CTFpupilData></CTfile>
"""


def _first_ctf(inbox: Path) -> Path:
    return sorted((inbox / "ctf").glob("*.xml"))[0]


def _one_file(inbox: Path, name: str) -> Path:
    return next((inbox / name).glob("*.csv"))


def _edit_csv(source: Path, target: Path, edit) -> None:
    """Copy ``source`` to ``target`` keeping the header and first 5 rows, with ``edit(rows)`` applied."""
    with source.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))[:6]
    rows = edit(rows)
    with target.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)


def _set(rows, row, column, value):
    rows[row][rows[0].index(column)] = value
    return rows


def _billion_laughs(inbox, settings):
    (settings.inbox_dir / "ctf" / "9262999_CTF_9264999_001.xml").write_text(BILLION_LAUGHS, encoding="utf-8")
    return "9262999_CTF_9264999_001.xml"


def _xxe(inbox, settings):
    (settings.inbox_dir / "ctf" / "9262998_CTF_9264998_001.xml").write_text(XXE, encoding="utf-8")
    return "9262998_CTF_9264998_001.xml"


def _malformed(inbox, settings):
    """A CTF cut off half way (a failed transfer): the header is fine, the pupils stop mid-element."""
    path = settings.inbox_dir / "ctf" / "9262997_CTF_9264997_001.xml"
    pupils = build_census_extract(schools=2, pupils=40, seed=1).pupils
    write_ctf(path, ("926", "2997", "A School", "926", "4997", dt.date(2026, 7, 10)), pupils, random.Random(1))
    text = path.read_text(encoding="utf-8")
    path.write_text(text[: len(text) // 2], encoding="utf-8")
    return path.name


def _name_mismatch(inbox, settings):
    shutil.copy(_first_ctf(inbox), settings.inbox_dir / "ctf" / "9262996_CTF_9264996_001.xml")
    return "9262996_CTF_9264996_001.xml"


def _missing_column(inbox, settings):
    target = settings.inbox_dir / "eyfs" / "eyfs_missing_column.csv"
    _edit_csv(_one_file(inbox, "eyfs"), target, lambda rows: [row[:-1] for row in rows])
    return target.name


def _non_utf8(inbox, settings):
    target = settings.inbox_dir / "ncmp" / "ncmp_latin1.csv"
    _edit_csv(_one_file(inbox, "ncmp"), target, lambda rows: _set(rows, 2, "forename", "Zoë"))
    target.write_bytes(target.read_bytes().replace("Zoë".encode(), "Zoë".encode("latin-1")))
    return target.name


def _unknown_column(inbox, settings):
    target = settings.inbox_dir / "post16" / "post16_extra_column.csv"
    _edit_csv(_one_file(inbox, "post16"), target, lambda rows: [[*row, "x"] for row in rows])
    return target.name


def _oversized(inbox, settings):
    target = settings.inbox_dir / "activity" / "activity_huge.csv"
    target.write_text("upn,uln,activity_code,activity_date,source\n" + "," * 20 * 1024 * 1024, encoding="utf-8")
    return target.name


FILE_LEVEL = {
    "billion-laughs": (_billion_laughs, "ctf", "CTF-DTD-FORBIDDEN"),
    "xxe": (_xxe, "ctf", "CTF-DTD-FORBIDDEN"),
    "malformed-xml": (_malformed, "ctf", "CTF-MALFORMED"),
    "ctf-name-mismatch": (_name_mismatch, "ctf", "CTF-NAME-MISMATCH"),
    "missing-column": (_missing_column, "eyfs", "FILE-MISSING-COLUMN"),
    "unknown-column": (_unknown_column, "post16", "FILE-UNKNOWN-COLUMN"),
    "non-utf8": (_non_utf8, "ncmp", "FILE-ENCODING"),
    "oversized": (_oversized, "activity", "FILE-TOO-LARGE"),
}


def _assert_good_sets_loaded(settings, summary):
    for return_type, tables in RAW_TABLES.items():
        for table in tables:
            assert _query(settings, f"select count(*) from raw.{table}")[0][0] == summary[return_type]["rows"][table]


@pytest.mark.parametrize("case", FILE_LEVEL, ids=list(FILE_LEVEL))
def test_ingest_inbox__hostile_file_is_quarantined_and_good_sets_still_load(settings, generated, case):
    inbox, summary = generated
    make, return_type, rule_id = FILE_LEVEL[case]
    _fill_inbox(settings, inbox)
    if case == "oversized":
        settings = Settings(database_url=settings.database_url, data_dir=settings.data_dir, max_inbox_file_bytes=10**7)
    name = make(inbox, settings)
    result = ingest_inbox(settings)
    assert [(item["return_type"], item["source"]) for item in result.quarantined] == [(return_type, name)]
    report = Path(result.quarantined[0]["report"]).read_text(encoding="utf-8")
    assert rule_id in report
    assert "root:" not in report, "no file content may leak into a report"
    _assert_good_sets_loaded(settings, summary)
    leaked = _query(
        settings,
        """select (select count(*) from raw.validation_findings where message like '%%root:%%')
                + (select count(*) from raw.ctf_pupils p where p::text like '%%root:%%')""",
    )[0][0]
    assert leaked == 0


def _bad_height(inbox, settings):
    target = settings.inbox_dir / "ncmp" / "ncmp_bad_height.csv"
    _edit_csv(_one_file(inbox, "ncmp"), target, lambda rows: _set(_fill_measurement(rows), 2, "height_cm", "412.0"))
    return target.name, "ncmp_measurements", "NCMP-HEIGHT-RANGE"


def _fill_measurement(rows):
    for column, value in (("measurement_date", "2026-11-20"), ("height_cm", "112.0"), ("weight_kg", "19.5")):
        _set(rows, 2, column, value)
    return _set(rows, 2, "not_measured_reason", "")


def _bad_outcome(inbox, settings):
    target = settings.inbox_dir / "eyfs" / "eyfs_bad_outcome.csv"
    _edit_csv(_one_file(inbox, "eyfs"), target, lambda rows: _set(rows, 2, "writing", "3"))
    return target.name, "eyfs_results", "EYFS-OUTCOME"


def _bad_scope(inbox, settings):
    target = settings.inbox_dir / "optouts" / "optouts_bad_scope.csv"
    _edit_csv(_one_file(inbox, "optouts"), target, lambda rows: _set(rows, 2, "scope", "connexions"))
    return target.name, "optout_requests", "OPTOUT-SCOPE"


def _bad_activity(inbox, settings):
    target = settings.inbox_dir / "activity" / "activity_bad_code.csv"
    _edit_csv(_one_file(inbox, "activity"), target, lambda rows: _set(rows, 2, "activity_code", "999"))
    return target.name, "activity_updates", "ACTIVITY-CODE-RANGE"


def _bad_upn(inbox, settings):
    target = settings.inbox_dir / "post16" / "post16_bad_upn.csv"
    _edit_csv(_one_file(inbox, "post16"), target, lambda rows: _set(rows, 2, "upn", "A926200026001"))
    return target.name, "post16_applications", "ROW-UPN-INVALID"


def _duplicate_row(inbox, settings):
    target = settings.inbox_dir / "eyfs" / "eyfs_duplicate.csv"
    _edit_csv(_one_file(inbox, "eyfs"), target, lambda rows: [*rows[:2], rows[1], *rows[3:]])
    return target.name, "eyfs_results", "ROW-DUPLICATE"


ROW_LEVEL = {
    "ncmp-impossible-height": _bad_height,
    "eyfs-bad-outcome": _bad_outcome,
    "optout-unknown-scope": _bad_scope,
    "activity-code-out-of-range": _bad_activity,
    "upn-check-letter": _bad_upn,
    "duplicate-row": _duplicate_row,
}


@pytest.mark.parametrize("case", ROW_LEVEL, ids=list(ROW_LEVEL))
def test_ingest_inbox__bad_row_is_flagged_and_rejected_the_rest_loads(settings, generated, case):
    inbox, summary = generated
    _fill_inbox(settings, inbox)
    name, table, rule_id = ROW_LEVEL[case](inbox, settings)
    result = ingest_inbox(settings)
    assert not result.quarantined
    (batch,) = [item for item in result.loaded if item["source"] == name]
    assert batch["rows"] == {table: 5}
    findings = _query(
        settings,
        "select rule_id, severity, row_number, item, message from raw.validation_findings where load_batch_id = %s",
        batch["load_batch_id"],
    )
    assert [(rule, severity, row) for rule, severity, row, _, _ in findings] == [(rule_id, "error", 2)]
    assert findings[0][3] and findings[0][4]
    rejected = _query(
        settings, f"select _row_number from raw.{table} where _load_batch_id = %s and _rejected", batch["load_batch_id"]
    )
    assert rejected == [(2,)]
    for return_type, tables in RAW_TABLES.items():
        for raw_table in tables:
            expected = summary[return_type]["rows"][raw_table] + (5 if raw_table == table else 0)
            assert _query(settings, f"select count(*) from raw.{raw_table}")[0][0] == expected
