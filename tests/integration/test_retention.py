"""Retention: the clock moves (an ``as_of`` date) and each kind of data leaves on the day its period ends, recorded.

Data comes from the generator through the real ingest; deliveries through the real ledger functions.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import uuid
from pathlib import Path

import psycopg
import pytest

from pupilshare.files import slug
from pupilshare.generate.census import build_census_extract, write_census_extract
from pupilshare.generate.returns import generate_all_returns
from pupilshare.ingest import ingest_inbox
from pupilshare.ledger import LedgerRow, ensure_ledger_schema, record_delivery, record_gate_result
from pupilshare.policy import load_policy
from pupilshare.retention import (
    PSEUDONYM_PREFIX,
    UnknownDeliveryError,
    clear_delivered_files,
    confirm_delivery,
    expired_batches,
    load_retention_policy,
    purge_ncmp_identities,
    purge_raw_returns,
)
from pupilshare.settings import Settings

pytestmark = pytest.mark.integration

POLICY = load_retention_policy()
TODAY = dt.date.today()


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("retention")
    extract = build_census_extract(schools=3, pupils=300, seed=9)
    write_census_extract(extract, root / "inbox" / "census" / "autumn_2026")
    generate_all_returns(extract, root / "inbox", seed=9)
    return root / "inbox"


@pytest.fixture
def loaded(tmp_path: Path, scratch_db: str, generated: Path) -> Settings:
    settings = Settings(database_url=scratch_db, data_dir=tmp_path / "data", pseudonymisation_key="test-key")
    settings.ensure_folders()
    shutil.copytree(generated, settings.inbox_dir, dirs_exist_ok=True)
    summary = ingest_inbox(settings)
    assert summary.loaded and not summary.quarantined
    return settings


def _query(settings: Settings, statement: str, *args) -> list[tuple]:
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        return conn.execute(statement, args).fetchall()


def _purges(settings: Settings, rule: str) -> list[tuple]:
    return _query(settings, "select subject, rows_affected, detail from ledger.retention_purges where rule = %s", rule)


# --- NCMP -------------------------------------------------------------------------------------------------------------


def test_purge_ncmp_identities__names_go_on_the_day_after_the_period_measurements_stay(loaded):
    settings = loaded
    measured = _query(
        settings,
        "select upn, forename, height_cm, weight_kg, measurement_date from raw.ncmp_measurements "
        "where measurement_date <> '' order by upn",
    )
    assert measured, "the generator wrote measured children"
    latest = max(dt.date.fromisoformat(row[4]) for row in measured)
    last_day_kept = latest + dt.timedelta(days=POLICY.ncmp.identity_days)
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        first = purge_ncmp_identities(conn, as_of=last_day_kept, run_id="r1", policy=POLICY, settings=settings)
        kept = conn.execute(
            "select count(*) from raw.ncmp_measurements where measurement_date = %s and forename is not null",
            (latest.isoformat(),),
        ).fetchone()[0]
        assert kept > 0, "the newest measurements keep their names on the last day of the period"
        # unmeasured children count from the day their return was loaded (today)
        everything_due = max(latest, TODAY) + dt.timedelta(days=POLICY.ncmp.identity_days + 1)
        second = purge_ncmp_identities(conn, as_of=everything_due, run_id="r2", policy=POLICY, settings=settings)
        after = conn.execute(
            "select upn, forename, surname, height_cm, weight_kg, date_of_birth from raw.ncmp_measurements"
        ).fetchall()
        again = purge_ncmp_identities(
            conn, as_of=everything_due + dt.timedelta(days=30), run_id="r3", policy=POLICY, settings=settings
        )
    changed = first + second
    total = _query(settings, "select count(*) from raw.ncmp_measurements")[0][0]
    assert changed == total == len(after), "every row was pseudonymised, none removed"
    assert again == 0, "a second pass changes nothing"
    assert all(row[1] is None and row[2] is None for row in after), "no names remain"
    assert all(row[0].startswith(PSEUDONYM_PREFIX) for row in after)
    assert all(row[5] is None or row[5].endswith("-01") for row in after), "dates of birth coarsened to the month"
    expected = {
        PSEUDONYM_PREFIX + hashlib.sha256(("test-key" + upn).encode()).hexdigest()[:24]: (height, weight)
        for upn, _, height, weight, _ in measured
    }
    assert {row[0]: (row[3], row[4]) for row in after if row[3]} == expected, "measurements stay, keyed pseudonyms"
    purges = _purges(settings, "ncmp_identity")
    assert sum(rows for _, rows, _ in purges) == total
    assert all(UPN_FREE(detail) for _, _, detail in purges), "no purge record names a pupil"


def UPN_FREE(detail: dict) -> bool:  # noqa: N802 - reads as a predicate in the assertion
    return not any(isinstance(value, str) and len(value) == 13 and value[1:12].isdigit() for value in detail.values())


# --- raw returns ------------------------------------------------------------------------------------------------------


def _resubmit_census(settings: Settings, generated: Path) -> None:
    """The same extract again with one changed value: a correction that supersedes every school's return."""
    target = settings.inbox_dir / "census" / "autumn_2026_corrected"
    shutil.copytree(generated / "census" / "autumn_2026", target)
    pupils = target / "pupilonroll.csv"
    lines = pupils.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[1] = lines[1].replace(",M,", ",F,", 1) if ",M," in lines[1] else lines[1].replace(",F,", ",M,", 1)
    pupils.write_text("".join(lines), encoding="utf-8")
    assert ingest_inbox(settings).loaded


def test_purge_raw_returns__superseded_then_expired_batches_go_with_every_row(loaded, generated):
    settings = loaded
    _resubmit_census(settings, generated)
    batches = dict(_query(settings, "select load_batch_id, status from raw.load_batches where return_type = 'census'"))
    first, second = sorted(batches)
    assert batches == {first: "superseded", second: "loaded"}
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        assert (
            purge_raw_returns(
                conn, as_of=TODAY + dt.timedelta(days=POLICY.raw_returns.superseded_days), run_id="r", settings=settings
            )
            == []
        ), "a superseded batch stays until its period is over"
        removed = purge_raw_returns(
            conn, as_of=TODAY + dt.timedelta(days=POLICY.raw_returns.superseded_days + 1), run_id="r", settings=settings
        )
    assert removed == [first]
    for table in ("census_pupilonroll", "census_school_returns", "validation_findings"):
        column = "load_batch_id" if table in ("census_school_returns", "validation_findings") else "_load_batch_id"
        assert _query(settings, f"select count(*) from raw.{table} where {column} = %s", first)[0][0] == 0, table
    assert _query(settings, "select distinct load_batch_id from raw.current_census_returns") == [(second,)]
    assert _query(settings, "select count(*) > 0 from raw.census_pupilonroll where _load_batch_id = %s", second)[0][0]
    (subject, rows, detail), *_ = _purges(settings, "raw_batch")
    assert subject == f"raw.load_batches {first}" and rows == sum(detail["rows"].values()) > 0

    archived = [path for path in settings.archive_dir.rglob("*") if path.parent.parent == settings.archive_dir]
    assert archived, "loaded returns were archived"
    last_day = TODAY + dt.timedelta(days=POLICY.raw_returns.days_for("census"))
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        purge_raw_returns(conn, as_of=last_day, run_id="r", settings=settings)
        assert conn.execute("select count(*) from raw.load_batches where return_type = 'census'").fetchone()[0] == 1
        purge_raw_returns(conn, as_of=TODAY + dt.timedelta(days=3000), run_id="r", settings=settings)
        left = conn.execute("select count(*) from raw.load_batches").fetchone()[0]
        pupils = conn.execute("select count(*) from raw.census_pupilonroll").fetchone()[0]
        ncmp = conn.execute("select count(*) from raw.ncmp_measurements").fetchone()[0]
    assert (left, pupils, ncmp) == (0, 0, 0), "every return past its period is gone"
    assert not [path for path in settings.archive_dir.rglob("*") if path.is_file()], "archived files gone too"
    assert len(_purges(settings, "archived_file")) == len(archived)


def test_expired_batches__an_expired_batch_takes_every_older_one_with_it(loaded):
    """Oldest first: if a newer batch expires (it was loaded earlier by the clock), the older one goes too, so an
    older superseded return can never become current again."""
    settings = loaded
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        ids = [row[0] for row in conn.execute("select load_batch_id from raw.load_batches order by 1").fetchall()]
        newest_census = conn.execute(
            "select max(load_batch_id) from raw.load_batches where return_type = 'census'"
        ).fetchone()[0]
        conn.execute(
            "update raw.load_batches set loaded_at = now() - interval '5000 days' where load_batch_id = %s",
            (newest_census,),
        )
        expired = dict(expired_batches(conn, as_of=TODAY, policy=POLICY))
    assert expired == {newest_census: "census"}
    assert ids[0] <= newest_census


# --- delivered files --------------------------------------------------------------------------------------------------


def _deliver(
    settings: Settings,
    feed_date: dt.date,
    recipient_id: str = "yss",
    route: str | None = None,
    folder: Path | None = None,
    file_name: str | None = None,
) -> tuple[str, list[Path]]:
    """Write a feed and its manifest into the outbox (``folder``, by default ``outbox/<recipient>/<feed date>``) and
    record the delivery with the ledger's own functions."""
    folder = folder or settings.outbox_dir / recipient_id / feed_date.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    file_name = file_name or f"{recipient_id}_{feed_date}.csv"
    files = [folder / file_name, folder / Path(file_name).with_suffix(".manifest.json").name]
    for path in files:
        path.write_text("forename\nAda\n", encoding="utf-8")
    delivery_id = str(uuid.uuid4())
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        ensure_ledger_schema(conn)
        gate = f"gate-{delivery_id}"
        record_gate_result(
            conn,
            gate_result_id=gate,
            recipient_id=recipient_id.split(":")[0],
            suite_name=f"{recipient_id.split(':')[0]}__feed",
            feed_date=feed_date,
            run_id="r",
            success=True,
            evaluated_rows=1,
            failures=[],
            data_docs_index=None,
        )
        with conn.transaction():
            record_delivery(
                conn,
                delivery={
                    "delivery_id": delivery_id,
                    "delivery_key": f"{recipient_id}|{feed_date}|{delivery_id}",
                    "recipient_id": recipient_id,
                    "feed_date": feed_date,
                    "file_name": files[0].name,
                    "file_sha256": "0" * 64,
                    "row_count": 1,
                    "target": str(folder),
                    "legal_basis": "s.68(1)",
                    "run_id": "r",
                    "policy_version": "test",
                    "gate_result_id": gate,
                    "route": route,
                },
                rows=[LedgerRow("A123456789012", ("forename",))],
            )
    return delivery_id, files


def test_clear_delivered_files__after_confirmation_and_grace_or_at_retention_if_unconfirmed(tmp_path, scratch_db):
    settings = Settings(database_url=scratch_db, data_dir=tmp_path / "data")
    settings.ensure_folders()
    confirmed_id, confirmed_files = _deliver(settings, dt.date(2026, 11, 30))
    unconfirmed_id, unconfirmed_files = _deliver(settings, dt.date(2026, 12, 7))
    grace = POLICY.delivered_files.grace_days_after_confirmation
    retention_days = load_policy().recipient("yss").retention_days
    with psycopg.connect(scratch_db, autocommit=True) as conn:
        with pytest.raises(UnknownDeliveryError):
            confirm_delivery(conn, str(uuid.uuid4()), confirmed_by="YSS data team")
        confirm_delivery(
            conn,
            confirmed_id,
            confirmed_by="YSS data team",
            confirmed_at=dt.datetime.combine(TODAY, dt.time(9), tzinfo=dt.UTC),
        )
        assert clear_delivered_files(conn, as_of=TODAY + dt.timedelta(days=grace), run_id="r", settings=settings) == []
        assert all(path.exists() for path in confirmed_files + unconfirmed_files)
        cleared = clear_delivered_files(conn, as_of=TODAY + dt.timedelta(days=grace + 1), run_id="r", settings=settings)
        assert cleared == [confirmed_id]
        assert not any(path.exists() for path in confirmed_files)
        assert all(path.exists() for path in unconfirmed_files), "unconfirmed: kept until the recipient's retention"
        assert not (settings.outbox_dir / "yss" / "2026-11-30").exists(), "its empty folder went too"
        on_last_day = TODAY + dt.timedelta(days=retention_days)
        assert clear_delivered_files(conn, as_of=on_last_day, run_id="r", settings=settings) == []
        later = on_last_day + dt.timedelta(days=1)
        assert clear_delivered_files(conn, as_of=later, run_id="r", settings=settings) == [unconfirmed_id]
        assert clear_delivered_files(conn, as_of=later, run_id="r", settings=settings) == [], "each cleared once"
        assert conn.execute("select count(*) from ledger.deliveries").fetchone()[0] == 2, "the ledger keeps both"
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute("delete from ledger.retention_purges")
    assert not any(path.exists() for path in unconfirmed_files)
    reasons = {subject: detail["reason"] for subject, _, detail in _purges(settings, "delivered_file")}
    assert reasons == {confirmed_id: "confirmed", unconfirmed_id: "unconfirmed_beyond_retention"}


def test_clear_delivered_files__routed_recipients_per_route_copies_go_on_the_same_rule(tmp_path, scratch_db):
    """post16 and sure_start deliver one file per provider or centre into ``outbox/<recipient>/<route>/<feed date>``:
    each goes after confirmation and grace, or at the recipient's retention if never confirmed, like any feed."""
    settings = Settings(database_url=scratch_db, data_dir=tmp_path / "data")
    settings.ensure_folders()
    feed_date = dt.date(2026, 11, 30)

    def routed(recipient_id: str, route: str) -> tuple[str, list[Path]]:
        folder = settings.outbox_dir / recipient_id / slug(route) / feed_date.isoformat()  # as publish writes it
        name = f"{recipient_id}_{slug(route)}_{feed_date}.csv"
        return _deliver(settings, feed_date, recipient_id, route=route, folder=folder, file_name=name)

    confirmed_id, confirmed_files = routed("post16", "10000000")
    post16_id, post16_files = routed("post16", "10000001")
    centre_id, centre_files = routed("sure_start", "Acle Children's Centre")
    grace = POLICY.delivered_files.grace_days_after_confirmation
    last_day = TODAY + dt.timedelta(days=load_policy().recipient("post16").retention_days)
    assert load_policy().recipient("sure_start").retention_days == load_policy().recipient("post16").retention_days
    with psycopg.connect(scratch_db, autocommit=True) as conn:
        confirm_delivery(conn, confirmed_id, confirmed_by="Provider 10000000", confirmed_at=_nine_today())
        assert clear_delivered_files(conn, as_of=TODAY + dt.timedelta(days=grace), run_id="r", settings=settings) == []
        cleared = clear_delivered_files(conn, as_of=TODAY + dt.timedelta(days=grace + 1), run_id="r", settings=settings)
        assert cleared == [confirmed_id]
        assert not any(path.exists() for path in confirmed_files)
        assert not (settings.outbox_dir / "post16" / "10000000").exists(), "its emptied route folder went too"
        assert all(path.exists() for path in post16_files + centre_files), "unconfirmed: kept until retention"
        assert clear_delivered_files(conn, as_of=last_day, run_id="r", settings=settings) == []
        later = last_day + dt.timedelta(days=1)
        assert sorted(clear_delivered_files(conn, as_of=later, run_id="r", settings=settings)) == sorted(
            [post16_id, centre_id]
        )
    assert not any(path.exists() for path in post16_files + centre_files)
    assert os.listdir(settings.outbox_dir) == []
    purges = {
        subject: (detail["reason"], detail["files"]) for subject, _, detail in _purges(settings, "delivered_file")
    }
    assert purges == {
        delivery_id: (reason, [str(path.relative_to(settings.data_dir)) for path in files])
        for delivery_id, reason, files in (
            (confirmed_id, "confirmed", confirmed_files),
            (post16_id, "unconfirmed_beyond_retention", post16_files),
            (centre_id, "unconfirmed_beyond_retention", centre_files),
        )
    }, "each purge names the files it removed"


def test_clear_delivered_files__an_adhoc_extract_goes_at_the_adhoc_retention_or_after_confirmation(
    tmp_path, scratch_db
):
    """An ad-hoc extract is in ``outbox/adhoc/<agency>/<reference>/`` (recipient ``adhoc:<agency>``, route = the
    reference); never confirmed, it goes at ``adhoc.retention_days``."""
    settings = Settings(database_url=scratch_db, data_dir=tmp_path / "data")
    settings.ensure_folders()
    request_date = dt.date(2026, 12, 1)

    def extract(agency: str, reference: str) -> tuple[str, list[Path]]:
        folder = settings.outbox_dir / "adhoc" / slug(agency) / reference  # as adhoc._deliver writes it
        name = f"adhoc_{reference}_{request_date}.csv"
        return _deliver(settings, request_date, f"adhoc:{agency}", route=reference, folder=folder, file_name=name)

    confirmed_id, confirmed_files = extract("Norfolk Constabulary", "NC-2026-0042")
    unconfirmed_id, unconfirmed_files = extract("Norfolk Constabulary", "NC-2026-0043")
    grace = POLICY.delivered_files.grace_days_after_confirmation
    last_day = TODAY + dt.timedelta(days=load_policy().adhoc.retention_days)
    with psycopg.connect(scratch_db, autocommit=True) as conn:
        confirm_delivery(conn, confirmed_id, confirmed_by="Norfolk MASH", confirmed_at=_nine_today())
        assert clear_delivered_files(conn, as_of=TODAY + dt.timedelta(days=grace), run_id="r", settings=settings) == []
        assert all(path.exists() for path in confirmed_files + unconfirmed_files)
        cleared = clear_delivered_files(conn, as_of=TODAY + dt.timedelta(days=grace + 1), run_id="r", settings=settings)
        assert cleared == [confirmed_id] and not any(path.exists() for path in confirmed_files)
        assert clear_delivered_files(conn, as_of=last_day, run_id="r", settings=settings) == []
        assert all(path.exists() for path in unconfirmed_files), "kept to the last day of adhoc.retention_days"
        assert clear_delivered_files(conn, as_of=last_day + dt.timedelta(days=1), run_id="r", settings=settings) == [
            unconfirmed_id
        ]
    assert not any(path.exists() for path in unconfirmed_files) and os.listdir(settings.outbox_dir) == []
    reasons = {subject: detail["reason"] for subject, _, detail in _purges(settings, "delivered_file")}
    assert reasons == {confirmed_id: "confirmed", unconfirmed_id: "unconfirmed_beyond_retention"}


def _issue_notice(settings: Settings, recipient_id: str, route: str | None, *, encrypted: bool) -> tuple[str, list]:
    """A retraction notice as :mod:`pupilshare.retraction` leaves it: CSV and letter (``.age`` when encrypted) and a
    manifest in ``outbox/<recipient>/[<route>/]retractions/<feed date>/``, and its ``ledger.retractions`` rows."""
    feed_date = dt.date(2026, 12, 7)
    retraction_id = str(uuid.uuid4())
    folder = settings.outbox_dir / recipient_id
    folder = (folder / route if route else folder) / "retractions" / feed_date.isoformat()
    folder.mkdir(parents=True)
    stem = "_".join(part for part in ("retraction", recipient_id, route, str(feed_date), retraction_id[:8]) if part)
    suffix = ".age" if encrypted else ""
    files = [folder / f"{stem}.csv{suffix}", folder / f"{stem}.txt{suffix}", folder / f"{stem}.manifest.json"]
    for path in files:
        path.write_text("upn\nA123456789012\n", encoding="utf-8")
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        ensure_ledger_schema(conn)
        for upn in ("A123456789012", "B123456789013"):  # one row per pupil of the notice
            conn.execute(
                """insert into ledger.retractions
                       (retraction_id, recipient_id, route, upn, delivery_ids, feed_dates, fields_sent, reason,
                        file_name, file_sha256, target, run_id, policy_version)
                   values (%s, %s, %s, %s, %s::uuid[], %s, %s, 'opted out', %s, %s, %s, 'r', 'test')""",
                (retraction_id, recipient_id, route, upn, [str(uuid.uuid4())], [dt.date(2026, 11, 30)], ["upn"],
                 f"{stem}.csv", "0" * 64, str(folder)),
            )  # fmt: skip
    return retraction_id, files


def test_clear_delivered_files__retraction_notices_go_on_the_same_rule_as_delivered_files(tmp_path, scratch_db):
    from pupilshare.retention import confirm_retraction

    settings = Settings(database_url=scratch_db, data_dir=tmp_path / "data")
    settings.ensure_folders()
    confirmed_id, confirmed_files = _issue_notice(settings, "yss", None, encrypted=False)
    unconfirmed_id, unconfirmed_files = _issue_notice(settings, "post16", "10000000", encrypted=True)
    grace = POLICY.delivered_files.grace_days_after_confirmation
    last_day = TODAY + dt.timedelta(days=load_policy().recipient("post16").retention_days)
    with psycopg.connect(scratch_db, autocommit=True) as conn:
        with pytest.raises(UnknownDeliveryError):
            confirm_retraction(conn, str(uuid.uuid4()), confirmed_by="YSS data team")
        confirm_retraction(conn, confirmed_id, confirmed_by="YSS data team", confirmed_at=_nine_today())
        clear_delivered_files(conn, as_of=TODAY + dt.timedelta(days=grace), run_id="r", settings=settings)
        assert all(path.exists() for path in confirmed_files + unconfirmed_files), "nothing due yet"
        clear_delivered_files(conn, as_of=TODAY + dt.timedelta(days=grace + 1), run_id="r", settings=settings)
        assert not any(path.exists() for path in confirmed_files)
        assert not (settings.outbox_dir / "yss").exists(), "its emptied folders went too"
        clear_delivered_files(conn, as_of=last_day, run_id="r", settings=settings)
        assert all(path.exists() for path in unconfirmed_files), "unconfirmed: kept until the recipient's retention"
        clear_delivered_files(conn, as_of=last_day + dt.timedelta(days=1), run_id="r", settings=settings)
        clear_delivered_files(conn, as_of=last_day + dt.timedelta(days=2), run_id="r", settings=settings)
        assert conn.execute("select count(*) from ledger.retractions").fetchone()[0] == 4, "the ledger keeps them"
    assert not any(path.exists() for path in unconfirmed_files) and os.listdir(settings.outbox_dir) == []
    purges = {
        subject: (detail["reason"], detail["files"]) for subject, _, detail in _purges(settings, "retraction_notice")
    }
    assert purges == {
        confirmed_id: ("confirmed", [str(path.relative_to(settings.data_dir)) for path in confirmed_files]),
        unconfirmed_id: (
            "unconfirmed_beyond_retention",
            [str(path.relative_to(settings.data_dir)) for path in unconfirmed_files],
        ),
    }, "one purge per notice (not per pupil row), each once, naming its files"


def _nine_today() -> dt.datetime:
    return dt.datetime.combine(TODAY, dt.time(9), tzinfo=dt.UTC)


def test_clear_delivered_files__staged_working_copies_go_after_their_period(tmp_path, scratch_db):
    settings = Settings(database_url=scratch_db, data_dir=tmp_path / "data")
    settings.ensure_folders()
    staged = settings.staging_dir / "yss" / "2026-11-30" / "run_1" / "yss_2026-11-30.csv"
    staged.parent.mkdir(parents=True)
    staged.write_text("forename\nAda\n", encoding="utf-8")
    days = POLICY.delivered_files.staging_days
    with psycopg.connect(scratch_db, autocommit=True) as conn:
        clear_delivered_files(conn, as_of=TODAY + dt.timedelta(days=days), run_id="r", settings=settings)
        assert staged.exists()
        clear_delivered_files(conn, as_of=TODAY + dt.timedelta(days=days + 1), run_id="r", settings=settings)
    assert not staged.exists() and not (settings.staging_dir / "yss").exists()
    assert [subject for subject, _, _ in _purges(settings, "staged_file")] == [
        str(staged.relative_to(settings.data_dir))
    ]
    assert os.listdir(settings.staging_dir) == []
