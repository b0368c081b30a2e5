"""Suppression and the audit skip LPs whose answer is already proven: the results must be those of solving them all.

The reference below is the code before the shortcuts (7 December 2026): every range and every audit bound is an LP on
one warm-started HiGHS model, and each cover starts from the last cover's basis. Suppression must hide the same cells
and the audit must give the same ranges and exposures, on synthetic tables of every registered shape, with different
seeds and thresholds.
"""

from __future__ import annotations

import math
import re
from collections import deque

import highspy
import numpy as np
import pytest

from pupilshare.stats import DisclosureConfig, audit, audit_suppression, suppression
from pupilshare.stats.benchmark import make_model_rows
from pupilshare.stats.publication import build_linked_tables
from pupilshare.stats.registry import default_registry

_PRIMAL, _DUAL = 4, 1
_EPS = 1e-6


def _reference_secondary(table_set, primary, width):
    """Secondary suppression as before the shortcuts: two LPs per range check, covers warm-started from the last."""
    hidden = set(primary)
    ranges = _ReferenceRanges(table_set, hidden)
    covers = _ReferenceCovers(table_set, hidden)
    queue, queued = deque(sorted(hidden)), set(hidden)
    while queue:
        cell_id = queue.popleft()
        if ranges.is_protected(cell_id, width):
            continue
        added = covers.find_cover(cell_id, width)
        for new_id in added:
            hidden.add(new_id)
            ranges.hide(new_id)
            covers.hide(new_id)
        queue.appendleft(cell_id)
        queue.extend(new_id for new_id in added if new_id not in queued)
        queued.update(added)
    return frozenset(hidden - set(primary))


class _ReferenceRanges:
    def __init__(self, table_set, hidden):
        self._values = table_set.cells
        self._index = {cell_id: i for i, cell_id in enumerate(table_set.cells)}
        lower = np.array([0.0 if c in hidden else v for c, v in self._values.items()])
        upper = np.array([highspy.kHighsInf if c in hidden else v for c, v in self._values.items()])
        self._solver = suppression._new_solver(_PRIMAL)
        self._solver.addVars(len(lower), lower, upper)
        rows = [
            [(self._index[c.total], 1.0)] + [(self._index[part], -1.0) for part in c.parts]
            for c in table_set.constraints
        ]
        suppression._add_equalities(self._solver, rows)

    def hide(self, cell_id):
        self._solver.changeColBounds(self._index[cell_id], 0.0, highspy.kHighsInf)

    def is_protected(self, cell_id, width):
        column, value = self._index[cell_id], self._values[cell_id]
        hi = -self._extreme(column, -1.0)
        if math.isinf(hi) or math.floor(hi + _EPS) - value >= width:
            return True
        lo = self._extreme(column, 1.0)
        return math.floor(hi + _EPS) - math.ceil(lo - _EPS) >= width

    def _extreme(self, column, sign):
        self._solver.changeColCost(column, sign)
        try:
            return suppression._solve(self._solver, "reference")
        finally:
            self._solver.changeColCost(column, 0.0)


class _ReferenceCovers:
    def __init__(self, table_set, hidden):
        self._ids = list(table_set.cells)
        self._values = np.array(list(table_set.cells.values()), dtype=np.float64)
        self._index = {cell_id: i for i, cell_id in enumerate(self._ids)}
        n = len(self._ids)
        self._hidden = set(hidden)
        weights = self._values + 1.0 + np.arange(n) * (0.5 / n)
        costs = np.array([0.0 if cell_id in hidden else w for cell_id, w in zip(self._ids, weights, strict=True)])
        self._solver = suppression._new_solver(_DUAL)
        self._solver.addVars(2 * n, np.zeros(2 * n), np.concatenate([np.full(n, highspy.kHighsInf), self._values]))
        self._solver.changeColsCost(2 * n, np.arange(2 * n, dtype=np.int32), np.concatenate([costs, costs]))
        rows = []
        for constraint in table_set.constraints:
            total = self._index[constraint.total]
            row = [(total, 1.0), (n + total, -1.0)]
            for part in constraint.parts:
                row += [(self._index[part], -1.0), (n + self._index[part], 1.0)]
            rows.append(row)
        suppression._add_equalities(self._solver, rows)

    def hide(self, cell_id):
        i, n = self._index[cell_id], len(self._ids)
        self._hidden.add(cell_id)
        self._solver.changeColCost(i, 0.0)
        self._solver.changeColCost(n + i, 0.0)

    def find_cover(self, cell_id, width):
        i, n = self._index[cell_id], len(self._ids)
        self._solver.changeColBounds(i, float(width), float(width))
        self._solver.changeColBounds(n + i, 0.0, 0.0)
        try:
            suppression._solve(self._solver, "reference")
            moves = np.asarray(self._solver.getSolution().col_value)
        finally:
            self._solver.changeColBounds(i, 0.0, highspy.kHighsInf)
            self._solver.changeColBounds(n + i, 0.0, float(self._values[i]))
        moved = (moves[:n] > _EPS) | (moves[n:] > _EPS)
        return [self._ids[k] for k in np.flatnonzero(moved) if self._ids[k] not in self._hidden]


def _reference_ranges(cells, constraints, hidden):
    """The audit's ranges as before the shortcuts: two LPs for every hidden count."""
    solver = audit._build_model(cells, constraints, hidden)
    ranges = []
    for column, cell_id in enumerate(hidden):
        ends = []
        for sign in (1.0, -1.0):
            solver.changeColCost(column, sign)
            solver.run()
            unbounded = solver.getModelStatus() == highspy.HighsModelStatus.kUnbounded
            ends.append(-math.inf if unbounded else solver.getInfo().objective_function_value)
            solver.changeColCost(column, 0.0)
        ranges.append((cell_id, ends[0], -ends[1]))
    return ranges


def _tables():
    """Registered tables the benchmark can make synthetic rows for (all but topic tables with several counts)."""
    return [spec.name for spec in default_registry().tables if not (spec.topic and len(spec.count_columns) > 1)]


def _same_number(first: float, second: float) -> bool:
    return first == second or abs(first - second) <= 1e-7


def _numbers_rounded(text: str) -> str:
    """The text with each number rounded to 6 decimals: solver noise such as -2.2e-14 reads 0."""
    return re.sub(r"-?\d+(\.\d+)?(e-?\d+)?", lambda m: f"{round(float(m.group()), 6) + 0.0:g}", text)


def _assert_audit_matches_reference(table_set, hidden, config, derived=None):
    report = audit_suppression(table_set, hidden, config, derived=derived)
    counts = sorted(set(hidden) & table_set.cells.keys())
    expected = _reference_ranges(dict(table_set.cells), table_set.constraints, counts)
    assert [r.cell_id for r in report.ranges] == [cell_id for cell_id, _, _ in expected]
    for got, (cell_id, lo, hi) in zip(report.ranges, expected, strict=True):
        assert _same_number(got.lo, lo) and _same_number(got.hi, hi), (cell_id, got, lo, hi)
        assert got.ok == (audit._width(lo, hi) >= config.required_width), cell_id
    return report


@pytest.mark.parametrize("table", _tables())
@pytest.mark.parametrize(("seed", "threshold"), [(0, 3), (1, 5), (2, 10)])
def test_suppression_and_audit__same_results_as_solving_every_lp(table, seed, threshold):
    spec = default_registry().table(table)
    linked = build_linked_tables(spec, make_model_rows(spec, n_schools=6, seed=seed))
    table_set, config = linked.table_set, DisclosureConfig(threshold=threshold)
    primary = suppression.find_primary_cells(table_set, config)

    secondary = suppression.find_secondary_cells(table_set, primary, config)

    assert secondary == _reference_secondary(table_set, primary, config.required_width)
    hidden = primary | secondary
    hidden |= suppression.find_derived_to_hide(linked.derived, hidden)
    assert _assert_audit_matches_reference(table_set, hidden, config, linked.derived).publishable
    exposed = _assert_audit_matches_reference(table_set, primary, config)  # primary cells only: most are exposed
    assert exposed.publishable == (not secondary)


def test_audit__exposure_messages_unchanged_but_for_solver_noise():
    """A pattern with primary cells only, on an exclusions-shaped table: same exposures, same numbers."""
    spec = default_registry().table("exclusions_by_reason")
    table_set = build_linked_tables(spec, make_model_rows(spec, n_schools=6, seed=0)).table_set
    config = DisclosureConfig(threshold=5)
    primary = suppression.find_primary_cells(table_set, config)

    report = audit_suppression(table_set, primary, config)

    expected = _reference_ranges(dict(table_set.cells), table_set.constraints, sorted(primary))
    narrowed = [
        (cell_id, f"can be narrowed to [{lo:g}, {hi:g}] (width {audit._width(lo, hi):g} < 5)")
        for cell_id, lo, hi in expected
        if audit._width(lo, hi) < 5
    ]
    assert narrowed, "the primary-only pattern should leave some cell exposed"
    got = [(e.cell_id, _numbers_rounded(e.reason)) for e in report.exposures if "narrowed" in e.reason]
    assert got == [(cell_id, _numbers_rounded(reason)) for cell_id, reason in narrowed]


def test_row_ceilings__parts_of_a_published_total_cannot_exceed_it():
    """
    total 10 (published) = a + b + c, with a and b hidden and c = 4 published: a and b are at most 6 each.
    d = e (a link), d hidden, e = 3 published: d is at most 3. f hidden, in no same-sign row: no ceiling.
    """
    cells = {"total": 10, "a": 5, "b": 1, "c": 4, "d": 3, "e": 3, "f": 2, "g": 9}
    constraints = [
        suppression.Constraint("total", ("a", "b", "c")),
        suppression.Constraint("d", ("e",)),
        suppression.Constraint("f", ("a", "g")),  # not a real sum; only the signs matter here
    ]
    ceilings = audit._row_ceilings(cells, constraints, ["a", "b", "d", "f"])
    assert list(ceilings) == [6.0, 6.0, 3.0, math.inf]
