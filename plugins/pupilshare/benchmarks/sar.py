"""Subject access benchmark: the time of one ``pupilshare sar`` report at county scale.

A scratch database gets the county preset (420 schools, 130,000 pupils) and every other return about the same
children, loaded through the real ingest; the ledger gets ``feeds`` deliveries to YSS of every pupil (one
disclosure row per pupil per feed, as a year of monthly feeds would leave it); the project's roles are created.
Then :func:`pupilshare.sar.subject_access_report` runs as the DPO for ``samples`` pupils drawn at random, one
connection, each report timed on its own (the function call, the ledger read and building the report in Python).
The dbt models are not built here, so the effective opt-outs are the "not built" note: with dbt built they add one
index look-up on ``int_opt_outs_effective``. The scratch database and the roles are dropped afterwards.

Not a test: run it with ``pupilshare benchmark-sar`` (minutes: generating and loading the county dominates).
"""

from __future__ import annotations

import datetime as dt
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from pupilshare.db import to_sqlalchemy_url, with_database


@dataclass
class SarBenchmark:
    """Figures of one run; ``report_s`` holds one time per sampled pupil."""

    pupils: int
    schools: int
    raw_rows: int
    disclosures: int
    setup_s: float
    report_s: list[float]
    command_s: list[float]

    @property
    def median_s(self) -> float:
        return statistics.median(self.report_s)

    @property
    def max_s(self) -> float:
        return max(self.report_s)

    def to_markdown(self) -> str:
        return "\n".join(
            [
                "| pupils | schools | raw rows | ledger disclosures | reports timed | median s | max s "
                "| whole `pupilshare sar` commands timed | median s | max s | set-up s |",
                "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
                f"| {self.pupils:,} | {self.schools:,} | {self.raw_rows:,} | {self.disclosures:,} "
                f"| {len(self.report_s)} | {self.median_s:.3f} | {self.max_s:.3f} "
                f"| {len(self.command_s)} | {statistics.median(self.command_s):.2f} | {max(self.command_s):.2f} "
                f"| {self.setup_s:.0f} |",
            ]
        )


def benchmark_sar(
    *,
    admin_url: str,
    preset: str = "county",
    samples: int = 50,
    feeds: int = 12,
    commands: int = 5,
    seed: int = 1,
) -> SarBenchmark:
    """Load ``preset`` into a scratch database, then time the subject access report for ``samples`` pupils, and
    the whole ``pupilshare sar`` command (a new process: interpreter start, imports, connection) for ``commands``."""
    from pupilshare.access import default_role_prefix, drop_roles, ensure_roles, project_roles

    name = f"pupilshare_bench_sar_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    url = with_database(admin_url, name)
    roles = project_roles(default_role_prefix(name))
    try:
        started = time.perf_counter()
        schools, upns = _load_county(url, preset, seed)
        with psycopg.connect(url, autocommit=True) as conn:
            ensure_roles(conn, prefix=default_role_prefix(name))
            _record_feeds(conn, upns, feeds)
            conn.execute("analyze")
            raw_rows = _raw_rows(conn)
        setup_s = time.perf_counter() - started
        sample = random.Random(seed).sample(upns, min(samples, len(upns)))  # noqa: S311 - a benchmark sample
        report_s = _time_reports(url, roles, sample)
        command_s = _time_commands(url, sample[:commands])
        return SarBenchmark(len(upns), schools, raw_rows, len(upns) * feeds, setup_s, report_s, command_s)
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            drop_roles(conn, roles)
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def _load_county(url: str, preset: str, seed: int) -> tuple[int, list[str]]:
    """Generate the preset and every other return, load them through the ingest; returns (schools, UPNs)."""
    from pupilshare.generate.census import PRESETS, build_census_extract, write_census_extract
    from pupilshare.generate.returns import generate_all_returns
    from pupilshare.ingest import ingest_inbox
    from pupilshare.settings import Settings

    schools, pupils = PRESETS[preset]
    with tempfile.TemporaryDirectory(prefix="pupilshare-bench-sar-") as workdir:
        data = Path(workdir) / "data"
        extract = build_census_extract(schools=schools, pupils=pupils, seed=seed)
        write_census_extract(extract, data / "inbox" / "census" / "autumn")
        generate_all_returns(extract, data / "inbox", seed=seed)
        # an Airflow URL stops the ingest from making a `<name>_airflow` database that nothing here would drop
        ingest_inbox(Settings(database_url=url, data_dir=data, airflow_database_url=to_sqlalchemy_url(url)))
    return schools, [pupil.upn for pupil in extract.pupils]


def record_synthetic_delivery(
    conn: psycopg.Connection,
    *,
    recipient_id: str,
    feed_date: dt.date,
    upns: list[str],
    fields: tuple[str, ...],
    legal_basis: str,
    tag: str,
) -> None:
    """One passed gate and one delivery of ``upns`` to ``recipient_id``, recorded through the ledger's own functions
    as the publish step records them (no file is written; ``tag`` makes the run, gate and checksum ids unique)."""
    from pupilshare.ledger import LedgerRow, record_delivery, record_gate_result

    gate_result_id = f"gate-{tag}"
    record_gate_result(
        conn,
        gate_result_id=gate_result_id,
        recipient_id=recipient_id,
        suite_name=f"{recipient_id}__feed",
        feed_date=feed_date,
        run_id=f"run-{tag}",
        success=True,
        evaluated_rows=len(upns),
        failures=[],
        data_docs_index=None,
    )
    record_delivery(
        conn,
        delivery={
            "delivery_id": str(uuid.uuid4()),
            "delivery_key": f"{recipient_id}|{feed_date}|{tag}",
            "recipient_id": recipient_id,
            "feed_date": feed_date,
            "file_name": f"{recipient_id}_{feed_date}.csv",
            "file_sha256": f"sha-{tag}",
            "row_count": len(upns),
            "target": "outbox",
            "legal_basis": legal_basis,
            "run_id": f"run-{tag}",
            "policy_version": "synthetic",
            "gate_result_id": gate_result_id,
        },
        rows=[LedgerRow(upn, fields) for upn in upns],
    )


def _record_feeds(conn: psycopg.Connection, upns: list[str], feeds: int) -> None:
    """``feeds`` monthly YSS deliveries of every pupil, through the ledger's own functions."""
    for month in range(feeds):
        with conn.transaction():
            record_synthetic_delivery(
                conn,
                recipient_id="yss",
                feed_date=dt.date(2026, 1, 1) + dt.timedelta(days=31 * month),
                upns=upns,
                fields=("forename", "surname", "date_of_birth", "postcode"),
                legal_basis="s.68(1) Education and Skills Act 2008",
                tag=f"bench-{month}",
            )


def _raw_rows(conn: psycopg.Connection) -> int:
    return conn.execute(
        "select coalesce(sum(n_live_tup), 0)::bigint from pg_stat_user_tables where schemaname = 'raw'"
    ).fetchone()[0]


def _time_reports(url: str, roles, sample: list[str]) -> list[float]:
    from pupilshare.sar import act_as_dpo, subject_access_report

    times = []
    with psycopg.connect(url) as conn:
        act_as_dpo(conn, roles.dpo)
        subject_access_report(conn, sample[0])  # warm the catalogue caches of this connection once
        for upn in sample:
            started = time.perf_counter()
            subject_access_report(conn, upn)
            times.append(time.perf_counter() - started)
    return times


def _time_commands(url: str, sample: list[str]) -> list[float]:
    """Wall time of ``pupilshare sar UPN`` as a new process, JSON to a pipe."""
    times = []
    for upn in sample:
        started = time.perf_counter()
        subprocess.run(  # noqa: S603 - our own command, fixed arguments
            [sys.executable, "-m", "pupilshare.cli", "sar", upn, "--database-url", url],
            check=True,
            capture_output=True,
        )
        times.append(time.perf_counter() - started)
    return times
