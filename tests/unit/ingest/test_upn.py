"""The fast UPN check must give stdnum's answer for every value: valid, mutated, odd-looking or hostile."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum.gb import upn as stdnum_upn

import pupilshare.ingest.upn as fast
from pupilshare.ingest.upn import check_letter, is_valid_upn

_ALPHABET = "ABCDEFGHJKLMNPQRTUVWXYZ0123456789"
_LA_SAMPLE = ["926", "201", "938", "001", "005", "100", "999", "420", "800"]


def _valid(rng: random.Random) -> str:
    """A valid UPN: a known LA, 8 digits, a digit or (temporary UPN) a letter last, then its stdnum check letter."""
    body = rng.choice(sorted(fast._LA_NUMBERS)) + f"{rng.randrange(10**8):08d}" + rng.choice(_ALPHABET)  # noqa: SLF001
    return stdnum_upn.calc_check_digit(body) + body


def _mutate(upn: str, rng: random.Random) -> str:
    """One typical slip or hostile change: a character replaced, two swapped, case, spaces, length, odd digits."""
    position = rng.randrange(len(upn))
    kind = rng.randrange(9)
    if kind == 0:
        return upn[:position] + rng.choice(_ALPHABET + "IOSio s-") + upn[position + 1 :]
    if kind == 1 and position < len(upn) - 1:
        return upn[:position] + upn[position + 1] + upn[position] + upn[position + 2 :]
    if kind == 2:
        return upn.lower()
    if kind == 3:
        return upn[:position] + " " + upn[position:]
    if kind == 4:
        return upn[:position] + upn[position + 1 :]
    if kind == 5:
        return upn + rng.choice(_ALPHABET)
    if kind == 6:
        return upn[:position] + rng.choice("٣²①") + upn[position + 1 :]  # non-ASCII digits
    if kind == 7:
        return f" {upn}\t"
    return rng.choice(_ALPHABET) + upn[1:]


def test_is_valid_upn__agrees_with_stdnum_on_generated_and_mutated_upns():
    rng = random.Random(20261202)
    for _ in range(60_000):
        valid = _valid(rng)
        assert is_valid_upn(valid), valid
        for value in (_mutate(valid, rng), _mutate(_mutate(valid, rng), rng)):
            assert is_valid_upn(value) == stdnum_upn.is_valid(value), repr(value)


def test_is_valid_upn__every_first_character_of_every_la_number_agrees_with_stdnum():
    """All 1,000 three-digit LA numbers times all 33 first characters (one right, the rest wrong)."""
    for number in range(1000):
        body = f"{number:03d}12345678" + "9A"[number % 2]
        for first in _ALPHABET + "ios":
            assert is_valid_upn(first + body) == stdnum_upn.is_valid(first + body), first + body


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet=_ALPHABET + "abc io 0123456789\t-٣", min_size=0, max_size=16))
def test_is_valid_upn__agrees_with_stdnum_on_any_text(value):
    assert is_valid_upn(value) == stdnum_upn.is_valid(value)


@settings(max_examples=3000, deadline=None)
@given(st.from_regex(r"\A[0-9]{11}[ABCDEFGHJKLMNPQRTUVWXYZ0-9]\Z"))
def test_check_letter__is_stdnums_check_digit(body):
    assert check_letter(body) == stdnum_upn.calc_check_digit(body)


@pytest.mark.parametrize("body", ["92620010000", "9262001000012", "92620010000a", "9262O0100001", ""])
def test_check_letter__none_for_a_body_that_is_not_canonical(body):
    assert check_letter(body) is None


def test_is_valid_upn__does_not_call_stdnum_for_a_canonical_valid_upn(monkeypatch):
    """The fast path is the point: a canonical valid UPN is answered without stdnum's generic validate."""
    upn = _valid(random.Random(1))
    monkeypatch.setattr(fast.stdnum_upn, "is_valid", lambda value: pytest.fail("stdnum was called"))
    assert is_valid_upn(upn)


def test_la_numbers__are_those_stdnum_accepts():
    """Derived from stdnum's answers, not copied: 926 (Norfolk) is in, the temporary-UPN pseudo LAs 001-005 are out."""
    assert "926" in fast._LA_NUMBERS  # noqa: SLF001
    assert not {"001", "002", "003", "004", "005"} & fast._LA_NUMBERS  # noqa: SLF001
    assert {f"{number:03d}" for number in stdnum_upn._la_numbers} == fast._LA_NUMBERS  # noqa: SLF001
