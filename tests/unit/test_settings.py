"""Settings come from PUPILSHARE_* variables and refuse bad values."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from pupilshare.settings import Settings


def test_settings__read_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PUPILSHARE_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("PUPILSHARE_LA_CODE", "873")
    monkeypatch.setenv("PUPILSHARE_FEED_DATE", "2026-03-01")
    settings = Settings()
    assert settings.data_dir == (tmp_path / "d").resolve()
    assert settings.la_code == "873"
    assert settings.effective_feed_date() == dt.date(2026, 3, 1)
    assert settings.outbox_dir == settings.data_dir / "outbox"


def test_settings__bad_la_code_is_refused(monkeypatch):
    monkeypatch.setenv("PUPILSHARE_LA_CODE", "Norfolk")
    with pytest.raises(ValidationError, match="la_code"):
        Settings()


def test_settings__unknown_setting_is_refused():
    with pytest.raises(ValidationError):
        Settings(databse_url="postgresql://x")


def test_ensure_folders__creates_layout(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    settings.ensure_folders()
    for name in ("inbox", "quarantine", "outbox", "staging", "archive", "data_docs", "airflow"):
        assert (tmp_path / "data" / name).is_dir()


def test_settings__suppression_threshold_from_environment(monkeypatch):
    assert Settings().suppression_threshold == 3, "DfE's threshold by default"
    monkeypatch.setenv("PUPILSHARE_SUPPRESSION_THRESHOLD", "5")
    assert Settings().suppression_threshold == 5
    monkeypatch.setenv("PUPILSHARE_SUPPRESSION_THRESHOLD", "1")
    with pytest.raises(ValidationError, match="suppression_threshold"):
        Settings()
