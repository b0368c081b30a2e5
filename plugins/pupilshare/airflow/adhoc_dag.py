"""The ad-hoc sharing DAG: one run per request from another agency with a duty to share.

record the request (refused requests write nothing) -> build the current roll (cosmos task group, tests after each
model) -> gate and stage the extract -> deliver and record. Never scheduled: an operator triggers it with the
request as the run's params, which Airflow validates against :func:`request_params` before the run starts, and
:func:`pupilshare.adhoc.parse_request` checks again against the policy (fail closed).
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG, Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from pupilshare.airflow import cosmos_config as dbt_config
from pupilshare.airflow.publish_dag import feed_date_of_run, publish_default_args
from pupilshare.policy import load_policy

DAG_ID = "pupilshare_share_adhoc"
#: A UPN as the agency writes it (the check letter is checked by python-stdnum in pupilshare.adhoc).
UPN_PATTERN = r"^\s*[A-Za-z]\d{11}[0-9A-Za-z]\s*$"


def request_params() -> dict[str, Param]:
    """The request a run carries: who asks, under what law, for which children and fields, why, and who recorded it.
    No defaults: a run cannot start without every part of the request."""
    adhoc = load_policy().adhoc
    if adhoc is None:
        raise ValueError("the policy (recipients.yml) has no `adhoc` entry: ad-hoc sharing is not configured")
    return {
        "requesting_agency": Param(type="string", minLength=3, maxLength=120, description="The agency asking."),
        "legal_basis": Param(
            type="string", minLength=10, maxLength=1000, description="The law or duty the agency shares under."
        ),
        "reference": Param(
            type="string",
            pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
            description="The agency's reference for this request (one request per reference).",
        ),
        "pupils": Param(
            type="array",
            items={"type": "string", "pattern": UPN_PATTERN},
            minItems=1,
            maxItems=adhoc.max_pupils,
            uniqueItems=True,
            description="UPNs of the children the request names.",
        ),
        "fields": Param(
            type="array",
            items={"type": "string", "enum": list(adhoc.shareable_fields)},
            minItems=1,
            uniqueItems=True,
            description="The fields the request justifies (from the policy's adhoc.shareable_fields).",
        ),
        "justification": Param(
            type="string", minLength=20, maxLength=4000, description="Why each field is needed for these children."
        ),
        "requested_by": Param(type="string", minLength=1, maxLength=200, description="Who made the request."),
    }


def build_adhoc_dag() -> DAG:
    """Return the DAG :data:`DAG_ID`: triggered only, with the request as its params."""
    adhoc = load_policy().adhoc

    @dag(
        dag_id=DAG_ID,
        description="Share named children's justified fields with another agency under a duty to share",
        schedule=None,
        start_date=datetime(2026, 1, 1),
        catchup=False,
        max_active_runs=1,
        tags=["pupilshare", "publish", "adhoc"],
        default_args=publish_default_args(),
        params=request_params(),
        doc_md=f"**{adhoc.name if adhoc else 'ad-hoc'}**: one run per request; see docs/policy.md, 'Ad-hoc sharing'.",
    )
    def share_adhoc():
        build = dbt_config.build_models_group(
            dbt_config.render_config([f"+{adhoc.source_model}", "stg_pipeline__load_batches"])
        )

        @task
        def record_request() -> str:
            from pupilshare.adhoc import AdhocRequestError, record_request

            context = get_current_context()
            params = {name: context["params"][name] for name in request_params()}
            try:
                return record_request(params, request_date=feed_date_of_run(context), run_id=context["run_id"])
            except AdhocRequestError as refused:  # a refusal is a verdict: fail now, no retry, alert
                raise AirflowFailException(str(refused)) from refused

        @task(retries=0)
        def gate_and_stage(request_id: str) -> str:
            from pupilshare.adhoc import gate_request

            return gate_request(request_id, run_id=get_current_context()["run_id"])

        @task
        def deliver_and_record(staging_dir: str) -> dict:
            from pupilshare.adhoc import deliver_request

            return deliver_request(staging_dir)

        recorded = record_request()
        staged = gate_and_stage(recorded)
        recorded >> build >> staged
        deliver_and_record(staged)

    return share_adhoc()
