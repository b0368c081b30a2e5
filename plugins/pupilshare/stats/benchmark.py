"""Time suppression and the audit on a county-scale linked table set (not a test: run it by hand).

    python -m pupilshare.stats.benchmark --schools 420
    python -m pupilshare.stats.benchmark --schools 420 --table pupil_absence

Without ``--table`` it times a generic school x category table linked to its LA table. With ``--table`` it makes
synthetic rows shaped like that registered table's dbt model (every count, ``sum_of`` and ``sum`` column, the school
phase as school group) and times the publish step's own path: build the linked tables, suppress, audit.

The data are synthetic: school sizes drawn so that most schools are small, as in a rural county, and pupils spread
over categories with shares from 70% down to 3%, so the small categories of small schools give many primary cells.
"""

from __future__ import annotations

import argparse
import itertools
import time
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from pupilshare.stats.audit import audit_suppression
from pupilshare.stats.config import DisclosureConfig
from pupilshare.stats.publication import build_linked_tables
from pupilshare.stats.registry import StatisticsTable, default_registry
from pupilshare.stats.suppression import (
    TOTAL,
    TableSet,
    build_table,
    find_derived_to_hide,
    link_tables,
    suppress_table_set,
)

_SHARES = (0.70, 0.12, 0.08, 0.05, 0.03, 0.02)


@dataclass(frozen=True)
class BenchmarkResult:
    """Sizes and wall-clock seconds of one run."""

    cells: int
    constraints: int
    primary: int
    secondary: int
    suppression_seconds: float
    audit_seconds: float
    publishable: bool


def make_county_tables(n_schools: int = 420, n_categories: int = 5, seed: int = 0) -> TableSet:
    """A school x category table (school and LA margins) linked to the LA x category table of the same measure.

    Grain of the school frame: one row per school per category; of the LA frame: one row per category.
    """
    rng = np.random.default_rng(seed)
    shares = np.array(_SHARES[:n_categories]) / sum(_SHARES[:n_categories])
    sizes = rng.lognormal(mean=4.6, sigma=0.7, size=n_schools).round().astype(int) + 5
    counts = np.array([rng.multinomial(size, shares) for size in sizes])
    categories = [f"category_{k + 1}" for k in range(n_categories)]
    schools = pd.DataFrame(
        [
            {"school": f"{100000 + i}", "category": category, "pupils": int(counts[i, k])}
            for i in range(n_schools)
            for k, category in enumerate(categories)
        ]
    )
    la = pd.DataFrame({"la": "926", "category": categories, "pupils": counts.sum(axis=0)})
    by_school = build_table(schools, table="by_school", dimensions=["school", "category"], count="pupils")
    by_la = build_table(la, table="by_la", dimensions=["la", "category"], count="pupils", totals=["category"])
    return link_tables(by_school, by_la, first_where={"school": TOTAL}, second_where={"la": "926"})


def benchmark_suppression(
    n_schools: int = 420, n_categories: int = 5, threshold: int = 3, seed: int = 0
) -> BenchmarkResult:
    """Build the county table set, run primary + secondary suppression and the audit; time both."""
    table_set = make_county_tables(n_schools, n_categories, seed)
    config = DisclosureConfig(threshold=threshold)
    started = time.perf_counter()
    result = suppress_table_set(table_set, config)
    suppressed = time.perf_counter()
    report = audit_suppression(table_set, result.hidden, config)
    audited = time.perf_counter()
    return BenchmarkResult(
        cells=len(table_set.cells),
        constraints=len(table_set.constraints),
        primary=len(result.primary),
        secondary=len(result.secondary),
        suppression_seconds=round(suppressed - started, 3),
        audit_seconds=round(audited - suppressed, 3),
        publishable=report.publishable,
    )


def make_model_rows(spec: StatisticsTable, n_schools: int = 420, n_categories: int = 5, seed: int = 0) -> pd.DataFrame:
    """Synthetic rows of a registered table's model: one row per school, topic value and dimension values.

    The table's count is spread over the dimension values as in :func:`make_county_tables`; every other count is a
    binomial share of it (or the sum of its ``sum_of`` parts), every ``sum`` column a fraction of it.
    """
    rng = np.random.default_rng(seed)
    if spec.topic and len(spec.count_columns) > 1:
        raise ValueError(f"table {spec.name}: synthetic rows for a topic table with several counts are not made")
    shares = np.array(_SHARES[:n_categories]) / sum(_SHARES[:n_categories])
    combos = list(itertools.product(*([f"{d.column}_{k + 1}" for k in range(n_categories)] for d in spec.dimensions)))
    combo_shares = np.array([np.prod([shares[int(v.rsplit("_", 1)[1]) - 1] for v in c]) for c in combos])
    topics = [f"topic_{k + 1}" for k in range(2)] if spec.topic else [None]
    sizes = rng.lognormal(mean=4.6, sigma=0.7, size=n_schools).round().astype(int) + 5
    rows = []
    for i, size in enumerate(sizes):
        school = {"time_period": "202627", "time_identifier": "Academic year", "school_urn": 100000 + i,
                  "school_laestab": f"926{2000 + i:04d}", "school_name": f"Synthetic school {i + 1}"}  # fmt: skip
        school |= {group.column: "Primary" if rng.random() < 0.85 else "Secondary" for group in spec.school_groups}
        for topic in topics:
            counts = rng.multinomial(size, combo_shares / combo_shares.sum())
            for combo, count in zip(combos, counts, strict=True):
                row = {**school, **dict(zip((d.column for d in spec.dimensions), combo, strict=True))}
                if spec.topic:
                    row[spec.topic.column] = topic
                rows.append(row | _other_columns(spec, int(count), rng))
    return pd.DataFrame(rows)


def _other_columns(spec: StatisticsTable, count: int, rng: np.random.Generator) -> dict[str, float]:
    values: dict[str, float] = {spec.count: count}
    for indicator in spec.indicators:
        if indicator.kind == "count" and indicator.column != spec.count and not indicator.sum_of:
            values[indicator.column] = int(rng.binomial(count, rng.uniform(0.02, 0.5)))
        elif indicator.kind == "sum":
            values[indicator.column] = round(count * float(rng.uniform(0.4, 1.0)), 2)
    for indicator in spec.indicators:
        if indicator.sum_of:
            values[indicator.column] = sum(values[part] for part in indicator.sum_of)
    return values


def benchmark_table(
    table: str, n_schools: int = 420, n_categories: int = 5, threshold: int = 3, seed: int = 0
) -> BenchmarkResult:
    """Time suppression and the audit of a registered table on synthetic model rows (the publish step's path)."""
    spec = default_registry().table(table)
    linked = build_linked_tables(spec, make_model_rows(spec, n_schools, n_categories, seed))
    config = DisclosureConfig(threshold=threshold)
    started = time.perf_counter()
    result = suppress_table_set(linked.table_set, config)
    hidden = result.hidden | find_derived_to_hide(linked.derived, result.hidden)
    suppressed = time.perf_counter()
    report = audit_suppression(linked.table_set, hidden, config, derived=linked.derived)
    audited = time.perf_counter()
    return BenchmarkResult(
        cells=len(linked.table_set.cells),
        constraints=len(linked.table_set.constraints),
        primary=len(result.primary),
        secondary=len(result.secondary),
        suppression_seconds=round(suppressed - started, 3),
        audit_seconds=round(audited - suppressed, 3),
        publishable=report.publishable,
    )


def main() -> None:
    """Command line: print one benchmark result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schools", type=int, default=420)
    parser.add_argument("--categories", type=int, default=5, help="values per dimension")
    parser.add_argument("--threshold", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--table",
        choices=[spec.name for spec in default_registry().tables],
        help="a registered table (default: generic)",
    )
    args = parser.parse_args()
    if args.table:
        print(asdict(benchmark_table(args.table, args.schools, args.categories, args.threshold, args.seed)))
    else:
        print(asdict(benchmark_suppression(args.schools, args.categories, args.threshold, args.seed)))


if __name__ == "__main__":
    main()
