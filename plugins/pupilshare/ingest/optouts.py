"""Load opt-out requests (and withdrawals of them): one CSV per file set, one row per request.

A request by the wrong party for the pupil's age (SHARING_RULES: a parent until the 16th birthday, the pupil from it)
is rejected with a clear reason and kept: it loads with ``_rejected = true`` and an ``OPTOUT-WRONG-PARTY`` finding.
Layout and rules: docs/returns.md, "Opt-out requests".
"""

from __future__ import annotations

from pathlib import Path

import psycopg

from pupilshare.dates import age_in_years
from pupilshare.ingest.inbox import register_return
from pupilshare.ingest.tabular import (
    CsvReturn,
    CsvTable,
    Issue,
    LoadContext,
    check_code,
    check_upn,
    ensure_csv_tables,
    load_csv_return,
    parse_date,
)

RETURN_TYPE = "optouts"
COLUMNS = ("upn", "scope", "action", "requested_by", "requested_on", "channel")
SCOPES = frozenset({"yss", "post16", "sure_start", "all"})
ACTIONS = frozenset({"opt_out", "withdraw"})
PARTIES = frozenset({"parent", "pupil"})
CHANNELS = frozenset({"letter", "school", "form"})
#: From this birthday only the pupil may make or withdraw a request; before it only a parent.
PUPIL_DECIDES_FROM_AGE = 16


def validate_optout_row(row: dict[str, str], context: LoadContext) -> list[Issue]:
    """Row rules of an opt-out file (ids in docs/returns.md)."""
    issues = check_upn(row, context)
    issues += check_code(row, "scope", SCOPES, "OPTOUT-SCOPE")
    issues += check_code(row, "action", ACTIONS, "OPTOUT-ACTION")
    issues += check_code(row, "requested_by", PARTIES, "OPTOUT-PARTY")
    issues += check_code(row, "channel", CHANNELS, "OPTOUT-CHANNEL")
    requested_on = parse_date(row, "requested_on", issues)
    known = context.pupils.get(row["upn"])
    if requested_on and known and known[0] and row["requested_by"] in PARTIES:
        if requested_on < known[0]:
            issues.append(
                Issue(
                    "OPTOUT-BEFORE-BIRTH",
                    "error",
                    "requested_on",
                    f"requested on {requested_on}, before the pupil's birth ({known[0]})",
                )
            )
        else:
            age = age_in_years(known[0], requested_on)
            allowed = "pupil" if age >= PUPIL_DECIDES_FROM_AGE else "parent"
            if row["requested_by"] != allowed:
                issues.append(
                    Issue(
                        "OPTOUT-WRONG-PARTY",
                        "error",
                        "requested_by",
                        f"the pupil was {age} on {requested_on}: only the {allowed} may make or withdraw "
                        "this request; the request is kept but has no effect",
                    )
                )
    same_day = context.state.setdefault("optouts.same_day", set())
    day_key = (row["upn"], row["scope"], row["requested_on"])
    if day_key in same_day:
        issues.append(
            Issue(
                "OPTOUT-SAME-DAY",
                "query",
                "requested_on",
                "another request for this pupil and scope has the same date: the later row in the file "
                "is taken as the later request; confirm the order with the school",
            )
        )
    same_day.add(day_key)
    return issues


OPTOUTS = CsvReturn(
    RETURN_TYPE,
    (CsvTable("optouts", "optout_requests", COLUMNS, frozenset(COLUMNS), validate_optout_row),),
)


def ensure_optouts_schema(conn: psycopg.Connection) -> None:
    """Create ``raw.optout_requests`` (one row per request) if missing."""
    ensure_csv_tables(conn, OPTOUTS)


def load_optout_requests(conn: psycopg.Connection, path: Path, *, max_file_bytes: int = 2 * 1024**3) -> dict | None:
    """Load one opt-out requests CSV (see :func:`pupilshare.ingest.tabular.load_csv_return`)."""
    return load_csv_return(conn, path, spec=OPTOUTS, max_file_bytes=max_file_bytes)


register_return(RETURN_TYPE, load_optout_requests, description="Opt-out requests and withdrawals: one .csv")
