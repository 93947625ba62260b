"""The fast lane: the hottest routes answered without FastAPI's request machinery.

Why: sending is the one request a platform like this takes thousands of times a second, and
FastAPI's form parameters, dependency injection and validation cost about 0.3 ms a request
(`shared/spec/performance.md`), a third of Verbal's CPU per message end to end in the profile
of `bench/results.md`. A handset's text through the sandbox API is the same for an app's
conversation: it is how tests and `bench/app_round_trip.py` start every session, and through
FastAPI it cost 40 % of the server's CPU per session.

Each route served here is a `Lane`: the path it answers, the media type it reads, a parser
that makes the route's own request value of a *plain* body (or None) and the function that
the FastAPI route calls too, so the two cannot differ in what they accept or answer:

- `POST …/Accounts/{AccountSid}/Messages.json`, a form of the fields `FAST_FIELDS`, each
  once, `MediaUrl` any number of times, an integer `ValidityPeriod` and no NUL, ends in
  `twilio.accept_message`;
- `POST /sandbox/handsets/{number}/messages`, a JSON object of `to`, `body` and
  `media_urls` with the types and limits of `sandbox.HandsetText`, ends in
  `sandbox.accept_handset_text`.

Anything else (another field, a repeated one, a wrong type, another media type, credentials
that do not open the account, or the path's account if it names one) goes on to the FastAPI
route with its body replayed untouched, which answers it as it always did, and the route
stays the one the OpenAPI document describes.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qsl

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from verbal.api.errors import ApiError, overloaded, render
from verbal.api.sandbox import (
    MAX_HANDSET_BODY,
    MAX_HANDSET_MEDIA,
    HandsetText,
    accept_handset_text,
    network,
)
from verbal.api.twilio import PREFIX, accept_message
from verbal.messaging.service import Overloaded, SendRequest
from verbal.runtime import Runtime
from verbal.store.models import Account

Parsed = TypeVar("Parsed")


@dataclass(frozen=True, slots=True)
class Lane(Generic[Parsed]):
    """One route served here; its answer is the route's `201` with a JSON body."""

    # A group named `account` in the path: the credentials must open that account.
    path: re.Pattern[str]
    media_type: bytes
    # The request a plain body asks for; None when the FastAPI route must judge the body.
    parse: Callable[[bytes], Parsed | None]
    # The route's own function. Raises ApiError or Overloaded.
    answer: Callable[[Runtime, Account, re.Match[str], Parsed], Awaitable[dict[str, Any]]]


class FastLane:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        served = _served(scope["path"], headers.get(b"content-type", b""))
        if served is None:
            await self.app(scope, receive, send)
            return
        lane, match = served
        body, more = await _read(receive, self.max_bytes)
        if more is not None:  # over the limit: the size guard answers, as for any request
            await self.app(scope, _replay(body, more, receive), send)
            return
        request = lane.parse(body)
        account = None
        if request is not None:
            account = await _account(scope, headers.get(b"authorization", b""), match)
        if request is None or account is None:
            await self.app(scope, _replay(body, None, receive), send)
            return
        try:
            answer = await lane.answer(scope["app"].state.runtime, account, match, request)
        except Overloaded as exc:
            await render(overloaded(exc))(scope, receive, send)
            return
        except ApiError as error:
            await render(error)(scope, receive, send)
            return
        await JSONResponse(answer, status_code=201)(scope, receive, send)


def _served(path: str, content_type: bytes) -> tuple[Lane[Any], re.Match[str]] | None:
    """The lane that serves a POST to `path` with this content type, and the path's match."""
    media_type = content_type.split(b";")[0].strip().lower()
    for lane in LANES:
        match = lane.path.fullmatch(path)
        if match is not None:
            return (lane, match) if media_type == lane.media_type else None
    return None


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


async def _account(scope: Scope, authorization: bytes, match: re.Match[str]) -> Account | None:
    """The account the credentials open, if it is the one the path names (where it names
    one)."""
    scheme, _, encoded = authorization.partition(b" ")
    if scheme.lower() != b"basic" or not encoded:
        return None
    try:
        username, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    if "account" in match.re.groupindex and username != match["account"]:
        return None
    return await scope["app"].state.runtime.directory.authenticate(username, password)


# -- POST …/Messages.json ------------------------------------------------------------------

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


async def _send(
    runtime: Runtime, account: Account, _: re.Match[str], send: SendRequest
) -> dict[str, Any]:
    return await accept_message(runtime, account, send)


# -- POST /sandbox/handsets/{number}/messages ------------------------------------------------

HANDSET_FIELDS = frozenset({"to", "body", "media_urls"})


def _plain_handset_text(body: bytes) -> HandsetText | None:
    """The text a plain JSON object asks for, or None when the FastAPI route must judge it:
    the checks are `HandsetText`'s (strings, the body's length, a list of at most
    `MAX_HANDSET_MEDIA` strings), and an object with another key goes to the route."""
    try:
        # As the route reads JSON (Starlette's `Request.json`): bytes in, any UTF encoding.
        fields = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, not text, or nested too deep
        return None
    if type(fields) is not dict or not fields.keys() <= HANDSET_FIELDS:
        return None
    to, text, media = fields.get("to"), fields.get("body", ""), fields.get("media_urls", [])
    if type(to) is not str or type(text) is not str or len(text) > MAX_HANDSET_BODY:
        return None
    if type(media) is not list or len(media) > MAX_HANDSET_MEDIA:
        return None
    if any(type(url) is not str for url in media):
        return None
    # Checked above as the model would; constructing it skips a second validation.
    return HandsetText.model_construct(to=to, body=text, media_urls=media)


async def _handset_text(
    runtime: Runtime, account: Account, match: re.Match[str], text: HandsetText
) -> dict[str, Any]:
    return await accept_handset_text(network(runtime), account, match["number"], text)


LANES: tuple[Lane[Any], ...] = (
    Lane(
        re.compile(re.escape(PREFIX) + r"/(?P<account>AC[0-9a-fA-F]{32})/Messages\.json"),
        b"application/x-www-form-urlencoded",
        _plain_send,
        _send,
    ),
    Lane(
        # Starlette's `{number}` path parameter: anything but a slash.
        re.compile(r"/sandbox/handsets/(?P<number>[^/]+)/messages"),
        b"application/json",
        _plain_handset_text,
        _handset_text,
    ),
)
