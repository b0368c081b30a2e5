"""Small synthetic tables shared by the stats tests."""

from __future__ import annotations

import pandas as pd
import pytest

from pupilshare.stats import TOTAL, TableSet, build_table, link_tables


def _school_frame(rows: dict[str, dict[str, int]]) -> pd.DataFrame:
    """A tidy frame, one row per school per category, from ``{school: {category: count}}``."""
    return pd.DataFrame(
        [
            {"school": school, "category": category, "pupils": count}
            for school, counts in rows.items()
            for category, count in counts.items()
        ]
    )


@pytest.fixture
def three_by_three() -> TableSet:
    """
    school  x   y   z   Total
    A       10  1   12  23      <- y is the only small count
    B       8   9   7   24
    C       15  11  6   32
    Total   33  21  25  79
    """
    frame = _school_frame(
        {"A": {"x": 10, "y": 1, "z": 12}, "B": {"x": 8, "y": 9, "z": 7}, "C": {"x": 15, "y": 11, "z": 6}}
    )
    return build_table(frame, table="t", dimensions=["school", "category"], count="pupils")


@pytest.fixture
def linked_school_and_la() -> tuple[TableSet, TableSet, TableSet]:
    """A per-school table and the LA table of the same measure by sex, linked on the LA totals by category.

    by_school                  by_la (category x sex)
    school  x   y   Total      category  F   M   Total
    s1      1   5   6          x         7   8   15     <- equals by_school Total row, x
    s2      6   7   13         y         10  11  21     <- equals by_school Total row, y
    s3      8   9   17         Total     17  19  36
    Total   15  21  36
    """
    by_school = build_table(
        _school_frame({"s1": {"x": 1, "y": 5}, "s2": {"x": 6, "y": 7}, "s3": {"x": 8, "y": 9}}),
        table="by_school",
        dimensions=["school", "category"],
        count="pupils",
    )
    la_frame = pd.DataFrame(
        [("x", "F", 7), ("x", "M", 8), ("y", "F", 10), ("y", "M", 11)], columns=["category", "sex", "pupils"]
    )
    by_la = build_table(la_frame, table="by_la", dimensions=["category", "sex"], count="pupils")
    linked = link_tables(by_school, by_la, first_where={"school": TOTAL}, second_where={"sex": TOTAL})
    return by_school, by_la, linked
