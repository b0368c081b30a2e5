"""The retention DAG applies the policy as of its run's data-interval end: today nothing is due; years later every
return, name and delivered file past its period is gone, and each purge is in the ledger."""

from __future__ import annotations

import datetime as dt
import shutil

import psycopg
import pytest

from pupilshare.generate.census import build_census_extract, write_census_extract
from pupilshare.generate.returns import generate_all_returns
from pupilshare.ingest import ingest_inbox
from pupilshare.settings import Settings

pytestmark = [pytest.mark.dags, pytest.mark.integration]


def _counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return {
            "batches": conn.execute("select count(*) from raw.load_batches").fetchone()[0],
            "named_ncmp": conn.execute(
                "select count(*) from raw.ncmp_measurements where forename is not null"
            ).fetchone()[0],
        }


def test_retention_dag__moves_with_the_clock(tmp_path, scratch_db, monkeypatch, single_dag):
    settings = Settings(database_url=scratch_db, data_dir=tmp_path / "data")
    settings.ensure_folders()
    extract = build_census_extract(schools=3, pupils=300, seed=4)
    write_census_extract(extract, tmp_path / "src" / "census" / "autumn_2026")
    generate_all_returns(extract, tmp_path / "src", seed=4)
    shutil.copytree(tmp_path / "src", settings.inbox_dir, dirs_exist_ok=True)
    assert ingest_inbox(settings).loaded
    monkeypatch.setenv("PUPILSHARE_DATABASE_URL", scratch_db)
    monkeypatch.setenv("PUPILSHARE_DATA_DIR", str(settings.data_dir))
    before = _counts(scratch_db)
    assert before["batches"] > 0 and before["named_ncmp"] > 0

    dag = single_dag("pupilshare_retention")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    today_run = dag.test(logical_date=now)
    assert str(today_run.state) == "success"
    assert _counts(scratch_db) == before, "nothing is due today"
    with psycopg.connect(scratch_db) as conn:
        assert conn.execute("select count(*) from ledger.retention_purges").fetchone()[0] == 0

    later_run = dag.test(logical_date=now + dt.timedelta(days=7 * 365))
    assert str(later_run.state) == "success"
    after = _counts(scratch_db)
    assert after["batches"] == 0 and after["named_ncmp"] == 0
    with psycopg.connect(scratch_db) as conn:
        rules = dict(conn.execute("select rule, count(*) from ledger.retention_purges group by rule").fetchall())
        run_ids = {row[0] for row in conn.execute("select distinct run_id from ledger.retention_purges")}
    assert rules["raw_batch"] == before["batches"]
    assert rules["ncmp_identity"] >= 1 and rules["archived_file"] >= 1
    assert run_ids == {later_run.run_id}
    assert not [path for path in settings.archive_dir.rglob("*") if path.is_file()]
