"""The ``pupilshare`` command line."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Annotated

import psycopg
import typer
from rich.console import Console
from rich.table import Table

from pupilshare.settings import load_settings

app = typer.Typer(help="pupilshare: a Local Authority's pupil-data platform.", no_args_is_help=True)
console = Console()


@app.command()
def generate(
    out: Annotated[Path, typer.Option(help="Folder to write the census extract CSVs into.")],
    schools: Annotated[int | None, typer.Option(min=1, help="Number of schools (default: the preset's).")] = None,
    pupils: Annotated[int | None, typer.Option(min=1, help="Number of pupils (default: the preset's).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same files.")] = 1,
    la_code: Annotated[str | None, typer.Option(help="LA code (default PUPILSHARE_LA_CODE).")] = None,
    preset: Annotated[str, typer.Option(help="small (20 schools, 3,000 pupils) or county (420, 130,000).")] = "small",
    term: Annotated[str, typer.Option(help="Census term: Autumn, Spring or Summer.")] = "Autumn",
    returns_inbox: Annotated[
        Path | None,
        typer.Option(
            help="Also write every other return about the same pupils (CTF, workforce, NCMP, EYFS, "
            "opt-outs, post-16, activity) into this inbox folder."
        ),
    ] = None,
) -> None:
    """Write a synthetic county's School Census LA extract (one CSV per census table), and optionally every
    other return about the same children."""
    from pupilshare.generate.census import generate_census_extract

    settings = load_settings()
    if term not in ("Autumn", "Spring", "Summer"):
        raise typer.BadParameter(f"{term!r} is not Autumn, Spring or Summer", param_hint="--term")
    options = {"seed": seed, "la_code": la_code or settings.la_code, "term": term}
    if returns_inbox is None:
        counts = generate_census_extract(out, schools=schools, pupils=pupils, preset=preset, **options)
    else:
        counts = _generate_with_returns(out, returns_inbox, schools, pupils, preset, options)
    table = Table(title=f"Synthetic census extract in {out}")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, rows in counts.items():
        table.add_row(name, f"{rows:,}")
    console.print(table)


def _generate_with_returns(out, inbox, schools, pupils, preset, options) -> dict[str, int]:
    from pupilshare.generate.census import PRESETS, build_census_extract, write_census_extract
    from pupilshare.generate.returns import generate_all_returns

    if preset not in PRESETS:
        raise typer.BadParameter(f"{preset!r} is not one of {', '.join(PRESETS)}", param_hint="--preset")
    default_schools, default_pupils = PRESETS[preset]
    extract = build_census_extract(schools=schools or default_schools, pupils=pupils or default_pupils, **options)
    counts = write_census_extract(extract, out)
    for return_type, written in generate_all_returns(extract, inbox, seed=options["seed"]).items():
        console.print(f"{return_type}: {written}")
    return counts


@app.command("benchmark-ingest")
def benchmark_ingest(
    pupils: Annotated[list[int], typer.Option(help="Pupils per run; repeat for several sizes.")] = [100_000],  # noqa: B006
    admin_url: Annotated[str, typer.Option(help="Server to use (a scratch database is made and dropped).")] = (
        "postgresql://postgres@127.0.0.1:5432/postgres"
    ),
    pandas_limit: Annotated[int, typer.Option(help="Time pandas on at most this many rows, then scale.")] = 100_000,
    extract_cache: Annotated[
        Path | None, typer.Option(help="Keep generated extracts here and reuse them (generating 1M pupils is slow).")
    ] = None,
) -> None:
    """Time census loading (incl. validation) against raw COPY and pandas to_sql; print pupils per second."""
    from pupilshare.benchmarks.ingest import benchmark_ingest as run_benchmark

    result = run_benchmark(pupils, admin_url=admin_url, pandas_limit=pandas_limit, extract_cache=extract_cache)
    console.print(result.to_markdown(), soft_wrap=True)


@app.command("benchmark-ctf")
def benchmark_ctf(
    pupils: Annotated[list[int], typer.Option(help="Pupils in the CTF; repeat for several sizes.")] = [100_000],  # noqa: B006
    admin_url: Annotated[str, typer.Option(help="Server to use (a scratch database is made and dropped).")] = (
        "postgresql://postgres@127.0.0.1:5432/postgres"
    ),
    pandas_limit: Annotated[int, typer.Option(help="Time pandas on at most this many pupils, then scale.")] = 100_000,
) -> None:
    """Time CTF loading (incl. validation) against raw COPY and pandas read_xml + to_sql; print pupils per second."""
    from pupilshare.benchmarks.ctf import benchmark_ctf_load, ctf_runs_to_markdown

    runs = benchmark_ctf_load(pupils, admin_url=admin_url, pandas_limit=pandas_limit)
    console.print(ctf_runs_to_markdown(runs), soft_wrap=True)


@app.command("benchmark-sar")
def benchmark_sar(
    preset: Annotated[str, typer.Option(help="Generator preset to load (small or county).")] = "county",
    samples: Annotated[int, typer.Option(min=1, help="Pupils whose report is timed.")] = 50,
    feeds: Annotated[int, typer.Option(min=0, help="YSS deliveries of every pupil put in the ledger.")] = 12,
    commands: Annotated[int, typer.Option(min=1, help="Whole `pupilshare sar` processes timed.")] = 5,
    admin_url: Annotated[str, typer.Option(help="Server to use (a scratch database is made and dropped).")] = (
        "postgresql://postgres@127.0.0.1:5432/postgres"
    ),
) -> None:
    """Time the subject access report (`pupilshare sar`) for sampled pupils of a loaded county: median and max."""
    from pupilshare.benchmarks.sar import benchmark_sar as run_benchmark

    result = run_benchmark(admin_url=admin_url, preset=preset, samples=samples, feeds=feeds, commands=commands)
    console.print(result.to_markdown(), soft_wrap=True)


@app.command("benchmark-pipeline")
def benchmark_pipeline(
    pupils: Annotated[list[int], typer.Option(min=1, help="Pupils per run; repeat for several sizes.")] = [100_000],  # noqa: B006
    admin_url: Annotated[str, typer.Option(help="Server to use (a scratch database per size, dropped after).")] = (
        "postgresql://postgres@127.0.0.1:5432/postgres"
    ),
    feed_date: Annotated[str | None, typer.Option(help="Feed date YYYY-MM-DD (default today).")] = None,
    workdir: Annotated[
        Path | None, typer.Option(help="Folder for the generated returns and feeds (default the system temp).")
    ] = None,
    keep: Annotated[
        bool, typer.Option(help="Keep each size's scratch database and folder after the run and print where they are.")
    ] = False,
) -> None:
    """Run every stage of the pipeline (ingest, dbt build, gates, statistics, delivery; no Airflow scheduling) per
    size; print each stage's seconds, rows and peak memory, and the large / small ratio per stage."""
    from pupilshare.benchmarks.pipeline import benchmark_pipeline as run_benchmark
    from pupilshare.benchmarks.pipeline import memory_flags, runs_to_markdown, scaling

    sizes = _growing_sizes(pupils)
    day = _parse_date(feed_date) or dt.date.today()

    def progress(size: int, result) -> None:
        console.print(f"{size:,} pupils: {result.stage}: {result.seconds:.1f} s, {result.rows:,} rows, "
                      f"{result.peak_rss_mb:.0f} MB")  # fmt: skip

    runs = run_benchmark(sizes, admin_url=admin_url, feed_date=day, workdir=workdir, on_stage=progress, keep=keep)
    console.print(runs_to_markdown(runs), soft_wrap=True)
    for kept in runs:
        if kept.kept_folder is not None:  # the settings of the run, to profile a stage on the same data
            console.print(f"{kept.pupils:,} pupils kept: PUPILSHARE_DATABASE_URL={kept.kept_database_url} "
                          f"PUPILSHARE_DATA_DIR={kept.kept_folder / 'data'} (dbt target and logs: "
                          f"{kept.kept_folder / 'dbt'}); drop the database and remove the folder when done",
                          soft_wrap=True)  # fmt: skip
    for run_figures in runs:
        for stage in memory_flags(run_figures):
            console.print(f"[red]{run_figures.pupils:,} pupils: {stage} peaked over 1 GB[/]")
    for small, large in zip(runs, runs[1:], strict=False):
        for item in scaling(small, large):
            if item.superlinear:
                console.print(f"[red]{item.stage}: {item.ratio:.1f}x for {large.pupils / small.pupils:g}x pupils "
                              f"(over {item.limit:g}: worse than linear)[/]")  # fmt: skip


def _growing_sizes(pupils: list[int]) -> list[int]:
    """The sizes in the order given; each must be larger than the one before (ratios compare consecutive sizes)."""
    if any(large <= small for small, large in zip(pupils, pupils[1:], strict=False)):
        raise typer.BadParameter(f"sizes must grow: {pupils}", param_hint="--pupils")
    return list(pupils)


@app.command()
def run(
    feed_date: Annotated[
        str | None, typer.Option(help="Feed date YYYY-MM-DD (default PUPILSHARE_FEED_DATE, else today).")
    ] = None,
) -> None:
    """Run the DAGs end to end (real Airflow runs, in process) over what is in the inbox."""
    from pupilshare.db import database_server
    from pupilshare.runtime import export_runtime_environment
    from pupilshare.summary import run_summary

    settings = load_settings(feed_date=_parse_date(feed_date))
    settings.ensure_folders()
    effective = settings.effective_feed_date()
    with database_server(settings) as endpoints:
        export_runtime_environment(settings, endpoints)
        _bootstrap_roles(settings, endpoints.data_url)
        from pupilshare.airflow.runner import run_pipeline

        outcomes = run_pipeline(settings, effective)
        # again after the runs: the schemas and tables they made first are handed to the owner role and granted
        # (`pupilshare sar` reads as the DPO through the owner's functions)
        _bootstrap_roles(settings, endpoints.data_url)
        with psycopg.connect(endpoints.data_url) as conn:
            summary = run_summary(conn, [outcome.run_id for outcome in outcomes])
    _print_summary(settings, effective, outcomes, summary)
    if any(outcome.state != "success" for outcome in outcomes):
        raise typer.Exit(code=1)


@app.command("deploy-init")
def deploy_init() -> None:
    """One-off set-up before the Airflow services start (docker-compose's airflow-init, then `airflow db migrate`):
    the data folder layout, the data database on PUPILSHARE_DATABASE_URL, and the Airflow admin password from
    PUPILSHARE_AIRFLOW_ADMIN_PASSWORD written to the simple auth manager's password file."""
    import os

    from pupilshare.db import database_server
    from pupilshare.deploy import write_admin_password

    settings = load_settings()
    if not settings.database_url:
        raise typer.BadParameter("set PUPILSHARE_DATABASE_URL: the services share one external PostgreSQL")
    passwords_file = os.environ.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE")
    if not passwords_file:
        raise typer.BadParameter("set AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE (see docker-compose.yml)")
    settings.ensure_folders()
    with database_server(settings) as endpoints:
        console.print(f"data database ready: {endpoints.dbt_env()['PUPILSHARE_DB_NAME']}")
    write_admin_password(Path(passwords_file), os.environ.get("PUPILSHARE_AIRFLOW_ADMIN_PASSWORD", ""))
    console.print(f"data folder ready: {settings.data_dir}; admin password written to {passwords_file}")


@app.command()
def ingest() -> None:
    """Load what is waiting in the inbox (every return type) into raw, without running the DAGs."""
    from pupilshare.ingest import ingest_inbox

    summary = ingest_inbox(load_settings())
    console.print(
        f"loaded {len(summary.loaded)} file sets ({summary.rows_loaded:,} rows), "
        f"{len(summary.duplicates)} duplicates, {len(summary.quarantined)} quarantined"
    )


@app.command()
def roles(
    admin_url: Annotated[
        str | None,
        typer.Option(help="A role that may create roles, on the data database (default PUPILSHARE_DATABASE_URL)."),
    ] = None,
) -> None:
    """Create or update the project's PostgreSQL roles and grants (idempotent): owner, one per recipient, analyst,
    DPO; nothing for PUBLIC."""
    from pupilshare.access import default_role_prefix, ensure_roles
    from pupilshare.db import database_server

    settings = load_settings()
    with database_server(settings) as endpoints, psycopg.connect(admin_url or endpoints.data_url) as conn:
        prefix = settings.role_prefix or default_role_prefix(conn.info.dbname)
        made = ensure_roles(conn, prefix=prefix)
    table = Table(title="pupilshare roles")
    table.add_column("role")
    table.add_column("may")
    table.add_row(made.owner, "own and build every project schema (the pipeline connects as this role)")
    for recipient_id, role in made.recipients.items():
        table.add_row(role, f"read its feed schema only ({recipient_id})")
    table.add_row(made.analyst, "read published statistics only")
    table.add_row(made.dpo, "read the ledger; run ledger.subject_access(upn)")
    console.print(table)


@app.command()
def retention(
    as_of: Annotated[str | None, typer.Option(help="Apply the periods as of YYYY-MM-DD (default today).")] = None,
) -> None:
    """Apply the retention policy now (what the pupilshare_retention DAG does daily); print what was purged."""
    from pupilshare.retention import apply_retention

    day = _parse_date(as_of, "--as-of") or dt.date.today()
    console.print(apply_retention(day, run_id=f"cli__{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}"))


@app.command()
def sar(
    upn: Annotated[str, typer.Argument(help="The pupil's UPN (13 characters, check letter first).")],
    output_format: Annotated[str, typer.Option("--format", help="json or html.")] = "json",
    database_url: Annotated[
        str | None,
        typer.Option(help="Connect as this user (e.g. the DPO's own login; default PUPILSHARE_DATABASE_URL)."),
    ] = None,
) -> None:
    """Subject access report: what is held about the pupil by return, their effective opt-outs and why, and every
    disclosure (from the ledger). Runs as the DPO role; the look-up itself is recorded."""
    import contextlib
    import sys

    from pupilshare.access import default_role_prefix, project_roles
    from pupilshare.db import database_server
    from pupilshare.sar import (
        InvalidUpnError,
        SubjectAccessConfigError,
        act_as_dpo,
        compact_upn,
        report_to_html,
        report_to_json,
        subject_access_report,
    )

    if output_format not in ("json", "html"):
        raise typer.BadParameter(f"{output_format!r} is not json or html", param_hint="--format")
    try:
        compact_upn(upn)
    except InvalidUpnError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=2) from None
    settings = load_settings()
    with contextlib.ExitStack() as stack:
        # --database-url names the server: never start the embedded one for it
        url = database_url or stack.enter_context(database_server(settings)).data_url
        conn = stack.enter_context(psycopg.connect(url))
        prefix = settings.role_prefix or default_role_prefix(conn.info.dbname)
        try:
            act_as_dpo(conn, project_roles(prefix).dpo)
            report = subject_access_report(conn, upn)
        except SubjectAccessConfigError as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(code=1) from None
    for note in report.notes:
        typer.echo(f"note: {note}", err=True)
    sys.stdout.write(report_to_html(report) if output_format == "html" else report_to_json(report) + "\n")


@app.command("confirm-delivery")
def confirm_delivery_command(
    delivery_id: Annotated[str, typer.Argument(help="The delivery_id from the feed's manifest.")],
    confirmed_by: Annotated[str, typer.Option("--by", help="Who at the recipient confirmed receipt.")],
    note: Annotated[str | None, typer.Option(help="A note for the record.")] = None,
) -> None:
    """Record that a recipient confirmed receipt of a delivery; its outbox copy is cleared after the grace period."""
    from pupilshare.retention import confirm_delivery

    _record_confirmation(confirm_delivery, delivery_id, confirmed_by, note)
    console.print(f"confirmation of {delivery_id} recorded")


@app.command("confirm-retraction")
def confirm_retraction_command(
    retraction_id: Annotated[str, typer.Argument(help="The retraction_id from the notice's manifest and letter.")],
    confirmed_by: Annotated[str, typer.Option("--by", help="Who at the recipient confirmed the notice.")],
    note: Annotated[str | None, typer.Option(help="A note for the record.")] = None,
) -> None:
    """Record that a recipient confirmed a retraction notice; its outbox copy is cleared after the grace period."""
    from pupilshare.retention import confirm_retraction

    _record_confirmation(confirm_retraction, retraction_id, confirmed_by, note)
    console.print(f"confirmation of retraction notice {retraction_id} recorded")


def _record_confirmation(confirm, subject_id: str, confirmed_by: str, note: str | None) -> None:
    """Call ``confirm`` (pupilshare.retention) on the deployment's data database."""
    from pupilshare.db import database_server

    settings = load_settings()
    with database_server(settings) as endpoints, psycopg.connect(endpoints.data_url) as conn:
        confirm(conn, subject_id, confirmed_by=confirmed_by, note=note)


@app.command()
def replay(
    delivery_id: Annotated[
        str | None, typer.Argument(help="The delivery_id (ledger.deliveries, the manifest).")
    ] = None,
    recipient: Annotated[str | None, typer.Option(help="Or: the recipient, with --feed-date.")] = None,
    feed_date: Annotated[str | None, typer.Option(help="Or: the feed date YYYY-MM-DD, with --recipient.")] = None,
    route: Annotated[str | None, typer.Option(help="The provider or centre of a routed recipient's file.")] = None,
) -> None:
    """Regenerate a past delivery from the data as it stood when it was delivered (in a scratch database) and compare
    its SHA-256 with the ledger's. Exit 0 on a match, 1 on a mismatch (with why), 2 when it cannot be replayed."""
    import json
    import sys

    from pupilshare.db import database_server
    from pupilshare.replay import ReplayError, find_delivery, replay_delivery

    settings = load_settings()
    try:
        if delivery_id is None:
            day = _parse_date(feed_date)
            if recipient is None or day is None:
                raise typer.BadParameter("give a DELIVERY_ID, or --recipient and --feed-date")
            with database_server(settings) as endpoints, psycopg.connect(endpoints.data_url) as conn:
                delivery_id = find_delivery(conn, recipient_id=recipient, feed_date=day, route=route)
        result = replay_delivery(delivery_id, settings=settings)
    except ReplayError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=2) from None
    sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
    verdict = "match" if result.match else "MISMATCH"
    typer.echo(f"{verdict}: delivery {delivery_id} ({result.recipient_id}, {result.feed_date})", err=True)
    for reason in result.reasons:
        typer.echo(f"  why: {reason}", err=True)
    if not result.match:
        raise typer.Exit(code=1)


def _parse_date(value: str | None, hint: str = "--feed-date") -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date like 2026-11-29", param_hint=hint) from None


def _bootstrap_roles(settings, data_url: str) -> None:
    """Create the project's roles when the pipeline's connection may (the embedded server); else say who must."""
    from pupilshare.access import default_role_prefix, ensure_roles

    with psycopg.connect(data_url) as conn:
        may = conn.execute("select rolsuper or rolcreaterole from pg_roles where rolname = current_user").fetchone()
        if may and may[0]:
            ensure_roles(conn, prefix=settings.role_prefix or default_role_prefix(conn.info.dbname))
        else:
            logging.getLogger(__name__).info("roles not created: run `pupilshare roles --admin-url ...` as a DBA")


def _print_summary(settings, feed_date, outcomes, summary) -> None:
    console.rule(f"pupilshare run, feed date {feed_date}")
    runs = Table(title="Airflow runs")
    for column in ("DAG", "run id", "state", "failed tasks"):
        runs.add_column(column)
    for outcome in outcomes:
        colour = "green" if outcome.state == "success" else "red"
        runs.add_row(outcome.dag_id, outcome.run_id, f"[{colour}]{outcome.state}[/]", ", ".join(outcome.failed_tasks))
    console.print(runs)
    for loaded in summary["returns"]:
        console.print(
            f"loaded {loaded['return_type']}: {loaded['file_sets']:,} file sets, {loaded['rows_loaded']:,} rows, "
            f"{loaded['findings']:,} validation findings"
        )
    for gate in summary["gates"]:
        verdict = "[green]passed[/]" if gate["success"] else f"[red]FAILED[/] {gate['failures']}"
        console.print(f"gate {gate['suite_name']} for {gate['feed_date']}: {verdict} ({gate['evaluated_rows']:,} rows)")
    if summary["gates"] and not summary["deliveries"] and all(gate["success"] for gate in summary["gates"]):
        console.print("no new delivery: these feeds were already delivered (a rerun delivers nothing twice)")
    for delivery in summary["deliveries"]:
        console.print(
            f"delivered {delivery['recipient_id']} {delivery['feed_date']}: {delivery['row_count']:,} rows, "
            f"{delivery['ledger_rows']:,} ledger rows -> {delivery['target']}/{delivery['file_name']}"
        )
    _print_statistics(summary.get("statistics", []))
    console.print("\nWhere to look:")
    console.print(f"  feeds:     {settings.outbox_dir}")
    console.print(f"  Data Docs: {settings.data_docs_dir / 'index.html'}")
    console.print("  ledger:    tables ledger.deliveries, ledger.disclosures and ledger.statistics_publications")
    console.print(f"  quarantine: {settings.quarantine_dir}   Airflow logs: {settings.airflow_home / 'logs'}")


def _print_statistics(publications: list[dict]) -> None:
    """One line per statistics table of the run: time period, files and cells hidden, or why nothing was published."""
    for row in publications:
        if row["status"] == "published":
            files = ", ".join(name for name in row["files"] if name != "manifest.json")
            console.print(
                f"statistics {row['time_period']} {row['table_name']}: {row['row_count']:,} rows, "
                f"{row['cells_primary']} primary + {row['cells_secondary']} secondary cells hidden "
                f"(threshold {row['threshold']}) -> {row['target']}/{{{files}}}"
            )
        else:
            console.print(f"statistics {row['table_name']}: [red]NOT PUBLISHED[/] {row['failure']}")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    app()


if __name__ == "__main__":
    main()
