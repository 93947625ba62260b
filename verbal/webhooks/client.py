"""The HTTP client for everything Verbal sends out: status callbacks and app fetches.

It is aiohttp rather than httpx, measured: posting form callbacks to a local receiver with
32 in flight, httpx 0.28 managed about 430 requests/s on one core and aiohttp about 5,400.
Callbacks are three requests per message, so this is the pipeline's widest pipe.

The session is made on first use, inside the running event loop (aiohttp requires that),
and pooled: keep-alive connections are reused across requests to the same app. URLs are
sent exactly as given (no re-quoting), because webhook signatures cover the URL's bytes.
Status callbacks and app fetches to plain http URLs take a leaner path (`kept_alive`,
`keepalive.py`).

Both paths obey the egress policy (`egress.py`): every URL is checked before it is requested,
every redirect too, and a name's addresses are checked as it is resolved, before a connection
to them is opened. A refused request raises `EgressRefused`, which callers record with its code.

aiohttp itself is imported on first use too: it adds about 10 MiB to the resident memory
of a process, which a server that has sent nothing over it yet need not hold.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from yarl import URL

from verbal.webhooks.egress import EgressPolicy, Lookup, system_lookup
from verbal.webhooks.keepalive import KeepAliveClient

if TYPE_CHECKING:
    import aiohttp


class HttpClient:
    def __init__(
        self,
        timeout_seconds: float,
        *,
        max_connections: int = 200,
        policy: EgressPolicy | None = None,
        lookup: Lookup = system_lookup,
    ) -> None:
        """`lookup` resolves names (tests give their own, so that a name can resolve to a
        denied address without a DNS server)."""
        self.timeout_seconds = timeout_seconds
        self.policy = policy or EgressPolicy()
        self._lookup = lookup
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        # Plain-http callbacks and app fetches: a leaner client (keepalive.py says why).
        self.kept_alive = KeepAliveClient(
            connect_timeout=min(5.0, timeout_seconds), policy=self.policy, lookup=lookup
        )

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            import aiohttp

            from verbal.webhooks.guard import CheckedResolver, checking

            timeout = self.timeout_seconds
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=timeout, connect=min(5.0, timeout)),
                connector=aiohttp.TCPConnector(
                    limit=self._max_connections,
                    resolver=CheckedResolver(self.policy, self._lookup),
                ),
                middlewares=(checking(self.policy),),
                # Proxies from the environment would silently reroute webhooks.
                trust_env=False,
                # No jar per client: an app's cookies belong to its conversation, and the app
                # fetcher sends and keeps them per conversation (cookies.py); callbacks get none.
                cookie_jar=aiohttp.DummyCookieJar(),
                # Our own User-Agent is given per request.
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    async def aclose(self) -> None:
        self.kept_alive.close()
        if self._session is not None:
            await self._session.close()
            self._session = None


def exact_url(url: str) -> URL:
    """`url` as written, without re-quoting (signatures are computed over these bytes)."""
    return URL(url, encoded=True)


async def read_up_to(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """At most `limit` bytes of a body, however it is chunked; fewer only at its end."""
    data = bytearray()
    while len(data) < limit:
        chunk = await stream.read(limit - len(data))
        if not chunk:
            break
        data += chunk
    return bytes(data)


def request_errors() -> tuple[type[Exception], ...]:
    """Every way a request can fail on the client side (bad URL, DNS, refused, reset, TLS,
    malformed answer); timeouts are reported separately by the callers. A function, so that
    naming them in an `except` clause imports aiohttp only once something has failed."""
    import aiohttp

    return (aiohttp.ClientError, ValueError, OSError)
