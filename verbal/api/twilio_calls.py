"""Twilio's Calls API (2010-04-01), as the `twilio` SDK calls it: place a call, fetch it, list
calls, hang up or redirect a live call.

A call runs where it is placed (`verbal/engine/calls.py`); its row (`calls`) is written
through the journal at each change. Fetching a call this process runs reads it from memory,
which is never behind; other calls, and lists, read the rows.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from sqlalchemy import select

from verbal.api import lookups
from verbal.api.auth import runtime
from verbal.api.errors import ApiError
from verbal.api.paging import ListQuery
from verbal.api.twilio import (
    API_VERSION,
    NO_NUL,
    PREFIX,
    FormParam,
    OwnAccount,
    PageParams,
    RawForm,
    account_application,
    form_body,
    form_text,
    keyset_page,
    page_json,
    twilio_date,
    well_formed_sid,
)
from verbal.dialects.verbs import Target
from verbal.engine.calls import MAX_TIMEOUT_SECONDS, STATUS_EVENTS, CallRefused, CallRequest
from verbal.store.models import Account, Call
from verbal.voice.records import CallRecord

router = APIRouter(prefix=PREFIX, tags=["Twilio Calls"])

CallSid = Annotated[str, Path(alias="CallSid", description="The call's SID (CA…).")]
METHODS = ("GET", "POST")
MAX_URL = 2048
MAX_TWIML = 4000  # Twilio's limit for the Twiml parameter
URL_REQUIRED = 21205
INVALID_URL = 21205
NOT_IN_PROGRESS = 21220
INVALID_TIMEOUT = 21216
CALL_NOT_FOUND = 20404

_CREATE_FORM = [
    FormParam("To", "The number to call."),
    FormParam("From", "One of the account's numbers."),
    FormParam("Url", "The TwiML to run once the call is answered."),
    FormParam("Twiml", "TwiML to run instead of fetching Url."),
    FormParam("ApplicationSid", "Run this application's voice URL instead of Url."),
    FormParam("Method", "GET or POST for Url (POST)."),
    FormParam("FallbackUrl", "Fetched when Url fails."),
    FormParam("FallbackMethod", "GET or POST (POST)."),
    FormParam("StatusCallback", "Where call progress events go."),
    FormParam("StatusCallbackMethod", "GET or POST (POST)."),
    FormParam("StatusCallbackEvent", "initiated, ringing, answered, completed (repeatable)."),
    FormParam("Timeout", "Seconds to ring before no-answer (60, at most 600)."),
]
_UPDATE_FORM = [
    FormParam("Status", "completed (hang up) or canceled (hang up if not answered yet)."),
    FormParam("Url", "Run this TwiML on the call now."),
    FormParam("Method", "GET or POST for Url (POST)."),
    FormParam("Twiml", "Run this TwiML on the call now."),
]


def call_uri(account_sid: str, sid: str) -> str:
    return f"{PREFIX}/{account_sid}/Calls/{sid}"


def call_json(call: CallRecord | Call, account_sid: str) -> dict[str, Any]:
    status = call.status if isinstance(call.status, str) else call.status.value
    duration = call.duration
    uri = call_uri(account_sid, call.sid)
    return {
        "sid": call.sid,
        "account_sid": account_sid,
        "parent_call_sid": call.parent_sid,
        "to": call.to_number,
        "to_formatted": call.to_number,
        "from": call.from_number,
        "from_formatted": call.from_number,
        "phone_number_sid": None,
        "status": status,
        "direction": call.direction,
        "start_time": twilio_date(call.answered_at),
        "end_time": twilio_date(call.ended_at),
        "duration": None if duration is None else str(duration),
        "price": None,
        "price_unit": "USD",
        "answered_by": None,
        "forwarded_from": None,
        "caller_name": None,
        "group_sid": None,
        "queue_time": "0",
        "stir_verstat": None,
        "trunk_sid": None,
        "api_version": API_VERSION,
        "date_created": twilio_date(call.date_created),
        "date_updated": twilio_date(call.date_updated),
        "uri": uri + ".json",
        "subresource_uris": {
            "notifications": uri + "/Notifications.json",
            "recordings": uri + "/Recordings.json",
        },
    }


def _method(form: RawForm, name: str) -> str:
    value = (form_text(form, name, max_length=8) or "POST").upper()
    if value not in METHODS:
        raise ApiError(400, 20422, f"Invalid parameter {name}: GET or POST")
    return value


def _url(form: RawForm, name: str) -> str | None:
    value = form_text(form, name, max_length=MAX_URL)
    if value and not re.match(r"^https?://", value, re.IGNORECASE):
        raise ApiError(400, INVALID_URL, f"{name} must be an http(s) URL, not {value!r}")
    return value or None


def _events(form: RawForm) -> tuple[str, ...]:
    """StatusCallbackEvent, repeated (the SDK) or space-separated (some helpers)."""
    events: list[str] = []
    for value in form.getlist("StatusCallbackEvent"):
        for event in str(value).replace(",", " ").split():
            if event not in STATUS_EVENTS:
                raise ApiError(
                    400, 20422, f"Invalid StatusCallbackEvent {event!r}: {', '.join(STATUS_EVENTS)}"
                )
            events.append(event)
    # Twilio sends `completed` alone when no event is named.
    return tuple(dict.fromkeys(events)) or ("completed",)


def _timeout(form: RawForm) -> int:
    raw = form_text(form, "Timeout", max_length=8)
    if raw is None or raw == "":
        return 60
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_TIMEOUT_SECONDS:
        raise ApiError(400, INVALID_TIMEOUT, f"Timeout must be 1 to {MAX_TIMEOUT_SECONDS} seconds")
    return int(raw)


@router.post(
    "/{AccountSid}/Calls.json",
    status_code=201,
    summary="Place a call",
    openapi_extra=form_body(_CREATE_FORM),
)
async def create_call(request: Request, account: OwnAccount, form: RawForm) -> dict[str, Any]:
    to = form_text(form, "To", max_length=64)
    from_ = form_text(form, "From", max_length=64)
    if not to:
        raise ApiError(400, 21201, "No 'To' number is specified")
    if not from_:
        raise ApiError(400, 21213, "No 'From' number is specified")
    url = _url(form, "Url")
    twiml = form_text(form, "Twiml", max_length=MAX_TWIML)
    method = _method(form, "Method")
    application_sid = form_text(form, "ApplicationSid", max_length=34)
    dialect = "rcml"
    if application_sid:
        application = await account_application(request, account, application_sid)
        if application is None:
            raise ApiError(400, 21218, f"ApplicationSid {application_sid} is not valid")
        url, method, dialect = application.voice_url, application.voice_method, application.dialect
    if not url and not twiml:
        raise ApiError(400, URL_REQUIRED, "Url parameter is required (or Twiml)")
    call = CallRequest(
        to=to,
        from_=from_,
        url=url,
        method=method,
        fallback_url=_url(form, "FallbackUrl"),
        fallback_method=_method(form, "FallbackMethod"),
        document=twiml.encode() if twiml else None,
        status_callback=_url(form, "StatusCallback"),
        status_callback_method=_method(form, "StatusCallbackMethod"),
        status_callback_events=_events(form),
        timeout_seconds=_timeout(form),
        dialect=dialect,
    )
    try:
        record = await runtime(request).calls.place(account, call)
    except CallRefused as refused:
        raise ApiError(400, refused.code, refused.message) from None
    return call_json(record, account.sid)


async def _call(request: Request, account: Account, sid: str) -> CallRecord | Call:
    live = runtime(request).calls.live(sid)
    if live is not None and live.account_id == account.id:
        return live
    if well_formed_sid("CA", sid):
        async with runtime(request).sessions() as session:
            row = await session.scalar(
                select(Call).where(Call.sid == sid, Call.account_id == account.id)
            )
        if row is not None:
            return row
    raise ApiError(404, CALL_NOT_FOUND, f"The requested resource Call {sid} was not found")


@router.get("/{AccountSid}/Calls/{CallSid}.json", summary="Fetch a call")
async def fetch_call(request: Request, account: OwnAccount, call_sid: CallSid) -> dict[str, Any]:
    return call_json(await _call(request, account, call_sid), account.sid)


@router.post(
    "/{AccountSid}/Calls/{CallSid}.json",
    summary="Hang up or redirect a call",
    openapi_extra=form_body(_UPDATE_FORM),
)
async def update_call(
    request: Request, account: OwnAccount, call_sid: CallSid, form: RawForm
) -> dict[str, Any]:
    # The record of a live call changes in place: rendered after the change, it shows it.
    call = await _call(request, account, call_sid)
    calls = runtime(request).calls
    status = form_text(form, "Status", max_length=16)
    url = _url(form, "Url")
    twiml = form_text(form, "Twiml", max_length=MAX_TWIML)
    if status is not None:
        if status not in ("completed", "canceled"):
            raise ApiError(400, 20422, "Status must be completed or canceled")
        # A call that is over, or already answered for `canceled`, stays as it is.
        await calls.hang_up(call.sid, status)
    elif url or twiml:
        target = Target(url, _method(form, "Method")) if url else None
        if not await calls.redirect(call.sid, target, twiml.encode() if twiml else None):
            raise ApiError(400, NOT_IN_PROGRESS, "Call is not in-progress. Cannot redirect.")
    return call_json(call, account.sid)


@router.get("/{AccountSid}/Calls.json", summary="List calls, newest first")
async def list_calls(
    request: Request,
    account: OwnAccount,
    paging: PageParams,
    to: Annotated[str | None, Query(alias="To", pattern=NO_NUL)] = None,
    from_: Annotated[str | None, Query(alias="From", pattern=NO_NUL)] = None,
    status: Annotated[str | None, Query(alias="Status", pattern=NO_NUL)] = None,
    parent_call_sid: Annotated[str | None, Query(alias="ParentCallSid", pattern=NO_NUL)] = None,
) -> dict[str, Any]:
    listing = ListQuery(select(Call).where(Call.account_id == account.id))
    listing.filter("To", to, lambda value: Call.to_number == lookups.as_stored(value))
    listing.filter("From", from_, lambda value: Call.from_number == lookups.as_stored(value))
    listing.filter("Status", status, lambda value: Call.status == value)
    listing.filter("ParentCallSid", parent_call_sid, lambda value: Call.parent_sid == value)
    page = await keyset_page(request, listing, Call.id, paging, newest_first=True)
    return page_json(
        f"{PREFIX}/{account.sid}/Calls.json",
        "calls",
        [call_json(call, account.sid) for call in page.rows],
        page,
    )
