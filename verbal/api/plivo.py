"""Plivo's Message API (v1): send, get and list, as the `plivo` SDK (4.x) calls it.

Paths live under `/v1/Account/{auth_id}/` with Plivo's trailing slash. Send bodies are JSON
(form bodies are accepted too); every answer carries an `api_id`, and every error is Plivo's
`{"api_id", "error"}` with the HTTP status the SDK maps to its exceptions (400
ValidationError, 401 AuthenticationError, 404 ResourceNotFoundError). Message UUIDs are the
Verbal SIDs shown in UUID form (`verbal.dialects.plivo.message_uuid`), and delivery reports to
`url` go out in Plivo's format.
"""

from __future__ import annotations

import ast
import json
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, NamedTuple, TypeVar

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy import ColumnElement
from starlette.exceptions import HTTPException as StarletteHTTPException

from verbal.api import lookups
from verbal.api.auth import authenticated_account, runtime
from verbal.api.errors import ApiError, overloaded
from verbal.api.limits import MAX_ROW_ID
from verbal.api.paging import Key, ListQuery, Window, link, read_counted
from verbal.dialects.plivo import ERROR_CODES, NO_CHARGE, STATUSES, UNKNOWN_ERROR, powerpack_uuid
from verbal.dialects.plivo import message_uuid as uuid_of
from verbal.messaging.errors import MessageRefused, Refusal
from verbal.messaging.service import Overloaded, SendRequest
from verbal.store.models import Account, Message

PREFIX = "/v1/Account"
DEFAULT_LIMIT = 20
MAX_LIMIT = 20  # the SDK refuses anything else (0 < limit <= 20)
MAX_DESTINATIONS = 1000
TYPES = ("sms", "mms")
# Plivo strips these from `dst` (and `src`) before reading the number.
_STRIPPED = re.compile(r"[/\-.+() ]")

# Refusals in Plivo's words, naming Plivo's parameters.
REFUSAL_TEXT: dict[Refusal, str] = {
    Refusal.TO_MISSING: "Missing mandatory parameter: dst",
    Refusal.FROM_MISSING: "Missing mandatory parameter: src",
    Refusal.BODY_MISSING: "Missing mandatory parameter: text",
    Refusal.TO_INVALID: "invalid dst",
    Refusal.FROM_INVALID: "invalid src",
    Refusal.FROM_NOT_OWNED: "src {src} is not a number of this account",
    Refusal.BODY_TOO_LONG: "text parameter length exceeds the limit of 1600 characters",
    Refusal.TOO_MANY_MEDIA: "media_urls can hold at most 10 urls",
    Refusal.MEDIA_URL_INVALID: "invalid media_urls",
    Refusal.CALLBACK_URL_INVALID: "invalid url",
    Refusal.CALLBACK_METHOD_INVALID: "method must be GET or POST",
    Refusal.UNREACHABLE: "no route to dst",
    Refusal.VALIDITY_INVALID: "invalid message_expiry",
    Refusal.SEND_AT_OUT_OF_RANGE: "invalid schedule time",
    # The reason Plivo gives for its error 200.
    Refusal.OPTED_OUT: "Source number blocked by STOP from the destination",
    Refusal.SERVICE_NOT_FOUND: "invalid powerpack_uuid",
    Refusal.SERVICE_EMPTY: "powerpack has no numbers to send from",
    Refusal.NOT_CANCELABLE: "message cannot be canceled",
    Refusal.IN_PROGRESS: "message is still in progress",
}
# Refusals that concern one destination: in a bulk send they only drop that destination.
PER_DESTINATION = frozenset({Refusal.TO_INVALID, Refusal.UNREACHABLE, Refusal.OPTED_OUT})

# Plivo's message_state filter, in Verbal's statuses.
_STATES: dict[str, tuple[str, ...]] = {}
for _verbal, _plivo in STATUSES.items():
    _STATES[_plivo] = (*_STATES.get(_plivo, ()), _verbal)
_STATES["received"] = ("receiving", "received")


class PlivoError(Exception):
    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


def api_id() -> str:
    return str(uuid.uuid4())


def _render(status: int, error: str) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Basic realm="Verbal"'} if status == 401 else None
    return JSONResponse({"api_id": api_id(), "error": error}, status_code=status, headers=headers)


def _validation_text(exc: RequestValidationError) -> str:
    first = exc.errors()[0] if exc.errors() else {}
    location = [str(part) for part in first.get("loc", ())]
    name = ".".join(location[1:]) if len(location) > 1 else "".join(location)
    return f"invalid {name}: {first.get('msg', 'is invalid')}"


class PlivoRoute(APIRoute):
    """Answers every failure of these routes (auth, validation, refusals) in Plivo's shape."""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handler = super().get_route_handler()

        async def plivo_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except PlivoError as exc:
                return _render(exc.status, exc.error)
            except Overloaded as exc:
                return _render(429, overloaded(exc).message)
            except ApiError as exc:
                text = "authentication failed" if exc.status == 401 else exc.message
                return _render(exc.status, text)
            except RequestValidationError as exc:
                return _render(400, _validation_text(exc))
            except StarletteHTTPException as exc:
                return _render(exc.status_code, str(exc.detail))

        return plivo_handler


router = APIRouter(prefix=PREFIX, tags=["Plivo Messages"], route_class=PlivoRoute)

AuthId = Annotated[str, Path(description="The account's Plivo auth id (MA…).")]


async def account_for_path(
    auth_id: AuthId, account: Annotated[Account, Depends(authenticated_account)]
) -> Account:
    """The authenticated account, which must be the one the path names."""
    if account.plivo_auth_id != auth_id:
        raise PlivoError(401, "authentication failed")
    return account


OwnAccount = Annotated[Account, Depends(account_for_path)]
# A filter's text goes to the database, and PostgreSQL refuses NUL in text.
Filter = Annotated[str | None, Query(pattern=r"^[^\x00]*$")]

Row = TypeVar("Row")


# -- lists --------------------------------------------------------------------------------------


class Paging(NamedTuple):
    limit: int
    offset: int


def paging(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    offset: Annotated[int, Query(ge=0, le=MAX_ROW_ID)] = 0,
) -> Paging:
    return Paging(limit, offset)


PageParams = Annotated[Paging, Depends(paging)]


class Page(NamedTuple, Generic[Row]):
    """The rows of one page, how many the list has in all, and the filters to repeat."""

    rows: list[Row]
    total: int
    paging: Paging
    filters: Sequence[tuple[str, str]]


async def read_page(
    request: Request, listing: ListQuery[Row], paging: Paging, key: Key, *, descending: bool = False
) -> Page[Row]:
    """One page of the list's rows in `key` order."""
    window = Window(key, paging.limit, paging.offset, descending=descending)
    async with runtime(request).sessions() as session:
        rows, total = await read_counted(session, listing, window)
    return Page(rows, total, paging, listing.params)


def list_answer(path: str, page: Page[Any], objects: list[dict[str, Any]]) -> dict[str, Any]:
    """A list in Plivo's shape. `next` and `previous` carry the filters along, and the SDK's
    auto-paging follows `next`'s own limit and offset."""
    (limit, offset), total = page.paging, page.total

    def page_uri(at: int) -> str:
        return link(path, [("limit", limit), ("offset", at), *page.filters])

    return {
        "api_id": api_id(),
        "meta": {
            "limit": limit,
            "offset": offset,
            "next": page_uri(offset + limit) if offset + limit < total else None,
            "previous": page_uri(max(offset - limit, 0)) if offset > 0 else None,
            "total_count": total,
        },
        "objects": objects,
    }


# -- representation -----------------------------------------------------------------------------


def plivo_number(number: str) -> str:
    """Plivo writes numbers as bare digits with the country code (`14151112222`)."""
    return number[1:] if number.startswith("+") and number[1:].isdigit() else number


def as_e164(raw: str) -> str:
    """A number as Plivo reads it: separators stripped, always international."""
    digits = _STRIPPED.sub("", raw)
    return "+" + digits if digits.isdigit() else raw


def plivo_time(value: datetime | None) -> str | None:
    """`2017-05-22 21:36:14+00:00`, as Plivo's MDRs show times."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(microsecond=0).isoformat(sep=" ")


def message_state(message: Message) -> str:
    if message.direction == "inbound":
        return "received"
    return STATUSES.get(message.status, message.status)


def type_of(message: Message) -> str:
    return "mms" if message.media_urls else "sms"


def message_json(message: Message, auth_id: str) -> dict[str, Any]:
    uuid_ = uuid_of(message.sid)
    state = message_state(message)
    error_code = None
    if state in ("failed", "undelivered"):
        error_code = str(ERROR_CODES.get(message.error_code or 0, UNKNOWN_ERROR))
    return {
        "message_uuid": uuid_,
        "from_number": plivo_number(message.from_number),
        "to_number": plivo_number(message.to_number),
        "message_state": state,
        "message_direction": "inbound" if message.direction == "inbound" else "outbound",
        "message_type": type_of(message),
        "message_time": plivo_time(message.date_created),
        "message_sent_time": plivo_time(message.date_sent),
        "message_updated_time": plivo_time(message.date_updated),
        "text": message.body,
        "units": message.num_segments,
        "total_amount": NO_CHARGE,
        "total_rate": NO_CHARGE,
        "error_code": error_code,
        "error_message": message.error_message if error_code else None,
        "powerpack_id": powerpack_uuid(message.messaging_service_sid) or None,
        "resource_uri": f"{PREFIX}/{auth_id}/Message/{uuid_}/",
    }


# -- send ---------------------------------------------------------------------------------------


async def request_params(request: Request) -> dict[str, Any]:
    """A request's body: JSON as the SDK sends it, or a form as cURL users send it."""
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        try:
            form = await request.form()
        except (AssertionError, ValueError, UnicodeDecodeError):
            raise PlivoError(400, "invalid form data sent in POST") from None
        params: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str)}
        media = [v for k in ("media_urls", "media_urls[]") for v in form.getlist(k)]
        params.pop("media_urls[]", None)
        if media:
            params["media_urls"] = media
        return params
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        params = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise PlivoError(400, "invalid json data sent in raw POST") from None
    if not isinstance(params, dict):
        raise PlivoError(400, "invalid json data sent in raw POST")
    return params


def text_param(params: Mapping[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise PlivoError(400, f"{name} must be a string")
    if "\x00" in value:
        raise PlivoError(400, f"{name} must not contain NUL characters")
    return value


def _destinations(value: Any) -> str | None:
    """`dst` as `a<b<c`. Also taken: a JSON list, and the `"['a', 'b']"` that plivo-python
    4.x actually sends when given a list (it documents joining with `<`, but sends the
    list's repr)."""
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            value = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise PlivoError(400, "invalid dst") from None
    if isinstance(value, list | tuple):
        if not all(isinstance(item, str) for item in value):
            raise PlivoError(400, "dst must be a string of numbers separated by <")
        return "<".join(value)
    if value is not None and not isinstance(value, str):
        raise PlivoError(400, "dst must be a string of numbers separated by <")
    return value


def _refusal(refused: MessageRefused, src: str) -> PlivoError:
    return PlivoError(400, REFUSAL_TEXT[refused.reason].format(src=src))


@router.post("/{auth_id}/Message/", status_code=202, summary="Send a message")
async def send_message(request: Request, account: OwnAccount) -> dict[str, Any]:
    params = await request_params(request)
    src = text_param(params, "src")
    service_sid = _service_sid(text_param(params, "powerpack_uuid"))
    dst = _destinations(params.get("dst"))
    text = text_param(params, "text")
    kind = (text_param(params, "type") or "sms").lower()
    url = text_param(params, "url")
    method = (text_param(params, "method") or "POST").upper()
    media = params.get("media_urls") or []
    if isinstance(media, str):
        media = [media]
    if not isinstance(media, list) or not all(isinstance(m, str) for m in media):
        raise PlivoError(400, "media_urls must be a list of urls")
    expiry = params.get("message_expiry")
    if expiry is not None:
        try:
            expiry = int(expiry)
        except (TypeError, ValueError):
            raise PlivoError(400, "invalid message_expiry") from None

    if not src and not service_sid:
        raise PlivoError(400, REFUSAL_TEXT[Refusal.FROM_MISSING])
    if src and service_sid:
        raise PlivoError(400, "src and powerpack_uuid cannot both be given")
    if not dst or not dst.strip("< "):
        raise PlivoError(400, REFUSAL_TEXT[Refusal.TO_MISSING])
    if kind not in TYPES:
        raise PlivoError(400, f"type {kind!r} is not supported (sms or mms)")
    if media and kind != "mms":
        raise PlivoError(400, "media_urls can only be sent with type mms")
    # Duplicates are dropped, as Plivo drops them; each one left is its own message.
    destinations = list(dict.fromkeys(d.strip() for d in dst.split("<") if d.strip()))
    if len(destinations) > MAX_DESTINATIONS:
        raise PlivoError(400, f"dst can hold at most {MAX_DESTINATIONS} numbers")
    sender = as_e164(src) if src else None
    if sender is not None and sender in (as_e164(d) for d in destinations):
        raise PlivoError(400, "destination number cannot be same as source number")

    messaging = runtime(request).messaging
    messaging.admit_check()
    await messaging.prepare(len(destinations))
    uuids: list[str] = []
    invalid: list[str] = []
    first_refusal: MessageRefused | None = None
    # One transaction: a refusal that concerns the whole request (src, text, url...) sends
    # nothing at all; one that concerns a destination only drops that destination.
    async with runtime(request).sessions.begin() as session:
        for destination in destinations:
            send = SendRequest(
                to=as_e164(destination),
                from_=sender,
                body=text,
                media_urls=tuple(media),
                status_callback=url or None,
                status_callback_method=method,
                callback_format="plivo",
                validity_period=expiry,
                messaging_service_sid=service_sid,
            )
            try:
                message = await messaging.accept(session, account, send)
            except MessageRefused as refused:
                if refused.reason not in PER_DESTINATION:
                    raise _refusal(refused, src or "") from None
                first_refusal = first_refusal or refused
                invalid.append(destination)
                continue
            uuids.append(uuid_of(message.sid))
    if not uuids:
        assert first_refusal is not None
        raise _refusal(first_refusal, src or "")
    answer: dict[str, Any] = {
        "api_id": api_id(),
        "message": "message(s) queued",
        "message_uuid": uuids,
    }
    if invalid:
        answer["invalid_number"] = invalid
    return answer


# -- get and list -------------------------------------------------------------------------------


def _service_sid(powerpack_uuid: str | None) -> str | None:
    """The Messaging Service a Powerpack UUID names: a service's SID in UUID form, as
    message UUIDs are (`MG…` shown as its 128 bits). Plivo's Powerpack resource itself is not
    served: services are made through Twilio's Messaging Services API."""
    if not powerpack_uuid:
        return None
    try:
        return "MG" + uuid.UUID(powerpack_uuid).hex
    except ValueError:
        raise PlivoError(400, REFUSAL_TEXT[Refusal.SERVICE_NOT_FOUND]) from None


def _sid_of(message_uuid_: str) -> str | None:
    """The Verbal SID behind a MessageUUID (the inverse of `message_uuid`)."""
    try:
        return "SM" + uuid.UUID(message_uuid_).hex
    except ValueError:
        return None


@router.get("/{auth_id}/Message/{message_uuid}/", summary="Get a message")
async def get_message(
    request: Request, account: OwnAccount, message_uuid: Annotated[str, Path()]
) -> dict[str, Any]:
    sid = _sid_of(message_uuid)
    message = await lookups.account_message(request, account, sid) if sid else None
    if message is None:
        raise PlivoError(404, "not found")
    return {"api_id": api_id(), **message_json(message, account.plivo_auth_id)}


def _direction(direction: str) -> ColumnElement[bool]:
    if direction not in ("inbound", "outbound"):
        raise PlivoError(400, "message_direction must be inbound or outbound")
    inbound = Message.direction == "inbound"
    return inbound if direction == "inbound" else ~inbound


def _state(state: str) -> ColumnElement[bool]:
    states = _STATES.get(state)
    if states is None and state not in ("rejected", "read"):
        raise PlivoError(400, f"invalid message_state {state!r}")
    return Message.status.in_(states or ())


@router.get("/{auth_id}/Message/", summary="List messages, newest first")
async def list_messages(
    request: Request,
    account: OwnAccount,
    paging: PageParams,
    message_direction: Annotated[str | None, Query()] = None,
    message_state_: Annotated[str | None, Query(alias="message_state")] = None,
    message_type: Annotated[str | None, Query()] = None,
    from_number: Filter = None,
    to_number: Filter = None,
    powerpack_id: Filter = None,
) -> dict[str, Any]:
    listing = ListQuery(lookups.messages(account))
    listing.filter("message_direction", message_direction, _direction)
    listing.filter("message_state", message_state_, _state)
    if message_type and message_type not in (*TYPES, "whatsapp"):
        raise PlivoError(400, f"invalid message_type {message_type!r}")
    # The type is not stored (it is whether there is media, a JSON list): filtered in Python.
    listing.filter("message_type", message_type, keep=lambda m: type_of(m) == message_type)
    listing.filter("from_number", from_number, lambda n: Message.from_number == as_e164(n))
    listing.filter("to_number", to_number, lambda n: Message.to_number == as_e164(n))
    listing.filter(
        "powerpack_id", powerpack_id, lambda p: Message.messaging_service_sid == _service_sid(p)
    )
    page = await read_page(request, listing, paging, Message.id, descending=True)
    auth_id = account.plivo_auth_id
    return list_answer(
        f"{PREFIX}/{auth_id}/Message/", page, [message_json(m, auth_id) for m in page.rows]
    )
