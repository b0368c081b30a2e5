"""Mutation tests of the publish gates: for every recipient in the policy, each kind of leak is planted into the
really built mart, and the real gate must catch it, with nothing delivered, nothing recorded as disclosed and the
failure alerted.

One generated county (every return, through the real ingest) is built once for the module with ``dbt build`` of
every recipient's mart; each mart is then kept as a pristine copy (``mutation_pristine.<recipient>``, constraints and
all) and put back before every test, so each mutation starts from the mart exactly as dbt built it.

The parameters come from ``plugins/pupilshare/policy/recipients.yml``: every recipient gets the leak kinds that apply
to it (see :func:`leak_kinds`), and an unplanted control that must pass (the plants are real leaks, not a gate that
fails on anything). A recipient or leak kind without a planter in :data:`LEAKS` FAILS here, so a recipient added to
the policy cannot go untested: add its planters (and the check of its suite that must catch each) to :data:`LEAKS`.

Leak kinds:

- ``extra_column``: a column outside the policy's allow-list (every recipient);
- ``outside_cohort``: a row for a pupil on roll who is outside the recipient's cohort (every recipient);
- ``restricted_extra_field``: a restricted pupil's row carries a further field (opt-out effect ``restrict``);
- ``opted_out``: a row for a pupil who opted out (opt-out effect ``exclude``);
- ``wrong_route``: a pupil's row moved to a provider or centre whose set they do not belong in (routed recipients).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
import logging
import types
import uuid
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import psycopg
import pytest
from dbt.cli.main import dbtRunner
from psycopg import sql

from pupilshare import PROJECT_ROOT
from pupilshare.dates import age_in_years
from pupilshare.db import DatabaseEndpoints, with_database
from pupilshare.gates import GateFailedError
from pupilshare.generate.census import build_census_extract, write_census_extract
from pupilshare.generate.returns import generate_all_returns
from pupilshare.ingest import ingest_inbox
from pupilshare.policy import RecipientPolicy, load_policy
from pupilshare.publish import TRUTH_LOADERS, DeliveryIntegrityError, deliver_feed, gate_feed
from pupilshare.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
FEED_DATE = dt.date(2026, 11, 29)
POLICY = load_policy()
PRISTINE_SCHEMA = "mutation_pristine"
#: Columns a school return holds that no recipient's allow-list has: the first one a mart lacks is planted.
NOT_ALLOWED_COLUMNS = ("ethnicity_code", "home_phone_number")
#: Every few pupils opts out of everything (scope all), dated before the feed date, so every cohort has opted-out
#: (restricted or excluded) pupils whatever recipients the policy holds.
OPT_OUT_EVERY = 12
OPT_OUT_DATE = dt.date(2026, 10, 20)


def leak_kinds(recipient: RecipientPolicy) -> list[str]:
    """The leak kinds that apply to ``recipient``, from its policy entry."""
    kinds = ["extra_column", "outside_cohort"]
    if recipient.opt_out is not None:
        kinds.append("restricted_extra_field" if recipient.opt_out.effect == "restrict" else "opted_out")
    if recipient.route_column is not None:
        kinds.append("wrong_route")
    return kinds


@dataclasses.dataclass(frozen=True)
class Mart:
    """A built mart under test: its recipient, the truth of the feed date and a connection factory."""

    recipient: RecipientPolicy
    url: str
    truth: pd.DataFrame

    @property
    def table(self) -> sql.Identifier:
        return sql.Identifier(self.recipient.schema_name, self.recipient.mart)

    def rows(self) -> tuple[list[str], list[tuple]]:
        with psycopg.connect(self.url) as conn, conn.cursor() as cursor:
            cursor.execute(sql.SQL("select * from {} order by 1").format(self.table))
            return [column.name for column in cursor.description], cursor.fetchall()


#: A planter changes the built mart in place and returns what it planted (for the failure message).
Planter = Callable[[Mart], str]


def _plant_extra_column(mart: Mart) -> str:
    column = next(name for name in NOT_ALLOWED_COLUMNS if name not in mart.recipient.mart_columns)
    _execute(mart, sql.SQL("alter table {} add column {} text default 'W1'").format(mart.table, sql.Identifier(column)))
    return f"column {column} (not in the policy's fields)"


def _plant_row_for(mart: Mart, candidates: pd.DataFrame, what: str) -> str:
    """Insert a copy of a built row re-keyed to the first candidate pupil not in the mart (with their route when
    routed, and their UPN in a ``upn`` column), so that, as far as the county allows, only the candidate's own status
    makes the row wrong. A routed candidate without a route of their own keeps the copied row's route."""
    columns, rows = mart.rows()
    key = columns.index(mart.recipient.key_column)
    candidates = candidates[~candidates["upn"].isin({row[key] for row in rows})]
    assert not candidates.empty, f"{mart.recipient.recipient_id}: the county has no {what} to plant"
    route_column = mart.recipient.route_column
    if route_column is not None:
        routed = candidates[candidates["routes"].map(len) > 0]
        candidates = routed if not routed.empty else candidates
    pupil = candidates.iloc[0]
    template = dict(zip(columns, rows[0], strict=True))
    template[mart.recipient.key_column] = pupil["upn"]
    if "upn" in template:
        template["upn"] = pupil["upn"]
    if route_column is not None and len(pupil["routes"]):
        template[route_column] = type(template[route_column])(pupil["routes"][0])
    _execute(
        mart,
        sql.SQL("insert into {} ({}) values ({})").format(
            mart.table,
            sql.SQL(", ").join(map(sql.Identifier, template)),
            sql.SQL(", ").join(sql.Placeholder() * len(template)),
        ),
        tuple(template.values()),
    )
    return f"a row for {what} {pupil['upn']}"


def _plant_outside_cohort(mart: Mart) -> str:
    truth = mart.truth
    outside = truth[~truth["is_in_cohort"].eq(True) & ~truth["is_restricted"].eq(True) & truth["date_of_birth"].notna()]
    return _plant_row_for(mart, outside, "a pupil outside the cohort")


def _plant_opted_out(mart: Mart) -> str:
    truth = mart.truth
    return _plant_row_for(
        mart, truth[truth["is_in_cohort"].eq(True) & truth["is_restricted"].eq(True)], "an opted-out pupil"
    )


def _plant_not_measured(mart: Mart) -> str:
    """health: a row for a child whose latest NCMP row says they were not measured (the parent opted out)."""
    truth = mart.truth
    return _plant_row_for(mart, truth[truth["is_restricted"].eq(True)], "a child not measured (NCMP opt-out)")


def _plant_restricted_extra_field(mart: Mart) -> str:
    """Give a restricted pupil's row one further field, copied from an unrestricted pupil's row."""
    columns, rows = mart.rows()
    restricted = set(mart.truth.loc[mart.truth["is_restricted"].eq(True), "upn"])
    key = columns.index(mart.recipient.key_column)
    target = next((row[key] for row in rows if row[key] in restricted), None)
    assert target is not None, f"{mart.recipient.recipient_id}: no restricted pupil in the built mart"
    # a field a restricted row may still carry (nccis: activity YSS collected itself) is no leak
    allowed = {"upn", *mart.recipient.restricted_extra_fields}
    for field in (name for name in mart.recipient.further_fields if name not in allowed):
        position = columns.index(field)
        value = next((row[position] for row in rows if row[key] not in restricted and row[position] is not None), None)
        if value is not None:
            _execute(
                mart,
                sql.SQL("update {} set {} = %s where {} = %s").format(
                    mart.table, sql.Identifier(field), sql.Identifier(mart.recipient.key_column)
                ),
                (value, target),
            )
            return f"further field {field} on restricted pupil {target}"
    raise AssertionError(f"{mart.recipient.recipient_id}: no further field has a value to copy")


def _plant_wrong_route(mart: Mart) -> str:
    """Move one pupil's row to a route (provider, centre) that other pupils' rows have but this pupil's truth lacks."""
    route_column = mart.recipient.route_column
    columns, rows = mart.rows()
    key, route = columns.index(mart.recipient.key_column), columns.index(route_column)
    allowed = dict(zip(mart.truth["upn"], mart.truth["routes"], strict=True))
    used = sorted({row[route] for row in rows}, key=str)
    for row in rows:
        other = next((value for value in used if str(value) not in map(str, allowed.get(row[key], ()))), None)
        if other is not None:
            _execute(
                mart,
                sql.SQL("update {} set {} = %s where {} = %s and {} = %s").format(
                    mart.table,
                    sql.Identifier(route_column),
                    sql.Identifier(mart.recipient.key_column),
                    sql.Identifier(route_column),
                ),
                (other, row[key], row[route]),
            )
            return f"pupil {row[key]} moved from {route_column} {row[route]} to {other}"
    raise AssertionError(f"{mart.recipient.recipient_id}: every route holds every pupil; nothing to move")


#: (recipient, leak kind) -> (planter, the check of expectations/<recipient>__feed.yml that must catch it).
LEAKS: dict[tuple[str, str], tuple[Planter, str]] = {
    ("yss", "extra_column"): (_plant_extra_column, "columns_match_policy"),
    ("yss", "outside_cohort"): (_plant_outside_cohort, "age_in_cohort"),
    ("yss", "restricted_extra_field"): (_plant_restricted_extra_field, "restricted_has_no_further_fields"),
    ("post16", "extra_column"): (_plant_extra_column, "columns_match_policy"),
    ("post16", "outside_cohort"): (_plant_outside_cohort, "pupil_in_year_11"),
    ("post16", "opted_out"): (_plant_opted_out, "opted_out_pupil_absent"),
    ("post16", "wrong_route"): (_plant_wrong_route, "routed_to_own_provider"),
    ("sure_start", "extra_column"): (_plant_extra_column, "columns_match_policy"),
    ("sure_start", "outside_cohort"): (_plant_outside_cohort, "pupil_in_reception_at_eligible_school"),
    ("sure_start", "opted_out"): (_plant_opted_out, "opted_out_pupil_absent"),
    ("sure_start", "wrong_route"): (_plant_wrong_route, "routed_to_own_centre"),
    ("nccis", "extra_column"): (_plant_extra_column, "columns_match_policy"),
    ("nccis", "outside_cohort"): (_plant_outside_cohort, "in_nccis_cohort"),
    ("nccis", "restricted_extra_field"): (_plant_restricted_extra_field, "restricted_has_no_school_data"),
    ("health", "extra_column"): (_plant_extra_column, "columns_match_policy"),
    ("health", "outside_cohort"): (_plant_outside_cohort, "measured_this_school_year"),
    ("health", "opted_out"): (_plant_not_measured, "opted_out_child_absent"),
}

CASES = [
    (recipient_id, kind) for recipient_id, recipient in POLICY.recipients.items() for kind in leak_kinds(recipient)
]


def _execute(mart: Mart, query, params: tuple = ()) -> None:
    with psycopg.connect(mart.url, autocommit=True) as conn:
        assert conn.execute(query, params).rowcount != 0, f"nothing planted by {query!r}"


@pytest.fixture(scope="module")
def county(admin_url, tmp_path_factory):
    """A generated county (every return) ingested into a fresh database, every recipient's mart built by dbt and kept
    as a pristine copy. Yields the settings; the database is dropped afterwards."""
    name = f"pupilshare_mutation_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    url = with_database(admin_url, name)
    folder = tmp_path_factory.mktemp("mutation")
    settings = Settings(database_url=url, data_dir=folder / "data")
    try:
        settings.ensure_folders()
        extract = build_census_extract(schools=4, pupils=400, seed=11)
        write_census_extract(extract, settings.inbox_dir / "census" / "autumn_2026")
        generate_all_returns(extract, settings.inbox_dir, seed=11)
        _write_opt_outs(extract, settings.inbox_dir / "optouts" / "optouts_926_mutation.csv")
        _measure_before_feed_date(settings.inbox_dir / "ncmp")
        summary = ingest_inbox(settings)
        assert summary.rows_loaded > 400
        _build_marts(url, folder)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("create schema {}").format(sql.Identifier(PRISTINE_SCHEMA)))
            for recipient in POLICY.recipients.values():
                conn.execute(
                    sql.SQL("create table {} (like {} including all); insert into {} select * from {}").format(
                        _pristine(recipient), _built(recipient), _pristine(recipient), _built(recipient)
                    )
                )
        yield settings
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def _write_opt_outs(extract, path: Path) -> None:
    """Every ``OPT_OUT_EVERY``-th pupil opts out of everything, by the party entitled to on the day."""
    lines = ["upn,scope,action,requested_by,requested_on,channel"]
    for pupil in extract.pupils[::OPT_OUT_EVERY]:
        party = "pupil" if age_in_years(pupil.dob, OPT_OUT_DATE) >= 16 else "parent"
        lines.append(f"{pupil.upn},all,opt_out,{party},{OPT_OUT_DATE.isoformat()},letter")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _measure_before_feed_date(folder: Path) -> None:
    """The generated NCMP visits run from November to June, mostly after the feed date: most measured children are
    measured on the 2nd of the feed date's month instead (so the health mart has rows), every 7th 90 days after the
    feed date (outside the cohort on it), and every ``OPT_OUT_EVERY``-th row of the export becomes a parent's NCMP
    opt-out (not measured), so the county has children the health feed must leave out."""
    for path in folder.glob("*.csv"):
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            columns, rows = list(reader.fieldnames or []), list(reader)
        for number, row in enumerate(rows):
            if number % OPT_OUT_EVERY == 0:
                row.update(measurement_date="", height_cm="", weight_kg="", not_measured_reason="OPTOUT")
            elif row["measurement_date"]:
                later = number % 7 == 3  # measured after the feed date: outside the cohort on it
                row["measurement_date"] = FEED_DATE + dt.timedelta(days=90) if later else FEED_DATE.replace(day=2)
                row["measurement_date"] = row["measurement_date"].isoformat()
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)


def _build_marts(url: str, folder: Path) -> None:
    """``dbt build`` (seeds, models, data tests) of every recipient's mart and all it reads, as the DAGs build them."""
    selection = [f"+{recipient.mart}" for recipient in POLICY.recipients.values()]
    dbt_vars = {"feed_date": FEED_DATE.isoformat(), "opt_out_persistence": "persist"}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in DatabaseEndpoints(url, "", embedded=False).dbt_env().items():
            patch.setenv(key, value)
        patch.setenv("DBT_INDIRECT_SELECTION", "cautious")
        result = dbtRunner().invoke(
            ["build", "--select", *selection, "--exclude", "resource_type:unit_test",
             "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
             "--target-path", str(folder / "target"), "--log-path", str(folder / "logs"),
             "--vars", json.dumps(dbt_vars)]
        )  # fmt: skip
    failed = [
        f"{item.node.name}: {item.status}" for item in (result.result or []) if str(item.status) in {"error", "fail"}
    ]
    assert result.success, f"dbt build failed: {failed or result.exception}"


def _built(recipient: RecipientPolicy) -> sql.Identifier:
    return sql.Identifier(recipient.schema_name, recipient.mart)


def _pristine(recipient: RecipientPolicy) -> sql.Identifier:
    return sql.Identifier(PRISTINE_SCHEMA, recipient.recipient_id)


def _restore(url: str, recipient: RecipientPolicy) -> None:
    """Put the mart back exactly as dbt built it (columns, constraints, rows)."""
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        conn.execute(
            sql.SQL("drop table {built}; create table {built} (like {pristine} including all); "
                    "insert into {built} select * from {pristine}").format(
                built=_built(recipient), pristine=_pristine(recipient)
            )
        )  # fmt: skip


def _mart(settings: Settings, recipient_id: str) -> Mart:
    recipient = POLICY.recipient(recipient_id)
    _restore(settings.database_url, recipient)
    with psycopg.connect(settings.database_url) as conn:
        truth = TRUTH_LOADERS[recipient_id](conn, FEED_DATE, persistence=settings.opt_out_persistence)
    return Mart(recipient, settings.database_url, truth)


def _snapshot(settings: Settings) -> dict[str, object]:
    """What a delivery would change: the ledger's deliveries and disclosures, and every file in the outbox."""
    with psycopg.connect(settings.database_url) as conn:
        ledger_exists = conn.execute("select to_regclass('ledger.deliveries') is not null").fetchone()[0]
        counts = (
            conn.execute(
                "select (select count(*) from ledger.deliveries), (select count(*) from ledger.disclosures)"
            ).fetchone()
            if ledger_exists
            else (0, 0)
        )
    return {
        "deliveries": counts[0],
        "disclosures": counts[1],
        "outbox": sorted(str(path) for path in settings.outbox_dir.rglob("*")),
    }


def _gate_result(settings: Settings, run_id: str) -> tuple[bool, list[str]]:
    with psycopg.connect(settings.database_url) as conn:
        (success, failures), *others = conn.execute(
            "select success, failures from ledger.gate_results where run_id = %s", (run_id,)
        ).fetchall()
    assert not others, f"one gate verdict per run, got {len(others) + 1}"
    return success, failures


@pytest.fixture(scope="module")
def publish_dags():
    """The publish DAG of each recipient, built from the policy as Airflow builds it (one per recipient, lazily).
    Building one renders its dbt models with cosmos, which caches them in Airflow's metadata database."""
    from pupilshare.airflow.runner import migrate_metadata_db

    migrate_metadata_db()
    built: dict[str, object] = {}

    def get(recipient_id: str):
        if recipient_id not in built:
            from pupilshare.airflow.publish_dag import build_publish_dag

            built[recipient_id] = build_publish_dag(recipient_id)
        return built[recipient_id]

    return get


def _fire_failure_callbacks(dag, task_id: str, run_id: str, error: BaseException) -> None:
    """Run the task's ``on_failure_callback`` as Airflow does when the task fails: with the task instance, the run
    and the exception in the context."""
    task = dag.get_task(task_id)
    callbacks = task.on_failure_callback
    callbacks = list(callbacks) if isinstance(callbacks, list | tuple) else [callbacks] if callbacks else []
    assert callbacks, f"{dag.dag_id}.{task_id} has no failure callback: a failed gate would not be alerted"
    instance = types.SimpleNamespace(dag_id=dag.dag_id, task_id=task_id, try_number=1, run_id=run_id)
    for callback in callbacks:
        callback({"task_instance": instance, "ti": instance, "run_id": run_id, "exception": error})


@pytest.mark.parametrize(("recipient_id", "kind"), CASES, ids=[f"{r}-{k}" for r, k in CASES])
def test_planted_leak__gate_fails_nothing_delivered_or_recorded_and_alerted(
    county, publish_dags, caplog, recipient_id, kind
):
    if (recipient_id, kind) not in LEAKS:
        pytest.fail(
            f"no leak planter for recipient {recipient_id!r}, leak kind {kind!r}: add one to LEAKS in {__file__} "
            f"(and the check of expectations/{recipient_id}__feed.yml that must catch it); every recipient in the "
            "policy must be mutation-tested"
        )
    planter, check = LEAKS[(recipient_id, kind)]
    settings = county
    mart = _mart(settings, recipient_id)
    planted = planter(mart)
    before = _snapshot(settings)
    run_id = f"mutation__{recipient_id}__{kind}__{uuid.uuid4().hex[:6]}"

    with pytest.raises(GateFailedError) as failed:
        gate_feed(recipient_id, feed_date=FEED_DATE, run_id=run_id, settings=settings)

    failures = failed.value.result.failures
    assert any(failure.startswith(f"{check}") for failure in failures), (planted, failures)
    success, recorded = _gate_result(settings, run_id)
    assert success is False and any(failure.startswith(check) for failure in recorded), recorded
    staging = settings.staging_dir / recipient_id / FEED_DATE.isoformat()
    assert not any(staging.glob(f"{run_id}*")), "a failed gate stages nothing"
    with pytest.raises(DeliveryIntegrityError, match="was not gated"):
        deliver_feed(staging / run_id, settings=settings)
    assert _snapshot(settings) == before, "nothing delivered, nothing recorded as disclosed"

    dag = publish_dags(recipient_id)
    gate_task = dag.get_task("gate_and_stage")
    assert gate_task.retries == 0, "a failed gate is final: no retry may deliver the same mart"
    caplog.set_level(logging.WARNING, logger="pupilshare.alerts")
    _fire_failure_callbacks(dag, "gate_and_stage", run_id, failed.value)
    alerts = [record.getMessage() for record in caplog.records if record.name == "pupilshare.alerts"]
    assert len(alerts) == 1, alerts
    assert alerts[0].startswith(
        f"PUPILSHARE ALERT: {dag.dag_id}.gate_and_stage failed in run {run_id}: GateFailedError"
    )
    assert check in alerts[0], alerts[0]
    for upn in mart.truth["upn"]:
        assert upn not in alerts[0], "an alert never quotes a pupil's UPN"


@pytest.mark.parametrize("recipient_id", list(POLICY.recipients))
def test_unplanted_mart__gate_passes(county, recipient_id):
    """The control: the mart as dbt built it passes the same gate, so each failure above is the planted leak's."""
    settings = county
    assert _mart(settings, recipient_id).rows()[1], f"the built {recipient_id} mart is empty: the control is vacuous"
    run_id = f"mutation__{recipient_id}__control"

    staging = gate_feed(recipient_id, feed_date=FEED_DATE, run_id=run_id, settings=settings)

    assert _gate_result(settings, run_id) == (True, [])
    assert (Path(staging) / "stage.json").is_file()


@pytest.mark.parametrize("recipient_id", list(POLICY.recipients))
def test_truth_of_a_feed__is_the_whole_truth_for_the_cohort_and_the_pupils_the_feed_names(county, recipient_id):
    """The gate reads the truth of the cohort plus the pupils the feed names (a county's whole roll does not fit in
    memory at a million pupils): it must be row for row the whole roll's truth for those pupils, pupils named by the
    feed outside the cohort included, so every comparison and count the gate makes is the same."""
    settings = county
    recipient = POLICY.recipient(recipient_id)
    mart = _mart(settings, recipient_id)
    columns, rows = mart.rows()
    named = {row[columns.index(recipient.key_column)] for row in rows}
    whole = mart.truth
    outside = whole[~whole["is_in_cohort"]]["upn"].head(5).tolist()
    assert outside, f"{recipient_id}: the county has nobody outside the cohort; the check would be vacuous"
    keys = frozenset(named) | set(outside) | {"A999999999999"}  # and one nobody has
    with psycopg.connect(settings.database_url) as conn:
        keyed = TRUTH_LOADERS[recipient_id](conn, FEED_DATE, persistence=settings.opt_out_persistence, keys=keys)

    expected = whole[whole["is_in_cohort"] | whole["upn"].isin(keys)]
    pd.testing.assert_frame_equal(
        keyed.sort_values("upn").reset_index(drop=True), expected.sort_values("upn").reset_index(drop=True)
    )
    assert set(outside) <= set(keyed["upn"]), "pupils the feed names outside the cohort are in the truth"
    assert len(keyed) < len(whole), "the truth of a feed holds less than the whole roll"


def test_every_recipient_and_leak_kind_has_a_planter():
    """A recipient added to the policy must come with its planters; stale entries for removed recipients go too."""
    missing = sorted(set(CASES) - set(LEAKS))
    stale = sorted(set(LEAKS) - set(CASES))
    assert not missing, f"no leak planter for {missing}: add them to LEAKS"
    assert not stale, f"LEAKS has entries for recipients or kinds the policy no longer has: {stale}"
