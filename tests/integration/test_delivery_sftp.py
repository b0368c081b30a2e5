"""Delivery to a recipient's SFTP server: a real server (asyncssh) on loopback, chrooted to a temporary folder, with a
generated host key and client key, reached through the Airflow SFTP provider and an Airflow connection from the
environment. Nothing of the SFTP layer is mocked: the outages are the server stopped, refusing a write, or dropping
its connections.

Acceptance (issue 6): an SFTP outage retries then alerts with nothing lost; each attempt delivers all or nothing and
records nothing on failure; a rerun delivers nothing twice.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
from pathlib import Path
from types import SimpleNamespace

import psycopg
import pytest

from pupilshare.airflow.callbacks import alert_on_failure, alert_on_retry
from pupilshare.files import sha256_file
from pupilshare.publish import DeliveryWriteError, deliver_feed
from pupilshare.settings import Settings

pytestmark = pytest.mark.integration

FEED_DATE = dt.date(2026, 11, 30)
BASE = "/inbound"


@pytest.fixture
def settings(tmp_path, scratch_db) -> Settings:
    # one connection attempt per delivery attempt: the outage tests drive the attempts themselves
    settings = Settings(
        database_url=scratch_db,
        data_dir=tmp_path / "data",
        sftp_connect_attempts=1,
        sftp_connect_timeout_seconds=5,
    )
    settings.ensure_folders()
    return settings


@pytest.fixture
def sftp_yss(sftp_server, monkeypatch, delivery_policy):
    """YSS delivered by SFTP to ``/inbound`` on the test server, its connection supplied by the environment."""
    (sftp_server.root / BASE.strip("/")).mkdir()
    monkeypatch.setenv("AIRFLOW_CONN_PUPILSHARE_SFTP_YSS", sftp_server.connection())
    delivery_policy("yss", target="sftp", sftp={"base_path": BASE})
    return sftp_server


@pytest.fixture
def sftp_post16(sftp_server, monkeypatch, delivery_policy):
    """The post-16 providers' sets delivered by SFTP to ``/inbound`` on the test server (one folder per provider)."""
    (sftp_server.root / BASE.strip("/")).mkdir()
    monkeypatch.setenv("AIRFLOW_CONN_PUPILSHARE_SFTP_POST16", sftp_server.connection())
    delivery_policy("post16", target="sftp", sftp={"base_path": BASE})
    return sftp_server


def _ledger(url: str) -> tuple[int, int]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "select (select count(*) from ledger.deliveries), (select count(*) from ledger.disclosures)"
        ).fetchone()


def _ledger_deliveries(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "select file_name, file_sha256, target, route from ledger.deliveries order by route nulls first"
        ).fetchall()


def _writes(server) -> list[str]:
    """Every file the server was asked to open (for reading or writing) so far."""
    return list(server.opened)


def test_deliver_feed__sftp__feed_and_manifest_land_as_in_the_outbox_recorded_once(
    settings, sftp_yss, stage_synthetic_feed
):
    staging = Path(stage_synthetic_feed(settings, rows=40, feed_date=FEED_DATE))

    delivered = deliver_feed(staging, settings=settings)

    folder = f"inbound/yss/{FEED_DATE}"
    feed, manifest_name = f"{folder}/yss_{FEED_DATE}.csv", f"{folder}/yss_{FEED_DATE}.manifest.json"
    files = sftp_yss.files()
    assert sorted(files) == [feed, manifest_name], "the feed and its manifest, no temporary file left"
    assert files[feed] == (staging / f"yss_{FEED_DATE}.csv").read_bytes()
    assert sftp_yss.renamed == [f"/{feed}", f"/{manifest_name}"], "renamed into place, the manifest last"
    manifest = json.loads(files[manifest_name])
    assert manifest["sha256"] == sha256_file(staging / f"yss_{FEED_DATE}.csv") and manifest["row_count"] == 40
    assert "encryption" not in manifest
    server = f"pupilshare@127.0.0.1:{sftp_yss.port}"
    assert delivered["status"] == "delivered" and delivered["file"] == f"sftp://{server}/{feed}"
    assert _ledger(settings.database_url) == (1, 40)
    assert _ledger_deliveries(settings.database_url) == [
        (f"yss_{FEED_DATE}.csv", manifest["sha256"], f"sftp://{server}/{folder}", None)
    ]
    assert not list(settings.outbox_dir.rglob("*")), "nothing went to the outbox folder"

    before = _writes(sftp_yss)
    again = deliver_feed(staging, settings=settings)
    assert again["status"] == "already_delivered"
    assert _writes(sftp_yss) == before, "the rerun did not even open a file on the server"
    assert _ledger(settings.database_url) == (1, 40) and sftp_yss.files() == files


def test_deliver_feed__sftp_routed__one_folder_per_route_all_recorded(settings, sftp_post16, stage_synthetic_feed):
    staging = Path(stage_synthetic_feed(settings, rows=30, feed_date=FEED_DATE, recipient_id="post16"))

    delivered = deliver_feed(staging, settings=settings)

    assert delivered["status"] == "delivered" and len(delivered["deliveries"]) == 2
    expected = []
    for route in ("10000000", "10000001"):
        name = f"post16_{route}_{FEED_DATE}"
        expected += [
            f"inbound/post16/{route}/{FEED_DATE}/{name}.csv",
            f"inbound/post16/{route}/{FEED_DATE}/{name}.manifest.json",
        ]
    files = sftp_post16.files()
    assert sorted(files) == sorted(expected)
    for route in ("10000000", "10000001"):
        name = f"post16_{route}_{FEED_DATE}.csv"
        assert files[f"inbound/post16/{route}/{FEED_DATE}/{name}"] == (staging / name).read_bytes()
    assert _ledger(settings.database_url) == (2, 30)
    assert [row[3] for row in _ledger_deliveries(settings.database_url)] == ["10000000", "10000001"]
    assert deliver_feed(staging, settings=settings)["status"] == "already_delivered"
    assert _ledger(settings.database_url) == (2, 30)


# --- outages --------------------------------------------------------------------------------------------------------


def _alerts(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "pupilshare.alerts"]


def _context(error: BaseException, try_number: int) -> dict:
    """What Airflow hands the callbacks of the deliver task (the parts they read)."""
    task = SimpleNamespace(dag_id="pupilshare_publish_yss", task_id="deliver_and_record", try_number=try_number)
    return {"task_instance": task, "run_id": "scheduled__2026-11-30", "exception": error}


def test_deliver_feed__sftp_down_on_the_first_attempt__the_retry_delivers_once(
    settings, sftp_yss, stage_synthetic_feed, caplog
):
    staging = stage_synthetic_feed(settings, rows=25, feed_date=FEED_DATE)
    sftp_yss.stop()
    caplog.set_level(logging.WARNING, logger="pupilshare.alerts")

    with pytest.raises(DeliveryWriteError) as failure:
        deliver_feed(staging, settings=settings)
    message = str(failure.value)
    assert f"sftp://pupilshare@127.0.0.1:{sftp_yss.port}/inbound/yss/{FEED_DATE}" in message, message
    assert "could not connect" in message and "Unable to connect" in message
    assert "Nothing was delivered and nothing recorded" in message
    assert _ledger(settings.database_url) == (0, 0)
    assert sftp_yss.files() == {}
    alert_on_retry(_context(failure.value, try_number=1))
    (retry,) = _alerts(caplog)
    assert retry.startswith("PUPILSHARE RETRY: pupilshare_publish_yss.deliver_and_record failed on try 1")
    assert f"127.0.0.1:{sftp_yss.port}" in retry and "could not connect" in retry, "the alert names the server"

    sftp_yss.start()  # the server is back for the retry
    assert deliver_feed(staging, settings=settings)["status"] == "delivered"
    assert _ledger(settings.database_url) == (1, 25)
    assert sorted(sftp_yss.files()) == [
        f"inbound/yss/{FEED_DATE}/yss_{FEED_DATE}.csv",
        f"inbound/yss/{FEED_DATE}/yss_{FEED_DATE}.manifest.json",
    ]
    assert deliver_feed(staging, settings=settings)["status"] == "already_delivered"
    assert _ledger(settings.database_url) == (1, 25)


def test_deliver_feed__sftp_down_on_every_attempt__each_fails_nothing_lost_and_a_later_run_delivers_once(
    settings, sftp_yss, stage_synthetic_feed, caplog
):
    staging = Path(stage_synthetic_feed(settings, rows=25, feed_date=FEED_DATE))
    staged = {path.name: path.read_bytes() for path in staging.iterdir()}
    sftp_yss.stop()
    caplog.set_level(logging.WARNING, logger="pupilshare.alerts")

    for try_number in (1, 2, 3):  # the first try and the publish DAG's two retries
        with pytest.raises(DeliveryWriteError, match=r"could not connect.*Nothing was delivered") as failure:
            deliver_feed(staging, settings=settings)
        (alert_on_retry if try_number < 3 else alert_on_failure)(_context(failure.value, try_number))
        assert _ledger(settings.database_url) == (0, 0), "nothing recorded"
        assert sftp_yss.files() == {}, "nothing left on the server"
    *retries, final = _alerts(caplog)
    assert len(retries) == 2 and all("PUPILSHARE RETRY" in retry for retry in retries)
    assert final.startswith("PUPILSHARE ALERT: pupilshare_publish_yss.deliver_and_record failed in run")
    assert f"127.0.0.1:{sftp_yss.port}/inbound/yss/{FEED_DATE}" in final and "DeliveryWriteError" in final
    assert {path.name: path.read_bytes() for path in staging.iterdir()} == staged, "the staged feed is kept"

    sftp_yss.start()  # a later run (or a cleared task) once the server is back
    assert deliver_feed(staging, settings=settings)["status"] == "delivered"
    assert deliver_feed(staging, settings=settings)["status"] == "already_delivered"
    assert _ledger(settings.database_url) == (1, 25)
    feed = sftp_yss.files()[f"inbound/yss/{FEED_DATE}/yss_{FEED_DATE}.csv"]
    assert feed == staged[f"yss_{FEED_DATE}.csv"]


def test_deliver_feed__sftp_refuses_a_routes_file__what_this_attempt_uploaded_is_removed(
    settings, sftp_post16, stage_synthetic_feed
):
    """The server refuses the second route's feed (a full quota): the first route's uploads and the folders this
    attempt made are removed, the error names the server, the path and the cause, and nothing is recorded."""
    staging = stage_synthetic_feed(settings, rows=30, feed_date=FEED_DATE, recipient_id="post16")
    sftp_post16.refuse_writes = f"post16_10000001_{FEED_DATE}.csv"

    with pytest.raises(DeliveryWriteError) as failure:
        deliver_feed(staging, settings=settings)

    message = str(failure.value)
    assert (
        f"SFTP pupilshare@127.0.0.1:{sftp_post16.port}: could not upload post16_10000001_{FEED_DATE}.csv to " in message
    )
    assert f"/inbound/post16/10000001/{FEED_DATE}" in message and "disk quota exceeded" in message, message
    assert "Could not remove" not in message
    assert any(f"10000000/{FEED_DATE}/.post16_10000000" in name for name in sftp_post16.opened), "route 1 was uploaded"
    assert [str(path.relative_to(sftp_post16.root)) for path in sftp_post16.root.rglob("*")] == ["inbound"], (
        "every file and folder this attempt made is gone"
    )
    assert _ledger(settings.database_url) == (0, 0)

    sftp_post16.refuse_writes = None
    assert deliver_feed(staging, settings=settings)["status"] == "delivered"
    assert _ledger(settings.database_url) == (2, 30)


def test_deliver_feed__sftp_post16_dies_mid_delivery__nothing_recorded_and_the_rerun_delivers_once(
    settings, sftp_post16, stage_synthetic_feed
):
    """The server drops every connection while the second route's file is opened: the attempt cannot clean up on a
    server that is gone, so the error says what it left (hidden temporary files only, never a final name); nothing is
    recorded. Once the server is back the rerun delivers every route once and no temporary file remains."""
    staging = stage_synthetic_feed(settings, rows=30, feed_date=FEED_DATE, recipient_id="post16")
    sftp_post16.drop_on_write = f"post16_10000001_{FEED_DATE}.csv"

    with pytest.raises(DeliveryWriteError, match=r"Nothing was delivered.*Could not remove what this attempt wrote"):
        deliver_feed(staging, settings=settings)

    left = sftp_post16.files()
    assert left and all(Path(name).name.startswith(".") and name.endswith(".partial") for name in left), left
    assert _ledger(settings.database_url) == (0, 0)

    sftp_post16.drop_on_write = None
    sftp_post16.stop()
    sftp_post16.start()
    assert deliver_feed(staging, settings=settings)["status"] == "delivered"
    assert not [name for name in sftp_post16.files() if Path(name).name.startswith(".")], "no temporary file remains"
    assert len(sftp_post16.files()) == 4 and _ledger(settings.database_url) == (2, 30)


def test_deliver_feed__sftp_upload_that_does_not_read_back_the_same__is_not_delivered(
    settings, sftp_yss, stage_synthetic_feed
):
    """The server stores other bytes than were sent (same size): the read-back check catches it before anything is
    renamed into place, and the attempt removes its upload."""
    staging = stage_synthetic_feed(settings, rows=5, feed_date=FEED_DATE)
    sftp_yss.corrupt_writes = f".yss_{FEED_DATE}.csv.partial"

    with pytest.raises(
        DeliveryWriteError, match=r"read back does not match the SHA-256 uploaded.*Nothing was delivered"
    ):
        deliver_feed(staging, settings=settings)
    assert sftp_yss.files() == {} and _ledger(settings.database_url) == (0, 0)


# --- configuration errors fail closed and say what to fix ------------------------------------------------------------


def test_deliver_feed__sftp_server_with_another_host_key_is_refused(
    settings, sftp_yss, stage_synthetic_feed, monkeypatch
):
    """A server presenting a host key other than the connection's (a man in the middle, or a rebuilt server) is not
    sent anything."""
    import asyncssh

    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    connection = json.loads(sftp_yss.connection())
    connection["extra"]["host_key"] = other
    monkeypatch.setenv("AIRFLOW_CONN_PUPILSHARE_SFTP_YSS", json.dumps(connection))
    staging = stage_synthetic_feed(settings, rows=5, feed_date=FEED_DATE)

    with pytest.raises(
        DeliveryWriteError, match=rf"127\.0\.0\.1:{sftp_yss.port}: could not connect: BadHostKeyException"
    ):
        deliver_feed(staging, settings=settings)
    assert sftp_yss.files() == {} and _ledger(settings.database_url) == (0, 0)


def test_deliver_feed__sftp_connection_missing__names_the_variable_to_set(
    settings, sftp_yss, stage_synthetic_feed, monkeypatch
):
    monkeypatch.delenv("AIRFLOW_CONN_PUPILSHARE_SFTP_YSS")
    staging = stage_synthetic_feed(settings, rows=5, feed_date=FEED_DATE)

    with pytest.raises(DeliveryWriteError, match="set AIRFLOW_CONN_PUPILSHARE_SFTP_YSS in the environment"):
        deliver_feed(staging, settings=settings)
    assert _ledger(settings.database_url) == (0, 0)


def test_deliver_feed__sftp_base_path_missing__says_so(settings, sftp_yss, stage_synthetic_feed, delivery_policy):
    delivery_policy("yss", target="sftp", sftp={"base_path": "/nowhere"})
    staging = stage_synthetic_feed(settings, rows=5, feed_date=FEED_DATE)

    with pytest.raises(DeliveryWriteError, match=r"could not find the base path /nowhere: FileNotFoundError"):
        deliver_feed(staging, settings=settings)
    assert sorted(sftp_yss.files()) == [] and _ledger(settings.database_url) == (0, 0)


def test_deliver_feed__sftp_file_where_the_feed_date_folder_must_be__names_the_path(
    settings, sftp_yss, stage_synthetic_feed
):
    blocker = sftp_yss.root / "inbound" / "yss" / FEED_DATE.isoformat()
    blocker.parent.mkdir(parents=True)
    blocker.write_text("not a folder\n", encoding="utf-8")
    staging = stage_synthetic_feed(settings, rows=5, feed_date=FEED_DATE)

    with pytest.raises(DeliveryWriteError, match=rf"/inbound/yss/{FEED_DATE} is a file where the folder must be"):
        deliver_feed(staging, settings=settings)
    assert sftp_yss.files() == {f"inbound/yss/{FEED_DATE}": b"not a folder\n"}
    assert _ledger(settings.database_url) == (0, 0)


def test_sftp_server_fixture__is_a_real_server_that_refuses_an_unknown_client_key(sftp_server, tmp_path):
    """The test server authenticates clients: a key it was not given is refused (so the tests above really log in)."""
    import asyncssh
    import paramiko

    stranger = tmp_path / "stranger"
    stranger.write_bytes(asyncssh.generate_private_key("ssh-ed25519").export_private_key())
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # nosec - the test server's key is not the point
    with pytest.raises(paramiko.AuthenticationException):
        client.connect("127.0.0.1", port=sftp_server.port, username="pupilshare", key_filename=str(stranger),
                       look_for_keys=False, allow_agent=False)  # fmt: skip
    client.close()
    assert os.path.isdir(sftp_server.root) and re.fullmatch(r"\d+", str(sftp_server.port))
