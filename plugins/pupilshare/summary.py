"""What a run did, read back from the database: rows loaded, gate results, feeds delivered, ledger rows, and the
statistics published (or refused)."""

from __future__ import annotations

from typing import Any

import psycopg


def run_summary(conn: psycopg.Connection, run_ids: list[str]) -> dict[str, Any]:
    """Summarise the latest load batches and the gates and deliveries of the given Airflow run ids."""
    summary: dict[str, Any] = {"batches": [], "gates": [], "deliveries": [], "statistics": []}
    if _table_exists(conn, "raw.load_batches"):
        summary["batches"] = _rows(
            conn,
            """select load_batch_id, source_name, status, row_counts, loaded_at
               from raw.load_batches order by load_batch_id desc limit 5""",
        )
    if _table_exists(conn, "ledger.gate_results"):
        summary["gates"] = _rows(
            conn,
            """select suite_name, feed_date, success, evaluated_rows, failures, data_docs_index
               from ledger.gate_results where run_id = any(%s) order by checked_at""",
            (run_ids,),
        )
        summary["deliveries"] = _rows(
            conn,
            """select d.recipient_id, d.feed_date, d.file_name, d.row_count, d.target, d.file_sha256,
                      (select count(*) from ledger.disclosures x where x.delivery_id = d.delivery_id)
                          as ledger_rows
               from ledger.deliveries d where d.run_id = any(%s) order by d.delivered_at""",
            (run_ids,),
        )
    if _table_exists(conn, "ledger.statistics_publications"):
        summary["statistics"] = _rows(
            conn,
            """select time_period, table_name, status, files, row_count, threshold, cells_primary, cells_secondary,
                      audit_ok, failure, target
               from ledger.statistics_publications where run_id = any(%s) order by recorded_at, table_name""",
            (run_ids,),
        )
    return summary


def _table_exists(conn: psycopg.Connection, name: str) -> bool:
    return conn.execute("select to_regclass(%s) is not null", (name,)).fetchone()[0]


def _rows(conn: psycopg.Connection, query: str, params: tuple = ()) -> list[dict[str, Any]]:
    with conn.cursor() as cursor:
        cursor.execute(query, params)
        names = [column.name for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
