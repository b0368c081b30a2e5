"""EES open data files: the whole publish path writes a file the checker passes; each broken rule is caught."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError

from pupilshare.stats import (
    TOTAL,
    EESColumn,
    EESFiles,
    EESFormatError,
    assert_publishable,
    assert_valid_ees,
    build_table,
    check_ees_file,
    find_derived_to_hide,
    make_cell_id,
    render_table,
    suppress_table_set,
    write_ees_files,
)

SCHOOLS = {"121001": "Aylsham High", "121002": "Bawburgh Primary", "121003": "Cley Primary"}
COLUMNS = [
    EESColumn(col_name="category", col_type="Filter", label="Category", filter_hint="Pupil category"),
    EESColumn(col_name="pupils", col_type="Indicator", label="Number of pupils"),
    EESColumn(
        col_name="pupils_percent",
        col_type="Indicator",
        label="Percentage of pupils",
        indicator_unit="%",
        indicator_dp=1,
    ),
]

Rows = list[dict[str, str]]


def _publishable_frame() -> pd.DataFrame:
    """Build -> suppress -> audit -> render, then lay out EES rows: one per school (or LA) per category."""
    counts = {"121001": (40, 1, 12), "121002": (8, 9, 7), "121003": (15, 11, 6)}
    frame = pd.DataFrame(
        [(urn, category, n) for urn, row in counts.items() for category, n in zip("xyz", row, strict=True)],
        columns=["school", "category", "pupils"],
    )
    table_set = build_table(frame, table="t", dimensions=["school", "category"], count="pupils")
    pattern = suppress_table_set(table_set)
    cells = table_set.cells

    def ids(school: str, category: str) -> tuple[str, str]:
        coordinates = {"school": school, "category": category}
        return make_cell_id("t", coordinates), make_cell_id("t", {**coordinates, "category": TOTAL})

    rendered = render_table(table_set, pattern.hidden, table="t")
    derived = {f"pct:{s}:{c}": ids(s, c) for s, c in zip(rendered["school"], rendered["category"], strict=True)}
    hidden = pattern.hidden | find_derived_to_hide(derived, pattern.hidden)
    assert_publishable(table_set, hidden, derived=derived)
    frame = pd.DataFrame([_ees_row(r, cells, derived, hidden) for r in rendered.to_dict("records")])
    return frame.sort_values(["school_urn", "category"], ignore_index=True)  # LA rows (blank URN) first


def _ees_row(record: dict, cells: dict[str, int], derived: dict, hidden: frozenset[str]) -> dict:
    school, category = record["school"], record["category"]
    numerator, denominator = derived[f"pct:{school}:{category}"]
    is_la = school == TOTAL
    return {
        "time_period": "202526",
        "time_identifier": "Academic year",
        "geographic_level": "Local authority" if is_la else "School",
        "country_code": "E92000001",
        "country_name": "England",
        "new_la_code": "E10000020",
        "la_name": "Norfolk",
        "old_la_code": "926",
        "school_urn": "" if is_la else school,
        "school_laestab": "" if is_la else f"926{int(school) % 10000:04d}",
        "school_name": "" if is_la else SCHOOLS[school],
        "category": category,
        "pupils": record["count"],
        "pupils_percent": "c" if f"pct:{school}:{category}" in hidden else 100 * cells[numerator] / cells[denominator],
    }


@pytest.fixture
def good_files(tmp_path: Path) -> EESFiles:
    return write_ees_files(_publishable_frame(), tmp_path, "pupils_by_category", COLUMNS)


def _read(path: Path) -> Rows:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _write(path: Path, rows: Rows) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_write_ees_files__pipeline_output_passes_the_checker(good_files):
    assert check_ees_file(good_files.data, good_files.meta) == []
    assert_valid_ees(good_files.data, good_files.meta)
    rows = _read(good_files.data)
    assert list(rows[0])[:5] == ["time_period", "time_identifier", "geographic_level", "country_code", "country_name"]
    small = next(r for r in rows if r["school_urn"] == "121001" and r["category"] == "y")
    assert (small["pupils"], small["pupils_percent"]) == ("c", "c")
    la_total = next(r for r in rows if r["geographic_level"] == "Local authority" and r["category"] == TOTAL)
    assert (la_total["pupils"], la_total["pupils_percent"], la_total["school_urn"]) == ("109", "100.0", "")
    assert [r["col_name"] for r in _read(good_files.meta)] == ["category", "pupils", "pupils_percent"]


def _drop(column: str) -> Callable[[Rows], Rows]:
    return lambda rows: [{k: v for k, v in row.items() if k != column} for row in rows]


def _set(row: int, column: str, value: str) -> Callable[[Rows], Rows]:
    def change(rows: Rows) -> Rows:
        rows[row - 1][column] = value
        return rows

    return change


BAD_DATA = {
    "missing required column": (_drop("country_code"), "ees_required_column", None, "country_code"),
    "blank indicator": (_set(2, "pupils", ""), "ees_blank_cell", 2, "pupils"),
    "blank filter": (_set(3, "category", ""), "ees_filter_blank", 3, "category"),
    "NULL": (_set(1, "pupils", "NULL"), "ees_null_value", 1, "pupils"),
    "N/A": (_set(1, "category", "N/A"), "ees_null_value", 1, "category"),
    "bad symbol": (_set(4, "pupils", "*"), "ees_indicator_value", 4, "pupils"),
    "legacy symbol": (_set(4, "pupils_percent", ":"), "ees_indicator_value", 4, "pupils_percent"),
    "thousands separator": (_set(4, "pupils", "1,000"), "ees_indicator_value", 4, "pupils"),
    "undeclared column": (lambda rows: [{**r, "note": "n"} for r in rows], "ees_undeclared_column", None, "note"),
    "duplicate row": (lambda rows: [*rows, dict(rows[0])], "ees_duplicate_row", 17, None),
    "four-digit academic year": (_set(1, "time_period", "2025"), "ees_time_period", 1, "time_period"),
    "non-consecutive years": (_set(1, "time_period", "202527"), "ees_time_period", 1, "time_period"),
    "unknown time identifier": (_set(2, "time_identifier", "Year"), "ees_time_identifier", 2, "time_identifier"),
    "six-digit calendar year": (_set(1, "time_identifier", "Calendar year"), "ees_time_period", 1, "time_period"),
    "LA columns missing": (_drop("old_la_code"), "ees_level_column", 1, "old_la_code"),
    "LA name blank on LA row": (_set(1, "la_name", ""), "ees_blank_cell", 1, "la_name"),
    "school URN blank on school row": (_set(5, "school_urn", ""), "ees_blank_cell", 5, "school_urn"),
    "URN shape": (_set(5, "school_urn", "12345"), "ees_code_shape", 5, "school_urn"),
    "unknown level": (_set(1, "geographic_level", "County"), "ees_geographic_level", 1, "geographic_level"),
    "country mismatch": (_set(1, "country_name", "Wales"), "ees_country", 1, "country_code"),
    "not snake_case": (
        lambda rows: [{("Note Text" if k == "category" else k): v for k, v in r.items()} for r in rows],
        "ees_snake_case",
        None,
        "Note Text",
    ),
}


@pytest.mark.parametrize("case", BAD_DATA, ids=list(BAD_DATA))
def test_check_ees_file__finds_each_broken_rule(good_files, case):
    transform, rule_id, row, column = BAD_DATA[case]
    rows = _read(good_files.data)
    assert rows[0]["geographic_level"] == "Local authority" and rows[4]["geographic_level"] == "School"
    _write(good_files.data, transform(rows))
    findings = check_ees_file(good_files.data, good_files.meta)
    assert (rule_id, row, column) in {(f.rule_id, f.row, f.item) for f in findings}, findings
    assert all(f.file in {"pupils_by_category.csv", "pupils_by_category.meta.csv"} for f in findings)
    with pytest.raises(EESFormatError, match=rule_id):
        assert_valid_ees(good_files.data, good_files.meta)


BAD_META = {
    "names a column not in the data": (
        lambda rows: [*rows, {**rows[1], "col_name": "ghost"}],
        "ees_meta_row",
        4,
    ),
    "declares a column twice": (lambda rows: [*rows, dict(rows[1])], "ees_meta_duplicate", None),
    "declares a geography column": (lambda rows: [*rows, {**rows[1], "col_name": "la_name"}], "ees_meta_row", 4),
    "bad col_type": (lambda rows: [{**rows[0], "col_type": "Dimension"}, *rows[1:]], "ees_meta_row", 1),
    "bad unit": (lambda rows: [rows[0], {**rows[1], "indicator_unit": "pupils"}, rows[2]], "ees_meta_row", 2),
    "indicator left undeclared": (lambda rows: rows[:2], "ees_undeclared_column", None),
    "lacks a meta column": (lambda rows: _drop("filter_hint")(rows), "ees_meta_columns", None),
}


@pytest.mark.parametrize("case", BAD_META, ids=list(BAD_META))
def test_check_ees_file__finds_each_broken_meta_rule(good_files, case):
    transform, rule_id, row = BAD_META[case]
    _write(good_files.meta, transform(_read(good_files.meta)))
    findings = check_ees_file(good_files.data, good_files.meta)
    assert (rule_id, row) in {(f.rule_id, f.row) for f in findings}, findings


def test_check_ees_file__short_row_and_empty_file(good_files):
    lines = good_files.data.read_text(encoding="utf-8").splitlines()
    good_files.data.write_text("\n".join([*lines, "202526,Academic year"]) + "\n", encoding="utf-8")
    findings = check_ees_file(good_files.data, good_files.meta)
    assert [(f.rule_id, f.row) for f in findings] == [("ees_ragged_row", 17)]
    good_files.data.write_text(lines[0] + "\n", encoding="utf-8")
    assert "ees_file_empty" in {f.rule_id for f in check_ees_file(good_files.data, good_files.meta)}


def test_check_ees_file__missing_file(tmp_path):
    findings = check_ees_file(tmp_path / "absent.csv", tmp_path / "absent.meta.csv")
    assert {f.rule_id for f in findings} == {"ees_file_missing"}


def test_eescolumn__strict_meta_rows():
    with pytest.raises(ValidationError):
        EESColumn(col_name="rate", col_type="Indicator", label="Rate", filter_hint="not for indicators")
    with pytest.raises(ValidationError):
        EESColumn(col_name="rate", col_type="Indicator", label="Rate", indicator_unit="percent")
    with pytest.raises(ValidationError):
        EESColumn(col_name="Rate", col_type="Indicator", label="Rate")
    with pytest.raises(ValidationError):
        EESColumn(col_name="rate", col_type="Indicator", label="Rate", indicator_dp="1")


def test_write_ees_files__refuses_undeclared_and_missing_values(tmp_path):
    frame = _publishable_frame()
    with pytest.raises(EESFormatError, match="undeclared"):
        write_ees_files(frame.assign(note="n"), tmp_path, "f", COLUMNS)
    with pytest.raises(EESFormatError, match="missing values"):
        write_ees_files(frame.assign(pupils=None), tmp_path, "f", COLUMNS)
