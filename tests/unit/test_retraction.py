"""Retraction notice files without a database: the CSV carries only identifiers the recipient was sent, and the
letter asks for deletion citing the opt-out and the notice (delivery and recording: tests/integration)."""

from __future__ import annotations

import csv
import datetime as dt
import uuid

from pupilshare.policy import load_policy
from pupilshare.retraction import _letter, _write_notice

POLICY = load_policy()


def _row(upn: str, fields: list[str], route: str | None = None) -> dict:
    return {
        "upn": upn,
        "route": route,
        "delivery_id": uuid.uuid4(),
        "feed_date": dt.date(2026, 11, 30),
        "file_name": "yss_2026-11-30.csv",
        "file_sha256": "a" * 64,
        "fields_sent": fields,
        "reason": "opted out: latest is opt_out by parent on 2026-11-30 (opt out request 7-1)",
        "cause_id": "7-1",
        "forename": "Ada",
        "surname": "Lovelace",
        "date_of_birth": dt.date(2012, 5, 1),
        "postcode": "NR1 1AA",
    }


def test_write_notice__identifiers_only_among_fields_sent(tmp_path):
    sure_start = POLICY.recipient("sure_start")
    rows = [_row("A926000000001", ["forename", "surname", "school_name"], route="centre 1")]
    notice = _write_notice(sure_start, "centre 1", rows, dt.date(2026, 11, 30), "run", "v", tmp_path)
    with notice["files"]["csv"].open(encoding="utf-8", newline="") as handle:
        written = list(csv.DictReader(handle))
    assert list(written[0]) == [
        "forename", "surname", "feed_date", "file_name", "file_sha256", "fields_sent", "opt_out",
    ]  # fmt: skip
    assert written[0]["fields_sent"] == "forename;surname;school_name" and "upn" not in written[0]
    assert notice["folder"] == ["sure_start", "centre_1", "retractions", "2026-11-30"], "the route's folder, slugged"
    assert notice["manifest"]["files"]["csv"]["sha256"] == notice["file_sha256"]
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(path.name for path in notice["files"].values()), (
        "only the working copies are written, into the private folder: delivery puts them on the target"
    )


def test_letter__asks_for_deletion_citing_the_opt_out_and_the_notice():
    yss = POLICY.recipient("yss")
    letter = _letter(yss, None, [_row("A926000000001", ["forename", "school_urn"])], "notice-1", "notice.csv")
    assert "Retraction notice notice-1" in letter and "quoting notice notice-1" in letter
    assert "Please delete" in letter and "beyond forename, surname, date_of_birth" in letter
    assert "yss_2026-11-30.csv" in letter and "a" * 64 in letter and "opt_out" in letter
    post16 = POLICY.recipient("post16")
    assert "that any information about them is not passed on" in _letter(
        post16, "10001234", [_row("A926000000001", ["upn"], "10001234")], "n", "n.csv"
    )
