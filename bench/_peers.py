"""The small HTTP servers the benchmarks talk to, each run in a process of its own.

    python bench/_peers.py callbacks --port P            a status-callback receiver
    python bench/_peers.py app --dialect rcml --port P   an app with one fixed reply

Both are cheap (uvloop when installed, no access log, no signature checks), because they
share the machine's cores with the server they measure. The receiver, which takes three
requests for every message, is a bare asyncio protocol with httptools' parser rather than an
aiohttp server: aiohttp cost it about 0.3 ms of CPU per message, taken from the cores the
server is measured on; the bare one costs a fraction of that. Each answers
`GET /stats` with what it counted; the receiver also answers `GET /finals`. The receiver
takes Kannel's delivery reports too, at `/kannel-dlr?id=ID&type=%d` (the dlr-url given to
Kannel's sendsms), and counts them as the status callbacks of message ID.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from urllib.parse import parse_qsl

import httptools
from aiohttp import web

FINAL_STATUSES = frozenset({"delivered", "undelivered", "failed", "canceled"})
# Kannel's DLR types (the %d of a dlr-url) as the message statuses they correspond to.
KANNEL_DLR_TYPES = {
    "1": "delivered",
    "2": "undelivered",
    "4": "queued",
    "8": "sent",
    "16": "failed",
}

# One reply per dialect, as each platform's SDK renders it. Plivo's <Message> and RCML's
# need no src/dst or to/from: a reply in an inbound session goes back to the party from
# the number it texted.
REPLIES: dict[str, tuple[bytes, str]] = {
    "rcml": (
        b'<?xml version="1.0" encoding="UTF-8"?><Response><Message>pong</Message></Response>',
        "text/xml",
    ),
    "plivo": (
        b'<?xml version="1.0" encoding="utf-8"?><Response><Message>pong</Message></Response>',
        "application/xml",
    ),
    "tropo": (b'{"tropo": [{"say": {"value": "pong"}}]}', "application/json"),
}


class Callbacks:
    """Counts status callbacks per message and notes when each message's final one came."""

    def __init__(self) -> None:
        self.per_message: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()
        self.finals: dict[str, float] = {}
        self.repeated_finals = 0

    def answer(self, method: bytes, url: bytes, body: bytes) -> tuple[int, bytes]:
        """The receiver's routes: (status, JSON body or nothing)."""
        parts = httptools.parse_url(url)
        path, query = parts.path.decode(), (parts.query or b"").decode()
        if path == "/status":
            params = dict(parse_qsl(body.decode() if method == b"POST" else query))
            self.record(params.get("MessageSid", ""), params.get("MessageStatus", ""))
            return 204, b""
        if path == "/kannel-dlr":
            # A delivery report from Kannel's smsbox, counted like a status callback.
            params = dict(parse_qsl(query))
            kind = params.get("type", "")
            self.record(params.get("id", ""), KANNEL_DLR_TYPES.get(kind, f"dlr type {kind}"))
            return 204, b""
        if path == "/stats":
            return 200, json.dumps(self.stats()).encode()
        if path == "/finals":
            return 200, json.dumps(self.finals).encode()
        return 404, b""

    def record(self, sid: str, status: str) -> None:
        self.per_message[sid] += 1
        self.statuses[status] += 1
        if status in FINAL_STATUSES:
            if sid in self.finals:
                self.repeated_finals += 1
            else:
                self.finals[sid] = time.time()

    def stats(self) -> dict[str, object]:
        return {
            "callbacks": sum(self.per_message.values()),
            "messages": len(self.per_message),
            "final": len(self.finals),
            "last_final_at": max(self.finals.values(), default=None),
            "repeated_finals": self.repeated_finals,
            "statuses": dict(self.statuses),
            # How many messages got 1, 2, 3 … callbacks.
            "per_message": dict(Counter(self.per_message.values())),
        }


REASONS = {200: b"OK", 204: b"No Content", 404: b"Not Found"}


class _BareHttp(asyncio.Protocol):
    """One kept-alive HTTP/1.1 connection to the receiver: requests parsed by httptools,
    answered in order by `Callbacks.answer`."""

    def __init__(self, callbacks: Callbacks) -> None:
        self.callbacks = callbacks
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        assert self.transport is not None
        method = self.parser.get_method()
        status, body = self.callbacks.answer(method, self.url, b"".join(self.body))
        self.url, self.body = b"", []
        head = b"HTTP/1.1 %d %s\r\n" % (status, REASONS[status])
        if status != 204:
            head += b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
        keep_alive = self.parser.should_keep_alive()
        if not keep_alive:
            head += b"Connection: close\r\n"
        self.transport.write(head + b"\r\n" + body)
        if not keep_alive:
            self.transport.close()


async def serve_callbacks(port: int) -> None:
    callbacks = Callbacks()
    loop = asyncio.get_running_loop()
    await loop.create_server(lambda: _BareHttp(callbacks), "127.0.0.1", port, backlog=2048)
    await asyncio.Event().wait()  # until SIGTERM ends the process


class App:
    """An app that answers every request for a document with the same reply."""

    def __init__(self, dialect: str) -> None:
        self.body, self.content_type = REPLIES[dialect]
        self.requests = 0

    async def document(self, request: web.Request) -> web.Response:
        await request.read()  # the whole request, as a real app's framework would
        self.requests += 1
        return web.Response(body=self.body, content_type=self.content_type)

    async def stats(self, _: web.Request) -> web.Response:
        return web.json_response({"requests": self.requests})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/stats", self.stats)
        app.router.add_route("*", "/app", self.document)
        return app


async def serve(app: web.Application, port: int) -> None:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=2048).start()
    await asyncio.Event().wait()  # until SIGTERM ends the process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["callbacks", "app"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dialect", choices=sorted(REPLIES), default="rcml")
    options = parser.parse_args()
    if options.kind == "callbacks":
        server = serve_callbacks(options.port)
    else:
        server = serve(App(options.dialect).app(), options.port)
    try:
        import uvloop
    except ImportError:
        asyncio.run(server)
    else:
        uvloop.run(server)


if __name__ == "__main__":
    main()
