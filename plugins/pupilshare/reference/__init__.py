"""Public reference data shipped with the package.

``school_census_schema_2024.yml`` is the School Census LA extract schema published by Social Finance's liia-tools
(MIT licence, see ``school_census_schema_2024.LICENSE``). It is the contract for census input files and the source
of code lists.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml

CENSUS_SCHEMA_PATH = Path(__file__).with_name("school_census_schema_2024.yml")
CensusTerm = Literal["Autumn", "Spring", "Summer"]


class UnknownCensusTableError(KeyError):
    """A census table name that the schema does not define for that term."""


@cache
def load_census_schema() -> dict[str, Any]:
    """Return the whole census schema: ``{term: {"column_map": {table: {column: spec}}}}``."""
    with CENSUS_SCHEMA_PATH.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def census_tables(term: CensusTerm = "Autumn") -> list[str]:
    """The table names an LA extract may hold for ``term``."""
    return sorted(load_census_schema()[term]["column_map"])


def census_columns(table: str, term: CensusTerm = "Autumn") -> dict[str, dict[str, Any]]:
    """Column specs of one census table, in schema order (names exactly as in the extract header)."""
    column_map = load_census_schema()[term]["column_map"]
    if table not in column_map:
        raise UnknownCensusTableError(f"census table {table!r} is not in the {term} schema")
    return column_map[table]


def census_codes(table: str, column: str, term: CensusTerm = "Autumn") -> list[str]:
    """The code list of a categorical census column (duplicates removed, order kept)."""
    spec = census_columns(table, term)[column]
    codes = [str(item["code"]) for item in spec.get("category", [])]
    return list(dict.fromkeys(codes))
