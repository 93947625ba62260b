"""Picking a sender from a Messaging Service's pool: sticky, stable, country first."""

from __future__ import annotations

from verbal.messaging.pools import pick_sender

POOL = [f"+1555000{n}000" for n in range(1, 6)]
RECIPIENTS = [f"+1555{n:07d}" for n in range(200)]


def test_a_recipient_gets_the_same_sender_whatever_the_pools_order() -> None:
    picked = {r: pick_sender(POOL, r) for r in RECIPIENTS}
    assert {r: pick_sender(list(reversed(POOL)), r) for r in RECIPIENTS} == picked
    # Spread over the pool: every number sends to some of 200 recipients.
    assert set(picked.values()) == set(POOL)


def test_a_change_to_the_pool_moves_only_the_recipients_it_must() -> None:
    before = {r: pick_sender(POOL, r) for r in RECIPIENTS}
    gone = POOL[0]
    after = {r: pick_sender(POOL[1:], r) for r in RECIPIENTS}
    moved = {r for r in RECIPIENTS if before[r] != after[r]}
    assert moved == {r for r in RECIPIENTS if before[r] == gone}
    grown = {r: pick_sender([*POOL, "+15550006000"], r) for r in RECIPIENTS}
    assert all(grown[r] in (before[r], "+15550006000") for r in RECIPIENTS)
    assert any(grown[r] == "+15550006000" for r in RECIPIENTS)


def test_a_number_of_the_recipients_country_is_preferred() -> None:
    pool = ["+15550001000", "+447700900123", "+15550002000"]
    assert pick_sender(pool, "+447700900456") == "+447700900123"
    # No number of the recipient's country: the whole pool is eligible.
    assert pick_sender(pool, "+33612345678") in pool
    assert pick_sender([], "+15550002000") is None
