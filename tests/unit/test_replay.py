"""Replay helpers without a database: the dbt project fingerprint and where two files first differ."""

from __future__ import annotations

import shutil
from pathlib import Path

from pupilshare import PROJECT_ROOT
from pupilshare.replay import _first_difference, dbt_project_sha256, dbt_version


def _project_copy(tmp_path: Path) -> Path:
    project = tmp_path / "dbt_project"
    for part in ("dbt_project.yml", "models", "macros", "seeds"):
        source = PROJECT_ROOT / "dbt_project" / part
        if source.is_dir():
            shutil.copytree(source, project / part)
        else:
            project.mkdir(exist_ok=True)
            shutil.copy(source, project / part)
    return project


def test_dbt_project_sha256__changes_with_a_model_not_with_tests_or_target(tmp_path):
    project = _project_copy(tmp_path)
    before = dbt_project_sha256(project)
    assert before == dbt_project_sha256(PROJECT_ROOT / "dbt_project"), "only the parts that shape a model count"
    (project / "target").mkdir()
    (project / "target" / "manifest.json").write_text("{}", encoding="utf-8")
    assert dbt_project_sha256(project) == before
    model = next((project / "models").rglob("yss_feed.sql"))
    model.write_text(model.read_text(encoding="utf-8") + "\n-- changed\n", encoding="utf-8")
    assert dbt_project_sha256(project) != before


def test_dbt_version__names_core_and_adapter():
    assert dbt_version().startswith("dbt-core 1.") and " / dbt-postgres 1." in dbt_version()


def test_first_difference__line_numbers_only(tmp_path):
    delivered, regenerated = tmp_path / "a.csv", tmp_path / "b.csv"
    delivered.write_text("forename,surname\nAda,Lovelace\nAlan,Turing\n", encoding="utf-8")
    regenerated.write_text("forename,surname\nAda,Lovelace\nAlan,Turning\n", encoding="utf-8")
    message = _first_difference(delivered, regenerated)
    assert message == "first difference at line 3 of 3 (delivered) / 3 (regenerated)"
    assert "Turing" not in message and "Turning" not in message
    regenerated.write_text("forename,surname,upn\n", encoding="utf-8")
    assert _first_difference(delivered, regenerated).startswith("the header differs")
    regenerated.write_text("forename,surname\nAda,Lovelace\n", encoding="utf-8")
    assert _first_difference(delivered, regenerated) == "the delivered file has 3 lines, the regenerated one 2"
