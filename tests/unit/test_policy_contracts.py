"""The dbt mart contracts and the recipient policy cannot drift apart."""

from __future__ import annotations

import pytest
import yaml

from pupilshare import PROJECT_ROOT
from pupilshare.policy import load_policy

MODELS_DIR = PROJECT_ROOT / "dbt_project" / "models"
RECIPIENTS = sorted(load_policy().recipients.values(), key=lambda recipient: recipient.recipient_id)


def _model_spec(name: str) -> dict:
    for path in MODELS_DIR.rglob("*.yml"):
        for model in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("models", []):
            if model.get("name") == name:
                return model
    raise AssertionError(f"no yml declares model {name}")


@pytest.mark.parametrize("recipient", RECIPIENTS, ids=lambda recipient: recipient.recipient_id)
def test_mart_contract__columns_equal_policy(recipient):
    model = _model_spec(recipient.mart)
    assert model["config"]["contract"]["enforced"] is True
    assert tuple(column["name"] for column in model["columns"]) == recipient.mart_columns


@pytest.mark.parametrize("recipient", RECIPIENTS, ids=lambda recipient: recipient.recipient_id)
def test_mart__lives_in_recipient_schema(recipient):
    assert (MODELS_DIR / "marts" / recipient.recipient_id / f"{recipient.mart}.sql").is_file()
    project = yaml.safe_load((PROJECT_ROOT / "dbt_project" / "dbt_project.yml").read_text(encoding="utf-8"))
    marts = project["models"]["pupilshare"]["marts"]
    assert marts[recipient.recipient_id]["+schema"] == recipient.schema_name
