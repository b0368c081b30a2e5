"""The inbox driver: every kind of school return is a registered loader; this module finds, loads, archives and
quarantines file sets for all of them.

The inbox holds one folder per return type (``inbox/census/``, ``inbox/ctf/``, ...). Inside it, each entry (a folder,
or a single file for one-file returns) is one file set that loads in one transaction or not at all. A loader raises
:class:`ReturnRejectedError` with findings when the file set must be refused: it is then moved to
``quarantine/<return type>/`` with ``REPORT.txt`` beside it, and the other file sets still load.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from pupilshare.findings import Finding, write_report
from pupilshare.settings import Settings, load_settings

log = logging.getLogger(__name__)

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,150}$")

#: A loader gets an open connection, the file set's path and the maximum file size; it returns
#: ``{"source", "load_batch_id", "rows": {table: n}, ...}`` or None when the same content was loaded before.
Loader = Callable[..., "dict | None"]

#: A preparer gets an open connection once per inbox pass, before the first file set of its return type, and returns
#: what does not change between that pass's file sets (the loader gets it as ``pass_context``).
Preparer = Callable[[psycopg.Connection], object]


class ReturnRejectedError(Exception):
    """A file set failed a file-level check; nothing from it may be loaded."""

    def __init__(self, findings: list[Finding]) -> None:
        self.findings = findings
        super().__init__("; ".join(finding.describe() for finding in findings))


@dataclass(frozen=True)
class ReturnType:
    name: str
    loader: Loader
    description: str
    prepare: Preparer | None = None


_REGISTRY: dict[str, ReturnType] = {}


def register_return(name: str, loader: Loader, *, description: str, prepare: Preparer | None = None) -> None:
    """Register the loader of one return type; its inbox folder is ``inbox/<name>/``.

    ``prepare``, if given, runs once per inbox pass before the first file set of this type; its result is handed to
    every load of the pass as ``pass_context`` (per-pass work such as reading the census schools, not per file)."""
    _REGISTRY[name] = ReturnType(name, loader, description, prepare)


def registered_returns() -> dict[str, ReturnType]:
    """Every return type with a loader, in load order (census first: other returns refer to its pupils)."""
    import pupilshare.ingest.loaders  # noqa: F401 - registers every loader

    # Registration order follows import order, which any module importing a loader can change: census goes first
    # explicitly, the rest keep their order.
    return dict(sorted(_REGISTRY.items(), key=lambda item: item[0] != "census"))


@dataclass
class IngestSummary:
    """What one pass over the inbox did."""

    loaded: list[dict] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    quarantined: list[dict] = field(default_factory=list)

    @property
    def rows_loaded(self) -> int:
        return sum(sum(batch["rows"].values()) for batch in self.loaded)

    def as_dict(self) -> dict:
        return {
            "loaded": self.loaded,
            "duplicates": self.duplicates,
            "quarantined": self.quarantined,
            "rows_loaded": self.rows_loaded,
        }


def ingest_inbox(settings: Settings | None = None) -> IngestSummary:
    """Load every file set waiting in the inbox; archive what loaded, quarantine what was refused."""
    from pupilshare.db import database_server
    from pupilshare.ingest.loaders import ensure_all_raw_tables

    settings = settings or load_settings()
    settings.ensure_folders()
    summary = IngestSummary()
    pending = [
        (return_type, entry)
        for return_type in registered_returns().values()
        for entry in _discover(settings.inbox_dir / return_type.name, return_type.name, summary, settings)
    ]
    with database_server(settings) as endpoints, psycopg.connect(endpoints.data_url) as conn:
        # every raw table exists from the first run on, loaded or not, so the dbt sources always resolve
        ensure_all_raw_tables(conn)
        prepared: dict[str, object] = {}
        for return_type, entry in pending:
            # prepared lazily, at the first file set of its type: the census has loaded by then in this pass
            if return_type.prepare is not None and return_type.name not in prepared:
                prepared[return_type.name] = return_type.prepare(conn)
            _ingest_one(conn, return_type, entry, summary, settings, prepared.get(return_type.name))
    return summary


def has_loaded_returns(settings: Settings | None = None) -> bool:
    """Whether any return has been loaded into ``raw`` yet (a publish before the first load has nothing to build)."""
    from pupilshare.db import database_server

    settings = settings or load_settings()
    with database_server(settings) as endpoints, psycopg.connect(endpoints.data_url) as conn:
        if conn.execute("select to_regclass('raw.load_batches')").fetchone()[0] is None:
            return False
        row = conn.execute("select exists (select 1 from raw.load_batches where status = 'loaded')").fetchone()
        return bool(row[0])


def _ingest_one(
    conn, return_type: ReturnType, entry: Path, summary: IngestSummary, settings: Settings, pass_context: object
) -> None:
    options = {} if return_type.prepare is None else {"pass_context": pass_context}
    try:
        result = return_type.loader(conn, entry, max_file_bytes=settings.max_inbox_file_bytes, **options)
    except ReturnRejectedError as rejected:
        report = quarantine(entry, rejected.findings, return_type.name, settings)
        summary.quarantined.append(
            {"return_type": return_type.name, "source": entry.name, "report": str(report), "reasons": str(rejected)}
        )
        rules = sorted({finding.rule_id for finding in rejected.findings})
        # the findings themselves go to REPORT.txt beside the file, never to the log: they can quote a row
        log.warning("quarantined %s %s: %s (see %s)", return_type.name, entry.name, ", ".join(rules), report)
        return
    if result is None:
        summary.duplicates.append(entry.name)
    else:
        summary.loaded.append({"return_type": return_type.name, **result})
    _archive(entry, return_type.name, settings)


def _discover(folder: Path, return_type: str, summary: IngestSummary, settings: Settings) -> Iterator[Path]:
    """File sets in one return type's inbox folder; unsafe names and links are quarantined, never followed."""
    if not folder.is_dir():
        return
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_symlink() or not _SAFE_NAME.match(entry.name):
            finding = Finding(
                file=entry.name,
                rule_id="FILE-NAME",
                severity="error",
                message="inbox entries need a plain name (letters, digits, . _ -) and may not be links",
            )
            report = quarantine(entry, [finding], return_type, settings)
            summary.quarantined.append(
                {"return_type": return_type, "source": entry.name, "report": str(report), "reasons": finding.message}
            )
            continue
        yield entry


def quarantine(source: Path, findings: list[Finding], return_type: str, settings: Settings) -> Path:
    """Move a refused file set out of the inbox into ``quarantine/<return type>/`` with its report."""
    target = settings.quarantine_dir / return_type / f"{_stamp()}__{_safe(source.name)}"
    target.mkdir(parents=True, exist_ok=True)
    if source.is_symlink():
        source.unlink()
    else:
        shutil.move(str(source), target / _safe(source.name))
    return write_report(findings, target, title=f"{return_type} return {source.name} was quarantined")


def _archive(source: Path, return_type: str, settings: Settings) -> None:
    target = settings.archive_dir / return_type / f"{_stamp()}__{_safe(source.name)}"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(source), target)


def _stamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:150] or "unnamed"
