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
