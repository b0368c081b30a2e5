"""Importing this module registers every return type's loader with the inbox driver, in load order."""

import pupilshare.ingest.census  # noqa: F401 - School Census LA extracts
