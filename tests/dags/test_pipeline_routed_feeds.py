"""End to end through real Airflow runs: generated returns become gated, delivered, recorded post-16 and Sure Start
feeds, one file per provider and per children's centre.

Planted pupils pin the boundaries (a pupil applying to two providers, a withdrawn application, a status dated after
the feed date, opt-outs on the feed date and of scope all, a Year 10 applicant, a Reception pupil whose postcode no
reach area covers). Then each kind of leak is planted into the built mart (an opted-out pupil, a pupil outside the
cohort, a pupil routed to the wrong provider or centre, a column outside the allow-list): the gate fails, nothing is
delivered and nothing is recorded.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import json
from pathlib import Path

import psycopg
import pytest

from pupilshare.dates import age_in_years
from pupilshare.gates.truths.sure_start import SEEDS_DIR, read_reach_areas, route_postcode
from pupilshare.generate.census import build_census_extract, write_census_extract
from pupilshare.generate.returns import generate_all_returns
from pupilshare.policy import load_policy
from pupilshare.settings import Settings

# the module fixture runs two publish DAGs (about 35-47 dbt tasks each) inside the first test: allow it an hour
pytestmark = [pytest.mark.dags, pytest.mark.integration, pytest.mark.timeout(3600)]

FEED_DATE = dt.date(2026, 11, 29)
POST16 = load_policy().recipient("post16")
SURE_START = load_policy().recipient("sure_start")
PROVIDER_A, PROVIDER_B, PROVIDER_C = "19999991", "19999992", "19999993"
ROUTED_PIPELINE = ("pupilshare_ingest", "pupilshare_publish_post16", "pupilshare_publish_sure_start")


def _party(pupil, on: dt.date) -> str:
    return "pupil" if age_in_years(pupil.dob, on) >= 16 else "parent"


@pytest.fixture(scope="module")
def pipeline(isolated_pipeline):
    """Generate a small county with every return, plant boundary pupils, run ingest and every publish once."""
    settings = isolated_pipeline
    settings.ensure_folders()
    extract = build_census_extract(schools=4, pupils=400, seed=11)
    year_11 = [pupil for pupil in extract.pupils if pupil.nc_year == "11"]
    reception = [pupil for pupil in extract.pupils if pupil.nc_year == "R"]
    planted = {
        "two_providers": year_11[0],
        "withdrew": year_11[1],
        "offer_tomorrow": year_11[2],
        "opted_out_today": year_11[3],
        "opted_out_all": year_11[4],
        "year_10": next(pupil for pupil in extract.pupils if pupil.nc_year == "10"),
        "year_1": next(pupil for pupil in extract.pupils if pupil.nc_year == "1"),
        "no_reach_area": dataclasses.replace(
            reception[0], address=dataclasses.replace(reception[0].address, postcode="NR22 6AB")
        ),
        "reception_opted_out": reception[1],
    }
    replaced = {pupil.upn: pupil for pupil in planted.values()}
    extract = dataclasses.replace(extract, pupils=[replaced.get(pupil.upn, pupil) for pupil in extract.pupils])
    write_census_extract(extract, settings.inbox_dir / "census" / "autumn_2026")
    generate_all_returns(extract, settings.inbox_dir, seed=11)
    _write(
        settings.inbox_dir / "post16" / "post16_926_planted.csv",
        ["upn", "ukprn", "status", "status_date"],
        [
            (planted["two_providers"].upn, PROVIDER_A, "applied", "2026-11-02"),
            (planted["two_providers"].upn, PROVIDER_B, "applied", "2026-11-03"),
            (planted["withdrew"].upn, PROVIDER_A, "applied", "2026-11-02"),
            (planted["withdrew"].upn, PROVIDER_A, "withdrawn", "2026-11-10"),
            (planted["offer_tomorrow"].upn, PROVIDER_C, "offered", "2026-11-30"),
            (planted["opted_out_today"].upn, PROVIDER_A, "applied", "2026-11-02"),
            (planted["opted_out_all"].upn, PROVIDER_B, "applied", "2026-11-02"),
            (planted["year_10"].upn, PROVIDER_A, "applied", "2026-11-02"),
        ],
    )
    earlier = dt.date(2026, 11, 5)
    _write(
        settings.inbox_dir / "optouts" / "optouts_926_2026-11-29.csv",
        ["upn", "scope", "action", "requested_by", "requested_on", "channel"],
        [
            (
                planted["opted_out_all"].upn,
                "all",
                "opt_out",
                _party(planted["opted_out_all"], earlier),
                earlier,
                "letter",
            ),
            (
                planted["opted_out_today"].upn,
                "post16",
                "opt_out",
                _party(planted["opted_out_today"], FEED_DATE),
                FEED_DATE,
                "letter",
            ),
            (planted["reception_opted_out"].upn, "sure_start", "opt_out", "parent", FEED_DATE, "school"),
        ],
    )

    from pupilshare.airflow.runner import run_pipeline

    # the YSS and statistics runs are tests/dags/test_pipeline_yss.py's and tests/dags/test_pipeline_statistics.py's
    outcomes = run_pipeline(settings, FEED_DATE, ROUTED_PIPELINE)
    return settings, extract, planted, outcomes


def _write(path: Path, header: list[str], rows: list[tuple]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(
            [[value.isoformat() if isinstance(value, dt.date) else value for value in row] for row in rows]
        )


def _delivered(settings: Settings, recipient_id: str) -> dict[str, list[dict[str, str]]]:
    """Every delivered file of the recipient for the feed date: {route: rows}."""
    files = {}
    for path in sorted((settings.outbox_dir / recipient_id).glob(f"*/{FEED_DATE.isoformat()}/*.csv")):
        with path.open(encoding="utf-8", newline="") as handle:
            files[path.parent.parent.name] = list(csv.DictReader(handle))
    return files


def _query(settings: Settings, query: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(settings.database_url) as conn:
        return conn.execute(query, params).fetchall()


def test_pipeline__every_run_succeeds(pipeline):
    _, _, _, outcomes = pipeline
    assert [(outcome.dag_id, outcome.state) for outcome in outcomes] == [
        (dag_id, "success") for dag_id in ROUTED_PIPELINE
    ]


def test_post16__one_set_per_provider_with_the_boundaries(pipeline):
    settings, _, planted, _ = pipeline
    files = _delivered(settings, "post16")
    assert len(files) > 3, "the generator's applications reach several providers by the feed date"
    sets = {route: {row["upn"] for row in rows} for route, rows in files.items()}
    assert planted["two_providers"].upn in sets[PROVIDER_A] & sets[PROVIDER_B], "two providers: in both sets"
    assert planted["withdrew"].upn not in sets.get(PROVIDER_A, set()), "withdrawn: not in the set"
    assert planted["offer_tomorrow"].upn not in sets.get(PROVIDER_C, set()), "dated after the feed date: unknown"
    everyone = set().union(*sets.values())
    assert planted["opted_out_today"].upn not in everyone, "opted out on the feed date: in no set"
    assert planted["opted_out_all"].upn not in everyone, "opted out of all: in no set"
    assert planted["year_10"].upn not in everyone, "Year 10: not in the cohort"
    for rows in files.values():
        assert list(rows[0]) == list(POST16.delivered_fields), "exactly the policy's columns, no route or key"


def test_sure_start__one_set_per_centre_routed_by_postcode(pipeline):
    settings, extract, planted, _ = pipeline
    files = _delivered(settings, "sure_start")
    assert len(files) >= 2
    areas = read_reach_areas(SEEDS_DIR / "sure_start_reach_areas.csv")
    by_name = {(pupil.forename, pupil.surname): pupil for pupil in extract.pupils if pupil.nc_year == "R"}
    for centre, rows in files.items():
        assert list(rows[0]) == list(SURE_START.delivered_fields)
        for row in rows:
            pupil = by_name[(row["forename"], row["surname"])]
            assert route_postcode(pupil.address.postcode, areas) == centre
    names = {(row["forename"], row["surname"]) for rows in files.values() for row in rows}
    for kind in ("no_reach_area", "reception_opted_out", "year_1"):
        assert (planted[kind].forename, planted[kind].surname) not in names, kind


def test_ledger_rows_equal_delivered_rows_with_routes(pipeline):
    settings, _, _, _ = pipeline
    for recipient_id in ("post16", "sure_start"):
        files = _delivered(settings, recipient_id)
        ledger = _query(
            settings,
            "select route, count(*) from ledger.disclosures where recipient_id = %s group by route",
            (recipient_id,),
        )
        assert dict(ledger) == {route: len(rows) for route, rows in files.items()}
        for route in files:
            folder = settings.outbox_dir / recipient_id / route / FEED_DATE.isoformat()
            manifest = json.loads(next(folder.glob("*.manifest.json")).read_text(encoding="utf-8"))
            assert (manifest["route"], manifest["row_count"]) == (route, len(files[route]))


#: (recipient, leak kind) -> SQL planting the leak into the built mart, SQL undoing it, the failing check.
def _leaks(settings: Settings, planted) -> dict[tuple[str, str], tuple[str, str, str]]:
    def post16_row(pupil, provider: str) -> str:
        return (
            "insert into post16.post16_feed values "
            f"('{pupil.upn}', {provider}, 'X', 'Y', '{pupil.dob}', '{pupil.upn}', false, 'N', null, 'ENG', 0, 0)"
        )

    def sure_start_row(pupil) -> str:
        return (
            "insert into sure_start.sure_start_feed select "
            f"'{pupil.upn}', children_centre_id, 'X', 'Y', school_urn, school_name, listening_attention_understanding, "
            "speaking, self_regulation, managing_self, building_relationships, gross_motor_skills, fine_motor_skills, "
            "comprehension, word_reading, writing, number, numerical_patterns, past_and_present, "
            "people_culture_communities, natural_world, creating_with_materials, being_imaginative_expressive, "
            "has_good_level_of_development from sure_start.sure_start_feed limit 1"
        )

    two, opted, year_10 = planted["two_providers"].upn, planted["opted_out_today"], planted["year_10"]
    reception_opted, year_1 = planted["reception_opted_out"], planted["year_1"]
    moved, moved_from = _query(
        settings, "select ledger_upn, children_centre_id from sure_start.sure_start_feed order by ledger_upn limit 1"
    )[0]
    moved_to = "SSCC02" if moved_from == "SSCC01" else "SSCC01"  # a real centre, not the pupil's
    return {
        ("post16", "opted_out"): (
            post16_row(opted, PROVIDER_A),
            f"delete from post16.post16_feed where ledger_upn = '{opted.upn}'",
            "opted_out_pupil_absent",
        ),
        ("post16", "outside_cohort"): (
            post16_row(year_10, PROVIDER_A),
            f"delete from post16.post16_feed where ledger_upn = '{year_10.upn}'",
            "pupil_in_year_11",
        ),
        ("post16", "wrong_route"): (
            f"update post16.post16_feed set provider_ukprn = {PROVIDER_C} "
            f"where ledger_upn = '{two}' and provider_ukprn = {PROVIDER_B}",
            f"update post16.post16_feed set provider_ukprn = {PROVIDER_B} "
            f"where ledger_upn = '{two}' and provider_ukprn = {PROVIDER_C}",
            "routed_to_own_provider",
        ),
        ("post16", "extra_column"): (
            "alter table post16.post16_feed add column home_postcode text default 'NR1 1AA'",
            "alter table post16.post16_feed drop column home_postcode",
            "columns_match_policy",
        ),
        ("sure_start", "opted_out"): (
            sure_start_row(reception_opted),
            f"delete from sure_start.sure_start_feed where ledger_upn = '{reception_opted.upn}'",
            "opted_out_pupil_absent",
        ),
        ("sure_start", "outside_cohort"): (
            sure_start_row(year_1),
            f"delete from sure_start.sure_start_feed where ledger_upn = '{year_1.upn}'",
            "pupil_in_reception_at_eligible_school",
        ),
        ("sure_start", "wrong_route"): (
            f"update sure_start.sure_start_feed set children_centre_id = '{moved_to}' where ledger_upn = '{moved}'",
            f"update sure_start.sure_start_feed set children_centre_id = '{moved_from}' where ledger_upn = '{moved}'",
            "routed_to_own_centre",
        ),
        ("sure_start", "extra_column"): (
            "alter table sure_start.sure_start_feed add column date_of_birth date default '2021-01-01'",
            "alter table sure_start.sure_start_feed drop column date_of_birth",
            "columns_match_policy",
        ),
    }


LEAKS = [
    (recipient, kind)
    for recipient in ("post16", "sure_start")
    for kind in ("opted_out", "outside_cohort", "wrong_route", "extra_column")
]


@pytest.mark.parametrize(("recipient_id", "leak"), LEAKS, ids=[f"{r}-{k}" for r, k in LEAKS])
def test_planted_leak__gate_fails_nothing_delivered_nothing_recorded(pipeline, recipient_id, leak):
    settings, _, planted, _ = pipeline
    plant, undo, check = _leaks(settings, planted)[(recipient_id, leak)]
    before_files = sorted(str(path) for path in settings.outbox_dir.rglob("*"))
    before_ledger = _query(settings, "select count(*) from ledger.disclosures")[0][0]
    before_deliveries = _query(settings, "select count(*) from ledger.deliveries")[0][0]
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        assert conn.execute(plant).rowcount != 0 or leak == "extra_column", "the leak was planted"
    try:
        from airflow.dag_processing.dagbag import DagBag

        dag = DagBag(dag_folder=str(settings.dags_dir)).get_dag(f"pupilshare_publish_{recipient_id}")
        feed_moment = dt.datetime.combine(FEED_DATE, dt.time(), tzinfo=dt.UTC)
        # The dbt build is marked success without running, so the gate sees the planted leak in the built mart.
        dag_run = dag.test(logical_date=feed_moment, mark_success_pattern=r"build_models\..*")
    finally:
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            conn.execute(undo)
    states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
    assert str(dag_run.state) == "failed"
    assert states["gate_and_stage"] == "failed"
    assert states["deliver_and_record"] == "upstream_failed"
    assert sorted(str(path) for path in settings.outbox_dir.rglob("*")) == before_files
    assert _query(settings, "select count(*) from ledger.disclosures")[0][0] == before_ledger
    assert _query(settings, "select count(*) from ledger.deliveries")[0][0] == before_deliveries
    failures = _query(
        settings,
        "select failures::text from ledger.gate_results where not success and recipient_id = %s "
        "order by checked_at desc limit 1",
        (recipient_id,),
    )
    assert failures and check in failures[0][0], failures
