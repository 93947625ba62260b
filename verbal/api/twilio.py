"""Twilio's Messages API (2010-04-01): create, fetch and list, as the `twilio` SDK calls it.

Requests are form-encoded with Twilio's PascalCase names; responses are Twilio's JSON with
RFC 2822 dates; lists page with `PageSize`, `Page` and a `PageToken`, and the page object has
exactly the meta keys the SDK knows plus one records key (any other key breaks its parser).
"""

from __future__ import annotations

from email.utils import format_datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from sqlalchemy import select

from verbal.api.auth import authenticated_account, runtime
from verbal.api.errors import ApiError, not_found, unauthorized
from verbal.api.limits import MAX_ROW_ID
from verbal.messaging.addresses import InvalidNumber, to_e164
from verbal.messaging.errors import MessageRefused, Refusal
from verbal.messaging.service import SendRequest
from verbal.store.models import Account, Message

API_VERSION = "2010-04-01"
PREFIX = f"/{API_VERSION}/Accounts"
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000

# Refusals in Twilio's numbers (https://www.twilio.com/docs/api/errors).
REFUSAL_CODES: dict[Refusal, int] = {
    Refusal.TO_MISSING: 21604,
    Refusal.FROM_MISSING: 21603,
    Refusal.BODY_MISSING: 21602,
    Refusal.TO_INVALID: 21211,
    Refusal.FROM_INVALID: 21212,
    Refusal.FROM_NOT_OWNED: 21606,
    Refusal.BODY_TOO_LONG: 21617,
    Refusal.TOO_MANY_MEDIA: 21623,
    Refusal.MEDIA_URL_INVALID: 21620,
    Refusal.CALLBACK_URL_INVALID: 21609,
    Refusal.CALLBACK_METHOD_INVALID: 20422,
    Refusal.UNREACHABLE: 21612,
    Refusal.VALIDITY_INVALID: 20422,
    Refusal.SEND_AT_OUT_OF_RANGE: 35114,
    Refusal.NOT_CANCELABLE: 30409,
    Refusal.IN_PROGRESS: 20009,
}

router = APIRouter(prefix=PREFIX, tags=["Twilio Messages"])

AccountSid = Annotated[str, Path(alias="AccountSid", description="The account's SID (AC…).")]


async def account_for_path(
    account_sid: AccountSid, account: Annotated[Account, Depends(authenticated_account)]
) -> Account:
    """The authenticated account, which must be the one the path names."""
    if account.sid != account_sid:
        raise unauthorized()
    return account


OwnAccount = Annotated[Account, Depends(account_for_path)]


def _as_stored(number: str) -> str:
    """Filter values match however the number is written, as long as it parses."""
    try:
        return to_e164(number)
    except InvalidNumber:
        return number


def twilio_date(value: Any) -> str | None:
    return None if value is None else format_datetime(value)


def message_uri(account_sid: str, sid: str) -> str:
    return f"{PREFIX}/{account_sid}/Messages/{sid}"


def message_json(message: Message, account_sid: str) -> dict[str, Any]:
    uri = message_uri(account_sid, message.sid)
    return {
        "sid": message.sid,
        "account_sid": account_sid,
        "messaging_service_sid": None,
        "from": message.from_number,
        "to": message.to_number,
        "body": message.body,
        "status": message.status,
        "direction": message.direction,
        "num_segments": str(message.num_segments),
        "num_media": str(len(message.media_urls)),
        "error_code": message.error_code,
        "error_message": message.error_message,
        "price": None,
        "price_unit": "USD",
        "api_version": API_VERSION,
        "date_created": twilio_date(message.date_created),
        "date_updated": twilio_date(message.date_updated),
        "date_sent": twilio_date(message.date_sent),
        "uri": uri + ".json",
        "subresource_uris": {"media": uri + "/Media.json", "feedback": uri + "/Feedback.json"},
    }


@router.post(
    "/{AccountSid}/Messages.json",
    status_code=201,
    summary="Send a message",
)
async def create_message(
    request: Request,
    account: OwnAccount,
    to: Annotated[str | None, Form(alias="To")] = None,
    from_: Annotated[str | None, Form(alias="From")] = None,
    body: Annotated[str | None, Form(alias="Body")] = None,
    media_url: Annotated[list[str] | None, Form(alias="MediaUrl")] = None,
    status_callback: Annotated[str | None, Form(alias="StatusCallback")] = None,
    status_callback_method: Annotated[str, Form(alias="StatusCallbackMethod")] = "POST",
    validity_period: Annotated[int | None, Form(alias="ValidityPeriod")] = None,
) -> dict[str, Any]:
    send = SendRequest(
        to=to,
        from_=from_,
        body=body,
        media_urls=tuple(media_url or ()),
        status_callback=status_callback,
        status_callback_method=status_callback_method.upper(),
        callback_format="twilio",
        validity_period=validity_period,
    )
    try:
        message = await runtime(request).messaging.send(account, send)
    except MessageRefused as refused:
        raise ApiError(400, REFUSAL_CODES[refused.reason], refused.detail) from None
    return message_json(message, account.sid)


@router.get("/{AccountSid}/Messages/{MessageSid}.json", summary="Fetch a message")
async def fetch_message(
    request: Request,
    account: OwnAccount,
    message_sid: Annotated[str, Path(alias="MessageSid")],
) -> dict[str, Any]:
    async with runtime(request).sessions() as session:
        message = await session.scalar(
            select(Message).where(Message.sid == message_sid, Message.account_id == account.id)
        )
    if message is None:
        raise not_found(message_uri(account.sid, message_sid) + ".json")
    return message_json(message, account.sid)


@router.get("/{AccountSid}/Messages.json", summary="List messages, newest first")
async def list_messages(
    request: Request,
    account: OwnAccount,
    to: Annotated[str | None, Query(alias="To")] = None,
    from_: Annotated[str | None, Query(alias="From")] = None,
    page_size: Annotated[int, Query(alias="PageSize", ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    page: Annotated[int, Query(alias="Page", ge=0, le=MAX_ROW_ID)] = 0,
    page_token: Annotated[str | None, Query(alias="PageToken")] = None,
) -> dict[str, Any]:
    # Keyset paging: "PA<id>" continues after the row with that id, "PB<id>" goes back
    # before it. Offsets would skip or repeat rows while new messages arrive.
    query = select(Message).where(Message.account_id == account.id)
    filters = [(name, value) for name, value in (("To", to), ("From", from_)) if value]
    for name, value in filters:
        column = Message.to_number if name == "To" else Message.from_number
        query = query.where(column == _as_stored(value))
    backwards = False
    if page_token:
        kind, anchor = page_token[:2], page_token[2:]
        if kind not in ("PA", "PB") or not anchor.isdigit() or int(anchor) > MAX_ROW_ID:
            raise ApiError(400, 20422, f"Invalid PageToken {page_token!r}")
        backwards = kind == "PB"
        query = query.where(Message.id > int(anchor) if backwards else Message.id < int(anchor))
    elif page:
        query = query.offset(page * page_size)
    order = Message.id.asc() if backwards else Message.id.desc()
    async with runtime(request).sessions() as session:
        rows = list(await session.scalars(query.order_by(order).limit(page_size + 1)))
    more = len(rows) > page_size
    rows = rows[:page_size]
    if backwards:
        rows.reverse()

    base = f"{PREFIX}/{account.sid}/Messages.json"

    def page_uri(number: int, token: str | None = None) -> str:
        query = [("PageSize", page_size), ("Page", number), *filters]
        return f"{base}?{urlencode(query + ([('PageToken', token)] if token else []))}"

    has_next = bool(rows) if backwards else more
    has_previous = (more if backwards else page > 0) and bool(rows)
    return {
        "messages": [message_json(m, account.sid) for m in rows],
        "first_page_uri": page_uri(0),
        "next_page_uri": page_uri(page + 1, f"PA{rows[-1].id}") if rows and has_next else None,
        "previous_page_uri": (
            page_uri(max(page - 1, 0), f"PB{rows[0].id}") if has_previous else None
        ),
        "page": page,
        "page_size": page_size,
        "start": page * page_size,
        "end": page * page_size + max(len(rows) - 1, 0),
        "uri": page_uri(page, page_token),
    }
