"""Validation findings: what is wrong with a school return, where, and what to do about it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

Severity = Literal["error", "query"]


@dataclass(frozen=True)
class Finding:
    """One problem in one return. ``row`` is the 1-based data row in the file (None for a file-level finding)."""

    file: str
    rule_id: str
    severity: Severity
    message: str
    table: str | None = None
    row: int | None = None
    item: str | None = None

    def describe(self) -> str:
        where = self.file
        if self.table:
            where += f" [{self.table}]"
        if self.row is not None:
            where += f" row {self.row}"
        if self.item:
            where += f" item {self.item}"
        return f"{self.severity.upper()} {self.rule_id} {where}: {self.message}"


def write_report(findings: list[Finding], folder: Path, *, title: str) -> Path:
    """Write ``REPORT.txt`` (for people) and ``report.json`` (for tools) into ``folder``; return the text path."""
    folder.mkdir(parents=True, exist_ok=True)
    text = [title, "=" * len(title), ""]
    text += [finding.describe() for finding in findings]
    text += ["", "Nothing from this file set was loaded. Correct the file(s) and place them in the inbox again."]
    report = folder / "REPORT.txt"
    report.write_text("\n".join(text) + "\n", encoding="utf-8")
    (folder / "report.json").write_text(
        json.dumps([asdict(finding) for finding in findings], indent=2), encoding="utf-8"
    )
    return report
