"""The ad-hoc request checks that need no data: allow-list, UPNs, repeats, limits; and the policy's allow-list
against the source model's columns."""

from __future__ import annotations

import pytest
import yaml
from stdnum.gb import upn as upn_check

from pupilshare import PROJECT_ROOT
from pupilshare.adhoc import AdhocRequestError, adhoc_recipient, parse_request
from pupilshare.policy import load_policy

ADHOC = load_policy().adhoc
UPN_A = upn_check.calc_check_digit("92612345678A") + "92612345678A"
UPN_B = upn_check.calc_check_digit("926123456790") + "926123456790"


def _params(**changes) -> dict:
    return {
        "requesting_agency": "Norfolk Constabulary",
        "legal_basis": "Children Act 2004 s.11",
        "reference": "NC-1",
        "pupils": [UPN_A, UPN_B],
        "fields": ["forename", "surname"],
        "justification": "Identity of the children named in the referral.",
        "requested_by": "DS Example",
        **changes,
    }


def test_parse_request__compacts_upns_and_keeps_the_field_order():
    request = parse_request(_params(pupils=[f" {UPN_A.lower()} ", UPN_B], fields=["surname", "forename"]))
    assert request.pupils == (UPN_A, UPN_B)
    assert request.fields == ("surname", "forename")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"fields": ["forename", "ethnicity_code"]}, r"fields \['ethnicity_code'\] may not be shared"),
        ({"fields": []}, r"fields"),
        ({"pupils": [UPN_A, UPN_A.lower()]}, r"positions \[2\] repeat an earlier UPN"),
        ({"fields": ["surname", "surname"]}, r"positions \[2\] repeat"),
        ({"pupils": [UPN_A, "A12345678901X"]}, r"positions \[2\] of the request are not valid UPNs"),
        ({"reference": "../etc"}, r"reference"),
        ({"requesting_agency": "x/y agency"}, r"requesting_agency"),
        ({"extra": "field"}, r"extra"),
        ({"pupils": [UPN_A] * 0}, r"pupils"),
    ],
)
def test_parse_request__refusals_say_what_to_change(changes, message):
    with pytest.raises(AdhocRequestError, match=message) as refused:
        parse_request(_params(**changes))
    assert "nothing was recorded" in str(refused.value)


def test_parse_request__more_children_than_the_policy_allows_is_refused():
    many = [
        upn_check.calc_check_digit(f"926{serial:08d}0") + f"926{serial:08d}0" for serial in range(ADHOC.max_pupils + 1)
    ]
    with pytest.raises(AdhocRequestError, match=f"more than the {ADHOC.max_pupils}"):
        parse_request(_params(pupils=many))


def test_adhoc_recipient__the_request_is_the_policy_of_its_gate():
    recipient = adhoc_recipient(
        {"requesting_agency": "A B", "reference": "R1", "legal_basis": "law", "upns": [UPN_A], "fields": ["surname"]}
    )
    assert recipient.mart_columns == ("ledger_upn", "surname")
    assert recipient.legal_basis == "law" and recipient.opt_out is None and recipient.route_column is None


def test_adhoc_policy__every_shareable_field_is_a_column_of_the_source_model():
    models = PROJECT_ROOT / "dbt_project" / "models"
    for path in models.rglob("*.yml"):
        for model in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("models", []):
            if model.get("name") == ADHOC.source_model:
                columns = {column["name"] for column in model["columns"]}
                assert set(ADHOC.shareable_fields) <= columns, set(ADHOC.shareable_fields) - columns
                assert ADHOC.source_key_column in columns
                return
    raise AssertionError(f"no yml declares {ADHOC.source_model}")


def _policy_file(tmp_path, change) -> object:
    from pupilshare.policy import POLICY_PATH

    raw = yaml.safe_load(POLICY_PATH.read_text(encoding="utf-8"))
    change(raw["adhoc"])
    path = tmp_path / "recipients.yml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda adhoc: adhoc.update(shareable_feilds=["upn"]), "shareable_feilds"),
        (lambda adhoc: adhoc["shareable_fields"].append("postcode"), "listed twice"),
        (lambda adhoc: adhoc["shareable_fields"].append("ledger_upn"), "must not be a shareable field"),
        (lambda adhoc: adhoc.update(opt_outs="ignore"), "opt_outs"),
    ],
    ids=["misspelt_key", "field_twice", "key_shareable", "unknown_opt_out_rule"],
)
def test_load_policy__the_adhoc_entry_is_strict(tmp_path, change, message):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=message):
        load_policy(_policy_file(tmp_path, change))
