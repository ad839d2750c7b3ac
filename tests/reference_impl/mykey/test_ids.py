"""MyKey IDs (SPEC.md, "The MyKey ID"): 8 characters, no look-alikes, case-insensitive input."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mynahil.reference_impl.mykey.ids import (
    ALPHABET,
    LENGTH,
    InvalidMyKeyId,
    generate_mykey_id,
    parse_mykey_id,
)

LOOK_ALIKES = "0O1ILUV"


def test_alphabet_has_no_look_alikes() -> None:
    assert not set(LOOK_ALIKES) & set(ALPHABET)
    assert len(set(ALPHABET)) == len(ALPHABET)


@given(st.randoms(use_true_random=False))
def test_generated_ids_are_valid(rng: random.Random) -> None:
    mykey_id = generate_mykey_id(rng)
    assert len(mykey_id) == LENGTH
    assert parse_mykey_id(mykey_id) == mykey_id


@given(st.text(alphabet=ALPHABET, min_size=LENGTH, max_size=LENGTH))
def test_any_id_from_the_alphabet_parses_in_any_case_and_spacing(mykey_id: str) -> None:
    typed = f"{mykey_id[:4].lower()}-{mykey_id[4:]} "
    assert parse_mykey_id(typed) == mykey_id


@given(st.text(max_size=20))
def test_parse_accepts_exactly_the_canonical_ids(text: str) -> None:
    canonical = "".join(c for c in text.upper() if c not in " -")
    valid = len(canonical) == LENGTH and all(c in ALPHABET for c in canonical)
    if valid:
        assert parse_mykey_id(text) == canonical
    else:
        with pytest.raises(InvalidMyKeyId):
            parse_mykey_id(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ABCDEFG", "8 characters"),
        ("ABCDEFGO", "'O' cannot appear"),
        ("1BCDEFGH", "'1' cannot appear"),
    ],
)
def test_errors_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(InvalidMyKeyId, match=message):
        parse_mykey_id(text)


def test_ids_are_random() -> None:
    drawn = {generate_mykey_id() for _ in range(2000)}
    assert len(drawn) == 2000


def test_every_position_draws_from_the_whole_alphabet() -> None:
    rng = random.Random(17)
    drawn = [generate_mykey_id(rng) for _ in range(3000)]
    for position in range(LENGTH):
        assert {mykey_id[position] for mykey_id in drawn} == set(ALPHABET), position
