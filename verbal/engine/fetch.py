"""Fetch an app's document: one request, bounded in time and size, every failure a value.

Apps are other people's servers: slow, down, redirecting in circles or answering with a
megabyte of HTML. None of that may hang a worker or crash the engine, so every way a fetch
can end is a `Fetched` or a `FetchFailed` with a reason the session log can show.

A fetch for a conversation carries the cookies the app set earlier in it, on every hop their
domain and path match, and keeps what each answer sets (`verbal/webhooks/cookies.py`).

Each hop to a plain `http://` URL goes over the lean kept-alive client
(`verbal/webhooks/keepalive.py`), as status callbacks do; `https://` ones over aiohttp. The
fetcher follows redirects and keeps cookies itself either way, so both answer alike: through
aiohttp the fetch was the largest part of an app session's CPU after the database.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

from yarl import URL

from verbal.dialects.types import AppRequest
from verbal.forms import encode_form
from verbal.webhooks.client import HttpClient, exact_url, read_up_to, request_errors
from verbal.webhooks.conversations import ConversationCookies
from verbal.webhooks.cookies import Conversation, Jar
from verbal.webhooks.egress import EgressRefused
from verbal.webhooks.keepalive import RequestFailed

MAX_DOCUMENT_BYTES = 256 * 1024
MAX_REDIRECTS = 5
USER_AGENT = "Verbal/0.1"


@dataclass(frozen=True, slots=True)
class Fetched:
    url: str  # after redirects: relative URLs in the document resolve against it
    status: int
    content_type: str
    body: bytes
    latency_ms: float


class _TooManyRedirects(Exception):
    pass


@dataclass(frozen=True, slots=True)
class _Hop:
    """One request's answer, whichever client carried it."""

    status: int
    headers: list[tuple[str, str]]  # (name in lower case, value)
    body: bytes  # at most MAX_DOCUMENT_BYTES + 1, and none kept for a redirect

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key == name), None)


class FetchFailed(Exception):
    """`code`: set when the failure has a code of its own in every dialect (the egress
    policy's refusal); otherwise the dialect's fetch or status code applies."""

    def __init__(self, reason: str, status: int | None = None, code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.code = code


class AppFetcher:
    def __init__(
        self,
        client: HttpClient,
        timeout_seconds: float,
        cookies: ConversationCookies | None = None,
    ) -> None:
        self._client = client
        self._timeout = timeout_seconds
        self._cookies = cookies

    async def fetch(self, request: AppRequest, conversation: Conversation | None = None) -> Fetched:
        """`conversation`: whose cookies the request carries and keeps (None: no cookies)."""
        jar = None
        if conversation is not None and self._cookies is not None:
            jar = await self._cookies.jar(conversation)
        headers = {"User-Agent": USER_AGENT, **request.headers}
        url = request.wire_url
        content: bytes | None = None
        if request.method != "GET":
            if request.json is not None:
                content = json.dumps(request.json).encode()
                headers.setdefault("Content-Type", "application/json; charset=UTF-8")
            else:
                content = encode_form(request.form).encode()
                headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        started = time.perf_counter()
        # The time limit bounds the whole exchange, redirects included: an app that drips its
        # answer a byte at a time must not hold a worker any longer than one that says nothing.
        deadline = asyncio.get_running_loop().time() + self._timeout
        try:
            response = await self._send(request.method, url, headers, content, jar, deadline)
        except TimeoutError:
            raise FetchFailed(f"no answer within {self._timeout:g} s") from None
        except _TooManyRedirects:
            raise FetchFailed(f"more than {MAX_REDIRECTS} redirects (a redirect loop?)") from None
        except EgressRefused as refused:
            raise FetchFailed(f"egress refused: {refused.message}", code=refused.code) from None
        except (RequestFailed, *request_errors()) as exc:
            raise FetchFailed(f"{type(exc).__name__}: {exc}"[:300]) from None
        latency = round((time.perf_counter() - started) * 1000, 2)
        body, status, final_url, content_type, kept = response
        if kept is not jar and conversation is not None and self._cookies is not None:
            assert kept is not None
            await self._cookies.keep(conversation, kept)
        if not 200 <= status < 300:
            raise FetchFailed(f"the app answered HTTP {status}", status)
        return Fetched(final_url, status, content_type, body, latency)

    async def _send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        content: bytes | None,
        jar: Jar | None,
        deadline: float,
    ) -> tuple[bytes, int, str, str, Jar | None]:
        """The answer, and the conversation's jar after it (the same object if unchanged)."""
        target = url  # sent as written: signatures are computed over these bytes
        for _ in range(MAX_REDIRECTS + 1):
            sent = headers
            cookie = jar.header(target, time.time()) if jar and jar.cookies else None
            if cookie is not None:
                sent = {**headers, "Cookie": cookie}
            hop = await self._hop(method, target, sent, content, deadline)
            set_cookies = [value for name, value in hop.headers if name == "set-cookie"]
            if jar is not None and set_cookies:
                jar = jar.received(set_cookies, target, time.time())
            location = hop.header("location")
            if 300 <= hop.status < 400 and location:
                target = str(exact_url(target).join(URL(location)))
                # As browsers do: after 301/302/303 a POST becomes a bodiless GET.
                if hop.status in (301, 302, 303):
                    method, content = "GET", None
                    headers = {k: v for k, v in headers.items() if k != "Content-Type"}
                continue
            # One byte over the limit is enough to know the document is too large.
            if len(hop.body) > MAX_DOCUMENT_BYTES:
                raise FetchFailed(f"the document is larger than {MAX_DOCUMENT_BYTES // 1024} KiB")
            content_type = hop.header("content-type") or ""
            return hop.body, hop.status, target, content_type, jar
        raise _TooManyRedirects

    async def _hop(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        content: bytes | None,
        deadline: float,
    ) -> _Hop:
        """One request, no redirect followed, answered by `deadline` (loop time)."""
        loop = asyncio.get_running_loop()
        if url.startswith("http://"):
            answer = await self._client.kept_alive.request(
                method,
                url,
                headers,
                content,
                excerpt_limit=MAX_DOCUMENT_BYTES + 1,
                time_limit=deadline - loop.time(),
                keep_headers=True,
            )
            return _Hop(answer.status, answer.headers, answer.body)
        async with asyncio.timeout_at(deadline):
            async with self._client.session.request(
                method, exact_url(url), headers=headers, data=content, allow_redirects=False
            ) as response:
                kept = [(name.lower(), value) for name, value in response.headers.items()]
                body = b""
                if not (300 <= response.status < 400 and "Location" in response.headers):
                    body = await read_up_to(response.content, MAX_DOCUMENT_BYTES + 1)
                return _Hop(response.status, kept, body)
