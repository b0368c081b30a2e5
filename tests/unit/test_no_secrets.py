"""Secrets come only from the environment: no tracked file holds a password, key or credentialed URL."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from pupilshare import PROJECT_ROOT
from pupilshare.settings import Settings

#: A URL with a literal password (``scheme://user:hunter2@host``); ``${VAR}``, ``$${VAR}``, empty passwords and the
#: placeholders of docs and unit tests (``user:password@host``) pass.
_URL_WITH_PASSWORD = re.compile(r"[a-z+]+://[^/\s:@'\"]+:(?!\$|@|\{)([^@\s'\"]+)@")
_PLACEHOLDERS = {"password", "secret", "p", "pass"}
_ASSIGNED = re.compile(r"(?i)\b(password|passwd|secret|api_key|token)\b[ \t]*[:=][ \t]*['\"]?([^\s'\"{}$]+)")
#: In Python a secret would be a string literal; a bare name or call (``password = secrets.token_urlsafe()``) is not.
_ASSIGNED_PYTHON = re.compile(r"(?i)\b(password|passwd|secret|api_key|token)\b[ \t]*[:=][ \t]*['\"]([^\s'\"{}$]+)")
_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
#: Values that name where a secret comes from rather than being one.
_NOT_SECRETS = {"none", "null", "true", "false", "str", "secretstr", "field(", "env_var("}


def _tracked_files() -> list[str]:
    result = subprocess.run(["git", "ls-files"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.skip("not a git checkout")
    return [name for name in result.stdout.splitlines() if not name.endswith((".png", ".zip", ".gz"))]


def _findings(name: str, text: str) -> list[str]:
    found = [
        f"{name}: URL with a password"
        for match in _URL_WITH_PASSWORD.finditer(text)
        if match.group(1).lower() not in _PLACEHOLDERS
    ]
    found += [f"{name}: private key" for _ in _PRIVATE_KEY.finditer(text)]
    assigned = _ASSIGNED_PYTHON if name.endswith(".py") else _ASSIGNED
    for match in assigned.finditer(text):
        value = match.group(2).strip().lower()
        if value and not any(value.startswith(safe) for safe in _NOT_SECRETS) and not value.startswith("${"):
            found.append(f"{name}: {match.group(1)} = {match.group(2)[:4]}...")
    return found


def test_tracked_files__hold_no_secret():
    findings = []
    this_file = Path(__file__).resolve()
    for name in _tracked_files():
        path = PROJECT_ROOT / name
        if path.resolve() == this_file:  # its planted examples below are the scanner's own test
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue
        findings += _findings(name, text)
    assert findings == []


def test_secret_scanner__finds_planted_secrets():
    """The scanner is not blind: it flags each kind of secret it is meant to find, and passes references."""
    assert _findings("x", "url = postgresql://app:hunter2@db/pupilshare")
    assert _findings("x", "password: hunter2")
    assert _findings("x", "-----BEGIN OPENSSH PRIVATE KEY-----")
    assert _findings("x.py", 'password = "hunter2"')
    assert not _findings("x.py", "self.password = password\npassword = secrets.token_urlsafe(16)")
    assert not _findings("x", "if not password:\n    raise ValueError")
    assert not _findings("x", "postgresql://pupilshare:${POSTGRES_PASSWORD}@postgres/airflow")
    assert not _findings("x", "password: \"{{ env_var('PUPILSHARE_DB_PASSWORD', '') }}\"")


def test_settings__database_urls_have_no_default_credentials(monkeypatch):
    for name in ("PUPILSHARE_DATABASE_URL", "PUPILSHARE_AIRFLOW_DATABASE_URL", "PUPILSHARE_PSEUDONYMISATION_KEY"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert settings.database_url is None and settings.airflow_database_url is None
    assert settings.pseudonymisation_key is None
    monkeypatch.setenv("PUPILSHARE_PSEUDONYMISATION_KEY", "from-the-environment")
    key = Settings().pseudonymisation_key
    assert key is not None and key.get_secret_value() == "from-the-environment"
    assert "from-the-environment" not in repr(Settings()), "the key never shows in a repr or log"
