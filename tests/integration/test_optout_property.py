"""Property: for random opt-out registers over a generated county, the built marts agree with the rules.

For each example, thousands of random requests (parents and pupils, every scope, withdrawals, same-day pairs,
requests by the wrong party, requests for unknown pupils) are loaded next to a generated census, dbt builds the
opt-out models and the YSS mart, and then:
- ``int_opt_outs_effective`` equals the independent Python statement of the rules (``pupilshare.optouts``) for
  every pupil and every scope;
- no pupil who is opted out of YSS carries a field beyond name, address and date of birth in ``yss.yss_feed``, and
  every pupil who is not keeps their further fields;
- for every recipient in the policy whose opt-out scope is a request scope: no pupil opted out of an excluding
  recipient (post-16 providers, Sure Start centres) is in its feed, and no pupil restricted for a restricting one
  (YSS, NCCIS) carries a field beyond its identity fields and the fields it may keep (NCCIS: activity YSS collected).
"""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid

import psycopg
import pytest
from dbt.cli.main import dbtRunner
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from psycopg import sql

from pupilshare import PROJECT_ROOT
from pupilshare.db import DatabaseEndpoints, with_database
from pupilshare.generate.census import build_census_extract, write_census_extract
from pupilshare.generate.returns import generate_all_returns
from pupilshare.ingest import ingest_inbox
from pupilshare.optouts import SCOPES, OptOutRequest, resolve_opt_outs
from pupilshare.policy import load_policy
from pupilshare.settings import Settings

pytestmark = pytest.mark.integration

FEED_DATE = dt.date(2026, 11, 29)
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
YSS = load_policy().recipient("yss")
#: The recipients an opt-out request can reach (health's NCMP opt-out is made with the programme, not the LA).
REQUEST_SCOPED = [r for r in load_policy().recipients.values() if r.opt_out is not None and r.opt_out.scope in SCOPES]


@pytest.fixture(scope="module")
def county(admin_url, tmp_path_factory):
    """A generated census (about 2,500 pupils) loaded by the real loader into a fresh database."""
    name = f"pupilshare_prop_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    url = with_database(admin_url, name)
    folder = tmp_path_factory.mktemp("county")
    settings_ = Settings(database_url=url, data_dir=folder / "data")
    extract = build_census_extract(schools=8, pupils=2500, seed=17)
    write_census_extract(extract, settings_.inbox_dir / "census" / "autumn_2026")
    generate_all_returns(extract, settings_.inbox_dir, seed=17)  # post-16 applications, EYFS, activity updates
    ingest_inbox(settings_)
    with psycopg.connect(url) as conn:
        pupils = dict(
            conn.execute(
                "select upper(trim(upn)), to_date(left(dob, 11), 'YYYY-Mon-DD') from raw.census_pupilonroll"
            ).fetchall()
        )
        refusals = conn.execute("select count(*) from raw.census_pupilonroll where yssa = 'No'").fetchone()[0]
    try:
        yield url, pupils, refusals, folder
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def _requests(draw, upns: list[str], dobs: dict[str, dt.date]) -> list[OptOutRequest]:
    count = draw(st.integers(min_value=500, max_value=3000))
    rng = random.Random(draw(st.integers(min_value=0, max_value=2**32)))  # thousands of draws: one seed
    requests = []
    for row in range(1, count + 1):
        upn = rng.choice(upns) if rng.random() > 0.02 else "Z999999999999"
        dob = dobs.get(upn, dt.date(2012, 1, 1))
        start = dob + dt.timedelta(days=365 * 10)
        on = start + dt.timedelta(days=rng.randint(0, max((FEED_DATE - start).days + 30, 1)))
        if rng.random() < 0.1 and requests:  # a second request for the same pupil and day
            previous = requests[-1]
            upn, on = previous.upn, previous.requested_on
        requests.append(
            OptOutRequest(
                request_id=f"1-{row}",
                upn=upn,
                scope=rng.choice(["yss", "post16", "sure_start", "all"]),
                action=rng.choice(["opt_out", "opt_out", "withdraw"]),
                requested_by=rng.choice(["parent", "pupil"]),
                requested_on=on,
                load_batch_id=0,
                row_number=row,
            )
        )
    return requests


@st.composite
def registers(draw, upns, dobs):
    return draw(st.sampled_from(["persist", "lapse"])), _requests(draw, upns, dobs)


def _load_requests(conn: psycopg.Connection, requests: list[OptOutRequest]) -> int:
    conn.execute("delete from raw.optout_requests")
    batch = conn.execute(
        """insert into raw.load_batches (return_type, source_name, content_sha256, status)
           values ('optouts', 'property.csv', md5(random()::text), 'loaded') returning load_batch_id"""
    ).fetchone()[0]
    with (
        conn.cursor() as cursor,
        cursor.copy(
            """copy raw.optout_requests (_load_batch_id, _row_number, _rejected, upn, scope, action, requested_by,
               requested_on, channel) from stdin"""
        ) as copy,
    ):
        for request in requests:
            copy.write_row(
                (batch, request.row_number, False, request.upn, request.scope, request.action, request.requested_by,
                 request.requested_on.isoformat(), "letter")
            )  # fmt: skip
    return batch


def test_opt_outs__marts_agree_with_the_rules_for_random_registers(county, monkeypatch):
    url, dobs, _, folder = county
    for key, value in DatabaseEndpoints(url, "", embedded=False).dbt_env().items():
        monkeypatch.setenv(key, value)
    upns = sorted(dobs)

    @settings(
        max_examples=4,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],  # each example is a dbt run: no shrinking
    )
    @given(registers(upns, dobs))
    def check(register):
        persistence, requests = register
        with psycopg.connect(url) as conn:
            batch = _load_requests(conn, requests)
        requests = [
            OptOutRequest(r.request_id.replace("1-", f"{batch}-"), r.upn, r.scope, r.action, r.requested_by,
                          r.requested_on, batch, r.row_number)
            for r in requests
        ]  # fmt: skip
        result = dbtRunner().invoke(
            ["build", "--select", "+int_opt_outs_effective", *(f"+{recipient.mart}" for recipient in REQUEST_SCOPED),
             "--exclude", "resource_type:test", "resource_type:unit_test",  # seeds and models (routing, NCCIS codes)
             "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
             "--target-path", str(folder / "target"), "--log-path", str(folder / "logs"),
             "--vars", json.dumps({"feed_date": FEED_DATE.isoformat(), "opt_out_persistence": persistence})]
        )  # fmt: skip
        assert result.success, result.exception
        with psycopg.connect(url) as conn:
            census_refusals = _census_refusals(conn)
            expected = resolve_opt_outs(
                requests, census_refusals, dates_of_birth=dobs, feed_date=FEED_DATE, persistence=persistence
            )
            built = {
                (upn, scope): opted
                for upn, scope, opted in conn.execute(
                    "select upn, scope_code, is_opted_out from analytics.int_opt_outs_effective"
                )
            }
            feed = conn.execute(
                sql.SQL("select ledger_upn, {} from yss.yss_feed").format(
                    sql.SQL(", ").join(sql.Identifier(field) for field in YSS.further_fields)
                )
            ).fetchall()
        assert built == {key: state.is_opted_out for key, state in expected.items()}
        assert {scope for _, scope in built} == set(SCOPES)
        for upn, *further in feed:
            if expected[(upn, "yss")].is_opted_out:
                assert all(value is None for value in further), f"restricted pupil {upn} carries further fields"
            else:
                assert further[0] is not None, f"unrestricted pupil {upn} lost their UPN"
        for recipient in REQUEST_SCOPED:
            _assert_feed_respects_opt_outs(url, recipient, expected)

    check()


def _assert_feed_respects_opt_outs(url: str, recipient, expected) -> None:
    """Excluded pupils are absent; restricted pupils carry nothing beyond what a restricted row may keep."""
    may_keep = {*recipient.identity_fields, *recipient.restricted_extra_fields}
    withheld = [field for field in recipient.further_fields if field not in may_keep]
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            sql.SQL("select {}, {} from {}").format(
                sql.Identifier(recipient.key_column),
                sql.SQL(", ").join(sql.Identifier(field) for field in withheld),
                sql.Identifier(recipient.schema_name, recipient.mart),
            )
        ).fetchall()
    assert rows, f"{recipient.mart} is empty: the property would hold vacuously"
    scope = recipient.opt_out.scope
    for upn, *values in rows:
        if not expected[(upn, scope)].is_opted_out:
            continue
        assert recipient.opt_out.effect == "restrict", f"{upn}, opted out of {scope}, is in {recipient.mart}"
        carried = [field for field, value in zip(withheld, values, strict=True) if value is not None]
        assert not carried, f"{upn}, restricted for {scope}, carries {carried} in {recipient.mart}"


def _census_refusals(conn: psycopg.Connection):
    from pupilshare.optouts import CensusRefusal

    rows = conn.execute(
        """select upper(trim(pupils.upn)), batches.reference_date, pupils._load_batch_id, min(pupils._row_number)
           from raw.census_pupilonroll as pupils
           join raw.load_batches as batches on batches.load_batch_id = pupils._load_batch_id
           where pupils.yssa = 'No'
           group by 1, 2, 3"""
    ).fetchall()
    return [CensusRefusal(upn, reference_date, batch, row) for upn, reference_date, batch, row in rows]
