"""Retraction notices after a late opt-out (issue 6): a generated county is loaded through the ingest, the YSS and
post-16 feeds are built by dbt, gated and delivered by the publish functions; then opt-out requests arrive through the
ingest, the models are rebuilt, and :func:`pupilshare.retraction.issue_retractions` delivers and records the notices.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import shutil
import uuid

import psycopg
import psycopg.errors
import pyrage
import pytest
from psycopg import sql

from pupilshare.access import default_role_prefix, drop_roles, ensure_roles, project_roles
from pupilshare.dates import age_in_years
from pupilshare.db import with_database
from pupilshare.files import sha256_file
from pupilshare.generate.census import build_census_extract, write_census_extract
from pupilshare.generate.returns import generate_all_returns
from pupilshare.ingest import ingest_inbox
from pupilshare.ledger import ensure_ledger_schema
from pupilshare.policy import load_policy
from pupilshare.publish import deliver_feed, gate_feed
from pupilshare.replay import build_recipient_models, replay_delivery
from pupilshare.retraction import RetractionError, RetractionWriteError, issue_retractions, pending_retractions
from pupilshare.sar import act_as_dpo, report_to_html, subject_access_report
from pupilshare.settings import Settings

pytestmark = pytest.mark.integration

FEED_DATE = dt.date(2026, 11, 30)
POLICY = load_policy()


@pytest.fixture(scope="module")
def county(tmp_path_factory, admin_url):
    """A loaded county with one YSS and one post-16 delivery: yields (settings, {upn: date of birth}, deliveries)."""
    name = f"pupilshare_scratch_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    url = with_database(admin_url, name)
    roles = project_roles(default_role_prefix(name))
    try:
        tmp = tmp_path_factory.mktemp("retraction")
        settings = Settings(database_url=url, data_dir=tmp / "data")
        settings.ensure_folders()
        extract = build_census_extract(schools=4, pupils=300, seed=3)
        write_census_extract(extract, tmp / "generated")
        shutil.copytree(tmp / "generated", settings.inbox_dir / "census" / "autumn_2026")
        generate_all_returns(extract, settings.inbox_dir, seed=3)
        assert ingest_inbox(settings).loaded
        deliveries = {recipient_id: _publish(settings, recipient_id) for recipient_id in ("yss", "post16")}
        yield settings, {pupil.upn: pupil.dob for pupil in extract.pupils}, deliveries
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            drop_roles(conn, roles)
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def _publish(settings: Settings, recipient_id: str) -> dict:
    _build(settings, recipient_id)
    staging = gate_feed(recipient_id, feed_date=FEED_DATE, run_id=f"run-{recipient_id}", settings=settings)
    result = deliver_feed(staging, settings=settings)
    assert result["status"] == "delivered"
    return result


def _build(settings: Settings, recipient_id: str) -> None:
    build_recipient_models(
        settings.database_url,
        POLICY.recipient(recipient_id),
        feed_date=FEED_DATE,
        persistence="persist",
        run_tests=True,
    )


def _opt_out_arrives(settings: Settings, upn: str, scope: str, by: str) -> None:
    """An opt-out request file through the ingest, dated on the feed date (after the delivery was made)."""
    folder = settings.inbox_dir / "optouts"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"optouts_926_late_{uuid.uuid4().hex[:6]}.csv"
    path.write_text(
        f"upn,scope,action,requested_by,requested_on,channel\n{upn},{scope},opt_out,{by},{FEED_DATE},letter\n",
        encoding="utf-8",
    )
    assert ingest_inbox(settings).loaded


def _disclosed(settings: Settings, recipient_id: str, field: str) -> list[tuple[str, list[str]]]:
    with psycopg.connect(settings.database_url) as conn:
        return conn.execute(
            """select upn, array_agg(distinct route) from ledger.disclosures
               where recipient_id = %s and %s = any(fields_sent) group by upn order by upn""",
            (recipient_id, field),
        ).fetchall()


def _retraction_rows(settings: Settings, recipient_id: str) -> list[tuple]:
    with psycopg.connect(settings.database_url) as conn:
        return conn.execute(
            """select upn, route, delivery_ids::text[], feed_dates, fields_sent, reason, file_name, file_sha256
               from ledger.retractions where recipient_id = %s order by upn, route""",
            (recipient_id,),
        ).fetchall()


def _notice_rows(path: str) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_retraction__a_late_yss_opt_out_by_a_parent_is_noticed_once_and_shown_in_subject_access(county):
    settings, dobs, deliveries = county
    delivered = deliveries["yss"]
    upn = next(upn for upn, _ in _disclosed(settings, "yss", "school_urn") if age_in_years(dobs[upn], FEED_DATE) == 14)
    assert issue_retractions("yss", feed_date=FEED_DATE, run_id="before", settings=settings)["status"] == (
        "nothing_to_retract"
    ), "no opt-out has arrived yet"

    _opt_out_arrives(settings, upn, "yss", "parent")
    _build(settings, "yss")
    result = issue_retractions("yss", feed_date=FEED_DATE, run_id="retract-1", settings=settings)

    assert result["status"] == "retracted" and len(result["notices"]) == 1
    notice = result["notices"][0]
    assert notice["route"] is None and notice["pupils"] == 1
    rows = _notice_rows(notice["file"])
    assert [row["upn"] for row in rows] == [upn]
    assert rows[0]["feed_date"] == FEED_DATE.isoformat() and rows[0]["file_sha256"] == delivered["sha256"]
    assert rows[0]["file_name"] == delivered["file_name"] and "school_urn" in rows[0]["fields_sent"].split(";")
    assert rows[0]["forename"] and rows[0]["date_of_birth"] == dobs[upn].isoformat()
    assert "opt_out by parent" in rows[0]["opt_out"]
    folder = settings.outbox_dir / "yss" / "retractions" / FEED_DATE.isoformat()
    manifest = json.loads(next(folder.glob("*.manifest.json")).read_text(encoding="utf-8"))
    for item in manifest["files"].values():
        assert sha256_file(folder / item["file_name"]) == item["sha256"]
    letter = (folder / manifest["files"]["letter"]["file_name"]).read_text(encoding="utf-8")
    assert "Please delete" in letter and manifest["retraction_id"] in letter and delivered["sha256"] in letter
    assert not list(folder.glob(".*partial"))

    recorded = _retraction_rows(settings, "yss")
    assert [(row[0], row[2], row[3]) for row in recorded] == [(upn, [delivered["delivery_id"]], [FEED_DATE])]
    assert recorded[0][7] == sha256_file(folder / recorded[0][6]) and "opt_out by parent" in recorded[0][5]

    again = issue_retractions("yss", feed_date=FEED_DATE, run_id="retract-2", settings=settings)
    assert again["status"] == "nothing_to_retract" and _retraction_rows(settings, "yss") == recorded
    assert len(list(folder.glob("*.csv"))) == 1

    report = _subject_access(settings, upn)
    assert [(item["recipient"], item["deliveries_retracted"], item["feed_dates"]) for item in report.retractions] == [
        ("yss", [delivered["delivery_id"]], [FEED_DATE.isoformat()])
    ]
    assert "Retractions" in report_to_html(report) and recorded[0][6] in report_to_html(report)


def _subject_access(settings: Settings, upn: str):
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        roles = ensure_roles(conn, prefix=default_role_prefix(conn.info.dbname))
    with psycopg.connect(settings.database_url) as conn:
        act_as_dpo(conn, roles.dpo)
        report = subject_access_report(conn, upn)
    with psycopg.connect(settings.database_url) as conn:
        conn.execute(sql.SQL("set role {}").format(sql.Identifier(roles.recipients["yss"])))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select count(*) from ledger.retractions")
    return report


def test_retraction__a_post16_exclusion_is_noticed_to_each_provider_and_fails_closed_first(county):
    settings, dobs, _ = county
    upn, routes = _disclosed(settings, "post16", "upn")[0]
    by = "pupil" if age_in_years(dobs[upn], FEED_DATE) >= 16 else "parent"
    _opt_out_arrives(settings, upn, "post16", by)
    _build(settings, "post16")
    blocked = settings.outbox_dir / "post16" / routes[0] / "retractions"
    blocked.parent.mkdir(parents=True, exist_ok=True)
    blocked.write_text("a file where the notices' folder should be", encoding="utf-8")

    with pytest.raises(RetractionWriteError, match="Nothing was delivered or recorded"):
        issue_retractions("post16", feed_date=FEED_DATE, run_id="blocked", settings=settings)
    assert _retraction_rows(settings, "post16") == []
    assert not [path for path in (settings.outbox_dir / "post16").rglob("retraction_*")]

    blocked.unlink()
    result = issue_retractions("post16", feed_date=FEED_DATE, run_id="retract-post16", settings=settings)
    assert result["status"] == "retracted"
    assert sorted(notice["route"] for notice in result["notices"]) == sorted(routes)
    for notice in result["notices"]:
        assert notice["file"].startswith(str(settings.outbox_dir / "post16" / notice["route"] / "retractions"))
        assert [row["upn"] for row in _notice_rows(notice["file"])] == [upn]
    recorded = _retraction_rows(settings, "post16")
    assert sorted((row[0], row[1]) for row in recorded) == sorted((upn, route) for route in routes)
    assert issue_retractions("post16", feed_date=FEED_DATE, run_id="again", settings=settings)["status"] == (
        "nothing_to_retract"
    )


def test_pending_retractions__refuses_when_the_opt_outs_are_not_built(scratch_db):
    with psycopg.connect(scratch_db) as conn:
        ensure_ledger_schema(conn)
        with pytest.raises(RetractionError, match="int_opt_outs_effective is not built"):
            pending_retractions(conn, POLICY.recipient("yss"))


def test_replay__a_routed_delivery_made_before_the_late_opt_out_is_reproduced(county):
    """Runs after the post-16 test above (module order): the opt-out is a later load batch than the delivery, and the
    live post-16 mart no longer holds the pupil; replaying the provider's file ignores that batch, so the pupil is still
    in it and the checksum is the ledger's."""
    settings, _, deliveries = county
    retracted = _retraction_rows(settings, "post16")
    assert retracted, "the post-16 retraction test ran first"
    delivery_id = retracted[0][2][0]
    (delivered,) = [item for item in deliveries["post16"]["deliveries"] if item["delivery_id"] == delivery_id]
    with psycopg.connect(settings.database_url) as conn:
        assert (
            conn.execute(
                "select count(*) from post16.post16_feed where ledger_upn = %s", (retracted[0][0],)
            ).fetchone()[0]
            == 0
        )
    result = replay_delivery(delivery_id, settings=settings)
    assert result.match, result.to_dict()
    assert result.route == delivered["route"] and result.actual_sha256 == delivered["sha256"]


def test_retraction__an_sftp_recipient_gets_its_notice_on_its_server_encrypted_and_all_or_nothing(
    county, sftp_server, monkeypatch, delivery_policy
):
    """A notice takes the route of the feeds it retracts: YSS delivered by SFTP with age encryption receives its notice
    on its server, encrypted, and nothing in the local outbox. A refused upload delivers and records nothing."""
    settings, dobs, _ = county
    (sftp_server.root / "inbound").mkdir()
    monkeypatch.setenv("AIRFLOW_CONN_PUPILSHARE_SFTP_YSS", sftp_server.connection())
    identity = pyrage.x25519.Identity.generate()
    delivery_policy(
        "yss", target="sftp", sftp={"base_path": "/inbound"}, encryption={"recipients": [str(identity.to_public())]}
    )
    recorded_before = _retraction_rows(settings, "yss")
    upn = next(
        upn for upn, _ in _disclosed(settings, "yss", "school_urn") if upn not in {row[0] for row in recorded_before}
    )
    _opt_out_arrives(settings, upn, "yss", "pupil" if age_in_years(dobs[upn], FEED_DATE) >= 16 else "parent")
    _build(settings, "yss")
    outbox_before = sorted(settings.outbox_dir.rglob("*"))

    sftp_server.refuse_writes = ".txt"  # the letter's upload is refused after the CSV went up
    with pytest.raises(RetractionWriteError, match="Nothing was delivered or recorded"):
        issue_retractions("yss", feed_date=FEED_DATE, run_id="sftp-refused", settings=settings)
    assert _retraction_rows(settings, "yss") == recorded_before
    assert sftp_server.files() == {}, "what the attempt uploaded is removed"
    assert any("retraction_yss" in name for name in sftp_server.opened), "the attempt did reach the server"

    sftp_server.refuse_writes = None
    result = issue_retractions("yss", feed_date=FEED_DATE, run_id="sftp-retract", settings=settings)

    assert result["status"] == "retracted" and len(result["notices"]) == 1
    notice = result["notices"][0]
    stem = notice["file_name"].removesuffix(".csv")
    folder = f"inbound/yss/retractions/{FEED_DATE}"
    files = sftp_server.files()
    assert sorted(files) == sorted(f"{folder}/{stem}{suffix}" for suffix in (".csv.age", ".txt.age", ".manifest.json"))
    assert notice["file"] == f"sftp://pupilshare@127.0.0.1:{sftp_server.port}/{folder}/{stem}.csv.age"
    plain_csv = pyrage.decrypt(files[f"{folder}/{stem}.csv.age"], [identity])
    assert upn.encode() not in files[f"{folder}/{stem}.csv.age"] and upn.encode() in plain_csv
    letter = pyrage.decrypt(files[f"{folder}/{stem}.txt.age"], [identity]).decode()
    manifest = json.loads(files[f"{folder}/{stem}.manifest.json"])
    assert manifest["retraction_id"] in letter and "Please delete" in letter
    assert manifest["files"]["csv"]["sha256"] == hashlib.sha256(plain_csv).hexdigest() == notice["file_sha256"]
    assert (
        manifest["encryption"]["files"]["letter"]["sha256"]
        == hashlib.sha256(files[f"{folder}/{stem}.txt.age"]).hexdigest()
    )
    rows = list(csv.DictReader(io.StringIO(plain_csv.decode())))
    assert [row["upn"] for row in rows] == [upn]
    new_rows = [row for row in _retraction_rows(settings, "yss") if row not in recorded_before]
    assert [(row[0], row[6], row[7]) for row in new_rows] == [(upn, notice["file_name"], notice["file_sha256"])]
    with psycopg.connect(settings.database_url) as conn:
        (target,) = conn.execute(
            "select distinct target from ledger.retractions where retraction_id = %s", (manifest["retraction_id"],)
        ).fetchone()
    assert target == f"sftp://pupilshare@127.0.0.1:{sftp_server.port}/{folder}"
    assert sorted(settings.outbox_dir.rglob("*")) == outbox_before, "nothing was left in the local outbox"
