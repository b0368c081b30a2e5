"""The registry of published statistics tables (``tables.yml``) loaded into strict models: a typo is an error at load.

Each entry names a dbt model in ``models/stats/`` (integer counts per school) and says how to publish it: its EES
filters (an optional ``topic``, the ``dimensions`` that add up to a Total, the ``school_groups`` shown per school and
used to break the Local authority level down), its indicators and its geographic levels.

Indicator kinds:

- ``count``: a whole-number column of the model, suppressed cell by cell. The first is the table's ``count`` (the
  one percentages are of); a table may have more (sessions authorised, unauthorised...), each its own linked table
  set, and ``sum_of`` says a count is the sum of others in every cell (overall = authorised + unauthorised), so that
  suppression and the audit see that link too.
- ``percent``: the table's count as a percentage of the same cell with the ``of`` dimensions at Total.
- ``ratio``: ``numerator / denominator`` of two count or sum columns in the same cell (times 100 with unit ``%``);
  ``c`` when either count (for a sum: the count it follows) is hidden, ``z`` when the denominator is 0.
- ``sum``: a column of the model that is not a whole-number count (FTE, days lost); never a cell of the linked table
  set: it is published as ``c`` wherever the count it ``follows`` is hidden (primary or secondary), so its pattern is
  that count's pattern.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

REGISTRY_PATH = Path(__file__).with_name("tables.yml")
_SNAKE = r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$"
#: Columns every stats model has besides its filters and count (the EES time and school geography).
MODEL_BASE_COLUMNS: tuple[str, ...] = ("time_period", "time_identifier", "school_urn", "school_laestab", "school_name")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FilterSpec(_Strict):
    """A column of the model published as an EES filter."""

    column: str = Field(pattern=_SNAKE)
    label: str = Field(min_length=1)
    hint: str = ""


class IndicatorSpec(_Strict):
    """An EES indicator: a count, a percentage, a ratio of two counts, or a sum that follows a count (module doc)."""

    column: str = Field(pattern=_SNAKE)
    label: str = Field(min_length=1)
    kind: Literal["count", "percent", "ratio", "sum"]
    of: tuple[str, ...] = ()
    sum_of: tuple[str, ...] = ()
    numerator: str = ""
    denominator: str = ""
    follows: str = ""
    unit: Literal["", "%"] = ""
    dp: int | None = Field(default=None, ge=0, le=4)
    grouping: str = ""

    @model_validator(mode="after")
    def _kind_fits(self) -> IndicatorSpec:
        used = {
            "of": bool(self.of),
            "sum_of": bool(self.sum_of),
            "numerator": bool(self.numerator or self.denominator),
            "follows": bool(self.follows),
        }
        allowed = {"count": {"sum_of"}, "percent": {"of"}, "ratio": {"numerator"}, "sum": {"follows"}}[self.kind]
        wrong = sorted(key for key, is_set in used.items() if is_set and key not in allowed)
        if wrong:
            raise ValueError(f"indicator {self.column}: a {self.kind} has no {wrong}")
        if self.kind == "count" and self.unit:
            raise ValueError(f"indicator {self.column}: a count has no unit")
        if self.kind == "percent" and (not self.of or self.unit != "%"):
            raise ValueError(f"indicator {self.column}: a percent needs `of` (its denominator) and unit '%'")
        if self.kind == "ratio" and not (self.numerator and self.denominator):
            raise ValueError(f"indicator {self.column}: a ratio needs a numerator and a denominator count")
        if self.kind == "sum" and not self.follows:
            raise ValueError(f"indicator {self.column}: a sum needs the count it `follows` for suppression")
        return self


class StatisticsTable(_Strict):
    """One published table: where its counts come from and how it is laid out in the EES file."""

    name: str = Field(pattern=_SNAKE)
    title: str = Field(min_length=1)
    description: str = Field(min_length=1)
    model: str = Field(pattern=_SNAKE)
    schema_name: str = Field(default="stats", alias="schema", pattern=_SNAKE)
    count: str = Field(pattern=_SNAKE)
    topic: FilterSpec | None = None
    dimensions: tuple[FilterSpec, ...] = ()
    school_groups: tuple[FilterSpec, ...] = ()
    filters: dict[str, tuple[str, ...]] = Field(
        default_factory=dict, description="Rows kept: those whose column holds one of the listed values."
    )
    geographic_levels: tuple[Literal["School", "Local authority"], ...] = Field(min_length=1)
    indicators: tuple[IndicatorSpec, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> StatisticsTable:
        filters = [spec.column for spec in self.filter_specs]
        names = [*MODEL_BASE_COLUMNS, *filters, *(indicator.column for indicator in self.indicators)]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"table {self.name}: columns named twice: {duplicates}")
        if not self.dimensions and not self.school_groups:
            raise ValueError(f"table {self.name}: needs a dimension or a school group (the LA level breaks down)")
        counts = self.count_columns
        if not counts or counts[0] != self.count:
            raise ValueError(f"table {self.name}: the first count indicator must be the table's `count` ({self.count})")
        dimensions = {spec.column for spec in self.dimensions}
        for indicator in self.indicators:
            if not set(indicator.of) <= dimensions:
                raise ValueError(f"table {self.name}: {indicator.column} is `of` {indicator.of}, not dimensions")
            named = {*indicator.sum_of, indicator.follows} - {""}
            if not named <= set(counts) or indicator.column in indicator.sum_of:
                raise ValueError(f"table {self.name}: {indicator.column} names {sorted(named)}, not other counts")
            inputs = {indicator.numerator, indicator.denominator} - {""}
            if not inputs <= {*counts, *self.sum_columns}:
                raise ValueError(f"table {self.name}: {indicator.column} divides {sorted(inputs)}, not counts or sums")
        if "Local authority" not in self.geographic_levels:
            raise ValueError(f"table {self.name}: the Local authority level is always published (it is the total)")
        if len(set(self.geographic_levels)) != len(self.geographic_levels):
            raise ValueError(f"table {self.name}: a geographic level is listed twice")
        unknown = sorted(set(self.filters) - set(filters))
        if unknown:
            raise ValueError(f"table {self.name}: filters on columns that are not filters: {unknown}")
        return self

    @property
    def filter_specs(self) -> tuple[FilterSpec, ...]:
        """Every EES filter in file order: school groups, the topic, then the dimensions."""
        return (*self.school_groups, *((self.topic,) if self.topic else ()), *self.dimensions)

    @property
    def count_columns(self) -> tuple[str, ...]:
        """The whole-number count columns, the table's ``count`` first: each is suppressed cell by cell."""
        return tuple(indicator.column for indicator in self.indicators if indicator.kind == "count")

    @property
    def sum_columns(self) -> tuple[str, ...]:
        """The non-count value columns (kind ``sum``): published only where the count they follow is."""
        return tuple(indicator.column for indicator in self.indicators if indicator.kind == "sum")

    @property
    def model_columns(self) -> tuple[str, ...]:
        """The columns read from the model."""
        filters = (spec.column for spec in self.filter_specs)
        return (*MODEL_BASE_COLUMNS, *filters, *self.count_columns, *self.sum_columns)

    @property
    def publishes_schools(self) -> bool:
        return "School" in self.geographic_levels


class StatisticsRegistry(_Strict):
    """Every published statistics table."""

    version: str
    tables: tuple[StatisticsTable, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> StatisticsRegistry:
        names = [table.name for table in self.tables]
        if len(set(names)) != len(names):
            raise ValueError(f"table names must be unique: {names}")
        return self

    def table(self, name: str) -> StatisticsTable:
        for table in self.tables:
            if table.name == name:
                return table
        raise KeyError(f"no statistics table {name!r} in the registry")


def load_registry(path: Path = REGISTRY_PATH) -> StatisticsRegistry:
    """Load and validate the statistics table registry."""
    with Path(path).open(encoding="utf-8") as handle:
        return StatisticsRegistry.model_validate(yaml.safe_load(handle))


@cache
def default_registry() -> StatisticsRegistry:
    """The registry shipped with the package (cached)."""
    return load_registry()
