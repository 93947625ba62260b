"""A small HTTP/1.1 client for status callbacks and app fetches: kept-alive connections.

Why not aiohttp, which the rest of Verbal uses: status callbacks are three requests per
message, the widest pipe of the pipeline, and aiohttp spent about 0.2 ms of CPU on each one
where a plain protocol with httptools' parser spends about 0.06 (`shared/spec/performance.md`
measured both; `bench/results.md` has Verbal's figures). A callback needs little of what
aiohttp offers: one request, a form body, no redirects, no cookies, no proxy, a short
excerpt of the answer. So plain `http://` callbacks go through this client; `https://`
ones go through aiohttp (`client.py`). An app's document over plain http comes through here
too (`engine/fetch.py`), one request per hop: the fetcher follows redirects and keeps
cookies itself, from the answer's headers, which a request asks for with `keep_headers`.

Connections are pooled per origin and reused while the server keeps them alive; a request
that finds its kept-alive connection closed by the server before any answer came is sent
once more on a new one. The URL is sent exactly as given (signatures cover its bytes).

Each URL passes the egress policy (`egress.py`) first, and connections go only to the
addresses its checked resolution gave.

A request's time limit is kept by one sweep over the connections in use, every
`SWEEP_SECONDS`, rather than a timer per request: `asyncio.timeout` around each callback was
7 % of the pipeline process's CPU (its handle scheduled and cancelled, the task's cancel
bookkeeping), and a limit of seconds needs no millisecond precision.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httptools

from verbal.webhooks.egress import EgressPolicy, Lookup, resolve, system_lookup

# Answers longer than this are not read to their end: the connection is closed instead.
MAX_DRAIN_BYTES = 1 << 20
MAX_IDLE_PER_ORIGIN = 64
# How often requests in progress are checked against their deadlines: a request is given up
# within this much of its time limit.
SWEEP_SECONDS = 0.25


class RequestFailed(Exception):
    """The request got no complete answer; the message says why."""


@dataclass(slots=True)
class Answer:
    status: int
    body: bytes  # at most the excerpt asked for
    # (name in lower case, value) in the order received, when the request kept them.
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass(eq=False)
class _Exchange:
    """What the parser has seen of the answer in progress."""

    excerpt_limit: int
    body: bytearray = field(default_factory=bytearray)
    seen: int = 0
    done: asyncio.Future[None] | None = None
    started: bool = False
    headers_complete: bool = False
    # The answer's raw header lines, when the request asked for them (None: not collected).
    headers: list[tuple[bytes, bytes]] | None = None
    # Read when the answer is complete: afterwards the parser has reset.
    keep_alive: bool = False
    status: int = 0


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.deadline = 0.0  # loop time by which the exchange in progress must be answered
        self._parser = httptools.HttpResponseParser(self)
        self._exchange: _Exchange | None = None

    # -- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        exchange = self._exchange
        if exchange is None:
            self.close()  # the server spoke out of turn: this connection is not reusable
            return
        exchange.started = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(RequestFailed("the server switched protocols"))
        except httptools.HttpParserError as error:
            self._fail(RequestFailed(f"malformed answer: {error}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        exchange = self._exchange
        if exchange is not None and exchange.done is not None and not exchange.done.done():
            if exchange.headers_complete:
                # A body delimited by the end of the connection ends with it.
                exchange.done.set_result(None)
            else:
                reason = f"{type(exc).__name__}: {exc}" if exc else "connection closed"
                exchange.done.set_exception(_Closed(reason, started=exchange.started))

    # -- httptools callbacks ------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        exchange = self._exchange
        if exchange is not None and exchange.headers is not None:
            exchange.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self._exchange is not None:
            self._exchange.headers_complete = True
            self._exchange.status = self._parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        exchange = self._exchange
        assert exchange is not None
        room = exchange.excerpt_limit - len(exchange.body)
        if room > 0:
            exchange.body += body[:room]
        exchange.seen += len(body)
        if exchange.seen > MAX_DRAIN_BYTES:
            self._fail(None)

    def on_message_complete(self) -> None:
        exchange = self._exchange
        if exchange is not None and exchange.done is not None and not exchange.done.done():
            exchange.keep_alive = self._parser.should_keep_alive()
            exchange.done.set_result(None)

    # -- requests -------------------------------------------------------------------------------

    async def exchange(self, request: bytes, excerpt_limit: int, keep_headers: bool) -> Answer:
        exchange = _Exchange(excerpt_limit, done=asyncio.get_running_loop().create_future())
        if keep_headers:
            exchange.headers = []
        self._exchange = exchange
        assert self.transport is not None
        self.transport.write(request)
        try:
            await exchange.done  # type: ignore[misc]
        finally:
            self._exchange = None
        if not exchange.keep_alive:
            self.close()
        if exchange.headers is None:
            return Answer(exchange.status, bytes(exchange.body))
        # HTTP header values are Latin-1 text on the wire; names compare in lower case.
        headers = [
            (name.decode("latin-1").lower(), value.decode("latin-1"))
            for name, value in exchange.headers
        ]
        return Answer(exchange.status, bytes(exchange.body), headers)

    def expire(self) -> None:
        """The exchange in progress ran out of time: it fails, the connection closes."""
        self._fail(TimeoutError())

    def _fail(self, error: Exception | None) -> None:
        exchange = self._exchange
        if error is not None and exchange is not None and exchange.done is not None:
            if not exchange.done.done():
                exchange.done.set_exception(error)
        elif exchange is not None and exchange.done is not None and not exchange.done.done():
            # Drained enough of an endless answer: what was read is the answer.
            exchange.done.set_result(None)
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class _Closed(RequestFailed):
    def __init__(self, reason: str, *, started: bool) -> None:
        super().__init__(reason)
        self.started = started


class KeepAliveClient:
    """Pooled HTTP/1.1 connections for plain-http form posts and gets (see module doc)."""

    def __init__(
        self,
        *,
        connect_timeout: float = 5.0,
        policy: EgressPolicy | None = None,
        lookup: Lookup = system_lookup,
    ) -> None:
        self._connect_timeout = connect_timeout
        self._policy = policy or EgressPolicy()
        self._lookup = lookup
        self._idle: dict[tuple[str, int], list[_Connection]] = {}
        self._busy: set[_Connection] = set()
        self._sweeper: asyncio.TimerHandle | None = None

    async def request(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        *,
        excerpt_limit: int,
        time_limit: float,
        keep_headers: bool = False,
    ) -> Answer:
        """Send one request and read its answer within `time_limit` seconds (connecting
        included, to within `SWEEP_SECONDS`); raises RequestFailed, OSError, TimeoutError,
        or EgressRefused before connecting. `keep_headers`: the answer carries its headers
        (callbacks need none, and skip decoding them)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + time_limit
        self._policy.check_url(url)
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"not a plain http URL: {url!r}")
        origin = (parts.hostname, parts.port or 80)
        target = url[len(f"{parts.scheme}://{parts.netloc}") :] or "/"
        host = parts.netloc.rpartition("@")[2]
        lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
        lines.extend(f"{name}: {value}" for name, value in headers.items())
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        data = head + body if body is not None else head
        for reused in (True, False):
            connection = self._idle_connection(origin) if reused else None
            if connection is None:
                connection = await self._connect(origin, deadline - loop.time())
            connection.deadline = deadline
            self._busy.add(connection)
            if self._sweeper is None:
                self._sweeper = loop.call_later(SWEEP_SECONDS, self._sweep)
            try:
                answer = await connection.exchange(data, excerpt_limit, keep_headers)
            except _Closed as closed:
                # A kept-alive connection the server had closed: once more, on a new one.
                if reused and connection is not None and not closed.started:
                    continue
                raise
            except BaseException:
                connection.close()
                raise
            finally:
                self._busy.discard(connection)
            if not connection.closed:
                self._keep(origin, connection)
            return answer
        raise AssertionError("unreachable")

    def _idle_connection(self, origin: tuple[str, int]) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()
            if not connection.closed:
                return connection
        return None

    def _keep(self, origin: tuple[str, int], connection: _Connection) -> None:
        idle = self._idle.setdefault(origin, [])
        if len(idle) >= MAX_IDLE_PER_ORIGIN:
            connection.close()
        else:
            idle.append(connection)

    async def _connect(self, origin: tuple[str, int], left: float) -> _Connection:
        loop = asyncio.get_running_loop()
        host, port = origin
        async with asyncio.timeout(max(0.0, min(self._connect_timeout, left))):
            failure: OSError | None = None
            # The checked addresses, in the resolver's order, and no others.
            for _, address in await resolve(self._policy, host, port, lookup=self._lookup):
                try:
                    _, connection = await loop.create_connection(_Connection, address, port)
                except OSError as error:
                    failure = error
                    continue
                return connection
        raise failure or OSError(f"cannot connect to {host}:{port}")

    def _sweep(self) -> None:
        """Fail the exchanges past their deadline; run again while any are in progress."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        for connection in [c for c in self._busy if c.deadline <= now]:
            self._busy.discard(connection)
            connection.expire()
        self._sweeper = loop.call_later(SWEEP_SECONDS, self._sweep) if self._busy else None

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()
