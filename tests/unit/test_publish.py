"""Feed cells: nulls empty, ISO dates, spreadsheet formulas defused."""

from __future__ import annotations

import datetime as dt

import pytest

from pupilshare.publish import _cell


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, ""),
        (dt.date(2012, 2, 29), "2012-02-29"),
        (123456, "123456"),
        ("Smith", "Smith"),
        ('=HYPERLINK("x")', '\'=HYPERLINK("x")'),
        ("+44 1603", "'+44 1603"),
        ("-1", "'-1"),
        ("@SUM(A1)", "'@SUM(A1)"),
    ],
)
def test_cell__formats_and_defuses(value, expected):
    assert _cell(value) == expected
