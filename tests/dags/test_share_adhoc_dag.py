"""The ad-hoc sharing DAG run for real with ``dag.test()``: a request given as the run's params is recorded, the
current roll built by its cosmos task group, the extract gated, delivered and recorded; a request naming a child
who is not on the roll fails at its first task, without a retry, alerted, with nothing written.

The returns are loaded by the ingest functions directly (the ingest DAG has its own tests).
"""

from __future__ import annotations

import csv
import datetime as dt
import logging

import psycopg
import pytest
from stdnum.gb import upn as upn_check

from pupilshare.files import slug
from pupilshare.generate.census import build_census_extract, write_census_extract
from pupilshare.ingest import ingest_inbox

pytestmark = [pytest.mark.dags, pytest.mark.integration, pytest.mark.timeout(3600)]

REQUEST_MOMENT = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)
AGENCY = "Norfolk Children's Services"
UNKNOWN_UPN = upn_check.calc_check_digit("92699999999A") + "92699999999A"


@pytest.fixture(scope="module")
def county(isolated_pipeline):
    settings = isolated_pipeline
    settings.ensure_folders()
    extract = build_census_extract(schools=3, pupils=150, seed=11)
    write_census_extract(extract, settings.inbox_dir / "census" / "autumn_2026")
    assert ingest_inbox(settings).rows_loaded > 150
    return settings, extract


class _Alerts(logging.Handler):
    """Every message the ``pupilshare.alerts`` logger emits (the alert callbacks only log)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _params(upns: list[str], reference: str) -> dict:
    return {
        "requesting_agency": AGENCY,
        "legal_basis": "Children Act 1989 s.47: enquiry where a child is suspected to be suffering significant harm",
        "reference": reference,
        "pupils": upns,
        "fields": ["surname", "school_name"],
        "justification": "Surname and current school to locate the children named in the strategy discussion.",
        "requested_by": "Social worker, MASH",
    }


def _count(settings, query: str, params: tuple = ()) -> int:
    with psycopg.connect(settings.database_url) as conn:
        if not conn.execute("select to_regclass('ledger.adhoc_requests') is not null").fetchone()[0]:
            return 0
        return conn.execute(query, params).fetchone()[0]


def test_share_adhoc__a_triggered_request_is_recorded_gated_delivered_and_recorded(county, single_dag):
    settings, extract = county
    upns = [pupil.upn for pupil in extract.pupils[:3]]
    dag = single_dag("pupilshare_share_adhoc")

    dag_run = dag.test(run_after=REQUEST_MOMENT, run_conf=_params(upns, "CS-0001"))

    states = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
    assert str(dag_run.state) == "success", states
    folder = settings.outbox_dir / "adhoc" / slug(AGENCY) / "CS-0001"
    (delivered,) = folder.glob("*.csv")
    with delivered.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    by_upn = {pupil.upn: pupil for pupil in extract.pupils}
    expected = [{"surname": by_upn[upn].surname, "school_name": school} for upn, school in _schools(settings, upns)]
    assert len(rows) == 3 and sorted(rows, key=_order) == sorted(expected, key=_order)
    assert _count(settings, "select count(*) from ledger.adhoc_requests where reference = 'CS-0001'") == 1
    assert (
        _count(
            settings,
            "select count(*) from ledger.disclosures where recipient_id = %s and upn = any(%s)",
            (f"adhoc:{AGENCY}", upns),
        )
        == 3
    )


def _order(row: dict) -> tuple:
    return row["surname"], row["school_name"]


def _schools(settings, upns: list[str]) -> list[tuple[str, str]]:
    """Each named child's current school name, read from the raw census (not from the dbt model)."""
    with psycopg.connect(settings.database_url) as conn:
        return conn.execute(
            """select pupils.upn, schools.schoolname
               from raw.census_pupilonroll as pupils
               join raw.census_school as schools
                   on schools._load_batch_id = pupils._load_batch_id
                   and trim(schools.schoolcensustableid) = trim(pupils.schoolcensustableid)
               where pupils.upn = any(%s)""",
            (upns,),
        ).fetchall()


def test_share_adhoc__a_child_not_on_the_roll_fails_the_run_alerted_with_nothing_written(county, single_dag, caplog):
    settings, extract = county
    before = (
        _count(settings, "select count(*) from ledger.adhoc_requests"),
        sorted(str(path) for path in settings.outbox_dir.rglob("*")),
    )
    dag = single_dag("pupilshare_share_adhoc")
    handler = _Alerts()
    logging.getLogger("pupilshare.alerts").addHandler(handler)
    try:
        dag_run = dag.test(
            run_after=REQUEST_MOMENT + dt.timedelta(hours=1),
            run_conf=_params([extract.pupils[0].upn, UNKNOWN_UPN], "CS-0002"),
        )
    finally:
        logging.getLogger("pupilshare.alerts").removeHandler(handler)

    tasks = {ti.task_id: ti for ti in dag_run.get_task_instances()}
    assert str(dag_run.state) == "failed"
    assert str(tasks["record_request"].state) == "failed"
    assert tasks["record_request"].try_number == 1, "a refused request is a verdict: no retry"
    assert str(tasks["deliver_and_record"].state) == "upstream_failed"
    alerts = handler.messages
    assert any(
        "PUPILSHARE ALERT: pupilshare_share_adhoc.record_request failed" in alert and "not on the current roll" in alert
        for alert in alerts
    ), alerts
    after = (
        _count(settings, "select count(*) from ledger.adhoc_requests"),
        sorted(str(path) for path in settings.outbox_dir.rglob("*")),
    )
    assert after == before
