"""The feed gate: check a recipient's built mart against the truth before anything is delivered.

The feed (one row per pupil, keyed by the recipient's internal key column) is joined to the truth (one row per UPN,
from :mod:`pupilshare.gates.truth`) into a *validation frame*: the feed's own columns, unchanged and in order, then
``truth_known`` (the key is a pupil on roll), ``truth_age`` (their age on the feed date) and ``truth_restricted``
(an opt-out or census ``yssa = No`` applies). The suite ``<recipient>__feed`` (``expectations/<recipient>__feed.yml``)
validates that frame in Great Expectations. Any error, in GX or before it, fails the gate (fail closed).

A recipient's truth may carry further columns named ``gate_<name>`` (NCCIS: ``gate_in_cohort``,
``gate_activity_code``); each becomes ``truth_<name>`` in the frame, after the three above, in the truth's order.

Routed recipients (policy ``routing``: one set per provider or children's centre) have a feed grain of one row per
pupil per route; their truth carries ``routes`` (the route values whose set the pupil belongs in) and the frame gets
``truth_route_ok`` last: the row's route column value is one of the pupil's routes.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from pathlib import Path
from typing import Any

import pandas as pd

from pupilshare.gates import gx_runner
from pupilshare.gates.result import GateResult
from pupilshare.gates.spec import SuiteSpec, load_suite_spec, resolve_expectations, spec_variables
from pupilshare.policy import RecipientPolicy

log = logging.getLogger(__name__)

#: Columns the gate appends to the feed; a feed column may not use the prefix.
TRUTH_PREFIX = "truth_"
TRUTH_FRAME_COLUMNS = ("truth_known", "truth_age", "truth_restricted")
_REQUIRED_TRUTH = ("upn", "age_on_feed_date", "is_in_cohort", "is_restricted")
#: Prefix of a recipient-specific truth column that the frame carries as ``truth_<name>``.
EXTRA_TRUTH_PREFIX = "gate_"
#: Truth column of a routed recipient: the route values (tuple) whose set each pupil belongs in.
ROUTES_TRUTH_COLUMN = "routes"
#: Frame column of a routed recipient: the row's route is one of the pupil's routes.
ROUTE_OK_COLUMN = "truth_route_ok"


class GateInputError(ValueError):
    """The feed or the truth cannot be compared (a reserved column name, a malformed truth frame)."""


def run_feed_gate(
    feed: pd.DataFrame,
    truth: pd.DataFrame,
    *,
    recipient: RecipientPolicy,
    feed_date: dt.date,
    run_id: str,
    data_docs_dir: Path,
    expectations_dir: Path | None = None,
) -> GateResult:
    """Validate ``feed`` against ``truth`` with the suite ``<recipient_id>__feed`` and build Data Docs.

    Never raises for a bad feed or an error inside the gate: the result then has ``success`` False and the reason in
    ``failures`` (fail closed). ``data_docs_index`` is ``<data_docs_dir>/index.html`` when Data Docs were built.
    """
    suite_name = f"{recipient.recipient_id}__feed"
    run_time = dt.datetime.now(dt.UTC)
    run_name = _run_name(feed_date, run_id)
    try:
        spec = load_suite_spec(suite_name, expectations_dir)
        frame = build_validation_frame(
            feed, truth, key_column=recipient.key_column, route_column=recipient.route_column
        )
        expectations = resolve_expectations(spec, feed_variables(recipient, truth, spec))
        outcome = gx_runner.validate_frame(
            frame,
            suite_name=suite_name,
            expectations=expectations,
            suite_meta={
                "recipient_id": recipient.recipient_id,
                "feed_date": feed_date.isoformat(),
                "run_id": run_id,
                "suite_file": f"expectations/{suite_name}.yml",
            },
            run_name=run_name,
            run_time=run_time,
            data_docs_dir=data_docs_dir,
        )
    except Exception as error:  # fail closed: whatever went wrong, nothing passes
        log.exception("gate %s could not run for %s (run %s)", suite_name, feed_date, run_id)
        index = data_docs_dir / "index.html"
        return GateResult(
            suite_name=suite_name,
            success=False,
            result_id=f"{suite_name}/{run_name}/{run_time:%Y%m%dT%H%M%S.%fZ}/gate-error",
            failures=(f"the gate could not run, so it fails: {type(error).__name__}: {error}",),
            evaluated_rows=len(feed) if isinstance(feed, pd.DataFrame) else 0,
            data_docs_index=index if index.is_file() else None,
        )
    return GateResult(
        suite_name=suite_name,
        success=outcome.success,
        result_id=outcome.result_id,
        failures=outcome.failures,
        evaluated_rows=len(feed),
        data_docs_index=outcome.data_docs_index,
    )


def build_validation_frame(
    feed: pd.DataFrame, truth: pd.DataFrame, *, key_column: str, route_column: str | None = None
) -> pd.DataFrame:
    """The feed's columns as they are, then ``truth_known``, ``truth_age`` (Int64) and ``truth_restricted``.

    A feed without its key column gets ``truth_known`` False on every row (the column check reports the missing
    column). Rows whose key the truth does not know have ``truth_age`` null and ``truth_restricted`` False; they
    fail ``truth_known``.
    """
    clashes = [str(column) for column in feed.columns if str(column).startswith(TRUTH_PREFIX)]
    if clashes:
        raise GateInputError(f"feed columns {clashes} use the prefix {TRUTH_PREFIX!r} that the gate reserves")
    missing = [column for column in _REQUIRED_TRUTH if column not in truth.columns]
    if missing:
        raise GateInputError(f"the truth frame has no columns {missing}")
    if truth["upn"].duplicated().any():
        raise GateInputError("the truth frame has more than one row for a UPN; it must be one row per pupil")
    frame = feed.reset_index(drop=True).copy()
    if key_column in frame.columns:
        keys = frame[key_column].astype(object)
    else:
        keys = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    by_upn = truth.set_index("upn")
    frame["truth_known"] = keys.isin(by_upn.index).astype(bool)
    frame["truth_age"] = keys.map(by_upn["age_on_feed_date"]).astype("Int64")
    frame["truth_restricted"] = keys.map(by_upn["is_restricted"]).eq(True).astype(bool)
    for column in extra_truth_columns(truth):
        values = keys.map(by_upn[column])
        frame[TRUTH_PREFIX + column.removeprefix(EXTRA_TRUTH_PREFIX)] = values.astype(object).where(
            values.notna(), None
        )
    if route_column is not None:
        frame[ROUTE_OK_COLUMN] = _route_ok(frame, keys, by_upn, route_column)
    return frame


def feed_keys(feed: pd.DataFrame, key_column: str) -> frozenset[str]:
    """The pupil keys a feed names (its key column's values, none when it has no such column): with the cohort,
    every pupil :func:`build_validation_frame` and :func:`feed_variables` read from the truth."""
    if key_column not in feed.columns:
        return frozenset()
    return frozenset(str(key) for key in feed[key_column] if key is not None and not pd.isna(key))


def _route_ok(frame: pd.DataFrame, keys: pd.Series, by_upn: pd.DataFrame, route_column: str) -> pd.Series:
    """Per row: the route value (compared as text) is one of the pupil's truth routes; False when unknown."""
    if ROUTES_TRUTH_COLUMN not in by_upn.columns:
        raise GateInputError(f"a routed feed needs a truth column {ROUTES_TRUTH_COLUMN!r}; the truth has none")
    if route_column not in frame.columns:
        return pd.Series(False, index=frame.index, dtype=bool)
    allowed = keys.map(by_upn[ROUTES_TRUTH_COLUMN])
    values = frame[route_column]
    checks = [
        value is not None and not pd.isna(value) and isinstance(routes, tuple | list) and str(value) in map(str, routes)
        for value, routes in zip(values, allowed, strict=True)
    ]
    return pd.Series(checks, index=frame.index, dtype=bool)


def extra_truth_columns(truth: pd.DataFrame) -> list[str]:
    """The truth's recipient-specific columns (``gate_<name>``), in order."""
    return [str(column) for column in truth.columns if str(column).startswith(EXTRA_TRUTH_PREFIX)]


def expected_row_count(recipient: RecipientPolicy, truth: pd.DataFrame) -> int:
    """Rows the feed must have: pupils in the cohort (less the excluded, when the opt-out effect is exclude), times
    their routes for a routed recipient (a pupil with no route has no row; one with two routes has two)."""
    eligible = truth["is_in_cohort"].eq(True)
    # exclude: an opted-out pupil has no row; not_measured (NCMP): an opted-out child was never measured, so no row
    if recipient.opt_out is not None and recipient.opt_out.effect in ("exclude", "not_measured"):
        eligible &= ~truth["is_restricted"].eq(True)
    if recipient.route_column is None:
        return int(eligible.sum())
    if ROUTES_TRUTH_COLUMN not in truth.columns:
        raise GateInputError(f"a routed feed needs a truth column {ROUTES_TRUTH_COLUMN!r}; the truth has none")
    return int(sum(len(routes) for routes in truth.loc[eligible, ROUTES_TRUTH_COLUMN]))


def feed_variables(recipient: RecipientPolicy, truth: pd.DataFrame, spec: SuiteSpec) -> dict[str, Any]:
    """The values a feed suite's ``$variables`` stand for in this run: policy values and truth counts."""
    if recipient.cohort.min_age_years is None and "min_age_years" in spec_variables(spec):
        raise GateInputError(f"recipient {recipient.recipient_id}: the policy gives no cohort.min_age_years")
    not_identity = [field for field in spec.identity_required if field not in recipient.identity_fields]
    if not_identity:
        raise GateInputError(
            f"{spec.suite}: identity_required {not_identity} are not identity fields of {recipient.recipient_id}"
        )
    return {
        "recipient_id": recipient.recipient_id,
        "key_column": recipient.key_column,
        "mart_columns": list(recipient.mart_columns),
        "truth_columns": [
            *TRUTH_FRAME_COLUMNS,
            *(TRUTH_PREFIX + name.removeprefix(EXTRA_TRUTH_PREFIX) for name in extra_truth_columns(truth)),
            *((ROUTE_OK_COLUMN,) if recipient.route_column else ()),
        ],
        "identity_fields": list(recipient.identity_fields),
        "identity_required": list(spec.identity_required),
        "further_fields": list(recipient.further_fields),
        # a restricted row: these must be null; the restricted_extra_fields (not from school data) may be filled
        "restricted_blank_fields": list(recipient.restricted_blank_fields),
        "restricted_extra_fields": list(recipient.restricted_extra_fields),
        "min_age_years": recipient.cohort.min_age_years,
        "cohort_row_count": int(truth["is_in_cohort"].eq(True).sum()),
        "route_column": recipient.route_column,
        "expected_row_count": expected_row_count(recipient, truth),
    }


def _run_name(feed_date: dt.date, run_id: str) -> str:
    """A Data Docs run name: the feed date and the Airflow run id, safe as a folder name."""
    return f"{feed_date.isoformat()}__{re.sub(r'[^A-Za-z0-9._-]+', '_', run_id)[:120]}"
