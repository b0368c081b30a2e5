"""Least privilege in PostgreSQL: the project's roles, what each may read, and nothing granted to PUBLIC.

Roles (``<prefix>`` is ``PUPILSHARE_ROLE_PREFIX``, default the data database's name, because roles are cluster-wide
and several pupilshare databases may share one server):

- ``<prefix>_owner``: owns every project schema (``raw``, ``analytics``, ``ledger``, ``stats``, ``la_worklists``, one
  per recipient) and all in them; the pipeline connects as this role.
- ``<prefix>_feed_<recipient>``: one per recipient in ``recipients.yml``; reads its own feed schema, nothing else.
- ``<prefix>_analyst``: reads published statistics, the ``stats`` schema and ``ledger.statistics_publications``.
- ``<prefix>_dpo``: reads the ledger and runs ``ledger.subject_access(upn)`` (counts) and
  ``ledger.subject_access_rows(upn)`` (the rows held and the effective opt-outs, used by ``pupilshare sar``);
  nothing in ``raw`` or ``analytics`` directly, so every look-up of a child is on record.

PUBLIC loses CONNECT and TEMPORARY on the database, everything on the ``public`` and project schemas, and EXECUTE on
new functions (default privileges). :func:`ensure_roles` is idempotent; it runs as a role that may create roles (the
embedded server's superuser in `pupilshare run`, a DBA's account with `pupilshare roles` elsewhere). Roles get no
password here: set one out of band (``\\password``) or use certificate or peer authentication in ``pg_hba.conf``; the
project never stores one.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass

import psycopg
from psycopg import sql

from pupilshare.ledger import ensure_ledger_schema
from pupilshare.policy import Policy, load_policy

log = logging.getLogger(__name__)

#: Schemas the pipeline builds besides the recipients' own: raw returns, dbt staging and intermediate (the dbt
#: target schema in ``dbt_project/profiles.yml``), the ledger and published statistics.
RAW_SCHEMA = "raw"
DBT_TARGET_SCHEMA = "analytics"
LEDGER_SCHEMA = "ledger"
STATS_SCHEMA = "stats"
#: The LA's own pupil-level worklists (dbt ``models/marts/la_worklists``): owned and locked down like the rest, and read
#: by no other project role (the analyst reads statistics only, never pupil-level data: docs/operations.md).
LA_WORKLISTS_SCHEMA = "la_worklists"
#: The analyst may read this ledger table (the register of statistics publications) and nothing else of the ledger.
ANALYST_LEDGER_TABLES = ("statistics_publications",)
_MAX_ROLE = 63  # PostgreSQL's identifier limit (NAMEDATALEN - 1)
_MAX_PREFIX = 40  # leaves room for "_feed_" and a recipient id of up to 17 characters
_PREFIX = re.compile(r"^[a-z][a-z0-9_]*$")


class RoleConfigError(ValueError):
    """A role name cannot be formed from the configured prefix and the policy."""


@dataclass(frozen=True)
class ProjectRoles:
    """The role names of one pupilshare database."""

    owner: str
    analyst: str
    dpo: str
    recipients: dict[str, str]

    def all(self) -> tuple[str, ...]:
        return (self.owner, self.analyst, self.dpo, *self.recipients.values())


def default_role_prefix(database: str) -> str:
    """A role prefix from a database name: lower case, ``[a-z0-9_]``, at most 40 characters (hashed if longer)."""
    cleaned = re.sub(r"[^a-z0-9_]", "_", database.lower()).strip("_") or "pupilshare"
    if not cleaned[0].isalpha():
        cleaned = f"db_{cleaned}"
    if len(cleaned) > _MAX_PREFIX:
        digest = hashlib.sha256(database.encode()).hexdigest()[:8]
        cleaned = f"{cleaned[: _MAX_PREFIX - 9]}_{digest}"
    return cleaned


def project_roles(prefix: str, policy: Policy | None = None) -> ProjectRoles:
    """The role names for ``prefix``: owner, analyst, DPO and one per recipient of the policy."""
    if not _PREFIX.match(prefix) or len(prefix) > _MAX_PREFIX:
        raise RoleConfigError(
            f"role prefix {prefix!r} must be lower case letters, digits and _ (starting with a letter), "
            f"at most {_MAX_PREFIX} characters: set PUPILSHARE_ROLE_PREFIX"
        )
    policy = policy or load_policy()
    recipients = {recipient_id: f"{prefix}_feed_{recipient_id}" for recipient_id in policy.recipients}
    roles = ProjectRoles(f"{prefix}_owner", f"{prefix}_analyst", f"{prefix}_dpo", recipients)
    if too_long := [name for name in roles.all() if len(name) > _MAX_ROLE or not _PREFIX.match(name)]:
        raise RoleConfigError(f"role names {too_long} are not valid PostgreSQL names: shorten PUPILSHARE_ROLE_PREFIX")
    return roles


def project_schemas(policy: Policy | None = None) -> tuple[str, ...]:
    """Every schema the project owns: pipeline schemas, then each recipient's feed schema."""
    policy = policy or load_policy()
    recipient_schemas = [recipient.schema_name for recipient in policy.recipients.values()]
    schemas = [RAW_SCHEMA, DBT_TARGET_SCHEMA, LEDGER_SCHEMA, STATS_SCHEMA, LA_WORKLISTS_SCHEMA, *recipient_schemas]
    return tuple(dict.fromkeys(schemas))


def ensure_roles(conn: psycopg.Connection, *, prefix: str, policy: Policy | None = None) -> ProjectRoles:
    """Create the project's roles and grants in the connected database (idempotent; see the module docstring).

    ``conn`` must belong to a role that may create roles and alter ownership (a superuser, or a DBA role that is a
    member of the owner role). Everything happens in one transaction.
    """
    policy = policy or load_policy()
    roles = project_roles(prefix, policy)
    ensure_ledger_schema(conn)
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext('pupilshare.roles'))")
        database = conn.execute("select current_database()").fetchone()[0]
        for role in roles.all():
            _create_login_role(conn, role)
        _lock_down_database(conn, database, roles)
        for schema in project_schemas(policy):
            _own_schema(conn, schema, roles.owner)
        _ensure_subject_access(conn, roles)
        creators = _creators(conn, roles.owner)
        for recipient_id, role in roles.recipients.items():
            _grant_schema_read(conn, policy.recipient(recipient_id).schema_name, role, creators)
        _grant_schema_read(conn, STATS_SCHEMA, roles.analyst, creators)
        _grant_ledger_tables(conn, roles.analyst, ANALYST_LEDGER_TABLES)
        _grant_schema_read(conn, LEDGER_SCHEMA, roles.dpo, creators)
        for function in ("ledger.subject_access(text)", "ledger.subject_access_rows(text)"):
            conn.execute(
                sql.SQL("grant execute on function {} to {}").format(sql.SQL(function), sql.Identifier(roles.dpo))
            )
    log.info("roles ready in database %s: %s", database, ", ".join(roles.all()))
    return roles


def drop_roles(conn: psycopg.Connection, roles: ProjectRoles) -> None:
    """Drop the roles and everything they own or were granted in the connected database (tests and teardown).

    A role with privileges in another database must be dropped there first (``drop owned`` is per database).
    """
    with conn.transaction():
        for role in roles.all():
            if _role_exists(conn, role):
                conn.execute(sql.SQL("drop owned by {} cascade").format(sql.Identifier(role)))
        for role in roles.all():
            if _role_exists(conn, role):
                conn.execute(sql.SQL("drop role {}").format(sql.Identifier(role)))


def _role_exists(conn: psycopg.Connection, role: str) -> bool:
    return conn.execute("select 1 from pg_roles where rolname = %s", (role,)).fetchone() is not None


def _create_login_role(conn: psycopg.Connection, role: str) -> None:
    """A login role with no special powers (no superuser, create database or role, replication or RLS bypass)."""
    verb = "alter" if _role_exists(conn, role) else "create"
    conn.execute(
        sql.SQL("{} role {} with login nosuperuser nocreatedb nocreaterole noreplication nobypassrls inherit").format(
            sql.SQL(verb), sql.Identifier(role)
        )
    )


def _lock_down_database(conn: psycopg.Connection, database: str, roles: ProjectRoles) -> None:
    """PUBLIC keeps nothing: no CONNECT or TEMPORARY, nothing on schema ``public``, no EXECUTE on new functions."""
    db = sql.Identifier(database)
    conn.execute(sql.SQL("revoke all on database {} from public").format(db))
    for role in roles.all():
        conn.execute(sql.SQL("grant connect on database {} to {}").format(db, sql.Identifier(role)))
    conn.execute(sql.SQL("grant create, temporary on database {} to {}").format(db, sql.Identifier(roles.owner)))
    conn.execute("revoke all on schema public from public")
    for creator in (roles.owner, conn.info.user):
        conn.execute(
            sql.SQL("alter default privileges for role {} revoke execute on functions from public").format(
                sql.Identifier(creator)
            )
        )
        conn.execute(
            sql.SQL("alter default privileges for role {} revoke usage on types from public").format(
                sql.Identifier(creator)
            )
        )


def _own_schema(conn: psycopg.Connection, schema: str, owner: str) -> None:
    """Create the schema if missing; the owner role owns it and everything in it; PUBLIC gets nothing on it."""
    name, owner_id = sql.Identifier(schema), sql.Identifier(owner)
    conn.execute(sql.SQL("create schema if not exists {} authorization {}").format(name, owner_id))
    conn.execute(sql.SQL("alter schema {} owner to {}").format(name, owner_id))
    conn.execute(sql.SQL("revoke all on schema {} from public").format(name))
    conn.execute(sql.SQL("revoke all on all functions in schema {} from public").format(name))
    objects = conn.execute(
        """select case c.relkind when 'S' then 'sequence' when 'v' then 'view' when 'm' then 'materialized view'
                  else 'table' end, c.relname
           from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
           where n.nspname = %s and c.relkind in ('r', 'p', 'v', 'm', 'S', 'f')
               and pg_get_userbyid(c.relowner) <> %s
               and not exists (select from pg_depend as d where d.objid = c.oid and d.deptype in ('a', 'i'))""",
        (schema, owner),
    ).fetchall()
    for kind, relation in objects:
        conn.execute(
            sql.SQL("alter {} {}.{} owner to {}").format(sql.SQL(kind), name, sql.Identifier(relation), owner_id)
        )
    functions = conn.execute(
        """select p.oid::regprocedure::text from pg_proc as p join pg_namespace as n on n.oid = p.pronamespace
           where n.nspname = %s and pg_get_userbyid(p.proowner) <> %s""",
        (schema, owner),
    ).fetchall()
    for (signature,) in functions:
        conn.execute(sql.SQL("alter function {} owner to {}").format(sql.SQL(signature), owner_id))


def _creators(conn: psycopg.Connection, owner: str) -> tuple[str, ...]:
    """Roles whose new tables must be readable by the readers: the owner, and the role running this bootstrap when
    the pipeline connects as it (the embedded server's superuser in development)."""
    return tuple(dict.fromkeys((owner, conn.info.user)))


def _grant_schema_read(conn: psycopg.Connection, schema: str, reader: str, creators: tuple[str, ...]) -> None:
    """``reader`` may read every table and view in ``schema``, now and when the pipeline rebuilds them."""
    name, reader_id = sql.Identifier(schema), sql.Identifier(reader)
    conn.execute(sql.SQL("grant usage on schema {} to {}").format(name, reader_id))
    conn.execute(sql.SQL("grant select on all tables in schema {} to {}").format(name, reader_id))
    for creator in creators:
        conn.execute(
            sql.SQL("alter default privileges for role {} in schema {} grant select on tables to {}").format(
                sql.Identifier(creator), name, reader_id
            )
        )


def _grant_ledger_tables(conn: psycopg.Connection, reader: str, tables: tuple[str, ...]) -> None:
    conn.execute(sql.SQL("grant usage on schema ledger to {}").format(sql.Identifier(reader)))
    for table in tables:
        conn.execute(sql.SQL("grant select on ledger.{} to {}").format(sql.Identifier(table), sql.Identifier(reader)))


_SUBJECT_ACCESS_DDL = """
create table if not exists ledger.subject_access_requests (
    request_id bigint generated always as identity primary key,
    upn text not null,
    requested_by text not null,
    requested_at timestamptz not null default now()
);
create or replace function ledger.subject_access(subject_upn text)
returns table (source text, detail jsonb)
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
    holding record;
    held bigint;
begin
    insert into ledger.subject_access_requests (upn, requested_by) values (subject_upn, session_user);
    return query
        select 'ledger.disclosures', jsonb_build_object(
            'recipient_id', d.recipient_id, 'feed_date', d.feed_date, 'fields_sent', to_jsonb(d.fields_sent),
            'legal_basis', d.legal_basis, 'file_sha256', d.file_sha256, 'disclosed_at', d.disclosed_at)
        from ledger.disclosures as d where d.upn = subject_upn order by d.disclosed_at, d.disclosure_id;
    for holding in
        select c.table_schema, c.table_name from information_schema.columns as c
        join information_schema.tables as t using (table_schema, table_name)
        where c.table_schema = 'raw' and c.column_name = 'upn' and t.table_type = 'BASE TABLE'
        order by c.table_name
    loop
        execute format('select count(*) from %I.%I where upn = $1', holding.table_schema, holding.table_name)
            into held using subject_upn;
        if held > 0 then
            source := holding.table_schema || '.' || holding.table_name;
            detail := jsonb_build_object('rows', held);
            return next;
        end if;
    end loop;
end $$;
comment on function ledger.subject_access(text) is
    'Subject access: every disclosure of the pupil (ledger) and how many rows of each raw return hold their UPN. '
    'Each call is recorded in ledger.subject_access_requests with the caller.';
create or replace function ledger.subject_access_rows(subject_upn text)
returns table (source text, row_data jsonb)
language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
    holding record;
begin
    insert into ledger.subject_access_requests (upn, requested_by) values (subject_upn, session_user);
    -- every raw table with a upn column (every batch, rejected rows included: all that is held)
    for holding in
        select c.relname from pg_class as c join pg_attribute as a on a.attrelid = c.oid
        where c.relnamespace = 'raw'::regnamespace and c.relkind = 'r' and a.attname = 'upn' and not a.attisdropped
        order by c.relname
    loop
        return query execute format(
            'select %L::text, to_jsonb(held) from raw.%I as held where held.upn = $1',
            'raw.' || holding.relname, holding.relname
        ) using subject_upn;
    end loop;
    -- census tables without a upn: rows linked to the pupil's census row by its table id within the same batch
    for holding in
        select c.relname, a.attname::text as link,
            case a.attname when 'pupilonrolltableid' then 'census_pupilonroll'
                else 'census_pupilnolongeronroll' end as parent
        from pg_class as c join pg_attribute as a on a.attrelid = c.oid
        where c.relnamespace = 'raw'::regnamespace and c.relkind = 'r' and c.relname like 'census\\_%'
            and a.attname in ('pupilonrolltableid', 'pupilnolongeronrolltableid') and not a.attisdropped
            and not exists (select from pg_attribute as u where u.attrelid = c.oid and u.attname = 'upn')
        order by c.relname
    loop
        return query execute format(
            'select %L::text, to_jsonb(held) from raw.%I as held join raw.%I as pupil '
            'on pupil._load_batch_id = held._load_batch_id and pupil.%I = held.%I where pupil.upn = $1',
            'raw.' || holding.relname, holding.relname, holding.parent, holding.link, holding.link
        ) using subject_upn;
    end loop;
    -- NCMP BMI results computed at load: no upn of their own, linked to the measurement row they were computed from
    if to_regclass('raw.ncmp_bmi_results') is not null then
        return query execute
            'select ''raw.ncmp_bmi_results''::text, to_jsonb(computed) from raw.ncmp_bmi_results as computed '
            'join raw.ncmp_measurements as measured on measured._load_batch_id = computed._load_batch_id '
            'and measured._row_number = computed._row_number where measured.upn = $1 '
            'order by computed._load_batch_id, computed._row_number'
            using subject_upn;
    end if;
    -- the effective opt-outs and why, when dbt has built them
    if to_regclass('analytics.int_opt_outs_effective') is null then
        source := 'missing:analytics.int_opt_outs_effective';
        row_data := null;
        return next;
    else
        return query execute
            'select ''analytics.int_opt_outs_effective''::text, to_jsonb(effective) '
            'from analytics.int_opt_outs_effective as effective where effective.upn = $1 '
            'order by effective.scope_code'
            using subject_upn;
    end if;
end $$;
comment on function ledger.subject_access_rows(text) is
    'Subject access, in full: every row of every raw return that holds the pupil (census rows linked by their '
    'pupil table id, NCMP BMI results by their measurement row), and their effective opt-outs. Each call is '
    'recorded in ledger.subject_access_requests.';
"""


def _ensure_subject_access(conn: psycopg.Connection, roles: ProjectRoles) -> None:
    """``ledger.subject_access(upn)``: owned by the owner role (security definer), EXECUTE only for the DPO.

    Recorded in an append-only table, so every look-up of a child is itself on record.
    """
    conn.execute(_SUBJECT_ACCESS_DDL)
    conn.execute(
        """do $$ begin
               if not exists (select 1 from pg_trigger where tgname = 'append_only'
                              and tgrelid = 'ledger.subject_access_requests'::regclass) then
                   create trigger append_only before update or delete on ledger.subject_access_requests
                       for each row execute function ledger.refuse_change();
                   create trigger append_only_truncate before truncate on ledger.subject_access_requests
                       for each statement execute function ledger.refuse_change();
               end if;
           end $$"""
    )
    owner = sql.Identifier(roles.owner)
    conn.execute(sql.SQL("alter table ledger.subject_access_requests owner to {}").format(owner))
    for function in ("ledger.subject_access(text)", "ledger.subject_access_rows(text)"):
        conn.execute(sql.SQL("alter function {} owner to {}").format(sql.SQL(function), owner))
        conn.execute(sql.SQL("revoke all on function {} from public").format(sql.SQL(function)))
