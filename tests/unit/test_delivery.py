"""Delivery targets and their policy: the folder target's write protocol, age encryption, and the policy's
``delivery`` section (the SFTP target itself is tested against a real server in tests/integration)."""

from __future__ import annotations

from pathlib import Path

import pyrage
import pytest
import yaml
from pydantic import ValidationError

from pupilshare.delivery.encryption import encrypt_file
from pupilshare.delivery.folder import FolderSession
from pupilshare.policy import POLICY_PATH, load_policy


def _policy_file(tmp_path: Path, **delivery) -> Path:
    raw = yaml.safe_load(POLICY_PATH.read_text(encoding="utf-8"))
    raw["recipients"]["yss"]["delivery"].update(delivery)
    path = tmp_path / "recipients.yml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def test_load_policy__sftp_target_defaults_its_connection_id_per_recipient(tmp_path):
    policy = load_policy(_policy_file(tmp_path, target="sftp", sftp={"base_path": "/inbound"}))
    sftp = policy.recipient("yss").delivery.sftp_target("yss")
    assert (sftp.connection_id, sftp.base_path) == ("pupilshare_sftp_yss", "/inbound")


def test_load_policy__sftp_settings_on_a_folder_target_are_refused(tmp_path):
    with pytest.raises(ValidationError, match="delivery.sftp is set but delivery.target is 'folder'"):
        load_policy(_policy_file(tmp_path, target="folder", sftp={"base_path": "/inbound"}))


def test_load_policy__a_key_that_is_not_an_age_public_key_is_refused(tmp_path):
    """A typo in a recipient's key would make their feed unreadable to them (or, worse, readable to someone else's
    key): it is an error at load, naming the key's start."""
    good = str(pyrage.x25519.Identity.generate().to_public())
    with pytest.raises(ValidationError, match=r"age1qqqqqqqq\.\.\. is not an age X25519 public key"):
        load_policy(_policy_file(tmp_path, encryption={"recipients": [good, "age1" + "q" * 58]}))
    with pytest.raises(ValidationError, match="at least 1 item"):
        load_policy(_policy_file(tmp_path, encryption={"recipients": []}))
    assert load_policy(_policy_file(tmp_path, encryption={"recipients": [good]})).recipient("yss").delivery.encryption


def test_encrypt_file__the_identity_decrypts_it_another_cannot(tmp_path):
    identity = pyrage.x25519.Identity.generate()
    source = tmp_path / "feed.csv"
    source.write_bytes(b"forename,surname\nAda,Lovelace\n")
    encrypt_file(source, tmp_path / "feed.csv.age", [str(identity.to_public())])
    ciphertext = (tmp_path / "feed.csv.age").read_bytes()
    assert pyrage.decrypt(ciphertext, [identity]) == source.read_bytes()
    with pytest.raises(pyrage.DecryptError):
        pyrage.decrypt(ciphertext, [pyrage.x25519.Identity.generate()])


def test_folder_session__files_stay_hidden_until_published_then_land_in_the_order_put(tmp_path):
    source = tmp_path / "feed.csv"
    source.write_bytes(b"a,b\n1,2\n")
    session = FolderSession(tmp_path / "outbox")
    session.put(("yss", "2026-11-30"), "feed.csv", source)
    session.put(("yss", "2026-11-30"), "feed.manifest.json", b"{}\n")
    folder = tmp_path / "outbox" / "yss" / "2026-11-30"
    assert sorted(path.name for path in folder.iterdir()) == [".feed.csv.partial", ".feed.manifest.json.partial"]

    session.publish()

    assert sorted(path.name for path in folder.iterdir()) == ["feed.csv", "feed.manifest.json"]
    assert (folder / "feed.csv").read_bytes() == source.read_bytes()
    assert session.location(("yss", "2026-11-30"), "feed.csv") == str(folder / "feed.csv")


def test_folder_session__rollback_removes_exactly_what_the_attempt_wrote(tmp_path):
    """Before: outbox/yss/ holds an earlier day's file. The attempt makes 2026-11-30/ and puts two files; rollback
    leaves outbox/yss/ as it was: the earlier file, no new folder."""
    earlier = tmp_path / "outbox" / "yss" / "2026-11-23" / "feed.csv"
    earlier.parent.mkdir(parents=True)
    earlier.write_bytes(b"earlier\n")
    session = FolderSession(tmp_path / "outbox")
    session.put(("yss", "2026-11-30"), "feed.csv", b"new\n")
    session.put(("yss", "2026-11-30"), "feed.manifest.json", b"{}\n")

    assert session.rollback() == []

    assert sorted(str(path.relative_to(tmp_path)) for path in (tmp_path / "outbox").rglob("*")) == [
        "outbox/yss",
        "outbox/yss/2026-11-23",
        "outbox/yss/2026-11-23/feed.csv",
    ]


def test_folder_session__publish_failing_part_way_is_rolled_back_to_before_the_attempt(tmp_path):
    """The feed is renamed into place, then its manifest cannot be (a folder has its name): rollback removes the
    feed it placed and its temporary manifest, and leaves the folder it did not make."""
    folder = tmp_path / "outbox" / "yss" / "2026-11-30"
    (folder / "feed.manifest.json").mkdir(parents=True)
    session = FolderSession(tmp_path / "outbox")
    session.put(("yss", "2026-11-30"), "feed.csv", b"new\n")
    session.put(("yss", "2026-11-30"), "feed.manifest.json", b"{}\n")
    with pytest.raises(IsADirectoryError):
        session.publish()
    assert (folder / "feed.csv").is_file(), "the feed was placed before the manifest failed"

    assert session.rollback() == []

    assert [path.name for path in folder.iterdir()] == ["feed.manifest.json"]
    assert (folder / "feed.manifest.json").is_dir()


def test_folder_session__a_file_where_the_folder_must_be_fails_before_anything_is_written(tmp_path):
    blocker = tmp_path / "outbox" / "yss" / "2026-11-30"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("the share is not mounted\n", encoding="utf-8")
    session = FolderSession(tmp_path / "outbox")
    with pytest.raises(NotADirectoryError, match="a file is where the folder must be"):
        session.put(("yss", "2026-11-30"), "feed.csv", b"x\n")
    assert session.rollback() == []
    assert blocker.read_text(encoding="utf-8") == "the share is not mounted\n"
