"""Reading raw rows one pupil at a time, for the gates' truths.

A county holds a million pupils. A truth that read every row of the roll into Python objects peaked at 2 GB at that
size (docs/benchmarks.md), so the truths stream instead: the query orders its rows by the UPN key in SQL and
:func:`rows_by_upn` hands them over one pupil at a time from a server-side cursor. What each truth then decides
(main registration, age, cohort, restriction) is still decided in Python, independently of the dbt models; the SQL
only trims, upper-cases and orders.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping

import psycopg

#: Every character ``str.strip()`` removes (``tests/unit/gates/test_by_upn.py`` checks the list is complete), so
#: the SQL key trims exactly what Python trims.
PYTHON_WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
#: The UPN as every truth keys it, in SQL: trimmed as ``str.strip()``, upper-cased, in byte order (``collate "C"``,
#: the order Python compares ASCII strings in). Takes the parameter ``%(whitespace)s``.
UPN_KEY_SQL = "upper(btrim(coalesce({column}, ''), %(whitespace)s)) collate \"C\""
#: Rows fetched from the server per round trip when streaming the roll.
STREAM_BATCH_ROWS = 5000


class RollReadError(RuntimeError):
    """The current roll cannot be read in UPN order (a UPN that PostgreSQL and Python key differently)."""


def upn_key(upn: str | None) -> str:
    """The key of a raw UPN in every truth: trimmed and upper-cased (blank when there is none)."""
    return (upn or "").strip().upper()


def rows_by_upn(
    conn: psycopg.Connection, query: str, params: Mapping[str, object] | None = None
) -> Iterator[tuple[str, list[tuple]]]:
    """The rows of ``query`` one pupil at a time, as ``(UPN key, rows)``; rows keep every column after the first two.

    ``query`` selects the raw UPN first and its SQL key (:data:`UPN_KEY_SQL`) second, and is ordered by that key; it
    may use ``%(whitespace)s``. It runs on a server-side cursor, so memory holds one pupil's rows, not the roll.
    Rows without a UPN come first, under the key ``""``. A row whose Python key differs from its SQL key would
    break the grouping, so it raises :class:`RollReadError` (the census rules reject such UPNs at load, so this
    does not happen to a loaded return).
    """
    with conn.transaction(), conn.cursor(name="pupilshare_rows_by_upn") as cursor:
        cursor.itersize = STREAM_BATCH_ROWS
        cursor.execute(query, {"whitespace": PYTHON_WHITESPACE, **(params or {})})
        for key, group in itertools.groupby(cursor, key=lambda row: row[1]):
            rows = []
            for row in group:
                if upn_key(row[0]) != key:
                    raise RollReadError(
                        f"UPN {row[0]!r} is keyed {key!r} by PostgreSQL but {upn_key(row[0])!r} by Python: the "
                        "gate cannot group the roll by pupil; correct the UPN in the school's return and load it again"
                    )
                rows.append(row[2:])
            yield key, rows
