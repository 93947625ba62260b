"""Twilio's Messages API (2010-04-01) and its Media subresource, as the `twilio` SDK calls it.

Requests are form-encoded with Twilio's PascalCase names; responses are Twilio's JSON with
RFC 2822 dates; lists page with `PageSize`, `Page` and a `PageToken` (through
`verbal.api.paging`), and the page object has exactly the meta keys the SDK knows plus one
records key (any other key breaks its parser). The paging, the form reading and the account
checks here serve Twilio's other resources too (`verbal.api.twilio_resources`).
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Annotated, Any, NamedTuple
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, Path, Query, Request, Response
from sqlalchemy.orm import InstrumentedAttribute
from starlette.datastructures import FormData

from verbal.api import lookups
from verbal.api.auth import authenticated_account, runtime
from verbal.api.errors import ApiError, not_found, unauthorized
from verbal.api.limits import MAX_ROW_ID
from verbal.api.paging import ListQuery, Window, link, read
from verbal.messaging.errors import MessageNotFound, MessageRefused, Refusal
from verbal.messaging.service import SendRequest
from verbal.runtime import Runtime
from verbal.store.models import Account, Application, Message

API_VERSION = "2010-04-01"
PREFIX = f"/{API_VERSION}/Accounts"
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
FORM = "application/x-www-form-urlencoded"

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
    Refusal.OPTED_OUT: 21610,
    Refusal.SERVICE_NOT_FOUND: 21701,
    Refusal.SERVICE_EMPTY: 21704,
    Refusal.NOT_CANCELABLE: 30409,
    Refusal.IN_PROGRESS: 20009,
}
# Scheduling errors the API itself finds, before the messaging layer sees the message.
SCHEDULE_INCOMPLETE = 35111
SCHEDULE_TYPE_INVALID = 35126
INVALID_APPLICATION_SID = 21218

router = APIRouter(prefix=PREFIX, tags=["Twilio Messages"])

AccountSid = Annotated[str, Path(alias="AccountSid", description="The account's SID (AC…).")]
MessageSid = Annotated[str, Path(alias="MessageSid", description="The message's SID (SM…).")]


async def account_for_path(
    account_sid: AccountSid, account: Annotated[Account, Depends(authenticated_account)]
) -> Account:
    """The authenticated account, which must be the one the path names."""
    if account.sid != account_sid:
        raise unauthorized()
    return account


OwnAccount = Annotated[Account, Depends(account_for_path)]

# PostgreSQL refuses a NUL in any text, as a value to store or to compare with.
NO_NUL = r"^[^\x00]*$"


def well_formed_sid(prefix: str, sid: str) -> bool:
    """Whether `sid` can name a resource at all: a SID that cannot is not looked up."""
    return re.fullmatch(prefix + "[0-9a-fA-F]{32}", sid) is not None


async def account_application(request: Request, account: Account, sid: str) -> Application | None:
    """One of the account's listed applications (never a number's own URLs), else None."""
    if not well_formed_sid("AP", sid):
        return None
    return await lookups.account_application(request, account, sid)


# -- forms ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FormParam:
    name: str
    description: str


async def raw_form(request: Request) -> FormData:
    """The request's form as sent.

    FastAPI's Form parameters read an empty value as a missing one, but Twilio's updates give
    `""` a meaning (clear a URL, detach an application, redact a body), so those routes read
    the form themselves and describe it with `form_body`.
    """
    try:
        return await request.form()
    except Exception:
        # What FastAPI does with a body it cannot parse: the client's error, not ours.
        raise ApiError(400, 20422, "The request body is not a readable form") from None


RawForm = Annotated[FormData, Depends(raw_form)]


def form_body(params: Sequence[FormParam]) -> dict[str, Any]:
    """`openapi_extra` declaring the form a `RawForm` route reads."""
    schema = {
        "type": "object",
        "properties": {p.name: {"type": "string", "description": p.description} for p in params},
    }
    return {"requestBody": {"required": False, "content": {FORM: {"schema": schema}}}}


def form_text(form: FormData, name: str, *, max_length: int) -> str | None:
    """A text parameter as sent (None when absent), within the column's length."""
    value = form.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_length or "\x00" in value:
        raise ApiError(400, 20422, f"Invalid parameter {name}: at most {max_length} characters")
    return value


# -- paging -----------------------------------------------------------------------------------


class Paging(NamedTuple):
    size: int
    number: int
    token: str | None


def paging(
    page_size: Annotated[int, Query(alias="PageSize", ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    page: Annotated[int, Query(alias="Page", ge=0, le=MAX_ROW_ID)] = 0,
    page_token: Annotated[str | None, Query(alias="PageToken")] = None,
) -> Paging:
    return Paging(page_size, page, page_token)


PageParams = Annotated[Paging, Depends(paging)]


class PageSlice(NamedTuple):
    """The records of one page, the PageTokens of the pages around it and the filters its
    page URIs repeat."""

    rows: list[Any]
    paging: Paging
    next_token: str | None
    previous_token: str | None
    filters: Sequence[tuple[str, str]] = ()


def _token_anchor(token: str) -> tuple[bool, int]:
    """(backwards, anchor) of a PageToken: "PA<n>" continues after n, "PB<n>" goes back
    before it. Offsets would skip or repeat records while new ones arrive; anchors do not."""
    kind, anchor = token[:2], token[2:]
    if kind not in ("PA", "PB") or not anchor.isdigit() or int(anchor) > MAX_ROW_ID:
        raise ApiError(400, 20422, f"Invalid PageToken {token!r}")
    return kind == "PB", int(anchor)


async def keyset_page(
    request: Request,
    listing: ListQuery[Any],
    key: InstrumentedAttribute[int],
    paging: Paging,
    *,
    newest_first: bool,
) -> PageSlice:
    """One page of the list's rows in `key` order (descending when `newest_first`)."""
    backwards, anchor = _token_anchor(paging.token) if paging.token else (False, None)
    # From a token, rows are read away from its anchor, then put back in page order; one
    # row more than the page says whether another page follows.
    window = Window(
        key,
        paging.size + 1,
        offset=0 if paging.token else paging.number * paging.size,
        after=anchor,
        descending=newest_first != backwards,
    )
    async with runtime(request).sessions() as session:
        rows = await read(session, listing, window)
    more = len(rows) > paging.size
    rows = rows[: paging.size]
    if backwards:
        rows.reverse()
    has_next = bool(rows) if backwards else more
    has_previous = (more if backwards else paging.number > 0) and bool(rows)
    return PageSlice(
        rows,
        paging,
        f"PA{getattr(rows[-1], key.key)}" if rows and has_next else None,
        f"PB{getattr(rows[0], key.key)}" if has_previous else None,
        listing.params,
    )


def position_page(items: Sequence[Any], paging: Paging) -> PageSlice:
    """One page of a short list held in a row (a message's media), paged like keyset_page
    with the positions as keys."""
    total = len(items)
    if paging.token:
        backwards, anchor = _token_anchor(paging.token)
        if backwards:
            end = min(anchor, total)
            start = max(end - paging.size, 0)
        else:
            start = min(anchor + 1, total)
            end = min(start + paging.size, total)
    else:
        start = min(paging.number * paging.size, total)
        end = min(start + paging.size, total)
    return PageSlice(
        list(items[start:end]),
        paging,
        f"PA{end - 1}" if start < end < total else None,
        f"PB{start}" if 0 < start < end else None,
    )


def page_json(
    base: str, records_key: str, records: list[dict[str, Any]], page: PageSlice
) -> dict[str, Any]:
    """Twilio's page envelope around `records`; page URIs repeat the filters."""
    paging = page.paging

    def page_uri(number: int, token: str | None = None) -> str:
        tokens = [("PageToken", token)] if token else []
        return link(base, [("PageSize", paging.size), ("Page", number), *page.filters, *tokens])

    return {
        records_key: records,
        "first_page_uri": page_uri(0),
        "next_page_uri": page_uri(paging.number + 1, page.next_token) if page.next_token else None,
        "previous_page_uri": (
            page_uri(max(paging.number - 1, 0), page.previous_token)
            if page.previous_token
            else None
        ),
        "page": paging.number,
        "page_size": paging.size,
        "start": paging.number * paging.size,
        "end": paging.number * paging.size + max(len(records) - 1, 0),
        "uri": page_uri(paging.number, paging.token),
    }


# -- rendering --------------------------------------------------------------------------------


def twilio_date(value: datetime | None) -> str | None:
    return None if value is None else format_datetime(value)


def parse_instant(value: str) -> datetime | None:
    """An ISO 8601 date or date-time as an aware UTC datetime, else None.

    A date is its midnight and a time without an offset is UTC, as Twilio reads them; the
    SDK sends `2026-11-22T00:00:00Z` for a date too.
    """
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def message_uri(account_sid: str, sid: str) -> str:
    return f"{PREFIX}/{account_sid}/Messages/{sid}"


def message_json(message: Message, account_sid: str) -> dict[str, Any]:
    uri = message_uri(account_sid, message.sid)
    return {
        "sid": message.sid,
        "account_sid": account_sid,
        "messaging_service_sid": message.messaging_service_sid,
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


def media_sid(message_sid: str, index: int) -> str:
    """A media item's SID: derived from its message and position, so it needs no row."""
    return "ME" + hashlib.sha256(f"{message_sid}/{index}".encode()).hexdigest()[:32]


def media_json(message: Message, account_sid: str, index: int) -> dict[str, Any]:
    sid = media_sid(message.sid, index)
    content_type, _ = mimetypes.guess_type(urlsplit(message.media_urls[index]).path)
    return {
        "account_sid": account_sid,
        "content_type": content_type or "application/octet-stream",
        "date_created": twilio_date(message.date_created),
        "date_updated": twilio_date(message.date_created),
        "parent_sid": message.sid,
        "sid": sid,
        "uri": f"{message_uri(account_sid, message.sid)}/Media/{sid}.json",
    }


def _message_not_found(account: Account, sid: str) -> ApiError:
    return not_found(message_uri(account.sid, sid) + ".json")


def _message_sid(account: Account, sid: str) -> str:
    """`sid` if it can name a message, else the 404 at once."""
    if not well_formed_sid("(SM|MM)", sid):
        raise _message_not_found(account, sid)
    return sid


async def _message(request: Request, account: Account, sid: str) -> Message:
    message = await lookups.account_message(request, account, _message_sid(account, sid))
    if message is None:
        raise _message_not_found(account, sid)
    return message


def _refused(refused: MessageRefused) -> ApiError:
    return ApiError(400, REFUSAL_CODES[refused.reason], refused.detail)


# -- messages ---------------------------------------------------------------------------------


def _send_at(schedule_type: str | None, send_at: str | None) -> datetime | None:
    """When a scheduled message goes out: SendAt with ScheduleType=fixed, or neither."""
    if schedule_type is None and send_at is None:
        return None
    if schedule_type is not None and schedule_type != "fixed":
        raise ApiError(
            400, SCHEDULE_TYPE_INVALID, f"ScheduleType {schedule_type!r} is not supported"
        )
    if schedule_type is None or send_at is None:
        raise ApiError(
            400, SCHEDULE_INCOMPLETE, "A scheduled message needs SendAt and ScheduleType=fixed"
        )
    when = parse_instant(send_at)
    if when is None:
        raise ApiError(
            400, REFUSAL_CODES[Refusal.SEND_AT_OUT_OF_RANGE], f"SendAt {send_at!r} is not ISO 8601"
        )
    return when


@router.post("/{AccountSid}/Messages.json", status_code=201, summary="Send a message")
async def create_message(
    request: Request,
    account: OwnAccount,
    to: Annotated[str | None, Form(alias="To")] = None,
    from_: Annotated[str | None, Form(alias="From")] = None,
    body: Annotated[str | None, Form(alias="Body", pattern=NO_NUL)] = None,
    media_url: Annotated[list[str] | None, Form(alias="MediaUrl")] = None,
    status_callback: Annotated[str | None, Form(alias="StatusCallback")] = None,
    status_callback_method: Annotated[str, Form(alias="StatusCallbackMethod")] = "POST",
    application_sid: Annotated[
        str | None,
        Form(
            alias="ApplicationSid",
            description="Status callbacks go to this application's status callback URL when "
            "StatusCallback is not given.",
        ),
    ] = None,
    validity_period: Annotated[int | None, Form(alias="ValidityPeriod")] = None,
    schedule_type: Annotated[
        str | None, Form(alias="ScheduleType", description="`fixed`, with SendAt.")
    ] = None,
    send_at: Annotated[
        str | None, Form(alias="SendAt", description="ISO 8601; the message is held until then.")
    ] = None,
    messaging_service_sid: Annotated[
        str | None,
        Form(
            alias="MessagingServiceSid",
            pattern=NO_NUL,
            description="Send through this Messaging Service: without From, a number of its "
            "pool sends; without StatusCallback, the service's is used.",
        ),
    ] = None,
) -> dict[str, Any]:
    when = _send_at(schedule_type, send_at)
    method = status_callback_method.upper()
    if application_sid is not None:
        application = await account_application(request, account, application_sid)
        if application is None:
            raise ApiError(
                400,
                INVALID_APPLICATION_SID,
                f"ApplicationSid {application_sid} is not an application of this account",
            )
        if not status_callback:
            # Twilio posts an application's message status callbacks.
            status_callback, method = application.sms_status_callback, "POST"
    send = SendRequest(
        to=to,
        from_=from_,
        body=body,
        media_urls=tuple(media_url or ()),
        status_callback=status_callback,
        status_callback_method=method,
        callback_format="twilio",
        validity_period=validity_period,
        send_at=when,
        messaging_service_sid=messaging_service_sid or None,
    )
    return await accept_message(runtime(request), account, send)


async def accept_message(runtime: Runtime, account: Account, send: SendRequest) -> dict[str, Any]:
    """Send a message and answer as Twilio does; this route and the fast lane
    (`fastlane.py`) both end here. Raises ApiError, or Overloaded."""
    try:
        message = await runtime.messaging.send(account, send)
    except MessageRefused as refused:
        raise _refused(refused) from None
    return message_json(message, account.sid)


@router.get("/{AccountSid}/Messages/{MessageSid}.json", summary="Fetch a message")
async def fetch_message(
    request: Request, account: OwnAccount, message_sid: MessageSid
) -> dict[str, Any]:
    return message_json(await _message(request, account, message_sid), account.sid)


UPDATE_PARAMS = (
    FormParam("Body", 'Only "": redact the body of a message in a final status.'),
    FormParam("Status", "Only `canceled`: cancel a scheduled message."),
)


@router.post(
    "/{AccountSid}/Messages/{MessageSid}.json",
    summary="Cancel a scheduled message, or redact a message's body",
    openapi_extra=form_body(UPDATE_PARAMS),
)
async def update_message(
    request: Request, account: OwnAccount, message_sid: MessageSid, form: RawForm
) -> dict[str, Any]:
    body, status = form.get("Body"), form.get("Status")
    if body is not None and body != "":
        raise ApiError(400, 20422, 'Invalid parameter Body: only "" (redaction) is accepted')
    if status is not None and status != "canceled":
        raise ApiError(400, 20422, "Invalid parameter Status: only 'canceled' is accepted")
    _message_sid(account, message_sid)
    messaging = runtime(request).messaging
    try:
        # Canceling first lets one request cancel and redact: a canceled message is final.
        if status is not None:
            await messaging.cancel(account, message_sid)
        if body is not None:
            await messaging.redact(account, message_sid)
    except MessageNotFound:
        raise _message_not_found(account, message_sid) from None
    except MessageRefused as refused:
        raise _refused(refused) from None
    return message_json(await _message(request, account, message_sid), account.sid)


@router.delete(
    "/{AccountSid}/Messages/{MessageSid}.json", status_code=204, summary="Delete a message"
)
async def delete_message(
    request: Request, account: OwnAccount, message_sid: MessageSid
) -> Response:
    try:
        await runtime(request).messaging.delete(account, _message_sid(account, message_sid))
    except MessageNotFound:
        raise _message_not_found(account, message_sid) from None
    except MessageRefused as refused:
        raise _refused(refused) from None
    return Response(status_code=204)


def _filter_date_sent(
    listing: ListQuery[Message], on: str | None, before: str | None, after: str | None
) -> None:
    """Narrow `listing` by the DateSent filters given. An empty one is not skipped, as other
    filters' are, but refused: it is not a date.

    `DateSent` is the UTC day of its value; `DateSent<` and `DateSent>` (sent by the SDK,
    `<=`/`>=` in Twilio's docs) are on or before and on or after its instant.
    """
    for name, value in (("DateSent", on), ("DateSent<", before), ("DateSent>", after)):
        if value is None:
            continue
        instant = parse_instant(value)
        if instant is None:
            raise ApiError(400, 20422, f"Invalid parameter {name}: {value!r} is not ISO 8601")
        if name == "DateSent":
            day = instant.replace(hour=0, minute=0, second=0, microsecond=0)
            listing.add(
                name, value, Message.date_sent >= day, Message.date_sent < day + timedelta(days=1)
            )
        elif name == "DateSent<":
            listing.add(name, value, Message.date_sent <= instant)
        else:
            listing.add(name, value, Message.date_sent >= instant)


@router.get("/{AccountSid}/Messages.json", summary="List messages, newest first")
async def list_messages(
    request: Request,
    account: OwnAccount,
    paging: PageParams,
    to: Annotated[str | None, Query(alias="To", pattern=NO_NUL)] = None,
    from_: Annotated[str | None, Query(alias="From", pattern=NO_NUL)] = None,
    date_sent: Annotated[
        str | None, Query(alias="DateSent", description="Sent on this UTC day (ISO 8601).")
    ] = None,
    date_sent_before: Annotated[
        str | None, Query(alias="DateSent<", description="Sent at or before (ISO 8601).")
    ] = None,
    date_sent_after: Annotated[
        str | None, Query(alias="DateSent>", description="Sent at or after (ISO 8601).")
    ] = None,
) -> dict[str, Any]:
    listing = ListQuery(lookups.messages(account))
    listing.filter("To", to, lambda value: Message.to_number == lookups.as_stored(value))
    listing.filter("From", from_, lambda value: Message.from_number == lookups.as_stored(value))
    _filter_date_sent(listing, date_sent, date_sent_before, date_sent_after)
    page = await keyset_page(request, listing, Message.id, paging, newest_first=True)
    return page_json(
        f"{PREFIX}/{account.sid}/Messages.json",
        "messages",
        [message_json(m, account.sid) for m in page.rows],
        page,
    )


# -- media ------------------------------------------------------------------------------------


@router.get(
    "/{AccountSid}/Messages/{MessageSid}/Media.json",
    summary="List a message's media",
    tags=["Twilio Media"],
)
async def list_media(
    request: Request, account: OwnAccount, message_sid: MessageSid, paging: PageParams
) -> dict[str, Any]:
    message = await _message(request, account, message_sid)
    page = position_page(range(len(message.media_urls)), paging)
    return page_json(
        f"{message_uri(account.sid, message.sid)}/Media.json",
        "media_list",
        [media_json(message, account.sid, index) for index in page.rows],
        page,
    )


@router.get(
    "/{AccountSid}/Messages/{MessageSid}/Media/{MediaSid}.json",
    summary="Fetch one media item of a message",
    tags=["Twilio Media"],
)
async def fetch_media(
    request: Request,
    account: OwnAccount,
    message_sid: MessageSid,
    sid: Annotated[str, Path(alias="MediaSid", description="The media item's SID (ME…).")],
) -> dict[str, Any]:
    message = await _message(request, account, message_sid)
    for index in range(len(message.media_urls)):
        if media_sid(message.sid, index) == sid:
            return media_json(message, account.sid, index)
    raise not_found(f"{message_uri(account.sid, message.sid)}/Media/{sid}.json")
