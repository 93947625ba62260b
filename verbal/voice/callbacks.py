"""A call's status callbacks: the events its app asked for, signed, in order.

Each call has one `CallReporter`. The events the app subscribed to (Twilio's
`StatusCallbackEvent`: initiated, ringing, answered, completed) become requests built by
the call's dialect, signed as its SDK's validator checks them (`verbal/dialects/`), and go
out one after another on the reporter's own task, so the app hears them in the order they
happened. A request that fails is tried again a few times with a growing pause; a call's
callbacks are not kept in the database, so those still unsent when the process dies are
lost with the call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from verbal.dialects.types import AppRequest, Dialect
from verbal.dialects.verbs import Target
from verbal.tasks import cancel_and_wait
from verbal.webhooks.client import HttpClient
from verbal.webhooks.delivery import WebhookRequest, deliver

if TYPE_CHECKING:
    from verbal.voice.records import CallRecord

log = logging.getLogger("verbal.voice.callbacks")

ATTEMPTS = 3
FIRST_RETRY_SECONDS = 0.5
# How long a call that ended waits for its last callbacks to go out.
DRAIN_SECONDS = 30.0


class CallReporter:
    def __init__(self, http: HttpClient, dialects: Mapping[str, Dialect], auth_token: str) -> None:
        self._http = http
        self._dialects = dialects
        self._auth_token = auth_token
        self._sequence = 0
        self._queue: asyncio.Queue[AppRequest] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def report(self, event: str, call: CallRecord) -> None:
        """Owe the call's app the callback of `event`, if it asked for it."""
        if not call.status_callback or event not in call.status_callback_events:
            return
        dialect = self._dialects.get(call.dialect) or self._dialects["rcml"]
        target = Target(call.status_callback, call.status_callback_method)
        request = dialect.call_status_request(
            call.facts(), event, self._sequence, target, self._auth_token, datetime.now(UTC)
        )
        if request is None:
            return
        self._sequence += 1
        self._queue.put_nowait(request)
        if self._task is None:
            self._task = asyncio.ensure_future(self._send_all())

    async def close(self) -> None:
        """Wait (a while) for the callbacks owed to go out, then stop."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), DRAIN_SECONDS)
        await cancel_and_wait(self._task)

    async def _send_all(self) -> None:
        while True:
            request = await self._queue.get()
            try:
                await self._send(request)
            finally:
                self._queue.task_done()

    async def _send(self, request: AppRequest) -> None:
        webhook = WebhookRequest(
            url=request.url,
            method=request.method,
            params=list(request.form),
            headers=dict(request.headers),
        )
        pause = FIRST_RETRY_SECONDS
        for attempt in range(1, ATTEMPTS + 1):
            result = await deliver(self._http, webhook)
            if result.ok or result.permanent or attempt == ATTEMPTS:
                if not result.ok:
                    log.warning(
                        "call status callback to %s failed: %s",
                        request.url,
                        result.error or result.status,
                    )
                return
            await asyncio.sleep(pause)
            pause *= 2
