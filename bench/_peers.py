"""The small HTTP servers the benchmarks talk to, each run in a process of its own.

    python bench/_peers.py callbacks --port P            a status-callback receiver
    python bench/_peers.py app --dialect rcml --port P   an app with one fixed reply

Both are as cheap as aiohttp allows (uvloop when installed, no access log, no signature
checks), because they share the machine's cores with the server they measure. Each answers
`GET /stats` with what it counted; the receiver also answers `GET /finals`. The receiver
takes Kannel's delivery reports too, at `/kannel-dlr?id=ID&type=%d` (the dlr-url given to
Kannel's sendsms), and counts them as the status callbacks of message ID.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter
from urllib.parse import parse_qsl

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

    async def status(self, request: web.Request) -> web.Response:
        body = (await request.read()).decode() if request.can_read_body else request.query_string
        params = dict(parse_qsl(body))
        self.record(params.get("MessageSid", ""), params.get("MessageStatus", ""))
        return web.Response(status=204)

    async def kannel_dlr(self, request: web.Request) -> web.Response:
        """A delivery report from Kannel's smsbox, counted like a status callback."""
        kind = request.query.get("type", "")
        self.record(request.query.get("id", ""), KANNEL_DLR_TYPES.get(kind, f"dlr type {kind}"))
        return web.Response(status=204)

    def record(self, sid: str, status: str) -> None:
        self.per_message[sid] += 1
        self.statuses[status] += 1
        if status in FINAL_STATUSES:
            if sid in self.finals:
                self.repeated_finals += 1
            else:
                self.finals[sid] = time.time()

    async def stats(self, _: web.Request) -> web.Response:
        return web.json_response(
            {
                "callbacks": sum(self.per_message.values()),
                "messages": len(self.per_message),
                "final": len(self.finals),
                "last_final_at": max(self.finals.values(), default=None),
                "repeated_finals": self.repeated_finals,
                "statuses": dict(self.statuses),
                # How many messages got 1, 2, 3 … callbacks.
                "per_message": dict(Counter(self.per_message.values())),
            }
        )

    async def finals_json(self, _: web.Request) -> web.Response:
        return web.json_response(self.finals)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/stats", self.stats)
        app.router.add_get("/finals", self.finals_json)
        app.router.add_route("*", "/status", self.status)
        app.router.add_get("/kannel-dlr", self.kannel_dlr)
        return app


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
    app = Callbacks().app() if options.kind == "callbacks" else App(options.dialect).app()
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(app, options.port))
    else:
        uvloop.run(serve(app, options.port))


if __name__ == "__main__":
    main()
