"""Load Early Years Foundation Stage profile (EYFSP) results: one CSV per file set, one row per Reception pupil with
an outcome for each of the 17 early learning goals.

Layout and rules: docs/returns.md, "EYFS profile results".
"""

from __future__ import annotations

from pathlib import Path

import psycopg

from pupilshare.ingest.inbox import register_return
from pupilshare.ingest.tabular import (
    CsvReturn,
    CsvTable,
    Issue,
    LoadContext,
    check_required,
    check_upn,
    ensure_csv_tables,
    load_csv_return,
)

RETURN_TYPE = "eyfs"
#: The 17 early learning goals of the 2021 EYFS framework, by area; the first 12 (communication and language,
#: personal social and emotional development, physical development, literacy, mathematics) decide GLD.
GLD_GOALS = (
    "listening_attention_understanding", "speaking",
    "self_regulation", "managing_self", "building_relationships",
    "gross_motor_skills", "fine_motor_skills",
    "comprehension", "word_reading", "writing",
    "number", "numerical_patterns",
)  # fmt: skip
OTHER_GOALS = (
    "past_and_present", "people_culture_communities", "natural_world",
    "creating_with_materials", "being_imaginative_expressive",
)  # fmt: skip
GOALS = GLD_GOALS + OTHER_GOALS
#: 1 emerging, 2 expected, A not assessed (long absence, arrived too late to assess).
OUTCOMES = frozenset({"1", "2", "A"})
COLUMNS = ("upn", "school_urn", "academic_year", *GOALS)


def validate_eyfs_row(row: dict[str, str], context: LoadContext) -> list[Issue]:
    """Row rules of an EYFSP results file (ids in docs/returns.md)."""
    issues = check_required(row, ("school_urn", "academic_year")) + check_upn(row, context)
    for goal in GOALS:
        if row[goal] not in OUTCOMES:
            issues.append(
                Issue(
                    "EYFS-OUTCOME",
                    "error",
                    goal,
                    f"outcome {row[goal]!r} is not 1 (emerging), 2 (expected) or A (not assessed)",
                )
            )
    known = context.pupils.get(row["upn"])
    if known and known[1] and known[1] != "R":
        issues.append(
            Issue(
                "EYFS-NOT-RECEPTION", "query", "upn", f"the census has this pupil in NC year {known[1]}, not Reception"
            )
        )
    return issues


def has_good_level_of_development(row: dict[str, str]) -> bool:
    """GLD: expected (2) in every one of the 12 GLD goals."""
    return all(row[goal] == "2" for goal in GLD_GOALS)


EYFS = CsvReturn(
    RETURN_TYPE,
    (CsvTable("eyfs", "eyfs_results", COLUMNS, frozenset(COLUMNS), validate_eyfs_row, key=("upn",)),),
)


def ensure_eyfs_schema(conn: psycopg.Connection) -> None:
    """Create ``raw.eyfs_results`` (one row per pupil per results file) if missing."""
    ensure_csv_tables(conn, EYFS)


def load_eyfs_results(conn: psycopg.Connection, path: Path, *, max_file_bytes: int = 2 * 1024**3) -> dict | None:
    """Load one EYFSP results CSV (see :func:`pupilshare.ingest.tabular.load_csv_return`)."""
    return load_csv_return(conn, path, spec=EYFS, max_file_bytes=max_file_bytes)


register_return(RETURN_TYPE, load_eyfs_results, description="EYFS profile results: one .csv per file set")
