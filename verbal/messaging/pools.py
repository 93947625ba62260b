"""Which number of a Messaging Service's pool sends to a recipient.

Sticky sender without a table: the sender is chosen by rendezvous hashing (each number
scores `hash(number, recipient)`, the highest wins), so a recipient gets the same number on
every send while the pool is unchanged, and a change to the pool moves only the recipients
of the numbers that left (and, when a number joins, the share it takes over). Twilio keeps
a stored mapping instead; this one costs no read or write per message. Numbers whose
country calling code is the recipient's are preferred, as Twilio's country code geomatch
does; without one, the whole pool is eligible.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence

import phonenumbers


@functools.lru_cache(maxsize=4096)  # a pool's numbers come back on every send
def country_code(number: str) -> int:
    """The calling code of an E.164 number (1, 44...), 0 when it has none."""
    try:
        return phonenumbers.parse(number).country_code or 0
    except phonenumbers.NumberParseException:
        return 0


def _score(number: str, recipient: str) -> bytes:
    return hashlib.blake2b(f"{number}|{recipient}".encode(), digest_size=8).digest()


def pick_sender(numbers: Sequence[str], recipient: str) -> str | None:
    """The number that sends to `recipient` (E.164), or None for an empty pool."""
    country = country_code(recipient)
    eligible = [n for n in numbers if country_code(n) == country] or numbers
    if not eligible:
        return None
    return max(eligible, key=lambda number: _score(number, recipient))
