"""What an account's REST requests may see of its resources, as every dialect reads them.

Each query here is scoped to one account: a resource of another account is not found, as
if it did not exist, and the dialects answer it with their own 404. Lists start from
`messages`, `numbers` and `applications` and filter and page them (`verbal.api.paging`).
"""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import Request
from sqlalchemy import Select, select

from verbal.api.auth import runtime
from verbal.messaging.addresses import InvalidNumber, to_e164
from verbal.store.models import Account, Application, Message, PhoneNumber


def messages(account: Account) -> Select[Message]:
    return select(Message).where(Message.account_id == account.id)


def numbers(account: Account) -> Select[PhoneNumber]:
    return select(PhoneNumber).where(PhoneNumber.account_id == account.id)


def applications(account: Account) -> Select[Application]:
    """The account's listed applications: not deleted, and not holding a number's own URLs."""
    return select(Application).where(
        Application.account_id == account.id,
        Application.deleted.is_(False),
        Application.number_owned.is_(False),
    )


async def account_message(request: Request, account: Account, sid: str) -> Message | None:
    """The account's message `sid`, if there is one."""
    async with runtime(request).sessions() as session:
        return await session.scalar(messages(account).where(Message.sid == sid))


async def account_application(request: Request, account: Account, sid: str) -> Application | None:
    """One of the account's listed applications, if it exists."""
    application = await runtime(request).directory.application(sid)
    if application is None or application.account_id != account.id or application.number_owned:
        return None
    return application


async def applications_by_id(request: Request, ids: Iterable[int | None]) -> dict[int, Application]:
    """The applications that `ids` name (None names none), by id: those a page of numbers
    refers to, read at once."""
    wanted = {id_ for id_ in ids if id_ is not None}
    if not wanted:
        return {}
    async with runtime(request).sessions() as session:
        rows = await session.scalars(select(Application).where(Application.id.in_(wanted)))
        return {row.id: row for row in rows}


def as_stored(number: str) -> str:
    """A number as a list filter compares it with stored ones: E.164 however it is written,
    as long as it parses (else as given)."""
    try:
        return to_e164(number)
    except InvalidNumber:
        return number
