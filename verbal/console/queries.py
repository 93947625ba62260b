"""What the console reads from the store beyond the shared timeline and session log."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from verbal.store.models import Application, Message, SandboxDelivery, Session


@dataclass(frozen=True, slots=True)
class MessageFilter:
    """The message log's filters; None means "any"."""

    number: str | None = None  # sender or recipient
    status: str | None = None
    direction: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    before_id: int | None = None  # keyset paging: only messages older than this one


async def find_messages(
    sessions: async_sessionmaker[AsyncSession], account_id: int, where: MessageFilter, limit: int
) -> list[Message]:
    """The account's messages matching `where`, newest first."""
    query = select(Message).where(Message.account_id == account_id)
    if where.number:
        query = query.where(
            or_(Message.from_number == where.number, Message.to_number == where.number)
        )
    if where.status:
        query = query.where(Message.status == where.status)
    if where.direction:
        query = query.where(Message.direction == where.direction)
    if where.since:
        query = query.where(Message.date_created >= where.since)
    if where.until:
        query = query.where(Message.date_created < where.until)
    if where.before_id:
        query = query.where(Message.id < where.before_id)
    async with sessions() as session:
        return list(await session.scalars(query.order_by(Message.id.desc()).limit(limit)))


@dataclass(frozen=True, slots=True)
class HandsetSummary:
    number: str
    messages: int
    last_at: datetime


async def handsets(
    sessions: async_sessionmaker[AsyncSession],
    account_id: int,
    prefixes: Sequence[str],
    limit: int = 100,
) -> list[HandsetSummary]:
    """The handsets the account's numbers have texted or heard from, most recent first.

    Handsets are not stored anywhere: one exists as soon as it is texted, so the ones worth
    listing are those in the account's message history.
    """
    other_party = case(
        (Message.direction == "inbound", Message.from_number), else_=Message.to_number
    )
    query = (
        select(other_party, func.count(), func.max(Message.date_created))
        .where(
            Message.account_id == account_id,
            or_(*(other_party.startswith(prefix, autoescape=True) for prefix in prefixes)),
        )
        .group_by(other_party)
        .order_by(func.max(Message.id).desc())
        .limit(limit)
    )
    async with sessions() as session:
        rows = (await session.execute(query)).all()
    return [HandsetSummary(number, count, last) for number, count, last in rows]


async def sandbox_delivery(
    sessions: async_sessionmaker[AsyncSession], message_sid: str
) -> SandboxDelivery | None:
    """What the sandbox network did with a message it was handed, if it was."""
    async with sessions() as session:
        return await session.scalar(
            select(SandboxDelivery).where(SandboxDelivery.message_sid == message_sid)
        )


async def session_started_by(
    sessions: async_sessionmaker[AsyncSession], account_id: int, message_sid: str
) -> Session | None:
    """The app session an inbound message started, if it started one."""
    async with sessions() as session:
        return await session.scalar(
            select(Session).where(
                Session.inbound_message_sid == message_sid, Session.account_id == account_id
            )
        )


async def application_by_id(
    sessions: async_sessionmaker[AsyncSession], application_id: int | None
) -> Application | None:
    if application_id is None:
        return None
    async with sessions() as session:
        return await session.get(Application, application_id)
