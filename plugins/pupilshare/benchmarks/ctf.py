"""CTF benchmarks.

:func:`benchmark_ctf_load` times :func:`pupilshare.ingest.ctf.load_ctf` (byte scan for DOCTYPE/entities, streaming
parse, row rules, COPY into ``raw.ctf_pupils``, findings) on one CTF of ``n`` pupils against, in the same run and on
the same server: (a) a bare PostgreSQL COPY of the same pupil rows from a prepared CSV into a plain table (the
limit), and (b) the usual pandas way, ``pd.read_xml`` of the pupil elements plus ``DataFrame.to_sql``. The loader and
pandas each run in a fresh child process, so their peak memory (``VmHWM``) is their own.

:func:`benchmark_ctf_streaming` times the parse and row rules alone, without a database.

The file is written from a synthetic census extract (pupils repeated to reach ``n``). Run with
``pupilshare benchmark-ctf --pupils 100000 --pupils 1000000``.
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json
import multiprocessing
import random
import tempfile
import time
import tracemalloc
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from stdnum.gb import upn as upn_check

from pupilshare.benchmarks.ingest import _peak_rss_mb
from pupilshare.db import to_sqlalchemy_url, with_database
from pupilshare.generate.census import build_census_extract
from pupilshare.generate.returns import write_ctf
from pupilshare.ingest.ctf import _JSON_COLUMNS, _PUPIL_COLUMNS, iter_ctf, scan_ctf_bytes, validate_ctf_pupil


@dataclass(frozen=True)
class CtfBenchmark:
    pupils: int
    file_bytes: int
    seconds: float
    pupils_per_second: float
    peak_python_bytes: int
    seconds_traced: float


@dataclass(frozen=True)
class CtfLoadRun:
    """One size's figures; seconds are wall time, pandas scaled from ``pandas_pupils_timed`` where fewer."""

    pupils: int
    file_mb: float
    loader_s: float
    copy_s: float
    pandas_s: float
    pandas_pupils_timed: int
    loader_peak_rss_mb: float
    pandas_peak_rss_mb: float
    findings: dict


def ctf_runs_to_markdown(runs: list[CtfLoadRun]) -> str:
    lines = [
        "| pupils | file MB | loader s | loader pupils/s | (a) raw COPY pupils/s | loader / (a) | (b) pandas pupils/s "
        "| loader / (b) | loader peak RSS MB | pandas peak RSS MB (pupils timed) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        scaled = "" if run.pandas_pupils_timed == run.pupils else f" (timed on {run.pandas_pupils_timed:,}, scaled)"
        loader, copy, pandas = (run.pupils / seconds for seconds in (run.loader_s, run.copy_s, run.pandas_s))
        lines.append(
            f"| {run.pupils:,} | {run.file_mb:,.0f} | {run.loader_s:.1f} | {loader:,.0f} | {copy:,.0f} "
            f"| {loader / copy:.0%} | {pandas:,.0f}{scaled} | {loader / pandas:.1f}x | {run.loader_peak_rss_mb:.0f} "
            f"| {run.pandas_peak_rss_mb:.0f} ({run.pandas_pupils_timed:,}) |"
        )
    return "\n".join(lines)


def benchmark_ctf_load(
    sizes: list[int], *, admin_url: str, pandas_limit: int = 100_000, workdir: Path | None = None
) -> list[CtfLoadRun]:
    """Run the CTF load benchmark once per size (pupils in one CTF); a scratch database per size is dropped after."""
    runs = []
    with tempfile.TemporaryDirectory(dir=workdir) as folder:
        for pupils in sizes:
            runs.append(_load_run(pupils, Path(folder), admin_url, pandas_limit))
    return runs


def _write_ctf(path: Path, pupils: int, seed: int = 1) -> None:
    """A CTF of ``pupils`` pupils: a small extract's pupils repeated, each copy with a fresh valid UPN (so the file
    holds no duplicate a real CTF would not)."""
    extract = build_census_extract(schools=20, pupils=min(pupils, 5000), seed=seed)
    source = (
        dataclasses.replace(pupil, upn=_fresh_upn(pupil.upn, ordinal))
        for ordinal, pupil in enumerate(itertools.islice(itertools.cycle(extract.pupils), pupils))
    )
    header = ("926", "2001", "Benchmark School", "926", "4001", extract.reference_date)
    write_ctf(path, header, source, random.Random(seed))  # noqa: S311 - synthetic data


def _fresh_upn(upn: str, ordinal: int) -> str:
    """``upn`` with its last 7 digits (estab, year, serial) replaced by ``ordinal`` and the check letter recomputed."""
    body = f"{upn[1:4]}{ordinal:07d}{upn[-2:]}" if upn[-1].isdigit() else f"{upn[1:4]}{ordinal:08d}{upn[-1]}"
    return upn_check.calc_check_digit(body) + body


def _load_run(pupils: int, folder: Path, admin_url: str, pandas_limit: int) -> CtfLoadRun:
    name = "9262001_CTF_9264001_001.xml"  # the header's source and destination schools
    (folder / str(pupils)).mkdir()
    path = folder / str(pupils) / name
    _write_ctf(path, pupils)
    timed = min(pupils, pandas_limit)
    (folder / f"pandas_{pupils}").mkdir()
    pandas_path = folder / f"pandas_{pupils}" / name
    _write_ctf(pandas_path, timed)
    database = f"pupilshare_ctfbench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(database)))
    url = with_database(admin_url, database)
    context = multiprocessing.get_context("spawn")
    try:
        with context.Pool(1) as pool:
            loader_s, findings, loader_rss = pool.apply(_time_loader, (url, path))
        copy_s = _time_raw_copy(url, path, folder / "ctf_pupils.csv")
        with context.Pool(1) as pool:
            pandas_s, pandas_rss = pool.apply(_time_pandas, (url, pandas_path))
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(database)))
    return CtfLoadRun(
        pupils=pupils,
        file_mb=path.stat().st_size / 1024**2,
        loader_s=loader_s,
        copy_s=copy_s,
        pandas_s=pandas_s * pupils / timed,
        pandas_pupils_timed=timed,
        loader_peak_rss_mb=loader_rss,
        pandas_peak_rss_mb=pandas_rss,
        findings=findings,
    )


def _time_loader(url: str, path: Path) -> tuple[float, dict, float]:
    """In a child process; errors come back as ``RuntimeError`` (an unpicklable exception would hang the pool)."""
    try:
        from pupilshare.ingest.ctf import load_ctf
        from pupilshare.ingest.raw_schema import ensure_raw_schema

        with psycopg.connect(url) as conn:
            with conn.transaction():
                ensure_raw_schema(conn)
            started = time.perf_counter()
            result = load_ctf(conn, path, max_file_bytes=16 * 1024**3)
            elapsed = time.perf_counter() - started
        return elapsed, result["findings"], _peak_rss_mb()
    except Exception as error:
        raise RuntimeError(f"the CTF loader failed on {path.name}: {error!r}") from None


def _time_raw_copy(url: str, path: Path, csv_path: Path) -> float:
    """The limit: the same pupil rows (as the loader stores them), prepared as CSV, COPYed into a plain table."""
    with csv_path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(_PUPIL_COLUMNS)
        for kind, pupil in iter_ctf(path):
            if kind == "pupil":
                writer.writerow(
                    json.dumps(pupil[name]) if name in _JSON_COLUMNS else pupil[name] for name in _PUPIL_COLUMNS
                )
    columns = sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(name)) for name in _PUPIL_COLUMNS)
    with psycopg.connect(url) as conn:
        conn.execute(sql.SQL("create table bench_copy_ctf_pupils ({})").format(columns))
        conn.commit()
        started = time.perf_counter()
        with (
            conn.transaction(),
            conn.cursor() as cursor,
            cursor.copy("copy bench_copy_ctf_pupils from stdin with (format csv, header true)") as copy,
            csv_path.open("rb") as handle,
        ):
            while chunk := handle.read(1 << 20):
                copy.write(chunk)
        return time.perf_counter() - started


def _time_pandas(url: str, path: Path) -> tuple[float, float]:
    """The usual way: ``read_xml`` of the pupil elements (nested groups come as empty columns), then ``to_sql``."""
    import pandas as pd
    import sqlalchemy

    engine = sqlalchemy.create_engine(to_sqlalchemy_url(url))
    try:
        started = time.perf_counter()
        frame = pd.read_xml(path, xpath="//CTFpupilData/Pupil", dtype=str)
        frame.to_sql("bench_pandas_ctf_pupils", engine, if_exists="replace", index=False)
        return time.perf_counter() - started, _peak_rss_mb()
    finally:
        engine.dispose()


def benchmark_ctf_streaming(pupils: int = 100_000, *, seed: int = 1) -> CtfBenchmark:
    """Write a CTF of ``pupils`` pupils, then time the byte scan plus the streaming parse and row rules over it."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "9262001_CTF_9264001_001.xml"
        _write_ctf(path, pupils, seed)
        seconds, count = _read(path)
        tracemalloc.start()
        seconds_traced, _ = _read(path)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return CtfBenchmark(count, path.stat().st_size, seconds, count / seconds, peak, seconds_traced)


def _read(path: Path) -> tuple[float, int]:
    started = time.perf_counter()
    scan_ctf_bytes(path)
    seen: set[str] = set()
    count = 0
    for kind, row in iter_ctf(path):
        if kind == "pupil":
            validate_ctf_pupil(row, seen)
            seen.clear()  # repeated pupils would all be duplicates; the set's growth is not what is measured
            count += 1
    return time.perf_counter() - started, count


if __name__ == "__main__":
    for size in (10_000, 100_000):
        print(benchmark_ctf_streaming(size))
