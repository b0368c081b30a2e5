"""Gate suites as data: ``expectations/<recipient>__<artefact>.yml`` loaded into strict models.

A suite file lists Great Expectations expectations by class name, with kwargs that may name policy values
(``$mart_columns``, ``$min_age_years`` ...) and a ``why`` for each. :func:`load_suite_spec` refuses a typo at load
(unknown key, unknown expectation class, unknown ``$variable``); :func:`resolve_expectations` turns the spec and this
run's values into plain expectation definitions that :mod:`pupilshare.gates.gx_runner` hands to GX.

Variables: a kwarg value that is exactly ``"$name"`` is replaced by the value; inside a list, a ``"$name"`` whose
value is a list is spliced in (``[$mart_columns, $truth_columns]`` is the mart columns followed by the truth
columns). ``for_each_column`` makes one expectation per column, so Data Docs and failures name each column.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from pupilshare import PROJECT_ROOT

EXPECTATIONS_DIR = PROJECT_ROOT / "expectations"

#: Every ``$variable`` a suite may use; the gate supplies each one per run (see ``feed_variables``).
KNOWN_VARIABLES = frozenset(
    {
        "recipient_id",
        "key_column",
        "mart_columns",
        "truth_columns",
        "identity_fields",
        "identity_required",
        "further_fields",
        "restricted_blank_fields",
        "restricted_extra_fields",
        "min_age_years",
        "cohort_row_count",
        "route_column",
        "expected_row_count",
    }
)
_VARIABLE = re.compile(r"^\$([a-z_][a-z0-9_]*)$")


class SuiteSpecError(ValueError):
    """A suite file cannot be turned into expectations (unknown variable, bad column list)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RowConditionSpec(_Strict):
    """Apply the expectation only to rows where ``column`` equals ``equals``."""

    column: str = Field(min_length=1)
    equals: bool | int | str


class ExpectationSpec(_Strict):
    """One expectation of a suite (or one per column with ``for_each_column``)."""

    check: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="Short id, used in failures and Data Docs.")
    expectation: str = Field(description="GX 1.x expectation class name, e.g. ExpectColumnValuesToBeNull.")
    for_each_column: str | tuple[str, ...] | None = None
    kwargs: dict[str, Any] = Field(default_factory=dict)
    row_condition: RowConditionSpec | None = None
    why: str = Field(min_length=20, description="Why this check exists: the rule or risk it guards.")

    @field_validator("expectation")
    @classmethod
    def _known_gx_class(cls, name: str) -> str:
        import great_expectations as gx  # heavy; only when a suite is loaded

        if not isinstance(getattr(gx.expectations, name, None), type):
            raise ValueError(f"{name!r} is not a Great Expectations expectation class (gx.expectations.{name})")
        return name

    @model_validator(mode="after")
    def _column_given_once(self) -> ExpectationSpec:
        if self.for_each_column is not None and "column" in self.kwargs:
            raise ValueError(f"check {self.check}: give for_each_column or kwargs.column, not both")
        if "row_condition" in self.kwargs or "condition_parser" in self.kwargs:
            raise ValueError(f"check {self.check}: put the row condition under row_condition, not kwargs")
        return self


class SuiteSpec(_Strict):
    """A gate suite: its name, and the expectations that guard one published artefact."""

    suite: str = Field(pattern=r"^[a-z][a-z0-9_]*__[a-z][a-z0-9_]*$", description="<recipient>__<artefact>")
    description: str = Field(min_length=1)
    identity_required: tuple[str, ...] = ()
    expectations: tuple[ExpectationSpec, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> SuiteSpec:
        checks = [spec.check for spec in self.expectations]
        duplicates = sorted({check for check in checks if checks.count(check) > 1})
        if duplicates:
            raise ValueError(f"suite {self.suite}: checks listed twice: {duplicates}")
        used = _variables_in([[spec.kwargs, spec.for_each_column] for spec in self.expectations])
        unknown = sorted(used - KNOWN_VARIABLES)
        if unknown:
            raise ValueError(f"suite {self.suite}: unknown variables {unknown}; known: {sorted(KNOWN_VARIABLES)}")
        return self


@dataclass(frozen=True)
class ResolvedExpectation:
    """One concrete expectation: the GX class name and its kwargs, plus where it came from and why."""

    check: str
    expectation: str
    kwargs: dict[str, Any]
    row_condition: RowConditionSpec | None
    why: str


def suite_path(suite_name: str, expectations_dir: Path | None = None) -> Path:
    """Where the suite file of ``suite_name`` lives."""
    return (expectations_dir or EXPECTATIONS_DIR) / f"{suite_name}.yml"


def load_suite_spec(suite_name: str, expectations_dir: Path | None = None) -> SuiteSpec:
    """Load and validate ``<expectations_dir>/<suite_name>.yml``; its ``suite:`` must equal the file name."""
    path = suite_path(suite_name, expectations_dir)
    with path.open(encoding="utf-8") as handle:
        spec = SuiteSpec.model_validate(yaml.safe_load(handle))
    if spec.suite != suite_name:
        raise SuiteSpecError(f"{path} declares suite {spec.suite!r}; the file must be named {spec.suite}.yml")
    return spec


def resolve_expectations(spec: SuiteSpec, variables: Mapping[str, Any]) -> list[ResolvedExpectation]:
    """Expand ``for_each_column`` and replace every ``$variable``: the concrete expectations of one run."""
    resolved: list[ResolvedExpectation] = []
    for item in spec.expectations:
        kwargs = {key: _resolve(value, variables) for key, value in item.kwargs.items()}
        if item.for_each_column is None:
            resolved.append(ResolvedExpectation(item.check, item.expectation, kwargs, item.row_condition, item.why))
            continue
        columns = _resolve(item.for_each_column, variables)
        if isinstance(columns, str):
            columns = [columns]
        if not columns:
            raise SuiteSpecError(f"check {item.check}: for_each_column {item.for_each_column!r} names no column")
        for column in columns:
            resolved.append(
                ResolvedExpectation(
                    f"{item.check}[{column}]",
                    item.expectation,
                    {**kwargs, "column": column},
                    item.row_condition,
                    item.why,
                )
            )
    return resolved


def spec_variables(spec: SuiteSpec) -> set[str]:
    """Every ``$variable`` a suite uses."""
    return _variables_in([[item.kwargs, item.for_each_column] for item in spec.expectations])


def _resolve(value: Any, variables: Mapping[str, Any]) -> Any:
    if isinstance(value, str):
        match = _VARIABLE.match(value)
        if not match:
            return value
        if match.group(1) not in variables:
            raise SuiteSpecError(f"no value for {value} in this run; the gate supplies {sorted(variables)}")
        found = variables[match.group(1)]
        return list(found) if isinstance(found, tuple) else found
    if isinstance(value, list | tuple):
        items: list[Any] = []
        for element in value:
            element_value = _resolve(element, variables)
            if isinstance(element, str) and _VARIABLE.match(element) and isinstance(element_value, list):
                items.extend(element_value)
            else:
                items.append(element_value)
        return items
    if isinstance(value, dict):
        return {key: _resolve(item, variables) for key, item in value.items()}
    return value


def _variables_in(value: Any) -> set[str]:
    if isinstance(value, str):
        match = _VARIABLE.match(value)
        return {match.group(1)} if match else set()
    if isinstance(value, list | tuple):
        return set().union(*(_variables_in(item) for item in value)) if value else set()
    if isinstance(value, dict):
        return set().union(*(_variables_in(item) for item in value.values())) if value else set()
    return set()
