"""The recipient policy (``recipients.yml``) loaded into strict models: a typo is an error at load."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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
    #: Academic ages in the cohort (nccis: 16 and 17): age on the 31 August before the start of the academic year
    #: holding the feed date (SHARING_RULES.md "Dates and ages"). A pupil is in the cohort by academic age *or* by
    #: ``nc_years`` when both are given (nccis: academic age 16 or 17, or Year 11 for the September Guarantee).
    academic_ages: tuple[int, ...] = ()
    #: Post-16 application statuses (latest per pupil and provider on the feed date) that mean the pupil holds an
    #: offer (nccis: the September Guarantee).
    offer_statuses: tuple[str, ...] = ()


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


class SftpTarget(_Strict):
    """Where on the recipient's SFTP server a feed goes. The server, user and keys are an Airflow connection supplied
    by the environment (``AIRFLOW_CONN_<CONNECTION_ID>``), never this file."""

    #: Airflow connection id; unset = ``pupilshare_sftp_<recipient_id>``.
    connection_id: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]*$")
    #: Folder on the server under which ``<recipient>/[<route>/]<feed date>/`` is created (as agreed with them).
    base_path: str = Field(default=".", min_length=1)


class AgeEncryption(_Strict):
    """Encrypt each delivered feed file with age to the recipient's public key(s) (``age1...``): only the holder of a
    matching identity can read it. Public keys are not secret, so they are kept here, reviewed and versioned with
    the rest of the policy (docs/operations.md, "Encrypting feed files")."""

    recipients: tuple[str, ...] = Field(min_length=1)

    @field_validator("recipients")
    @classmethod
    def _age_public_keys(cls, keys: tuple[str, ...]) -> tuple[str, ...]:
        import pyrage

        for key in keys:
            try:
                pyrage.x25519.Recipient.from_str(key)
            except pyrage.RecipientError as error:
                raise ValueError(f"{key[:12]}... is not an age X25519 public key (age1...): {error}") from None
        return keys


class Delivery(_Strict):
    schedule: str
    #: ``folder``: the outbox (``PUPILSHARE_DATA_DIR/outbox``); ``sftp``: the recipient's SFTP server (``sftp``).
    target: Literal["folder", "sftp"] = "folder"
    sftp: SftpTarget | None = None
    #: Unset: feed files are delivered as they are (the manifest is always plain).
    encryption: AgeEncryption | None = None

    @model_validator(mode="after")
    def _sftp_settings_only_for_sftp(self) -> Delivery:
        if self.sftp is not None and self.target != "sftp":
            raise ValueError(f"delivery.sftp is set but delivery.target is {self.target!r}, not 'sftp'")
        return self

    def sftp_target(self, recipient_id: str) -> SftpTarget:
        """The SFTP settings with the connection id filled in (``pupilshare_sftp_<recipient_id>`` by default)."""
        sftp = self.sftp or SftpTarget()
        return sftp.model_copy(update={"connection_id": sftp.connection_id or f"pupilshare_sftp_{recipient_id}"})


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
    #: Further fields a restricted row may still carry because they do not come from school data (nccis: the
    #: activity collected by Youth Support Services itself). Only with ``opt_out.effect: restrict``; every other
    #: further field of a restricted row is null, and the gate checks both.
    restricted_extra_fields: tuple[str, ...] = ()
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
        not_further = [name for name in self.restricted_extra_fields if name not in self.further_fields]
        if not_further:
            raise ValueError(
                f"recipient {self.recipient_id}: restricted_extra_fields {not_further} are not further_fields"
            )
        if self.restricted_extra_fields and (self.opt_out is None or self.opt_out.effect != "restrict"):
            raise ValueError(
                f"recipient {self.recipient_id}: restricted_extra_fields need opt_out effect restrict (an excluded "
                "pupil has no row at all)"
            )
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
    def restricted_blank_fields(self) -> tuple[str, ...]:
        """The further fields that must be null in a restricted row: all but ``restricted_extra_fields``."""
        return tuple(name for name in self.further_fields if name not in self.restricted_extra_fields)

    @property
    def mart_columns(self) -> tuple[str, ...]:
        """Every column of the mart: the internal key, the route column (routed recipients), the delivered fields."""
        route = (self.route_column,) if self.route_column else ()
        return (self.key_column, *route, *self.delivered_fields)


class AdhocPolicy(_Strict):
    """Ad-hoc sharing with another agency under a duty to share: named children on request, only the fields the
    request justifies (SHARING_RULES.md, "Other agencies with a duty to share"; :mod:`pupilshare.adhoc`)."""

    name: str
    notice_clause: str
    #: The dbt model (schema ``source_schema``) the extract reads: one row per pupil on the current roll.
    source_model: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    source_schema: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    #: The source model's column holding the UPN; it becomes the extract's internal key (never delivered).
    source_key_column: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    key_column: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    #: Every field a request may ever ask for (columns of the source model); a request names the ones it needs.
    shareable_fields: tuple[str, ...] = Field(min_length=1)
    #: ``record``: a duty to share overrides the YSS, post-16 and Sure Start opt-outs, and each one in force is
    #: recorded with the request; ``refuse``: a request naming an opted-out pupil is refused.
    opt_outs: Literal["record", "refuse"] = "record"
    max_pupils: int = Field(default=50, gt=0, le=1000)
    retention_days: int = Field(gt=0)

    @model_validator(mode="after")
    def _fields_distinct(self) -> AdhocPolicy:
        duplicates = sorted({name for name in self.shareable_fields if self.shareable_fields.count(name) > 1})
        if duplicates:
            raise ValueError(f"adhoc: shareable fields listed twice: {duplicates}")
        if self.key_column in self.shareable_fields:
            raise ValueError(f"adhoc: key column {self.key_column} must not be a shareable field")
        return self


class Policy(_Strict):
    version: str
    #: Ad-hoc requests from other agencies with a duty to share (not a scheduled recipient).
    adhoc: AdhocPolicy | None = None
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
