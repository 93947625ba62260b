"""Joining long inbound texts (verbal/carriers/smpp/inbound.py), no I/O involved."""

from __future__ import annotations

import pytest

from verbal.carriers.encoding import Alphabet, encode_text
from verbal.carriers.smpp.inbound import Fragment, PartsKey, Reassembler, ReassemblyFull

KEY = PartsKey("+15550002000", "+15550001000", reference=7, total=3)


def fragment(sequence: int, data: bytes, alphabet: Alphabet | None = Alphabet.UCS2) -> Fragment:
    return Fragment(KEY, sequence, alphabet, data)


def test_parts_in_any_order_make_the_whole_text() -> None:
    parts = Reassembler(timeout=60)
    assert parts.add(fragment(3, encode_text("!", Alphabet.UCS2)), now=0) is None
    assert parts.add(fragment(1, encode_text("Hel", Alphabet.UCS2)), now=1) is None
    whole = parts.add(fragment(2, encode_text("lo", Alphabet.UCS2)), now=2)
    assert whole is not None
    assert (whole.text, whole.missing) == ("Hello!", ())
    # Kept until the caller says it is recorded.
    assert len(parts) == 1
    parts.discard(KEY)
    assert len(parts) == 0


def test_a_character_split_between_parts_is_whole_again() -> None:
    # A careless sender cut a surrogate pair (and a GSM-7 escape pair) in two.
    emoji = encode_text("a👋b", Alphabet.UCS2)
    parts = Reassembler(timeout=60)
    parts.add(fragment(1, emoji[:4]), now=0)
    parts.add(fragment(2, emoji[4:]), now=0)
    euro = encode_text("€", Alphabet.GSM7)
    whole = parts.add(fragment(3, euro, Alphabet.GSM7), now=0)
    assert whole is not None
    assert whole.text == "a👋b€"
    split_escape = Reassembler(timeout=60)
    split_escape.add(fragment(1, euro[:1], Alphabet.GSM7), now=0)
    split_escape.add(fragment(2, euro[1:], Alphabet.GSM7), now=0)
    last = split_escape.add(fragment(3, b"!", Alphabet.GSM7), now=0)
    assert last is not None
    assert last.text == "€!"


def test_a_repeated_part_counts_once() -> None:
    parts = Reassembler(timeout=60)
    for _ in range(3):
        assert parts.add(fragment(1, encode_text("a", Alphabet.UCS2)), now=0) is None


def test_after_the_timeout_what_arrived_is_handed_over_marked() -> None:
    parts = Reassembler(timeout=10)
    parts.add(fragment(1, encode_text("first ", Alphabet.UCS2)), now=100)
    parts.add(fragment(3, encode_text(" third", Alphabet.UCS2)), now=105)
    assert parts.next_expiry() == 110
    assert parts.expired(now=109) == []
    [late] = parts.expired(now=110)
    assert (late.text, late.missing) == ("first [part 2/3 missing] third", (2,))


def test_binary_parts_read_as_latin1() -> None:
    parts = Reassembler(timeout=60)
    parts.add(fragment(1, b"\xe9", None), now=0)
    parts.add(fragment(2, b"t", None), now=0)
    whole = parts.add(fragment(3, b"\xe9", None), now=0)
    assert whole is not None
    assert whole.text == "été"


def test_too_many_incomplete_texts_take_no_new_ones() -> None:
    parts = Reassembler(timeout=60, max_messages=2)
    for reference in (1, 2):
        parts.add(Fragment(PartsKey("a", "b", reference, 2), 1, Alphabet.GSM7, b"x"), now=0)
    with pytest.raises(ReassemblyFull):
        parts.add(Fragment(PartsKey("a", "b", 3, 2), 1, Alphabet.GSM7, b"x"), now=0)
    # A part of a message already waiting is still taken.
    done = parts.add(Fragment(PartsKey("a", "b", 1, 2), 2, Alphabet.GSM7, b"y"), now=0)
    assert done is not None
    assert done.text == "xy"


def test_too_many_octets_waiting_take_no_more() -> None:
    parts = Reassembler(timeout=60, max_octets=10)
    parts.add(fragment(1, b"\x00a" * 4), now=0)
    parts.add(fragment(1, b"\x00b" * 4), now=0)  # a repeat replaces, it does not add
    with pytest.raises(ReassemblyFull):
        parts.add(fragment(2, b"\x00c" * 2), now=0)
    parts.discard(KEY)
    assert parts.add(fragment(2, b"\x00c" * 2), now=0) is None
