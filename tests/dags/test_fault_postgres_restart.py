"""PostgreSQL restarts in the middle of a DAG run: the task that lost its connection fails, retries and succeeds, and
the return loads exactly once and is not quarantined.

The data database is a private PostgreSQL 16 cluster (pgserver) started for this test, because the machine's shared
server must not be restarted under other test sessions; Airflow's metadata stays on the session's server.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
import threading
import time
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from pupilshare.db import ensure_database, with_database
from pupilshare.generate.census import build_census_extract, write_census_extract
from pupilshare.ingest.loaders import ensure_all_raw_tables

pytestmark = [pytest.mark.dags, pytest.mark.integration]


@pytest.fixture
def private_server():
    """A private cluster in its own folder (not pytest's tmp_path, which concurrent sessions prune)."""
    pgserver = pytest.importorskip("pgserver")
    folder = Path(tempfile.mkdtemp(prefix="pupilshare-pgrestart-"))
    server = pgserver.get_server(folder / "pgdata", cleanup_mode="stop")
    try:
        yield server
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


def _restart(server) -> None:
    from pgserver._commands import pg_ctl

    pg_ctl(
        ["-w", "-m", "fast", "-l", str(server.log), "restart"],
        pgdata=server.pgdata,
        user=server.system_user,
        timeout=120,
    )


def _restart_when_copy_blocks(url: str, table: str, server, outcome: dict) -> None:
    """Hold a SHARE lock on ``table`` so the loader's COPY into it waits mid-load, then restart the server."""
    try:
        with psycopg.connect(url) as blocker, psycopg.connect(url, autocommit=True) as watcher:
            blocker.execute(sql.SQL("lock table raw.{} in share mode").format(sql.Identifier(table)))
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                # autocommit: pg_stat_activity is a snapshot per transaction
                waiting = watcher.execute(
                    "select count(*) from pg_stat_activity where wait_event_type = 'Lock' and query ilike 'copy%%' "
                    "and query like %s",
                    (f'%"{table}"%',),
                ).fetchone()[0]
                if waiting:
                    break
                time.sleep(0.05)
            else:
                outcome["error"] = "the loader never reached its COPY"
                return
            outcome["blocked_at"] = time.monotonic()
            _restart(server)
            outcome["restarted"] = True
    except psycopg.OperationalError:
        outcome.setdefault("restarted", True)  # the blocker's own connection ends with the restart
    except Exception as error:  # noqa: BLE001 - reported to the test thread
        outcome["error"] = repr(error)


def test_ingest_dag__postgres_restart_mid_load__task_retries_to_success(
    tmp_path, private_server, monkeypatch, single_dag
):
    server_url = private_server.get_uri()
    ensure_database(server_url, "pupilshare")
    data_url = with_database(server_url, "pupilshare")
    data_dir = tmp_path / "data"
    extract = build_census_extract(schools=4, pupils=600, seed=8)
    write_census_extract(extract, data_dir / "inbox" / "census" / "autumn_2026")
    folder = data_dir / "inbox" / "census" / "autumn_2026"
    last_table = f"census_{sorted(path.stem for path in folder.glob('*.csv'))[-1]}"
    pupils_sent = len((folder / "pupilonroll.csv").read_text(encoding="utf-8").splitlines()) - 1
    with psycopg.connect(data_url) as conn:
        ensure_all_raw_tables(conn)
    monkeypatch.setenv("PUPILSHARE_DATABASE_URL", data_url)
    monkeypatch.setenv("PUPILSHARE_DATA_DIR", str(data_dir))

    dag = single_dag("pupilshare_ingest")
    (task,) = dag.tasks
    assert task.retries >= 1, "the ingest task must retry"
    outcome: dict = {}
    restarter = threading.Thread(
        target=_restart_when_copy_blocks, args=(data_url, last_table, private_server, outcome), daemon=True
    )
    restarter.start()
    dag_run = dag.test(logical_date=dt.datetime(2026, 11, 29, 12, tzinfo=dt.UTC))
    restarter.join(timeout=300)
    server_log = private_server.log.read_text(errors="replace")[-3000:]

    assert outcome.get("restarted") and "error" not in outcome, (outcome, server_log)
    assert str(dag_run.state) == "success", server_log
    (task_instance,) = dag_run.get_task_instances()
    assert task_instance.try_number >= 2, "the first try lost its connection to the restart; a retry loaded"
    with psycopg.connect(data_url) as conn:
        batches = conn.execute("select count(*) from raw.load_batches").fetchone()[0]
        pupils = conn.execute("select count(*) from raw.census_pupilonroll").fetchone()[0]
    assert batches == 1
    assert pupils == pupils_sent > 0
    assert not list((data_dir / "quarantine").rglob("REPORT.txt")), "a restart is not the file's fault"
