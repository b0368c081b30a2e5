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


def test_stage__the_written_feed_file_has_no_cell_a_spreadsheet_would_run(tmp_path):
    """Every delivered field of a staged feed, planted with formula-like text, reads back defused from the file."""
    import csv

    from pupilshare.policy import load_policy
    from pupilshare.publish import _stage
    from pupilshare.settings import Settings

    recipient = load_policy().recipient("yss")
    columns = list(recipient.mart_columns)
    hostile = ["=1+1", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)", "\t=1", "\r=1"]
    rows = [
        tuple("A123456789012" if name == recipient.key_column else payload for name in columns) for payload in hostile
    ]
    staging = _stage(
        recipient,
        columns,
        rows,
        feed_date=dt.date(2026, 11, 30),
        run_id="formula",
        settings=Settings(data_dir=tmp_path),
    )
    with (staging / "yss_2026-11-30.csv").open(encoding="utf-8", newline="") as handle:
        header, *cells = list(csv.reader(handle))
    assert header == list(recipient.delivered_fields)
    assert len(cells) == len(hostile)
    for row, payload in zip(cells, hostile, strict=True):
        expected = "'" + payload.replace("\r", "\n")  # a lone CR would split the row: written as a quoted LF
        assert row == [expected] * len(header), "each cell is the value behind a leading apostrophe"
