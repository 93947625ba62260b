"""A message as a value, and the pure state machine that moves it.

`MessageRecord` is what the pipeline carries in memory and what the database records: frozen,
so a stage that holds one can never see it change under it. `advance` turns an event (a
carrier answered, a receipt came, a user canceled) into the next record and the timeline
entries it owes, each marked with whether a status callback is due for it. Nothing here does
I/O; the pipeline writes the result to the journal and hands due callbacks to their stage.

Every timeline entry gets the message's next sequence number (`event_seq`). Status callbacks
are delivered in that order, and `callback_cursor` is the sequence number of the last one
settled (delivered or given up): the callbacks still owed after a crash are exactly the
entries with a callback between the cursor and `callback_seq`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from verbal.messaging.states import Status, is_final, path_to

# Transitions that produce a status callback. "sending" lasts milliseconds and Twilio does
# not report it; inbound messages report nothing (they have no callback URL).
CALLBACK_STATUSES = frozenset(
    {
        Status.SCHEDULED,
        Status.QUEUED,
        Status.SENT,
        Status.DELIVERED,
        Status.UNDELIVERED,
        Status.FAILED,
        Status.CANCELED,
    }
)
# How far along a status is: the database refuses to record a status of a lower rank over a
# higher one, so a stale writer (another process that saw the message earlier) cannot move
# it backwards.
RANK = {
    Status.ACCEPTED: 0,
    Status.RECEIVING: 0,
    Status.SCHEDULED: 1,
    Status.QUEUED: 2,
    Status.SENDING: 3,
    Status.SENT: 4,
    Status.DELIVERED: 9,
    Status.UNDELIVERED: 9,
    Status.FAILED: 9,
    Status.CANCELED: 9,
    Status.RECEIVED: 9,
}
# Statuses in which a message still has to be handed to a carrier.
TO_SUBMIT = frozenset({Status.QUEUED, Status.SENDING})


class MessageRecord(NamedTuple):
    """One message, as stored in the `messages` table (the names are its columns).

    A named tuple rather than a frozen dataclass: just as immutable, and the pipeline makes
    several per message (each status change is a new record), which a frozen dataclass
    builds with one `object.__setattr__` call per field, four times slower. It also travels
    between processes as the plain tuple it is (`verbal/processes.py`).
    """

    id: int
    sid: str
    account_id: int
    direction: str
    from_number: str
    to_number: str
    body: str
    media_urls: tuple[str, ...]
    encoding: str
    num_segments: int
    status: str
    status_callback: str | None
    status_callback_method: str
    callback_format: str
    carrier: str | None
    carrier_message_id: str | None
    error_code: int | None
    error_message: str | None
    expires_at: datetime | None
    send_at: datetime | None
    date_created: datetime
    date_updated: datetime
    date_sent: datetime | None
    # The sequence number of the newest timeline entry, and of the newest one that owes a
    # status callback; the last callback settled.
    event_seq: int = 0
    callback_seq: int = 0
    callback_cursor: int = 0
    messaging_service_sid: str | None = None

    @property
    def rank(self) -> int:
        return RANK[Status(self.status)]

    @property
    def final(self) -> bool:
        return is_final(self.status)

    @property
    def callbacks_owed(self) -> bool:
        return self.callback_cursor < self.callback_seq

    def evolve(self, **changes: Any) -> MessageRecord:
        """A copy with `changes`."""
        return self._replace(**changes)


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One status a message passed through (a `message_events` row)."""

    message_id: int
    seq: int
    status: str
    occurred_at: datetime
    error_code: int | None
    # Whether a status callback is owed for this entry.
    callback: bool


@dataclass(frozen=True, slots=True)
class Advance:
    """What an event did: the record after it, and the timeline entries it added (none when
    the event came too late to change anything: a repeated receipt, a retry that lost)."""

    record: MessageRecord
    entries: tuple[TimelineEntry, ...]

    @property
    def changed(self) -> bool:
        return bool(self.entries)


def advance(
    record: MessageRecord,
    target: Status,
    now: datetime,
    *,
    error: tuple[int, str] | None = None,
    carrier: str | None = None,
    carrier_message_id: str | None = None,
) -> Advance:
    """Move `record` to `target`, filling in skipped statuses (see `states.path_to`).

    `error` is the (code, text) of a failure, kept when the move ends in failed or
    undelivered. The carrier and its id are filled in where the record has none yet (a
    receipt can beat the recording of the submit's answer). Raises IllegalTransition.
    """
    steps = path_to(Status(record.status), target)
    changes: dict[str, object] = {}
    if carrier and not record.carrier:
        changes["carrier"] = carrier
    if carrier_message_id and not record.carrier_message_id:
        changes["carrier_message_id"] = carrier_message_id
    if not steps:
        return Advance(record.evolve(**changes) if changes else record, ())
    if error is not None and target in (Status.FAILED, Status.UNDELIVERED):
        changes["error_code"] = error[0]
        changes["error_message"] = error[1][:512]
    seq = record.event_seq
    callback_seq = record.callback_seq
    entries = []
    error_code = changes.get("error_code", record.error_code)
    for step in steps:
        seq += 1
        owes = bool(record.status_callback) and step in CALLBACK_STATUSES
        if owes:
            callback_seq = seq
        entries.append(
            TimelineEntry(
                message_id=record.id,
                seq=seq,
                status=step.value,
                occurred_at=now,
                # A filled-in intermediate status (sent, before a failed receipt) has none.
                error_code=error_code if is_final(step) else None,  # type: ignore[arg-type]
                callback=owes,
            )
        )
        if step == Status.SENT:
            changes["date_sent"] = now
    changes.update(
        status=steps[-1].value, date_updated=now, event_seq=seq, callback_seq=callback_seq
    )
    return Advance(record.evolve(**changes), tuple(entries))


def settle_callback(record: MessageRecord, seq: int) -> MessageRecord:
    """The record once the callback of entry `seq` was delivered or given up."""
    if seq <= record.callback_cursor:
        return record
    return record.evolve(callback_cursor=seq)
