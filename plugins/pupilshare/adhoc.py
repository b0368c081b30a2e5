"""Ad-hoc sharing with another agency under a duty to share: named children on request, only the fields the request
justifies, the request recorded with its legal basis, then the same gate, delivery and ledger as every feed.

SHARING_RULES.md, "Other agencies with a duty to share"; the policy is the ``adhoc`` entry of
``plugins/pupilshare/policy/recipients.yml``. Three steps, each a task of the DAG ``pupilshare_share_adhoc``:

1. :func:`record_request` checks the request (every field in the policy's allow-list, every UPN valid and on the
   current roll, no duplicates, a legal basis and a justification) and only then records it in the append-only
   ``ledger.adhoc_requests``, with every opt-out in force for a named child (a duty to share overrides the YSS,
   post-16 and Sure Start opt-outs; the policy's ``opt_outs: refuse`` refuses such a request instead). A refused
   request writes nothing.
2. :func:`gate_request` reads the named children's requested fields from the current roll (the dbt model the
   policy names), runs the Great Expectations suite ``adhoc__feed`` against truth from the raw census, records the
   verdict in ``ledger.gate_results`` and only on success stages the file.
3. :func:`deliver_request` delivers the staged file, byte for byte what the gate passed, to
   ``outbox/adhoc/<agency>/<reference>/`` with a manifest, and records one ``ledger.disclosures`` row per child
   with the request's legal basis (recipient ``adhoc:<agency>``), so ``pupilshare sar`` lists it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import shutil
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from stdnum.exceptions import ValidationError as UpnError
from stdnum.gb import upn as upn_check

from pupilshare.db import database_server
from pupilshare.files import sha256_file, slug, write_json
from pupilshare.gates import GateFailedError
from pupilshare.gates.feed import feed_keys
from pupilshare.gates.truth import yss_restrictions
from pupilshare.gates.truths.roll import age_on, opt_out_states, read_current_roll
from pupilshare.ledger import (
    LedgerRow,
    append_only_triggers_ddl,
    delivery_exists,
    ensure_ledger_schema,
    record_delivery,
)
from pupilshare.policy import AdhocPolicy, RecipientPolicy, load_policy
from pupilshare.settings import Settings, load_settings

log = logging.getLogger(__name__)

#: The recipient id of every ad-hoc gate verdict and delivery; the ledger's recipient is ``adhoc:<agency>``.
ADHOC = "adhoc"

_REQUESTS_DDL = """
create schema if not exists ledger;
create table if not exists ledger.adhoc_requests (
    request_id uuid primary key,
    requesting_agency text not null,
    reference text not null,
    legal_basis text not null,
    justification text not null,
    requested_by text not null,
    upns text[] not null,
    fields text[] not null,
    opt_outs_in_force jsonb not null,
    request_date date not null,
    request_sha256 text not null,
    run_id text not null,
    policy_version text not null,
    received_at timestamptz not null default now(),
    unique (requesting_agency, reference)
);
comment on table ledger.adhoc_requests is
    'One row per ad-hoc request from another agency with a duty to share, as recorded before anything was '
    'extracted: who asked, under what law, for which children and fields, why, and every opt-out it overrode.';
""" + append_only_triggers_ddl(("adhoc_requests",))


class AdhocRequestError(ValueError):
    """The request is refused: nothing is recorded, extracted or delivered. The message says what to change."""


class AdhocRequest(BaseModel):
    """One request as the agency made it (the DAG's params): who, under what law, which children, which fields, why."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    requesting_agency: str = Field(min_length=3, max_length=120, pattern=r"^[A-Za-z0-9][A-Za-z0-9 &'(),.-]*$")
    legal_basis: str = Field(min_length=10, max_length=1000)
    reference: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    pupils: tuple[str, ...] = Field(min_length=1)
    fields: tuple[str, ...] = Field(min_length=1)
    justification: str = Field(min_length=20, max_length=4000)
    requested_by: str = Field(min_length=1, max_length=200)

    @field_validator("pupils", "fields")
    @classmethod
    def _no_repeats(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        seen = [value.strip() for value in values]
        repeated = [position for position, value in enumerate(seen, start=1) if value in seen[: position - 1]]
        if repeated:
            raise ValueError(f"entries at positions {repeated} repeat an earlier entry; name each once")
        return tuple(seen)

    def digest(self) -> str:
        """SHA-256 of the request's content: the same reference may be rerun, never reused for another request."""
        return hashlib.sha256(self.model_dump_json().encode("utf-8")).hexdigest()


def parse_request(params: dict[str, Any], policy: AdhocPolicy | None = None) -> AdhocRequest:
    """The request from the DAG's params, checked against the policy; :class:`AdhocRequestError` says why not.

    Checks, without reading any data: the params' shapes, every field in the policy's allow-list, at most
    ``max_pupils`` children, and every UPN valid (python-stdnum: length, format, check letter). UPNs are named by
    their position in the request, never by value (error texts reach logs and alerts).
    """
    policy = policy or _adhoc_policy()
    try:
        request = AdhocRequest.model_validate(params)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, item['loc']))}: {item['msg']}" for item in error.errors())
        raise AdhocRequestError(f"the request is refused, nothing was recorded: {problems}") from None
    unjustifiable = [field for field in request.fields if field not in policy.shareable_fields]
    if unjustifiable:
        raise AdhocRequestError(
            f"the request is refused, nothing was recorded: fields {unjustifiable} may not be shared on an ad-hoc "
            f"request; the policy (recipients.yml `adhoc.shareable_fields`) allows only {list(policy.shareable_fields)}"
        )
    if len(request.pupils) > policy.max_pupils:
        raise AdhocRequestError(
            f"the request is refused, nothing was recorded: it names {len(request.pupils)} children, more than the "
            f"{policy.max_pupils} an ad-hoc request may name (recipients.yml `adhoc.max_pupils`)"
        )
    compact, invalid = [], []
    for position, value in enumerate(request.pupils, start=1):
        try:
            compact.append(upn_check.validate(value))
        except UpnError:
            invalid.append(position)
    if invalid:
        raise AdhocRequestError(
            f"the request is refused, nothing was recorded: the pupils at positions {invalid} of the request are "
            "not valid UPNs (13 characters, the check letter first); correct them with the requesting agency"
        )
    repeated = [position for position, upn in enumerate(compact, start=1) if upn in compact[: position - 1]]
    if repeated:
        raise AdhocRequestError(
            f"the request is refused, nothing was recorded: pupils at positions {repeated} repeat an earlier UPN "
            "(case and spaces aside); name each child once"
        )
    return request.model_copy(update={"pupils": tuple(compact)})


def record_request(
    params: dict[str, Any], *, request_date: dt.date, run_id: str, settings: Settings | None = None
) -> str:
    """Check the request and record it in ``ledger.adhoc_requests``; return its request id.

    Refused (:class:`AdhocRequestError`, nothing written) when a field is not shareable, a UPN is invalid or not on
    the current roll, or the agency's reference was already used for a different request. Recording the same
    request again (a retried task) returns the first record's id.
    """
    settings = settings or load_settings()
    adhoc = _adhoc_policy()
    request = parse_request(params, adhoc)
    with database_server(settings) as endpoints, psycopg.connect(endpoints.data_url) as conn:
        existing = _recorded_request_id(conn, request)
        if existing is not None:
            return existing
        named = set(request.pupils)
        roll = read_current_roll(conn, lambda pupil: pupil.upn in named)
        unknown = [position for position, upn in enumerate(request.pupils, start=1) if upn not in roll]
        if unknown:
            raise AdhocRequestError(
                f"the request is refused, nothing was recorded: the pupils at positions {unknown} of the request are "
                "valid UPNs but not on the current roll (no school's latest census holds them); check them with the "
                "requesting agency or the school"
            )
        opted_out = _opt_outs_in_force(conn, roll, request, request_date, settings)
        if opted_out and adhoc.opt_outs == "refuse":
            positions = [request.pupils.index(upn) + 1 for upn in opted_out]
            raise AdhocRequestError(
                f"the request is refused, nothing was recorded: the pupils at positions {positions} have an opt-out "
                "in force and the policy (recipients.yml `adhoc.opt_outs: refuse`) does not let a request override it"
            )
        ensure_adhoc_schema(conn)
        request_id = _insert_request(conn, request, opted_out, request_date=request_date, run_id=run_id)
    if opted_out:
        log.warning(
            "ad-hoc request %s from %s names %s children with an opt-out in force; a duty to share overrides it, "
            "and each is recorded with the request",
            request.reference,
            request.requesting_agency,
            len(opted_out),
        )
    return request_id


def _recorded_request_id(conn: psycopg.Connection, request: AdhocRequest) -> str | None:
    """The id of this request if it is already recorded; refused if the reference was used for another request."""
    if not conn.execute("select to_regclass('ledger.adhoc_requests') is not null").fetchone()[0]:
        return None
    existing = conn.execute(
        "select request_id, request_sha256 from ledger.adhoc_requests where requesting_agency = %s and reference = %s",
        (request.requesting_agency, request.reference),
    ).fetchone()
    if existing is None:
        return None
    if existing[1] != request.digest():
        raise AdhocRequestError(
            f"the request is refused, nothing was recorded: {request.requesting_agency} already made request "
            f"{request.reference} with other content; a new request needs a new reference"
        )
    return str(existing[0])


def _insert_request(conn, request: AdhocRequest, opted_out: dict, *, request_date: dt.date, run_id: str) -> str:
    request_id = str(uuid.uuid4())
    with conn.transaction():
        conn.execute(
            """insert into ledger.adhoc_requests
                   (request_id, requesting_agency, reference, legal_basis, justification, requested_by, upns,
                    fields, opt_outs_in_force, request_date, request_sha256, run_id, policy_version)
               values (%s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s)""",
            (
                request_id, request.requesting_agency, request.reference, request.legal_basis,
                request.justification, request.requested_by, list(request.pupils), list(request.fields),
                json.dumps(opted_out), request_date, request.digest(), run_id, load_policy().version,
            ),
        )  # fmt: skip
    return request_id


def ensure_adhoc_schema(conn: psycopg.Connection) -> None:
    """Create the ledger (if need be) and ``ledger.adhoc_requests`` with its append-only triggers (idempotent)."""
    ensure_ledger_schema(conn)
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext('pupilshare.ledger_schema'))")
        conn.execute(_REQUESTS_DDL)


def _opt_outs_in_force(conn, roll, request: AdhocRequest, request_date: dt.date, settings: Settings) -> dict:
    """``{upn: {scope: cause}}`` of every opt-out in force on the request date for a named child, worked out from
    the raw returns as the gates do: requests for every scope, and for YSS the census item ``yssa = No`` too."""
    persistence = settings.opt_out_persistence
    states = opt_out_states(conn, {upn: roll[upn] for upn in request.pupils}, request_date, persistence)
    in_force: dict[str, dict[str, str | None]] = {}
    for (upn, scope), state in sorted(states.items()):
        if state.is_opted_out:
            in_force.setdefault(upn, {})[scope] = state.cause
    for upn, reason in yss_restrictions(conn, request_date, set(request.pupils), persistence=persistence).items():
        in_force.setdefault(upn, {})["yss"] = reason
    return {upn: in_force[upn] for upn in sorted(in_force)}


def adhoc_recipient(request: dict[str, Any], policy: AdhocPolicy | None = None) -> RecipientPolicy:
    """The request as a recipient policy for the gate: the requested fields are the delivered fields, in order."""
    policy = policy or _adhoc_policy()
    return RecipientPolicy.model_validate(
        {
            "recipient_id": ADHOC,
            "name": f"{request['requesting_agency']} (ad-hoc request {request['reference']})",
            "legal_basis": request["legal_basis"],
            "notice_clause": policy.notice_clause,
            "mart": policy.source_model,
            "schema": policy.source_schema,
            "key_column": policy.key_column,
            "cohort": {"description": f"The {len(request['upns'])} children the request names."},
            "identity_fields": list(request["fields"]),
            "delivery": {"schedule": "on request"},
            "retention_days": policy.retention_days,
        }
    )


def build_adhoc_truth(roll: dict, named: list[str], request_date: dt.date) -> pd.DataFrame:
    """Truth for the ad-hoc gate, one row per UPN on the current roll (raw census): ``is_in_cohort`` and
    ``gate_named`` = the request names the child, ``is_restricted`` False (the duty to share overrides the opt-outs,
    recorded with the request), ``gate_upn_valid`` = a valid UPN (python-stdnum)."""
    named_set = set(named)
    records = [
        {
            "upn": upn,
            "date_of_birth": pupil.date_of_birth,
            "age_on_feed_date": age_on(pupil, request_date),
            "is_in_cohort": upn in named_set,
            "is_restricted": False,
            "restriction_reason": None,
            "gate_named": upn in named_set,
            "gate_upn_valid": upn_check.is_valid(upn),
        }
        for upn, pupil in sorted(roll.items())
    ]
    frame = pd.DataFrame.from_records(records, columns=[
        "upn", "date_of_birth", "age_on_feed_date", "is_in_cohort", "is_restricted", "restriction_reason",
        "gate_named", "gate_upn_valid",
    ])  # fmt: skip
    frame["age_on_feed_date"] = frame["age_on_feed_date"].astype("Int64")
    return frame


def gate_request(request_id: str, *, run_id: str, settings: Settings | None = None) -> str:
    """Extract the named children's requested fields, gate the extract and stage it; return the staging folder.

    Raises :class:`GateFailedError` (after recording the verdict in ``ledger.gate_results``) when the gate fails:
    nothing is staged.
    """
    settings = settings or load_settings()
    settings.ensure_folders()
    adhoc = _adhoc_policy()
    with database_server(settings) as endpoints, psycopg.connect(endpoints.data_url) as conn:
        ensure_adhoc_schema(conn)
        request = read_request(conn, request_id)
        recipient = adhoc_recipient(request, adhoc)
        columns, rows = read_extract(conn, request, adhoc)
        from pupilshare.publish import gate_and_record  # the gate every feed goes through, recorded the same way

        feed = pd.DataFrame.from_records(rows, columns=columns)
        compared = set(request["upns"]) | feed_keys(feed, recipient.key_column)  # the named and the extracted
        roll = read_current_roll(conn, lambda pupil: pupil.upn in compared)
        truth = build_adhoc_truth(roll, request["upns"], request["request_date"])
        result = gate_and_record(
            conn, feed, truth, recipient, ledger_id=ADHOC, feed_date=request["request_date"], run_id=run_id,
            settings=settings,
        )  # fmt: skip
    if not result.success:
        log.error("gate %s failed for ad-hoc request %s: %s", result.suite_name, request_id, "; ".join(result.failures))
        raise GateFailedError(result)
    return str(_stage(request, recipient, columns, rows, result, run_id=run_id, settings=settings))


def read_request(conn: psycopg.Connection, request_id: str) -> dict[str, Any]:
    """The recorded request (a row of ``ledger.adhoc_requests``) as a dict."""
    with conn.cursor(row_factory=dict_row) as cursor:
        row = cursor.execute("select * from ledger.adhoc_requests where request_id = %s", (request_id,)).fetchone()
    if row is None:
        raise AdhocRequestError(f"no ad-hoc request {request_id} is recorded; record it first (record_request)")
    return {**row, "request_id": str(row["request_id"])}


def read_extract(conn: psycopg.Connection, request: dict[str, Any], adhoc: AdhocPolicy) -> tuple[list[str], list]:
    """The named children's requested fields from the current roll: the key, then the fields in the request's order.
    Grain: one row per named child on the roll."""
    query = sql.SQL("select {key} as {key_alias}, {fields} from {source} where {key} = any(%s) order by {key}").format(
        key=sql.Identifier(adhoc.source_key_column),
        key_alias=sql.Identifier(adhoc.key_column),
        fields=sql.SQL(", ").join(sql.Identifier(field) for field in request["fields"]),
        source=sql.Identifier(adhoc.source_schema, adhoc.source_model),
    )
    with conn.cursor() as cursor:
        cursor.execute(query, (list(request["upns"]),))
        return [column.name for column in cursor.description], cursor.fetchall()


def _stage(request, recipient: RecipientPolicy, columns, rows, result, *, run_id: str, settings: Settings) -> Path:
    """Write the gated rows' requested fields, the ledger rows and the gate verdict into a fresh staging folder."""
    from pupilshare.publish import _write_feed_file  # the CSV writer every feed uses (formula-safe cells)

    staging = settings.staging_dir / ADHOC / slug(request["requesting_agency"]) / request["reference"] / slug(run_id)
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    file_name = f"adhoc_{request['reference']}_{request['request_date'].isoformat()}.csv"
    ledger_rows = _write_feed_file(recipient, columns, rows, staging / file_name)
    write_json(staging / "ledger_rows.json", ledger_rows)
    write_json(
        staging / "stage.json",
        {
            "request_id": request["request_id"],
            "run_id": run_id,
            "file_name": file_name,
            "file_sha256": sha256_file(staging / file_name),
            "row_count": len(rows),
        },
    )
    write_json(
        staging / "gate.json",
        {
            "result_id": result.result_id,
            "suite_name": result.suite_name,
            "success": result.success,
            "policy_version": load_policy().version,
        },
    )
    return staging


def deliver_request(staging_dir: str | Path, *, settings: Settings | None = None) -> dict[str, Any]:
    """Deliver a gated, staged ad-hoc extract and record every disclosure in one transaction; a rerun delivers
    nothing twice. The files land in ``outbox/adhoc/<agency>/<reference>/``."""
    from pupilshare.publish import DeliveryIntegrityError

    settings = settings or load_settings()
    staging = Path(staging_dir).resolve()
    if settings.staging_dir.resolve() not in staging.parents or not (staging / "gate.json").is_file():
        raise DeliveryIntegrityError(f"{staging} is not a gated ad-hoc extract in {settings.staging_dir}")
    stage = json.loads((staging / "stage.json").read_text(encoding="utf-8"))
    gate = json.loads((staging / "gate.json").read_text(encoding="utf-8"))
    feed_file = staging / stage["file_name"]
    if gate.get("success") is not True or sha256_file(feed_file) != stage["file_sha256"]:
        raise DeliveryIntegrityError(f"{feed_file} is not the file the gate passed; nothing delivered")
    with database_server(settings) as endpoints, psycopg.connect(endpoints.data_url) as conn:
        ensure_adhoc_schema(conn)
        request = read_request(conn, stage["request_id"])
        key = f"{ADHOC}|{request['requesting_agency']}|{request['reference']}|{stage['file_sha256']}"
        if delivery_exists(conn, key):
            log.info("ad-hoc request %s already delivered; nothing delivered again", request["reference"])
            return {"status": "already_delivered", "delivery_key": key}
        return _deliver(conn, request, stage, gate, staging, key, settings)


def _deliver(conn, request, stage, gate, staging: Path, key: str, settings: Settings) -> dict[str, Any]:
    from pupilshare.delivery.folder import FolderSession
    from pupilshare.publish import _REMEDY, _raise_write_error

    target = settings.outbox_dir / ADHOC / slug(request["requesting_agency"]) / request["reference"]
    delivery_id = str(uuid.uuid4())
    manifest = {
        "recipient": request["requesting_agency"],
        "reference": request["reference"],
        "request_id": request["request_id"],
        "request_date": request["request_date"].isoformat(),
        "requested_by": request["requested_by"],
        "legal_basis": request["legal_basis"],
        "justification": request["justification"],
        "file_name": stage["file_name"],
        "row_count": stage["row_count"],
        "sha256": stage["file_sha256"],
        "columns": list(request["fields"]),
        "delivery_id": delivery_id,
        "policy_version": gate["policy_version"],
        "gate_result_id": gate["result_id"],
    }
    folder = (ADHOC, slug(request["requesting_agency"]), request["reference"])
    rows = [LedgerRow(item["upn"], tuple(item["fields_sent"])) for item in _ledger_rows(staging)]
    manifest_bytes = (json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n").encode("utf-8")
    session = FolderSession(settings.outbox_dir)  # the feeds' own write protocol: partial files, rename, rollback
    try:
        session.put(folder, stage["file_name"], staging / stage["file_name"])
        session.put(folder, Path(stage["file_name"]).with_suffix(".manifest.json").name, manifest_bytes)
        with conn.transaction():
            record_delivery(conn, delivery=_delivery_row(request, stage, gate, delivery_id, key, target), rows=rows)
            session.publish()
    except BaseException as error:
        left = session.rollback()
        _raise_write_error(error, stage["file_name"], str(target), _REMEDY, left)  # a full disk: DeliveryWriteError
        raise
    finals = [target / stage["file_name"]]
    log.info("delivered ad-hoc request %s: %s rows to %s", request["reference"], stage["row_count"], finals[0])
    return {"status": "delivered", "delivery_id": delivery_id, "file": str(finals[0]), **manifest}


def _delivery_row(request, stage, gate, delivery_id: str, key: str, target: Path) -> dict[str, Any]:
    return {
        "delivery_id": delivery_id,
        "delivery_key": key,
        "recipient_id": f"{ADHOC}:{request['requesting_agency']}",
        "feed_date": request["request_date"],
        "file_name": stage["file_name"],
        "file_sha256": stage["file_sha256"],
        "row_count": stage["row_count"],
        "target": str(target),
        "legal_basis": request["legal_basis"],
        "run_id": stage["run_id"],
        "policy_version": gate["policy_version"],
        "gate_result_id": gate["result_id"],
        "route": request["reference"],
    }


def _ledger_rows(staging: Path) -> list[dict[str, Any]]:
    return json.loads((staging / "ledger_rows.json").read_text(encoding="utf-8"))


def _adhoc_policy() -> AdhocPolicy:
    policy = load_policy().adhoc
    if policy is None:
        raise AdhocRequestError("the policy (recipients.yml) has no `adhoc` entry: ad-hoc sharing is not configured")
    return policy
