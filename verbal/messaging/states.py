"""The message state machine.

Outbound:  accepted -> queued -> sending -> sent -> delivered | undelivered
           accepted -> scheduled -> queued (when its time comes) | canceled
           any non-final state -> failed | canceled
Inbound:   receiving -> received

A final state is never left, which is what makes "exactly one final state" hold however
often a receipt or a retry repeats itself. Moving forward may skip states (a receipt can
arrive before the submit response was recorded); the skipped ones are filled in by
`path_to` so that every timeline and every callback sequence stays complete and ordered.
"""

from __future__ import annotations

import enum


class Status(enum.StrEnum):
    ACCEPTED = "accepted"
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    CANCELED = "canceled"
    RECEIVING = "receiving"
    RECEIVED = "received"


FINAL = frozenset(
    {Status.DELIVERED, Status.UNDELIVERED, Status.FAILED, Status.CANCELED, Status.RECEIVED}
)

# The forward chain of an outbound message; a final status sits after the last of these.
_OUTBOUND_CHAIN = (Status.ACCEPTED, Status.QUEUED, Status.SENDING, Status.SENT)
# Which chain position a final status requires to have been passed through.
_REACHED_FROM = {
    Status.DELIVERED: Status.SENT,
    Status.UNDELIVERED: Status.SENT,
    Status.FAILED: None,
    Status.CANCELED: None,
}


class IllegalTransition(Exception):
    def __init__(self, current: Status, target: Status) -> None:
        super().__init__(f"a message cannot go from {current} to {target}")
        self.current = current
        self.target = target


def is_final(status: str) -> bool:
    return status in FINAL


def path_to(current: Status, target: Status) -> list[Status]:
    """The statuses to record, in order, to move from `current` to `target`.

    Returns an empty list when `target` is already reached or passed (a repeated or late
    event), and raises IllegalTransition for a move the machine forbids.
    """
    if current == target:
        return []
    if current in FINAL:
        return []  # a final state absorbs every later event
    if current == Status.RECEIVING:
        if target == Status.RECEIVED or target == Status.FAILED:
            return [target]
        raise IllegalTransition(current, target)
    if target == Status.SCHEDULED:
        if current != Status.ACCEPTED:
            raise IllegalTransition(current, target)
        return [target]
    # A scheduled message stands where an accepted one does; "scheduled" is never filled in.
    position_of = Status.ACCEPTED if current == Status.SCHEDULED else current
    if position_of not in _OUTBOUND_CHAIN:
        raise IllegalTransition(current, target)

    position = _OUTBOUND_CHAIN.index(position_of)
    if target in _OUTBOUND_CHAIN:
        wanted = _OUTBOUND_CHAIN.index(target)
        return list(_OUTBOUND_CHAIN[position + 1 : wanted + 1])  # empty when already past
    if target not in _REACHED_FROM:
        raise IllegalTransition(current, target)
    required = _REACHED_FROM[target]
    steps: list[Status] = []
    if required is not None:
        steps.extend(_OUTBOUND_CHAIN[position + 1 : _OUTBOUND_CHAIN.index(required) + 1])
    steps.append(target)
    return steps
