"""Whole-pipeline benchmark: every stage the DAGs run, at one or more sizes, with time, rows and peak memory.

For each size a synthetic county (census extract plus every other return, the project's generator) is written into
a fresh inbox, a scratch database is created on the admin server, and then each stage runs **in a fresh child
process** (so its peak memory, ``VmHWM``, is its own) calling the same function the DAG task calls:

- ``ingest``: :func:`pupilshare.ingest.ingest_inbox` (``pupilshare_ingest.load_census_returns``);
- ``dbt build <recipient>``: ``dbt build`` in process (dbtRunner, the project's profile) of what the recipient's
  ``build_models`` task group builds (``+<mart>`` and the batch register; ``--selector statistics`` for statistics),
  models and their data tests, unit tests excluded as in production;
- ``gate <recipient>``: :func:`pupilshare.publish.gate_feed` (``gate_and_stage``);
- ``statistics``: :func:`pupilshare.stats.publish.stage_statistics` (suppression, audit gate, EES files, format
  gate);
- ``deliver <recipient>``: :func:`pupilshare.publish.deliver_feed` (delivery and ledger) and, for statistics,
  :func:`pupilshare.stats.publish.publish_staged_statistics`.

No Airflow scheduling is involved: the figures are the stages' own cost, not the scheduler's or a worker's start-up.
The census ``pupilonroll.csv`` is also COPYed raw into a plain table (the ingest benchmark's baseline), so ingest
throughput is compared with the limit in the same run. Run with
``pupilshare benchmark-pipeline --pupils 100000 --pupils 1000000``.

The recipients are every recipient of the policy (``recipients.yml``), in its order: each has a publish DAG
(``dags/pupilshare_publish_<recipient>.py``), so a recipient added to the policy is a stage here without a change.
With ``keep`` the scratch database and folder of each size are left in place (for profiling a stage on the same data).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import multiprocessing
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from pupilshare.benchmarks.ingest import _peak_rss_mb, _time_raw_copy
from pupilshare.db import to_sqlalchemy_url, with_database

#: Linear scaling for 10x the pupils, with 10% slack for noise (issue 8: "ratio <= 11").
MAX_LINEAR_RATIO_PER_TENFOLD = 1.1
#: Issue 8: peak memory of every stage under 1 GB.
MAX_PEAK_RSS_MB = 1024.0
#: Issue 8: ingest at least half of raw COPY throughput.
MIN_INGEST_SHARE_OF_COPY = 0.5
_SCHOOLS_PER_PUPIL = 1 / 310  # Norfolk: about 420 schools for 130,000 pupils (as the ingest benchmark)
_MAX_SCHOOLS = 1000


class BenchmarkStageError(RuntimeError):
    """A stage of the pipeline failed during the benchmark; the figures so far are not a complete run."""


@dataclass(frozen=True)
class StageResult:
    """One stage at one size: wall seconds, rows it produced or processed, its child process's peak RSS."""

    stage: str
    seconds: float
    rows: int
    peak_rss_mb: float


@dataclass(frozen=True)
class PipelineRun:
    """One size's figures. ``census_load_s`` is the census extract's own load time within ``ingest``."""

    pupils: int
    schools: int
    generate_s: float
    stages: tuple[StageResult, ...]
    census_load_s: float
    raw_copy_s: float
    raw_mb: float = 0.0
    database_mb: float = 0.0
    #: With ``keep``: the scratch database's URL and the folder (``data/`` and ``dbt/``) left after the run.
    kept_database_url: str | None = None
    kept_folder: Path | None = None

    @property
    def ingest_share_of_copy(self) -> float:
        """Census load throughput over raw COPY throughput of ``pupilonroll.csv`` (same pupils, so a time ratio)."""
        return self.raw_copy_s / self.census_load_s

    def stage(self, name: str) -> StageResult:
        return next(result for result in self.stages if result.stage == name)


@dataclass(frozen=True)
class StageScaling:
    """One stage between a small and a large run; ``limit`` is the largest ratio that is still linear."""

    stage: str
    ratio: float
    limit: float

    @property
    def superlinear(self) -> bool:
        return self.ratio > self.limit


def linear_limit(small_pupils: int, large_pupils: int) -> float:
    """The largest time ratio still counted as linear: the size ratio plus 10% (11 for 10x the pupils)."""
    if small_pupils <= 0 or large_pupils <= small_pupils:
        raise ValueError(f"sizes must grow: {small_pupils} then {large_pupils}")
    return large_pupils / small_pupils * MAX_LINEAR_RATIO_PER_TENFOLD


def scaling(small: PipelineRun, large: PipelineRun) -> list[StageScaling]:
    """Per stage, large seconds over small seconds, with the linear limit for the two sizes."""
    limit = linear_limit(small.pupils, large.pupils)
    return [
        StageScaling(result.stage, large.stage(result.stage).seconds / max(result.seconds, 1e-9), limit)
        for result in small.stages
    ]


def memory_flags(run: PipelineRun) -> list[str]:
    """Names of the stages whose peak RSS is over :data:`MAX_PEAK_RSS_MB`."""
    return [result.stage for result in run.stages if result.peak_rss_mb > MAX_PEAK_RSS_MB]


def runs_to_markdown(runs: list[PipelineRun]) -> str:
    """The figures as one Markdown table (a ratio column per consecutive pair of sizes), then the ingest target."""
    pairs = list(zip(runs, runs[1:], strict=False))
    header = ["stage"]
    for run in runs:
        header += [f"{run.pupils:,}: s", "rows", "peak RSS MB"]
    header += [f"ratio {large.pupils:,} / {small.pupils:,}" for small, large in pairs]
    lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
    ratios = [{item.stage: item for item in scaling(small, large)} for small, large in pairs]
    for index, first in enumerate(runs[0].stages if runs else ()):
        cells = [first.stage]
        for run in runs:
            result = run.stages[index]
            flag = " **over 1 GB**" if result.peak_rss_mb > MAX_PEAK_RSS_MB else ""
            cells += [f"{result.seconds:.1f}", f"{result.rows:,}", f"{result.peak_rss_mb:.0f}{flag}"]
        for by_stage in ratios:
            item = by_stage[first.stage]
            cells.append(f"{item.ratio:.1f}" + (f" **over {item.limit:g}**" if item.superlinear else ""))
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "| pupils | generate s | census load s | raw COPY pupilonroll s | census load / raw COPY | raw schema MB "
        "| database MB |",
        "|---:" * 7 + "|",
    ]
    for run in runs:
        share = run.ingest_share_of_copy
        flag = "" if share >= MIN_INGEST_SHARE_OF_COPY else f" **under {MIN_INGEST_SHARE_OF_COPY:.0%}**"
        lines.append(
            f"| {run.pupils:,} | {run.generate_s:.1f} | {run.census_load_s:.1f} | {run.raw_copy_s:.1f} "
            f"| {share:.0%}{flag} | {run.raw_mb:,.0f} | {run.database_mb:,.0f} |"
        )
    return "\n".join(lines)


def benchmark_pipeline(
    sizes: list[int],
    *,
    admin_url: str,
    feed_date: dt.date,
    workdir: Path | None = None,
    on_stage: Callable[[int, StageResult], None] | None = None,
    keep: bool = False,
) -> list[PipelineRun]:
    """Run the whole pipeline once per size (pupils); a scratch database and data folder per size, removed after
    unless ``keep`` (then each run names them, ``kept_database_url`` and ``kept_folder``, and so does a failure's note).

    ``on_stage`` is called after each stage (for progress output: a long run shows its figures as it goes).
    """
    if not sizes or any(size < 1 for size in sizes):
        raise ValueError(f"sizes must be positive pupil counts, not {sizes}")
    runs = []
    for pupils in sizes:
        if keep:
            folder = Path(tempfile.mkdtemp(dir=workdir, prefix="pupilshare-pipebench-"))
            runs.append(_run_size(pupils, folder, admin_url, feed_date, on_stage, keep=True))
            continue
        with tempfile.TemporaryDirectory(dir=workdir, prefix="pupilshare-pipebench-") as folder:
            runs.append(_run_size(pupils, Path(folder), admin_url, feed_date, on_stage))
    return runs


def benchmark_recipients() -> tuple[str, ...]:
    """The recipients whose build, gate and delivery are stages: every recipient of the policy, in its order."""
    from pupilshare.policy import load_policy

    return tuple(load_policy().recipients)


def schools_for(pupils: int) -> int:
    """Schools in the synthetic county of ``pupils`` pupils (the ingest benchmark's rule; at least 20)."""
    return min(_MAX_SCHOOLS, max(20, round(pupils * _SCHOOLS_PER_PUPIL)))


def _run_size(
    pupils: int, folder: Path, admin_url: str, feed_date: dt.date, on_stage: Callable | None, *, keep: bool = False
) -> PipelineRun:
    data_dir = folder / "data"
    schools = schools_for(pupils)
    started = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        extract = Path(pool.apply(_generate, (data_dir, schools, pupils)))
    generate_s = time.perf_counter() - started
    database = f"pupilshare_pipebench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(database)))
    url = with_database(admin_url, database)
    run_id = f"benchmark__{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}"
    try:
        raw_copy_s = _time_raw_copy(url, [extract / "pupilonroll.csv"])
        stages, census_load_s = [], 0.0
        for name, function, args in _stages(url, data_dir, feed_date, run_id, folder):
            with context.Pool(1) as pool:  # a fresh process per stage: its VmHWM is the stage's own peak
                seconds, rows, rss_mb, extra = pool.apply(_run_stage, (name, function, args))
            stages.append(StageResult(name, seconds, rows, rss_mb))
            census_load_s = extra.get("census_load_s", census_load_s)
            if on_stage is not None:
                on_stage(pupils, stages[-1])
        raw_mb, database_mb = _sizes_mb(url)
    except Exception as error:
        if keep:
            error.add_note(f"kept: database {database}, folder {folder}")
        raise
    finally:
        if not keep:
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(database)))
    run = PipelineRun(pupils, schools, generate_s, tuple(stages), census_load_s, raw_copy_s, raw_mb, database_mb)
    return dataclasses.replace(run, kept_database_url=url, kept_folder=folder) if keep else run


def _sizes_mb(url: str) -> tuple[float, float]:
    """The ``raw`` schema's tables (with indexes and TOAST) and the whole database after the run, in MB (the raw
    COPY baseline's table is in ``public``, so counted in the database only)."""
    with psycopg.connect(url) as conn:
        raw, database = conn.execute(
            """select coalesce(sum(pg_total_relation_size(c.oid)), 0), pg_database_size(current_database())
               from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
               where n.nspname = 'raw' and c.relkind in ('r', 'p', 'm')"""
        ).fetchone()
    return raw / 1024**2, database / 1024**2


def _stages(url: str, data_dir: Path, feed_date: dt.date, run_id: str, folder: Path) -> list[tuple]:
    """The stages in DAG order: ingest, then per recipient build and gate, statistics, then every delivery."""
    common = (url, str(data_dir))
    recipients = benchmark_recipients()
    stages: list[tuple] = [("ingest", "_ingest", common)]
    for recipient_id in (*recipients, "statistics"):
        args = (*common, recipient_id, feed_date.isoformat(), str(folder / "dbt"))
        stages.append((f"dbt build {recipient_id}", "_dbt_build", args))
    for recipient_id in recipients:
        stages.append((f"gate {recipient_id}", "_gate", (*common, recipient_id, feed_date.isoformat(), run_id)))
    stages.append(("statistics (suppress, audit, EES)", "_statistics", (*common, run_id)))
    for recipient_id in (*recipients, "statistics"):
        stages.append((f"deliver {recipient_id}", "_deliver", (*common, recipient_id, run_id)))
    return stages


# --- in child processes ---------------------------------------------------------------------------------------------


def _generate(data_dir: Path, schools: int, pupils: int) -> str:
    """The census extract into ``inbox/census/`` and every other return into the inbox; the extract's folder."""
    from pupilshare.generate.census import build_census_extract, write_census_extract
    from pupilshare.generate.returns import generate_all_returns

    inbox = data_dir / "inbox"
    extract_dir = inbox / "census" / f"benchmark_{pupils}"
    extract = build_census_extract(schools=schools, pupils=pupils, seed=1)
    write_census_extract(extract, extract_dir)
    generate_all_returns(extract, inbox, seed=1)
    return str(extract_dir)


def _run_stage(name: str, function: str, args: tuple) -> tuple[float, int, float, dict]:
    """Run one stage here (a fresh child); errors come back as ``BenchmarkStageError`` (an exception that cannot be
    unpickled would hang ``Pool.apply``)."""
    try:
        started = time.perf_counter()
        rows, extra = _STAGE_FUNCTIONS[function](*args)
        return time.perf_counter() - started, rows, _peak_rss_mb(), extra
    except Exception as error:
        raise BenchmarkStageError(f"stage {name!r} failed: {error!r}") from None


def _settings(url: str, data_dir: str):
    """The settings a deployment with this database and data folder has; exports what dbt and GX read."""
    from pupilshare.db import DatabaseEndpoints
    from pupilshare.runtime import runtime_environment
    from pupilshare.settings import Settings

    # the stages never touch Airflow's metadata database; naming one keeps database_server from creating
    # ``<scratch>_airflow`` beside the scratch database (it would outlive the run)
    settings = Settings(database_url=url, airflow_database_url=to_sqlalchemy_url(url), data_dir=Path(data_dir))
    env = runtime_environment(settings, DatabaseEndpoints(url, "", embedded=False))
    os.environ.update({key: value for key, value in env.items() if not key.startswith("AIRFLOW")})
    return settings


def _ingest(url: str, data_dir: str) -> tuple[int, dict]:
    from pupilshare.ingest import ingest_inbox

    summary = ingest_inbox(_settings(url, data_dir))
    if summary.quarantined:
        raise BenchmarkStageError(f"returns quarantined: {[item['source'] for item in summary.quarantined]}")
    census = [batch for batch in summary.loaded if batch["return_type"] == "census"]
    census_s = sum(sum(batch["seconds"].values()) for batch in census)
    return summary.rows_loaded, {"census_load_s": census_s}


def _dbt_build(url: str, data_dir: str, recipient_id: str, feed_date: str, dbt_dir: str) -> tuple[int, dict]:
    """What the recipient's ``build_models`` task group builds, as one ``dbt build``; rows are rows built."""
    from dbt.cli.main import dbtRunner

    from pupilshare.airflow.cosmos_config import DBT_PROJECT_DIR
    from pupilshare.policy import load_policy

    settings = _settings(url, data_dir)
    if recipient_id == "statistics":
        selection = ["--selector", "statistics"]
    else:
        # cautious, as every DAG builds (pupilshare.airflow.cosmos_config): a test that also reads another
        # recipient's model (nccis: int_nccis_activities_unioned -> int_pupils_on_roll_latest) is not this build's
        mart = load_policy().recipient(recipient_id).mart
        selection = ["--select", f"+{mart}", "stg_pipeline__load_batches", "--indirect-selection", "cautious"]
    result = dbtRunner().invoke(
        [
            "build", *selection, "--exclude", "resource_type:unit_test", "--quiet",
            "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
            "--target-path", f"{dbt_dir}/target", "--log-path", f"{dbt_dir}/logs",
            "--vars", json.dumps({"feed_date": feed_date, "opt_out_persistence": settings.opt_out_persistence}),
        ]
    )  # fmt: skip
    if not result.success:
        failed = [item.node.name for item in (result.result or []) if str(item.status) in {"error", "fail"}]
        raise BenchmarkStageError(f"dbt build for {recipient_id} failed: {failed or result.exception}")
    rows = sum(
        int((item.adapter_response or {}).get("rows_affected") or 0)
        for item in result.result
        if item.node.resource_type == "model"
    )
    return rows, {}


def _gate(url: str, data_dir: str, recipient_id: str, feed_date: str, run_id: str) -> tuple[int, dict]:
    from pupilshare.publish import gate_feed, staged_files

    staging = gate_feed(
        recipient_id, feed_date=dt.date.fromisoformat(feed_date), run_id=run_id, settings=_settings(url, data_dir)
    )
    stage = json.loads((Path(staging) / "stage.json").read_text(encoding="utf-8"))
    return sum(item["row_count"] for item in staged_files(stage)), {}


def _statistics(url: str, data_dir: str, run_id: str) -> tuple[int, dict]:
    from pupilshare.stats.publish import MANIFEST_NAME, stage_statistics

    stagings = stage_statistics(run_id=run_id, settings=_settings(url, data_dir))
    manifests = [json.loads((Path(staging) / MANIFEST_NAME).read_text(encoding="utf-8")) for staging in stagings]
    return sum(int(entry["rows"]) for manifest in manifests for entry in manifest["tables"]), {}


def _deliver(url: str, data_dir: str, recipient_id: str, run_id: str) -> tuple[int, dict]:
    """Deliver what the gate (or statistics) stage staged under this run id; rows are the rows delivered."""
    from pupilshare.files import slug
    from pupilshare.publish import deliver_feed, staged_files
    from pupilshare.stats.publish import MANIFEST_NAME, publish_staged_statistics

    settings = _settings(url, data_dir)
    if recipient_id == "statistics":
        stagings = sorted(settings.staging_dir.glob(f"statistics/*/{slug(run_id)}"))  # one folder per time period
        manifests = [json.loads((staging / MANIFEST_NAME).read_text(encoding="utf-8")) for staging in stagings]
        results = [publish_staged_statistics(staging, settings=settings) for staging in stagings]
        result = {"status": "published" if results and {r["status"] for r in results} == {"published"} else "none"}
        rows = sum(int(entry["rows"]) for manifest in manifests for entry in manifest["tables"])
    else:
        (staging,) = settings.staging_dir.glob(f"{recipient_id}/*/{slug(run_id)}")
        stage = json.loads((staging / "stage.json").read_text(encoding="utf-8"))
        result = deliver_feed(staging, settings=settings)
        rows = sum(item["row_count"] for item in staged_files(stage))
    if result["status"] != "delivered" and result["status"] != "published":
        raise BenchmarkStageError(f"{recipient_id}: nothing delivered ({result['status']})")
    return rows, {}


#: The stage functions by name (a child process is given the name: functions are looked up, never unpickled).
_STAGE_FUNCTIONS: dict[str, Callable[..., tuple[int, dict]]] = {
    "_ingest": _ingest,
    "_dbt_build": _dbt_build,
    "_gate": _gate,
    "_statistics": _statistics,
    "_deliver": _deliver,
}
