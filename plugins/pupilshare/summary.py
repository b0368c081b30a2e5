"""What a run did, read back from the database: rows loaded, gate results, feeds delivered, ledger rows, and the
statistics published (or refused)."""

from __future__ import annotations

from typing import Any

import psycopg


def run_summary(conn: psycopg.Connection, run_ids: list[str]) -> dict[str, Any]:
    """Summarise what is loaded (per return type) and the gates and deliveries of the given Airflow run ids."""
    summary: dict[str, Any] = {"returns": [], "gates": [], "deliveries": [], "statistics": []}
    if _table_exists(conn, "raw.load_batches"):
        summary["returns"] = _rows(
            conn,
            """select batches.return_type, count(distinct batches.load_batch_id) as file_sets,
                      coalesce(sum(counts.value::bigint), 0) as rows_loaded,
                      (select count(*) from raw.validation_findings as findings
                       where findings.return_type = batches.return_type) as findings
               from raw.load_batches as batches
               left join lateral jsonb_each_text(batches.row_counts) as counts on true
               group by batches.return_type order by batches.return_type""",
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
