"""Subject access (``pupilshare sar``): a small generated county loaded through the ingest, deliveries recorded
through the ledger's own functions, the project's roles created, and the report asked for as the DPO.

Roles are cluster-wide and the machine's PostgreSQL is shared, so every test works in a scratch database whose name
gives the role prefix, and drops its roles afterwards (as tests/integration/test_access.py does).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
from urllib.parse import urlsplit

import psycopg
import pytest
from stdnum.gb import upn as upn_check
from typer.testing import CliRunner

from pupilshare.access import default_role_prefix, drop_roles, ensure_roles, project_roles
from pupilshare.benchmarks.sar import record_synthetic_delivery
from pupilshare.cli import app
from pupilshare.generate.census import build_census_extract, write_census_extract
from pupilshare.generate.returns import generate_all_returns
from pupilshare.ingest import ingest_inbox
from pupilshare.sar import (
    InvalidUpnError,
    act_as_dpo,
    compact_upn,
    report_to_html,
    subject_access_report,
)
from pupilshare.settings import Settings

pytestmark = pytest.mark.integration

HOSTILE_SURNAME = "<script>alert('x')</script>&O\"Brien"
#: A valid UPN (LA 926) that no generated pupil has: serial 99999999 is far beyond the generator's.
UNKNOWN_UPN = upn_check.calc_check_digit("92699999999A") + "92699999999A"


@pytest.fixture(scope="module")
def county(tmp_path_factory, admin_url):
    """A loaded scratch county: yields (url, dpo role, pupil UPNs, {recipient: UPNs disclosed})."""
    from psycopg import sql

    from pupilshare.db import with_database

    name = f"pupilshare_scratch_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    url = with_database(admin_url, name)
    roles = project_roles(default_role_prefix(name))
    try:
        tmp = tmp_path_factory.mktemp("sar")
        extract = build_census_extract(schools=3, pupils=120, seed=11)
        extract.pupils[0] = dataclasses.replace(extract.pupils[0], surname=HOSTILE_SURNAME)
        write_census_extract(extract, tmp / "data" / "inbox" / "census" / "autumn")
        generate_all_returns(extract, tmp / "data" / "inbox", seed=11)
        summary = ingest_inbox(Settings(database_url=url, data_dir=tmp / "data"))
        assert summary.rows_loaded > 120
        upns = [pupil.upn for pupil in extract.pupils]
        disclosed = {"yss": upns[0:3], "post16": upns[2:5]}
        with psycopg.connect(url, autocommit=True) as conn:
            ensure_roles(conn, prefix=default_role_prefix(name))
            for recipient_id, recipient_upns in disclosed.items():
                with conn.transaction():
                    _record_delivery(conn, recipient_id, recipient_upns)
        yield url, roles.dpo, upns, disclosed
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            drop_roles(conn, roles)
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def _record_delivery(conn: psycopg.Connection, recipient_id: str, upns: list[str]) -> None:
    """One gated delivery of ``upns`` to ``recipient_id``, recorded as the publish step records it."""
    record_synthetic_delivery(
        conn,
        recipient_id=recipient_id,
        feed_date=dt.date(2026, 11, 30),
        upns=upns,
        fields=("forename", "surname"),
        legal_basis=f"basis of {recipient_id}",
        tag=recipient_id,
    )


def _report(url: str, dpo: str, upn: str):
    with psycopg.connect(url) as conn:
        act_as_dpo(conn, dpo)
        return subject_access_report(conn, upn)


def test_subject_access_report__lists_exactly_the_disclosures_containing_the_pupil(county):
    url, dpo, upns, disclosed = county
    for upn in upns[:6]:
        report = _report(url, dpo, upn)
        expected = sorted(recipient for recipient, sent in disclosed.items() if upn in sent)
        assert sorted(row["recipient"] for row in report.disclosures) == expected, upn
        for row in report.disclosures:
            assert row["file_sha256"] == f"sha-{row['recipient']}" and row["run_id"] == f"run-{row['recipient']}"
            assert row["fields"] == ["forename", "surname"] and row["feed_date"] == "2026-11-30"


def test_subject_access_report__json_shape_and_what_is_held(county):
    url, dpo, upns, _ = county
    report = _report(url, dpo, upns[2])
    document = json.loads(json.dumps(report.to_dict()))
    assert list(document) == ["upn", "held", "opt_outs", "disclosures", "retractions"]
    assert document["upn"] == upns[2] and document["retractions"] == []
    assert set(document["held"]) >= {"census", "ctf", "ncmp", "eyfs", "post16", "activity", "optouts"}
    assert [row["upn"] for row in document["held"]["census"]["census_pupilonroll"]] == [upns[2]]
    # census rows without a UPN (the address) are linked through the pupil's table id
    assert len(document["held"]["census"]["census_addressesonroll"]) == 1
    for row in document["disclosures"]:
        assert list(row) == ["recipient", "feed_date", "fields", "legal_basis", "file_sha256", "run_id"]
    # no dbt build here: the report says the opt-outs are unknown rather than implying there are none
    assert document["opt_outs"] == [] and any("not built" in note for note in report.notes)


def test_subject_access_report__every_look_up_is_recorded_with_who_asked(county):
    url, dpo, upns, _ = county
    _report(url, dpo, upns[1])
    with psycopg.connect(url) as conn:
        asked = conn.execute(
            "select requested_by from ledger.subject_access_requests where upn = %s", (upns[1],)
        ).fetchall()
    assert asked and all(requested_by == urlsplit(url).username for (requested_by,) in asked)


def test_subject_access_report__an_unknown_valid_upn_gives_an_empty_report(county):
    url, dpo, _, _ = county
    report = _report(url, dpo, UNKNOWN_UPN)
    assert report.disclosures == [] and report.opt_outs == [] and report.retractions == []
    assert all(tables == {} for tables in report.held.values())


def test_subject_access_report__reads_the_effective_opt_outs_once_dbt_built_them(county, admin_url):
    """A stand-in for the dbt model (same name and key columns) shows the rows are read and given back as they are."""
    url, dpo, upns, _ = county
    with psycopg.connect(url, autocommit=True) as conn:
        owner = project_roles(default_role_prefix(conn.info.dbname)).owner
        conn.execute("create schema if not exists analytics")
        conn.execute(
            "create table analytics.int_opt_outs_effective as select %s::text as upn, 'yss'::text as scope_code, "
            "true as is_opted_out, 'opted out: latest is opt_out by parent'::text as explanation",
            (upns[3],),
        )
        conn.execute(f'alter table analytics.int_opt_outs_effective owner to "{owner}"')
    try:
        report = _report(url, dpo, upns[3])
        assert report.opt_outs == [
            {
                "upn": upns[3],
                "scope_code": "yss",
                "is_opted_out": True,
                "explanation": "opted out: latest is opt_out by parent",
            }
        ]
        assert report.notes == []
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("drop table analytics.int_opt_outs_effective")


def test_subject_access_indexes__every_upn_look_up_has_an_index(county):
    """Each table the report reads by UPN (or by the census pupil link) has a B-tree index led by that column, so a
    report stays an index look-up per table at county scale."""
    url = county[0]
    with psycopg.connect(url) as conn:
        unindexed = conn.execute(
            """select n.nspname || '.' || c.relname || '.' || a.attname
               from pg_class as c
               join pg_namespace as n on n.oid = c.relnamespace
               join pg_attribute as a on a.attrelid = c.oid and not a.attisdropped
               where c.relkind = 'r' and (
                   (n.nspname in ('raw', 'ledger') and a.attname = 'upn' and c.relname <> 'subject_access_requests')
                   or (n.nspname = 'raw' and a.attname in ('pupilonrolltableid', 'pupilnolongeronrolltableid')
                       and not exists (select from pg_attribute as u where u.attrelid = c.oid and u.attname = 'upn'))
               )
               and not exists (
                   select from pg_index as i
                   join pg_class as ic on ic.oid = i.indexrelid
                   join pg_am as am on am.oid = ic.relam
                   where i.indrelid = c.oid and i.indkey[0] = a.attnum and am.amname = 'btree'
               )
               order by 1"""
        ).fetchall()
    assert unindexed == []


def test_report_to_html__escapes_a_hostile_name(county):
    url, dpo, upns, _ = county
    page = report_to_html(_report(url, dpo, upns[0]))
    assert "<script>" not in page and HOSTILE_SURNAME not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;O&#34;Brien" in page
    assert page.startswith("<!doctype html>") and upns[0] in page


def test_compact_upn__refuses_a_wrong_check_letter():
    good = UNKNOWN_UPN
    wrong = ("B" if good[0] != "B" else "C") + good[1:]
    assert compact_upn(good.lower()) == good
    with pytest.raises(InvalidUpnError, match="not a valid UPN"):
        compact_upn(wrong)


def test_sar_command__json_for_a_pupil_and_exit_2_for_an_invalid_upn(county):
    url, _, upns, disclosed = county
    runner = CliRunner()
    result = runner.invoke(app, ["sar", upns[0], "--database-url", url])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert sorted(row["recipient"] for row in document["disclosures"]) == ["yss"]
    html = runner.invoke(app, ["sar", upns[0], "--format", "html", "--database-url", url])
    assert html.exit_code == 0 and "&lt;script&gt;" in html.stdout
    refused = runner.invoke(app, ["sar", "A12345678901X", "--database-url", url])
    assert refused.exit_code == 2 and "not a valid UPN" in refused.stderr


def test_subject_access_report__ncmp_bmi_results_come_with_the_measurement(county):
    """The BMI, SDS and centile computed at load hold no UPN: they are linked through the measurement row."""
    url, dpo, _, _ = county
    with psycopg.connect(url) as conn:
        upn, bmi_sds = conn.execute(
            """select m.upn, b.bmi_sds from raw.ncmp_bmi_results as b
               join raw.ncmp_measurements as m using (_load_batch_id, _row_number)
               order by m._row_number limit 1"""
        ).fetchone()
    held = _report(url, dpo, upn).to_dict()["held"]["ncmp"]
    assert [row["upn"] for row in held["ncmp_measurements"]] == [upn]
    assert [row["bmi_sds"] for row in held["ncmp_bmi_results"]] == [bmi_sds]
