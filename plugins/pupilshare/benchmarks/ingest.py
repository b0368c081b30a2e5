"""Census ingest benchmark: :func:`load_census_extract` (COPY of every table plus row-level validation) against
(a) a bare PostgreSQL COPY of the same ``pupilonroll.csv`` into a plain table with the same columns (the limit) and
(b) pandas ``read_csv`` + ``DataFrame.to_sql`` (SQLAlchemy, default chunking: the usual way).

Everything runs against one server in a scratch database that is dropped afterwards. The extract is generated in a
child process, and the loader runs in a fresh child process of its own, so its peak memory (``ru_maxrss``, and the
``tracemalloc`` peak of Python allocations) is the loader's alone. Not a test: run it with
``pupilshare benchmark-ingest --pupils 100000 --pupils 1000000``.
"""

from __future__ import annotations

import multiprocessing
import resource
import tempfile
import time
import tracemalloc
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from pupilshare.db import to_sqlalchemy_url, with_database

_SCHOOLS_PER_PUPIL = 1 / 310  # Norfolk: about 420 schools for 130,000 pupils
_MAX_SCHOOLS = 1000


@dataclass
class IngestRun:
    """One size's figures; ``*_pps`` are pupils per second (pupilonroll rows per second for the baselines)."""

    pupils: int
    schools: int
    generate_s: float
    extract_rows: int
    loader_s: float
    copy_s: float
    pandas_s: float
    pandas_rows_timed: int
    loader_peak_rss_mb: float
    loader_tracemalloc_peak_mb: float
    findings: dict[str, int] = field(default_factory=dict)

    @property
    def loader_pps(self) -> float:
        return self.pupils / self.loader_s

    @property
    def copy_pps(self) -> float:
        return self.pupils / self.copy_s

    @property
    def pandas_pps(self) -> float:
        return self.pupils / self.pandas_s


@dataclass
class IngestBenchmark:
    runs: list[IngestRun]

    def to_markdown(self) -> str:
        """The figures as a Markdown table (pandas scaled from ``pandas_rows_timed`` rows where fewer than all)."""
        lines = [
            "| pupils | rows in extract | loader s | loader pupils/s | raw COPY pupils/s | loader / COPY "
            "| pandas pupils/s | loader / pandas | loader peak RSS MB | loader tracemalloc peak MB |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for run in self.runs:
            scaled = "" if run.pandas_rows_timed == run.pupils else f" (timed on {run.pandas_rows_timed:,}, scaled)"
            lines.append(
                f"| {run.pupils:,} | {run.extract_rows:,} | {run.loader_s:.1f} | {run.loader_pps:,.0f} "
                f"| {run.copy_pps:,.0f} | {run.loader_pps / run.copy_pps:.0%} | {run.pandas_pps:,.0f}{scaled} "
                f"| {run.loader_pps / run.pandas_pps:.1f}x | {run.loader_peak_rss_mb:.0f} "
                f"| {run.loader_tracemalloc_peak_mb:.1f} |"
            )
        return "\n".join(lines)


def benchmark_ingest(
    sizes: list[int], *, admin_url: str, pandas_limit: int = 100_000, workdir: Path | None = None
) -> IngestBenchmark:
    """Run the benchmark once per size in ``sizes`` (pupils); returns the figures."""
    runs = []
    with tempfile.TemporaryDirectory(dir=workdir) as folder:
        for pupils in sizes:
            runs.append(_run_one(pupils, Path(folder) / f"census_{pupils}", admin_url, pandas_limit))
    return IngestBenchmark(runs)


def _run_one(pupils: int, extract: Path, admin_url: str, pandas_limit: int) -> IngestRun:
    schools = min(_MAX_SCHOOLS, max(20, round(pupils * _SCHOOLS_PER_PUPIL)))
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        counts = pool.apply(_generate, (extract, schools, pupils))
    generate_s = time.perf_counter() - started
    database = f"pupilshare_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(database)))
    url = with_database(admin_url, database)
    try:
        with context.Pool(1) as pool:  # a fresh process: its ru_maxrss is the loader's own peak
            loader_s, findings, rss_mb, traced_mb = pool.apply(_time_loader, (url, extract))
        copy_s = _time_raw_copy(url, extract / "pupilonroll.csv")
        timed_rows = min(pupils, pandas_limit)
        pandas_s = _time_pandas(url, extract / "pupilonroll.csv", timed_rows) * pupils / timed_rows
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(database)))
    return IngestRun(
        pupils=pupils,
        schools=schools,
        generate_s=generate_s,
        extract_rows=sum(counts.values()),
        loader_s=loader_s,
        copy_s=copy_s,
        pandas_s=pandas_s,
        pandas_rows_timed=timed_rows,
        loader_peak_rss_mb=rss_mb,
        loader_tracemalloc_peak_mb=traced_mb,
        findings=findings,
    )


def _generate(extract: Path, schools: int, pupils: int) -> dict[str, int]:
    from pupilshare.generate.census import generate_census_extract

    return generate_census_extract(extract, schools=schools, pupils=pupils, seed=1)


def _time_loader(url: str, extract: Path) -> tuple[float, dict[str, int], float, float]:
    from pupilshare.ingest.census import load_census_extract
    from pupilshare.ingest.raw_schema import ensure_raw_schema

    with psycopg.connect(url) as conn:
        with conn.transaction():
            ensure_raw_schema(conn)
        tracemalloc.start()
        started = time.perf_counter()
        result = load_census_extract(conn, extract)
        elapsed = time.perf_counter() - started
        _, traced_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return elapsed, (result or {}).get("findings", {}), rss_mb, traced_peak / 1024**2


def _time_raw_copy(url: str, csv_path: Path) -> float:
    """The limit: COPY the same CSV, same client path, into a plain table of text columns (no defaults, no index)."""
    header = csv_path.open(encoding="utf-8").readline().strip().split(",")
    columns = sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(name.lower())) for name in header)
    with psycopg.connect(url) as conn:
        conn.execute(sql.SQL("create table bench_copy_pupilonroll ({})").format(columns))
        conn.commit()
        started = time.perf_counter()
        copy_statement = "copy bench_copy_pupilonroll from stdin with (format csv, header true)"
        with (
            conn.cursor() as cursor,
            conn.transaction(),
            cursor.copy(copy_statement) as copy,
            csv_path.open("rb") as handle,
        ):
            while chunk := handle.read(1 << 20):
                copy.write(chunk)
        return time.perf_counter() - started


def _time_pandas(url: str, csv_path: Path, rows: int) -> float:
    import pandas as pd
    import sqlalchemy

    engine = sqlalchemy.create_engine(to_sqlalchemy_url(url))
    try:
        started = time.perf_counter()
        frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False, nrows=rows)
        frame.to_sql("bench_pandas_pupilonroll", engine, if_exists="replace", index=False)
        return time.perf_counter() - started
    finally:
        engine.dispose()
