"""What the message pipeline writes and reads: its statements, and records to rows and back.

Writes go through the journal (`verbal/store/journal.py`) as intents of the shapes below;
reads happen off the hot path (recovery, claiming parked work, a receipt for a message no
longer in memory) with SQLAlchemy Core.

The `messages` row is the outbox. Besides the message itself it says whether work is left
and who is doing it:

- `work_at`: epoch seconds from when a worker should pick the message up (a submission, a
  retry, a status callback still owed, a scheduled send); NULL when nothing is left to do
  until the network speaks (a receipt) or ever (final, every callback settled);
- `lease_owner`, `lease_expires`: the process working on it in memory; after the lease runs
  out (its process died) any worker may claim it;
- `lane`: a singleton carrier's name when only the process holding that carrier may take it.

Every status change is one guarded UPDATE (`rank <= :rank`): a process holding an old copy
cannot move a message backwards.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from verbal.messaging.machine import MessageRecord, TimelineEntry
from verbal.store.journal import Params, Statement, json_text

_STATE_COLUMNS = (
    "status",
    "rank",
    "carrier",
    "carrier_message_id",
    "error_code",
    "error_message",
    "date_updated",
    "date_sent",
    "event_seq",
    "callback_seq",
    "callback_cursor",
    "work_at",
    "lease_owner",
    "lease_expires",
    "lane",
)
_COLUMNS = (
    "id",
    "sid",
    "account_id",
    "direction",
    "from_number",
    "to_number",
    "body",
    "media_urls",
    "encoding",
    "num_segments",
    "status_callback",
    "status_callback_method",
    "callback_format",
    "expires_at",
    "send_at",
    "date_created",
    "messaging_service_sid",
    *_STATE_COLUMNS,
)

INSERT_MESSAGE = Statement(
    f"INSERT INTO messages ({', '.join(_COLUMNS)}) VALUES ({', '.join(':' + c for c in _COLUMNS)})",
    order=10,
    times=("expires_at", "send_at", "date_created", "date_updated", "date_sent"),
)
UPDATE_MESSAGE = Statement(
    "UPDATE messages SET "
    + ", ".join(f"{c} = :{c}" for c in _STATE_COLUMNS)
    + " WHERE id = :id AND rank <= :rank",
    order=20,
    key="id",
    times=("date_updated", "date_sent"),
)
INSERT_EVENT = Statement(
    "INSERT INTO message_events (message_id, seq, status, occurred_at, error_code, callback) "
    "VALUES (:message_id, :seq, :status, :occurred_at, :error_code, :callback)",
    order=30,
    times=("occurred_at",),
)
INSERT_ATTEMPT = Statement(
    "INSERT INTO webhook_attempts (message_id, event, url, method, request_params, attempt, "
    "response_status, response_excerpt, latency_ms, error, delivered, attempted_at) VALUES "
    "(:message_id, :event, :url, :method, :request_params, :attempt, :response_status, "
    ":response_excerpt, :latency_ms, :error, :delivered, :attempted_at)",
    order=40,
    times=("attempted_at",),
)
INSERT_JOB = Statement(
    "INSERT INTO jobs (kind, payload, ordering_key, run_at, created_at, attempts) "
    "VALUES (:kind, :payload, :ordering_key, :run_at, :run_at, 0)",
    order=70,
)


@dataclass(frozen=True, slots=True)
class Whereabouts:
    """Where a message's work stands, written with its state (see the module doc)."""

    work_at: float | None
    lease_owner: str | None = None
    lease_expires: float | None = None
    lane: str | None = None


DONE = Whereabouts(None)


def state_params(record: MessageRecord, where: Whereabouts) -> dict[str, Any]:
    return {
        "id": record.id,
        "status": record.status,
        "rank": record.rank,
        "carrier": record.carrier,
        "carrier_message_id": record.carrier_message_id,
        "error_code": record.error_code,
        "error_message": record.error_message,
        "date_updated": record.date_updated,
        "date_sent": record.date_sent,
        "event_seq": record.event_seq,
        "callback_seq": record.callback_seq,
        "callback_cursor": record.callback_cursor,
        "work_at": where.work_at,
        "lease_owner": where.lease_owner,
        "lease_expires": where.lease_expires,
        "lane": where.lane,
    }


def insert_params(record: MessageRecord, where: Whereabouts) -> dict[str, Any]:
    return {
        **state_params(record, where),
        "sid": record.sid,
        "account_id": record.account_id,
        "direction": record.direction,
        "from_number": record.from_number,
        "to_number": record.to_number,
        "body": record.body,
        "media_urls": json_text(list(record.media_urls)),
        "encoding": record.encoding,
        "num_segments": record.num_segments,
        "status_callback": record.status_callback,
        "status_callback_method": record.status_callback_method,
        "callback_format": record.callback_format,
        "expires_at": record.expires_at,
        "send_at": record.send_at,
        "date_created": record.date_created,
        "messaging_service_sid": record.messaging_service_sid,
    }


def event_params(entry: TimelineEntry) -> dict[str, Any]:
    return {
        "message_id": entry.message_id,
        "seq": entry.seq,
        "status": entry.status,
        "occurred_at": entry.occurred_at,
        "error_code": entry.error_code,
        "callback": entry.callback,
    }


def intents(
    record: MessageRecord,
    entries: Iterable[TimelineEntry],
    where: Whereabouts,
    *,
    new: bool = False,
) -> list[tuple[Statement, Params]]:
    """The journal intents recording `record` in its new state and the entries it added."""
    row = insert_params(record, where) if new else state_params(record, where)
    written: list[tuple[Statement, Params]] = [(INSERT_MESSAGE if new else UPDATE_MESSAGE, row)]
    written.extend((INSERT_EVENT, event_params(entry)) for entry in entries)
    return written


def job_params(kind: str, payload: dict[str, Any], ordering_key: str | None = None) -> Params:
    return {
        "kind": kind,
        "payload": json_text(payload),
        "ordering_key": ordering_key,
        "run_at": time.time(),
    }


# -- reading ------------------------------------------------------------------------------------


def _aware(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):  # a raw SQLite read
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def record_from_row(row: Any) -> MessageRecord:
    media = row.media_urls
    if isinstance(media, str):
        import json

        media = json.loads(media)
    return MessageRecord(
        id=row.id,
        sid=row.sid,
        account_id=row.account_id,
        direction=row.direction,
        from_number=row.from_number,
        to_number=row.to_number,
        body=row.body or "",
        media_urls=tuple(media or ()),
        encoding=row.encoding,
        num_segments=row.num_segments,
        status=row.status,
        status_callback=row.status_callback,
        status_callback_method=row.status_callback_method,
        callback_format=row.callback_format,
        carrier=row.carrier,
        carrier_message_id=row.carrier_message_id,
        error_code=row.error_code,
        error_message=row.error_message,
        expires_at=_aware(row.expires_at),
        send_at=_aware(row.send_at),
        date_created=_aware(row.date_created),  # type: ignore[arg-type]
        date_updated=_aware(row.date_updated),  # type: ignore[arg-type]
        date_sent=_aware(row.date_sent),
        event_seq=row.event_seq,
        callback_seq=row.callback_seq,
        callback_cursor=row.callback_cursor,
        messaging_service_sid=row.messaging_service_sid,
    )


def _in_list(prefix: str, values: Iterable[Any]) -> tuple[str, dict[str, Any]]:
    """`(:p0, :p1, ...)` and its parameters, for an `IN` over `values`."""
    params = {f"{prefix}{i}": value for i, value in enumerate(values)}
    return "(" + ", ".join(":" + name for name in params) + ")", params


async def _read(
    sessions: async_sessionmaker[AsyncSession], query: str, params: dict[str, Any]
) -> list[Any]:
    async with sessions() as session:
        return list((await session.execute(text(query), params)).all())


_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM messages"


async def load(
    sessions: async_sessionmaker[AsyncSession],
    *,
    sid: str | None = None,
    carrier: str | None = None,
    carrier_message_id: str | None = None,
) -> MessageRecord | None:
    """One message, by SID or by its carrier's id for it."""
    if sid is not None:
        query, params = f"{_SELECT} WHERE sid = :sid", {"sid": sid}
    else:
        query = f"{_SELECT} WHERE carrier = :carrier AND carrier_message_id = :cid"
        params = {"carrier": carrier, "cid": carrier_message_id}
    rows = await _read(sessions, query, params)
    return record_from_row(rows[0]) if rows else None


async def claim(
    sessions: async_sessionmaker[AsyncSession],
    *,
    owner: str,
    lease_seconds: float,
    lanes: Sequence[str],
    limit: int,
    skip_locked: bool,
) -> list[tuple[MessageRecord, str | None]]:
    """Lease up to `limit` messages whose work is due and nobody holds (or whose holder's
    lease ran out); with the lane each was parked in."""
    now = time.time()
    lane_filter = "lane IS NULL"
    params: dict[str, Any] = {"now": now, "owner": owner, "until": now + lease_seconds}
    if lanes:
        names, lane_params = _in_list("lane", lanes)
        lane_filter = f"(lane IS NULL OR lane IN {names})"
        params.update(lane_params)
    due = (
        "SELECT id FROM messages WHERE work_at <= :now "
        "AND (lease_expires IS NULL OR lease_expires < :now) "
        f"AND {lane_filter} ORDER BY work_at LIMIT {int(limit)}"
    )
    if skip_locked:
        due += " FOR UPDATE SKIP LOCKED"
    statement = (
        "UPDATE messages SET lease_owner = :owner, lease_expires = :until "
        f"WHERE id IN ({due}) RETURNING {', '.join(_COLUMNS)}"
    )
    async with sessions.begin() as session:
        rows = (await session.execute(text(statement), params)).all()
    return [(record_from_row(row), row.lane) for row in rows]


async def owed_callbacks(
    sessions: async_sessionmaker[AsyncSession], records: Sequence[MessageRecord]
) -> dict[int, list[TimelineEntry]]:
    """The timeline entries whose status callbacks `records` still owe, by message id."""
    owing = {r.id: r for r in records if r.callbacks_owed}
    if not owing:
        return {}
    ids, params = _in_list("m", owing)
    rows = await _read(
        sessions,
        "SELECT message_id, seq, status, occurred_at, error_code FROM message_events "
        f"WHERE callback AND message_id IN {ids} ORDER BY message_id, seq",
        params,
    )
    owed: dict[int, list[TimelineEntry]] = {}
    for row in rows:
        record = owing[row.message_id]
        if row.seq <= record.callback_cursor:
            continue
        owed.setdefault(row.message_id, []).append(
            TimelineEntry(
                message_id=row.message_id,
                seq=row.seq,
                status=row.status,
                occurred_at=_aware(row.occurred_at),  # type: ignore[arg-type]
                error_code=row.error_code,
                callback=True,
            )
        )
    return owed


async def attempts_made(
    sessions: async_sessionmaker[AsyncSession], message_ids: Sequence[int]
) -> dict[int, dict[str, int]]:
    """How many callback attempts each message has made, by event (`status:sent`...): a
    message claimed again resumes its retries where they stood."""
    if not message_ids:
        return {}
    ids, params = _in_list("m", message_ids)
    rows = await _read(
        sessions,
        "SELECT message_id, event, count(*) AS made FROM webhook_attempts "
        f"WHERE message_id IN {ids} GROUP BY message_id, event",
        params,
    )
    made: dict[int, dict[str, int]] = {}
    for row in rows:
        made.setdefault(row.message_id, {})[row.event] = int(row.made)
    return made


async def release_all(sessions: async_sessionmaker[AsyncSession]) -> int:
    """Free every message lease (a single-process SQLite server starting after a crash)."""
    async with sessions.begin() as session:
        result: Any = await session.execute(
            text(
                "UPDATE messages SET lease_owner = NULL, lease_expires = NULL "
                "WHERE lease_owner IS NOT NULL"
            )
        )
    return int(result.rowcount or 0)


async def renew(
    sessions: async_sessionmaker[AsyncSession], owner: str, ids: Sequence[int], until: float
) -> None:
    """Extend this process's leases on the messages it works on."""
    for start in range(0, len(ids), 500):
        names, params = _in_list("i", ids[start : start + 500])
        params.update(owner=owner, until=until)
        async with sessions.begin() as session:
            await session.execute(
                text(
                    "UPDATE messages SET lease_expires = :until WHERE lease_owner = :owner "
                    f"AND id IN {names}"
                ),
                params,
            )


class IdBlocks:
    """Message ids reserved a block at a time (table `id_blocks`).

    The journal must know a message's id before inserting it, to write its timeline in the
    same batch; every process reserves blocks of its own, and ids a crash leaves unused are
    skipped. `ensure` reserves (with a transaction of its own) and `take` hands out without
    I/O, so code about to open a transaction makes sure of its ids first.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, block: int = 1000) -> None:
        self._sessions = sessions
        self._block = block
        self._ranges: list[list[int]] = []  # [next, end) pairs
        self._reserving: asyncio.Future[None] | None = None

    @property
    def available(self) -> int:
        return sum(end - start for start, end in self._ranges)

    async def ensure(self, count: int = 1) -> None:
        """Make sure `count` ids can be taken without waiting; refill early, in the
        background, once a block is half spent."""
        while self.available < count:
            await self._reserve()
        if self.available < self._block // 2 and self._reserving is None:
            task = asyncio.get_running_loop().create_task(self._reserve())
            task.add_done_callback(lambda t: t.cancelled() or t.exception())

    def take(self) -> int:
        if not self._ranges:
            raise RuntimeError("no message ids reserved: call ensure() first")
        current = self._ranges[0]
        value = current[0]
        current[0] += 1
        if current[0] >= current[1]:
            self._ranges.pop(0)
        return value

    async def _reserve(self) -> None:
        if self._reserving is not None:
            await asyncio.shield(self._reserving)
            return
        self._reserving = asyncio.get_running_loop().create_future()
        try:
            async with self._sessions.begin() as session:
                end = (
                    await session.execute(
                        text(
                            "UPDATE id_blocks SET next_id = next_id + :n "
                            "WHERE name = 'messages' RETURNING next_id"
                        ),
                        {"n": self._block},
                    )
                ).scalar_one()
            self._ranges.append([end - self._block, end])
            self._reserving.set_result(None)
        except BaseException as error:
            self._reserving.set_exception(error)
            self._reserving.exception()
            raise
        finally:
            self._reserving = None
