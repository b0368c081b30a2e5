"""Primary and secondary cell suppression for linked tables of counts.

The input is a *linked table set*: cells (id -> non-negative integer count) and additivity constraints
``total = sum(parts)``. A two-way table with its margins, a per-school table whose LA row must equal the LA table of
the same measure, or the same cell published in two tables, are all just cells plus constraints, so suppression and the
audit never need to know what a "table" is. :func:`build_table` makes such a set from a tidy data frame,
:func:`link_tables` joins two sets on shared totals.

Primary suppression (:func:`find_primary_cells`): a count from 1 to ``threshold - 1`` is hidden. Zero is never hidden as
primary (SHARING_RULES.md, "Disclosure control for statistics"). Rates and percentages built on a hidden numerator or
denominator are hidden too (:func:`find_derived_to_hide`), after secondary suppression, so that a published rate
cannot give a secondary cell back either.

Protection (the definition the audit uses too, see :mod:`pupilshare.stats.audit`): for a hidden cell, ``lo`` and
``hi`` are the smallest and largest values it can take over all real, non-negative values of the hidden cells that keep
every additivity constraint true with every published cell fixed (two linear programmes; ``hi`` may be infinite). The
cell is *protected* when ``floor(hi) - ceil(lo) >= protection``; ``protection`` defaults to the threshold. The true
value lies in ``[lo, hi]``, so a protected cell keeps at least ``protection + 1`` whole-number values that the
published figures do not rule out; with the defaults a hidden 1 (threshold 3) sits in a range at least as wide as
``[0, 3]``, so a reader cannot even tell whether it was below the threshold. Rounding ``lo`` up and ``hi`` down only
narrows the linear-programming range towards the whole-number one, so the test errs on the safe side. Every hidden
cell must be protected, secondary cells included (SHARING_RULES.md asks it of every suppressed cell).

Secondary suppression (:func:`find_secondary_cells`) is an audit-and-fix loop written here because no maintained,
offline library handles arbitrary linked constraints (pytauargus 0.6 runs offline with HiGHS but protects one
hierarchical table at a time: its linked-table methods, GH and the GUI's cover-table machinery, are not available
headless; sdcTable and sdcMicro are R). Cells are visited in id order, starting from the primary cells:

1. Work out the cell's range (two LPs on one HiGHS model, warm-started; only the objective and the newly hidden
   cells' bounds change between solves). No LP is solved when two tables already seen to agree with everything
   published (earlier LP optima, the true table plus an earlier perturbation) put the cell ``protection`` apart.
2. If it is not protected, solve a second LP for the cheapest *perturbation* that raises the cell by ``protection``:
   a change ``y`` to every cell with ``total = sum(parts)`` still true for ``y``, no cell pushed below zero, and cost
   ``sum(w_i * |y_i|)`` where ``w_i = 0`` for a cell already hidden and ``value + 1 + rank * 0.5 / n`` otherwise
   (smallest value first, then the stable id as tie-break). Hide every cell the perturbation moves: the true table
   plus ``y`` then agrees with everything published, so ``hi >= value + protection`` and the cell is protected.
3. Queue the newly hidden cells (they must be protected too) and re-check the cell.

Hiding more cells only widens ranges, so a protected cell stays protected and the loop ends (at worst with every cell
hidden). Everything runs on cells sorted by id, so the same input gives the same pattern whatever its row order. This
is the LP-based heuristic of Kelly, Golden and Assad (1992) and Fischetti and Salazar-Gonzalez (2000) with upper
protection only; it does not promise the minimum information loss an exact (MIP) method would.
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections import defaultdict, deque
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import highspy
import numpy as np
import pandas as pd

from pupilshare.stats.config import DisclosureConfig

#: Label of a total in any dimension, as in DfE Explore Education Statistics filters.
TOTAL = "Total"
#: Symbol written for a hidden cell (GSS "confidential").
HIDDEN_SYMBOL = "c"
_EPS = 1e-6
_INF = highspy.kHighsInf
_PRIMAL, _DUAL = 4, 1  # HiGHS simplex_strategy values


class TableSetError(ValueError):
    """A table set or the frame it is built from is malformed: fix the input, nothing was suppressed."""


class SuppressionError(RuntimeError):
    """Secondary suppression could not protect a cell; nothing may be published."""


@dataclass(frozen=True)
class Constraint:
    """One additivity rule: the value of ``total`` is the sum of the values of ``parts``."""

    total: str
    parts: tuple[str, ...]


@dataclass(frozen=True)
class CellLabel:
    """Where a cell sits: its table and its value in each dimension (``TOTAL`` for a margin)."""

    table: str
    coordinates: tuple[tuple[str, str], ...]

    def as_dict(self) -> dict[str, str]:
        """The coordinates as ``{dimension: value}``."""
        return dict(self.coordinates)


@dataclass(frozen=True)
class TableSet:
    """A linked table set: one cell per published count, plus the additivity constraints linking them.

    Cells and constraints are stored sorted (parts too) so the set does not depend on input order.
    """

    cells: Mapping[str, int]
    constraints: tuple[Constraint, ...] = ()
    labels: Mapping[str, CellLabel] = field(default_factory=dict)

    def __post_init__(self) -> None:
        cells = {cell_id: _as_count(cell_id, value) for cell_id, value in sorted(self.cells.items())}
        constraints = sorted({Constraint(c.total, tuple(sorted(c.parts))) for c in self.constraints}, key=_sort_key)
        object.__setattr__(self, "cells", cells)
        object.__setattr__(self, "constraints", tuple(constraints))
        object.__setattr__(self, "labels", dict(sorted(self.labels.items())))
        _check_constraints(cells, self.constraints)


@dataclass(frozen=True)
class SuppressionResult:
    """The suppression pattern: primary cells (small counts) and the secondary cells hidden to protect them."""

    primary: frozenset[str]
    secondary: frozenset[str]

    @property
    def hidden(self) -> frozenset[str]:
        """Every cell to publish as ``c``."""
        return self.primary | self.secondary


def _sort_key(constraint: Constraint) -> tuple[str, tuple[str, ...]]:
    return constraint.total, constraint.parts


def _as_count(cell_id: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 0:
        raise TableSetError(f"cell {cell_id!r} has value {value!r}: counts must be whole numbers of 0 or more")
    return int(value)


def _check_constraints(cells: Mapping[str, int], constraints: Iterable[Constraint]) -> None:
    for constraint in constraints:
        missing = [c for c in (constraint.total, *constraint.parts) if c not in cells]
        if missing:
            raise TableSetError(f"constraint on {constraint.total!r} names unknown cells {missing}")
        if not constraint.parts or constraint.total in constraint.parts:
            raise TableSetError(f"constraint on {constraint.total!r} needs parts other than the total itself")
        parts_sum = sum(cells[part] for part in constraint.parts)
        if parts_sum != cells[constraint.total]:
            raise TableSetError(
                f"cell {constraint.total!r} is {cells[constraint.total]} but its parts add up to {parts_sum}: "
                "the published table would not add up"
            )


def make_cell_id(table: str, coordinates: Mapping[str, str]) -> str:
    """The stable id of a cell: ``table[dim=value, ...]`` with dimensions in the table's order."""
    return f"{table}[" + ", ".join(f"{dim}={value}" for dim, value in coordinates.items()) + "]"


def build_table(
    frame: pd.DataFrame,
    *,
    table: str,
    dimensions: Sequence[str],
    count: str,
    totals: Sequence[str] | None = None,
) -> TableSet:
    """Build a table set from a tidy frame of counts, adding the margins over ``totals`` (default: every dimension).

    ``frame`` has one row per combination of ``dimensions`` (its grain) and a whole-number ``count`` column; absent
    combinations are absent from the table, not zero. The result has a cell for every detail row and every margin
    (``TOTAL`` in each totalled dimension, the grand total included) and one constraint per margin and dimension.
    """
    dims = list(dimensions)
    totalled = dims if totals is None else list(totals)
    detail = _check_frame(frame, dims, count, totalled)
    levels = [detail]
    for size in range(1, len(totalled) + 1):
        for over in itertools.combinations(totalled, size):
            levels.append(_margin(detail, dims, count, over))
    everything = pd.concat(levels, ignore_index=True)
    cells: dict[str, int] = {}
    labels: dict[str, CellLabel] = {}
    parents: dict[tuple[str, str], list[str]] = defaultdict(list)  # (margin, dimension summed over) -> parts
    for record in everything.itertuples(index=False):
        coordinates = {dim: str(getattr(record, dim)) for dim in dims}
        cell_id = make_cell_id(table, coordinates)
        cells[cell_id] = int(getattr(record, count))
        labels[cell_id] = CellLabel(table, tuple(coordinates.items()))
        for dim in totalled:
            if coordinates[dim] != TOTAL:
                parents[make_cell_id(table, {**coordinates, dim: TOTAL}), dim].append(cell_id)
    constraints = [Constraint(total, tuple(parts)) for (total, _), parts in parents.items()]
    return TableSet(cells, tuple(constraints), labels)


def _check_frame(frame: pd.DataFrame, dims: list[str], count: str, totalled: list[str]) -> pd.DataFrame:
    missing = [c for c in [*dims, count] if c not in frame.columns]
    if missing or not set(totalled) <= set(dims):
        raise TableSetError(f"frame lacks columns {missing} or totals {totalled} are not among dimensions {dims}")
    detail = frame[[*dims, count]].copy()
    if detail[dims].isna().any().any():
        raise TableSetError(f"dimension columns {dims} have missing values")
    detail[dims] = detail[dims].astype(str)
    if (detail[dims] == TOTAL).any().any():
        raise TableSetError(f"a dimension value is {TOTAL!r}: pass detail rows only, margins are added here")
    if detail.duplicated(dims).any():
        raise TableSetError(f"frame has more than one row for some combination of {dims}: aggregate it first")
    values = pd.to_numeric(detail[count], errors="coerce")
    if values.isna().any() or (values < 0).any() or (values != values.round()).any():
        raise TableSetError(f"column {count!r} must hold whole numbers of 0 or more")
    detail[count] = values.astype("int64")
    return detail


def _margin(detail: pd.DataFrame, dims: list[str], count: str, over: tuple[str, ...]) -> pd.DataFrame:
    kept = [dim for dim in dims if dim not in over]
    if kept:
        margin = detail.groupby(kept, sort=True)[count].sum().reset_index()
    else:
        margin = pd.DataFrame({count: [detail[count].sum()]})
    for dim in over:
        margin[dim] = TOTAL
    return margin[[*dims, count]]


def combine_tables(*table_sets: TableSet) -> TableSet:
    """Put table sets side by side; a cell id found in two sets is one cell and must have one value."""
    cells: dict[str, int] = {}
    for table_set in table_sets:
        for cell_id, value in table_set.cells.items():
            if cells.setdefault(cell_id, value) != value:
                raise TableSetError(f"cell {cell_id!r} is {cells[cell_id]} in one table and {value} in another")
    constraints = tuple(c for table_set in table_sets for c in table_set.constraints)
    labels = {cell_id: label for table_set in table_sets for cell_id, label in table_set.labels.items()}
    return TableSet(cells, constraints, labels)


def link_cells(table_set: TableSet, pairs: Iterable[tuple[str, str]]) -> TableSet:
    """Add ``first == second`` for each pair: the same count published in two places (a one-part constraint)."""
    links = tuple(Constraint(first, (second,)) for first, second in pairs)
    return TableSet(table_set.cells, table_set.constraints + links, table_set.labels)


def link_tables(
    first: TableSet,
    second: TableSet,
    *,
    first_where: Mapping[str, str],
    second_where: Mapping[str, str],
) -> TableSet:
    """Combine two table sets and link the cells they share.

    The cells of ``first`` matching ``first_where`` are paired with the cells of ``second`` matching
    ``second_where`` that agree on every other dimension. For a per-school table and the LA table of the same measure,
    ``first_where={"school": TOTAL}`` and ``second_where={"la": "926"}`` say "the LA row of the school table is the
    LA table". Every selected cell must find exactly one partner, otherwise the labels do not line up.
    """
    first_keys = _select(first, first_where)
    second_keys = _select(second, second_where)
    if first_keys.keys() != second_keys.keys():
        unmatched = sorted(set(first_keys) ^ set(second_keys))
        raise TableSetError(f"linked tables do not line up; unmatched coordinates: {unmatched}")
    pairs = [(first_keys[key], second_keys[key]) for key in sorted(first_keys)]
    return link_cells(combine_tables(first, second), pairs)


def _select(table_set: TableSet, where: Mapping[str, str]) -> dict[tuple[tuple[str, str], ...], str]:
    selected: dict[tuple[tuple[str, str], ...], str] = {}
    for cell_id, label in table_set.labels.items():
        coordinates = label.as_dict()
        if all(coordinates.get(dim) == str(value) for dim, value in where.items()):
            key = tuple(sorted((dim, value) for dim, value in coordinates.items() if dim not in where))
            if key in selected:
                raise TableSetError(f"cells {selected[key]!r} and {cell_id!r} both match {where}: link is ambiguous")
            selected[key] = cell_id
    if not selected:
        raise TableSetError(f"no cell matches {dict(where)}")
    return selected


def find_primary_cells(table_set: TableSet, config: DisclosureConfig | None = None) -> frozenset[str]:
    """The cells to hide because they are small: counts from 1 to ``threshold - 1``. Zero is never hidden here."""
    threshold = (config or DisclosureConfig()).threshold
    return frozenset(cell_id for cell_id, value in table_set.cells.items() if 0 < value < threshold)


def find_derived_to_hide(derived: Mapping[str, tuple[str, str]], hidden: Collection[str]) -> frozenset[str]:
    """The derived cells (rates, percentages) to hide: those whose numerator or denominator cell is hidden.

    ``derived`` maps a derived cell's id to ``(numerator_id, denominator_id)``. Run it on the full pattern (primary
    and secondary): a published rate over a published denominator gives its numerator back.
    """
    hidden = set(hidden)
    return frozenset(cell_id for cell_id, inputs in derived.items() if hidden.intersection(inputs))


def suppress_table_set(table_set: TableSet, config: DisclosureConfig | None = None) -> SuppressionResult:
    """Primary then secondary suppression of a linked table set."""
    config = config or DisclosureConfig()
    primary = find_primary_cells(table_set, config)
    return SuppressionResult(primary, find_secondary_cells(table_set, primary, config))


def find_secondary_cells(
    table_set: TableSet, primary: Collection[str], config: DisclosureConfig | None = None
) -> frozenset[str]:
    """The further cells to hide so that every hidden cell is protected (module docstring: the loop and the test)."""
    width = (config or DisclosureConfig()).required_width
    hidden = set(primary)
    unknown = sorted(hidden - table_set.cells.keys())
    if unknown:
        raise TableSetError(f"primary cells not in the table set: {unknown[:10]}")
    if not hidden:
        return frozenset()
    ranges = _RangeModel(table_set, hidden)
    covers = _PerturbationModel(table_set, hidden)
    queue, queued = deque(sorted(hidden)), set(hidden)
    while queue:
        cell_id = queue.popleft()
        if ranges.is_protected(cell_id, width):
            continue
        added, perturbed = covers.find_cover(cell_id, width)
        if not added:
            raise SuppressionError(f"cell {cell_id!r} cannot be protected: no perturbation moves it (numerical?)")
        for new_id in added:
            hidden.add(new_id)
            ranges.hide(new_id)
            covers.hide(new_id)
        ranges.witness(perturbed)
        queue.appendleft(cell_id)
        queue.extend(new_id for new_id in added if new_id not in queued)
        queued.update(added)
    return frozenset(hidden - set(primary))


def _new_solver(strategy: int) -> highspy.Highs:
    """A quiet HiGHS simplex that keeps its basis between solves; ``strategy`` 1 is dual simplex, 4 primal."""
    solver = highspy.Highs()
    solver.silent()
    solver.setOptionValue("presolve", "off")  # presolve would throw the warm-start basis away on every solve
    solver.setOptionValue("solver", "simplex")
    solver.setOptionValue("simplex_strategy", strategy)
    solver.setOptionValue("random_seed", 0)
    return solver


def _add_equalities(solver: highspy.Highs, rows: list[list[tuple[int, float]]]) -> None:
    """Add ``sum(coefficient * column) == 0`` for each row of ``(column, coefficient)``."""
    starts = np.cumsum([0] + [len(row) for row in rows[:-1]]).astype(np.int32)
    indices = np.array([column for row in rows for column, _ in row], dtype=np.int32)
    values = np.array([coefficient for row in rows for _, coefficient in row], dtype=np.float64)
    zeros = np.zeros(len(rows))
    solver.addRows(len(rows), zeros, zeros, len(indices), starts, indices, values)


def _solve(solver: highspy.Highs, what: str) -> float:
    """Run the model; return the objective, ``-inf`` when unbounded below."""
    solver.run()
    status = solver.getModelStatus()
    if status == highspy.HighsModelStatus.kUnbounded:
        return -math.inf
    if status != highspy.HighsModelStatus.kOptimal:
        raise SuppressionError(f"HiGHS stopped with {solver.modelStatusToString(status)} while {what}")
    return solver.getInfo().objective_function_value


class _RangeModel:
    """One column per cell (published: fixed at its value; hidden: 0 or more), one row per constraint.

    It also keeps, per cell, the highest and lowest value seen in any table known to agree with everything published
    (the optimum of every range LP solved here, and the true table plus every cover): the cell's range holds both, so
    when they are already ``width`` apart the cell is protected without another LP. Hiding more cells only adds
    tables that agree, so what was seen stays valid.
    """

    def __init__(self, table_set: TableSet, hidden: Collection[str]) -> None:
        self._values = table_set.cells
        self._index = {cell_id: i for i, cell_id in enumerate(table_set.cells)}
        lower = np.array([0.0 if c in hidden else v for c, v in self._values.items()])
        upper = np.array([_INF if c in hidden else v for c, v in self._values.items()])
        self._highest = np.array(list(self._values.values()), dtype=np.float64)
        self._lowest = self._highest.copy()
        self._solver = _new_solver(_PRIMAL)  # only costs change and bounds widen: the last optimum stays feasible
        self._solver.addVars(len(lower), lower, upper)
        rows = [
            [(self._index[c.total], 1.0)] + [(self._index[part], -1.0) for part in c.parts]
            for c in table_set.constraints
        ]
        if rows:
            _add_equalities(self._solver, rows)

    def hide(self, cell_id: str) -> None:
        self._solver.changeColBounds(self._index[cell_id], 0.0, _INF)

    def witness(self, table: np.ndarray) -> None:
        """Record ``table`` (one value per cell, in id order): it agrees with every published cell and constraint."""
        np.maximum(self._highest, table, out=self._highest)
        np.minimum(self._lowest, table, out=self._lowest)

    def is_protected(self, cell_id: str, width: int) -> bool:
        """True when ``floor(hi) - ceil(lo) >= width`` for the cell's feasible range."""
        column = self._index[cell_id]
        if _spans(self._highest[column], self._lowest[column], width):
            return True  # two agreeing tables already put it this far apart: hi and lo are at least as far
        hi = -self._extreme(column, -1.0, cell_id)
        if math.isinf(hi) or _spans(hi, self._lowest[column], width):
            return True
        lo = self._extreme(column, 1.0, cell_id)
        return _spans(hi, lo, width)

    def _extreme(self, column: int, sign: float, cell_id: str) -> float:
        self._solver.changeColCost(column, sign)
        try:
            optimum = _solve(self._solver, f"bounding {cell_id!r}")
            if not math.isinf(optimum):
                self.witness(np.asarray(self._solver.getSolution().col_value))
            return optimum
        finally:
            self._solver.changeColCost(column, 0.0)


def _spans(hi: float, lo: float, width: int) -> bool:
    """``floor(hi) - ceil(lo) >= width``, with a tolerance for the solver's rounding."""
    return math.floor(hi + _EPS) - math.ceil(lo - _EPS) >= width


class _PerturbationModel:
    """Columns ``up_i`` and ``down_i`` per cell: a change to the table that keeps every constraint and no cell < 0."""

    def __init__(self, table_set: TableSet, hidden: Collection[str]) -> None:
        self._ids = list(table_set.cells)
        self._values = np.array(list(table_set.cells.values()), dtype=np.float64)
        self._index = {cell_id: i for i, cell_id in enumerate(self._ids)}
        n = len(self._ids)
        self._hidden = set(hidden)
        weights = self._values + 1.0 + np.arange(n) * (0.5 / n)
        costs = np.array([0.0 if cell_id in hidden else w for cell_id, w in zip(self._ids, weights, strict=True)])
        self._solver = _new_solver(_DUAL)  # the target cell's bounds change between solves
        self._solver.addVars(2 * n, np.zeros(2 * n), np.concatenate([np.full(n, _INF), self._values]))
        self._solver.changeColsCost(2 * n, np.arange(2 * n, dtype=np.int32), np.concatenate([costs, costs]))
        rows = []
        for constraint in table_set.constraints:
            total = self._index[constraint.total]
            row = [(total, 1.0), (n + total, -1.0)]
            for part in constraint.parts:
                row += [(self._index[part], -1.0), (n + self._index[part], 1.0)]
            rows.append(row)
        if rows:
            _add_equalities(self._solver, rows)
        _solve(self._solver, "starting the perturbation model")  # no change at all: cost 0
        self._start = self._solver.getBasis()

    def hide(self, cell_id: str) -> None:
        i, n = self._index[cell_id], len(self._ids)
        self._hidden.add(cell_id)
        self._solver.changeColCost(i, 0.0)
        self._solver.changeColCost(n + i, 0.0)

    def find_cover(self, cell_id: str, width: int) -> tuple[list[str], np.ndarray]:
        """The cells not yet hidden that the cheapest perturbation raising ``cell_id`` by ``width`` moves.

        Also the perturbed table (true values plus the perturbation, one per cell in id order): once those cells are
        hidden it agrees with everything published. Each solve starts from the basis of the zero perturbation: the
        last cover's basis describes another cell's perturbation and takes the dual simplex longer to leave.
        """
        i, n = self._index[cell_id], len(self._ids)
        self._solver.changeColBounds(i, float(width), float(width))
        self._solver.changeColBounds(n + i, 0.0, 0.0)
        try:
            self._solver.setBasis(self._start)
            cost = _solve(self._solver, f"protecting {cell_id!r}")
            if math.isinf(cost):
                raise SuppressionError(f"perturbation LP for {cell_id!r} is unbounded")
            moves = np.asarray(self._solver.getSolution().col_value)
        finally:
            self._solver.changeColBounds(i, 0.0, _INF)
            self._solver.changeColBounds(n + i, 0.0, float(self._values[i]))
        moved = (moves[:n] > _EPS) | (moves[n:] > _EPS)
        added = [self._ids[k] for k in np.flatnonzero(moved) if self._ids[k] not in self._hidden]
        return added, self._values + moves[:n] - moves[n:]


def render_table(
    table_set: TableSet, hidden: Collection[str], *, table: str, value_name: str = "count"
) -> pd.DataFrame:
    """One table as a tidy frame, one row per cell: its dimensions and its value as text (``c`` if hidden)."""
    hidden = set(hidden)
    rows = []
    for cell_id, label in table_set.labels.items():
        if label.table == table:
            value = HIDDEN_SYMBOL if cell_id in hidden else str(table_set.cells[cell_id])
            rows.append({**label.as_dict(), value_name: value})
    if not rows:
        raise TableSetError(f"no cells labelled with table {table!r}")
    return pd.DataFrame(rows)
