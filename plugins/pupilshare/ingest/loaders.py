"""Importing this module registers every return type's loader with the inbox driver, in load order."""

import pupilshare.ingest.census  # noqa: F401 - School Census LA extracts
import pupilshare.ingest.ctf  # noqa: F401 - Common Transfer Files
import pupilshare.ingest.eyfs  # noqa: F401 - EYFS profile results
import pupilshare.ingest.ncmp  # noqa: F401 - NCMP measurements
import pupilshare.ingest.optouts  # noqa: F401 - opt-out requests
import pupilshare.ingest.post16  # noqa: F401 - post-16 applications and offers, activity updates
import pupilshare.ingest.workforce  # noqa: F401 - School Workforce Census


def ensure_all_raw_tables(conn) -> None:
    """Create the raw tables of every return type (idempotent), so dbt's sources exist before any file arrives."""
    from pupilshare.ingest.ctf import ensure_ctf_schema
    from pupilshare.ingest.eyfs import ensure_eyfs_schema
    from pupilshare.ingest.ncmp import ensure_ncmp_schema
    from pupilshare.ingest.optouts import ensure_optouts_schema
    from pupilshare.ingest.post16 import ensure_post16_schema
    from pupilshare.ingest.raw_schema import ensure_raw_schema
    from pupilshare.ingest.workforce import ensure_workforce_schema

    with conn.transaction():
        ensure_raw_schema(conn)
        for ensure in (
            ensure_ctf_schema,
            ensure_eyfs_schema,
            ensure_ncmp_schema,
            ensure_optouts_schema,
            ensure_post16_schema,
            ensure_workforce_schema,
        ):
            ensure(conn)
