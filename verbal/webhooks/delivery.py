"""Deliver one webhook request and say what happened, without raising.

The request is fully formed by the caller (URL, method, form parameters, headers including
any signature); this module only does the HTTP and turns every way it can go wrong into a
`DeliveryResult` that can be stored and shown to the user.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from verbal.forms import encode_form
from verbal.webhooks.client import HttpClient, exact_url, read_up_to, request_errors
from verbal.webhooks.egress import EgressRefused
from verbal.webhooks.keepalive import RequestFailed

RESPONSE_EXCERPT_BYTES = 2048
# Twilio's name for a webhook's retry-stable idempotency token, which receivers written for
# Twilio already read; Verbal sends it in every callback format.
IDEMPOTENCY_HEADER = "I-Twilio-Idempotency-Token"
USER_AGENT = "Verbal-Webhooks/0.1"


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    url: str
    method: str  # GET or POST
    params: list[tuple[str, str]]
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def full_url(self) -> str:
        """The URL as requested: for GET, the parameters ride in the query string."""
        if self.method != "GET" or not self.params:
            return self.url
        return append_query(self.url, self.params)


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    status: int | None
    excerpt: str | None
    latency_ms: float
    error: str | None
    # Trying again cannot help (the egress policy refused the URL): give up at once.
    permanent: bool = False

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def append_query(url: str, params: list[tuple[str, str]]) -> str:
    parts = urlsplit(url)
    query = parts.query + ("&" if parts.query else "") + encode_form(params)
    return urlunsplit(parts._replace(query=query))


async def deliver(client: HttpClient, request: WebhookRequest) -> DeliveryResult:
    headers = {"User-Agent": USER_AGENT, **request.headers}
    data = None
    if request.method != "GET":
        data = encode_form(request.params).encode()
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    started = time.perf_counter()
    if request.full_url.startswith("http://"):
        return await _deliver_kept_alive(client, request, headers, data, started)
    try:
        async with client.session.request(
            request.method,
            exact_url(request.full_url),
            data=data,
            headers=headers,
            allow_redirects=False,
        ) as response:
            excerpt = (await read_up_to(response.content, RESPONSE_EXCERPT_BYTES)).decode(
                "utf-8", "replace"
            )
            status = response.status
    except TimeoutError:
        return DeliveryResult(None, None, _since(started), "timed out")
    except EgressRefused as refused:
        return _refused(refused, started)
    except request_errors() as exc:
        return DeliveryResult(None, None, _since(started), f"{type(exc).__name__}: {exc}"[:500])
    error = None if 200 <= status < 300 else f"HTTP {status}"
    return DeliveryResult(status, excerpt, _since(started), error)


async def _deliver_kept_alive(
    client: HttpClient,
    request: WebhookRequest,
    headers: dict[str, str],
    data: bytes | None,
    started: float,
) -> DeliveryResult:
    """`deliver` over the lean client (`keepalive.py`), for plain http URLs."""
    try:
        answer = await client.kept_alive.request(
            request.method,
            request.full_url,
            headers,
            data,
            excerpt_limit=RESPONSE_EXCERPT_BYTES,
            time_limit=client.timeout_seconds,
        )
    except TimeoutError:
        return DeliveryResult(None, None, _since(started), "timed out")
    except EgressRefused as refused:
        return _refused(refused, started)
    except (RequestFailed, OSError, ValueError) as exc:
        return DeliveryResult(None, None, _since(started), f"{type(exc).__name__}: {exc}"[:500])
    status = answer.status
    excerpt = answer.body.decode("utf-8", "replace")
    error = None if 200 <= status < 300 else f"HTTP {status}"
    return DeliveryResult(status, excerpt, _since(started), error)


def _refused(refused: EgressRefused, started: float) -> DeliveryResult:
    # The message starts with the code (`egress refused (7006): ...`): attempts have no
    # column of their own for one.
    return DeliveryResult(None, None, _since(started), str(refused)[:500], permanent=True)


def _since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
