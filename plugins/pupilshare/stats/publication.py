"""One registered statistics table, from the counts of its dbt model to a checked EES data frame.

Grain of the input frame (the model, one time period): one row per school, topic value and dimension values, with a
whole-number count. From it :func:`build_linked_tables` makes the linked table set that suppression and the audit see:

    school table  school_urn x topic x dimensions, margins over school_urn and the dimensions
                  (its ``school_urn = Total`` cells are the Local authority row: the sum over schools)
    LA table      school groups x topic x dimensions, margins over the groups and the dimensions
    links         LA table at every group Total == school table at school Total    (link_tables: the same counts)
                  LA cell of one group combination == sum of the school cells of the schools in it
                  (a reader who knows each school's phase can add the school rows up)
                  the all-Total cell of every topic value == that of the first one (every topic value is a
                  breakdown of the same pupils, so they share one published Total row)

A table with several count columns (``tables.yml`` indicators of kind ``count``) gets the tables and links above once
per column (table names ``<name>/<column>:la`` and ``:school``; the table's own count keeps ``<name>:la``), plus
``column = sum(parts)`` in every cell for a count declared ``sum_of`` other counts. Ratios are derived cells on two
counts of the same cell; ``sum`` columns (FTE, days) are not cells: they are derived cells on the count they follow,
so they are hidden exactly where it is, and their values are added up over the same margins.

The twin cells (school table at ``school_urn = Total``, the Total cell of every topic value but the first) are not
written to the file; the audit still counts them as published unless hidden, which only makes it stricter.
:func:`protect_tables` suppresses (primary, secondary), hides derived percentages built on a hidden count and runs the
independent audit gate; :func:`render_ees_frame` writes the published cells as EES rows, hidden ones as ``c``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import pandas as pd

from pupilshare.stats.audit import AuditReport, assert_publishable
from pupilshare.stats.config import DisclosureConfig
from pupilshare.stats.ees import EESColumn
from pupilshare.stats.registry import IndicatorSpec, StatisticsTable
from pupilshare.stats.suppression import (
    HIDDEN_SYMBOL,
    TOTAL,
    Constraint,
    SuppressionResult,
    TableSet,
    TableSetError,
    build_table,
    combine_tables,
    find_derived_to_hide,
    link_cells,
    link_tables,
    make_cell_id,
    suppress_table_set,
)

SCHOOL_KEY = "school_urn"
SCHOOL_LEVEL = "School"
LA_LEVEL = "Local authority"
#: GSS symbol for a percentage whose denominator is 0.
NOT_APPLICABLE = "z"
ENGLAND = ("E92000001", "England")
#: ``sum`` indicators (FTE, days) are added up as whole numbers of millionths, then divided back.
_SUM_SCALE = 1_000_000

Suppressor = Callable[[TableSet, DisclosureConfig], SuppressionResult]


class StatisticsModelError(TableSetError):
    """The rows of a stats model do not fit its registry entry (columns, time periods, school attributes)."""


@dataclass(frozen=True)
class LocalAuthority:
    """The LA the statistics are about (settings ``la_code``, ``new_la_code``, ``la_name``)."""

    old_la_code: str
    new_la_code: str
    la_name: str


@dataclass(frozen=True)
class PublishedCell:
    """A count written to the EES file: its level, school (school level only) and every filter value."""

    cell_id: str
    level: str
    school_urn: str | None
    filters: Mapping[str, str]


@dataclass(frozen=True)
class LinkedTables:
    """A table's linked table set, the cells written to the file and the derived percentages built on them."""

    spec: StatisticsTable
    time_period: str
    time_identifier: str
    table_set: TableSet
    published: tuple[PublishedCell, ...]
    derived: Mapping[str, tuple[str, str]]
    schools: pd.DataFrame = field(repr=False)
    sums: Mapping[str, float] = field(default_factory=dict)

    @property
    def published_ids(self) -> frozenset[str]:
        """Every count cell written to the file: the table's count and its other count columns, row by row."""
        return frozenset(
            sibling_cell(self.table_set, cell.cell_id, self.spec, column)
            for cell in self.published
            for column in self.spec.count_columns
        )


@dataclass(frozen=True)
class CheckedTable:
    """A linked table set with a suppression pattern the audit gate has passed."""

    linked: LinkedTables
    suppression: SuppressionResult
    hidden: frozenset[str]
    report: AuditReport

    def summary(self) -> dict[str, object]:
        """Counts of published cells hidden (primary, secondary, derived) and the narrowest protection range."""
        published = self.linked.published_ids
        widths = [r.width for r in self.report.ranges if r.cell_id in published]
        narrowest = min(widths, default=None)
        return {
            "cells_published": len(published),
            "cells_primary": len(self.suppression.primary & published),
            "cells_secondary": len(self.suppression.secondary & published),
            "cells_derived_hidden": len(self.hidden & self.linked.derived.keys()),
            "min_protection_width": None if narrowest is None or math.isinf(narrowest) else narrowest,
            "audit_ok": self.report.publishable,
            "audit": self.report.describe(),
        }


def build_linked_tables(spec: StatisticsTable, frame: pd.DataFrame) -> LinkedTables:
    """The linked table set of one table for one time period (module docstring: the tables and their links)."""
    frame, schools = _checked_frame(spec, frame)
    groups = [spec_.column for spec_ in spec.school_groups]
    table_set = combine_tables(*(_count_tables(spec, frame, schools, groups, column) for column in spec.count_columns))
    sum_of = _sum_of_constraints(table_set, spec)
    table_set = TableSet(table_set.cells, table_set.constraints + sum_of, table_set.labels)
    twins = _topic_twins(table_set, spec) if spec.topic else []
    table_set = link_cells(table_set, twins)
    time_period, time_identifier = frame["time_period"].iat[0], frame["time_identifier"].iat[0]
    published = tuple(_published_cells(table_set, spec, schools, {twin for _, twin in twins}))
    derived = _derived_cells(table_set, spec, published)
    sums = _sum_values(spec, frame, published, table_set)
    return LinkedTables(spec, time_period, time_identifier, table_set, published, derived, schools, sums)


def table_name(spec: StatisticsTable, column: str, level: str) -> str:
    """The table name of one count column at one level (``la``, ``school``); the table's count keeps the bare name."""
    suffix = "" if column == spec.count else f"/{column}"
    return f"{spec.name}{suffix}:{level}"


def sibling_cell(table_set: TableSet, cell_id: str, spec: StatisticsTable, column: str) -> str:
    """The cell of count ``column`` at the same level and coordinates as the table's count cell ``cell_id``."""
    label = table_set.labels[cell_id]
    return make_cell_id(table_name(spec, column, label.table.rsplit(":", 1)[1]), label.as_dict())


def _level_tables(
    spec: StatisticsTable, frame: pd.DataFrame, groups: list[str], column: str
) -> tuple[TableSet, TableSet | None]:
    """The LA table and (when schools are published) the school table of one whole-number column."""
    topic = [spec.topic.column] if spec.topic else []
    dims = [spec_.column for spec_ in spec.dimensions]
    la_frame = frame.groupby([*groups, *topic, *dims], sort=True)[column].sum().reset_index()
    la_table = build_table(
        la_frame, table=table_name(spec, column, "la"), dimensions=[*groups, *topic, *dims], count=column,
        totals=[*groups, *dims],
    )  # fmt: skip
    if not spec.publishes_schools:
        return la_table, None
    school_table = build_table(
        frame, table=table_name(spec, column, "school"), dimensions=[SCHOOL_KEY, *topic, *dims], count=column,
        totals=[SCHOOL_KEY, *dims],
    )  # fmt: skip
    return la_table, school_table


def _count_tables(
    spec: StatisticsTable, frame: pd.DataFrame, schools: pd.DataFrame, groups: list[str], column: str
) -> TableSet:
    """One count column's LA table, linked to its school table and to the schools of each group."""
    la_table, school_table = _level_tables(spec, frame, groups, column)
    if school_table is None:
        return la_table
    linked = link_tables(
        school_table, la_table, first_where={SCHOOL_KEY: TOTAL}, second_where=dict.fromkeys(groups, TOTAL)
    )
    extra = _group_constraints(linked, la_table, schools, groups)
    return TableSet(linked.cells, linked.constraints + extra, linked.labels)


def _sum_of_constraints(table_set: TableSet, spec: StatisticsTable) -> tuple[Constraint, ...]:
    """A count declared ``sum_of`` other counts is their sum in every cell (overall = authorised + unauthorised)."""
    primary = (table_name(spec, spec.count, "la"), table_name(spec, spec.count, "school"))
    constraints = []
    for indicator in spec.indicators:
        if indicator.kind != "count" or not indicator.sum_of:
            continue
        for cell_id, label in table_set.labels.items():
            if label.table in primary:
                parts = tuple(sibling_cell(table_set, cell_id, spec, part) for part in indicator.sum_of)
                constraints.append(Constraint(sibling_cell(table_set, cell_id, spec, indicator.column), parts))
    return tuple(constraints)


def _sum_values(
    spec: StatisticsTable, frame: pd.DataFrame, published: Iterable[PublishedCell], table_set: TableSet
) -> dict[str, float]:
    """Derived id -> value of every ``sum`` indicator at every published cell (margins added as for the counts).

    The sums are scaled to whole numbers (``_SUM_SCALE``) only to reuse :func:`build_table` for the margins; they are
    not cells of the linked table set.
    """
    groups = [spec_.column for spec_ in spec.school_groups]
    values: dict[str, float] = {}
    for column in spec.sum_columns:
        scaled = frame.assign(**{column: (pd.to_numeric(frame[column]).astype(float) * _SUM_SCALE).round()})
        if scaled[column].isna().any():
            raise StatisticsModelError(f"table {spec.name}: {column} has missing values")
        scaled[column] = scaled[column].astype("int64")
        tables = [table for table in _level_tables(spec, scaled, groups, column) if table is not None]
        cells = {cell_id: value for table in tables for cell_id, value in table.cells.items()}
        for cell in published:
            values[f"{cell.cell_id}#{column}"] = cells[sibling_cell(table_set, cell.cell_id, spec, column)] / _SUM_SCALE
    return values


def protect_tables(
    linked: LinkedTables, config: DisclosureConfig, *, suppress: Suppressor = suppress_table_set
) -> CheckedTable:
    """Suppress, hide the derived cells on hidden counts, and pass the audit gate (or raise DisclosureRiskError)."""
    result = suppress(linked.table_set, config)
    hidden = frozenset(result.hidden | find_derived_to_hide(linked.derived, result.hidden))
    report = assert_publishable(linked.table_set, hidden, config, derived=linked.derived)
    return CheckedTable(linked, result, hidden, report)


def render_ees_frame(checked: CheckedTable, la: LocalAuthority) -> pd.DataFrame:
    """The EES tidy data: one row per published cell (grain: time period, geography, filter values)."""
    linked, spec = checked.linked, checked.linked.spec
    rows = []
    for cell in linked.published:
        row = {
            "time_period": linked.time_period,
            "time_identifier": linked.time_identifier,
            "geographic_level": cell.level,
            "country_code": ENGLAND[0],
            "country_name": ENGLAND[1],
            "new_la_code": la.new_la_code,
            "la_name": la.la_name,
            "old_la_code": la.old_la_code,
        }
        if spec.publishes_schools:
            school = linked.schools.loc[cell.school_urn] if cell.school_urn else None
            row["school_urn"] = cell.school_urn or ""
            row["school_laestab"] = "" if school is None else school["school_laestab"]
            row["school_name"] = "" if school is None else school["school_name"]
        row.update(cell.filters)
        for indicator in spec.indicators:
            row[indicator.column] = _indicator_value(checked, cell, indicator)
        rows.append(row)
    frame = pd.DataFrame(rows)
    order = frame["geographic_level"].ne(LA_LEVEL).astype(int)
    keys = ["school_laestab"] if spec.publishes_schools else []
    return frame.assign(_order=order).sort_values(["_order", *keys], kind="stable").drop(columns="_order")


def _indicator_value(checked: CheckedTable, cell: PublishedCell, indicator: IndicatorSpec) -> object:
    """One indicator of one published row: its number, ``c`` when hidden, ``z`` for a rate over 0."""
    linked = checked.linked
    if indicator.kind == "count":
        cell_id = sibling_cell(linked.table_set, cell.cell_id, linked.spec, indicator.column)
        return HIDDEN_SYMBOL if cell_id in checked.hidden else linked.table_set.cells[cell_id]
    derived_id = f"{cell.cell_id}#{indicator.column}"
    if derived_id in checked.hidden:
        return HIDDEN_SYMBOL
    if indicator.kind == "sum":
        return linked.sums[derived_id]
    if indicator.kind == "ratio":
        numerator, denominator = (
            _value_of(checked, cell, column) for column in (indicator.numerator, indicator.denominator)
        )
    else:
        numerator, denominator = (linked.table_set.cells[part] for part in linked.derived[derived_id])
    scale = 1.0 if indicator.kind == "ratio" and indicator.unit != "%" else 100.0
    return scale * numerator / denominator if denominator else NOT_APPLICABLE


def _value_of(checked: CheckedTable, cell: PublishedCell, column: str) -> float:
    """The value of a count or sum column at a published row (the true value: only called when it may be shown)."""
    linked = checked.linked
    if column in linked.spec.sum_columns:
        return linked.sums[f"{cell.cell_id}#{column}"]
    return linked.table_set.cells[sibling_cell(linked.table_set, cell.cell_id, linked.spec, column)]


def _count_behind(spec: StatisticsTable, column: str) -> str:
    """The count column whose cell decides whether ``column`` may be shown: itself, or the count a sum follows."""
    for indicator in spec.indicators:
        if indicator.column == column and indicator.kind == "sum":
            return indicator.follows
    return column


def ees_columns(spec: StatisticsTable) -> list[EESColumn]:
    """The ``.meta.csv`` rows of a table: its filters, then its indicators."""
    columns = [
        EESColumn(col_name=f.column, col_type="Filter", label=f.label, filter_hint=f.hint) for f in spec.filter_specs
    ]
    columns += [
        EESColumn(
            col_name=i.column,
            col_type="Indicator",
            label=i.label,
            indicator_grouping=i.grouping,
            indicator_unit=i.unit,
            indicator_dp=i.dp,
        )
        for i in spec.indicators
    ]
    return columns


def _checked_frame(spec: StatisticsTable, frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The model rows kept by the table's filters, and one row of attributes per school (index ``school_urn``)."""
    missing = [column for column in spec.model_columns if column not in frame.columns]
    if missing:
        raise StatisticsModelError(f"{spec.schema_name}.{spec.model} lacks columns {missing} for table {spec.name}")
    frame = frame[list(spec.model_columns)].copy()
    for column, values in spec.filters.items():
        frame = frame[frame[column].isin(values)]
    if frame.empty:
        raise StatisticsModelError(f"table {spec.name}: no rows left to publish")
    periods = frame[["time_period", "time_identifier"]].drop_duplicates()
    if len(periods) != 1 or periods.isna().any().any():
        raise StatisticsModelError(f"table {spec.name}: one time period at a time, got {periods.values.tolist()}")
    if frame[SCHOOL_KEY].isna().any():
        raise StatisticsModelError(f"table {spec.name}: rows without a school_urn")
    frame[SCHOOL_KEY] = frame[SCHOOL_KEY].astype("int64").astype(str)
    attributes = ["school_laestab", "school_name", *(g.column for g in spec.school_groups)]
    schools = frame[[SCHOOL_KEY, *attributes]].drop_duplicates()
    if schools[SCHOOL_KEY].duplicated().any() or schools[attributes].isna().any().any():
        raise StatisticsModelError(f"table {spec.name}: a school has no or more than one value of {attributes}")
    return frame, schools.set_index(SCHOOL_KEY)


def _group_constraints(
    table_set: TableSet, la_table: TableSet, schools: pd.DataFrame, groups: list[str]
) -> tuple[Constraint, ...]:
    """Each LA cell of one combination of school groups is the sum of the school cells of the schools in it."""
    if not groups:
        return ()
    members: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for urn, attributes in schools.iterrows():
        members[tuple(str(attributes[g]) for g in groups)].append(str(urn))
    constraints = []
    for cell_id, label in la_table.labels.items():
        coordinates = label.as_dict()
        key = tuple(coordinates[g] for g in groups)
        if TOTAL in key:
            continue
        rest = {dim: value for dim, value in coordinates.items() if dim not in groups}
        school_table = label.table.removesuffix(":la") + ":school"
        parts = [make_cell_id(school_table, {SCHOOL_KEY: urn, **rest}) for urn in members[key]]
        constraints.append(Constraint(cell_id, tuple(part for part in parts if part in table_set.cells)))
    return tuple(constraints)


def _topic_twins(table_set: TableSet, spec: StatisticsTable) -> list[tuple[str, str]]:
    """Pairs (first topic value's all-Total cell, another topic value's) at each geography: the same headcount."""
    topic, dims = spec.topic.column, [d.column for d in spec.dimensions]
    by_place: dict[tuple, list[tuple[str, str]]] = defaultdict(list)
    for cell_id, label in table_set.labels.items():
        coordinates = label.as_dict()
        if all(coordinates[dim] == TOTAL for dim in dims):
            place = (label.table, tuple((d, v) for d, v in label.coordinates if d != topic))
            by_place[place].append((coordinates[topic], cell_id))
    pairs = []
    for place, cells in by_place.items():
        (first_value, first), *others = sorted(cells)
        for value, other in others:
            if table_set.cells[other] != table_set.cells[first]:
                raise StatisticsModelError(
                    f"table {spec.name}: {topic} {value!r} adds up to {table_set.cells[other]} at {place}, but "
                    f"{first_value!r} to {table_set.cells[first]}: every {topic} must cover the same pupils"
                )
            pairs.append((first, other))
    return pairs


def _published_cells(
    table_set: TableSet, spec: StatisticsTable, schools: pd.DataFrame, twins: set[str]
) -> Iterable[PublishedCell]:
    """The cells written to the file: the LA table and the school rows; one Total row per geography (no twins)."""
    topic = spec.topic.column if spec.topic else None
    dims = [d.column for d in spec.dimensions]
    groups = [g.column for g in spec.school_groups]
    primary = (table_name(spec, spec.count, "la"), table_name(spec, spec.count, "school"))
    for cell_id, label in table_set.labels.items():
        if cell_id in twins or label.table not in primary:
            continue
        coordinates = label.as_dict()
        is_total_row = all(coordinates[dim] == TOTAL for dim in dims)
        filters = {dim: coordinates[dim] for dim in dims}
        if topic:
            filters = {topic: TOTAL if is_total_row else coordinates[topic], **filters}
        if label.table.endswith(":la"):
            yield PublishedCell(cell_id, LA_LEVEL, None, {**{g: coordinates[g] for g in groups}, **filters})
        elif coordinates[SCHOOL_KEY] != TOTAL:
            urn = coordinates[SCHOOL_KEY]
            attributes = {g: str(schools.at[urn, g]) for g in groups}
            yield PublishedCell(cell_id, SCHOOL_LEVEL, urn, {**attributes, **filters})


def _derived_cells(
    table_set: TableSet, spec: StatisticsTable, published: Iterable[PublishedCell]
) -> dict[str, tuple[str, str]]:
    """Derived id -> (numerator, denominator) for every percentage written: the denominator has ``of`` at Total."""
    derived = {}
    for cell in published:
        label = table_set.labels[cell.cell_id]
        for indicator in spec.indicators:
            derived_id = f"{cell.cell_id}#{indicator.column}"
            if indicator.kind == "percent":
                coordinates = {**label.as_dict(), **dict.fromkeys(indicator.of, TOTAL)}
                derived[derived_id] = (cell.cell_id, make_cell_id(label.table, coordinates))
            elif indicator.kind == "ratio":
                inputs = (_count_behind(spec, indicator.numerator), _count_behind(spec, indicator.denominator))
                derived[derived_id] = tuple(sibling_cell(table_set, cell.cell_id, spec, column) for column in inputs)
            elif indicator.kind == "sum":
                follows = sibling_cell(table_set, cell.cell_id, spec, indicator.follows)
                derived[derived_id] = (follows, follows)
    return derived
