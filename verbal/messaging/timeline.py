"""A message's full story: every status it passed through and every callback attempt."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from verbal.store.models import Message, MessageEvent, WebhookAttempt


@dataclass(frozen=True, slots=True)
class Timeline:
    message: Message
    events: list[MessageEvent]
    attempts: list[WebhookAttempt]


async def load_timeline(
    sessions: async_sessionmaker[AsyncSession], account_id: int, sid: str
) -> Timeline | None:
    async with sessions() as session:
        message = await session.scalar(
            select(Message).where(Message.sid == sid, Message.account_id == account_id)
        )
        if message is None:
            return None
        events = await session.scalars(
            select(MessageEvent)
            .where(MessageEvent.message_id == message.id)
            .order_by(MessageEvent.id)
        )
        attempts = await session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.message_id == message.id)
            .order_by(WebhookAttempt.id)
        )
        return Timeline(message, list(events), list(attempts))
