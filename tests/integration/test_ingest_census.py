"""Census extracts load into raw with COPY: counts reconcile, bad files are quarantined, reloads change nothing."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import psycopg
import pytest

from pupilshare.generate.census import generate_census_extract
from pupilshare.ingest import ingest_inbox
from pupilshare.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(tmp_path: Path, scratch_db: str) -> Settings:
    return Settings(database_url=scratch_db, data_dir=tmp_path / "data")


@pytest.fixture(scope="module")
def sample_extract(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("extract") / "autumn_2026"
    generate_census_extract(folder, schools=3, pupils=150, seed=7)
    return folder


def _drop(settings: Settings, sample: Path, name: str) -> Path:
    target = settings.inbox_dir / "census" / name
    shutil.copytree(sample, target)
    return target


def _csv_rows(path: Path) -> int:
    with path.open(encoding="utf-8", newline="") as handle:
        return sum(1 for _ in csv.reader(handle)) - 1


def _count(settings: Settings, query: str) -> int:
    with psycopg.connect(settings.database_url) as conn:
        return conn.execute(query).fetchone()[0]


def test_ingest_inbox__row_counts_reconcile_with_files(settings, sample_extract):
    settings.ensure_folders()
    _drop(settings, sample_extract, "autumn_2026")
    summary = ingest_inbox(settings)
    assert len(summary.loaded) == 1 and not summary.quarantined
    for table in ("school", "schoolcensus", "pupilonroll", "addressesonroll"):
        expected = _csv_rows(sample_extract / f"{table}.csv")
        assert summary.loaded[0]["rows"][table] == expected
        assert _count(settings, f"select count(*) from raw.census_{table}") == expected
    assert _count(settings, "select min(_row_number) from raw.census_pupilonroll") == 1
    assert _count(settings, "select max(_row_number) from raw.census_pupilonroll") == _csv_rows(
        sample_extract / "pupilonroll.csv"
    )
    assert not (settings.inbox_dir / "census" / "autumn_2026").exists(), "a loaded extract leaves the inbox"


def test_ingest_inbox__same_content_twice_loads_once(settings, sample_extract):
    settings.ensure_folders()
    _drop(settings, sample_extract, "first")
    ingest_inbox(settings)
    _drop(settings, sample_extract, "again")
    summary = ingest_inbox(settings)
    assert summary.duplicates == ["again"] and not summary.loaded
    assert _count(settings, "select count(*) from raw.load_batches") == 1


def test_ingest_inbox__resubmission_supersedes_earlier_batch(settings, sample_extract):
    settings.ensure_folders()
    _drop(settings, sample_extract, "first")
    ingest_inbox(settings)
    corrected = _drop(settings, sample_extract, "corrected")
    pupils = corrected / "pupilonroll.csv"
    pupils.write_text(pupils.read_text(encoding="utf-8").replace(",Yes,", ",SNR,", 1), encoding="utf-8")
    ingest_inbox(settings)
    with psycopg.connect(settings.database_url) as conn:
        statuses = conn.execute("select status from raw.load_batches order by load_batch_id").fetchall()
    assert [status for (status,) in statuses] == ["superseded", "loaded"]


def test_ingest_inbox__missing_table_quarantined_and_other_extract_loads(settings, sample_extract):
    settings.ensure_folders()
    broken = _drop(settings, sample_extract, "broken")
    (broken / "addressesonroll.csv").unlink()
    _drop(settings, sample_extract, "good")
    summary = ingest_inbox(settings)
    assert [batch["source"] for batch in summary.loaded] == ["good"]
    assert [item["source"] for item in summary.quarantined] == ["broken"]
    report = Path(summary.quarantined[0]["report"]).read_text(encoding="utf-8")
    assert "FILE-MISSING-TABLE" in report and "addressesonroll.csv" in report


def test_ingest_inbox__malformed_row_rolls_back_whole_extract(settings, sample_extract):
    settings.ensure_folders()
    broken = _drop(settings, sample_extract, "broken")
    pupils = broken / "pupilonroll.csv"
    lines = pupils.read_text(encoding="utf-8").splitlines()
    lines.insert(3, lines[3] + ",surplus")  # data row 3 gets one value too many
    pupils.write_text("\n".join(lines) + "\n", encoding="utf-8")
    summary = ingest_inbox(settings)
    assert not summary.loaded
    report = Path(summary.quarantined[0]["report"]).read_text(encoding="utf-8")
    assert "FILE-UNREADABLE-ROW" in report and "row 3" in report and "pupilonroll" in report
    assert _count(settings, "select count(*) from raw.load_batches") == 0
    assert _count(settings, "select count(*) from raw.census_school") == 0


def test_ingest_inbox__unknown_column_quarantined(settings, sample_extract):
    settings.ensure_folders()
    broken = _drop(settings, sample_extract, "broken")
    school = broken / "school.csv"
    lines = school.read_text(encoding="utf-8").splitlines()
    lines = [lines[0] + ",headteacher"] + [line + ",x" for line in lines[1:]]
    school.write_text("\n".join(lines) + "\n", encoding="utf-8")
    summary = ingest_inbox(settings)
    report = Path(summary.quarantined[0]["report"]).read_text(encoding="utf-8")
    assert "FILE-UNKNOWN-COLUMN" in report and "headteacher" in report


def test_ingest_inbox__loose_file_in_inbox_is_refused(settings, sample_extract):
    settings.ensure_folders()
    (settings.inbox_dir / "census").mkdir(parents=True, exist_ok=True)
    (settings.inbox_dir / "census" / "pupilonroll.csv").write_text("upn\n", encoding="utf-8")
    summary = ingest_inbox(settings)
    assert summary.quarantined and summary.quarantined[0]["source"] == "pupilonroll.csv"


# --- hostile and broken inputs: each is refused (or its rows flagged) and a good extract beside it loads in full ---


def _rewrite(path: Path, edit) -> None:
    path.write_bytes(edit(path.read_bytes()))


def _zip_of(folder: Path, target: Path, extra: dict[str, bytes] | None = None) -> Path:
    import zipfile

    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.iterdir()):
            archive.write(path, path.name)
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return target


def _data_line(path: Path, row: int) -> bytes:
    return path.read_bytes().splitlines()[row]


def _not_utf8_row(entry: Path) -> None:
    _rewrite(entry / "pupilonroll.csv", lambda data: data.replace(b"\n", b"\n\xe9", 3).replace(b"\n\xe9", b"\n", 2))


def _not_utf8_header(entry: Path) -> None:
    _rewrite(entry / "school.csv", lambda data: b"\xff\xfe" + data)


def _missing_column(entry: Path) -> None:
    _rewrite(entry / "pupilonroll.csv", lambda data: data.replace(b"pupilonrolltableid,", b"", 1))


def _unknown_column(entry: Path) -> None:
    _rewrite(entry / "school.csv", lambda data: data.replace(b"\n", b",headteacher\n", 1))


def _extra_field(entry: Path) -> None:
    path = entry / "pupilonroll.csv"
    lines = path.read_bytes().splitlines()
    lines[3] += b",surplus"
    path.write_bytes(b"\n".join(lines) + b"\n")


def _unbalanced_quote(entry: Path) -> None:
    path = entry / "pupilonroll.csv"
    lines = path.read_bytes().splitlines()
    lines[2] = lines[2].replace(b",", b',"', 1)
    path.write_bytes(b"\n".join(lines) + b"\n")


def _empty_file(entry: Path) -> None:
    (entry / "school.csv").write_bytes(b"")


def _wrong_term(entry: Path) -> None:
    _rewrite(entry / "schoolcensus.csv", lambda data: data.replace(b",AUT,", b",WIN,"))


def _other_terms_table(entry: Path) -> None:
    shutil.copy(entry / "addressesonroll.csv", entry / "addresses.csv")


def _symlink_member(entry: Path) -> None:
    (entry / "school.csv").unlink()
    (entry / "school.csv").symlink_to("/etc/hostname")


def _oversized(entry: Path) -> None:
    path = entry / "pupilonroll.csv"
    path.write_bytes(path.read_bytes() + _data_line(path, 1) * 2000 + b"\n")


def _duplicate_upn(entry: Path) -> None:
    path = entry / "pupilonroll.csv"
    lines = path.read_bytes().decode().splitlines()
    first, second = (next(csv.reader([lines[row]])) for row in (1, 2))
    upn_at = next(csv.reader([lines[0]])).index("upn")
    second[upn_at] = first[upn_at]
    lines[2] = ",".join(second)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _bad_check_letter(entry: Path) -> None:
    path = entry / "pupilonroll.csv"
    text = path.read_text(encoding="utf-8")
    upn = next(csv.DictReader(text.splitlines()))["upn"]
    path.write_text(text.replace(upn, ("B" if upn[0] == "A" else "A") + upn[1:], 1), encoding="utf-8")


def _dob_in_future(entry: Path) -> None:
    path = entry / "pupilonroll.csv"
    text = path.read_text(encoding="utf-8")
    dob = next(csv.DictReader(text.splitlines()))["dob"]
    path.write_text(text.replace(dob, "2031-Jan-01 00:00:00", 1), encoding="utf-8")


HOSTILE_FOLDERS = [
    ("not_utf8_row", _not_utf8_row, "FILE-ENCODING"),
    ("not_utf8_header", _not_utf8_header, "FILE-ENCODING"),
    ("missing_table", lambda entry: (entry / "addressesonroll.csv").unlink(), "FILE-MISSING-TABLE"),
    ("missing_column", _missing_column, "FILE-MISSING-COLUMN"),
    ("unknown_column", _unknown_column, "FILE-UNKNOWN-COLUMN"),
    ("extra_field", _extra_field, "FILE-UNREADABLE-ROW"),
    ("unbalanced_quote", _unbalanced_quote, "FILE-UNREADABLE-ROW"),
    ("empty_file", _empty_file, "FILE-EMPTY"),
    ("wrong_term", _wrong_term, "FILE-BAD-TERM"),
    ("other_terms_table", _other_terms_table, "FILE-UNKNOWN-TABLE"),
    ("symlink_member", _symlink_member, "FILE-SYMLINK"),
    ("oversized", _oversized, "FILE-TOO-LARGE"),
]


def _assert_good_loaded_in_full(settings: Settings, summary, sample: Path) -> None:
    good = [batch for batch in summary.loaded if batch["source"] == "good"]
    assert len(good) == 1
    for table in ("school", "schoolcensus", "pupilonroll", "addressesonroll"):
        assert good[0]["rows"][table] == _csv_rows(sample / f"{table}.csv")
    assert good[0]["findings"]["error"] == 0


@pytest.mark.parametrize(("case", "breaks", "rule_id"), HOSTILE_FOLDERS, ids=[case[0] for case in HOSTILE_FOLDERS])
def test_ingest_inbox__hostile_folder_quarantined_good_loads(
    tmp_path, scratch_db, sample_extract, case, breaks, rule_id
):
    limit = max(path.stat().st_size for path in sample_extract.iterdir()) + 1024
    settings = Settings(database_url=scratch_db, data_dir=tmp_path / "data", max_inbox_file_bytes=limit)
    settings.ensure_folders()
    breaks(_drop(settings, sample_extract, "broken"))
    _drop(settings, sample_extract, "good")
    summary = ingest_inbox(settings)
    assert [item["source"] for item in summary.quarantined] == ["broken"]
    report = Path(summary.quarantined[0]["report"]).read_text(encoding="utf-8")
    assert rule_id in report
    _assert_good_loaded_in_full(settings, summary, sample_extract)


def _zip_traversal(sample: Path, target: Path) -> Path:
    return _zip_of(sample, target, {"../../etc/passwd": b"root:x:0:0\n"})


def _bomb(sample: Path, target: Path) -> Path:
    import zipfile

    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(sample.iterdir()):
            if path.name != "addressesonroll.csv":
                archive.write(path, path.name)
        header = (sample / "addressesonroll.csv").read_bytes().splitlines()[0]
        archive.writestr("addressesonroll.csv", header + b"\n" + b"," * (40 * 1024**2))
    return target


def _zip_non_csv(sample: Path, target: Path) -> Path:
    return _zip_of(sample, target, {"notes.exe": b"MZ\x90\x00"})


def _not_a_zip(sample: Path, target: Path) -> Path:
    target.write_bytes(b"PK\x03\x04 this is not really a zip")
    return target


HOSTILE_ZIPS = [
    ("zip_path_traversal", _zip_traversal, "FILE-ZIP-PATH"),
    ("zip_bomb", _bomb, "FILE-ZIP-BOMB"),
    ("zip_non_csv_member", _zip_non_csv, "FILE-UNKNOWN-TABLE"),
    ("not_a_zip", _not_a_zip, "FILE-NOT-A-ZIP"),
]


@pytest.mark.parametrize(("case", "build", "rule_id"), HOSTILE_ZIPS, ids=[case[0] for case in HOSTILE_ZIPS])
def test_ingest_inbox__hostile_zip_quarantined_good_loads(settings, sample_extract, case, build, rule_id):
    settings.ensure_folders()
    (settings.inbox_dir / "census").mkdir(parents=True, exist_ok=True)
    build(sample_extract, settings.inbox_dir / "census" / "broken.zip")
    _drop(settings, sample_extract, "good")
    summary = ingest_inbox(settings)
    assert [item["source"] for item in summary.quarantined] == ["broken.zip"]
    assert rule_id in Path(summary.quarantined[0]["report"]).read_text(encoding="utf-8")
    _assert_good_loaded_in_full(settings, summary, sample_extract)


def test_ingest_inbox__symlinked_extract_refused_good_loads(settings, sample_extract):
    settings.ensure_folders()
    (settings.inbox_dir / "census").mkdir(parents=True, exist_ok=True)
    (settings.inbox_dir / "census" / "linked").symlink_to(sample_extract, target_is_directory=True)
    _drop(settings, sample_extract, "good")
    summary = ingest_inbox(settings)
    assert [item["source"] for item in summary.quarantined] == ["linked"]
    assert "FILE-NAME" in Path(summary.quarantined[0]["report"]).read_text(encoding="utf-8")
    _assert_good_loaded_in_full(settings, summary, sample_extract)
    assert sample_extract.exists(), "the link's target is never moved or deleted"


HOSTILE_ROWS = [
    ("duplicate_upn", _duplicate_upn, "CENSUS-UPN-DUPLICATE"),
    ("bad_check_letter", _bad_check_letter, "CENSUS-UPN-CHECK-LETTER"),
    ("dob_in_future", _dob_in_future, "CENSUS-DOB-FUTURE"),
]


@pytest.mark.parametrize(("case", "breaks", "rule_id"), HOSTILE_ROWS, ids=[case[0] for case in HOSTILE_ROWS])
def test_ingest_inbox__bad_rows_rejected_rest_loads(settings, sample_extract, case, breaks, rule_id):
    settings.ensure_folders()
    breaks(_drop(settings, sample_extract, "flawed"))
    _drop(settings, sample_extract, "good")
    summary = ingest_inbox(settings)
    assert not summary.quarantined and len(summary.loaded) == 2
    _assert_good_loaded_in_full(settings, summary, sample_extract)
    flawed = next(batch for batch in summary.loaded if batch["source"] == "flawed")
    with psycopg.connect(settings.database_url) as conn:
        found = conn.execute(
            """select table_name, row_number, message from raw.validation_findings
               where load_batch_id = %s and rule_id = %s""",
            (flawed["load_batch_id"], rule_id),
        ).fetchall()
        rejected = conn.execute(
            "select row_number from raw.census_rejected_rows where load_batch_id = %s and table_name = 'pupilonroll'",
            (flawed["load_batch_id"],),
        ).fetchall()
    assert found and all(table == "pupilonroll" for table, _, _ in found)
    assert {row for _, row, _ in found} == {row for (row,) in rejected}


@pytest.mark.slow
def test_benchmark_ingest__smoke(admin_url, tmp_path):
    """Not a timing test: the benchmark runs end to end on a tiny extract and reports every figure."""
    from pupilshare.benchmarks.ingest import benchmark_ingest

    result = benchmark_ingest([2000], admin_url=admin_url, pandas_limit=500, workdir=tmp_path)
    run = result.runs[0]
    assert run.loader_pps > 0 and run.copy_pps > 0 and run.pandas_pps > 0
    assert run.findings["error"] == 0
    assert "| 2,000 |" in result.to_markdown()


@pytest.mark.slow
def test_benchmark_ctf_load__smoke(admin_url, tmp_path):
    """Not a timing test: the CTF load benchmark runs end to end on a tiny file and reports every figure."""
    from pupilshare.benchmarks.ctf import benchmark_ctf_load, ctf_runs_to_markdown

    runs = benchmark_ctf_load([300], admin_url=admin_url, pandas_limit=100, workdir=tmp_path)
    run = runs[0]
    assert run.loader_s > 0 and run.copy_s > 0 and run.pandas_s > 0 and run.pandas_pupils_timed == 100
    assert run.findings["error"] == 0, "every copy of a pupil gets a fresh valid UPN: no duplicates"
    assert "| 300 |" in ctf_runs_to_markdown(runs)
