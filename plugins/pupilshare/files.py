"""Small file helpers shared by everything that stages, delivers or publishes files."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path


def sha256_file(path: Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB chunks (constant memory)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def write_json(path: Path, value: object) -> None:
    """Write ``value`` as stable, readable JSON (sorted keys, dates as ISO strings). Streamed to the file: a feed's
    ledger rows (a row per pupil) as one indented string would peak at several times the rows' own memory."""
    with path.open("w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=2, sort_keys=True, default=str)
        handle.write("\n")


def slug(text: str) -> str:
    """``text`` made safe as one file or folder name (an Airflow run id, say)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:150]
