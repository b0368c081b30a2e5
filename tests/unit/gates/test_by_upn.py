"""The UPN key the truths stream the roll by: SQL trims exactly what Python's ``str.strip()`` trims."""

from __future__ import annotations

import sys

from pupilshare.gates.by_upn import PYTHON_WHITESPACE, upn_key


def test_python_whitespace__is_every_character_str_strip_removes():
    every = {chr(code) for code in range(sys.maxunicode + 1) if chr(code).isspace()}
    assert set(PYTHON_WHITESPACE) == every
    assert len(PYTHON_WHITESPACE) == len(every), "no character listed twice"


def test_upn_key__trimmed_and_upper_cased_blank_for_none():
    assert upn_key("  a123456789012\t") == "A123456789012"
    assert upn_key(None) == ""
    assert upn_key("\u3000") == ""
