"""The message state machine: forward only, gaps filled, final states absorb everything."""

from __future__ import annotations

import pytest

from verbal.messaging.states import FINAL, IllegalTransition, Status, is_final, path_to

S = Status


@pytest.mark.parametrize(
    ("current", "target", "steps"),
    [
        (S.ACCEPTED, S.QUEUED, [S.QUEUED]),
        (S.QUEUED, S.SENDING, [S.SENDING]),
        (S.SENDING, S.SENT, [S.SENT]),
        (S.SENT, S.DELIVERED, [S.DELIVERED]),
        # A receipt that beats the submit result fills in the states it skipped.
        (S.SENDING, S.DELIVERED, [S.SENT, S.DELIVERED]),
        (S.QUEUED, S.UNDELIVERED, [S.SENDING, S.SENT, S.UNDELIVERED]),
        # Failing or canceling needs no intermediate states.
        (S.QUEUED, S.FAILED, [S.FAILED]),
        (S.SENDING, S.FAILED, [S.FAILED]),
        (S.QUEUED, S.CANCELED, [S.CANCELED]),
        (S.RECEIVING, S.RECEIVED, [S.RECEIVED]),
        # A scheduled message is released into the queue or canceled; nothing fills it in.
        (S.ACCEPTED, S.SCHEDULED, [S.SCHEDULED]),
        (S.SCHEDULED, S.QUEUED, [S.QUEUED]),
        (S.SCHEDULED, S.CANCELED, [S.CANCELED]),
        (S.SCHEDULED, S.SENT, [S.QUEUED, S.SENDING, S.SENT]),
        # Late or repeated events change nothing.
        (S.SENT, S.SENDING, []),
        (S.SENT, S.SENT, []),
        (S.DELIVERED, S.UNDELIVERED, []),
        (S.FAILED, S.DELIVERED, []),
        (S.UNDELIVERED, S.SENT, []),
    ],
)
def test_paths(current: Status, target: Status, steps: list[Status]) -> None:
    assert path_to(current, target) == steps


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.RECEIVING, S.DELIVERED),
        (S.QUEUED, S.RECEIVED),
        (S.SENT, S.RECEIVING),
        (S.QUEUED, S.SCHEDULED),
    ],
)
def test_illegal_moves_raise(current: Status, target: Status) -> None:
    with pytest.raises(IllegalTransition):
        path_to(current, target)


def test_every_final_state_absorbs_every_event() -> None:
    for final in FINAL:
        assert is_final(final)
        for target in Status:
            assert path_to(final, target) == []


def test_no_path_records_two_final_states() -> None:
    for current in Status:
        for target in Status:
            try:
                steps = path_to(current, target)
            except IllegalTransition:
                continue
            assert sum(step in FINAL for step in steps) <= 1
            assert len(set(steps)) == len(steps)
