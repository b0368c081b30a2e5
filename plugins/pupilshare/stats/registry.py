"""The registry of published statistics tables (``tables.yml``) loaded into strict models: a typo is an error at load.

Each entry names a dbt model in ``models/stats/`` (integer counts per school) and says how to publish it: its EES
filters (an optional ``topic``, the ``dimensions`` that add up to a Total, the ``school_groups`` shown per school and
used to break the Local authority level down), its indicators (counts and percentages), and its geographic levels.
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
    """An EES indicator: the count itself, or a percentage of the same cell with the ``of`` dimensions at Total."""

    column: str = Field(pattern=_SNAKE)
    label: str = Field(min_length=1)
    kind: Literal["count", "percent"]
    of: tuple[str, ...] = ()
    unit: Literal["", "%"] = ""
    dp: int | None = Field(default=None, ge=0, le=4)
    grouping: str = ""

    @model_validator(mode="after")
    def _kind_fits(self) -> IndicatorSpec:
        if self.kind == "count" and (self.of or self.unit):
            raise ValueError(f"indicator {self.column}: a count has no `of` and no unit")
        if self.kind == "percent" and (not self.of or self.unit != "%"):
            raise ValueError(f"indicator {self.column}: a percent needs `of` (its denominator) and unit '%'")
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
    dimensions: tuple[FilterSpec, ...] = Field(min_length=1)
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
        counts = [indicator for indicator in self.indicators if indicator.kind == "count"]
        if [indicator.column for indicator in counts] != [self.count]:
            raise ValueError(f"table {self.name}: exactly one count indicator, named like `count` ({self.count})")
        dimensions = {spec.column for spec in self.dimensions}
        for indicator in self.indicators:
            if not set(indicator.of) <= dimensions:
                raise ValueError(f"table {self.name}: {indicator.column} is `of` {indicator.of}, not dimensions")
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
    def model_columns(self) -> tuple[str, ...]:
        """The columns read from the model."""
        return (*MODEL_BASE_COLUMNS, *(spec.column for spec in self.filter_specs), self.count)

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
