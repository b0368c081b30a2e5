"""Run one gate suite over one data frame with Great Expectations 1.x, and build Data Docs.

Each run gets a fresh ephemeral Data Context: the suite is rebuilt from its YAML file every time (nothing stale can
be validated), validation results are kept as JSON under ``<data_docs_dir>/validation_results/`` so the Data Docs
index lists every gate run, and the filesystem Data Docs site is ``<data_docs_dir>/index.html``. GX is imported
here, inside functions, so importing :mod:`pupilshare.gates` stays cheap.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pupilshare.gates.spec import ResolvedExpectation

#: The Data Docs site name inside the GX context.
DATA_DOCS_SITE = "pupilshare_gates"
#: Folder under the Data Docs folder holding every run's validation result JSON (the index is built from it).
RESULTS_FOLDER = "validation_results"
#: Summary results: counts plus up to 20 example values per failed expectation, shown in Data Docs only. Failure
#: messages (logs, ledger) carry counts and column names, never a pupil's values.
# Counts of failing rows, but no example values: a failed gate's Data Docs must not become a copy of the
# pupils' data it was protecting (names, UPNs). The failing rows are found again from the staged mart.
_RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 0}


@dataclass(frozen=True)
class GxOutcome:
    """What one GX validation said: success, the result id, and one readable line per failed expectation."""

    success: bool
    result_id: str
    failures: tuple[str, ...]
    data_docs_index: Path | None


def validate_frame(
    frame: pd.DataFrame,
    *,
    suite_name: str,
    expectations: Sequence[ResolvedExpectation],
    suite_meta: dict[str, Any],
    run_name: str,
    run_time: dt.datetime,
    data_docs_dir: Path,
) -> GxOutcome:
    """Validate ``frame`` against the expectations as suite ``suite_name`` through a Checkpoint that updates Data Docs.

    Errors inside GX (a missing column, say) come back as failed expectations; an error that stops GX itself
    propagates, and the caller fails closed.
    """
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction

    data_docs_dir.mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="ephemeral", project_config=_context_config(data_docs_dir))
    batch_definition = (
        context.data_sources.add_pandas(name=f"{suite_name}__frames")
        .add_dataframe_asset(name=suite_name)
        .add_batch_definition_whole_dataframe(name="whole_frame")
    )
    suite = context.suites.add(
        gx.ExpectationSuite(
            name=suite_name,
            expectations=[_build_expectation(item) for item in expectations],
            meta=suite_meta,
            notes=[f"**{item.check}**: {item.why}" for item in _first_per_check(expectations)],
        )
    )
    validation = context.validation_definitions.add(
        gx.ValidationDefinition(name=suite_name, data=batch_definition, suite=suite)
    )
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name=f"{suite_name}__gate",
            validation_definitions=[validation],
            actions=[UpdateDataDocsAction(name="update_data_docs", site_names=[DATA_DOCS_SITE])],
            result_format=_RESULT_FORMAT,
        )
    )
    result = checkpoint.run(
        batch_parameters={"dataframe": frame},
        run_id=gx.RunIdentifier(run_name=run_name, run_time=run_time),
    )
    (key, suite_result), *others = result.run_results.items()
    index = data_docs_dir / "index.html"
    failures = _failures(suite_result, expectations)
    if others:
        failures.append(f"GX returned {len(others) + 1} validation results for one suite")
    return GxOutcome(
        success=result.success is True and suite_result.success is True and not failures,
        result_id="/".join(str(part) for part in key.to_tuple()),
        failures=tuple(failures),
        data_docs_index=index if index.is_file() else None,
    )


def _context_config(data_docs_dir: Path):
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    defaults = InMemoryStoreBackendDefaults(init_temp_docs_sites=False)
    stores = dict(defaults.stores)
    stores[defaults.validation_results_store_name] = {
        "class_name": "ValidationResultsStore",
        "store_backend": {
            "class_name": "TupleFilesystemStoreBackend",
            "base_directory": str(data_docs_dir / RESULTS_FOLDER),
        },
    }
    return DataContextConfig(
        store_backend_defaults=defaults,
        stores=stores,
        data_docs_sites={
            DATA_DOCS_SITE: {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(data_docs_dir)},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            }
        },
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )


def _build_expectation(item: ResolvedExpectation):
    import great_expectations as gx
    from great_expectations.expectations.row_conditions import Column

    kwargs = dict(item.kwargs)
    if item.row_condition is not None:
        kwargs["row_condition"] = Column(item.row_condition.column) == item.row_condition.equals
    expectation_class = getattr(gx.expectations, item.expectation)
    return expectation_class(**kwargs, meta={"check": item.check, "why": item.why}, notes=item.why)


def _first_per_check(expectations: Sequence[ResolvedExpectation]) -> list[ResolvedExpectation]:
    seen: dict[str, ResolvedExpectation] = {}
    for item in expectations:
        seen.setdefault(item.check.split("[", 1)[0], item)
    return list(seen.values())


def _failures(suite_result, expectations: Sequence[ResolvedExpectation]) -> list[str]:
    """One line per failed expectation, in suite order; and a line for any expectation GX did not report."""
    by_check = {(result.expectation_config.meta or {}).get("check"): result for result in suite_result.results}
    failures = []
    for item in expectations:
        result = by_check.get(item.check)
        if result is None:
            failures.append(f"{item.check}: GX returned no result for this expectation; treated as failed")
        elif result.success is not True:
            failures.append(f"{item.check}: {_describe(item)} failed: {_detail(item, result)}")
    return failures


def _describe(item: ResolvedExpectation) -> str:
    shown = {key: value for key, value in item.kwargs.items() if key in {"column", "value", "min_value", "value_set"}}
    text = item.expectation + "(" + ", ".join(f"{key}={value!r}" for key, value in shown.items()) + ")"
    if item.row_condition is not None:
        text += f" where {item.row_condition.column} == {item.row_condition.equals!r}"
    return text


def _detail(item: ResolvedExpectation, result) -> str:
    error = _exception_message(result.exception_info)
    if error:
        return f"GX could not evaluate it: {error}"
    outcome = result.result or {}
    if item.expectation == "ExpectTableColumnsToMatchOrderedList":
        return _column_list_detail(list(item.kwargs.get("column_list", [])), list(outcome.get("observed_value") or []))
    if "unexpected_count" in outcome:
        return f"{outcome['unexpected_count']} of {outcome.get('element_count', '?')} rows do not meet it"
    if "observed_value" in outcome and item.expectation.startswith("ExpectTable"):
        return f"observed {outcome['observed_value']!r}"
    return "see Data Docs"


def _column_list_detail(expected: list[str], observed: list[str]) -> str:
    extra = [column for column in observed if column not in expected]
    missing = [column for column in expected if column not in observed]
    parts = []
    if extra:
        parts.append(f"unexpected columns {extra}")
    if missing:
        parts.append(f"missing columns {missing}")
    if not parts:
        parts.append(f"columns in the wrong order or repeated: {observed}")
    return "; ".join(parts)


def _exception_message(info: Any) -> str | None:
    """The first exception message in a GX ``exception_info`` (flat, or keyed by metric id)."""
    if not isinstance(info, dict):
        return None
    if info.get("raised_exception"):
        return str(info.get("exception_message") or "unknown error")
    for value in info.values():
        if isinstance(value, dict) and value.get("raised_exception"):
            return str(value.get("exception_message") or "unknown error")
    return None
