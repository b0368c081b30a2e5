"""A fast UPN check for hot loops, with python-stdnum's ``stdnum.gb.upn`` as the authority.

Why not call ``stdnum.gb.upn.is_valid`` directly: it cleans, upper-cases and re-validates every value generically
(about 20 microseconds a UPN, and 15% of a CTF load's time in a cProfile). :func:`is_valid_upn` answers the common
case, a valid UPN written in canonical form (13 characters, upper case, no spaces, an LA number stdnum knows), with
a precomputed weights table and a single sum, and hands *every* other value (lower case, spaces, wrong length or
check letter: rare) to stdnum unchanged. It says True on its own only when stdnum's own steps (compact, length,
format, LA number, check letter) would all pass, so the two can only disagree if the sum below were wrong; the unit
tests compare them on many generated and mutated UPNs (tests/unit/ingest/test_upn.py). The LA numbers are not
copied from stdnum: they are read from it at import, by asking stdnum about one UPN per three-digit number.
A cache would not help: in a CTF or census every UPN is different.
"""

from __future__ import annotations

from operator import mul

from stdnum.gb import upn as stdnum_upn

#: Check letters for remainders 0..22 (no I, O or S).
_CHECK_LETTERS = "ABCDEFGHJKLMNPQRTUVWXYZ"
#: Value of each character of the 12-character body, as stdnum's alphabet index taken mod 23 (digits 0..9).
_DIGITS = {str(digit): digit for digit in range(10)}
_LAST = {**{letter: index for index, letter in enumerate(_CHECK_LETTERS)}, **_DIGITS}
#: Weights 2..12 of body characters 1..11 (character 12, weight 13, is handled apart: it may be a letter).
_WEIGHTS = tuple(range(2, 13))


def _stdnum_la_numbers() -> frozenset[str]:
    """The three-digit LA numbers stdnum accepts, found by asking stdnum about one well-formed UPN for each."""
    accepted = set()
    for number in range(1000):
        body = f"{number:03d}000000000"
        if stdnum_upn.is_valid(stdnum_upn.calc_check_digit(body) + body):
            accepted.add(f"{number:03d}")
    return frozenset(accepted)


_LA_NUMBERS = _stdnum_la_numbers()


def check_letter(body: str) -> str | None:
    """The check letter of a 12-character UPN body (LA, estab, year, serial, last character); None if not canonical."""
    try:
        total = sum(map(mul, _WEIGHTS, map(_DIGITS.__getitem__, body[:11]))) + 13 * _LAST[body[11]]
    except (KeyError, IndexError):
        return None
    return _CHECK_LETTERS[total % 23] if len(body) == 12 else None


def is_valid_upn(value: str) -> bool:
    """Same answer as ``stdnum.gb.upn.is_valid(value)``, fast for canonical UPNs (see the module docstring)."""
    if len(value) == 13 and value[1:4] in _LA_NUMBERS and check_letter(value[1:]) == value[0]:
        return True
    return stdnum_upn.is_valid(value)
