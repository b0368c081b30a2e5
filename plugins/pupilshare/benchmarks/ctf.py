"""CTF streaming benchmark: how fast :func:`pupilshare.ingest.ctf.iter_ctf` reads a CTF and how much memory it needs.

The file is written from a synthetic census extract (pupils repeated, with fresh UPN-like ordinals, to reach ``n``).
Peak memory is Python's (``tracemalloc``) plus lxml's C heap is not counted, so the figure also compares two sizes:
constant memory shows as the same peak for 10x the pupils.
"""

from __future__ import annotations

import itertools
import random
import tempfile
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

from pupilshare.generate.census import build_census_extract
from pupilshare.generate.returns import write_ctf
from pupilshare.ingest.ctf import iter_ctf, scan_ctf_bytes, validate_ctf_pupil


@dataclass(frozen=True)
class CtfBenchmark:
    pupils: int
    file_bytes: int
    seconds: float
    pupils_per_second: float
    peak_python_bytes: int
    seconds_traced: float


def benchmark_ctf_streaming(pupils: int = 100_000, *, seed: int = 1) -> CtfBenchmark:
    """Write a CTF of ``pupils`` pupils, then time the byte scan plus the streaming parse and row rules over it."""
    extract = build_census_extract(schools=20, pupils=min(pupils, 5000), seed=seed)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "9262001_CTF_9264001_001.xml"
        source = itertools.islice(itertools.cycle(extract.pupils), pupils)
        write_ctf(path, ("926", "2001", "Benchmark School", "926", "4001", extract.reference_date), source,
                  random.Random(seed))  # noqa: S311  # fmt: skip
        seconds, count = _read(path)
        tracemalloc.start()
        seconds_traced, _ = _read(path)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return CtfBenchmark(count, path.stat().st_size, seconds, count / seconds, peak, seconds_traced)


def _read(path: Path) -> tuple[float, int]:
    started = time.perf_counter()
    scan_ctf_bytes(path)
    seen: set[str] = set()
    count = 0
    for kind, row in iter_ctf(path):
        if kind == "pupil":
            validate_ctf_pupil(row, seen)
            seen.clear()  # repeated pupils would all be duplicates; the set's growth is not what is measured
            count += 1
    return time.perf_counter() - started, count


if __name__ == "__main__":
    for size in (10_000, 100_000):
        print(benchmark_ctf_streaming(size))
