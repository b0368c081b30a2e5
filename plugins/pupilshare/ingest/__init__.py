"""Bring school returns from the inbox into the ``raw`` schema of PostgreSQL.

Every file set loads in one transaction with PostgreSQL COPY under its own load batch id; a file set that fails a
file-level check is quarantined with a report beside it and nothing from it is loaded.
"""

from pupilshare.ingest.inbox import IngestSummary, ReturnRejectedError, ingest_inbox

__all__ = ["IngestSummary", "ReturnRejectedError", "ingest_inbox"]
