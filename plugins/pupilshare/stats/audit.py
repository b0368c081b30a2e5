"""Independent audit of a suppression pattern: can any hidden count be worked back out from what is published?

This module deliberately does not import :mod:`pupilshare.stats.suppression`: it reads only the cells, the additivity
constraints and the set of hidden ids, and builds its own linear programme, so a bug in the code that chose the pattern
is not repeated here. Any object with ``cells`` (id -> count) and ``constraints`` (each with ``total`` and ``parts``)
can be audited.

For every hidden count the audit asks HiGHS for the lowest and highest value it can take: published cells are fixed at
their values (they are moved to the right-hand side, so only hidden cells are variables), hidden cells are real numbers
of 0 or more, and every constraint ``total = sum(parts)`` holds. A hidden total whose parts are all published is pinned
to one value by its constraint, so it shows up here with ``lo == hi``; a cell linked to another table through a shared
total is covered the same way. The cell is protected when ``floor(hi) - ceil(lo) >= protection`` (the definition in
:mod:`pupilshare.stats`), with ``protection`` defaulting to the threshold. An end of a range is taken without its LP
only when it is proven already: 0 when an earlier optimum put the count at 0, or a constraint's ceiling (the parts of
a published total cannot exceed it) when an earlier optimum reached it (:func:`_bound_hidden`).

The audit also fails a pattern that publishes a count from 1 to ``threshold - 1`` (primary suppression missed) or a
derived figure (rate, percentage) whose numerator or denominator is hidden. It does not look for attacks that need
whole-number reasoning beyond rounding the range ends (the linear relaxation is the standard audit, as in Tau-Argus).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import highspy
import numpy as np

from pupilshare.stats.config import DisclosureConfig

_EPS = 1e-6
#: How near a seen value must be to 0 or to a ceiling to settle that end of a range (solver tolerance is 1e-7).
_SEEN_EPS = 1e-9
_INF = highspy.kHighsInf


class DisclosureRiskError(Exception):
    """A suppression pattern leaves a count exposed: nothing may be published."""

    def __init__(self, report: AuditReport) -> None:
        self.report = report
        super().__init__(report.describe())


class AuditInputError(ValueError):
    """The audit cannot run on this input (unknown ids, a table that does not add up, a solver failure)."""


class ConstraintLike(Protocol):
    """An additivity rule ``total = sum(parts)``."""

    @property
    def total(self) -> str: ...

    @property
    def parts(self) -> Sequence[str]: ...


class TableSetLike(Protocol):
    """Cells and the constraints linking them; :class:`pupilshare.stats.suppression.TableSet` is one."""

    @property
    def cells(self) -> Mapping[str, int]: ...

    @property
    def constraints(self) -> Sequence[ConstraintLike]: ...


@dataclass(frozen=True)
class CellRange:
    """What the published figures say about one hidden count: it lies in ``[lo, hi]`` (``hi`` may be infinite)."""

    cell_id: str
    value: int
    lo: float
    hi: float
    ok: bool

    @property
    def width(self) -> float:
        """``floor(hi) - ceil(lo)``: how many whole numbers the range spans, minus one."""
        return _width(self.lo, self.hi)


@dataclass(frozen=True)
class Exposure:
    """One reason a table set may not be published."""

    cell_id: str
    reason: str


@dataclass(frozen=True)
class AuditReport:
    """The audit result: one range per hidden count and every exposure found (none means publishable)."""

    threshold: int
    protection: int
    ranges: tuple[CellRange, ...]
    exposures: tuple[Exposure, ...]

    @property
    def publishable(self) -> bool:
        """True when nothing is exposed."""
        return not self.exposures

    def describe(self, limit: int = 20) -> str:
        """A message a data engineer can act on, listing up to ``limit`` exposures."""
        if self.publishable:
            return f"all {len(self.ranges)} hidden counts protected (width >= {self.protection})"
        lines = [f"{len(self.exposures)} disclosure risk(s); protection width {self.protection}:"]
        lines += [f"  {e.cell_id}: {e.reason}" for e in self.exposures[:limit]]
        if len(self.exposures) > limit:
            lines.append(f"  ... and {len(self.exposures) - limit} more")
        return "\n".join(lines)


def audit_suppression(
    table_set: TableSetLike,
    hidden: Collection[str],
    config: DisclosureConfig | None = None,
    *,
    derived: Mapping[str, tuple[str, str]] | None = None,
) -> AuditReport:
    """Audit a suppression pattern: a range per hidden count, plus every exposure.

    ``hidden`` holds the ids published as ``c``: counts of ``table_set`` and, optionally, derived cells named in
    ``derived`` (derived id -> ``(numerator_id, denominator_id)``).
    """
    config = config or DisclosureConfig()
    cells = dict(table_set.cells)
    derived = dict(derived or {})
    hidden_counts = _check_input(cells, table_set.constraints, set(hidden), derived)
    width = config.required_width
    ranges = tuple(_bound_hidden(cells, table_set.constraints, hidden_counts, width))
    exposures = [
        Exposure(r.cell_id, f"can be narrowed to [{_fmt(r.lo)}, {_fmt(r.hi)}] (width {r.width:g} < {width})")
        for r in ranges
        if not r.ok
    ]
    exposures += _find_small_published(cells, set(hidden), config.threshold)
    exposures += _find_exposed_derived(derived, set(hidden))
    return AuditReport(config.threshold, width, ranges, tuple(exposures))


def assert_publishable(
    table_set: TableSetLike,
    hidden: Collection[str],
    config: DisclosureConfig | None = None,
    *,
    derived: Mapping[str, tuple[str, str]] | None = None,
) -> AuditReport:
    """The publish gate: return the audit report, or raise :class:`DisclosureRiskError` listing the exposed cells."""
    report = audit_suppression(table_set, hidden, config, derived=derived)
    if not report.publishable:
        raise DisclosureRiskError(report)
    return report


def _width(lo: float, hi: float) -> float:
    if math.isinf(hi):
        return math.inf
    return math.floor(hi + _EPS) - math.ceil(lo - _EPS)


def _fmt(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:g}"


def _check_input(
    cells: Mapping[str, int],
    constraints: Iterable[ConstraintLike],
    hidden: set[str],
    derived: Mapping[str, tuple[str, str]],
) -> list[str]:
    """Check the input independently of whoever built it; return the hidden counts, sorted."""
    for constraint in constraints:
        ids = [constraint.total, *constraint.parts]
        if any(cell_id not in cells for cell_id in ids):
            raise AuditInputError(f"constraint on {constraint.total!r} names cells that are not in the table set")
        if cells[constraint.total] != sum(cells[part] for part in constraint.parts):
            raise AuditInputError(f"cell {constraint.total!r} is not the sum of its parts: the tables do not add up")
    unknown = sorted(hidden - cells.keys() - derived.keys())
    if unknown:
        raise AuditInputError(f"hidden ids that are neither cells nor derived cells: {unknown[:10]}")
    bad_inputs = sorted({i for inputs in derived.values() for i in inputs} - cells.keys())
    if bad_inputs:
        raise AuditInputError(f"derived cells built on unknown cells: {bad_inputs[:10]}")
    return sorted(hidden & cells.keys())


def _bound_hidden(
    cells: Mapping[str, int], constraints: Iterable[ConstraintLike], hidden: list[str], width: int
) -> Iterable[CellRange]:
    """Minimise and maximise each hidden count over everything consistent with the published cells.

    An LP is skipped only when its optimum is already proven: the range lies within ``[0, ceiling]`` (hidden counts
    are 0 or more; ``ceiling`` from :func:`_row_ceilings`), and a table already seen to satisfy the model (the optimum
    of an earlier LP here) puts the cell at 0, or at its ceiling, so that end of the range is exactly that.
    """
    if not hidden:
        return
    constraints = list(constraints)
    solver = _build_model(cells, constraints, hidden)
    ceilings = _row_ceilings(cells, constraints, hidden)
    seen = _SeenTables(len(hidden))
    for column, cell_id in enumerate(hidden):
        lo = 0.0 if seen.lowest[column] <= _SEEN_EPS else _optimise(solver, column, 1.0, cell_id, seen)
        if seen.highest[column] >= ceilings[column] - _SEEN_EPS:
            hi = float(ceilings[column])
        else:
            hi = -_optimise(solver, column, -1.0, cell_id, seen)
        value = cells[cell_id]
        if not lo - _EPS <= value <= hi + _EPS:
            raise AuditInputError(f"{cell_id!r}: true value {value} outside its own range [{lo}, {hi}]; audit fault")
        yield CellRange(cell_id, value, lo, hi, _width(lo, hi) >= width)


class _SeenTables:
    """Per hidden count, the lowest and highest value in any LP optimum found so far (each satisfies the model)."""

    def __init__(self, size: int) -> None:
        self.lowest = np.full(size, math.inf)
        self.highest = np.full(size, -math.inf)

    def add(self, values: np.ndarray) -> None:
        np.minimum(self.lowest, values, out=self.lowest)
        np.maximum(self.highest, values, out=self.highest)


def _row_ceilings(cells: Mapping[str, int], constraints: Iterable[ConstraintLike], hidden: list[str]) -> np.ndarray:
    """An upper bound on each hidden count from single constraints (``inf`` where none bounds it).

    In a constraint whose hidden counts all have the same sign (say the parts of a published total), the hidden
    counts add up to a known number ``b``; as none is below 0, none is above ``b``.
    """
    column_of = {cell_id: i for i, cell_id in enumerate(hidden)}
    ceilings = np.full(len(hidden), math.inf)
    for row, remainder in _hidden_rows(cells, constraints, column_of):
        signs = {math.copysign(1.0, coefficient) for coefficient in row.values() if coefficient}
        if len(signs) == 1:
            total = remainder * signs.pop()
            for column, coefficient in row.items():
                if coefficient:
                    ceilings[column] = min(ceilings[column], total / abs(coefficient))
    return ceilings


def _hidden_rows(
    cells: Mapping[str, int], constraints: Iterable[ConstraintLike], column_of: Mapping[str, int]
) -> Iterable[tuple[dict[int, float], float]]:
    """Each constraint touching a hidden count as ``(hidden column -> coefficient, published remainder)``."""
    for constraint in constraints:
        terms = [(constraint.total, 1.0)] + [(part, -1.0) for part in constraint.parts]
        row: dict[int, float] = {}
        remainder = 0.0
        for cell_id, sign in terms:
            if cell_id in column_of:
                row[column_of[cell_id]] = row.get(column_of[cell_id], 0.0) + sign
            else:
                remainder -= sign * cells[cell_id]
        if row:
            yield row, remainder


def _build_model(cells: Mapping[str, int], constraints: Iterable[ConstraintLike], hidden: list[str]) -> highspy.Highs:
    """Variables: hidden counts (>= 0). Rows: for each constraint touching them, hidden terms == published remainder."""
    column_of = {cell_id: i for i, cell_id in enumerate(hidden)}
    starts, indices, values, rhs = [], [], [], []
    for row, remainder in _hidden_rows(cells, constraints, column_of):
        starts.append(len(indices))
        indices += list(row)
        values += list(row.values())
        rhs.append(remainder)
    solver = highspy.Highs()
    solver.silent()
    solver.setOptionValue("presolve", "off")  # keep the basis between the per-cell solves
    solver.setOptionValue("simplex_strategy", 4)  # primal: only the objective changes, the last optimum stays feasible
    solver.addVars(len(hidden), np.zeros(len(hidden)), np.full(len(hidden), _INF))
    if rhs:
        bounds = np.array(rhs, dtype=np.float64)
        solver.addRows(
            len(rhs),
            bounds,
            bounds,
            len(indices),
            np.array(starts, dtype=np.int32),
            np.array(indices, dtype=np.int32),
            np.array(values, dtype=np.float64),
        )
    return solver


def _optimise(solver: highspy.Highs, column: int, sign: float, cell_id: str, seen: _SeenTables) -> float:
    """Minimise ``sign * x[column]``; ``-inf`` when unbounded. Only this column's cost changes: a warm start."""
    solver.changeColCost(column, sign)
    try:
        solver.run()
        status = solver.getModelStatus()
        if status == highspy.HighsModelStatus.kUnbounded:
            return -math.inf
        if status != highspy.HighsModelStatus.kOptimal:
            raise AuditInputError(f"HiGHS returned {solver.modelStatusToString(status)} bounding {cell_id!r}")
        seen.add(np.asarray(solver.getSolution().col_value))
        return solver.getInfo().objective_function_value
    finally:
        solver.changeColCost(column, 0.0)


def _find_small_published(cells: Mapping[str, int], hidden: set[str], threshold: int) -> list[Exposure]:
    return [
        Exposure(cell_id, f"published count {value} is below the threshold {threshold}")
        for cell_id, value in sorted(cells.items())
        if 0 < value < threshold and cell_id not in hidden
    ]


def _find_exposed_derived(derived: Mapping[str, tuple[str, str]], hidden: set[str]) -> list[Exposure]:
    return [
        Exposure(cell_id, f"published rate built on hidden cell(s) {sorted(hidden.intersection(inputs))}")
        for cell_id, inputs in sorted(derived.items())
        if cell_id not in hidden and hidden.intersection(inputs)
    ]
