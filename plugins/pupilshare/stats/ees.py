"""Write and check files in the DfE Explore Education Statistics (EES) open data format.

An EES upload is a tidy data CSV (grain: one row per time period, geography and combination of filter values; one
column per indicator) and a ``.meta.csv`` describing every filter and indicator column. :func:`write_ees_files` writes
both; :func:`check_ees_file` applies the main rules of the DfE data screener (the R package ``eesyscreener``, which we
cannot run here: it is R and needs its reference data) and returns :class:`~pupilshare.findings.Finding` objects naming
file, 1-based data row and column; :func:`assert_valid_ees` is the publish gate.

Rules checked: required columns (``REQUIRED_COLUMNS``) and the columns each geographic level needs (``LEVEL_COLUMNS``);
snake_case, unique column names; the meta file has its eight columns, declares every filter and indicator exactly once
and names only columns in the data; no ``NULL``-like values; no blank cells except geography columns that a row's
level does not use (a National row leaves ``la_name`` blank, as EES expects); indicator values are numbers or one of
``GSS_SYMBOLS``; filters have no blank values; no two rows share time, geography and filter values; ``time_period``
matches ``time_identifier`` (four digits, or six digits for two consecutive years such as 202526); the country code
matches the country name; LA and school codes have the right shape.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from pupilshare.findings import Finding

#: GSS symbols allowed in indicator columns: confidential, not applicable, unavailable, rounds to zero, low reliability.
GSS_SYMBOLS: tuple[str, ...] = ("c", "z", "x", "low", "u")
#: Values the screener rejects anywhere in the data or meta file.
NULL_VALUES: tuple[str, ...] = ("NULL", "Null", "null", "NA", "na", "N/A", "n/a")
META_COLUMNS: tuple[str, ...] = (
    "col_name",
    "col_type",
    "label",
    "indicator_grouping",
    "indicator_unit",
    "indicator_dp",
    "filter_hint",
    "filter_grouping_column",
)
REQUIRED_COLUMNS: tuple[str, ...] = (
    "time_period",
    "time_identifier",
    "geographic_level",
    "country_code",
    "country_name",
)
_LA = ("new_la_code", "la_name", "old_la_code")
#: Columns a row at each geographic level must fill in, besides ``REQUIRED_COLUMNS``.
LEVEL_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "National": (),
    "Regional": ("region_code", "region_name"),
    "Local authority": _LA,
    "Local authority district": ("lad_code", "lad_name"),
    "Parliamentary constituency": ("pcon_code", "pcon_name"),
    "Ward": ("ward_code", "ward_name"),
    "MAT": ("trust_id", "trust_name"),
    "Sponsor": ("sponsor_id", "sponsor_name"),
    "School": ("school_urn", "school_laestab", "school_name", *_LA),
    "Provider": ("provider_ukprn", "provider_name"),
    "Institution": ("institution_id", "institution_name"),
    "Planning area": ("planning_area_code", "planning_area_name"),
}
#: Observational-unit columns: never declared in the meta file.
GEOGRAPHY_COLUMNS: frozenset[str] = frozenset(c for cols in LEVEL_COLUMNS.values() for c in cols)
OBSERVATIONAL_COLUMNS: frozenset[str] = frozenset(REQUIRED_COLUMNS) | GEOGRAPHY_COLUMNS
INDICATOR_UNITS: tuple[str, ...] = ("", "%", "pp", "£", "£m", "numberstring")
_TERMS = ("Autumn term", "Spring term", "Summer term", "Autumn and spring term")
_FINANCIAL = ("Financial year Q1", "Financial year Q2", "Financial year Q3", "Financial year Q4")
_HALVES = ("Part 1 (April to September)", "Part 2 (October to March)")
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
#: ``time_identifier`` values whose ``time_period`` is four digits (2026) or six (202526, consecutive years).
FOUR_DIGIT_IDENTIFIERS: frozenset[str] = frozenset(
    ("Calendar year", "Reporting year", *_MONTHS, *(f"Week {n}" for n in range(1, 53)))
)
SIX_DIGIT_IDENTIFIERS: frozenset[str] = frozenset(
    ("Academic year", "Financial year", "Tax year", *_TERMS, *_FINANCIAL, *_HALVES)
)
COUNTRIES: Mapping[str, str] = {
    "E92000001": "England",
    "K02000001": "United Kingdom",
    "K03000001": "Great Britain",
    "K04000001": "England and Wales",
    "W92000004": "Wales",
    "S92000003": "Scotland",
    "N92000002": "Northern Ireland",
}
_CODE_SHAPES = {
    "old_la_code": re.compile(r"\d{3}"),
    "new_la_code": re.compile(r"E\d{8}"),
    "school_urn": re.compile(r"\d{6}"),
    "school_laestab": re.compile(r"\d{7}"),
}
_SNAKE = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")
_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?")


class EESFormatError(Exception):
    """An EES file pair breaks the screener rules: nothing may be published."""

    def __init__(self, findings: Sequence[Finding]) -> None:
        self.findings = list(findings)
        lines = [finding.describe() for finding in self.findings[:30]]
        if len(self.findings) > 30:
            lines.append(f"... and {len(self.findings) - 30} more")
        super().__init__(f"{len(self.findings)} EES format problem(s):\n" + "\n".join(lines))


class EESColumn(BaseModel):
    """One row of the ``.meta.csv``: a filter or an indicator column of the data file."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    col_name: str = Field(pattern=f"^{_SNAKE.pattern}$")
    col_type: Literal["Filter", "Indicator"]
    label: str = Field(min_length=1)
    indicator_grouping: str = ""
    indicator_unit: Literal["", "%", "pp", "£", "£m", "numberstring"] = ""
    indicator_dp: int | None = Field(default=None, ge=0)
    filter_hint: str = ""
    filter_grouping_column: str = ""

    @model_validator(mode="after")
    def _fields_match_type(self) -> EESColumn:
        if self.col_type == "Filter" and (
            self.indicator_grouping or self.indicator_unit or self.indicator_dp is not None
        ):
            raise ValueError(f"{self.col_name}: a filter has no indicator_grouping, indicator_unit or indicator_dp")
        if self.col_type == "Indicator" and (self.filter_hint or self.filter_grouping_column):
            raise ValueError(f"{self.col_name}: an indicator has no filter_hint or filter_grouping_column")
        return self

    def as_row(self) -> dict[str, str]:
        """The meta row as text, blanks for unset fields."""
        row = self.model_dump()
        row["indicator_dp"] = "" if self.indicator_dp is None else str(self.indicator_dp)
        return row


@dataclass(frozen=True)
class EESFiles:
    """The two files of an EES upload."""

    data: Path
    meta: Path


def write_ees_files(frame: pd.DataFrame, folder: Path, name: str, columns: Sequence[EESColumn]) -> EESFiles:
    """Write ``<name>.csv`` and ``<name>.meta.csv`` into ``folder``.

    ``frame``: one row per time period, geography and filter combination; observational columns (time, geography),
    then the filters and indicators listed in ``columns`` (the meta rows, in order). Indicator numbers are written with
    ``indicator_dp`` decimals when set; text values (GSS symbols such as ``c``) are written as they are. A missing value
    is an error: say why it is missing with a GSS symbol instead. Run :func:`assert_valid_ees` on the result.
    """
    declared = [column.col_name for column in columns]
    observational = [c for c in frame.columns if c in OBSERVATIONAL_COLUMNS]
    unknown = [c for c in frame.columns if c not in OBSERVATIONAL_COLUMNS and c not in declared]
    missing = [c for c in declared if c not in frame.columns]
    if unknown or missing:
        raise EESFormatError([_file_finding(name, "meta_columns", f"undeclared {unknown}, absent {missing}")])
    if frame[[*observational, *declared]].isna().any().any():
        raise EESFormatError([_file_finding(name, "blank_cell", "frame has missing values: use a GSS symbol")])
    data = frame[[*_order(observational), *declared]].copy()
    for column in columns:
        if column.col_type == "Indicator" and column.indicator_dp is not None:
            data[column.col_name] = data[column.col_name].map(lambda v, dp=column.indicator_dp: _format(v, dp))
    folder.mkdir(parents=True, exist_ok=True)
    files = EESFiles(folder / f"{name}.csv", folder / f"{name}.meta.csv")
    data.astype(str).to_csv(files.data, index=False, lineterminator="\n")
    meta = pd.DataFrame([column.as_row() for column in columns], columns=list(META_COLUMNS))
    meta.to_csv(files.meta, index=False, lineterminator="\n")
    return files


def _order(observational: list[str]) -> list[str]:
    standard = [*REQUIRED_COLUMNS, *dict.fromkeys(c for cols in LEVEL_COLUMNS.values() for c in cols)]
    return [c for c in standard if c in observational]


def _format(value: object, dp: int) -> str:
    if isinstance(value, str):
        return value
    return f"{float(value):.{dp}f}"


def _file_finding(file: str, rule_id: str, message: str, row: int | None = None, column: str | None = None) -> Finding:
    return Finding(file=file, rule_id=f"ees_{rule_id}", severity="error", message=message, row=row, item=column)


def assert_valid_ees(csv_path: Path, meta_path: Path) -> None:
    """The publish gate: raise :class:`EESFormatError` with every finding if the file pair breaks a screener rule."""
    findings = check_ees_file(csv_path, meta_path)
    if findings:
        raise EESFormatError(findings)


def check_ees_file(csv_path: Path, meta_path: Path) -> list[Finding]:
    """Check an EES data file and its meta file; return every problem found (empty list: passes)."""
    data_name, meta_name = Path(csv_path).name, Path(meta_path).name
    header, rows, findings = _read_csv(Path(csv_path))
    meta_header, meta_rows, meta_findings = _read_csv(Path(meta_path))
    findings += meta_findings
    if not header or not meta_header:
        return findings
    if not rows:
        findings.append(_file_finding(data_name, "file_empty", "data file has a header but no data rows"))
    findings += _check_header(data_name, header)
    findings += _check_meta(meta_name, meta_header, meta_rows, header)
    if findings:
        return findings  # the row rules need a sound header and meta file
    meta = {row["col_name"]: row for row in meta_rows}
    filters = [c for c in header if meta.get(c, {}).get("col_type") == "Filter"]
    filters += [row["filter_grouping_column"] for row in meta_rows if row["filter_grouping_column"]]
    indicators = [c for c in header if meta.get(c, {}).get("col_type") == "Indicator"]
    findings += _check_level_columns(data_name, header, rows)
    for number, row in enumerate(rows, start=1):
        findings += _check_row(data_name, number, row, set(filters), set(indicators))
    findings += _check_duplicates(data_name, rows, [c for c in header if c not in indicators])
    return findings


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]], list[Finding]]:
    """Header, rows as text and any finding about the file itself (absent, empty, ragged rows)."""
    if not path.is_file():
        return [], [], [_file_finding(path.name, "file_missing", f"file not found: {path}")]
    with path.open(encoding="utf-8-sig", newline="") as handle:
        records = list(csv.reader(handle))
    if not records or not records[0]:
        return [], [], [_file_finding(path.name, "file_empty", "file has no header row")]
    header, findings, rows = records[0], [], []
    for number, record in enumerate(records[1:], start=1):
        if len(record) != len(header):
            message = f"row has {len(record)} fields, header has {len(header)}"
            findings.append(_file_finding(path.name, "ragged_row", message, row=number))
        padded = record + [""] * (len(header) - len(record))  # later rules see every column, even on a short row
        rows.append(dict(zip(header, padded, strict=False)))
    return header, rows, findings


def _check_header(file: str, header: list[str]) -> list[Finding]:
    findings = [
        _file_finding(file, "required_column", f"required column {column!r} is missing", column=column)
        for column in REQUIRED_COLUMNS
        if column not in header
    ]
    seen: set[str] = set()
    for column in header:
        if column in seen:
            findings.append(_file_finding(file, "duplicate_column", "column name appears twice", column=column))
        seen.add(column)
        if not _SNAKE.fullmatch(column):
            findings.append(_file_finding(file, "snake_case", "column name must be snake_case", column=column))
    return findings


def _check_meta(file: str, meta_header: list[str], meta_rows: list[dict[str, str]], header: list[str]) -> list[Finding]:
    missing = [c for c in META_COLUMNS if c not in meta_header]
    if missing:
        return [_file_finding(file, "meta_columns", f"meta file lacks columns {missing}")]
    findings: list[Finding] = []
    declared: dict[str, int] = {}
    for number, row in enumerate(meta_rows, start=1):
        findings += _check_meta_row(file, number, row, header)
        declared[row["col_name"]] = declared.get(row["col_name"], 0) + 1
    groups = {row["filter_grouping_column"] for row in meta_rows if row["filter_grouping_column"]}
    for column, times in declared.items():
        if times > 1:
            findings.append(_file_finding(file, "meta_duplicate", f"declared {times} times", column=column))
    for column in header:
        if column not in OBSERVATIONAL_COLUMNS and column not in declared and column not in groups:
            message = "column in the data file is not declared in the meta file"
            findings.append(_file_finding(file, "undeclared_column", message, column=column))
    return findings


def _check_meta_row(file: str, number: int, row: dict[str, str], header: list[str]) -> list[Finding]:
    name, kind = row["col_name"], row["col_type"]
    problems = []
    if name not in header:
        problems.append("is not a column of the data file")
    if name in OBSERVATIONAL_COLUMNS:
        problems.append("is a time or geography column: those are not declared in the meta file")
    if kind not in ("Filter", "Indicator"):
        problems.append(f"col_type {kind!r} must be Filter or Indicator")
    if not row["label"].strip():
        problems.append("has a blank label")
    if any(value in NULL_VALUES for value in row.values()):
        problems.append("holds a NULL-like value")
    if kind == "Filter" and (row["indicator_grouping"] or row["indicator_unit"] or row["indicator_dp"]):
        problems.append("is a filter but has indicator fields filled in")
    if kind == "Indicator" and (row["filter_hint"] or row["filter_grouping_column"]):
        problems.append("is an indicator but has filter fields filled in")
    if row["indicator_unit"] not in INDICATOR_UNITS:
        problems.append(f"indicator_unit {row['indicator_unit']!r} is not one of {INDICATOR_UNITS}")
    if row["indicator_dp"] and not row["indicator_dp"].isdigit():
        problems.append(f"indicator_dp {row['indicator_dp']!r} must be a whole number")
    group = row["filter_grouping_column"]
    if group and group not in header:
        problems.append(f"filter_grouping_column {group!r} is not a column of the data file")
    return [_file_finding(file, "meta_row", f"{name!r} {p}", row=number, column="col_name") for p in problems]


def _check_level_columns(file: str, header: list[str], rows: Iterable[dict[str, str]]) -> list[Finding]:
    """Once per geographic level: the columns its rows need that the file lacks (reported at its first row)."""
    first_row: dict[str, int] = {}
    for number, row in enumerate(rows, start=1):
        first_row.setdefault(row.get("geographic_level", ""), number)
    return [
        _file_finding(file, "level_column", f"{level} rows need column {column!r}, which the file lacks", row, column)
        for level, row in first_row.items()
        for column in LEVEL_COLUMNS.get(level, ())
        if column not in header
    ]


def _check_row(file: str, number: int, row: dict[str, str], filters: set[str], indicators: set[str]) -> list[Finding]:
    level = row.get("geographic_level", "")
    findings = []
    if level not in LEVEL_COLUMNS:
        message = f"geographic_level {level!r} is not one of {sorted(LEVEL_COLUMNS)}"
        findings.append(_file_finding(file, "geographic_level", message, number, "geographic_level"))
    needed = set(LEVEL_COLUMNS.get(level, ()))
    for column, value in row.items():
        finding = _check_cell(value, column, column in needed, column in filters, column in indicators)
        if finding:
            findings.append(_file_finding(file, finding[0], finding[1], number, column))
    findings += _check_time(file, number, row)
    findings += _check_country(file, number, row)
    return findings


def _check_cell(value: str, column: str, needed: bool, is_filter: bool, is_indicator: bool) -> tuple[str, str] | None:
    """``(rule, message)`` for a bad cell, else None."""
    if value in NULL_VALUES:
        return "null_value", f"{value!r} is not allowed: use a GSS symbol {GSS_SYMBOLS} or a value"
    if not value.strip():
        if column in GEOGRAPHY_COLUMNS and not needed:
            return None  # a geography column this row's level does not use
        return ("filter_blank" if is_filter else "blank_cell"), "cell is blank"
    if value != value.strip():
        return "whitespace", f"{value!r} has leading or trailing spaces"
    if is_indicator and value not in GSS_SYMBOLS and not _NUMBER.fullmatch(value):
        return "indicator_value", f"{value!r} is neither a number nor one of the GSS symbols {GSS_SYMBOLS}"
    shape = _CODE_SHAPES.get(column)
    if shape and not shape.fullmatch(value):
        return "code_shape", f"{value!r} does not look like a {column} (expected {shape.pattern})"
    return None


def _check_time(file: str, number: int, row: dict[str, str]) -> list[Finding]:
    identifier, period = row.get("time_identifier", ""), row.get("time_period", "")
    if identifier in FOUR_DIGIT_IDENTIFIERS:
        ok = re.fullmatch(r"\d{4}", period) is not None
        expected = "four digits, such as 2026"
    elif identifier in SIX_DIGIT_IDENTIFIERS:
        ok = re.fullmatch(r"\d{6}", period) is not None and (int(period[2:4]) + 1) % 100 == int(period[4:6])
        expected = "six digits for consecutive years, such as 202526"
    else:
        message = f"{identifier!r} is not an EES time_identifier"
        return [_file_finding(file, "time_identifier", message, number, "time_identifier")]
    if ok:
        return []
    message = f"time_period {period!r} does not match time_identifier {identifier!r}: expected {expected}"
    return [_file_finding(file, "time_period", message, number, "time_period")]


def _check_country(file: str, number: int, row: dict[str, str]) -> list[Finding]:
    code, name = row.get("country_code", ""), row.get("country_name", "")
    if not code or COUNTRIES.get(code) == name:
        return []
    message = f"country_code {code!r} and country_name {name!r} do not match (England is E92000001)"
    return [_file_finding(file, "country", message, number, "country_code")]


def _check_duplicates(file: str, rows: Iterable[dict[str, str]], key_columns: list[str]) -> list[Finding]:
    first_seen: dict[tuple[str, ...], int] = {}
    findings = []
    for number, row in enumerate(rows, start=1):
        key = tuple(row.get(column, "") for column in key_columns)
        if key in first_seen:
            message = f"same time, geography and filter values as row {first_seen[key]}"
            findings.append(_file_finding(file, "duplicate_row", message, number))
        else:
            first_seen[key] = number
    return findings
