"""Ad-hoc sharing with another agency under a duty to share, through the pupilshare functions the DAG
``pupilshare_share_adhoc`` runs: a generated county loaded by the real ingest, the current roll built by dbt, the
request recorded, gated by Great Expectations, delivered and recorded, and seen in the subject access report.

One named child has an opt-out of everything in force: the duty to share overrides it (policy ``adhoc.opt_outs:
record``), and the request records that it existed.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import uuid

import pandas as pd
import psycopg
import pytest
from dbt.cli.main import dbtRunner
from psycopg import sql
from stdnum.gb import upn as upn_check
from typer.testing import CliRunner

from pupilshare import PROJECT_ROOT
from pupilshare.access import default_role_prefix, drop_roles, ensure_roles, project_roles
from pupilshare.adhoc import (
    AdhocRequestError,
    adhoc_recipient,
    build_adhoc_truth,
    deliver_request,
    gate_request,
    read_extract,
    read_request,
    record_request,
)
from pupilshare.cli import app
from pupilshare.db import DatabaseEndpoints, with_database
from pupilshare.files import slug
from pupilshare.gates import GateFailedError, run_feed_gate
from pupilshare.gates.truths.roll import read_current_roll
from pupilshare.generate.census import build_census_extract, write_census_extract
from pupilshare.ingest import ingest_inbox
from pupilshare.policy import load_policy
from pupilshare.sar import act_as_dpo, subject_access_report
from pupilshare.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
REQUEST_DATE = dt.date(2026, 11, 30)
OPT_OUT_DATE = dt.date(2026, 10, 20)
AGENCY = "Norfolk Constabulary"
LEGAL_BASIS = "Children Act 2004 s.11 and Working Together to Safeguard Children 2023: a section 47 enquiry"
ADHOC = load_policy().adhoc
#: A valid UPN (LA 926) that no generated pupil has: serial 99999999 is far beyond the generator's.
UNKNOWN_UPN = upn_check.calc_check_digit("92699999999A") + "92699999999A"


def _request(pupils: list[str], fields: list[str], reference: str = "NC-2026-0042") -> dict:
    return {
        "requesting_agency": AGENCY,
        "legal_basis": LEGAL_BASIS,
        "reference": reference,
        "pupils": pupils,
        "fields": fields,
        "justification": "Forename and date of birth confirm the identity of the children named in the referral.",
        "requested_by": "DS J. Example, Norfolk MASH",
    }


@pytest.fixture(scope="module")
def county(admin_url, tmp_path_factory):
    """A generated county ingested into a fresh database, the current roll built by dbt, the project's roles created.
    Yields (settings, pupils by UPN, the opted-out pupil's UPN, the DPO role)."""
    name = f"pupilshare_adhoc_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    url = with_database(admin_url, name)
    folder = tmp_path_factory.mktemp("adhoc")
    settings = Settings(database_url=url, data_dir=folder / "data")
    roles = project_roles(default_role_prefix(name))
    try:
        settings.ensure_folders()
        extract = build_census_extract(schools=3, pupils=150, seed=11)
        write_census_extract(extract, settings.inbox_dir / "census" / "autumn_2026")
        opted_out = extract.pupils[5]
        party = "pupil" if (OPT_OUT_DATE - opted_out.dob).days >= 16 * 365.25 else "parent"
        (settings.inbox_dir / "optouts").mkdir(parents=True)
        (settings.inbox_dir / "optouts" / "optouts_926_2026-10-20.csv").write_text(
            "upn,scope,action,requested_by,requested_on,channel\n"
            f"{opted_out.upn},all,opt_out,{party},{OPT_OUT_DATE.isoformat()},letter\n",
            encoding="utf-8",
        )
        assert ingest_inbox(settings).rows_loaded > 150
        _build_roll(url, folder)
        with psycopg.connect(url, autocommit=True) as conn:
            ensure_roles(conn, prefix=default_role_prefix(name))
        yield settings, {pupil.upn: pupil for pupil in extract.pupils}, opted_out.upn, roles.dpo
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            drop_roles(conn, roles)
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def _build_roll(url: str, folder) -> None:
    with pytest.MonkeyPatch.context() as patch:
        for key, value in DatabaseEndpoints(url, "", embedded=False).dbt_env().items():
            patch.setenv(key, value)
        result = dbtRunner().invoke(
            ["build", "--select", f"+{ADHOC.source_model}", "--exclude", "resource_type:unit_test",
             "--indirect-selection", "cautious",
             "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
             "--target-path", str(folder / "target"), "--log-path", str(folder / "logs"),
             "--vars", json.dumps({"feed_date": REQUEST_DATE.isoformat()})]
        )  # fmt: skip
    assert result.success, result.exception


def _written(settings: Settings) -> dict[str, object]:
    """Everything a request could write: its ledger rows, the ledger's deliveries and disclosures, staged and
    delivered files."""
    counts = {}
    with psycopg.connect(settings.database_url) as conn:
        for table in ("ledger.adhoc_requests", "ledger.deliveries", "ledger.disclosures", "ledger.gate_results"):
            exists = conn.execute("select to_regclass(%s) is not null", (table,)).fetchone()[0]
            counts[table] = (
                conn.execute(sql.SQL("select count(*) from {}").format(sql.SQL(table))).fetchone()[0] if exists else 0
            )
    files = sorted(str(path) for folder in (settings.outbox_dir, settings.staging_dir) for path in folder.rglob("*"))
    return {**counts, "files": files}


def _upns(pupils: dict, opted_out: str) -> list[str]:
    """Three named children: two others and the opted-out one (the first in lower case, as agencies write them)."""
    others = [upn for upn in sorted(pupils) if upn != opted_out][:2]
    return [others[0].lower(), opted_out, others[1]]


def test_adhoc_request__three_children_two_fields_delivered_recorded_and_in_the_sar(county):
    settings, pupils, opted_out, dpo = county
    named = _upns(pupils, opted_out)
    params = _request(named, ["forename", "date_of_birth"])

    request_id = record_request(params, request_date=REQUEST_DATE, run_id="manual__adhoc_1", settings=settings)
    staging = gate_request(request_id, run_id="manual__adhoc_1", settings=settings)
    delivered = deliver_request(staging, settings=settings)

    folder = settings.outbox_dir / "adhoc" / slug(AGENCY) / "NC-2026-0042"
    assert delivered["status"] == "delivered" and delivered["file"].startswith(str(folder))
    with open(delivered["file"], encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header, rows = next(reader), list(reader)
    assert header == ["forename", "date_of_birth"], "exactly the justified fields, no key, no UPN"
    expected = sorted([pupils[upn.upper()].forename, pupils[upn.upper()].dob.isoformat()] for upn in named)
    assert sorted(rows) == expected, "exactly the named children's values"
    manifest = json.loads(next(folder.glob("*.manifest.json")).read_text(encoding="utf-8"))
    assert (manifest["row_count"], manifest["columns"], manifest["legal_basis"]) == (3, header, LEGAL_BASIS)
    assert manifest["recipient"] == AGENCY and manifest["reference"] == "NC-2026-0042"

    with psycopg.connect(settings.database_url) as conn:
        ledger = conn.execute(
            """select disclosures.upn, disclosures.fields_sent, disclosures.legal_basis, deliveries.recipient_id
               from ledger.disclosures join ledger.deliveries using (delivery_id)
               where deliveries.delivery_id = %s""",
            (delivered["delivery_id"],),
        ).fetchall()
        request = read_request(conn, request_id)
    assert len(ledger) == 3
    assert sorted(row[0] for row in ledger) == sorted(upn.upper() for upn in named)
    assert {(tuple(row[1]), row[2], row[3]) for row in ledger} == {
        (("forename", "date_of_birth"), LEGAL_BASIS, f"adhoc:{AGENCY}")
    }
    assert request["upns"] == [upn.upper() for upn in named] and request["fields"] == ["forename", "date_of_birth"]
    assert list(request["opt_outs_in_force"]) == [opted_out], "the overridden opt-out is on record"
    assert set(request["opt_outs_in_force"][opted_out]) == {"yss", "post16", "sure_start"}

    with psycopg.connect(settings.database_url) as conn:
        act_as_dpo(conn, dpo)
        report = subject_access_report(conn, opted_out)
    (shown,) = [row for row in report.disclosures if row["recipient"] == f"adhoc:{AGENCY}"]
    assert shown["legal_basis"] == LEGAL_BASIS and shown["fields"] == ["forename", "date_of_birth"]
    assert shown["feed_date"] == REQUEST_DATE.isoformat()

    # the command line shows it too (as the login user acting as the DPO)
    result = CliRunner().invoke(app, ["sar", opted_out, "--database-url", settings.database_url])
    assert result.exit_code == 0, result.output
    assert f"adhoc:{AGENCY}" in [row["recipient"] for row in json.loads(result.stdout)["disclosures"]]

    # a retried task records and delivers nothing twice
    before = _written(settings)
    assert record_request(params, request_date=REQUEST_DATE, run_id="manual__adhoc_1", settings=settings) == request_id
    assert deliver_request(staging, settings=settings)["status"] == "already_delivered"
    assert _written(settings) == before


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"fields": ["forename", "ethnicity_code"]}, r"fields \['ethnicity_code'\] may not be shared"),
        ({"fields": ["forename", "forename"]}, r"positions \[2\] repeat"),
        ({"pupils": "unknown"}, r"positions \[2\] of the request are valid UPNs but not on the current roll"),
        ({"pupils": "bad_check_letter"}, r"positions \[1\] of the request are not valid UPNs"),
        ({"legal_basis": ""}, r"legal_basis"),
        ({"justification": "because"}, r"justification"),
    ],
    ids=["unjustified_field", "repeated_field", "unknown_upn", "invalid_upn", "no_legal_basis", "no_justification"],
)
def test_adhoc_request__refused_before_anything_is_written(county, change, message):
    settings, pupils, opted_out, _ = county
    named = _upns(pupils, opted_out)
    params = _request(named, ["forename", "surname"], reference=f"REFUSED-{uuid.uuid4().hex[:6]}")
    if change.get("pupils") == "unknown":
        change = {"pupils": [named[0], UNKNOWN_UPN]}
    elif change.get("pupils") == "bad_check_letter":
        wrong = ("B" if named[0][0].upper() != "B" else "C") + named[0][1:]
        change = {"pupils": [wrong, named[1]]}
    before = _written(settings)

    with pytest.raises(AdhocRequestError, match=message) as refused:
        record_request({**params, **change}, request_date=REQUEST_DATE, run_id="manual__refused", settings=settings)

    assert "nothing was recorded" in str(refused.value)
    for upn in [*named, UNKNOWN_UPN]:
        assert upn.upper() not in str(refused.value).upper(), "a refusal names positions, never a child's UPN"
    assert _written(settings) == before


def test_adhoc_request__a_reference_is_not_reused_for_another_request(county):
    settings, pupils, opted_out, _ = county
    named = _upns(pupils, opted_out)
    first = _request(named[:1], ["surname"], reference="NC-REUSED")
    record_request(first, request_date=REQUEST_DATE, run_id="manual__reuse", settings=settings)
    before = _written(settings)

    with pytest.raises(AdhocRequestError, match="already made request NC-REUSED with other content"):
        record_request(
            {**first, "fields": ["surname", "postcode"]}, request_date=REQUEST_DATE, run_id="x", settings=settings
        )
    assert _written(settings) == before


def test_adhoc_requests__the_ledger_table_is_append_only(county):
    settings, pupils, opted_out, _ = county
    record_request(
        _request(_upns(pupils, opted_out)[:1], ["surname"], reference="NC-APPEND"),
        request_date=REQUEST_DATE,
        run_id="manual__append",
        settings=settings,
    )
    with (
        psycopg.connect(settings.database_url) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"),
    ):
        conn.execute("update ledger.adhoc_requests set legal_basis = 'none' where reference = 'NC-APPEND'")


@pytest.mark.parametrize(
    ("tamper", "check"),
    [
        ("extra_column", "columns_match_request"),
        ("child_not_named", "pupil_named_in_request"),
        ("duplicate_row", "key_unique"),
        ("missing_child", "whole_request"),
    ],
)
def test_adhoc_gate__catches_an_extract_beyond_the_request(county, tmp_path, tamper, check):
    """The same GX machinery as every feed: an extract with a field, a child or a row the request does not cover
    fails the suite adhoc__feed on the check that guards it; the untampered extract passes."""
    settings, pupils, opted_out, _ = county
    named = [upn.upper() for upn in _upns(pupils, opted_out)]
    request = {
        "requesting_agency": AGENCY,
        "reference": "NC-GATE",
        "legal_basis": LEGAL_BASIS,
        "upns": named,
        "fields": ["forename", "postcode"],
        "request_date": REQUEST_DATE,
    }
    with psycopg.connect(settings.database_url) as conn:
        columns, rows = read_extract(conn, request, ADHOC)
        truth = build_adhoc_truth(read_current_roll(conn), named, REQUEST_DATE)
        other = next(upn for upn in sorted(pupils) if upn not in named)
    feed = pd.DataFrame.from_records(rows, columns=columns)
    recipient = adhoc_recipient(request)

    def gate(frame: pd.DataFrame):
        return run_feed_gate(
            frame, truth, recipient=recipient, feed_date=REQUEST_DATE, run_id=tamper, data_docs_dir=tmp_path
        )

    assert gate(feed).success, gate(feed).failures
    if tamper == "extra_column":
        feed = feed.assign(surname="Example")
    elif tamper == "child_not_named":
        feed = pd.concat([feed.iloc[1:], feed.iloc[:1].assign(ledger_upn=other)], ignore_index=True)
    elif tamper == "duplicate_row":
        feed = pd.concat([feed, feed.iloc[:1]], ignore_index=True)
    else:
        feed = feed.iloc[1:]
    result = gate(feed)
    assert not result.success
    assert any(failure.startswith(check) for failure in result.failures), result.failures


def test_adhoc_request__naming_an_opted_out_child_is_refused_when_the_policy_says_refuse(county, monkeypatch):
    settings, pupils, opted_out, _ = county
    monkeypatch.setattr("pupilshare.adhoc._adhoc_policy", lambda: ADHOC.model_copy(update={"opt_outs": "refuse"}))
    named = _upns(pupils, opted_out)
    before = _written(settings)

    with pytest.raises(AdhocRequestError, match=r"positions \[2\] have an opt-out in force"):
        record_request(
            _request(named, ["surname"], reference="NC-REFUSE"),
            request_date=REQUEST_DATE,
            run_id="x",
            settings=settings,
        )
    assert _written(settings) == before


def test_gate_request__a_bad_extract_fails_the_gate_is_recorded_and_nothing_is_staged(county):
    """A fan-out in the source model (a named child twice) reaches the real gate_request: it fails on key_unique,
    the verdict is recorded, nothing is staged, so there is nothing to deliver."""
    settings, pupils, opted_out, _ = county
    named = _upns(pupils, opted_out)
    request_id = record_request(
        _request(named, ["surname"], reference="NC-FANOUT"), request_date=REQUEST_DATE, run_id="x", settings=settings
    )
    source = sql.Identifier(ADHOC.source_schema, ADHOC.source_model)
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create table adhoc_saved as table {}").format(source))
        conn.execute(
            sql.SQL("insert into {} select * from {} where upn = %s").format(source, source), (named[1].upper(),)
        )
    before = _written(settings)
    try:
        with pytest.raises(GateFailedError) as failed:
            gate_request(request_id, run_id="manual__fanout", settings=settings)
    finally:
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("truncate {}; insert into {} select * from adhoc_saved").format(source, source))
            conn.execute("drop table adhoc_saved")
    assert any(failure.startswith("key_unique") for failure in failed.value.result.failures)
    with psycopg.connect(settings.database_url) as conn:
        recorded = conn.execute(
            "select success, failures::text from ledger.gate_results where run_id = 'manual__fanout'"
        ).fetchall()
    assert len(recorded) == 1 and recorded[0][0] is False and "key_unique" in recorded[0][1]
    after = _written(settings)
    assert after["files"] == before["files"], "nothing staged or delivered"
    assert after["ledger.deliveries"] == before["ledger.deliveries"]
    assert after["ledger.disclosures"] == before["ledger.disclosures"]
