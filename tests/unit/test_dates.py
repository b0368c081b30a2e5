"""Ages are completed years on the feed date; a 29 February birthday counts from 1 March in non-leap years."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pupilshare.dates import age_in_years, parse_census_date


@pytest.mark.parametrize(
    ("dob", "on_date", "age"),
    [
        (dt.date(2013, 11, 30), dt.date(2026, 11, 30), 13),  # 13th birthday on the feed date: 13
        (dt.date(2013, 11, 30), dt.date(2026, 11, 29), 12),  # the day before: still 12
        (dt.date(2010, 3, 1), dt.date(2026, 3, 1), 16),  # SHARING_RULES.md example: 16 from 2026-03-01 inclusive
        (dt.date(2010, 3, 1), dt.date(2026, 2, 28), 15),
        (dt.date(2012, 2, 29), dt.date(2025, 2, 28), 12),  # born 29 Feb, non-leap year: not yet on 28 Feb
        (dt.date(2012, 2, 29), dt.date(2025, 3, 1), 13),  # ... 13 from 1 March
        (dt.date(2012, 2, 29), dt.date(2028, 2, 29), 16),  # leap year: on 29 Feb itself
        (dt.date(2012, 2, 29), dt.date(2028, 2, 28), 15),
        (dt.date(2013, 12, 31), dt.date(2026, 1, 1), 12),
        (dt.date(2020, 5, 5), dt.date(2020, 5, 5), 0),
    ],
)
def test_age_in_years__boundaries(dob, on_date, age):
    assert age_in_years(dob, on_date) == age


def test_age_in_years__born_after_the_date_is_an_error():
    with pytest.raises(ValueError, match="after"):
        age_in_years(dt.date(2026, 12, 1), dt.date(2026, 11, 30))


@given(
    dob=st.dates(min_value=dt.date(1990, 1, 1), max_value=dt.date(2030, 12, 31)),
    days=st.integers(min_value=0, max_value=40 * 366),
)
def test_age_in_years__grows_by_at_most_one_a_day_and_exactly_one_a_year(dob, days):
    on_date = dob + dt.timedelta(days=days)
    age = age_in_years(dob, on_date)
    assert age_in_years(dob, on_date + dt.timedelta(days=1)) - age in (0, 1)
    assert 0 <= age <= days // 365
    birthday = dob.replace(year=dob.year + age + 1) if (dob.month, dob.day) != (2, 29) else None
    if birthday is not None:
        assert age_in_years(dob, birthday) == age + 1
        assert age_in_years(dob, birthday - dt.timedelta(days=1)) == age


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2012-Mar-01 00:00:00", dt.date(2012, 3, 1)),
        ("2012-mar-01", dt.date(2012, 3, 1)),
        (" 2012-Feb-29 00:00:00 ", dt.date(2012, 2, 29)),
        ("2012-03-01", dt.date(2012, 3, 1)),
    ],
)
def test_parse_census_date__census_and_iso_forms(text, expected):
    assert parse_census_date(text) == expected


@pytest.mark.parametrize(
    "text", ["", "2013-Feb-29 00:00:00", "2012-Mrz-01 00:00:00", "01/03/2012", "2012-Mar-01 09:30:00"]
)
def test_parse_census_date__anything_else_is_refused(text):
    with pytest.raises(ValueError, match="census date"):
        parse_census_date(text)
