"""Deliver one webhook request and say what happened, without raising.

The request is fully formed by the caller (URL, method, form parameters, headers including
any signature); this module only does the HTTP and turns every way it can go wrong into a
`DeliveryResult` that can be stored and shown to the user.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx

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

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def append_query(url: str, params: list[tuple[str, str]]) -> str:
    parts = urlsplit(url)
    query = parts.query + ("&" if parts.query else "") + urlencode(params)
    return urlunsplit(parts._replace(query=query))


async def deliver(client: httpx.AsyncClient, request: WebhookRequest) -> DeliveryResult:
    headers = {"User-Agent": USER_AGENT, **request.headers}
    started = time.perf_counter()
    try:
        if request.method == "GET":
            response = await client.get(request.full_url, headers=headers)
        else:
            response = await client.post(
                request.url, data=dict_of_lists(request.params), headers=headers
            )
    except httpx.TimeoutException:
        return DeliveryResult(None, None, _since(started), "timed out")
    except httpx.HTTPError as exc:
        return DeliveryResult(None, None, _since(started), f"{type(exc).__name__}: {exc}"[:500])
    excerpt = response.content[:RESPONSE_EXCERPT_BYTES].decode("utf-8", "replace")
    error = None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}"
    return DeliveryResult(response.status_code, excerpt, _since(started), error)


def dict_of_lists(params: list[tuple[str, str]]) -> dict[str, list[str]]:
    """httpx wants repeated form keys as lists; keep their order."""
    grouped: dict[str, list[str]] = {}
    for key, value in params:
        grouped.setdefault(key, []).append(value)
    return grouped


def _since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def new_client(timeout_seconds: float) -> httpx.AsyncClient:
    """One shared client: pooled keep-alive connections, timeouts on, no redirects followed."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout_seconds, connect=min(5.0, timeout_seconds)),
        follow_redirects=False,
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        trust_env=False,
    )
