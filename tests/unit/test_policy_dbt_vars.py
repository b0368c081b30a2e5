"""The cohort values dbt filters on (dbt_project.yml vars) are the recipient policy's, and routing is well formed."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from pupilshare import PROJECT_ROOT
from pupilshare.policy import POLICY_PATH, load_policy

VARS = yaml.safe_load((PROJECT_ROOT / "dbt_project" / "dbt_project.yml").read_text(encoding="utf-8"))["vars"]


@pytest.mark.parametrize(
    ("variable", "recipient_id", "field"),
    [
        ("post16_nc_years", "post16", "nc_years"),
        ("post16_application_statuses", "post16", "application_statuses"),
        ("nccis_academic_ages", "nccis", "academic_ages"),
        ("nccis_nc_years", "nccis", "nc_years"),
        ("nccis_offer_statuses", "nccis", "offer_statuses"),
        ("sure_start_nc_years", "sure_start", "nc_years"),
        ("sure_start_school_phases", "sure_start", "school_phases"),
        ("sure_start_school_lowest_nc_years", "sure_start", "school_lowest_nc_years"),
        ("health_nc_years", "health", "nc_years"),
    ],
)
def test_dbt_var__equals_policy_cohort(variable, recipient_id, field):
    cohort = load_policy().recipient(recipient_id).cohort
    assert tuple(VARS[variable]) == getattr(cohort, field)


def test_routed_recipients__route_column_second_in_mart_and_not_delivered():
    for recipient_id, column in (("post16", "provider_ukprn"), ("sure_start", "children_centre_id")):
        recipient = load_policy().recipient(recipient_id)
        assert recipient.route_column == column
        assert recipient.mart_columns[:2] == (recipient.key_column, column)
        assert column not in recipient.delivered_fields
        assert recipient.opt_out is not None and recipient.opt_out.effect == "exclude"
    assert load_policy().recipient("yss").route_column is None


def test_load_policy__route_column_may_not_be_delivered(tmp_path):
    raw = yaml.safe_load(POLICY_PATH.read_text(encoding="utf-8"))
    raw["recipients"]["post16"]["further_fields"].append("provider_ukprn")
    path = tmp_path / "recipients.yml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(ValidationError, match="route column provider_ukprn"):
        load_policy(path)
