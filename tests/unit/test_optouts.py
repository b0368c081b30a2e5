"""The opt-out rules in Python (the gates' independent statement of them), tested to the day."""

from __future__ import annotations

import datetime as dt

import pytest

from pupilshare.optouts import CensusRefusal, OptOutRequest, rejection_reason, resolve_opt_outs

FEED = dt.date(2026, 11, 29)
DOB_16_ON_FEED = dt.date(2010, 11, 29)


def _req(rid, upn="A", scope="yss", action="opt_out", by="parent", on=dt.date(2026, 1, 1), batch=1, row=None):
    return OptOutRequest(rid, upn, scope, action, by, on, batch, row or int(rid))


@pytest.mark.parametrize(
    ("by", "on", "valid"),
    [
        ("parent", dt.date(2026, 11, 28), True),  # the day before the 16th birthday: a parent may
        ("parent", dt.date(2026, 11, 29), False),  # on the birthday: only the pupil
        ("pupil", dt.date(2026, 11, 29), True),
        ("pupil", dt.date(2026, 11, 28), False),
    ],
)
def test_rejection_reason__party_at_16th_birthday(by, on, valid):
    assert (rejection_reason(_req("1", by=by, on=on), DOB_16_ON_FEED, FEED) is None) is valid


def test_rejection_reason__29_february_birthday_counts_from_1_march():
    """Born 2008-02-29: on 2024-02-28 (leap year) still 15; on 2024-02-29, 16."""
    dob = dt.date(2008, 2, 29)
    assert rejection_reason(_req("1", on=dt.date(2024, 2, 28)), dob, FEED) is None
    assert rejection_reason(_req("1", on=dt.date(2024, 2, 29)), dob, FEED) is not None


def test_rejection_reason__after_feed_date_and_unknown_pupil():
    assert (
        rejection_reason(_req("1", on=dt.date(2026, 12, 1)), dt.date(2014, 1, 1), FEED) == "dated after the feed date"
    )
    assert rejection_reason(_req("1"), None, FEED) == "pupil not on roll"


def _resolve(requests, refusals=(), dobs=None, persistence="persist"):
    dobs = dobs or {"A": dt.date(2013, 1, 1)}
    return resolve_opt_outs(requests, refusals, dates_of_birth=dobs, feed_date=FEED, persistence=persistence)


def test_resolve_opt_outs__withdrawal_and_scope_all():
    states = _resolve([_req("1", scope="all"), _req("2", action="withdraw", on=dt.date(2026, 3, 1))])
    assert not states["A", "yss"].is_opted_out
    assert states["A", "post16"].is_opted_out and states["A", "sure_start"].is_opted_out
    assert states["A", "post16"].cause == "opt-out request 1"


def test_resolve_opt_outs__two_requests_one_day_later_row_wins():
    same_day = dt.date(2026, 5, 5)
    states = _resolve([_req("2", on=same_day, row=2), _req("3", action="withdraw", on=same_day, row=3)])
    assert not states["A", "yss"].is_opted_out
    states = _resolve([_req("3", on=same_day, row=3), _req("2", action="withdraw", on=same_day, row=2)])
    assert states["A", "yss"].is_opted_out


@pytest.mark.parametrize(("persistence", "expected"), [("persist", True), ("lapse", False)])
def test_resolve_opt_outs__parent_opt_out_after_16(persistence, expected):
    dobs = {"A": dt.date(2009, 6, 1)}  # 17 on the feed date; the parent opted out at 15
    states = _resolve([_req("1", on=dt.date(2024, 9, 1))], dobs=dobs, persistence=persistence)
    assert states["A", "yss"].is_opted_out is expected


def test_resolve_opt_outs__pupil_withdraws_parent_opt_out_after_16():
    dobs = {"A": dt.date(2009, 6, 1)}
    requests = [_req("1", on=dt.date(2024, 9, 1)), _req("2", action="withdraw", by="pupil", on=dt.date(2025, 9, 1))]
    assert not _resolve(requests, dobs=dobs)["A", "yss"].is_opted_out


def test_resolve_opt_outs__census_yssa_no_then_later_withdrawal():
    refusal = CensusRefusal("A", dt.date(2026, 10, 1), 3, 8)
    assert _resolve([], [refusal])["A", "yss"].is_opted_out
    assert _resolve([], [refusal])["A", "yss"].cause.startswith("census yssa = No")
    withdraw = _req("9", action="withdraw", on=dt.date(2026, 11, 1))
    assert not _resolve([withdraw], [refusal])["A", "yss"].is_opted_out


def test_resolve_opt_outs__rejected_request_has_no_effect():
    rejected = OptOutRequest("1", "A", "yss", "opt_out", "parent", dt.date(2026, 1, 1), 1, 1, rejected_at_load=True)
    assert not _resolve([rejected])["A", "yss"].is_opted_out
