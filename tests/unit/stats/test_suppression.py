"""Primary and secondary suppression: small counts hidden, and nothing hidden can be worked back out."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from pupilshare.stats import (
    TOTAL,
    Constraint,
    DisclosureConfig,
    TableSet,
    TableSetError,
    assert_publishable,
    audit_suppression,
    build_table,
    combine_tables,
    find_derived_to_hide,
    find_primary_cells,
    find_secondary_cells,
    link_tables,
    make_cell_id,
    render_table,
    suppress_table_set,
)


def cell(table: str, **coordinates: str) -> str:
    """The id of a cell, dimensions in the table's order."""
    return make_cell_id(table, coordinates)


def school_frame(rows: dict[str, dict[str, int]]) -> pd.DataFrame:
    """A tidy frame, one row per school per category, from ``{school: {category: count}}``."""
    records = [(school, category, n) for school, counts in rows.items() for category, n in counts.items()]
    return pd.DataFrame(records, columns=["school", "category", "pupils"])


def _one_way(values: dict[str, int]) -> TableSet:
    frame = pd.DataFrame({"school": list(values), "pupils": list(values.values())})
    return build_table(frame, table="t", dimensions=["school"], count="pupils")


def test_find_primary_cells__one_to_threshold_minus_one_hidden_zero_and_threshold_kept():
    """
    school  a  b  c  d  | threshold 3: b (1) and c (2) hidden; 0 stays 0, 3 is published.
    pupils  0  1  2  3
    """
    table_set = _one_way({"a": 0, "b": 1, "c": 2, "d": 3})
    primary = find_primary_cells(table_set)
    assert primary == {cell("t", school="b"), cell("t", school="c")}
    rendered = render_table(table_set, primary, table="t").set_index("school")["count"].to_dict()
    assert rendered == {"a": "0", "b": "c", "c": "c", "d": "3", TOTAL: "6"}


def test_find_primary_cells__threshold_is_configurable_and_applies_to_totals():
    table_set = _one_way({"a": 0, "b": 4, "c": 5})
    assert find_primary_cells(table_set, DisclosureConfig(threshold=5)) == {cell("t", school="b")}
    small = _one_way({"a": 0, "b": 2})
    assert find_primary_cells(small, DisclosureConfig(threshold=3)) == {cell("t", school="b"), cell("t", school=TOTAL)}


def test_disclosure_config__strict():
    with pytest.raises(ValidationError):
        DisclosureConfig(threshold="3")
    with pytest.raises(ValidationError):
        DisclosureConfig(threshold=3, treshold=5)
    with pytest.raises(ValidationError):
        DisclosureConfig(threshold=1)
    assert DisclosureConfig().required_width == 3
    assert DisclosureConfig(threshold=5, protection=2).required_width == 2


def test_find_derived_to_hide__rate_on_hidden_numerator_or_denominator():
    """rate_b = b / total: b is hidden, so rate_b is hidden; rate_d = d / total is published."""
    derived = {"rate_b": ("b", "total"), "rate_d": ("d", "total"), "rate_by_e": ("d", "e")}
    assert find_derived_to_hide(derived, {"b"}) == {"rate_b"}
    assert find_derived_to_hide(derived, {"e"}) == {"rate_by_e"}
    assert find_derived_to_hide(derived, set()) == frozenset()


def test_audit__derived_rate_published_on_a_hidden_count_is_exposed(three_by_three):
    pattern = suppress_table_set(three_by_three)
    small = cell("t", school="A", category="y")
    row_total = cell("t", school="A", category=TOTAL)
    derived = {"rate_A_y": (small, row_total)}
    report = audit_suppression(three_by_three, pattern.hidden, derived=derived)
    assert [e.cell_id for e in report.exposures] == ["rate_A_y"]
    hidden = pattern.hidden | find_derived_to_hide(derived, pattern.hidden)
    assert audit_suppression(three_by_three, hidden, derived=derived).publishable


def test_primary_alone__is_recoverable_and_rejected(three_by_three):
    """A,y = A total - A,x - A,z = 23 - 10 - 12 = 1: hiding it alone hides nothing."""
    primary = find_primary_cells(three_by_three)
    report = audit_suppression(three_by_three, primary)
    assert not report.publishable
    (exposed,) = report.ranges
    assert (exposed.cell_id, exposed.lo, exposed.hi, exposed.ok) == (cell("t", school="A", category="y"), 1, 1, False)


def test_suppress_table_set__three_by_three_passes_audit(three_by_three):
    """
    school  x   y   z   Total
    A       c   c   12  23
    B       c   c   7   24     <- the cheapest rectangle through A,y: small cells, no totals
    C       15  11  6   32
    """
    pattern = suppress_table_set(three_by_three)
    assert pattern.primary == {cell("t", school="A", category="y")}
    assert pattern.secondary == {
        cell("t", school="A", category="x"),
        cell("t", school="B", category="x"),
        cell("t", school="B", category="y"),
    }
    report = assert_publishable(three_by_three, pattern.hidden)
    assert all(r.hi - r.lo >= 3 for r in report.ranges)


def test_suppress_table_set__two_by_two():
    """A 2x2 table with one small cell needs the whole interior hidden."""
    table_set = build_table(
        school_frame({"A": {"x": 2, "y": 9}, "B": {"x": 7, "y": 5}}),
        table="t",
        dimensions=["school", "category"],
        count="pupils",
    )
    pattern = suppress_table_set(table_set)
    interior = {cell("t", school=s, category=c) for s in "AB" for c in "xy"}
    assert not audit_suppression(table_set, pattern.primary).publishable
    assert pattern.hidden == interior
    assert assert_publishable(table_set, pattern.hidden).publishable


def test_audit__hidden_total_with_all_parts_published_is_exposed():
    table_set = _one_way({"a": 5, "b": 6})
    report = audit_suppression(table_set, {cell("t", school=TOTAL)})
    assert [(r.lo, r.hi, r.ok) for r in report.ranges] == [(11, 11, False)]


def test_linked_tables__safe_in_each_table_alone_but_recoverable_through_the_link(linked_school_and_la):
    """
    by_school hides s1,x (1), s1,y and the LA row x, y: s1,x could be 0..6 within by_school.
    But by_la publishes the LA totals x = 15 and y = 21, so s1,x = 15 - 6 - 8 = 1 again.
    """
    by_school, by_la, linked = linked_school_and_la
    hidden = {
        cell("by_school", school="s1", category="x"),
        cell("by_school", school="s1", category="y"),
        cell("by_school", school=TOTAL, category="x"),
        cell("by_school", school=TOTAL, category="y"),
    }
    assert audit_suppression(by_school, hidden).publishable
    assert audit_suppression(by_la, set()).publishable
    report = audit_suppression(linked, hidden)
    assert cell("by_school", school="s1", category="x") in {e.cell_id for e in report.exposures}

    pattern = suppress_table_set(linked)
    assert pattern.primary == {cell("by_school", school="s1", category="x")}
    assert assert_publishable(linked, pattern.hidden).publishable


def test_suppress_table_set__linked_cell_hidden_in_both_tables():
    """If a secondary cell is a shared total, its twin in the other table is hidden with it (else it leaks)."""
    by_school = build_table(
        school_frame({"s1": {"x": 2, "y": 3}}), table="by_school", dimensions=["school", "category"], count="pupils"
    )
    la = pd.DataFrame({"la": ["926", "926"], "category": ["x", "y"], "pupils": [2, 3]})
    by_la = build_table(la, table="by_la", dimensions=["la", "category"], count="pupils", totals=["category"])
    linked = link_tables(by_school, by_la, first_where={"school": TOTAL}, second_where={"la": "926"})
    pattern = suppress_table_set(linked)
    assert cell("by_la", la="926", category="x") in pattern.hidden
    assert assert_publishable(linked, pattern.hidden).publishable


def test_suppress_table_set__deterministic_and_independent_of_row_order(three_by_three):
    rows = {f"s{i}": {c: (i * 7 + k * 3) % 9 for k, c in enumerate("vwxyz")} for i in range(8)}
    frame = school_frame(rows)
    config = DisclosureConfig(threshold=4)
    first = suppress_table_set(build_table(frame, table="t", dimensions=["school", "category"], count="pupils"), config)
    again = suppress_table_set(build_table(frame, table="t", dimensions=["school", "category"], count="pupils"), config)
    shuffled_frame = frame.sample(frac=1, random_state=7).reset_index(drop=True)
    shuffled = build_table(shuffled_frame, table="t", dimensions=["school", "category"], count="pupils")
    assert first.secondary  # the case is not trivial
    assert first == again == suppress_table_set(shuffled, config)


def test_table_set__order_of_cells_and_constraints_does_not_matter():
    cells = {"b": 2, "a": 3, "t": 5}
    forward = TableSet(cells, (Constraint("t", ("a", "b")),))
    backward = TableSet(dict(reversed(cells.items())), (Constraint("t", ("b", "a")),))
    assert list(forward.cells) == list(backward.cells) == ["a", "b", "t"]
    assert forward.constraints == backward.constraints


def test_find_secondary_cells__nothing_to_protect():
    assert find_secondary_cells(_one_way({"a": 5, "b": 0}), set()) == frozenset()


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"school": ["a", "a"], "pupils": [1, 2]}), "more than one row"),
        (pd.DataFrame({"school": ["a"], "pupils": [-1]}), "whole numbers"),
        (pd.DataFrame({"school": ["a"], "pupils": [1.5]}), "whole numbers"),
        (pd.DataFrame({"school": [TOTAL], "pupils": [1]}), "detail rows only"),
        (pd.DataFrame({"school": [None], "pupils": [1]}), "missing values"),
    ],
)
def test_build_table__rejects_bad_frames(frame, message):
    with pytest.raises(TableSetError, match=message):
        build_table(frame, table="t", dimensions=["school"], count="pupils")


def test_table_set__rejects_tables_that_do_not_add_up():
    with pytest.raises(TableSetError, match="would not add up"):
        TableSet({"a": 1, "b": 2, "t": 4}, (Constraint("t", ("a", "b")),))


def test_combine_tables__same_cell_in_two_tables_is_one_cell_and_must_agree():
    assert combine_tables(TableSet({"a": 1}), TableSet({"a": 1, "b": 2})).cells == {"a": 1, "b": 2}
    with pytest.raises(TableSetError, match="is 1 in one table and 2"):
        combine_tables(TableSet({"a": 1}), TableSet({"a": 2}))


def test_link_tables__labels_must_line_up(linked_school_and_la):
    by_school, by_la, _ = linked_school_and_la
    with pytest.raises(TableSetError, match="do not line up"):
        link_tables(by_school, by_la, first_where={"school": "s1"}, second_where={"category": TOTAL})
    with pytest.raises(TableSetError, match="would not add up"):
        link_tables(by_school, by_la, first_where={"school": "s1"}, second_where={"sex": TOTAL})


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_suppress_table_set__property_every_primary_hidden_and_audit_passes(data):
    """For any table up to 5x5 with counts 0..20 and threshold 3..10, the pattern hides every small count and the
    independent audit finds every hidden count protected."""
    n_rows = data.draw(st.integers(1, 5), label="rows")
    n_cols = data.draw(st.integers(1, 5), label="columns")
    counts = data.draw(
        st.lists(st.lists(st.integers(0, 20), min_size=n_cols, max_size=n_cols), min_size=n_rows, max_size=n_rows)
    )
    config = DisclosureConfig(threshold=data.draw(st.integers(3, 10), label="threshold"))
    rows = {f"r{i}": {f"c{j}": value for j, value in enumerate(row)} for i, row in enumerate(counts)}
    table_set = build_table(school_frame(rows), table="t", dimensions=["school", "category"], count="pupils")
    pattern = suppress_table_set(table_set, config)
    small = {cell_id for cell_id, value in table_set.cells.items() if 0 < value < config.threshold}
    assert pattern.primary == small
    assert small <= pattern.hidden
    report = audit_suppression(table_set, pattern.hidden, config)
    assert report.publishable, report.describe()
