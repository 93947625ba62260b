"""The fast lane: `POST …/Messages.json` answered without FastAPI's form machinery.

Why: sending is the one request a platform like this takes thousands of times a second, and
FastAPI's form parameters, dependency injection and validation cost about 0.3 ms a request
(`shared/spec/performance.md`), a third of Verbal's CPU per message end to end in the profile
of `bench/results.md`. A plain, well-formed send (the fields `FAST_FIELDS`, each once,
`MediaUrl` any number of times) is parsed here and handed to the same function the FastAPI
route calls (`twilio.accept_message`), so the two cannot differ in what they accept or
answer. Anything else (another field, a repeated one, a non-integer `ValidityPeriod`, a
NUL, credentials that do not open the account) goes on to the FastAPI route with its body
replayed untouched, which answers it as it always did, and the route stays the one the
OpenAPI document describes.
"""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import parse_qsl

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from verbal.api.errors import ApiError, overloaded, render
from verbal.api.twilio import PREFIX, accept_message
from verbal.messaging.service import Overloaded, SendRequest
from verbal.store.models import Account

_PATH = re.compile(re.escape(PREFIX) + r"/(AC[0-9a-fA-F]{32})/Messages\.json")
FAST_FIELDS = frozenset(
    {
        "To",
        "From",
        "Body",
        "MediaUrl",
        "StatusCallback",
        "StatusCallbackMethod",
        "ValidityPeriod",
        "MessagingServiceSid",
    }
)
_FORM = b"application/x-www-form-urlencoded"


class FastLane:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        match = _PATH.fullmatch(scope["path"])
        headers = dict(scope["headers"])
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if match is None or content_type != _FORM:
            await self.app(scope, receive, send)
            return
        body, more = await _read(receive, self.max_bytes)
        if more is not None:  # over the limit: the size guard answers, as for any request
            await self.app(scope, _replay(body, more, receive), send)
            return
        request = _plain_send(body)
        account = None
        if request is not None:
            account = await _account(scope, headers.get(b"authorization", b""), match.group(1))
        if request is None or account is None:
            await self.app(scope, _replay(body, None, receive), send)
            return
        runtime = scope["app"].state.runtime
        try:
            answer = await accept_message(runtime, account, request)
        except Overloaded as exc:
            await render(overloaded(exc))(scope, receive, send)
            return
        except ApiError as error:
            await render(error)(scope, receive, send)
            return
        await JSONResponse(answer, status_code=201)(scope, receive, send)


async def _read(receive: Receive, limit: int) -> tuple[bytes, Message | None]:
    """The body, or as much as the limit allows and the message that went over it."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), message
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"".join(chunks), message
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), None


def _replay(body: bytes, pending: Message | None, receive: Receive) -> Receive:
    """A `receive` that gives back what was read, then carries on with the real one."""
    queue: list[Message] = [
        {"type": "http.request", "body": body, "more_body": pending is not None}
    ]
    if pending is not None:
        queue.append(pending)

    async def replayed() -> Message:
        return queue.pop(0) if queue else await receive()

    return replayed


def _plain_send(body: bytes) -> SendRequest | None:
    """The send a plain form asks for, or None when the FastAPI route must judge it."""
    try:
        fields = parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        return None
    values: dict[str, str] = {}
    media: list[str] = []
    for name, value in fields:
        if name not in FAST_FIELDS or "\x00" in value:
            return None
        if name == "MediaUrl":
            media.append(value)
        elif name in values:
            return None
        else:
            values[name] = value
    validity = values.get("ValidityPeriod")
    if validity is not None and not validity.isdigit():
        return None
    return SendRequest(
        to=values.get("To"),
        from_=values.get("From"),
        body=values.get("Body"),
        media_urls=tuple(media),
        status_callback=values.get("StatusCallback"),
        status_callback_method=values.get("StatusCallbackMethod", "POST").upper(),
        callback_format="twilio",
        validity_period=int(validity) if validity is not None else None,
        messaging_service_sid=values.get("MessagingServiceSid") or None,
    )


async def _account(scope: Scope, authorization: bytes, path_sid: str) -> Account | None:
    """The account the credentials open, if it is the one the path names."""
    scheme, _, encoded = authorization.partition(b" ")
    if scheme.lower() != b"basic" or not encoded:
        return None
    try:
        username, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    if username != path_sid:
        return None
    return await scope["app"].state.runtime.directory.authenticate(username, password)
