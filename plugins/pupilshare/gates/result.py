"""What a publish gate decided, and the error that stops a publish when it failed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class GateResult:
    """One gate run: which suite, pass or fail, one line per failed check, and where its Data Docs are.

    ``result_id`` is unique per run (``<suite>/<run name>/<run time>/<batch>``, the GX validation result key) and is
    what the ledger's ``gate_results`` and every delivery refer to.
    """

    suite_name: str
    success: bool
    result_id: str
    failures: tuple[str, ...]
    evaluated_rows: int
    data_docs_index: Path | None


class GateFailedError(RuntimeError):
    """A publish gate failed: nothing may be delivered. ``result`` holds the full verdict."""

    def __init__(self, result: GateResult) -> None:
        self.result = result
        lines = "\n".join(f"  - {failure}" for failure in result.failures) or "  - (no failure recorded)"
        docs = result.data_docs_index or "not built"
        super().__init__(
            f"publish gate {result.suite_name} failed on {result.evaluated_rows} feed rows; nothing is delivered.\n"
            f"{lines}\n"
            f"Fix the model or the data, rebuild and rerun. Data Docs: {docs}. "
            f"Each check and why it exists: expectations/{result.suite_name}.yml (result {result.result_id})."
        )
