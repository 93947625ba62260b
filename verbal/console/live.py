"""Live updates: server-sent events that say what changed, read from the database.

The database is the source of truth, so the stream works the same whichever process made
the change (a worker on another node, the CLI). Every status change is a `message_events`
row, every callback attempt a `webhook_attempts` row, every session step a `session_events`
row, and all three have increasing ids. A stream remembers the last id of each it has
reported (the *cursor*) and every `POLL_SECONDS` asks for rows past it: an index range scan
that finds nothing most of the time.

Each SSE event names what changed (`message` or `session`) and lists the SIDs; pages swap
in a fresh fragment when their kind of event arrives (htmx `hx-trigger="sse:message"`).
The event id is the cursor, which the browser sends back as `Last-Event-ID` when it
reconnects, so nothing is missed in between; a page passes the cursor it was rendered at as
`after`, so nothing is missed between rendering and connecting either.

A stream ends by itself after `STREAM_SECONDS` and the browser reconnects a moment later
(`retry`). uvicorn lets open responses finish before it stops, so a stream that never ended
would hold up every shutdown for as long as a console tab stays open.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse
from sqlalchemy import func, or_, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from verbal.console.auth import User
from verbal.console.web import PAGE_HEADERS, PageError, console_router, runtime
from verbal.store.models import Message, MessageEvent, Session, SessionEvent, WebhookAttempt

log = logging.getLogger("verbal.console")

POLL_SECONDS = 0.5
STREAM_SECONDS = 5.0
RETRY_MILLISECONDS = 250
# Rows read per table per poll; a busier stream catches up over the next polls.
BATCH = 500

router = console_router()


@dataclass(frozen=True, slots=True)
class Cursor:
    """The last message event, callback attempt and session event already reported."""

    message_event: int = 0
    attempt: int = 0
    session_event: int = 0

    def __str__(self) -> str:
        return f"{self.message_event}.{self.attempt}.{self.session_event}"

    @classmethod
    def parse(cls, text: str) -> Cursor | None:
        parts = text.split(".")
        if len(parts) != 3 or not all(part.isdigit() and len(part) <= 10 for part in parts):
            return None
        return cls(*(int(part) for part in parts))


@dataclass(frozen=True, slots=True)
class Scope:
    """What a page shows, so that its stream reports only what concerns it."""

    message_sid: str | None = None
    number: str | None = None  # a handset: messages from or to it
    session_sid: str | None = None

    @property
    def messages(self) -> bool:
        return self.session_sid is None

    @property
    def sessions(self) -> bool:
        return self.message_sid is None and self.number is None


async def current_cursor(sessions: async_sessionmaker[AsyncSession]) -> Cursor:
    """Where a page rendered now should start its stream."""
    async with sessions() as session:
        row = (
            await session.execute(
                select(
                    select(func.max(MessageEvent.id)).scalar_subquery(),
                    select(func.max(WebhookAttempt.id)).scalar_subquery(),
                    select(func.max(SessionEvent.id)).scalar_subquery(),
                )
            )
        ).one()
    return Cursor(*(value or 0 for value in row))


@dataclass(frozen=True, slots=True)
class Changes:
    cursor: Cursor
    messages: list[str]
    sessions: list[str]


async def changes_since(
    sessions: async_sessionmaker[AsyncSession], account_id: int, cursor: Cursor, scope: Scope
) -> Changes:
    """The account's messages and sessions that changed after `cursor`, within `scope`."""
    messages: list[str] = []
    session_sids: list[str] = []
    async with sessions() as session:
        if scope.messages:
            for model, field in (
                (MessageEvent, "message_event"),
                (WebhookAttempt, "attempt"),
            ):
                rows = await session.execute(
                    _message_rows(model, account_id, getattr(cursor, field), scope)
                )
                found = rows.all()
                if found:
                    cursor = replace(cursor, **{field: found[-1][0]})
                    messages.extend(sid for _, sid in found)
        if scope.sessions:
            query = (
                select(SessionEvent.id, Session.sid)
                .join(Session, Session.id == SessionEvent.session_id)
                .where(SessionEvent.id > cursor.session_event, Session.account_id == account_id)
                .order_by(SessionEvent.id)
                .limit(BATCH)
            )
            if scope.session_sid:
                query = query.where(Session.sid == scope.session_sid)
            found = (await session.execute(query)).all()
            if found:
                cursor = replace(cursor, session_event=found[-1][0])
                session_sids.extend(sid for _, sid in found)
    return Changes(cursor, _unique(messages), _unique(session_sids))


def _message_rows(
    model: type[MessageEvent] | type[WebhookAttempt], account_id: int, after: int, scope: Scope
) -> Any:
    query = (
        select(model.id, Message.sid)
        .join(Message, Message.id == model.message_id)
        .where(model.id > after, Message.account_id == account_id)
        .order_by(model.id)
        .limit(BATCH)
    )
    if scope.message_sid:
        query = query.where(Message.sid == scope.message_sid)
    if scope.number:
        query = query.where(
            or_(Message.from_number == scope.number, Message.to_number == scope.number)
        )
    return query


def _unique(sids: list[str]) -> list[str]:
    return list(dict.fromkeys(sids))


def _event(name: str, cursor: Cursor, sids: list[str]) -> str:
    return f"id: {cursor}\nevent: {name}\ndata: {' '.join(sids)}\n\n"


@router.get("/live")
async def live(
    request: Request,
    user: User,
    after: str = "",
    message: str = "",
    number: str = "",
    session: str = "",
) -> StreamingResponse:
    start = Cursor.parse(request.headers.get("last-event-id", "")) or Cursor.parse(after)
    if start is None:
        raise PageError(400, "The live stream needs the position to start from (after=…).")
    scope = Scope(message or None, number or None, session or None)
    sessions = runtime(request).sessions
    account_id = user.account.id

    async def stream() -> AsyncIterator[str]:
        yield f"retry: {RETRY_MILLISECONDS}\n\n"
        cursor = start
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STREAM_SECONDS
        while loop.time() < deadline:
            try:
                changes = await changes_since(sessions, account_id, cursor, scope)
            except DBAPIError as exc:
                # The browser reconnects and resumes from the same cursor.
                log.warning("live stream ends: the database failed: %s", exc.orig)
                return
            cursor = changes.cursor
            if changes.messages:
                yield _event("message", cursor, changes.messages)
            if changes.sessions:
                yield _event("session", cursor, changes.sessions)
            if await request.is_disconnected():
                return
            await asyncio.sleep(POLL_SECONDS)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={**PAGE_HEADERS, "X-Accel-Buffering": "no"},
    )
