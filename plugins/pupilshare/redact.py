"""Keep pupil data out of logs: error texts are reduced to what an engineer needs, without the values.

PostgreSQL error messages can carry the data that caused them (``DETAIL: Key (upn)=(A12...) already exists``,
``CONTEXT: COPY ..., line 5: "A12...,Smith,..."``, ``invalid input syntax ...: "Smith"``). Logs and alerts are read
by more people than the data, and for longer, so anything logged goes through :func:`redact` first.
"""

from __future__ import annotations

import re

#: Lines of a PostgreSQL message that quote the data itself.
_DATA_LINES = ("DETAIL:", "CONTEXT:", "HINT:", "LINE ", "QUERY:")
_QUOTED = re.compile(r'"[^"\n]*"|\'[^\'\n]*\'')
_KEY_VALUES = re.compile(r"\)=\([^)\n]*\)")
#: A UPN (13 characters: a letter, 11 digits, a digit or letter) anywhere, whatever surrounds it.
_UPN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]\d{11}[0-9A-Za-z](?![A-Za-z0-9])")
_MAX = 500


def redact(text: object) -> str:
    """``text`` without quoted values, key values, UPNs or the DETAIL/CONTEXT lines that quote rows."""
    lines = [line for line in str(text).splitlines() if not line.lstrip().startswith(_DATA_LINES)]
    kept = " ".join(line.strip() for line in lines if line.strip())
    kept = _KEY_VALUES.sub(")=(…)", kept)
    kept = _QUOTED.sub("…", kept)
    kept = _UPN.sub("[UPN]", kept)
    return kept[:_MAX]


def describe_error(error: BaseException | None) -> str:
    """``ExceptionType: redacted message`` for logs and alerts."""
    if error is None:
        return "no exception"
    return f"{type(error).__name__}: {redact(error)}"
