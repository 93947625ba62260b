"""Accounts and the numbers they own: creation and look-ups shared by the API and the CLI."""

from __future__ import annotations

import hmac

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from verbal import ids
from verbal.store.models import Account, Application, PhoneNumber


class AlreadyExists(Exception):
    pass


class Directory:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def create_account(
        self, friendly_name: str = "Verbal account", *, sid: str = "", auth_token: str = ""
    ) -> Account:
        account = Account(
            sid=sid or ids.sid("AC"),
            auth_token=auth_token or ids.auth_token(),
            plivo_auth_id=ids.plivo_auth_id(),
            friendly_name=friendly_name,
            status="active",
        )
        try:
            async with self._sessions.begin() as session:
                session.add(account)
        except IntegrityError as exc:
            raise AlreadyExists(f"account {account.sid} already exists") from exc
        return account

    async def count_accounts(self) -> int:
        async with self._sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(Account)) or 0)

    async def accounts(self) -> list[Account]:
        async with self._sessions() as session:
            return list(await session.scalars(select(Account).order_by(Account.id)))

    async def account(self, sid: str) -> Account | None:
        async with self._sessions() as session:
            return await session.scalar(select(Account).where(Account.sid == sid))

    async def authenticate(self, username: str, password: str) -> Account | None:
        """The active account whose SID (or Plivo auth id) and token match, else None."""
        column = Account.plivo_auth_id if username.startswith(("MA", "SA")) else Account.sid
        async with self._sessions() as session:
            account = await session.scalar(select(Account).where(column == username))
        if account is None or account.status != "active":
            return None
        if not hmac.compare_digest(account.auth_token.encode(), password.encode()):
            return None
        return account

    async def add_number(
        self, account: Account, number: str, friendly_name: str = ""
    ) -> PhoneNumber:
        row = PhoneNumber(
            sid=ids.sid("PN"),
            account_id=account.id,
            number=number,
            friendly_name=friendly_name or number,
        )
        try:
            async with self._sessions.begin() as session:
                session.add(row)
        except IntegrityError as exc:
            raise AlreadyExists(f"{number} already belongs to an account") from exc
        return row

    async def number(self, number: str) -> PhoneNumber | None:
        async with self._sessions() as session:
            return await session.scalar(select(PhoneNumber).where(PhoneNumber.number == number))

    async def numbers(self, account: Account | None = None) -> list[PhoneNumber]:
        query = select(PhoneNumber).order_by(PhoneNumber.id)
        if account is not None:
            query = query.where(PhoneNumber.account_id == account.id)
        async with self._sessions() as session:
            return list(await session.scalars(query))

    async def create_application(
        self,
        account: Account,
        friendly_name: str,
        *,
        dialect: str = "auto",
        sms_url: str | None = None,
        sms_method: str = "POST",
        sms_fallback_url: str | None = None,
        sms_fallback_method: str = "POST",
        voice_url: str | None = None,
        voice_method: str = "POST",
    ) -> Application:
        application = Application(
            sid=ids.sid("AP"),
            account_id=account.id,
            friendly_name=friendly_name,
            dialect=dialect,
            sms_url=sms_url,
            sms_method=sms_method,
            sms_fallback_url=sms_fallback_url,
            sms_fallback_method=sms_fallback_method,
            voice_url=voice_url,
            voice_method=voice_method,
            # Tropo tokens are long random strings handed to whoever may launch the app.
            messaging_token=ids.tropo_token(),
            voice_token=ids.tropo_token(),
        )
        async with self._sessions.begin() as session:
            session.add(application)
        return application

    async def applications(self, account: Account | None = None) -> list[Application]:
        query = select(Application).order_by(Application.id)
        if account is not None:
            query = query.where(Application.account_id == account.id)
        async with self._sessions() as session:
            return list(await session.scalars(query))

    async def application(self, sid: str) -> Application | None:
        async with self._sessions() as session:
            return await session.scalar(select(Application).where(Application.sid == sid))

    async def application_by_token(self, token: str) -> Application | None:
        """The app a Tropo token launches (its messaging or its voice token)."""
        if not token:
            return None
        async with self._sessions() as session:
            return await session.scalar(
                select(Application).where(
                    (Application.messaging_token == token) | (Application.voice_token == token)
                )
            )

    async def attach(self, number: str, application: Application) -> PhoneNumber:
        """Route a number's inbound messages to `application` (same account only)."""
        async with self._sessions.begin() as session:
            row = await session.scalar(select(PhoneNumber).where(PhoneNumber.number == number))
            if row is None or row.account_id != application.account_id:
                raise LookupError(f"{number} is not a number of the application's account")
            row.application_id = application.id
            return row
