"""Surviving faults: a loader killed mid-COPY leaves no partial batch and a rerun gives the identical result; a full
outbox disk fails clearly and records nothing as delivered.

(The PostgreSQL restart during a DAG run is in ``tests/dags/test_fault_postgres_restart.py``; a failing delivery
target in the delivery tests.)
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from pupilshare.db import with_database
from pupilshare.generate.census import build_census_extract, write_census_extract
from pupilshare.ingest import ingest_inbox
from pupilshare.ingest.loaders import ensure_all_raw_tables
from pupilshare.publish import DeliveryWriteError, deliver_feed
from pupilshare.settings import Settings

pytestmark = pytest.mark.integration


# --- SIGKILL mid-COPY -------------------------------------------------------------------------------------------------


def _census_fingerprint(url: str) -> dict[str, tuple[int, str]]:
    """Rows and an md5 of the content of every raw census table, the batch register and the findings, leaving out
    ids and times that differ between loads (batch ids, load times, finding ids)."""
    with psycopg.connect(url) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "select table_name from information_schema.tables where table_schema = 'raw' "
                "and table_type = 'BASE TABLE' and (table_name like 'census%%' or table_name in "
                "('load_batches', 'validation_findings')) order by 1"
            ).fetchall()
        ]
        volatile = "'{_load_batch_id,load_batch_id,loaded_at,found_at,finding_id}'::text[]"
        fingerprint = {}
        for table in tables:
            query = sql.SQL(
                "select count(*), md5(coalesce(string_agg((to_jsonb(t) - {})::text, '|' "
                "order by (to_jsonb(t) - {})::text), '')) from raw.{} as t"
            ).format(sql.SQL(volatile), sql.SQL(volatile), sql.Identifier(table))
            fingerprint[table] = tuple(conn.execute(query).fetchone())
    return fingerprint


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _blocked_copy_pid(url: str, table: str) -> int | None:
    with psycopg.connect(url) as conn:
        found = conn.execute(
            "select pid from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' "
            "and query ilike 'copy%%' and query like %s",
            (f'%"{table}"%',),
        ).fetchone()
    return found[0] if found else None


def test_loader_sigkilled_mid_copy__no_partial_batch_and_rerun_is_identical(tmp_path, scratch_db, admin_url):
    """The loader runs as its own process (`pupilshare ingest`). A SHARE lock held on the last census table stops
    its COPY there, so every earlier table has been streamed inside the open transaction; then SIGKILL."""
    extract = build_census_extract(schools=4, pupils=800, seed=21)
    source = tmp_path / "extract"
    write_census_extract(extract, source)
    settings = Settings(database_url=scratch_db, data_dir=tmp_path / "data")
    settings.ensure_folders()
    shutil.copytree(source, settings.inbox_dir / "census" / "autumn_2026")
    last_table = sorted(path.stem for path in source.glob("*.csv"))[-1]
    with psycopg.connect(scratch_db) as conn:
        ensure_all_raw_tables(conn)
    env = {**os.environ, "PUPILSHARE_DATABASE_URL": scratch_db, "PUPILSHARE_DATA_DIR": str(settings.data_dir)}
    with psycopg.connect(scratch_db) as blocker:
        blocker.execute(sql.SQL("lock table raw.{} in share mode").format(sql.Identifier(f"census_{last_table}")))
        loader = subprocess.Popen([sys.executable, "-m", "pupilshare.cli", "ingest"], env=env)
        try:
            backend = _wait_for(lambda: _blocked_copy_pid(scratch_db, f"census_{last_table}"), 120, "the loader's COPY")
            with psycopg.connect(scratch_db) as conn:
                in_flight = conn.execute(
                    "select count(*) from pg_locks where pid = %s and locktype = 'relation' and mode = "
                    "'RowExclusiveLock'",
                    (backend,),
                ).fetchone()[0]
            assert in_flight > 1, "earlier tables were written inside the loader's open transaction"
            loader.send_signal(signal.SIGKILL)
            assert loader.wait(30) == -signal.SIGKILL
        finally:
            if loader.poll() is None:
                loader.kill()
        blocker.rollback()  # the killed backend now reads EOF and aborts
    _wait_for(lambda: _backend_gone(scratch_db, backend), 60, "the killed loader's backend to end")

    after_kill = _census_fingerprint(scratch_db)
    assert all(rows == 0 for rows, _ in after_kill.values()), f"a partial batch remained: {after_kill}"
    assert (settings.inbox_dir / "census" / "autumn_2026").is_dir(), "the extract is still waiting in the inbox"
    assert not list(settings.quarantine_dir.rglob("REPORT.txt")), "a killed load is not the file's fault"

    rerun = ingest_inbox(settings)
    assert len(rerun.loaded) == 1 and not rerun.quarantined
    reference_url = _fresh_database(admin_url)
    try:
        reference = Settings(database_url=reference_url, data_dir=tmp_path / "reference")
        reference.ensure_folders()
        shutil.copytree(source, reference.inbox_dir / "census" / "autumn_2026")
        ingest_inbox(reference)
        assert _census_fingerprint(scratch_db) == _census_fingerprint(reference_url)
    finally:
        _drop_database(admin_url, reference_url)


def _backend_gone(url: str, pid: int) -> bool:
    with psycopg.connect(url) as conn:
        return conn.execute("select count(*) = 0 from pg_stat_activity where pid = %s", (pid,)).fetchone()[0]


def _fresh_database(admin_url: str) -> str:
    name = f"pupilshare_scratch_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    return with_database(admin_url, name)


def _drop_database(admin_url: str, url: str) -> None:
    name = url.rsplit("/", 1)[-1]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


# --- a full outbox disk -----------------------------------------------------------------------------------------------


def _mount_small_tmpfs(folder: Path, size: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a size-limited tmpfs needs root (CI and the dev machine run as root)")
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(folder)], capture_output=True
    )
    if result.returncode != 0:
        pytest.skip(f"this machine cannot mount a tmpfs: {result.stderr.decode().strip()}")


def _ledger_counts(url: str) -> tuple[int, int]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "select (select count(*) from ledger.deliveries), (select count(*) from ledger.disclosures)"
        ).fetchone()


def test_deliver_feed__full_outbox_disk_fails_clearly_and_records_nothing(tmp_path, scratch_db, stage_synthetic_feed):
    settings = Settings(database_url=scratch_db, data_dir=tmp_path / "data")
    settings.ensure_folders()
    staging = stage_synthetic_feed(settings, rows=2000, feed_date=dt.date(2026, 11, 30), padding=40)
    assert Path(staging, "yss_2026-11-30.csv").stat().st_size > 256 * 1024
    _mount_small_tmpfs(settings.outbox_dir, "64k")
    try:
        with pytest.raises(DeliveryWriteError, match="No space left on device.*Nothing was delivered") as failure:
            deliver_feed(staging, settings=settings)
        assert isinstance(failure.value.__cause__, OSError) and failure.value.__cause__.errno == errno.ENOSPC
        assert _ledger_counts(scratch_db) == (0, 0), "nothing recorded as delivered"
        assert [path for path in settings.outbox_dir.rglob("*") if path.is_file()] == [], "no partial file left"

        subprocess.run(["mount", "-o", "remount,size=8m", str(settings.outbox_dir)], check=True)
        delivered = deliver_feed(staging, settings=settings)
        assert delivered["status"] == "delivered"
        assert _ledger_counts(scratch_db) == (1, 2000)
        assert deliver_feed(staging, settings=settings)["status"] == "already_delivered"
        assert _ledger_counts(scratch_db) == (1, 2000)
    finally:
        subprocess.run(["umount", "-l", str(settings.outbox_dir)], check=False)


def test_deliver_feed__failed_redelivery_leaves_the_earlier_delivery_of_the_day_as_delivered(
    tmp_path, scratch_db, stage_synthetic_feed
):
    """A second feed of the same date with other data (another delivery key, the same file names) fails while being
    written: the files delivered earlier that day stay, byte for byte, and only the first delivery is recorded."""
    settings = Settings(database_url=scratch_db, data_dir=tmp_path / "data")
    settings.ensure_folders()
    feed_date = dt.date(2026, 11, 30)
    first = deliver_feed(stage_synthetic_feed(settings, rows=20, feed_date=feed_date, padding=40), settings=settings)
    assert first["status"] == "delivered"
    delivered = {path: path.read_bytes() for path in (settings.outbox_dir / "yss").rglob("*") if path.is_file()}
    assert len(delivered) == 2, "the feed and its manifest"

    second = stage_synthetic_feed(settings, rows=30, feed_date=feed_date, padding=40)
    blocker = Path(first["file"]).with_name(f".{Path(first['file']).name}.partial")
    blocker.mkdir()  # the feed's partial file cannot be written: the target fails mid-delivery
    with pytest.raises(DeliveryWriteError, match="Nothing was delivered"):
        deliver_feed(second, settings=settings)
    blocker.rmdir()
    assert {path: path.read_bytes() for path in (settings.outbox_dir / "yss").rglob("*") if path.is_file()} == (
        delivered
    ), "the earlier delivery's files are untouched"
    assert _ledger_counts(scratch_db) == (1, 20), "only the first delivery is recorded"


def test_deliver_feed__failed_routed_redelivery_leaves_every_earlier_route_file_as_delivered(
    tmp_path, scratch_db, stage_synthetic_feed
):
    """The same for a recipient with one file per route: the second route's file cannot be written, so nothing of the
    second feed lands, and the first feed's files of both routes stay as delivered."""
    settings = Settings(database_url=scratch_db, data_dir=tmp_path / "data")
    settings.ensure_folders()
    feed_date = dt.date(2026, 11, 30)
    first = deliver_feed(
        stage_synthetic_feed(settings, rows=20, feed_date=feed_date, recipient_id="post16", padding=40),
        settings=settings,
    )
    assert first["status"] == "delivered" and len(first["deliveries"]) == 2
    delivered = {path: path.read_bytes() for path in (settings.outbox_dir / "post16").rglob("*") if path.is_file()}
    assert len(delivered) == 4, "two routes, each a feed and its manifest"

    second = stage_synthetic_feed(settings, rows=30, feed_date=feed_date, recipient_id="post16", padding=40)
    last = Path(first["deliveries"][-1]["file"])
    blocker = last.with_name(f".{last.name}.partial")
    blocker.mkdir()
    with pytest.raises(DeliveryWriteError, match="Nothing was delivered"):
        deliver_feed(second, settings=settings)
    blocker.rmdir()
    assert {path: path.read_bytes() for path in (settings.outbox_dir / "post16").rglob("*") if path.is_file()} == (
        delivered
    ), "the earlier delivery's files are untouched, and no partial file is left"
    assert _ledger_counts(scratch_db) == (2, 20), "only the first feed's two deliveries are recorded"
