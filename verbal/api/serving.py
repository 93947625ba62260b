"""The HTTP server's limits: how long a connection may idle or dawdle over a request.

uvicorn times out only a connection idle *after* a response (`timeout_keep_alive`): one that
never sends a byte, or sends half a request head and stops, is held for ever, and a few
thousand of them exhaust the process's file descriptors for every tenant. uvicorn has no
option for that, so its httptools protocol is extended here with three timers, each closing
the connection when it fires, and a bound:

- idle: from the connection's opening (and, as uvicorn does, after each response) until a
  request starts: `http_keep_alive_seconds`;
- head: from a request's first byte until its last header: `http_header_timeout_seconds`;
- body: from its last header until its body is complete: `http_body_timeout_seconds`;
- size: a request head larger than `MAX_HEADER_BYTES` is refused outright (httptools, unlike
  h11, sets no bound of its own).

`http_max_connections` is uvicorn's `limit_concurrency`: beyond it, requests answer 503.

Under overload the process must stay answerable. Every request read is worked on at once, so
with hundreds of connections each sending, one turn of the event loop parses, authenticates
and refuses hundreds of requests, and a `/healthz` probe waits behind all of them (241 ms at
p99 under five times the sustainable load). Two measures keep the turns short:

- at most `http_requests_in_flight` requests are worked on at once; a connection whose next
  request arrives beyond that is held (its bytes kept, its reading paused, the rest waiting in
  the kernel), and held connections go on, oldest first, as requests finish;
- `GET /healthz` is answered by the protocol itself as soon as its bytes arrive, held or not,
  before any task is made: its answer says only that the process answers.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from verbal.config import Settings

__all__ = ["MAX_HEADER_BYTES", "server_config"]

# A request line and its headers together; h11 allows 16 KiB, Apache 8 KiB per line and
# 100 lines. Real clients send well under 2 KiB.
MAX_HEADER_BYTES = 64 * 1024


def server_config(app: Any, settings: Settings, **options: Any) -> uvicorn.Config:
    """uvicorn's configuration for `app` with the limits `settings` give; `options` add to it."""
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=_protocol(
            settings.http_header_timeout_seconds,
            settings.http_body_timeout_seconds,
            settings.http_requests_in_flight,
        ),
        # Typed int, used as a delay for call_later, where a fraction of a second works.
        timeout_keep_alive=settings.http_keep_alive_seconds,  # type: ignore[arg-type]
        limit_concurrency=settings.http_max_connections or None,
        # No route speaks WebSocket: uvicorn would otherwise import a WebSocket library.
        ws="none",
        **options,
    )


# The whole of a liveness probe's request and answer: what the app's `/healthz` route says.
_HEALTHZ = b"GET /healthz HTTP/1.1\r\n"
_HEALTHY = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 15\r\n\r\n"
    b'{"status":"ok"}'
)


class _Gate:
    """How many requests one server works on at once, and the connections held until one of
    those finishes (oldest first)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit or 1 << 62
        self.active = 0
        self.held: deque[Any] = deque()

    def release(self) -> None:
        self.active -= 1
        while self.held and self.active < self.limit:
            self.held.popleft().go_on()


def _protocol(header_timeout: float, body_timeout: float, in_flight: int) -> type[asyncio.Protocol]:
    gate = _Gate(in_flight)

    class LimitedProtocol(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # The head or body timer, whichever runs; None between requests.
            self._reading: asyncio.TimerHandle | None = None
            self._head_bytes = 0
            # Whether this connection's current request counts against the gate.
            self._counted = False
            # The bytes of a held connection, until the gate lets it go on.
            self._held: list[bytes] | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._wait_idle()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_reading()
            if self._held is not None:
                self._held = None
                gate.held.remove(self)
            self._uncount()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._held is not None:
                self._held.append(data)
                return
            if not self._counted and not self._busy_with_request():
                if _is_health_probe(data):
                    self._unset_keepalive_if_required()
                    self.transport.write(_HEALTHY)
                    self._wait_idle()
                    return
                if gate.active >= gate.limit:
                    self._unset_keepalive_if_required()
                    self._held = [data]
                    self.transport.pause_reading()
                    gate.held.append(self)
                    return
                self._counted = True
                gate.active += 1
            self._feed(data)

        def go_on(self) -> None:
            """Let a held connection's request through the gate."""
            data, self._held = b"".join(self._held or ()), None
            self._counted = True
            gate.active += 1
            self.transport.resume_reading()
            self._feed(data)

        def on_response_complete(self) -> None:
            self._uncount()
            super().on_response_complete()

        def _uncount(self) -> None:
            if self._counted:
                self._counted = False
                gate.release()

        def _busy_with_request(self) -> bool:
            # Bytes of a request already begun (its body, say) belong to it.
            return self._reading is not None or not (
                self.cycle is None or self.cycle.response_complete
            )

        def _feed(self, data: bytes) -> None:
            super().data_received(data)  # cancels the idle timer; the parser calls back
            if self.transport.is_closing():
                return
            if self._reading is None:
                # Bytes that began no request (blank lines): they do not reset the clock.
                if not self._busy():
                    self._wait_idle()
            elif self.parser is not None and self._head_bytes >= 0:
                self._head_bytes += len(data)
                if self._head_bytes > MAX_HEADER_BYTES:
                    self._stop_reading()
                    self.send_400_response("Request head too large.")

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._head_bytes = 0
            self._read_within(header_timeout)

        def on_headers_complete(self) -> None:
            # Bytes counted from here on are the body's.
            self._head_bytes = -1
            self._read_within(body_timeout)
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._stop_reading()
            super().on_message_complete()

        def _busy(self) -> bool:
            return self.timeout_keep_alive_task is not None or not (
                self.cycle is None or self.cycle.response_complete
            )

        def _wait_idle(self) -> None:
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

        def _read_within(self, seconds: float) -> None:
            self._stop_reading()
            self._reading = self.loop.call_later(seconds, self.timeout_keep_alive_handler)

        def _stop_reading(self) -> None:
            if self._reading is not None:
                self._reading.cancel()
                self._reading = None

    return LimitedProtocol


def _is_health_probe(data: bytes) -> bool:
    # One request head and nothing after it, asking to keep the connection open (HTTP/1.1's
    # default): anything less plain goes the ordinary way, through the app's route.
    return (
        data.startswith(_HEALTHZ)
        and data.endswith(b"\r\n\r\n")
        and data.count(b"\r\n\r\n") == 1
        and b"connection: close" not in data.lower()
    )
