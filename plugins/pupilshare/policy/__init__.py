"""The recipient policy (``recipients.yml``) loaded into strict models: a typo is an error at load."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

POLICY_PATH = Path(__file__).with_name("recipients.yml")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Cohort(_Strict):
    description: str
    min_age_years: int | None = Field(default=None, ge=0, le=25)
    #: NC year groups on roll that are in the cohort (post16: Year 11; sure_start: Reception; health: the NCMP school
    #: years, Reception and Year 6, as the NCMP export records them).
    nc_years: tuple[str, ...] = ()
    #: School phase codes (census ``school.phase``) whose pupils are in the cohort (sure_start: PS).
    school_phases: tuple[str, ...] = ()
    #: The school's lowest NC year group must be one of these (sure_start: a primary, first or infant school starts
    #: at nursery or Reception; a junior school, starting at Year 3, is not one).
    school_lowest_nc_years: tuple[str, ...] = ()
    #: Post-16 application statuses (latest per pupil and provider on the feed date) that put a pupil in the
    #: provider's set: applied to, or holds an offer from, the provider.
    application_statuses: tuple[str, ...] = ()


class OptOut(_Strict):
    """Which opt-out applies to a recipient and what it does (docs/policy.md, "Opt-outs").

    ``scope`` is a scope of the opt-out requests return (an ``all`` request covers yss, post16 and sure_start), or
    ``ncmp``: the National Child Measurement Programme's own opt-out, which a parent makes to the programme and the
    NCMP export records as ``not_measured_reason`` OPTOUT. Its effect is ``not_measured``: the child is never
    measured, so has nothing to send (SHARING_RULES.md, Health: "NCMP opt-outs mean the child is not measured").
    ``ncmp`` and ``not_measured`` go together and only together.
    """

    scope: Literal["yss", "post16", "sure_start", "ncmp"]
    effect: Literal["restrict", "exclude", "not_measured"]

    @model_validator(mode="after")
    def _ncmp_means_not_measured(self) -> OptOut:
        if (self.scope == "ncmp") != (self.effect == "not_measured"):
            raise ValueError(
                f"opt_out scope {self.scope} with effect {self.effect}: the NCMP opt-out (scope ncmp) has effect "
                "not_measured, and no other scope can have it (a request cannot un-measure a child)"
            )
        return self


class Routing(_Strict):
    """One set per route: the mart column naming the route (never delivered) and what a route is."""

    column: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str
    #: The dbt seed that defines the routes, when one does (sure_start: the children's centres' reach areas).
    lookup_seed: str | None = None


class Delivery(_Strict):
    schedule: str
    target: Literal["folder", "sftp"] = "folder"


class RecipientPolicy(_Strict):
    """What one recipient may receive, about whom, and why."""

    recipient_id: str
    name: str
    legal_basis: str
    notice_clause: str
    mart: str
    schema_name: str = Field(alias="schema")
    key_column: str
    cohort: Cohort
    opt_out: OptOut | None = None
    identity_fields: tuple[str, ...]
    further_fields: tuple[str, ...] = ()
    #: Deliver one file per value of ``routing.column`` (post16: per provider; sure_start: per children's centre).
    routing: Routing | None = None
    delivery: Delivery
    retention_days: int = Field(gt=0)

    @model_validator(mode="after")
    def _fields_distinct(self) -> RecipientPolicy:
        names = [*self.identity_fields, *self.further_fields]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"recipient {self.recipient_id}: fields listed twice: {duplicates}")
        if self.key_column in names:
            raise ValueError(f"recipient {self.recipient_id}: key column {self.key_column} must not be delivered")
        if self.routing is not None and self.routing.column in (*names, self.key_column):
            raise ValueError(
                f"recipient {self.recipient_id}: route column {self.routing.column} must be neither the key nor "
                "a delivered field (the route is the file, not a column of it)"
            )
        return self

    @property
    def route_column(self) -> str | None:
        """The mart column that routes each row to its file (one file per value), or None: one file."""
        return self.routing.column if self.routing is not None else None

    @property
    def delivered_fields(self) -> tuple[str, ...]:
        """Every column of the delivered file, in order."""
        return (*self.identity_fields, *self.further_fields)

    @property
    def mart_columns(self) -> tuple[str, ...]:
        """Every column of the mart: the internal key, the route column (routed recipients), the delivered fields."""
        route = (self.route_column,) if self.route_column else ()
        return (self.key_column, *route, *self.delivered_fields)


class Policy(_Strict):
    version: str
    recipients: dict[str, RecipientPolicy]

    def recipient(self, recipient_id: str) -> RecipientPolicy:
        try:
            return self.recipients[recipient_id]
        except KeyError:
            raise KeyError(f"no recipient {recipient_id!r} in the policy; known: {sorted(self.recipients)}") from None


@cache
def load_policy(path: Path = POLICY_PATH) -> Policy:
    """Load and validate the recipient policy file."""
    with path.open(encoding="utf-8") as handle:
        raw = yaml.safe_load(handle)
    for recipient_id, entry in raw.get("recipients", {}).items():
        entry.setdefault("recipient_id", recipient_id)
    return Policy.model_validate(raw)
