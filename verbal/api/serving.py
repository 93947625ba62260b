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
"""

from __future__ import annotations

import asyncio
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
        http=_protocol(settings.http_header_timeout_seconds, settings.http_body_timeout_seconds),
        # Typed int, used as a delay for call_later, where a fraction of a second works.
        timeout_keep_alive=settings.http_keep_alive_seconds,  # type: ignore[arg-type]
        limit_concurrency=settings.http_max_connections or None,
        # No route speaks WebSocket: uvicorn would otherwise import a WebSocket library.
        ws="none",
        **options,
    )


def _protocol(header_timeout: float, body_timeout: float) -> type[asyncio.Protocol]:
    class LimitedProtocol(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # The head or body timer, whichever runs; None between requests.
            self._reading: asyncio.TimerHandle | None = None
            self._head_bytes = 0

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._wait_idle()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_reading()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
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
