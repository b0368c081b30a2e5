"""Publish gates: Great Expectations suites that check what is about to be delivered against independent truth.

- :func:`run_feed_gate` validates a recipient's feed with the suite ``<recipient>__feed`` and builds Data Docs.
- :mod:`pupilshare.gates.truth` works out who should be in a feed from the raw returns, not from dbt.
- Suites are YAML in ``expectations/`` (see :mod:`pupilshare.gates.spec`).

Importing this package does not import Great Expectations; running a gate does.
"""

from pupilshare.gates.feed import TRUTH_FRAME_COLUMNS, GateInputError, build_validation_frame, run_feed_gate
from pupilshare.gates.result import GateFailedError, GateResult

__all__ = [
    "TRUTH_FRAME_COLUMNS",
    "GateFailedError",
    "GateInputError",
    "GateResult",
    "build_validation_frame",
    "run_feed_gate",
]
