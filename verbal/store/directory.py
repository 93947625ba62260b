"""Accounts, numbers and applications: creation, configuration and look-ups shared by every
API and the CLI, so each platform's resource is one view of the same rows."""

from __future__ import annotations

import enum
import hmac
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from verbal import ids
from verbal.store.cache import TtlCache
from verbal.store.models import Account, Application, MessagingServiceNumber, PhoneNumber


class AlreadyExists(Exception):
    pass


class Keep(enum.Enum):
    """Marks an argument left out: keep the current value (None would mean "clear it")."""

    KEEP = 0


KEEP = Keep.KEEP

# The application settings an API may change; everything else is Verbal's to manage.
APPLICATION_SETTINGS = frozenset(
    {
        "friendly_name",
        "dialect",
        "sms_url",
        "sms_method",
        "sms_fallback_url",
        "sms_fallback_method",
        "sms_status_callback",
        "voice_url",
        "voice_method",
        "voice_fallback_url",
        "voice_fallback_method",
        "status_callback",
        "status_callback_method",
        "extra",
    }
)


# The account settings an API or the console may change: the replies to opt-out keywords.
ACCOUNT_SETTINGS = frozenset({"opt_out_reply", "opt_in_reply", "help_reply"})


def _check_settings(settings: Mapping[str, Any]) -> None:
    unknown = set(settings) - APPLICATION_SETTINGS
    if unknown:
        raise ValueError(f"not application settings: {', '.join(sorted(unknown))}")


# How long a process trusts what it cached of an account or a number. Changes made through
# this process clear its cache at once; this bounds how long one made elsewhere (the CLI, or
# another node on PostgreSQL) goes unseen.
CACHE_TTL_SECONDS = 5.0


class Directory:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        # Read on every request and every message: accounts by id and by login, numbers'
        # owners by number.
        self._accounts: TtlCache[Account] = TtlCache(CACHE_TTL_SECONDS)
        self._owners: TtlCache[int] = TtlCache(CACHE_TTL_SECONDS)
        self._numbers_changed: list[Callable[[], None]] = []

    def when_numbers_change(self, forget: Callable[[], None]) -> None:
        """Have `forget` called whenever a number is added, moved or released (another
        cache that holds numbers: Messaging Services' pools)."""
        self._numbers_changed.append(forget)

    def forget_numbers(self) -> None:
        """Drop cached number owners (a number was added, moved or released)."""
        self._owners.clear()
        for forget in self._numbers_changed:
            forget()

    async def account_by_id(
        self, account_id: int, session: AsyncSession | None = None
    ) -> Account | None:
        """An account by its row id (cached); `session` as for `number_owner`."""

        async def load() -> Account | None:
            if session is not None:
                return await session.get(Account, account_id)
            async with self._sessions() as own:
                return await own.get(Account, account_id)

        return await self._accounts.get(account_id, load, shared=session is None)

    async def number_owner(self, number: str, session: AsyncSession | None = None) -> int | None:
        """The id of the account holding `number`, if any (cached). A caller inside a
        transaction passes its session, which reads on a miss (on SQLite another session
        would wait for that transaction to end)."""

        async def load() -> int | None:
            query = select(PhoneNumber.account_id).where(PhoneNumber.number == number)
            if session is not None:
                return await session.scalar(query)
            async with self._sessions() as own:
                return await own.scalar(query)

        return await self._owners.get(number, load, shared=session is None)

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

    async def update_account(self, account: Account, settings: Mapping[str, Any]) -> Account:
        """Change an account's ACCOUNT_SETTINGS; returns the updated row. This process's
        cache forgets the account at once (others within `CACHE_TTL_SECONDS`)."""
        unknown = set(settings) - ACCOUNT_SETTINGS
        if unknown:
            raise ValueError(f"not account settings: {', '.join(sorted(unknown))}")
        async with self._sessions.begin() as session:
            row = await session.get(Account, account.id, with_for_update=True)
            if row is None:
                raise LookupError(f"account {account.sid} does not exist")
            for name, value in settings.items():
                setattr(row, name, value)
        for key in (row.id, ("login", row.sid), ("login", row.plivo_auth_id)):
            self._accounts.forget(key)
        return row

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

        async def load() -> Account | None:
            async with self._sessions() as session:
                return await session.scalar(select(Account).where(column == username))

        account = await self._accounts.get(("login", username), load)
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
        self.forget_numbers()
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
        self, account: Account, friendly_name: str, **settings: Any
    ) -> Application:
        """Create an application; `settings` are APPLICATION_SETTINGS columns."""
        _check_settings(settings)
        async with self._sessions.begin() as session:
            application = self.new_application(account.id, friendly_name, settings)
            session.add(application)
        return application

    @staticmethod
    def new_application(
        account_id: int,
        friendly_name: str,
        settings: Mapping[str, Any],
        *,
        number_owned: bool = False,
    ) -> Application:
        fields: dict[str, Any] = {
            "dialect": "auto",
            "sms_method": "POST",
            "sms_fallback_method": "POST",
            "voice_method": "POST",
            "voice_fallback_method": "POST",
            "status_callback_method": "POST",
            "extra": {},
            **settings,
        }
        return Application(
            sid=ids.sid("AP"),
            account_id=account_id,
            friendly_name=friendly_name,
            number_owned=number_owned,
            deleted=False,
            # Tropo tokens are long random strings handed to whoever may launch the app.
            messaging_token=ids.tropo_token(),
            voice_token=ids.tropo_token(),
            **fields,
        )

    async def update_application(
        self, application: Application, settings: Mapping[str, Any]
    ) -> Application:
        """Change an application's settings; returns the updated row."""
        _check_settings(settings)
        async with self._sessions.begin() as session:
            row = await session.get(Application, application.id, with_for_update=True)
            if row is None or row.deleted:
                raise LookupError(f"application {application.sid} does not exist")
            for name, value in settings.items():
                setattr(row, name, value)
            return row

    async def delete_application(self, application: Application) -> None:
        """Retire an application: numbers routed to it are detached, its tokens stop working.

        The row stays (marked deleted) because the sessions it ran keep pointing at it.
        """
        async with self._sessions.begin() as session:
            row = await session.get(Application, application.id, with_for_update=True)
            if row is None:
                return
            row.deleted = True
            row.messaging_token = None
            row.voice_token = None
            for column in (PhoneNumber.application_id, PhoneNumber.voice_application_id):
                await session.execute(
                    update(PhoneNumber).where(column == row.id).values({column.key: None})
                )

    async def applications(self, account: Account | None = None) -> list[Application]:
        """The listed applications: not deleted, and not holding a number's own URLs."""
        query = (
            select(Application)
            .where(Application.deleted.is_(False), Application.number_owned.is_(False))
            .order_by(Application.id)
        )
        if account is not None:
            query = query.where(Application.account_id == account.id)
        async with self._sessions() as session:
            return list(await session.scalars(query))

    async def application(self, sid: str) -> Application | None:
        async with self._sessions() as session:
            return await session.scalar(
                select(Application).where(Application.sid == sid, Application.deleted.is_(False))
            )

    async def application_by_token(self, token: str) -> Application | None:
        """The app a Tropo token launches (its messaging or its voice token)."""
        if not token:
            return None
        async with self._sessions() as session:
            return await session.scalar(
                select(Application).where(
                    (Application.messaging_token == token) | (Application.voice_token == token),
                    Application.deleted.is_(False),
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

    async def number_by_sid(self, account: Account, sid: str) -> PhoneNumber | None:
        async with self._sessions() as session:
            return await session.scalar(
                select(PhoneNumber).where(
                    PhoneNumber.sid == sid, PhoneNumber.account_id == account.id
                )
            )

    async def configure_number(
        self,
        number: PhoneNumber,
        *,
        friendly_name: str | Keep = KEEP,
        application: Application | Keep | None = KEEP,
        voice_application: Application | Keep | None = KEEP,
        own_settings: Mapping[str, Any] | None = None,
    ) -> PhoneNumber:
        """Change what a number is called and where its messages and calls go.

        `application`/`voice_application` attach a shared application (None detaches);
        `own_settings` change the URLs the number answers on by itself (APPLICATION_SETTINGS
        of its own application, created on first use).
        """
        if own_settings:
            _check_settings(own_settings)
        for target in (application, voice_application):
            if isinstance(target, Application) and target.account_id != number.account_id:
                raise LookupError(f"application {target.sid} belongs to another account")
        async with self._sessions.begin() as session:
            row = await session.get(PhoneNumber, number.id, with_for_update=True)
            if row is None:
                raise LookupError(f"number {number.number} does not exist")
            if friendly_name is not KEEP:
                row.friendly_name = friendly_name
            if application is not KEEP:
                row.application_id = application.id if application else None
            if voice_application is not KEEP:
                row.voice_application_id = voice_application.id if voice_application else None
            if own_settings:
                own = await session.get(Application, row.own_application_id or 0)
                if own is None:
                    own = self.new_application(
                        row.account_id, f"{row.number} own URLs", own_settings, number_owned=True
                    )
                    session.add(own)
                    await session.flush()
                    row.own_application_id = own.id
                else:
                    for name, value in own_settings.items():
                        setattr(own, name, value)
            return row

    async def own_application(self, number: PhoneNumber) -> Application | None:
        """The application holding the number's own URLs, if it has any."""
        if number.own_application_id is None:
            return None
        async with self._sessions() as session:
            return await session.get(Application, number.own_application_id)

    async def release_number(self, number: PhoneNumber) -> None:
        """Give a number up: it stops routing, and its own URLs go with it."""
        async with self._sessions.begin() as session:
            row = await session.get(PhoneNumber, number.id, with_for_update=True)
            if row is None:
                return
            if row.own_application_id is not None:
                own = await session.get(Application, row.own_application_id)
                if own is not None:
                    own.deleted = True
            # It leaves its Messaging Service's pool.
            await session.execute(
                delete(MessagingServiceNumber).where(
                    MessagingServiceNumber.phone_number_id == row.id
                )
            )
            await session.delete(row)
        self.forget_numbers()
