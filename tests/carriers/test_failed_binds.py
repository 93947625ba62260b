"""The failed-bind ledger on its own, with a clock the test moves."""

from __future__ import annotations

import pytest

from verbal.carriers.smpp import failed_binds
from verbal.carriers.smpp.failed_binds import FailedBinds


def ledger() -> FailedBinds:
    return FailedBinds(allowed=2, first_delay=1.0, max_delay=4.0, memory=60.0)


def fail(binds: FailedBinds, times: int, source: str = "10.0.0.1", system_id: str = "x") -> None:
    for _ in range(times):
        binds.failed(source, system_id, now=0.0)


def test_binds_are_held_back_after_the_failures_allowed_doubling_to_the_cap() -> None:
    binds = ledger()
    delays = []
    for _ in range(5):
        delays.append(binds.hold("10.0.0.1", "x", now=0.0))
        binds.release("10.0.0.1")
        fail(binds, 1)
    assert delays == [0.0, 0.0, 1.0, 2.0, 4.0]


def test_a_source_has_one_bind_held_back_at_a_time() -> None:
    binds = ledger()
    fail(binds, 2)
    assert binds.hold("10.0.0.1", "y", now=0.0) == 1.0
    assert binds.hold("10.0.0.1", "z", now=0.0) is None
    binds.release("10.0.0.1")
    assert binds.hold("10.0.0.1", "z", now=0.0) == 1.0


def test_a_guessed_system_id_delays_every_source_but_locks_none_out() -> None:
    binds = ledger()
    fail(binds, 1, source="10.0.0.1", system_id="x")
    fail(binds, 1, source="10.0.0.2", system_id="x")
    assert binds.hold("10.0.0.3", "x", now=0.0) == 1.0
    assert binds.hold("10.0.0.4", "x", now=0.0) == 1.0
    assert binds.hold("10.0.0.5", "other", now=0.0) == 0.0


def test_failures_are_forgotten_after_a_clean_bind_or_a_quiet_while() -> None:
    binds = ledger()
    fail(binds, 2)
    assert binds.hold("10.0.0.1", "other", now=60.0) == 1.0
    binds.release("10.0.0.1")
    assert binds.hold("10.0.0.1", "other", now=60.1) == 0.0
    fail(binds, 2)
    binds.succeeded("10.0.0.1", "x")
    assert binds.hold("10.0.0.1", "x", now=0.0) == 0.0


def test_memory_is_bounded_however_many_system_ids_are_made_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(failed_binds, "MAX_REMEMBERED", 10)
    binds = ledger()
    for n in range(100):
        binds.failed("10.0.0.1", f"made-up-{n}", now=float(n))
    assert len(binds._failures) == 10
    # The source, failing all along, is among the kept.
    assert binds.hold("10.0.0.1", "new", now=100.0) == 4.0
