"""Census ingest benchmark: :func:`load_census_extract` (COPY of every table plus row-level validation) against
(a) a bare PostgreSQL COPY of the same ``pupilonroll.csv`` into a plain table with the same columns (the limit the
issue names), (a') a bare COPY of every table of the extract (the limit for the same data the loader loads) and
(b) pandas ``read_csv`` + ``DataFrame.to_sql`` of ``pupilonroll.csv`` (SQLAlchemy, default chunking: the usual way).

Everything runs against one server in a scratch database that is dropped afterwards. The extract is generated in a
child process; the loader and pandas each run in a fresh child process of their own. Peak memory is the child's
``VmHWM`` (the high-water mark of its own address space), not ``ru_maxrss``: Linux carries the parent's resident set
at fork into the ``ru_maxrss`` of a spawned child, which once made the loader look like it needed 849 MB when the
parent had just run pandas. Not a test: run it with ``pupilshare benchmark-ingest --pupils 100000 --pupils 1000000``.
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
    loader_copy_s: float
    loader_validate_s: float
    copy_s: float
    copy_all_s: float
    pandas_s: float
    pandas_rows_timed: int
    loader_peak_rss_mb: float
    loader_tracemalloc_peak_mb: float
    pandas_peak_rss_mb: float
    findings: dict[str, int] = field(default_factory=dict)

    @property
    def loader_pps(self) -> float:
        return self.pupils / self.loader_s

    @property
    def copy_pps(self) -> float:
        return self.pupils / self.copy_s

    @property
    def copy_all_pps(self) -> float:
        return self.pupils / self.copy_all_s

    @property
    def pandas_pps(self) -> float:
        return self.pupils / self.pandas_s


@dataclass
class IngestBenchmark:
    runs: list[IngestRun]

    def to_markdown(self) -> str:
        """The figures as Markdown tables (pandas scaled from ``pandas_rows_timed`` rows where fewer than all)."""
        lines = [
            "| pupils | rows in extract | loader s (COPY + validation) | loader pupils/s "
            "| (a) raw COPY pupilonroll pupils/s | loader / (a) | (a') raw COPY whole extract pupils/s | loader / (a') "
            "| (b) pandas pupils/s | loader / (b) |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for run in self.runs:
            scaled = "" if run.pandas_rows_timed == run.pupils else f" (timed on {run.pandas_rows_timed:,}, scaled)"
            lines.append(
                f"| {run.pupils:,} | {run.extract_rows:,} "
                f"| {run.loader_s:.1f} ({run.loader_copy_s:.1f} + {run.loader_validate_s:.1f}) "
                f"| {run.loader_pps:,.0f} | {run.copy_pps:,.0f} | {run.loader_pps / run.copy_pps:.0%} "
                f"| {run.copy_all_pps:,.0f} | {run.loader_pps / run.copy_all_pps:.0%} "
                f"| {run.pandas_pps:,.0f}{scaled} | {run.loader_pps / run.pandas_pps:.1f}x |"
            )
        lines += [
            "",
            "| pupils | loader COPY s | whole-extract raw COPY s | loader COPY / raw COPY | validation s "
            "| loader peak RSS MB | loader tracemalloc peak MB | pandas peak RSS MB (rows timed) |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for run in self.runs:
            lines.append(
                f"| {run.pupils:,} | {run.loader_copy_s:.1f} | {run.copy_all_s:.1f} "
                f"| {run.copy_all_s / run.loader_copy_s:.0%} | {run.loader_validate_s:.1f} "
                f"| {run.loader_peak_rss_mb:.0f} | {run.loader_tracemalloc_peak_mb:.1f} "
                f"| {run.pandas_peak_rss_mb:.0f} ({run.pandas_rows_timed:,}) |"
            )
        return "\n".join(lines)


def benchmark_ingest(
    sizes: list[int],
    *,
    admin_url: str,
    pandas_limit: int = 100_000,
    workdir: Path | None = None,
    extract_cache: Path | None = None,
) -> IngestBenchmark:
    """Run the benchmark once per size in ``sizes`` (pupils); returns the figures.

    With ``extract_cache``, generated extracts are kept there (``census_<pupils>_seed1``) and reused by later runs:
    generating a million pupils takes longer than loading them.
    """
    runs = []
    with tempfile.TemporaryDirectory(dir=workdir) as folder:
        for pupils in sizes:
            cache = extract_cache or Path(folder)
            runs.append(_run_one(pupils, cache / f"census_{pupils}_seed1", admin_url, pandas_limit))
    return IngestBenchmark(runs)


def _run_one(pupils: int, extract: Path, admin_url: str, pandas_limit: int) -> IngestRun:
    schools = min(_MAX_SCHOOLS, max(20, round(pupils * _SCHOOLS_PER_PUPIL)))
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    marker = extract.with_name(f"{extract.name}.complete")  # beside, not inside: the loader refuses stray files
    if not marker.exists():
        with context.Pool(1) as pool:
            pool.apply(_generate, (extract, schools, pupils))
        marker.touch()
    generate_s = time.perf_counter() - started
    database = f"pupilshare_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(database)))
    url = with_database(admin_url, database)
    try:
        with context.Pool(1) as pool:  # a fresh process: its VmHWM is the loader's own peak
            loader_s, result, rss_mb, traced_mb = pool.apply(_time_loader, (url, extract))
        copy_s = _time_raw_copy(url, [extract / "pupilonroll.csv"])
        copy_all_s = _time_raw_copy(url, sorted(extract.glob("*.csv")))
        timed_rows = min(pupils, pandas_limit)
        with context.Pool(1) as pool:
            pandas_s, pandas_rss_mb = pool.apply(_time_pandas, (url, extract / "pupilonroll.csv", timed_rows))
        pandas_s = pandas_s * pupils / timed_rows
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(database)))
    return IngestRun(
        pupils=pupils,
        schools=schools,
        generate_s=generate_s,
        extract_rows=sum(result["rows"].values()),
        loader_s=loader_s,
        loader_copy_s=result["seconds"]["copy"],
        loader_validate_s=result["seconds"]["validate"],
        copy_s=copy_s,
        copy_all_s=copy_all_s,
        pandas_s=pandas_s,
        pandas_rows_timed=timed_rows,
        loader_peak_rss_mb=rss_mb,
        loader_tracemalloc_peak_mb=traced_mb,
        pandas_peak_rss_mb=pandas_rss_mb,
        findings=result["findings"],
    )


def _peak_rss_mb() -> float:
    """This process's own resident-set high-water mark (``VmHWM``; see the module docstring on ``ru_maxrss``)."""
    with Path("/proc/self/status").open() as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: an upper bound


def _generate(extract: Path, schools: int, pupils: int) -> dict[str, int]:
    from pupilshare.generate.census import generate_census_extract

    return generate_census_extract(extract, schools=schools, pupils=pupils, seed=1)


def _time_loader(url: str, extract: Path) -> tuple[float, dict, float, float]:
    """Time the loader in this (child) process; errors come back as plain ``RuntimeError`` because an exception
    that cannot be unpickled (such as :class:`ReturnRejectedError`) would hang ``Pool.apply`` for ever."""
    try:
        return _time_loader_here(url, extract)
    except Exception as error:
        raise RuntimeError(f"the loader failed on {extract}: {error!r}") from None


def _time_loader_here(url: str, extract: Path) -> tuple[float, dict, float, float]:
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
    if result is None:
        raise RuntimeError(f"{extract} was loaded before: the scratch database is not fresh")
    return elapsed, result, _peak_rss_mb(), traced_peak / 1024**2


def _time_raw_copy(url: str, csv_paths: list[Path]) -> float:
    """The limit: COPY the same CSVs, same client path, one transaction, into plain tables of text columns (no
    defaults, no index, no key)."""
    with psycopg.connect(url) as conn:
        tables = []
        for csv_path in csv_paths:
            table = f"bench_copy_{csv_path.stem}"
            header = csv_path.open(encoding="utf-8-sig").readline().strip().split(",")
            columns = sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(name.lower())) for name in header)
            conn.execute(sql.SQL("drop table if exists {}").format(sql.Identifier(table)))
            conn.execute(sql.SQL("create table {} ({})").format(sql.Identifier(table), columns))
            tables.append((table, csv_path))
        conn.commit()
        started = time.perf_counter()
        with conn.transaction(), conn.cursor() as cursor:
            for table, csv_path in tables:
                statement = sql.SQL("copy {} from stdin with (format csv, header true)").format(sql.Identifier(table))
                with cursor.copy(statement) as copy, csv_path.open("rb") as handle:
                    while chunk := handle.read(1 << 20):
                        copy.write(chunk.removeprefix(b"\xef\xbb\xbf"))
        return time.perf_counter() - started


def _time_pandas(url: str, csv_path: Path, rows: int) -> tuple[float, float]:
    import pandas as pd
    import sqlalchemy

    engine = sqlalchemy.create_engine(to_sqlalchemy_url(url))
    try:
        started = time.perf_counter()
        frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False, nrows=rows)
        frame.to_sql("bench_pandas_pupilonroll", engine, if_exists="replace", index=False)
        return time.perf_counter() - started, _peak_rss_mb()
    finally:
        engine.dispose()
