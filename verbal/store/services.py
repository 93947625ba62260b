"""Messaging Services: an account's pools of sender numbers, and their settings.

Sends through a service read its pool on the hot path, and every send and inbound text asks
which service its number belongs to (the scope of an opt-out, the `MessagingServiceSid` of
a text), so both are cached: each service's pool (`Pool`) and each account's numbers in
services, one query each per `CACHE_TTL_SECONDS`. A change made through this process clears
them at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from verbal import ids
from verbal.store.cache import TtlCache
from verbal.store.directory import CACHE_TTL_SECONDS, Directory
from verbal.store.models import (
    Application,
    MessagingService,
    MessagingServiceNumber,
    OptOut,
    PhoneNumber,
)

# The settings an API may change, with their defaults (Twilio's).
SERVICE_DEFAULTS: Mapping[str, Any] = {
    "inbound_request_url": None,
    "inbound_method": "POST",
    "fallback_url": None,
    "fallback_method": "POST",
    "status_callback": None,
    "sticky_sender": True,
    "use_inbound_webhook_on_number": False,
}
# Twilio's limit on a pool (error 21714).
MAX_POOL = 400


class NumberInService(Exception):
    """The number already belongs to a service (this one or another)."""


class PoolFull(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Pool:
    """What a send through a service needs: its numbers and its status callback."""

    sid: str
    account_id: int
    status_callback: str | None
    numbers: tuple[str, ...]


async def _inbound_application(session: AsyncSession, service: MessagingService) -> None:
    """Keep the hidden RCML application that answers texts to the service's numbers with
    its inbound request URL (sessions need an application row); none without a URL."""
    application = await session.get(Application, service.application_id or 0)
    if not service.inbound_request_url:
        if application is not None:
            application.deleted = True
        service.application_id = None
        return
    if application is None or application.deleted:
        application = Directory.new_application(
            service.account_id, f"{service.sid} inbound", {"dialect": "rcml"}, number_owned=True
        )
        session.add(application)
    application.sms_url = service.inbound_request_url
    application.sms_method = service.inbound_method
    application.sms_fallback_url = service.fallback_url
    application.sms_fallback_method = service.fallback_method
    await session.flush()
    service.application_id = application.id


class Services:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._pools: TtlCache[Pool] = TtlCache(CACHE_TTL_SECONDS)
        # Per account, its numbers that are in a service, with the service's SID.
        self._memberships: TtlCache[Mapping[str, str]] = TtlCache(CACHE_TTL_SECONDS)

    def forget_pools(self) -> None:
        """Drop every cached pool (a number was released: it may have been in one)."""
        self._pools.clear()
        self._memberships.clear()

    def _forget(self, service: MessagingService) -> None:
        self._pools.forget(service.sid)
        self._memberships.forget(service.account_id)

    async def service_of(
        self, account_id: int, number: str, session: AsyncSession | None = None
    ) -> str | None:
        """The SID of the service whose pool holds the account's `number`, if any (cached);
        `session` as for `pool`."""

        async def load() -> Mapping[str, str]:
            query = (
                select(PhoneNumber.number, MessagingService.sid)
                .join(
                    MessagingServiceNumber,
                    MessagingServiceNumber.phone_number_id == PhoneNumber.id,
                )
                .join(MessagingService, MessagingService.id == MessagingServiceNumber.service_id)
                .where(MessagingService.account_id == account_id)
            )
            if session is not None:
                return {n: s for n, s in await session.execute(query)}
            async with self._sessions() as own:
                return {n: s for n, s in await own.execute(query)}

        members = await self._memberships.get(account_id, load, shared=session is None)
        return None if members is None else members.get(number)

    async def pool(self, sid: str, session: AsyncSession | None = None) -> Pool | None:
        """The service `sid` as sends use it (cached). A caller inside a transaction passes
        its session, which reads on a miss."""

        async def load() -> Pool | None:
            if session is not None:
                return await self._read_pool(session, sid)
            async with self._sessions() as own:
                return await self._read_pool(own, sid)

        return await self._pools.get(sid, load, shared=session is None)

    @staticmethod
    async def _read_pool(session: AsyncSession, sid: str) -> Pool | None:
        service = await session.scalar(select(MessagingService).where(MessagingService.sid == sid))
        if service is None:
            return None
        numbers = await session.scalars(
            select(PhoneNumber.number)
            .join(MessagingServiceNumber, MessagingServiceNumber.phone_number_id == PhoneNumber.id)
            .where(MessagingServiceNumber.service_id == service.id)
            .order_by(PhoneNumber.id)
        )
        return Pool(service.sid, service.account_id, service.status_callback, tuple(numbers))

    async def create(
        self, account_id: int, friendly_name: str, settings: Mapping[str, Any]
    ) -> MessagingService:
        service = MessagingService(
            sid=ids.sid("MG"),
            account_id=account_id,
            friendly_name=friendly_name,
            **{**SERVICE_DEFAULTS, **settings},
        )
        async with self._sessions.begin() as session:
            await _inbound_application(session, service)
            session.add(service)
        return service

    async def get(self, account_id: int, sid: str) -> MessagingService | None:
        async with self._sessions() as session:
            return await session.scalar(
                select(MessagingService).where(
                    MessagingService.sid == sid, MessagingService.account_id == account_id
                )
            )

    async def update(
        self, service: MessagingService, settings: Mapping[str, Any]
    ) -> MessagingService | None:
        """Change a service's settings; None when it was deleted meanwhile."""
        async with self._sessions.begin() as session:
            row = await session.get(MessagingService, service.id, with_for_update=True)
            if row is None:
                return None
            for name, value in settings.items():
                setattr(row, name, value)
            await _inbound_application(session, row)
        self._forget(service)
        return row

    async def delete(self, service: MessagingService) -> None:
        """Delete a service; its numbers stay the account's, and its inbound URL's
        application is retired (the sessions it ran keep pointing at it). Its opt-outs go
        with it, as they would from a number leaving it: no sender is in it any more (an
        opt-out cache that still holds them matches no send)."""
        async with self._sessions.begin() as session:
            application = await session.get(Application, service.application_id or 0)
            if application is not None:
                application.deleted = True
            await session.execute(
                delete(MessagingServiceNumber).where(
                    MessagingServiceNumber.service_id == service.id
                )
            )
            await session.execute(
                delete(OptOut).where(
                    OptOut.account_id == service.account_id, OptOut.sender == service.sid
                )
            )
            await session.execute(delete(MessagingService).where(MessagingService.id == service.id))
        self._forget(service)

    async def add_number(self, service: MessagingService, number: PhoneNumber) -> None:
        """Put one of the account's numbers in the service's pool; raises NumberInService
        or PoolFull."""
        try:
            async with self._sessions.begin() as session:
                members = await self._members(session, service)
                if len(members) >= MAX_POOL:
                    raise PoolFull(f"the pool holds {MAX_POOL} numbers already")
                session.add(
                    MessagingServiceNumber(phone_number_id=number.id, service_id=service.id)
                )
        except IntegrityError as exc:
            raise NumberInService(f"{number.number} is in a Messaging Service already") from exc
        self._forget(service)

    async def remove_number(self, service: MessagingService, number_sid: str) -> bool:
        """Take a number out of the pool; False when it was not in it."""
        async with self._sessions.begin() as session:
            number_id = await session.scalar(
                select(PhoneNumber.id).where(PhoneNumber.sid == number_sid)
            )
            if number_id is None:
                return False
            removed = await session.execute(
                delete(MessagingServiceNumber).where(
                    MessagingServiceNumber.service_id == service.id,
                    MessagingServiceNumber.phone_number_id == number_id,
                )
            )
        self._forget(service)
        return bool(getattr(removed, "rowcount", 0))

    async def numbers(
        self, service: MessagingService
    ) -> list[tuple[PhoneNumber, MessagingServiceNumber]]:
        """The pool's numbers with their membership, in the order they were added."""
        async with self._sessions() as session:
            return await self._members(session, service)

    @staticmethod
    async def _members(
        session: AsyncSession, service: MessagingService
    ) -> list[tuple[PhoneNumber, MessagingServiceNumber]]:
        rows = await session.execute(
            select(PhoneNumber, MessagingServiceNumber)
            .join(MessagingServiceNumber, MessagingServiceNumber.phone_number_id == PhoneNumber.id)
            .where(MessagingServiceNumber.service_id == service.id)
            .order_by(MessagingServiceNumber.date_created, PhoneNumber.id)
        )
        return [(number, member) for number, member in rows]
