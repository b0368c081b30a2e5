"""The feed gate: check a recipient's built mart against the truth before anything is delivered.

The feed (one row per pupil, keyed by the recipient's internal key column) is joined to the truth (one row per UPN,
from :mod:`pupilshare.gates.truth`) into a *validation frame*: the feed's own columns, unchanged and in order, then
``truth_known`` (the key is a pupil on roll), ``truth_age`` (their age on the feed date) and ``truth_restricted``
(an opt-out or census ``yssa = No`` applies). The suite ``<recipient>__feed`` (``expectations/<recipient>__feed.yml``)
validates that frame in Great Expectations. Any error, in GX or before it, fails the gate (fail closed).
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
from pupilshare.gates.spec import SuiteSpec, load_suite_spec, resolve_expectations
from pupilshare.policy import RecipientPolicy

log = logging.getLogger(__name__)

#: Columns the gate appends to the feed; a feed column may not use the prefix.
TRUTH_PREFIX = "truth_"
TRUTH_FRAME_COLUMNS = ("truth_known", "truth_age", "truth_restricted")
_REQUIRED_TRUTH = ("upn", "age_on_feed_date", "is_in_cohort", "is_restricted")


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
        frame = build_validation_frame(feed, truth, key_column=recipient.key_column)
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


def build_validation_frame(feed: pd.DataFrame, truth: pd.DataFrame, *, key_column: str) -> pd.DataFrame:
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
    return frame


def feed_variables(recipient: RecipientPolicy, truth: pd.DataFrame, spec: SuiteSpec) -> dict[str, Any]:
    """The values a feed suite's ``$variables`` stand for in this run: policy values and truth counts."""
    if recipient.cohort.min_age_years is None:
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
        "truth_columns": list(TRUTH_FRAME_COLUMNS),
        "identity_fields": list(recipient.identity_fields),
        "identity_required": list(spec.identity_required),
        "further_fields": list(recipient.further_fields),
        "min_age_years": recipient.cohort.min_age_years,
        "cohort_row_count": int(truth["is_in_cohort"].eq(True).sum()),
    }


def _run_name(feed_date: dt.date, run_id: str) -> str:
    """A Data Docs run name: the feed date and the Airflow run id, safe as a folder name."""
    return f"{feed_date.isoformat()}__{re.sub(r'[^A-Za-z0-9._-]+', '_', run_id)[:120]}"
