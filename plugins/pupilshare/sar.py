"""Subject access: everything the platform holds about one pupil, their effective opt-outs, and every disclosure.

``pupilshare sar UPN [--format json|html]`` prints :func:`subject_access_report` as JSON or a self-contained HTML
page. The report is built from three places:

- **held**: every row of every raw return that holds the pupil, grouped by return type (``census``, ``ctf``,
  ``ncmp``, ``eyfs``, ``post16``, ``activity``, ``optouts``) then by raw table. *All history*, not only the current
  rows: every loaded batch, superseded census returns and rejected rows (``_rejected``) included, because a subject
  access request is about what is held, and the raw tables are what is held. Census tables that carry no UPN
  (addresses, SEN needs, FSM periods, exclusions, absences...) are linked to the pupil's census row by its table id
  within the same load batch. Each row keeps its provenance columns (``_load_batch_id``, ``_row_number``).
- **opt_outs**: the pupil's rows of the dbt model ``int_opt_outs_effective`` (one per scope, with ``is_opted_out``
  and the ``explanation`` of which request or census item caused it and who made it). The model covers pupils on
  roll only. When the model is not built the list is empty and the report says so in :attr:`SubjectAccessReport.notes`
  (printed on standard error for JSON, on the page for HTML).
- **disclosures**: every row of the append-only ledger (``ledger.disclosures`` joined to ``ledger.deliveries``).
- **retractions**: every retraction notice that named the pupil (``ledger.retractions``): recipient, route, date,
  the deliveries retracted (ids, feed dates), the fields asked to be deleted, the opt-out that caused it, the file.

The rows held and the opt-outs come from ``ledger.subject_access_rows(upn)``, a security-definer function that only
the DPO role may run (:mod:`pupilshare.access`) and that records every call in ``ledger.subject_access_requests``: the
DPO reads no raw table directly, and every look-up of a child is itself on record. That insert is the only write.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

import psycopg
import psycopg.errors
import psycopg.sql
from stdnum.exceptions import ValidationError
from stdnum.gb import upn as upn_check

from pupilshare.ingest.raw_schema import RAW_SCHEMA

#: The return types a pupil's rows can be held in, in report order.
RETURN_TYPES = ("census", "ctf", "ncmp", "eyfs", "post16", "activity", "optouts")
_OPT_OUTS_SOURCE = "analytics.int_opt_outs_effective"
_MISSING_PREFIX = "missing:"


class InvalidUpnError(ValueError):
    """The UPN given is not a valid Unique Pupil Number (length, format, LA number or check letter)."""


@dataclass
class SubjectAccessReport:
    """One pupil's subject access report; :meth:`to_dict` is the JSON shape."""

    upn: str
    held: dict[str, dict[str, list[dict[str, Any]]]]
    opt_outs: list[dict[str, Any]]
    disclosures: list[dict[str, Any]]
    retractions: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """``{"upn", "held", "opt_outs", "disclosures", "retractions"}`` (notes are not part of the shape)."""
        return {
            "upn": self.upn,
            "held": self.held,
            "opt_outs": self.opt_outs,
            "disclosures": self.disclosures,
            "retractions": self.retractions,
        }


def compact_upn(value: str) -> str:
    """The UPN in its compact form (upper case, no spaces), or :class:`InvalidUpnError` saying what is wrong."""
    try:
        return upn_check.validate(value)
    except ValidationError as error:
        raise InvalidUpnError(f"{value!r} is not a valid UPN: {error}") from None


def raw_table_return_types() -> dict[str, str]:
    """Raw table -> return type, from the ingest table definitions (census tables are ``census_*``; the CTF loader
    keeps its pupils in ``raw.ctf_pupils`` and is not imported for it: lxml alone costs 0.1 s of the command)."""
    from pupilshare.ingest import eyfs, ncmp, optouts, post16

    tables = {"ctf_pupils": "ctf", "ncmp_bmi_results": "ncmp"}  # BMI results: computed from the NCMP rows at load
    for spec in (eyfs.EYFS, ncmp.NCMP, optouts.OPTOUTS, post16.POST16, post16.ACTIVITY):
        for table in spec.tables:
            tables[table.raw_table] = spec.return_type
    return tables


def subject_access_report(conn: psycopg.Connection, upn: str) -> SubjectAccessReport:
    """Build the report for ``upn`` (validated first). ``conn`` must be allowed to run
    ``ledger.subject_access_rows`` (the DPO role) and read the ledger. An unknown valid UPN gives an empty report."""
    subject = compact_upn(upn)
    held: dict[str, dict[str, list[dict[str, Any]]]] = {return_type: {} for return_type in RETURN_TYPES}
    opt_outs: list[dict[str, Any]] = []
    notes: list[str] = []
    table_types = raw_table_return_types()
    try:
        with conn.transaction():
            rows = conn.execute("select source, row_data from ledger.subject_access_rows(%s)", (subject,)).fetchall()
            disclosures = _disclosures(conn, subject)
            retractions = _retractions(conn, subject)
    except psycopg.errors.UndefinedFunction:
        raise SubjectAccessConfigError(
            "ledger.subject_access_rows is missing: run `pupilshare roles` to create the roles and functions"
        ) from None
    except psycopg.errors.InsufficientPrivilege as error:
        raise SubjectAccessConfigError(
            f"{error.diag.message_primary}: run `pupilshare roles` again (it hands tables built since to the owner "
            "role and grants the DPO what subject access needs)"
        ) from None
    for source, row in rows:
        if source.startswith(_MISSING_PREFIX):
            notes.append(
                f"effective opt-outs unknown: the dbt model {source.removeprefix(_MISSING_PREFIX)} is not built "
                "(run the pipeline, `pupilshare run`, then ask again)"
            )
        elif source == _OPT_OUTS_SOURCE:
            opt_outs.append(_plain(row))
        else:
            table = source.removeprefix(f"{RAW_SCHEMA}.")
            return_type = "census" if table.startswith("census_") else table_types.get(table, table)
            held.setdefault(return_type, {}).setdefault(table, []).append(_plain(row))
    return SubjectAccessReport(subject, held, opt_outs, disclosures, retractions, notes=notes)


def _disclosures(conn: psycopg.Connection, upn: str) -> list[dict[str, Any]]:
    """Every ledger row of the pupil, oldest first; grain: one per pupil per delivered file."""
    cursor = conn.execute(
        """select deliveries.recipient_id, deliveries.feed_date, disclosures.fields_sent,
                  deliveries.legal_basis, deliveries.file_sha256, deliveries.run_id
           from ledger.disclosures as disclosures
           inner join ledger.deliveries as deliveries on deliveries.delivery_id = disclosures.delivery_id
           where disclosures.upn = %s
           order by deliveries.feed_date, deliveries.delivered_at, disclosures.disclosure_id""",
        (upn,),
    )
    return [
        {
            "recipient": recipient,
            "feed_date": feed_date.isoformat(),
            "fields": list(fields),
            "legal_basis": legal_basis,
            "file_sha256": file_sha256,
            "run_id": run_id,
        }
        for recipient, feed_date, fields, legal_basis, file_sha256, run_id in cursor
    ]


def _retractions(conn: psycopg.Connection, upn: str) -> list[dict[str, Any]]:
    """Every retraction notice naming the pupil, oldest first; grain: one per pupil per notice."""
    cursor = conn.execute(
        """select recipient_id, route, retracted_at, delivery_ids, feed_dates, fields_sent, reason, file_name,
                  file_sha256, retraction_id
           from ledger.retractions where upn = %s order by retracted_at, retraction_row_id""",
        (upn,),
    )
    return [
        {
            "recipient": recipient,
            "route": route,
            "date": retracted_at.date().isoformat(),
            "deliveries_retracted": [str(delivery_id) for delivery_id in delivery_ids],
            "feed_dates": [day.isoformat() for day in feed_dates],
            "fields": list(fields),
            "reason": reason,
            "file_name": file_name,
            "file_sha256": file_sha256,
            "retraction_id": str(retraction_id),
        }
        for (recipient, route, retracted_at, delivery_ids, feed_dates, fields, reason, file_name, file_sha256,
             retraction_id) in cursor
    ]  # fmt: skip


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """A row as JSON-ready values (jsonb gives str, numbers, bools, lists and dicts already)."""
    return {key: value.isoformat() if isinstance(value, dt.date) else value for key, value in row.items()}


class SubjectAccessConfigError(RuntimeError):
    """The DPO role or its subject access function is missing, or this connection may not act as the DPO."""


def act_as_dpo(conn: psycopg.Connection, dpo_role: str) -> None:
    """Make the session act as ``dpo_role`` (``set role``) unless it logged in as it; the login user stays
    ``session_user``, which is what ``ledger.subject_access_requests`` records as the requester."""
    if conn.info.user == dpo_role:
        return
    if conn.execute("select 1 from pg_roles where rolname = %s", (dpo_role,)).fetchone() is None:
        raise SubjectAccessConfigError(
            f"the DPO role {dpo_role} does not exist in this server: create the project's roles with `pupilshare roles`"
        )
    try:
        with conn.transaction():
            conn.execute(psycopg.sql.SQL("set role {}").format(psycopg.sql.Identifier(dpo_role)))
    except psycopg.errors.InsufficientPrivilege:
        raise SubjectAccessConfigError(
            f"user {conn.info.user} may not act as {dpo_role}: connect as the DPO (--database-url) or grant "
            f"{dpo_role} to this user"
        ) from None


def report_to_json(report: SubjectAccessReport) -> str:
    return json.dumps(report.to_dict(), indent=2, ensure_ascii=False)


_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Subject access report: {{ report.upn }}</title>
<style>
body { font-family: sans-serif; margin: 2em; } table { border-collapse: collapse; margin-bottom: 1.5em; }
th, td { border: 1px solid #999; padding: 0.2em 0.5em; text-align: left; vertical-align: top; }
.note { background: #fff3cd; padding: 0.5em; }
</style>
</head>
<body>
<h1>Subject access report for UPN {{ report.upn }}</h1>
<p>Generated {{ generated_at }}.</p>
{% for note in report.notes %}<p class="note">{{ note }}</p>
{% endfor %}
<h2>What is held, by return</h2>
{% for return_type, tables in report.held.items() %}
<h3>{{ return_type }}</h3>
{% if not tables %}<p>Nothing held.</p>{% endif %}
{% for table, rows in tables.items() %}
<h4>{{ table }} ({{ rows | length }} rows)</h4>
{{ grid(rows) }}
{% endfor %}
{% endfor %}
<h2>Effective opt-outs and why</h2>
{% if report.opt_outs %}{{ grid(report.opt_outs) }}{% else %}<p>None recorded for this pupil.</p>{% endif %}
<h2>Disclosures</h2>
{% if report.disclosures %}{{ grid(report.disclosures) }}{% else %}<p>No disclosures recorded.</p>{% endif %}
<h2>Retractions</h2>
{% if report.retractions %}{{ grid(report.retractions) }}{% else %}<p>No retraction notices recorded.</p>{% endif %}
</body>
</html>
"""

_GRID = """<table>
<tr>{% for column in columns %}<th>{{ column }}</th>{% endfor %}</tr>
{% for row in rows %}<tr>{% for column in columns %}<td>{{ show(row.get(column)) }}</td>{% endfor %}</tr>
{% endfor %}</table>"""


def report_to_html(report: SubjectAccessReport) -> str:
    """A plain self-contained page (no scripts, no external resources); every value is HTML-escaped by jinja2."""
    from jinja2 import Environment

    environment = Environment(autoescape=True)
    grid_template = environment.from_string(_GRID)

    def grid(rows: list[dict[str, Any]]):
        columns = list(dict.fromkeys(column for row in rows for column in row))
        return _render_grid(grid_template, columns, rows)

    page = environment.from_string(_HTML)
    return page.render(report=report, grid=grid, generated_at=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"))


def _render_grid(template, columns: list[str], rows: list[dict[str, Any]]):
    from markupsafe import Markup

    return Markup(template.render(columns=columns, rows=rows, show=_show))  # noqa: S704 - rendered with autoescape


def _show(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)
