"""The recipient policy loads strictly: a typo or a contradiction is an error at load, not a leak later."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from pupilshare.policy import POLICY_PATH, load_policy


def _write(tmp_path: Path, mutate) -> Path:
    raw = yaml.safe_load(POLICY_PATH.read_text(encoding="utf-8"))
    mutate(raw)
    path = tmp_path / "recipients.yml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def test_load_policy__shipped_file_is_valid():
    policy = load_policy()
    yss = policy.recipient("yss")
    assert yss.opt_out and yss.opt_out.effect == "restrict"
    assert yss.cohort.min_age_years == 13
    assert yss.mart_columns[0] == yss.key_column
    assert "Section 68(1)" in yss.legal_basis


def test_load_policy__misspelt_key_is_refused(tmp_path):
    path = _write(tmp_path, lambda raw: raw["recipients"]["yss"].update(identity_feilds=["forename"]))
    with pytest.raises(ValidationError, match="identity_feilds"):
        load_policy(path)


def test_load_policy__field_listed_twice_is_refused(tmp_path):
    path = _write(tmp_path, lambda raw: raw["recipients"]["yss"]["further_fields"].append("postcode"))
    with pytest.raises(ValidationError, match="listed twice"):
        load_policy(path)


def test_load_policy__key_column_may_not_be_delivered(tmp_path):
    path = _write(tmp_path, lambda raw: raw["recipients"]["yss"]["further_fields"].append("ledger_upn"))
    with pytest.raises(ValidationError, match="must not be delivered"):
        load_policy(path)


def test_recipient__unknown_recipient_names_the_known_ones():
    with pytest.raises(KeyError, match="yss"):
        load_policy().recipient("connexions")
