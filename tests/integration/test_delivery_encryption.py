"""age encryption of delivered feed files, to the outbox folder and to a real SFTP server on loopback.

The recipient's feed arrives as ``<feed>.age``: the matching identity decrypts it to exactly the staged (gated) bytes,
another identity cannot; the plain manifest records the SHA-256 of the plaintext and of the ciphertext; the ledger
keeps the plaintext checksum (what replay compares).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import psycopg
import pyrage
import pytest

from pupilshare.files import sha256_file
from pupilshare.policy import load_policy
from pupilshare.publish import deliver_feed
from pupilshare.settings import Settings

pytestmark = pytest.mark.integration

FEED_DATE = dt.date(2026, 11, 30)
FEED = f"yss_{FEED_DATE}.csv"
MANIFEST = f"yss_{FEED_DATE}.manifest.json"


@pytest.fixture
def settings(tmp_path, scratch_db) -> Settings:
    settings = Settings(database_url=scratch_db, data_dir=tmp_path / "data", sftp_connect_attempts=1)
    settings.ensure_folders()
    return settings


@pytest.fixture
def identity() -> pyrage.x25519.Identity:
    """The recipient's age identity (secret key); the policy holds only its public key."""
    return pyrage.x25519.Identity.generate()


def _ledger_sha(url: str) -> list[tuple[str, str]]:
    with psycopg.connect(url) as conn:
        return conn.execute("select file_name, file_sha256 from ledger.deliveries").fetchall()


def _check_encrypted(files: dict[str, bytes], staging: Path, identity, ledger: list[tuple[str, str]]) -> None:
    """The delivered folder holds the ciphertext and the manifest only, and they say what the module docstring says."""
    assert sorted(files) == sorted([f"{FEED}.age", MANIFEST]), "no plaintext feed and no temporary file delivered"
    plaintext = (staging / FEED).read_bytes()
    ciphertext = files[f"{FEED}.age"]
    assert plaintext not in ciphertext and b"forename" not in ciphertext
    assert pyrage.decrypt(ciphertext, [identity]) == plaintext
    with pytest.raises(pyrage.DecryptError):
        pyrage.decrypt(ciphertext, [pyrage.x25519.Identity.generate()])
    manifest = json.loads(files[MANIFEST])
    assert manifest["file_name"] == FEED and manifest["sha256"] == sha256_file(staging / FEED)
    assert manifest["encryption"] == {
        "scheme": "age",
        "recipients": [str(identity.to_public())],
        "file_name": f"{FEED}.age",
        "sha256": hashlib.sha256(ciphertext).hexdigest(),
    }
    assert ledger == [(FEED, manifest["sha256"])], "the ledger keeps the plaintext checksum"


def test_deliver_feed__encrypted_to_the_outbox__only_the_recipients_identity_reads_it(
    settings, identity, delivery_policy, stage_synthetic_feed
):
    delivery_policy("yss", encryption={"recipients": [str(identity.to_public())]})
    staging = Path(stage_synthetic_feed(settings, rows=20, feed_date=FEED_DATE))

    delivered = deliver_feed(staging, settings=settings)

    folder = settings.outbox_dir / "yss" / FEED_DATE.isoformat()
    assert delivered["file"] == str(folder / f"{FEED}.age")
    files = {path.name: path.read_bytes() for path in folder.iterdir()}
    _check_encrypted(files, staging, identity, _ledger_sha(settings.database_url))
    assert not [path for path in settings.staging_dir.rglob("*") if ".deliver-" in str(path)], "scratch removed"
    assert deliver_feed(staging, settings=settings)["status"] == "already_delivered"
    assert len(_ledger_sha(settings.database_url)) == 1


def test_deliver_feed__encrypted_by_sftp__only_the_recipients_identity_reads_it(
    settings, identity, sftp_server, monkeypatch, delivery_policy, stage_synthetic_feed
):
    (sftp_server.root / "inbound").mkdir()
    monkeypatch.setenv("AIRFLOW_CONN_PUPILSHARE_SFTP_YSS", sftp_server.connection())
    public = str(identity.to_public())
    delivery_policy("yss", target="sftp", sftp={"base_path": "/inbound"}, encryption={"recipients": [public]})
    staging = Path(stage_synthetic_feed(settings, rows=20, feed_date=FEED_DATE))

    deliver_feed(staging, settings=settings)

    prefix = f"inbound/yss/{FEED_DATE}/"
    files = {name.removeprefix(prefix): data for name, data in sftp_server.files().items()}
    _check_encrypted(files, staging, identity, _ledger_sha(settings.database_url))
    assert not list(settings.outbox_dir.rglob("*"))


def test_deliver_feed__encrypted_to_two_keys__either_identity_reads_it(
    settings, identity, delivery_policy, stage_synthetic_feed
):
    """A recipient rotating its key lists both public keys for a while: each identity decrypts the same file."""
    second = pyrage.x25519.Identity.generate()
    keys = [str(identity.to_public()), str(second.to_public())]
    delivery_policy("yss", encryption={"recipients": keys})
    staging = Path(stage_synthetic_feed(settings, rows=5, feed_date=FEED_DATE))

    deliver_feed(staging, settings=settings)

    ciphertext = (settings.outbox_dir / "yss" / FEED_DATE.isoformat() / f"{FEED}.age").read_bytes()
    assert (
        pyrage.decrypt(ciphertext, [identity]) == pyrage.decrypt(ciphertext, [second]) == (staging / FEED).read_bytes()
    )


def test_clear_delivered_files__an_encrypted_outbox_copy_goes_at_retention_like_a_plain_one(
    settings, identity, delivery_policy, stage_synthetic_feed
):
    from pupilshare.retention import clear_delivered_files

    delivery_policy("yss", encryption={"recipients": [str(identity.to_public())]})
    staging = Path(stage_synthetic_feed(settings, rows=5, feed_date=FEED_DATE))
    delivered = deliver_feed(staging, settings=settings)
    folder = settings.outbox_dir / "yss" / FEED_DATE.isoformat()
    assert sorted(path.name for path in folder.iterdir()) == [f"{FEED}.age", MANIFEST]

    later = dt.date.today() + dt.timedelta(days=load_policy().recipient("yss").retention_days + 1)
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        assert clear_delivered_files(conn, as_of=later, run_id="r", settings=settings) == [delivered["delivery_id"]]
    assert not folder.exists(), "the ciphertext and its manifest went, and their empty folder"
