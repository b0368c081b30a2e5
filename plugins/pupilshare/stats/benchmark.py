"""Time suppression and the audit on a county-scale linked table set (not a test: run it by hand).

    python -m pupilshare.stats.benchmark --schools 420

The data are synthetic: school sizes drawn so that most schools are small, as in a rural county, and pupils spread
over categories with shares from 70% down to 3%, so the small categories of small schools give many primary cells.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from pupilshare.stats.audit import audit_suppression
from pupilshare.stats.config import DisclosureConfig
from pupilshare.stats.suppression import TOTAL, TableSet, build_table, link_tables, suppress_table_set

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


def main() -> None:
    """Command line: print one benchmark result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schools", type=int, default=420)
    parser.add_argument("--categories", type=int, default=5)
    parser.add_argument("--threshold", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(asdict(benchmark_suppression(args.schools, args.categories, args.threshold, args.seed)))


if __name__ == "__main__":
    main()
