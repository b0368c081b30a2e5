"""The ledger is append-only: a recorded row can be neither changed nor removed, by any role, the owner included."""

from __future__ import annotations

import datetime as dt

import psycopg
import psycopg.errors
import pytest

from pupilshare.adhoc import ensure_adhoc_schema
from pupilshare.ledger import ensure_ledger_schema, record_gate_result
from pupilshare.retention import ensure_retention_schema

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    "statement",
    [
        "update ledger.gate_results set success = true, failures = '[]'::jsonb",
        "delete from ledger.gate_results",
        "truncate ledger.gate_results cascade",
    ],
)
def test_gate_results__a_recorded_verdict_cannot_be_changed_or_removed(scratch_db, statement):
    """A failed gate stays failed on record: the verdict a delivery cites cannot be rewritten as a pass."""
    with psycopg.connect(scratch_db, autocommit=True) as conn:
        ensure_ledger_schema(conn)
        record_gate_result(
            conn,
            gate_result_id="gate-1",
            recipient_id="yss",
            suite_name="yss__feed",
            feed_date=dt.date(2026, 11, 30),
            run_id="r",
            success=False,
            evaluated_rows=10,
            failures=["restricted pupil with school_urn"],
            data_docs_index=None,
        )
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="ledger.gate_results is append-only"):
            conn.execute(statement)
        assert conn.execute("select success, failures from ledger.gate_results").fetchall() == [
            (False, ["restricted pupil with school_urn"])
        ]


def test_ledger__every_table_the_pipeline_records_in_is_append_only(scratch_db):
    """Every table of the ledger, the publish, retention and ad-hoc registers alike, carries the append-only triggers
    (a table added without them fails here). ``subject_access_requests`` is made by the roles set-up, not here."""
    with psycopg.connect(scratch_db, autocommit=True) as conn:
        ensure_ledger_schema(conn)
        ensure_retention_schema(conn)
        ensure_adhoc_schema(conn)
        unprotected = conn.execute(
            """select c.relname from pg_class as c
               join pg_namespace as n on n.oid = c.relnamespace
               where n.nspname = 'ledger' and c.relkind = 'r'
                   and (select count(*) from pg_trigger as t
                        where t.tgrelid = c.oid and t.tgname in ('append_only', 'append_only_truncate')) < 2
               order by 1"""
        ).fetchall()
    assert unprotected == []
