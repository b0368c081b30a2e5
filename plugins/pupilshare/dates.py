"""Dates and ages as the sharing rules define them (shared/SHARING_RULES.md, "Dates and ages").

Every age in the project is taken on the feed date with :func:`age_in_years`; census dates are read with
:func:`parse_census_date`. Both are written out here, once, because the rules are legal definitions the tests pin
down exactly (a 29 February birthday, the day of a birthday), and a hidden library convention must not decide them.
"""

from __future__ import annotations

import datetime as dt
import re

#: English month abbreviations as the census writes them (``2012-Mar-01 00:00:00``). Spelt out rather than read with
#: ``strptime("%b")``, whose month names follow the process locale.
_MONTHS = {
    name: number
    for number, name in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1
    )
}
_CENSUS_DATE = re.compile(r"^(\d{4})-([A-Za-z]{3})-(\d{1,2})(?:[ T]00:00(?::00(?:\.0+)?)?)?$")
_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")


def age_in_years(dob: dt.date, on_date: dt.date) -> int:
    """Completed years of age on ``on_date`` for someone born on ``dob``.

    The birthday itself counts: born 2010-03-01 is 16 from 2026-03-01 inclusive. Someone born on 29 February has
    their birthday on 1 March in a non-leap year (still 13 on 28 February, 14 on 1 March) and on 29 February in a
    leap year.

    Raises ValueError when ``dob`` is after ``on_date``: that is a data error, not an age.
    """
    if dob > on_date:
        raise ValueError(f"date of birth {dob.isoformat()} is after {on_date.isoformat()}")
    years = on_date.year - dob.year
    # (month, day) ordering puts 29 Feb after 28 Feb and before 1 Mar, which is exactly the 1 March rule.
    if (on_date.month, on_date.day) < (dob.month, dob.day):
        years -= 1
    return years


def parse_census_date(text: str) -> dt.date:
    """Read a date as a School Census extract writes it (``2012-Mar-01 00:00:00``; ISO ``2012-03-01`` also read).

    Raises ValueError, naming the text, for anything else (blank included): the caller decides what a missing date
    means.
    """
    value = text.strip()
    census = _CENSUS_DATE.match(value)
    iso = _ISO_DATE.match(value)
    try:
        if census:
            year, month_name, day = census.groups()
            return dt.date(int(year), _MONTHS[month_name.lower()], int(day))
        if iso:
            return dt.date(*(int(part) for part in iso.groups()))
    except (KeyError, ValueError) as error:
        raise ValueError(f"not a valid census date: {text!r}") from error
    raise ValueError(f"not a census date (expected like 2012-Mar-01 00:00:00): {text!r}")
