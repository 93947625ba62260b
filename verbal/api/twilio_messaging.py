"""Twilio's Messaging Services (Messaging v1) and their PhoneNumbers, as the SDK calls them.

Served beside the 2010-04-01 API under `/v1/Services`, so that `client.messaging.v1` works
once the SDK's messaging domain points here (`client.messaging.base_url`). The v1 APIs
differ from 2010-04-01 in what the SDK parses: the account is the caller (it is not in the
path), dates are ISO 8601, resources carry an absolute `url`, and pages put their links
under `meta` with the records key named in `meta.key`.

A service is a pool of the account's numbers (`verbal.store.services`); sending with
`MessagingServiceSid` picks a sender from it (`verbal.messaging.pools`), and its inbound
request URL answers texts to its numbers (unless `UseInboundWebhookOnNumber` leaves them to
the numbers' own apps). The settings Verbal does not act on are shown with Twilio's
defaults.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import phonenumbers
from fastapi import APIRouter, Depends, Path, Request, Response
from sqlalchemy import select

from verbal.api.auth import authenticated_account, runtime
from verbal.api.errors import ApiError, not_found
from verbal.api.paging import ListQuery
from verbal.api.twilio import (
    FormParam,
    PageParams,
    PageSlice,
    RawForm,
    form_body,
    form_text,
    keyset_page,
    position_page,
    well_formed_sid,
)
from verbal.api.twilio_resources import INVALID_URL, MAX_NAME
from verbal.messaging.service import is_http_url
from verbal.store.models import Account, MessagingService, MessagingServiceNumber, PhoneNumber
from verbal.store.services import MAX_POOL, NumberInService, PoolFull

PREFIX = "/v1/Services"
router = APIRouter(prefix=PREFIX, tags=["Twilio Messaging Services"])
Caller = Annotated[Account, Depends(authenticated_account)]
ServiceSid = Annotated[str, Path(alias="ServiceSid", description="The service's SID (MG…).")]
PhoneNumberSid = Annotated[
    str, Path(alias="PhoneNumberSid", description="The number's SID (PN…), as the account has it.")
]

# Twilio's codes (https://www.twilio.com/docs/api/errors).
MISSING_PARAMETER = 20001
PHONE_NUMBER_INVALID = 21421
NUMBER_IN_ANOTHER_SERVICE = 21712
POOL_FULL = 21714

SERVICE_PARAMS = (
    FormParam("FriendlyName", "A name for the service (required to create one)."),
    FormParam("InboundRequestUrl", "Answers texts to pool numbers that have no app (RCML)."),
    FormParam("InboundMethod", "GET or POST."),
    FormParam("FallbackUrl", "Asked when the inbound request URL fails."),
    FormParam("FallbackMethod", "GET or POST."),
    FormParam("StatusCallback", "Status callbacks of messages sent through it that name none."),
    FormParam("StickySender", "true or false; the sender is sticky either way."),
    FormParam(
        "UseInboundWebhookOnNumber",
        "true: texts to pool numbers go to the numbers' own apps, not InboundRequestUrl.",
    ),
)
_URLS = {
    "InboundRequestUrl": "inbound_request_url",
    "FallbackUrl": "fallback_url",
    "StatusCallback": "status_callback",
}
_METHODS = {"InboundMethod": "inbound_method", "FallbackMethod": "fallback_method"}
_FLAGS = {
    "StickySender": "sticky_sender",
    "UseInboundWebhookOnNumber": "use_inbound_webhook_on_number",
}
# What the SDK knows of a service that Verbal does not act on: Twilio's defaults.
_FIXED: dict[str, Any] = {
    "mms_converter": True,
    "smart_encoding": True,
    "scan_message_content": "inherit",
    "fallback_to_long_code": True,
    "area_code_geomatch": True,
    "synchronous_validation": False,
    "validity_period": 14400,
    "usecase": "undeclared",
    "us_app_to_person_registered": False,
}


def v1_date(value: datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _base(request: Request) -> str:
    """The absolute URL of this server, which v1 resources and page links carry."""
    return str(request.base_url).rstrip("/")


def service_json(request: Request, service: MessagingService, account_sid: str) -> dict[str, Any]:
    url = f"{_base(request)}{PREFIX}/{service.sid}"
    return {
        "sid": service.sid,
        "account_sid": account_sid,
        "friendly_name": service.friendly_name,
        "date_created": v1_date(service.date_created),
        "date_updated": v1_date(service.date_updated),
        "inbound_request_url": service.inbound_request_url,
        "inbound_method": service.inbound_method,
        "fallback_url": service.fallback_url,
        "fallback_method": service.fallback_method,
        "status_callback": service.status_callback,
        "sticky_sender": service.sticky_sender,
        "use_inbound_webhook_on_number": service.use_inbound_webhook_on_number,
        **_FIXED,
        "url": url,
        "links": {"phone_numbers": f"{url}/PhoneNumbers"},
    }


def _region(number: str) -> str | None:
    """The number's country; for a number no country has assigned (the sandbox's +1555...),
    the main country of its calling code."""
    try:
        parsed = phonenumbers.parse(number)
    except phonenumbers.NumberParseException:
        return None
    region = phonenumbers.region_code_for_number(parsed)
    if region is None:
        region = phonenumbers.region_code_for_country_code(parsed.country_code or 0)
    return None if region == phonenumbers.UNKNOWN_REGION else region


def number_json(
    request: Request,
    number: PhoneNumber,
    member: MessagingServiceNumber,
    service_sid: str,
    account_sid: str,
) -> dict[str, Any]:
    return {
        "sid": number.sid,
        "account_sid": account_sid,
        "service_sid": service_sid,
        "date_created": v1_date(member.date_created),
        "date_updated": v1_date(member.date_created),
        "phone_number": number.number,
        "country_code": _region(number.number),
        "capabilities": ["SMS", "MMS"],
        "url": f"{_base(request)}{PREFIX}/{service_sid}/PhoneNumbers/{number.sid}",
    }


def page_json(
    request: Request, path: str, key: str, records: list[dict[str, Any]], page: PageSlice
) -> dict[str, Any]:
    """The v1 page envelope: records under `key`, absolute links under `meta`."""
    paging = page.paging
    base = _base(request) + path

    def url(number: int, token: str | None = None) -> str:
        tokens = f"&PageToken={token}" if token else ""
        return f"{base}?PageSize={paging.size}&Page={number}{tokens}"

    return {
        key: records,
        "meta": {
            "page": paging.number,
            "page_size": paging.size,
            "first_page_url": url(0),
            "previous_page_url": (
                url(max(paging.number - 1, 0), page.previous_token) if page.previous_token else None
            ),
            "url": url(paging.number, paging.token),
            "next_page_url": url(paging.number + 1, page.next_token) if page.next_token else None,
            "key": key,
        },
    }


def _settings(form: Any) -> dict[str, Any]:
    """The service settings a create or update form gives (an empty URL clears it)."""
    settings: dict[str, Any] = {}
    for param, column in _URLS.items():
        value = form_text(form, param, max_length=2048)
        if value is None:
            continue
        if value and not is_http_url(value):
            raise ApiError(400, INVALID_URL, f"{param} {value!r} is not a valid URL")
        settings[column] = value or None
    for param, column in _METHODS.items():
        value = form_text(form, param, max_length=8)
        if value is None:
            continue
        if value.upper() not in ("GET", "POST"):
            raise ApiError(400, 20422, f"{param} must be GET or POST")
        settings[column] = value.upper()
    for param, column in _FLAGS.items():
        flag = form_text(form, param, max_length=8)
        if flag is None:
            continue
        if flag.lower() not in ("true", "false"):
            raise ApiError(400, 20422, f"{param} must be true or false")
        settings[column] = flag.lower() == "true"
    name = form_text(form, "FriendlyName", max_length=MAX_NAME)
    if name is not None:
        settings["friendly_name"] = name
    return settings


async def _service(request: Request, account: Account, sid: str) -> MessagingService:
    service = None
    if well_formed_sid("MG", sid):
        service = await runtime(request).services.get(account.id, sid)
    if service is None:
        raise not_found(f"{PREFIX}/{sid}")
    return service


# -- services ---------------------------------------------------------------------------------


@router.post(
    "",
    status_code=201,
    summary="Create a Messaging Service",
    openapi_extra=form_body(SERVICE_PARAMS),
)
async def create_service(request: Request, account: Caller, form: RawForm) -> dict[str, Any]:
    settings = _settings(form)
    name = settings.pop("friendly_name", None)
    if not name:
        raise ApiError(400, MISSING_PARAMETER, "Missing required parameter FriendlyName")
    service = await runtime(request).services.create(account.id, name, settings)
    return service_json(request, service, account.sid)


@router.get("", summary="List the account's Messaging Services, oldest first")
async def list_services(request: Request, account: Caller, paging: PageParams) -> dict[str, Any]:
    listing = ListQuery(select(MessagingService).where(MessagingService.account_id == account.id))
    page = await keyset_page(request, listing, MessagingService.id, paging, newest_first=False)
    records = [service_json(request, s, account.sid) for s in page.rows]
    return page_json(request, PREFIX, "services", records, page)


@router.get("/{ServiceSid}", summary="Fetch a Messaging Service")
async def fetch_service(request: Request, account: Caller, sid: ServiceSid) -> dict[str, Any]:
    return service_json(request, await _service(request, account, sid), account.sid)


@router.post(
    "/{ServiceSid}", summary="Update a Messaging Service", openapi_extra=form_body(SERVICE_PARAMS)
)
async def update_service(
    request: Request, account: Caller, sid: ServiceSid, form: RawForm
) -> dict[str, Any]:
    service = await _service(request, account, sid)
    settings = _settings(form)
    if settings.get("friendly_name") == "":
        raise ApiError(400, MISSING_PARAMETER, "FriendlyName cannot be empty")
    updated = await runtime(request).services.update(service, settings)
    if updated is None:  # deleted since it was read
        raise not_found(f"{PREFIX}/{sid}")
    return service_json(request, updated, account.sid)


@router.delete(
    "/{ServiceSid}",
    status_code=204,
    summary="Delete a Messaging Service; its numbers stay the account's",
)
async def delete_service(request: Request, account: Caller, sid: ServiceSid) -> Response:
    await runtime(request).services.delete(await _service(request, account, sid))
    return Response(status_code=204)


# -- the sender pool --------------------------------------------------------------------------

NUMBER_PARAMS = (FormParam("PhoneNumberSid", "One of the account's numbers (PN…)."),)


@router.post(
    "/{ServiceSid}/PhoneNumbers",
    status_code=201,
    summary="Add one of the account's numbers to the service's pool",
    openapi_extra=form_body(NUMBER_PARAMS),
)
async def add_number(
    request: Request, account: Caller, sid: ServiceSid, form: RawForm
) -> dict[str, Any]:
    service = await _service(request, account, sid)
    number_sid = form_text(form, "PhoneNumberSid", max_length=34)
    if not number_sid:
        raise ApiError(400, MISSING_PARAMETER, "Missing required parameter PhoneNumberSid")
    number = None
    if well_formed_sid("PN", number_sid):
        number = await runtime(request).directory.number_by_sid(account, number_sid)
    if number is None:
        raise ApiError(
            400,
            PHONE_NUMBER_INVALID,
            f"PhoneNumberSid {number_sid} is not a number of this account",
        )
    services = runtime(request).services
    try:
        await services.add_number(service, number)
    except NumberInService:
        raise ApiError(
            400,
            NUMBER_IN_ANOTHER_SERVICE,
            f"{number.number} is in a Messaging Service already; remove it from there first",
        ) from None
    except PoolFull:
        raise ApiError(
            400, POOL_FULL, f"A service's pool holds at most {MAX_POOL} numbers"
        ) from None
    return await _pool_number(request, account, service, number.sid)


async def _pool_number(
    request: Request, account: Account, service: MessagingService, number_sid: str
) -> dict[str, Any]:
    for number, member in await runtime(request).services.numbers(service):
        if number.sid == number_sid:
            return number_json(request, number, member, service.sid, account.sid)
    raise not_found(f"{PREFIX}/{service.sid}/PhoneNumbers/{number_sid}")


@router.get("/{ServiceSid}/PhoneNumbers", summary="List the service's pool, oldest first")
async def list_numbers(
    request: Request, account: Caller, sid: ServiceSid, paging: PageParams
) -> dict[str, Any]:
    service = await _service(request, account, sid)
    # A pool is short (at most MAX_POOL numbers): read whole and paged by position.
    page = position_page(await runtime(request).services.numbers(service), paging)
    records = [number_json(request, n, m, service.sid, account.sid) for n, m in page.rows]
    return page_json(
        request, f"{PREFIX}/{service.sid}/PhoneNumbers", "phone_numbers", records, page
    )


@router.get("/{ServiceSid}/PhoneNumbers/{PhoneNumberSid}", summary="Fetch a number of the pool")
async def fetch_number(
    request: Request, account: Caller, sid: ServiceSid, number_sid: PhoneNumberSid
) -> dict[str, Any]:
    service = await _service(request, account, sid)
    return await _pool_number(request, account, service, number_sid)


@router.delete(
    "/{ServiceSid}/PhoneNumbers/{PhoneNumberSid}",
    status_code=204,
    summary="Take a number out of the pool; it stays the account's",
)
async def remove_number(
    request: Request, account: Caller, sid: ServiceSid, number_sid: PhoneNumberSid
) -> Response:
    service = await _service(request, account, sid)
    if not await runtime(request).services.remove_number(service, number_sid):
        raise not_found(f"{PREFIX}/{sid}/PhoneNumbers/{number_sid}")
    return Response(status_code=204)
