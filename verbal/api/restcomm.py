"""Restcomm's REST API (2012-04-24): SMS messages, the JSON Messages API, calls, incoming
phone numbers and applications, under `/restcomm/2012-04-24/Accounts/{AccountSid}/`.

Restcomm's conventions, as its open-source server answers:

- requests are form-encoded with PascalCase names (the Messages API alone takes JSON);
- answers are XML under `<RestcommResponse>` unless the path's last segment ends `.json` or
  `Accept` mentions JSON. One description of each resource (`Field`s) renders both: XML
  elements in PascalCase, JSON keys in snake_case;
- dates are `Thu, 5 Nov 2026 07:21:24 +0000` (day not padded); a message's `date_sent` is
  ISO 8601, as Restcomm writes it;
- lists page with `Page`/`PageSize` and carry `page, num_pages, page_size, total, start, end,
  uri` and the page links, absent links being the string "null". Next links add `AfterSid`,
  which Verbal honours (Restcomm ignores it): the next page continues after that row, so rows
  added meanwhile do not shift it;
- errors are `<RestcommResponse><Message>…</Message><Error>code</Error></RestcommResponse>`
  or `{"message", "error"}`, with Twilio's numbers, which Restcomm reuses.

Resources belong to the account in the path, which must be the caller's: any other SID, in
the path or as a resource, is answered 404 so that nothing about other accounts shows.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from xml.etree.ElementTree import Element, SubElement, tostring

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import InstrumentedAttribute
from starlette.exceptions import HTTPException as StarletteHTTPException

from verbal.api import lookups
from verbal.api.auth import authenticated_account, runtime
from verbal.api.errors import ApiError, overloaded
from verbal.api.paging import ListQuery, Window, count, link, read
from verbal.api.twilio import REFUSAL_CODES
from verbal.dialects.verbs import Target
from verbal.engine.calls import MAX_TIMEOUT_SECONDS, STATUS_EVENTS, CallRefused, CallRequest
from verbal.messaging.addresses import InvalidNumber, to_e164
from verbal.messaging.errors import MessageRefused, Refusal
from verbal.messaging.service import MAX_URL_LENGTH, Overloaded, SendRequest, is_http_url
from verbal.messaging.states import Status
from verbal.store.directory import KEEP, AlreadyExists, Keep
from verbal.store.models import Account, Application, Call, Message, PhoneNumber
from verbal.voice.records import CallRecord

API_VERSION = "2012-04-24"
PREFIX = f"/restcomm/{API_VERSION}/Accounts"
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
# The store's column sizes: longer values are refused here, not by the database.
MAX_NAME_LENGTH = 64
XML = "application/xml"
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"

# Error codes: Twilio's numbers, which Restcomm's API and interpreters reuse.
INVALID_PARAMETER = 20422
NOT_FOUND = 20404
INVALID_NUMBER = 21421
NUMBER_UNAVAILABLE = 21452

KINDS = ("voice", "sms", "ussd")
CHANNELS = ("sms", "mms")
# What the number's own application holds, by Restcomm's parameter names.
NUMBER_URLS = {
    "VoiceUrl": "voice_url",
    "VoiceFallbackUrl": "voice_fallback_url",
    "StatusCallback": "status_callback",
    "SmsUrl": "sms_url",
    "SmsFallbackUrl": "sms_fallback_url",
}
NUMBER_METHODS = {
    "VoiceMethod": "voice_method",
    "VoiceFallbackMethod": "voice_fallback_method",
    "StatusCallbackMethod": "status_callback_method",
    "SmsMethod": "sms_method",
    "SmsFallbackMethod": "sms_fallback_method",
}
CALLER_ID_LOOKUP = "voice_caller_id_lookup"
# The parameters each kind of request takes, for the OpenAPI document.
SMS_PARAMETERS = ("From", "To", "Body", "StatusCallback", "StatusCallbackMethod")
MESSAGE_PARAMETERS = (
    "from",
    "to",
    "body",
    "media_urls",
    "status_callback",
    "status_callback_method",
)
APPLICATION_PARAMETERS = ("FriendlyName", "RcmlUrl", "Kind", "VoiceCallerIdLookup")
NUMBER_PARAMETERS = (
    "FriendlyName",
    *NUMBER_URLS,
    *NUMBER_METHODS,
    "VoiceCallerIdLookup",
    "SmsApplicationSid",
    "VoiceApplicationSid",
)

# Restcomm's message statuses are Twilio's older set: Verbal's newer ones are shown as the
# Restcomm status a client can act on (a canceled message was never sent: failed).
_RESTCOMM_STATUS = {
    Status.ACCEPTED: "queued",
    Status.SCHEDULED: "queued",
    Status.CANCELED: "failed",
    Status.RECEIVING: "received",
}
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Restcomm matches To/From filters as suffixes, so `5550002000` finds `+15550002000`.
_NUMBER_SEPARATORS = re.compile(r"[\s().-]")


def restcomm_status(status: str) -> str:
    return _RESTCOMM_STATUS.get(Status(status), status)


def _statuses_shown_as(shown: str) -> list[str]:
    return [status.value for status in Status if restcomm_status(status) == shown]


# -- errors -----------------------------------------------------------------------------------


class RestcommError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _not_found(what: str) -> RestcommError:
    return RestcommError(404, NOT_FOUND, f"The requested resource {what} was not found")


def _invalid(message: str) -> RestcommError:
    return RestcommError(400, INVALID_PARAMETER, message)


def _wants_json(request: Request) -> bool:
    return bool(getattr(request.state, "restcomm_json", False))


def _error_response(request: Request, error: RestcommError) -> Response:
    headers = {"WWW-Authenticate": 'Basic realm="Verbal"'} if error.status == 401 else None
    if _wants_json(request):
        body = {"message": error.message, "error": error.code}
        return JSONResponse(body, status_code=error.status, headers=headers)
    root = Element("RestcommResponse")
    SubElement(root, "Message").text = error.message
    SubElement(root, "Error").text = str(error.code)
    return _xml_response(root, error.status, headers)


class RestcommRoute(APIRoute):
    """Picks the answer's format before anything runs, and answers every failure of these
    routes (credentials, parameters, refusals) in Restcomm's shape and that format."""

    always_json = False

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        always_json = self.always_json

        async def restcomm_handler(request: Request) -> Response:
            request.state.restcomm_json = (
                always_json
                or request.url.path.endswith(".json")
                or "json" in request.headers.get("accept", "").lower()
            )
            try:
                return await handler(request)
            except RestcommError as exc:
                return _error_response(request, exc)
            except Overloaded as exc:
                error = overloaded(exc)
                return _error_response(request, RestcommError(429, error.code, error.message))
            except ApiError as exc:
                return _error_response(request, RestcommError(exc.status, exc.code, exc.message))
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {}
                name = str((first.get("loc") or ("request",))[-1])
                text = f"Invalid parameter {name}: {first.get('msg', 'is invalid')}"
                return _error_response(request, _invalid(text))
            except StarletteHTTPException as exc:
                error = RestcommError(exc.status_code, exc.status_code, str(exc.detail))
                return _error_response(request, error)

        return restcomm_handler


class JsonRoute(RestcommRoute):
    """The Messages API speaks JSON only, whatever the path or `Accept` say."""

    always_json = True


router = APIRouter(prefix=PREFIX, tags=["Restcomm"], route_class=RestcommRoute)


def _answers(description: str, status: int = 200) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI description of a route's answers: XML or JSON, errors in Restcomm's shape."""
    error = {
        "content": {
            XML: {"schema": {"type": "string"}},
            JSON: {
                "schema": {
                    "type": "object",
                    "properties": {"message": {"type": "string"}, "error": {"type": "integer"}},
                    "required": ["message", "error"],
                }
            },
        }
    }
    answers: dict[int | str, dict[str, Any]] = {
        400: {"description": "A parameter is missing or refused; the message says which.", **error},
        401: {
            "description": "No credentials, or wrong ones.",
            "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
            **error,
        },
        404: {"description": "No such resource for this account.", **error},
    }
    if status == 204:
        answers[204] = {"description": description}
    else:
        answers[status] = {
            "description": description,
            "content": {XML: {"schema": {"type": "string"}}, JSON: {"schema": {"type": "object"}}},
        }
    return answers


Endpoint = Callable[..., Awaitable[Response]]


def _request_body(parameters: Iterable[str], media_type: str) -> dict[str, Any]:
    """The OpenAPI description of a body the handler reads itself (a form or JSON)."""
    properties = {
        name: {"type": "array", "items": {"type": "string"}}
        if name == "media_urls"
        else {"type": "string"}
        for name in parameters
    }
    schema = {"type": "object", "properties": properties}
    return {"requestBody": {"required": False, "content": {media_type: {"schema": schema}}}}


def _route(
    methods: str | tuple[str, ...],
    path: str,
    summary: str,
    *,
    takes: tuple[str, ...] = (),
    status: int = 200,
    json_only: bool = False,
) -> Callable[[Endpoint], Endpoint]:
    """Register an endpoint for `methods` (Restcomm updates with POST and PUT alike) at
    `path` and, unless it is JSON only, at `path.json` as well; `takes` names the parameters
    of its body."""
    extra = _request_body(takes, JSON if json_only else FORM) if takes else None

    def register(endpoint: Endpoint) -> Endpoint:
        # One route per method: a route serving two would give both operations one
        # operationId, which OpenAPI forbids.
        for method in (methods,) if isinstance(methods, str) else methods:
            # The `.json` form first: `{Sid}` alone would also match `SM….json`.
            for variant in [path] if json_only else [path + ".json", path]:
                router.add_api_route(
                    variant,
                    endpoint,
                    methods=[method],
                    summary=summary,
                    status_code=status,
                    responses=_answers(summary, status),
                    openapi_extra=extra,
                    route_class_override=JsonRoute if json_only else None,
                )
        return endpoint

    return register


AccountSid = Annotated[str, Path(alias="AccountSid", description="The account's SID (AC…).")]


async def account_for_path(
    account_sid: AccountSid, account: Annotated[Account, Depends(authenticated_account)]
) -> Account:
    """The authenticated account, which must be the one the path names."""
    if account.sid != account_sid:
        raise _not_found(f"/{API_VERSION}/Accounts/{account_sid}")
    return account


OwnAccount = Annotated[Account, Depends(account_for_path)]


# -- representation ---------------------------------------------------------------------------

Scalar = str | int | bool | None


@dataclass(frozen=True, slots=True)
class Records:
    """A list of resources: in XML, one `tag` element each inside the field's element."""

    tag: str
    items: list[list[Field]]


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a resource: its XML element (None: JSON only), its JSON key (None: XML
    only) and its value, which may be a group of fields or a list of resources."""

    tag: str | None
    key: str | None
    value: Scalar | list[Field] | Records


def _as_json(fields: Iterable[Field]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for field in fields:
        if field.key is None:
            continue
        value = field.value
        if isinstance(value, Records):
            result[field.key] = [_as_json(item) for item in value.items]
        elif isinstance(value, list):
            result[field.key] = _as_json(value)
        else:
            result[field.key] = value
    return result


def _as_xml(parent: Element, fields: Iterable[Field]) -> None:
    for field in fields:
        if field.tag is None:
            continue
        element = SubElement(parent, field.tag)
        value = field.value
        if isinstance(value, Records):
            for item in value.items:
                _as_xml(SubElement(element, value.tag), item)
        elif isinstance(value, list):
            _as_xml(element, value)
        elif isinstance(value, bool):
            element.text = "true" if value else "false"
        elif value is not None:
            element.text = str(value)


def _xml_response(
    root: Element, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    body = tostring(root, encoding="unicode")
    return Response(body, status_code=status, media_type=XML, headers=headers)


def _resource_response(request: Request, tag: str, fields: list[Field]) -> Response:
    if _wants_json(request):
        return JSONResponse(_as_json(fields))
    root = Element("RestcommResponse")
    _as_xml(SubElement(root, tag), fields)
    return _xml_response(root)


def restcomm_date(value: datetime) -> str:
    """`EEE, d MMM yyyy HH:mm:ss Z` in English whatever the locale, always in UTC."""
    value = value.astimezone(UTC)
    return (
        f"{_DAYS[value.weekday()]}, {value.day} {_MONTHS[value.month - 1]} "
        f"{value:%Y %H:%M:%S} +0000"
    )


def iso_date(value: datetime | None) -> str | None:
    """ISO 8601 with milliseconds, as Restcomm writes a message's `date_sent`."""
    if value is None:
        return None
    value = value.astimezone(UTC)
    return f"{value:%Y-%m-%dT%H:%M:%S}.{value.microsecond // 1000:03d}Z"


def _uri_fields(uri: str) -> list[Field]:
    # Restcomm writes the resource's URI relative to /restcomm, with `.json` in JSON only.
    return [Field("Uri", None, uri), Field(None, "uri", uri + ".json")]


def _dates(created: datetime, updated: datetime) -> list[Field]:
    return [
        Field("DateCreated", "date_created", restcomm_date(created)),
        Field("DateUpdated", "date_updated", restcomm_date(updated)),
    ]


# -- paging -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Paging:
    page: int
    page_size: int
    after_sid: str | None


def _paging(
    page: Annotated[int, Query(alias="Page", ge=0, description="Page number, from 0.")] = 0,
    page_size: Annotated[
        int, Query(alias="PageSize", ge=1, le=MAX_PAGE_SIZE, description="Rows per page.")
    ] = DEFAULT_PAGE_SIZE,
    after_sid: Annotated[
        str | None, Query(alias="AfterSid", description="Continue after this row (next links).")
    ] = None,
) -> Paging:
    return Paging(page, page_size, after_sid)


PageParams = Annotated[Paging, Depends(_paging)]


@dataclass(frozen=True, slots=True)
class Listing:
    """One page of rows and what the envelope says about it."""

    rows: list[Any]
    paging: Paging
    total: int
    path: str
    filters: list[tuple[str, str]]

    def _link(self, page: int, after_sid: str | None = None) -> str:
        after = [("AfterSid", after_sid)] if after_sid else []
        return link(
            self.path, [("Page", page), ("PageSize", self.paging.page_size), *self.filters, *after]
        )

    def envelope(self) -> list[tuple[str, str | int]]:
        page, size = self.paging.page, self.paging.page_size
        num_pages = math.ceil(self.total / size)
        last = max(num_pages - 1, 0)
        start = page * size
        has_next = page < last and bool(self.rows)
        # `start` and `end` are strings in Restcomm's answers.
        return [
            ("page", page),
            ("num_pages", num_pages),
            ("page_size", size),
            ("total", self.total),
            ("start", str(start)),
            ("end", str(start + max(len(self.rows) - 1, 0))),
            ("uri", self.path),
            ("first_page_uri", self._link(0)),
            ("previous_page_uri", self._link(page - 1) if page > 0 else "null"),
            ("next_page_uri", self._link(page + 1, self.rows[-1].sid) if has_next else "null"),
            ("last_page_uri", self._link(last)),
        ]


async def _page(
    request: Request,
    listing: ListQuery[Any],
    paging: Paging,
    *,
    scope: ColumnElement[bool],
    sid_column: InstrumentedAttribute[str],
    order: InstrumentedAttribute[Any],
    descending: bool,
) -> Listing:
    """One page of the list's rows and how many rows it has in all.

    `AfterSid` continues after that row (looked up in `scope`, the account's rows, so a row
    that has stopped matching the filters still anchors); without it, `Page` counts rows.
    """
    async with runtime(request).sessions() as session:
        total = await count(session, listing)
        last = max(math.ceil(total / paging.page_size) - 1, 0)
        if paging.page > last:
            raise _invalid(f"Page {paging.page} is beyond the last page, {last}")
        anchor = None
        if paging.after_sid:
            anchor = await session.scalar(
                select(order).where(sid_column == paging.after_sid, scope)
            )
            if anchor is None:
                raise _invalid(f"Invalid AfterSid {paging.after_sid!r}")
        offset = 0 if paging.after_sid else paging.page * paging.page_size
        window = Window(order, paging.page_size, offset, anchor, descending)
        rows = await read(session, listing, window)
    return Listing(rows, paging, total, request.url.path, listing.params)


def _list_response(
    request: Request, listing: Listing, tag: str, key: str, item_tag: str, items: list[list[Field]]
) -> Response:
    envelope = listing.envelope()
    if _wants_json(request):
        return JSONResponse({**dict(envelope), key: [_as_json(item) for item in items]})
    root = Element("RestcommResponse")
    # XML carries the envelope as attributes of the list, names without underscores.
    attributes = {name.replace("_", ""): str(value) for name, value in envelope}
    element = SubElement(root, tag, attributes)
    for item in items:
        _as_xml(SubElement(element, item_tag), item)
    return _xml_response(root)


# -- request parameters -----------------------------------------------------------------------


def _clean(value: str, name: str) -> str:
    # PostgreSQL's text cannot hold NUL: refuse it at the door rather than fail in the store.
    if "\x00" in value:
        raise _invalid(f"{name} contains a NUL character")
    return value


async def _form(request: Request) -> dict[str, str]:
    try:
        form = await request.form()
    except (AssertionError, ValueError, UnicodeDecodeError):
        raise _invalid("The request body is not a valid form") from None
    fields = {name: _clean(value, name) for name, value in form.items() if isinstance(value, str)}
    if len(fields.get("FriendlyName", "")) > MAX_NAME_LENGTH:
        raise _invalid(f"FriendlyName is longer than {MAX_NAME_LENGTH} characters")
    return fields


def _checked_url(value: str, name: str) -> str | None:
    """An http(s) URL, or None for an empty value (which clears the setting)."""
    value = value.strip()
    if not value:
        return None
    if not is_http_url(value):
        raise _invalid(
            f"{name} {value!r} is not an http or https URL of at most {MAX_URL_LENGTH} characters"
        )
    return value


def _url(form: Mapping[str, str], name: str) -> str | None:
    return _checked_url(form[name], name)


def _method(form: Mapping[str, str], name: str) -> str:
    value = form[name].strip().upper() or "POST"
    if value not in ("GET", "POST"):
        raise _invalid(f"{name} must be GET or POST")
    return value


def _flag(form: Mapping[str, str], name: str) -> bool:
    # Restcomm reads booleans as Java does: "true" in any case, anything else is false.
    return form[name].strip().lower() == "true"


def _required(form: Mapping[str, str], name: str, message: str, code: int) -> str:
    value = form.get(name, "")
    if not value.strip():
        raise RestcommError(400, code, message)
    return value


def _refused(refused: MessageRefused) -> RestcommError:
    return RestcommError(400, REFUSAL_CODES[refused.reason], refused.detail)


# -- SMS messages -----------------------------------------------------------------------------


def _message_fields(message: Message, account_sid: str) -> list[Field]:
    uri = f"/{API_VERSION}/Accounts/{account_sid}/SMS/Messages/{message.sid}"
    error: list[Field] = [
        Field(None, "error_code", message.error_code),
        Field(None, "error_message", message.error_message),
    ]
    if message.error_code is not None:
        group = [
            Field("ErrorCode", None, message.error_code),
            Field("ErrorMessage", None, message.error_message),
        ]
        error.append(Field("Error", None, group))
    return [
        Field("Sid", "sid", message.sid),
        *_dates(message.date_created, message.date_updated),
        Field("DateSent", "date_sent", iso_date(message.date_sent)),
        Field("AccountSid", "account_sid", account_sid),
        Field("From", "from", message.from_number),
        Field("To", "to", message.to_number),
        Field("Body", "body", message.body),
        Field("Status", "status", restcomm_status(message.status)),
        Field("Direction", "direction", message.direction),
        *error,
        # Verbal charges nothing.
        Field("Price", "price", "0"),
        Field("PriceUnit", "price_unit", "USD"),
        Field("ApiVersion", "api_version", API_VERSION),
        *_uri_fields(uri),
    ]


async def _send(request: Request, account: Account, send: SendRequest) -> Message:
    try:
        return await runtime(request).messaging.send(account, send)
    except MessageRefused as refused:
        raise _refused(refused) from None


@_route("POST", "/{AccountSid}/SMS/Messages", "Send an SMS", takes=SMS_PARAMETERS)
async def send_sms(request: Request, account: OwnAccount) -> Response:
    form = await _form(request)
    # Restcomm's order and texts; `Encoding` and `X-` headers are Restcomm's SIP details.
    sender = _required(form, "From", "From can not be null.", REFUSAL_CODES[Refusal.FROM_MISSING])
    to = _required(form, "To", "To can not be null.", REFUSAL_CODES[Refusal.TO_MISSING])
    body = _required(form, "Body", "Body can not be null.", REFUSAL_CODES[Refusal.BODY_MISSING])
    callback = _url(form, "StatusCallback") if "StatusCallback" in form else None
    method = _method(form, "StatusCallbackMethod") if "StatusCallbackMethod" in form else "POST"
    send = SendRequest(
        to=to,
        from_=sender,
        body=body,
        status_callback=callback,
        status_callback_method=method,
        callback_format="rcml",
    )
    message = await _send(request, account, send)
    return _resource_response(request, "SMSMessage", _message_fields(message, account.sid))


@_route("GET", "/{AccountSid}/SMS/Messages/{MessageSid}", "Fetch an SMS")
async def fetch_sms(
    request: Request,
    account: OwnAccount,
    message_sid: Annotated[str, Path(alias="MessageSid")],
) -> Response:
    message = await lookups.account_message(request, account, message_sid)
    if message is None:
        raise _not_found(f"/{API_VERSION}/Accounts/{account.sid}/SMS/Messages/{message_sid}")
    return _resource_response(request, "SMSMessage", _message_fields(message, account.sid))


def _day(value: str, name: str) -> datetime:
    try:
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise _invalid(f"{name} must be a date as YYYY-MM-DD") from None


def _ends_with(column: InstrumentedAttribute[str], number: str) -> ColumnElement[bool]:
    return column.endswith(_NUMBER_SEPARATORS.sub("", number), autoescape=True)


@_route("GET", "/{AccountSid}/SMS/Messages", "List SMS messages, newest first")
async def list_sms(
    request: Request,
    account: OwnAccount,
    paging: PageParams,
    to: Annotated[str | None, Query(alias="To", description="Ends with this number.")] = None,
    from_: Annotated[str | None, Query(alias="From", description="Ends with this number.")] = None,
    start_time: Annotated[
        str | None, Query(alias="StartTime", description="Created on or after (YYYY-MM-DD).")
    ] = None,
    end_time: Annotated[
        str | None, Query(alias="EndTime", description="Created on or before (YYYY-MM-DD).")
    ] = None,
    body: Annotated[str | None, Query(alias="Body", description="Contains this text.")] = None,
    status: Annotated[str | None, Query(alias="Status")] = None,
) -> Response:
    listing = ListQuery(lookups.messages(account))
    listing.filter("To", to, lambda number: _ends_with(Message.to_number, number))
    listing.filter("From", from_, lambda number: _ends_with(Message.from_number, number))
    listing.filter(
        "StartTime", start_time, lambda day: Message.date_created >= _day(day, "StartTime")
    )
    # The whole day named is included.
    listing.filter(
        "EndTime",
        end_time,
        lambda day: Message.date_created < _day(day, "EndTime") + timedelta(days=1),
    )
    listing.filter("Body", body, lambda text: Message.body.contains(text, autoescape=True))
    listing.filter("Status", status, lambda shown: Message.status.in_(_statuses_shown_as(shown)))
    page = await _page(
        request,
        listing,
        paging,
        scope=Message.account_id == account.id,
        sid_column=Message.sid,
        order=Message.id,
        descending=True,
    )
    items = [_message_fields(message, account.sid) for message in page.rows]
    return _list_response(request, page, "SMSMessages", "messages", "SMSMessage", items)


# -- calls ------------------------------------------------------------------------------------

CALL_PARAMETERS = (
    "From",
    "To",
    "Url",
    "Method",
    "FallbackUrl",
    "FallbackMethod",
    "StatusCallback",
    "StatusCallbackMethod",
    "StatusCallbackEvent",
    "Timeout",
)
CALL_UPDATE_PARAMETERS = ("Status", "Url", "Method")
# Twilio's numbers for a refused call, which Restcomm reuses.
CALL_REFUSALS = {"Url": 21205, "From": 21213, "To": 21201}


def _call_fields(call: CallRecord | Call, account_sid: str) -> list[Field]:
    status = call.status if isinstance(call.status, str) else call.status.value
    uri = f"/{API_VERSION}/Accounts/{account_sid}/Calls/{call.sid}"
    return [
        Field("Sid", "sid", call.sid),
        Field("InstanceId", "instance_id", None),
        *_dates(call.date_created, call.date_updated),
        Field("ParentCallSid", "parent_call_sid", call.parent_sid),
        Field("AccountSid", "account_sid", account_sid),
        Field("To", "to", call.to_number),
        Field("From", "from", call.from_number),
        Field("PhoneNumberSid", "phone_number_sid", None),
        Field("Status", "status", status),
        Field(
            "StartTime", "start_time", restcomm_date(call.answered_at) if call.answered_at else None
        ),
        Field("EndTime", "end_time", restcomm_date(call.ended_at) if call.ended_at else None),
        Field("Duration", "duration", call.duration),
        Field("Price", "price", "0"),
        Field("PriceUnit", "price_unit", "USD"),
        Field("Direction", "direction", call.direction),
        Field("AnsweredBy", "answered_by", None),
        Field("ApiVersion", "api_version", API_VERSION),
        Field("ForwardedFrom", "forwarded_from", None),
        Field("CallerName", "caller_name", None),
        *_uri_fields(uri),
    ]


async def _call_for_path(request: Request, account: Account, sid: str) -> CallRecord | Call:
    live = runtime(request).calls.live(sid)
    if live is not None and live.account_id == account.id:
        return live
    async with runtime(request).sessions() as session:
        row = await session.scalar(
            select(Call).where(Call.sid == sid, Call.account_id == account.id)
        )
    if row is None:
        raise _not_found(f"/{API_VERSION}/Accounts/{account.sid}/Calls/{sid}")
    return row


@_route("POST", "/{AccountSid}/Calls", "Place a call", takes=CALL_PARAMETERS)
async def create_call(request: Request, account: OwnAccount) -> Response:
    form = await _form(request)
    for name, code in CALL_REFUSALS.items():
        _required(form, name, f"{name} can not be null.", code)
    url = _url(form, "Url")
    if url is None:
        raise RestcommError(400, CALL_REFUSALS["Url"], "Url can not be null.")
    events = tuple(
        dict.fromkeys(e for e in form.get("StatusCallbackEvent", "").replace(",", " ").split())
    )
    unknown = [event for event in events if event not in STATUS_EVENTS]
    if unknown:
        raise _invalid(f"StatusCallbackEvent {unknown[0]!r}: {', '.join(STATUS_EVENTS)}")
    timeout = form.get("Timeout", "").strip() or "60"
    if not timeout.isdigit() or not 1 <= int(timeout) <= MAX_TIMEOUT_SECONDS:
        raise _invalid(f"Timeout must be 1 to {MAX_TIMEOUT_SECONDS} seconds")
    placed = CallRequest(
        to=form["To"],
        from_=form["From"],
        url=url,
        method=_method(form, "Method") if "Method" in form else "POST",
        fallback_url=_url(form, "FallbackUrl") if "FallbackUrl" in form else None,
        fallback_method=_method(form, "FallbackMethod") if "FallbackMethod" in form else "POST",
        status_callback=_url(form, "StatusCallback") if "StatusCallback" in form else None,
        status_callback_method=(
            _method(form, "StatusCallbackMethod") if "StatusCallbackMethod" in form else "POST"
        ),
        # A callback without a list of events hears of the end alone, as for Restcomm's <Number>.
        status_callback_events=events or ("completed",),
        timeout_seconds=int(timeout),
    )
    try:
        record = await runtime(request).calls.place(account, placed)
    except CallRefused as refused:
        raise RestcommError(400, refused.code, refused.message) from None
    return _resource_response(request, "Call", _call_fields(record, account.sid))


@_route("GET", "/{AccountSid}/Calls/{CallSid}", "Fetch a call")
async def fetch_call(
    request: Request, account: OwnAccount, call_sid: Annotated[str, Path(alias="CallSid")]
) -> Response:
    call = await _call_for_path(request, account, call_sid)
    return _resource_response(request, "Call", _call_fields(call, account.sid))


@_route(
    ("POST", "PUT"),
    "/{AccountSid}/Calls/{CallSid}",
    "Hang up or redirect a call",
    takes=CALL_UPDATE_PARAMETERS,
)
async def update_call(
    request: Request, account: OwnAccount, call_sid: Annotated[str, Path(alias="CallSid")]
) -> Response:
    call = await _call_for_path(request, account, call_sid)
    form = await _form(request)
    calls = runtime(request).calls
    status = form.get("Status", "").strip()
    if status:
        if status not in ("completed", "canceled"):
            raise _invalid("Status must be completed or canceled")
        await calls.hang_up(call.sid, status)
    elif "Url" in form:
        url = _url(form, "Url")
        if url is None:
            raise _invalid("Url can not be empty")
        method = _method(form, "Method") if "Method" in form else "POST"
        if not await calls.redirect(call.sid, Target(url, method), None):
            raise _invalid("The call is not in progress and cannot be redirected")
    return _resource_response(request, "Call", _call_fields(call, account.sid))


@_route("GET", "/{AccountSid}/Calls", "List calls, newest first")
async def list_calls(
    request: Request,
    account: OwnAccount,
    paging: PageParams,
    to: Annotated[str | None, Query(alias="To", description="Ends with this number.")] = None,
    from_: Annotated[str | None, Query(alias="From", description="Ends with this number.")] = None,
    status: Annotated[str | None, Query(alias="Status")] = None,
    parent_call_sid: Annotated[str | None, Query(alias="ParentCallSid")] = None,
) -> Response:
    listing = ListQuery(select(Call).where(Call.account_id == account.id))
    listing.filter("To", to, lambda number: _ends_with(Call.to_number, _clean(number, "To")))
    listing.filter(
        "From", from_, lambda number: _ends_with(Call.from_number, _clean(number, "From"))
    )
    listing.filter("Status", status, lambda value: Call.status == _clean(value, "Status"))
    listing.filter(
        "ParentCallSid",
        parent_call_sid,
        lambda value: Call.parent_sid == _clean(value, "ParentCallSid"),
    )
    page = await _page(
        request,
        listing,
        paging,
        scope=Call.account_id == account.id,
        sid_column=Call.sid,
        order=Call.id,
        descending=True,
    )
    items = [_call_fields(call, account.sid) for call in page.rows]
    return _list_response(request, page, "Calls", "calls", "Call", items)


# -- the JSON Messages API --------------------------------------------------------------------


def _channel_address(value: Any, name: str, *, required_channel: bool) -> tuple[str | None, str]:
    """`sms:+1555…` as ("sms", "+1555…"); a bare address only where no channel is needed."""
    if not isinstance(value, str) or not value.strip():
        missing = Refusal.TO_MISSING if name == "to" else Refusal.FROM_MISSING
        raise RestcommError(400, REFUSAL_CODES[missing], f"'{name}' is required")
    scheme, separator, address = _clean(value, name).strip().partition(":")
    if not separator:
        if required_channel:
            raise _invalid(f"'{name}' must be a channel URI such as sms:+15550002000")
        return None, value.strip()
    if scheme.lower() not in CHANNELS:
        invalid = Refusal.TO_INVALID if name == "to" else Refusal.FROM_INVALID
        raise RestcommError(
            400,
            REFUSAL_CODES[invalid],
            f"Channel {scheme!r} in '{name}' is not supported; Verbal sends sms: and mms:",
        )
    return scheme.lower(), address


def _optional_text(params: Mapping[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _invalid(f"'{name}' must be a string")
    return _clean(value, name)


@_route(
    "POST",
    "/{AccountSid}/Messages",
    "Send a message (JSON, channel URIs)",
    takes=MESSAGE_PARAMETERS,
    json_only=True,
)
async def send_message(request: Request, account: OwnAccount) -> Response:
    try:
        params = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise _invalid("The request body is not valid JSON") from None
    if not isinstance(params, dict):
        raise _invalid("The request body must be a JSON object")
    channel, to = _channel_address(params.get("to"), "to", required_channel=True)
    _, sender = _channel_address(params.get("from"), "from", required_channel=False)
    media = params.get("media_urls") or []
    if isinstance(media, str):
        media = [media]
    if not isinstance(media, list) or not all(isinstance(url, str) for url in media):
        raise _invalid("'media_urls' must be a list of URLs")
    media = [_clean(url, "media_urls") for url in media]
    if media and channel != "mms":
        raise _invalid("'media_urls' needs the mms channel: write 'to' as mms:+1…")
    method = _optional_text(params, "status_callback_method") or "POST"
    callback = _optional_text(params, "status_callback") or ""
    send = SendRequest(
        to=to,
        from_=sender,
        body=_optional_text(params, "body"),
        media_urls=tuple(media),
        status_callback=_checked_url(callback, "status_callback"),
        status_callback_method=method.upper(),
        callback_format="rcml",
    )
    message = await _send(request, account, send)
    answer = _as_json(_message_fields(message, account.sid))
    return JSONResponse({**answer, "media_urls": list(message.media_urls)})


# -- applications -----------------------------------------------------------------------------


def _rcml_url(application: Application) -> str | None:
    kind = application.extra.get("kind")
    if kind == "ussd":
        return application.extra.get("ussd_url")
    if kind == "voice":
        return application.voice_url
    if kind == "sms":
        return application.sms_url
    return application.sms_url or application.voice_url


def _application_settings(form: Mapping[str, str], current: Application | None) -> dict[str, Any]:
    """The settings Restcomm's parameters ask for, leaving out what they do not mention.

    One `RcmlUrl` serves the kind of the application: `sms_url` for sms, `voice_url` for
    voice, both without a kind (Restcomm runs such an app on either channel), and for ussd,
    which Verbal does not run, a setting kept in `extra`.
    """
    settings: dict[str, Any] = {}
    extra = dict(current.extra) if current else {}
    if "VoiceCallerIdLookup" in form:
        extra[CALLER_ID_LOOKUP] = _flag(form, "VoiceCallerIdLookup")
    if "Kind" in form or "RcmlUrl" in form:
        kind = extra.get("kind")
        if "Kind" in form:
            kind = form["Kind"].strip().lower() or None
            if kind is not None and kind not in KINDS:
                raise _invalid(f"Kind must be one of {', '.join(KINDS)}")
        url = _rcml_url(current) if current else None
        if "RcmlUrl" in form:
            url = _url(form, "RcmlUrl")
        extra.pop("kind", None)
        extra.pop("ussd_url", None)
        if kind is not None:
            extra["kind"] = kind
        if kind == "ussd" and url is not None:
            extra["ussd_url"] = url
        settings["sms_url"] = url if kind in (None, "sms") else None
        settings["voice_url"] = url if kind in (None, "voice") else None
    settings["extra"] = extra
    return settings


def _number_summary(number: PhoneNumber, applications: Mapping[int, Application]) -> list[Field]:
    def sid(application_id: int | None) -> str | None:
        application = applications.get(application_id or 0)
        return application.sid if application else None

    return [
        Field("Sid", "sid", number.sid),
        Field("FriendlyName", "friendly_name", number.friendly_name),
        Field("PhoneNumber", "phone_number", number.number),
        Field("VoiceApplicationSid", "voice_application_sid", sid(number.voice_application_id)),
        Field("SmsApplicationSid", "sms_application_sid", sid(number.application_id)),
    ]


def _application_fields(
    application: Application, account_sid: str, numbers: list[list[Field]] | None
) -> list[Field]:
    uri = f"/{API_VERSION}/Accounts/{account_sid}/Applications/{application.sid}"
    fields = [
        Field("Sid", "sid", application.sid),
        *_dates(application.date_created, application.date_updated),
        Field("FriendlyName", "friendly_name", application.friendly_name),
        Field("AccountSid", "account_sid", account_sid),
        Field("ApiVersion", "api_version", API_VERSION),
        Field(
            "VoiceCallerIdLookup",
            "voice_caller_id_lookup",
            bool(application.extra.get(CALLER_ID_LOOKUP)),
        ),
        *_uri_fields(uri),
        Field("RcmlUrl", "rcml_url", _rcml_url(application)),
        Field("Kind", "kind", application.extra.get("kind")),
    ]
    if numbers is not None:
        fields.append(Field("Numbers", "numbers", Records("Number", numbers)))
    return fields


async def _applications_fields(
    request: Request, account_sid: str, applications: list[Application], *, with_numbers: bool
) -> list[list[Field]]:
    """The applications as resources, with their numbers when `includeNumbers` asks."""
    if not with_numbers:
        return [_application_fields(app, account_sid, None) for app in applications]
    ids = [app.id for app in applications]
    async with runtime(request).sessions() as session:
        numbers = list(
            await session.scalars(
                select(PhoneNumber)
                .where(
                    or_(
                        PhoneNumber.application_id.in_(ids),
                        PhoneNumber.voice_application_id.in_(ids),
                    )
                )
                .order_by(PhoneNumber.number)
            )
        )
    attached = await lookups.applications_by_id(
        request, [i for n in numbers for i in (n.application_id, n.voice_application_id)]
    )
    return [
        _application_fields(
            app,
            account_sid,
            [
                _number_summary(number, attached)
                for number in numbers
                if app.id in (number.application_id, number.voice_application_id)
            ],
        )
        for app in applications
    ]


IncludeNumbers = Annotated[
    str | None, Query(alias="includeNumbers", description="`true`: list the numbers using it.")
]
ApplicationSid = Annotated[str, Path(alias="ApplicationSid")]


async def _application_response(
    request: Request, account: Account, application: Application, include_numbers: str | None
) -> Response:
    with_numbers = (include_numbers or "").lower() == "true"
    [fields] = await _applications_fields(
        request, account.sid, [application], with_numbers=with_numbers
    )
    return _resource_response(request, "Application", fields)


async def _application_for_path(request: Request, account: Account, sid: str) -> Application:
    application = await lookups.account_application(request, account, sid)
    if application is None:
        raise _not_found(f"/{API_VERSION}/Accounts/{account.sid}/Applications/{sid}")
    return application


@_route("POST", "/{AccountSid}/Applications", "Create an application", takes=APPLICATION_PARAMETERS)
async def create_application(request: Request, account: OwnAccount) -> Response:
    form = await _form(request)
    name = _required(form, "FriendlyName", "Friendly name can not be null.", INVALID_PARAMETER)
    settings = _application_settings(form, None)
    application = await runtime(request).directory.create_application(
        account, name, dialect="rcml", **settings
    )
    return await _application_response(request, account, application, None)


@_route("GET", "/{AccountSid}/Applications/{ApplicationSid}", "Fetch an application")
async def fetch_application(
    request: Request,
    account: OwnAccount,
    sid: ApplicationSid,
    include_numbers: IncludeNumbers = None,
) -> Response:
    application = await _application_for_path(request, account, sid)
    return await _application_response(request, account, application, include_numbers)


@_route(
    ("POST", "PUT"),
    "/{AccountSid}/Applications/{ApplicationSid}",
    "Update an application",
    takes=APPLICATION_PARAMETERS,
)
async def update_application(
    request: Request, account: OwnAccount, sid: ApplicationSid
) -> Response:
    application = await _application_for_path(request, account, sid)
    form = await _form(request)
    settings = _application_settings(form, application)
    if "FriendlyName" in form:
        settings["friendly_name"] = _required(
            form, "FriendlyName", "Friendly name can not be empty.", INVALID_PARAMETER
        )
    try:
        updated = await runtime(request).directory.update_application(application, settings)
    except LookupError:
        raise _not_found(f"/{API_VERSION}/Accounts/{account.sid}/Applications/{sid}") from None
    return await _application_response(request, account, updated, None)


@_route(
    "DELETE", "/{AccountSid}/Applications/{ApplicationSid}", "Delete an application", status=204
)
async def delete_application(
    request: Request, account: OwnAccount, sid: ApplicationSid
) -> Response:
    application = await _application_for_path(request, account, sid)
    await runtime(request).directory.delete_application(application)
    return Response(status_code=204)


@_route("GET", "/{AccountSid}/Applications", "List applications, oldest first")
async def list_applications(
    request: Request,
    account: OwnAccount,
    paging: PageParams,
    include_numbers: IncludeNumbers = None,
) -> Response:
    listing = ListQuery(lookups.applications(account))
    with_numbers = (include_numbers or "").lower() == "true"
    listing.filter("includeNumbers", "true" if with_numbers else None)
    page = await _page(
        request,
        listing,
        paging,
        # A deleted application still anchors the page after it.
        scope=(Application.account_id == account.id) & Application.number_owned.is_(False),
        sid_column=Application.sid,
        order=Application.id,
        descending=False,
    )
    items = await _applications_fields(request, account.sid, page.rows, with_numbers=with_numbers)
    return _list_response(request, page, "Applications", "applications", "Application", items)


# -- incoming phone numbers -------------------------------------------------------------------


def _number_fields(
    number: PhoneNumber, account_sid: str, applications: Mapping[int, Application]
) -> list[Field]:
    own = applications.get(number.own_application_id or 0)
    sms_app = applications.get(number.application_id or 0)
    voice_app = applications.get(number.voice_application_id or 0)

    def own_setting(column: str, default: str | None = None) -> Any:
        return getattr(own, column) if own is not None else default

    def attached(tag: str, key: str, application: Application | None) -> list[Field]:
        fields = [Field(f"{tag}Sid", f"{key}_sid", application.sid if application else None)]
        if application is not None:
            fields.append(Field(f"{tag}Name", f"{key}_name", application.friendly_name))
        return fields

    # The number's configuration lives partly in its own application.
    updated = max(number.date_updated, own.date_updated) if own else number.date_updated
    uri = f"/{API_VERSION}/Accounts/{account_sid}/IncomingPhoneNumbers/{number.sid}"
    return [
        Field("Sid", "sid", number.sid),
        Field("AccountSid", "account_sid", account_sid),
        Field("FriendlyName", "friendly_name", number.friendly_name),
        Field("PhoneNumber", "phone_number", number.number),
        Field("VoiceUrl", "voice_url", own_setting("voice_url")),
        Field("VoiceMethod", "voice_method", own_setting("voice_method", "POST")),
        Field("VoiceFallbackUrl", "voice_fallback_url", own_setting("voice_fallback_url")),
        Field(
            "VoiceFallbackMethod",
            "voice_fallback_method",
            own_setting("voice_fallback_method", "POST"),
        ),
        Field("StatusCallback", "status_callback", own_setting("status_callback")),
        Field(
            "StatusCallbackMethod",
            "status_callback_method",
            own_setting("status_callback_method", "POST"),
        ),
        Field(
            "VoiceCallerIdLookup",
            "voice_caller_id_lookup",
            bool(own.extra.get(CALLER_ID_LOOKUP)) if own else False,
        ),
        *attached("VoiceApplication", "voice_application", voice_app),
        *_dates(number.date_created, updated),
        Field("SmsUrl", "sms_url", own_setting("sms_url")),
        Field("SmsMethod", "sms_method", own_setting("sms_method", "POST")),
        Field("SmsFallbackUrl", "sms_fallback_url", own_setting("sms_fallback_url")),
        Field(
            "SmsFallbackMethod", "sms_fallback_method", own_setting("sms_fallback_method", "POST")
        ),
        *attached("SmsApplication", "sms_application", sms_app),
        # What Verbal can do with the number: texts, media and calls, no faxes.
        Field(
            "Capabilities",
            "capabilities",
            [
                Field("Voice", "voice_capable", True),
                Field("Sms", "sms_capable", True),
                Field("Mms", "mms_capable", True),
                Field("Fax", "fax_capable", False),
            ],
        ),
        Field("ApiVersion", "api_version", API_VERSION),
        *_uri_fields(uri),
    ]


async def _numbers_fields(
    request: Request, account_sid: str, numbers: list[PhoneNumber]
) -> list[list[Field]]:
    applications = await lookups.applications_by_id(
        request,
        [
            id_
            for n in numbers
            for id_ in (n.application_id, n.voice_application_id, n.own_application_id)
        ],
    )
    return [_number_fields(number, account_sid, applications) for number in numbers]


async def _number_response(request: Request, account: Account, number: PhoneNumber) -> Response:
    [fields] = await _numbers_fields(request, account.sid, [number])
    return _resource_response(request, "IncomingPhoneNumber", fields)


@dataclass(frozen=True, slots=True)
class NumberChanges:
    friendly_name: str | Keep
    application: Application | Keep | None
    voice_application: Application | Keep | None
    own_settings: dict[str, Any]


async def _number_changes(
    request: Request, account: Account, form: Mapping[str, str], own: Application | None
) -> NumberChanges:
    """What the parameters change, all checked before anything is stored.

    `SmsApplicationSid`/`VoiceApplicationSid` attach an application (empty: detach), which
    then answers instead of the number's own URLs; the URLs themselves go to the number's own
    application, an RCML one. `isSIP`, the capability flags and `AccountSid` (moving the
    number) are accepted and ignored.
    """

    async def application(name: str) -> Application | Keep | None:
        if name not in form:
            return KEEP
        sid = form[name].strip()
        if not sid:
            return None
        found = await lookups.account_application(request, account, sid)
        if found is None:
            raise _invalid(f"{name} {sid} is not an application of this account")
        return found

    own_settings: dict[str, Any] = {}
    for name, column in NUMBER_URLS.items():
        if name in form:
            own_settings[column] = _url(form, name)
    for name, column in NUMBER_METHODS.items():
        if name in form:
            own_settings[column] = _method(form, name)
    if "VoiceCallerIdLookup" in form:
        extra = dict(own.extra) if own else {}
        extra[CALLER_ID_LOOKUP] = _flag(form, "VoiceCallerIdLookup")
        own_settings["extra"] = extra
    if own_settings:
        own_settings["dialect"] = "rcml"
    return NumberChanges(
        friendly_name=form.get("FriendlyName", KEEP),
        application=await application("SmsApplicationSid"),
        voice_application=await application("VoiceApplicationSid"),
        own_settings=own_settings,
    )


async def _apply(
    request: Request, account: Account, number: PhoneNumber, changes: NumberChanges
) -> PhoneNumber:
    try:
        return await runtime(request).directory.configure_number(
            number,
            friendly_name=changes.friendly_name,
            application=changes.application,
            voice_application=changes.voice_application,
            own_settings=changes.own_settings,
        )
    except LookupError:
        # Released while this request ran.
        path = f"/{API_VERSION}/Accounts/{account.sid}/IncomingPhoneNumbers/{number.sid}"
        raise _not_found(path) from None


@_route(
    "POST",
    "/{AccountSid}/IncomingPhoneNumbers",
    "Add a number to the account",
    takes=("PhoneNumber", *NUMBER_PARAMETERS),
)
async def create_number(request: Request, account: OwnAccount) -> Response:
    form = await _form(request)
    raw = _required(form, "PhoneNumber", "Phone number can not be null.", INVALID_PARAMETER)
    try:
        e164 = to_e164(raw)
    except InvalidNumber:
        raise RestcommError(400, INVALID_NUMBER, f"{raw!r} is not a phone number") from None
    changes = await _number_changes(request, account, form, None)
    friendly_name = changes.friendly_name if isinstance(changes.friendly_name, str) else ""
    try:
        number = await runtime(request).directory.add_number(account, e164, friendly_name)
    except AlreadyExists:
        raise RestcommError(
            400, NUMBER_UNAVAILABLE, f"{e164} is not available: it already belongs to an account"
        ) from None
    # The name is set; what is left is where the number's texts and calls go.
    number = await _apply(request, account, number, replace(changes, friendly_name=KEEP))
    return await _number_response(request, account, number)


PhoneNumberSid = Annotated[str, Path(alias="PhoneNumberSid")]


async def _number_for_path(request: Request, account: Account, sid: str) -> PhoneNumber:
    number = await runtime(request).directory.number_by_sid(account, sid)
    if number is None:
        raise _not_found(f"/{API_VERSION}/Accounts/{account.sid}/IncomingPhoneNumbers/{sid}")
    return number


@_route("GET", "/{AccountSid}/IncomingPhoneNumbers/{PhoneNumberSid}", "Fetch a number")
async def fetch_number(request: Request, account: OwnAccount, sid: PhoneNumberSid) -> Response:
    number = await _number_for_path(request, account, sid)
    return await _number_response(request, account, number)


@_route(
    ("POST", "PUT"),
    "/{AccountSid}/IncomingPhoneNumbers/{PhoneNumberSid}",
    "Update a number",
    takes=NUMBER_PARAMETERS,
)
async def update_number(request: Request, account: OwnAccount, sid: PhoneNumberSid) -> Response:
    number = await _number_for_path(request, account, sid)
    form = await _form(request)
    own = await runtime(request).directory.own_application(number)
    changes = await _number_changes(request, account, form, own)
    number = await _apply(request, account, number, changes)
    return await _number_response(request, account, number)


@_route(
    "DELETE",
    "/{AccountSid}/IncomingPhoneNumbers/{PhoneNumberSid}",
    "Release a number",
    status=204,
)
async def delete_number(request: Request, account: OwnAccount, sid: PhoneNumberSid) -> Response:
    number = await _number_for_path(request, account, sid)
    await runtime(request).directory.release_number(number)
    return Response(status_code=204)


@_route("GET", "/{AccountSid}/IncomingPhoneNumbers", "List numbers, by number")
async def list_numbers(
    request: Request,
    account: OwnAccount,
    paging: PageParams,
    phone_number: Annotated[
        str | None, Query(alias="PhoneNumber", description="Contains this text.")
    ] = None,
    friendly_name: Annotated[
        str | None, Query(alias="FriendlyName", description="Contains this text.")
    ] = None,
) -> Response:
    listing = ListQuery(lookups.numbers(account))
    listing.filter(
        "PhoneNumber", phone_number, lambda text: PhoneNumber.number.contains(text, autoescape=True)
    )
    listing.filter(
        "FriendlyName",
        friendly_name,
        lambda text: PhoneNumber.friendly_name.contains(text, autoescape=True),
    )
    page = await _page(
        request,
        listing,
        paging,
        scope=PhoneNumber.account_id == account.id,
        sid_column=PhoneNumber.sid,
        order=PhoneNumber.number,
        descending=False,
    )
    items = await _numbers_fields(request, account.sid, page.rows)
    return _list_response(
        request,
        page,
        "IncomingPhoneNumbers",
        "incomingPhoneNumbers",
        "IncomingPhoneNumber",
        items,
    )
