"""Least privilege: each project role logs in for real and reads what it may, and is refused everything else.

Roles are cluster-wide and the machine's PostgreSQL is shared, so every test works in a scratch database whose name
gives the role prefix, and drops its roles afterwards.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import errors, sql

from pupilshare.access import (
    default_role_prefix,
    drop_roles,
    ensure_roles,
    project_roles,
    project_schemas,
)
from pupilshare.benchmarks.sar import record_synthetic_delivery
from pupilshare.generate.census import build_census_extract, write_census_extract
from pupilshare.generate.returns import generate_all_returns
from pupilshare.ingest import ingest_inbox
from pupilshare.ingest.loaders import ensure_all_raw_tables
from pupilshare.ledger import ensure_ledger_schema
from pupilshare.policy import load_policy
from pupilshare.settings import Settings

pytestmark = pytest.mark.integration

UPN = "A123456789012"


def as_role(url: str, role: str) -> str:
    """The same server and database, logged in as ``role`` (the test server trusts local connections)."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, f"{role}@{host}", parts.path, parts.query, parts.fragment))


def _database(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


@pytest.fixture
def secured(scratch_db: str):
    """A scratch database with raw, ledger, a yss feed and a stats table, locked down; yields (url, roles)."""
    prefix = default_role_prefix(_database(scratch_db))
    roles = project_roles(prefix)
    with psycopg.connect(scratch_db, autocommit=True) as conn:
        ensure_all_raw_tables(conn)
        ensure_ledger_schema(conn)
        conn.execute("create schema yss; create table yss.yss_feed (ledger_upn text, forename text)")
        conn.execute("insert into yss.yss_feed values (%s, 'Ada')", (UPN,))
        conn.execute("create schema stats; create table stats.before_roles (n integer)")
        conn.execute("insert into stats.before_roles values (1)")
        _record_one_delivery(conn)
        conn.execute(
            "insert into raw.load_batches (return_type, source_name, content_sha256, status) "
            "values ('ncmp', 'x', 'h', 'loaded')"
        )
        conn.execute(
            """insert into raw.ncmp_measurements (_load_batch_id, _row_number, upn, forename)
               select max(load_batch_id), 1, %s, 'Ada' from raw.load_batches""",
            (UPN,),
        )
    try:
        with psycopg.connect(scratch_db, autocommit=True) as conn:
            ensure_roles(conn, prefix=prefix)
            # built after the roles, as the pipeline rebuilds it: default privileges must reach it
            conn.execute("create table yss.rebuilt (n integer); insert into yss.rebuilt values (1)")
            conn.execute("create table stats.after_roles (n integer); insert into stats.after_roles values (2)")
            conn.execute("create table la_worklists.la_worklist_sen_cohorts (upn text)")
        yield scratch_db, roles
    finally:
        with psycopg.connect(scratch_db, autocommit=True) as conn:
            drop_roles(conn, roles)


def _record_one_delivery(conn: psycopg.Connection) -> None:
    record_synthetic_delivery(
        conn,
        recipient_id="yss",
        feed_date=dt.date(2026, 11, 30),
        upns=[UPN],
        fields=("forename",),
        legal_basis="s.68(1)",
        tag="access",
    )


def _reads(url: str, role: str, statement: str) -> list[tuple]:
    with psycopg.connect(as_role(url, role)) as conn:
        return conn.execute(statement).fetchall()


def _refused(url: str, role: str, statement: str) -> None:
    with psycopg.connect(as_role(url, role), autocommit=True) as conn, pytest.raises(errors.InsufficientPrivilege):
        conn.execute(statement)


def test_recipient_role__reads_its_own_feed_schema_only(secured):
    url, roles = secured
    feed = roles.recipients["yss"]
    assert _reads(url, feed, "select forename from yss.yss_feed") == [("Ada",)]
    assert _reads(url, feed, "select n from yss.rebuilt") == [(1,)]  # a table built after the grants
    for statement in (
        "select * from raw.ncmp_measurements",
        "select * from raw.load_batches",
        "select * from ledger.disclosures",
        "select * from stats.after_roles",
        "select * from la_worklists.la_worklist_sen_cohorts",
        "create table yss.mine (n integer)",
        "insert into yss.yss_feed values ('x', 'y')",
        "delete from yss.yss_feed",
    ):
        _refused(url, feed, statement)


def test_recipient_roles__every_recipient_in_the_policy_gets_a_role_for_its_schema(scratch_db):
    """Policy-driven: a recipient added to the policy gets its role and schema, and reads nothing of another's."""
    policy = load_policy()
    extra = policy.recipient("yss").model_copy(update={"recipient_id": "newcomer", "schema_name": "newcomer"})
    extended = policy.model_copy(update={"recipients": {**policy.recipients, "newcomer": extra}})
    prefix = default_role_prefix(_database(scratch_db))
    roles = project_roles(prefix, extended)
    assert set(roles.recipients) == set(policy.recipients) | {"newcomer"}
    assert "newcomer" in project_schemas(extended)
    try:
        with psycopg.connect(scratch_db, autocommit=True) as conn:
            ensure_roles(conn, prefix=prefix, policy=extended)
            conn.execute("create table newcomer.feed (n integer); insert into newcomer.feed values (7)")
            conn.execute("create table yss.yss_feed (n integer)")
        assert _reads(scratch_db, roles.recipients["newcomer"], "select n from newcomer.feed") == [(7,)]
        _refused(scratch_db, roles.recipients["newcomer"], "select * from yss.yss_feed")
        _refused(scratch_db, roles.recipients["yss"], "select * from newcomer.feed")
    finally:
        with psycopg.connect(scratch_db, autocommit=True) as conn:
            drop_roles(conn, roles)


def test_analyst_role__reads_published_statistics_only(secured):
    url, roles = secured
    assert _reads(url, roles.analyst, "select n from stats.before_roles") == [(1,)]
    assert _reads(url, roles.analyst, "select n from stats.after_roles") == [(2,)]
    assert _reads(url, roles.analyst, "select count(*) from ledger.statistics_publications") == [(0,)]
    for statement in (
        "select * from ledger.disclosures",
        "select * from ledger.deliveries",
        "select * from raw.ncmp_measurements",
        "select * from yss.yss_feed",
        "select * from la_worklists.la_worklist_sen_cohorts",  # pupil level: the LA's worklists are not statistics
        f"select * from ledger.subject_access('{UPN}')",
    ):
        _refused(url, roles.analyst, statement)


def test_dpo_role__reads_the_ledger_and_runs_subject_access(secured):
    url, roles = secured
    assert _reads(url, roles.dpo, "select upn, recipient_id from ledger.disclosures") == [(UPN, "yss")]
    found = _reads(url, roles.dpo, f"select source, detail from ledger.subject_access('{UPN}') order by source")
    assert [source for source, _ in found] == ["ledger.disclosures", "raw.ncmp_measurements"]
    assert found[0][1]["recipient_id"] == "yss" and found[0][1]["fields_sent"] == ["forename"]
    assert found[1][1] == {"rows": 1}
    # every look-up is itself on record, with who asked
    assert _reads(url, roles.dpo, "select upn, requested_by from ledger.subject_access_requests") == [(UPN, roles.dpo)]
    for statement in (
        "select * from raw.ncmp_measurements",
        "select * from yss.yss_feed",
        "insert into ledger.subject_access_requests (upn, requested_by) values ('x', 'y')",
        "delete from ledger.disclosures",
    ):
        _refused(url, roles.dpo, statement)


def test_dpo_role__reads_rows_held_only_through_subject_access_rows(secured):
    """``pupilshare sar`` runs as the DPO: the rows held come through the recorded security-definer function, never
    a direct read of raw; the analyst and recipients may not run it."""
    url, roles = secured
    found = _reads(url, roles.dpo, f"select source, row_data from ledger.subject_access_rows('{UPN}')")
    held = [(source, row["forename"]) for source, row in found if source.startswith("raw.")]
    assert held == [("raw.ncmp_measurements", "Ada")]
    assert ("missing:analytics.int_opt_outs_effective", None) in found
    assert _reads(url, roles.dpo, "select count(*) from ledger.subject_access_requests") == [(1,)]
    _refused(url, roles.dpo, "select * from raw.ncmp_measurements")
    for role in (roles.analyst, *roles.recipients.values()):
        _refused(url, role, f"select * from ledger.subject_access_rows('{UPN}')")


def test_owner_role__runs_the_ingest_but_holds_no_server_powers(secured, tmp_path):
    """The pipeline connects as the owner: a real ingest of generated returns works; creating roles or databases,
    or reading another database, does not."""
    url, roles = secured
    extract = build_census_extract(schools=3, pupils=200, seed=5)
    inbox = tmp_path / "data" / "inbox"
    write_census_extract(extract, inbox / "census" / "autumn")
    generate_all_returns(extract, inbox, seed=5)
    summary = ingest_inbox(Settings(database_url=as_role(url, roles.owner), data_dir=tmp_path / "data"))
    assert not summary.quarantined and summary.rows_loaded > 200
    assert _reads(url, roles.owner, "select count(*) > 0 from raw.census_pupilonroll") == [(True,)]
    owners = _reads(
        url,
        "postgres",
        "select distinct pg_get_userbyid(relowner) from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname in ('raw', 'ledger') and c.relkind = 'r'",
    )
    assert owners == [(roles.owner,)]
    _refused(url, roles.owner, "create role pupilshare_should_not_exist")
    _refused(url, roles.owner, "create database pupilshare_should_not_exist")


def test_public__is_granted_nothing(secured):
    url, roles = secured
    schemas = list(project_schemas()) + ["public"]
    with psycopg.connect(url) as conn:
        database_acl = conn.execute(
            "select count(*) from pg_database, aclexplode(datacl) as acl where datname = current_database() "
            "and acl.grantee = 0"
        ).fetchone()[0]
        schema_acl = conn.execute(
            "select count(*) from pg_namespace, aclexplode(nspacl) as acl where nspname = any(%s) and acl.grantee = 0",
            (schemas,),
        ).fetchone()[0]
        relation_acl = conn.execute(
            """select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace,
                   aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) as acl
               where n.nspname = any(%s) and acl.grantee = 0""",
            (schemas,),
        ).fetchone()[0]
        function_acl = conn.execute(
            """select count(*) from pg_proc p join pg_namespace n on n.oid = p.pronamespace,
                   aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) as acl
               where n.nspname = any(%s) and acl.grantee = 0""",
            (schemas,),
        ).fetchone()[0]
    assert (database_acl, schema_acl, relation_acl, function_acl) == (0, 0, 0, 0)
    # and a login role that is none of the project's cannot even connect
    stranger = f"{default_role_prefix(_database(url))}_stranger"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("create role {} login").format(sql.Identifier(stranger)))
    try:
        with pytest.raises(psycopg.OperationalError, match="permission denied"):
            psycopg.connect(as_role(url, stranger)).close()
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("drop role {}").format(sql.Identifier(stranger)))


def test_ensure_roles__is_idempotent(secured):
    url, roles = secured
    with psycopg.connect(url, autocommit=True) as conn:
        ensure_roles(conn, prefix=default_role_prefix(_database(url)))
        ensure_roles(conn, prefix=default_role_prefix(_database(url)))
    assert _reads(url, roles.recipients["yss"], "select forename from yss.yss_feed") == [("Ada",)]


def test_project_roles__prefix_must_be_a_safe_name():
    from pupilshare.access import RoleConfigError

    with pytest.raises(RoleConfigError, match="PUPILSHARE_ROLE_PREFIX"):
        project_roles("Bad-Prefix")
    assert default_role_prefix("pupilshare_test_0123456789") == "pupilshare_test_0123456789"
    long = default_role_prefix("x" * 80)
    assert len(long) <= 40 and long != default_role_prefix("x" * 79)


def test_pupilshare_run__bootstraps_the_roles_when_its_connection_may(scratch_db):
    """`pupilshare run` makes the roles on a server where it may create roles (the embedded one), else leaves it to
    a DBA (`pupilshare roles --admin-url`)."""
    from pupilshare.cli import _bootstrap_roles

    roles = project_roles(default_role_prefix(_database(scratch_db)))
    try:
        _bootstrap_roles(Settings(database_url=scratch_db), scratch_db)
        assert _reads(scratch_db, roles.dpo, "select count(*) from ledger.deliveries") == [(0,)]
        _bootstrap_roles(Settings(database_url=scratch_db), as_role(scratch_db, roles.owner))  # may not: no error
    finally:
        with psycopg.connect(scratch_db, autocommit=True) as conn:
            drop_roles(conn, roles)
