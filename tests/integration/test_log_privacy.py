"""No names, addresses or UPNs in logs at INFO: the ingest of a generated county (with refused and flawed returns),
retention and a failure alert are run with logging captured, and no generated pupil's UPN, name or address appears.
"""

from __future__ import annotations

import datetime as dt
import logging

import psycopg
import pytest

from pupilshare.airflow.callbacks import alert_on_failure
from pupilshare.generate.census import build_census_extract, write_census_extract
from pupilshare.generate.returns import generate_all_returns
from pupilshare.ingest import ingest_inbox
from pupilshare.redact import redact
from pupilshare.retention import apply_retention
from pupilshare.settings import Settings

pytestmark = pytest.mark.integration


def _identifiers(extract) -> dict[str, set[str]]:
    pupils = [*extract.pupils, *extract.leavers]
    return {
        "upn": {pupil.upn for pupil in pupils},
        "name": {f"{pupil.forename} {pupil.surname}" for pupil in pupils} | {pupil.surname for pupil in pupils},
        "postcode": {pupil.address.postcode for pupil in pupils if getattr(pupil.address, "postcode", None)},
    }


def _leaks(text: str, identifiers: dict[str, set[str]]) -> dict[str, list[str]]:
    words = set(text.replace(",", " ").replace(":", " ").split())
    found = {
        "upn": sorted(upn for upn in identifiers["upn"] if upn in text),
        "postcode": sorted(postcode for postcode in identifiers["postcode"] if postcode in text),
        # whole words only: a surname such as "Hall" may be part of a school's name in a path
        "name": sorted(name for name in identifiers["name"] if " " in name and name in text or name in words),
    }
    return {kind: values for kind, values in found.items() if values}


def test_ingest_retention_and_alerts__log_no_pupil_at_info(tmp_path, scratch_db, caplog):
    extract = build_census_extract(schools=4, pupils=500, seed=17)
    identifiers = _identifiers(extract)
    settings = Settings(database_url=scratch_db, data_dir=tmp_path / "data")
    settings.ensure_folders()
    write_census_extract(extract, settings.inbox_dir / "census" / "autumn_2026")
    generate_all_returns(extract, settings.inbox_dir, seed=17)
    # a flawed return (row errors that name the pupil's row) and a refused one (wrong layout)
    ncmp = next((settings.inbox_dir / "ncmp").glob("*.csv"))
    lines = ncmp.read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    broken = lines[1].split(",")
    broken[header.index("height_cm")] = "999"
    (settings.inbox_dir / "ncmp" / "ncmp_flawed.csv").write_text(
        "\n".join([lines[0], ",".join(broken)]) + "\n", encoding="utf-8"
    )
    (settings.inbox_dir / "optouts" / "optouts_refused.csv").write_text(
        "pupil,name\n" + f"{extract.pupils[0].upn},{extract.pupils[0].forename} {extract.pupils[0].surname}\n",
        encoding="utf-8",
    )
    caplog.set_level(logging.INFO)

    summary = ingest_inbox(settings)
    apply_retention(dt.date.today() + dt.timedelta(days=4000), run_id="privacy", settings=settings)
    with psycopg.connect(scratch_db) as conn:
        conn.execute("create temp table t (upn text primary key)")
        conn.execute("insert into t values (%s)", (extract.pupils[1].upn,))
        try:
            conn.execute("insert into t values (%s)", (extract.pupils[1].upn,))
        except psycopg.errors.UniqueViolation as error:
            assert extract.pupils[1].upn in str(error), "PostgreSQL's own message quotes the UPN"
            alert_on_failure({"exception": error, "run_id": "privacy"})

    assert summary.quarantined and summary.loaded, "the run covered loads and refusals"
    assert any("PUPILSHARE ALERT" in record.getMessage() for record in caplog.records)
    logged = "\n".join(
        record.getMessage() + (record.exc_text or "") for record in caplog.records if record.levelno >= logging.INFO
    )
    assert len(caplog.records) > 10
    assert _leaks(logged, identifiers) == {}


def test_redact__removes_values_keys_rows_and_upns():
    message = (
        'duplicate key value violates unique constraint "t_pkey"\n'
        "DETAIL:  Key (upn)=(A123456789012) already exists.\n"
        'CONTEXT:  COPY t, line 1: "A123456789012,Smith,NR1 1AA"'
    )
    assert redact(message) == "duplicate key value violates unique constraint …"
    assert redact("Key (upn)=(A123456789012) seen") == "Key (upn)=(…) seen"
    assert redact("pupil A123456789012 moved") == "pupil [UPN] moved"
    assert redact("invalid input syntax for type date: 'Smith'") == "invalid input syntax for type date: …"
