"""The independent audit: LP ranges of hidden counts, and the publish gate built on them."""

from __future__ import annotations

import ast
import math
from pathlib import Path
from typing import NamedTuple

import pytest

import pupilshare.stats.audit as audit_module
from pupilshare.stats import (
    TOTAL,
    AuditInputError,
    DisclosureConfig,
    DisclosureRiskError,
    assert_publishable,
    audit_suppression,
    make_cell_id,
)


class Rule(NamedTuple):
    """A constraint that is not suppression's own class: the audit needs only ``total`` and ``parts``."""

    total: str
    parts: tuple[str, ...]


class Cells(NamedTuple):
    cells: dict[str, int]
    constraints: tuple[Rule, ...]


#   a   b   | row
#   c   d   | row2
#   col col2| grand     a=1 b=9 c=6 d=4
TWO_BY_TWO = Cells(
    {"a": 1, "b": 9, "c": 6, "d": 4, "row": 10, "row2": 10, "col": 7, "col2": 13, "grand": 20},
    (
        Rule("row", ("a", "b")),
        Rule("row2", ("c", "d")),
        Rule("col", ("a", "c")),
        Rule("col2", ("b", "d")),
        Rule("grand", ("row", "row2")),
        Rule("grand", ("col", "col2")),
    ),
)


def test_audit_module__does_not_import_suppression():
    tree = ast.parse(Path(audit_module.__file__).read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert not any(name and "suppression" in name for name in imported)


def test_audit_suppression__rectangle_ranges():
    """a, b, c, d hidden: a = 1 + t, b = 9 - t, c = 6 - t, d = 4 + t, all >= 0, so t in [-1, 6]."""
    report = audit_suppression(TWO_BY_TWO, {"a", "b", "c", "d"})
    ranges = {r.cell_id: (r.lo, r.hi) for r in report.ranges}
    assert ranges == {"a": (0, 7), "b": (3, 10), "c": (0, 7), "d": (3, 10)}
    assert report.publishable


def test_audit_suppression__protection_width_is_inclusive_and_configurable():
    """Width 7: passes protection 7, fails protection 8."""
    hidden = {"a", "b", "c", "d"}
    assert audit_suppression(TWO_BY_TWO, hidden, DisclosureConfig(threshold=3, protection=7)).publishable
    report = audit_suppression(TWO_BY_TWO, hidden, DisclosureConfig(threshold=3, protection=8))
    assert {e.cell_id for e in report.exposures} == hidden


def test_audit_suppression__row_alone_exposes_the_small_cell():
    """Hiding a and b: the column totals give a = col - c = 7 - 6 = 1."""
    report = audit_suppression(TWO_BY_TWO, {"a", "b"})
    assert [(r.cell_id, r.lo, r.hi, r.ok) for r in report.ranges] == [("a", 1, 1, False), ("b", 9, 9, False)]


def test_audit_suppression__unconstrained_hidden_cell_is_unbounded():
    report = audit_suppression(Cells({"a": 1, "b": 5}, ()), {"a"})
    (only,) = report.ranges
    assert (only.lo, only.hi, only.width, only.ok) == (0, math.inf, math.inf, True)


def test_audit_suppression__published_small_count_is_exposed():
    """The audit does not trust primary suppression: a published 2 under threshold 3 is an exposure."""
    report = audit_suppression(TWO_BY_TWO, set())
    assert [(e.cell_id, e.reason) for e in report.exposures] == [("a", "published count 1 is below the threshold 3")]


def test_assert_publishable__raises_naming_each_exposed_cell():
    with pytest.raises(DisclosureRiskError) as raised:
        assert_publishable(TWO_BY_TWO, {"a", "b"})
    message = str(raised.value)
    assert "a: can be narrowed to [1, 1] (width 0 < 3)" in message
    assert "b: can be narrowed to [9, 9]" in message
    assert not raised.value.report.publishable


def test_assert_publishable__passes_a_safe_pattern():
    assert assert_publishable(TWO_BY_TWO, {"a", "b", "c", "d"}).publishable


@pytest.mark.parametrize(
    ("cells", "hidden", "message"),
    [
        (Cells({"a": 1, "t": 2}, (Rule("t", ("a",)),)), {"a"}, "not the sum of its parts"),
        (Cells({"a": 1}, (Rule("t", ("a",)),)), {"a"}, "names cells that are not in the table set"),
        (TWO_BY_TWO, {"nope"}, "neither cells nor derived"),
    ],
)
def test_audit_suppression__refuses_input_it_cannot_trust(cells, hidden, message):
    with pytest.raises(AuditInputError, match=message):
        audit_suppression(cells, hidden)


def test_audit_suppression__reads_table_sets_from_suppression(linked_school_and_la):
    _, _, linked = linked_school_and_la
    small = make_cell_id("by_school", {"school": "s1", "category": "x"})
    hidden = {small, make_cell_id("by_school", {"school": "s1", "category": TOTAL})}
    report = audit_suppression(linked, hidden)
    assert {e.cell_id for e in report.exposures} == hidden  # row total pinned by the LA table and column totals
