"""Status callbacks: each message's, in order, at least once, every attempt recorded.

The pipeline hands this stage the timeline entries that owe a callback (`owe`). A message's
callbacks go out one at a time in timeline order; different messages' go out concurrently,
up to `concurrency` requests at once. Each attempt is written to the journal
(`webhook_attempts`); a delivered or given-up callback advances the message's callback
cursor through `settle`, so after a crash exactly the unsettled ones are owed again.

A failed attempt (no answer, timeout, non-2xx) is retried with exponential backoff until
`max_attempts`; one the egress policy refused is given up at once (it would be refused
again). Short waits happen in memory; a wait of `park_after_seconds` or more hands the
message back to the database (`park`) with the time it is due, so a dead endpoint does not
hold memory for minutes; whoever claims it later resumes the count of attempts.

The request is signed when it is sent, with the account's token at that moment, and carries
an idempotency token made of the message SID and the entry's sequence number: the same on
every retry, even after a restart, so a receiver can drop a repeat.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from verbal.dialects import CALLBACK_FORMATS
from verbal.dialects.types import MessageFacts
from verbal.dispatch.backoff import backoff_delay
from verbal.dispatch.queue import ClaimedJob, JobQueue
from verbal.messaging.ledger import INSERT_ATTEMPT
from verbal.messaging.machine import MessageRecord, TimelineEntry
from verbal.metrics import CALLBACK_SECONDS, CALLBACKS, labelled
from verbal.store.journal import Journal, json_text
from verbal.webhooks.client import HttpClient
from verbal.webhooks.delivery import IDEMPOTENCY_HEADER, WebhookRequest, append_query, deliver

log = logging.getLogger("verbal.webhooks")

# A job that redelivers one recorded callback on a developer's request (the console).
REDELIVERY_JOB = "webhook"
TokenOf = Callable[[int], Awaitable[tuple[str, str]]]  # account id -> (account SID, token)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 8
    base_seconds: float = 2.0
    max_seconds: float = 600.0
    # Retries due later than this leave memory for the database.
    park_after_seconds: float = 5.0


@dataclass(frozen=True, slots=True)
class OwedCallback:
    """One status callback a message owes, rendered but not yet signed."""

    message_id: int
    sid: str
    account_id: int
    seq: int
    event: str
    url: str
    method: str
    callback_format: str
    params: list[tuple[str, str]]
    # Attempts made before this process took it over.
    attempts_made: int = 0


def owed_callback(
    record: MessageRecord, entry: TimelineEntry, account_sid: str, attempts_made: int = 0
) -> OwedCallback:
    """The callback `entry` owes, with the parameters of its format for that status."""
    formatter = CALLBACK_FORMATS[record.callback_format]
    with_error = entry.error_code is not None
    facts = MessageFacts(
        sid=record.sid,
        account_sid=account_sid,
        from_number=record.from_number,
        to_number=record.to_number,
        body=record.body,
        status=entry.status,
        error_code=entry.error_code if with_error else None,
        error_message=record.error_message if with_error else None,
        media_urls=record.media_urls,
        num_segments=record.num_segments,
        date_updated=entry.occurred_at,
        messaging_service_sid=record.messaging_service_sid,
    )
    return OwedCallback(
        message_id=record.id,
        sid=record.sid,
        account_id=record.account_id,
        seq=entry.seq,
        event=f"status:{entry.status}",
        url=record.status_callback or "",
        method=record.status_callback_method,
        callback_format=record.callback_format,
        params=formatter.params(facts),
        attempts_made=attempts_made,
    )


def signed_request(
    callback_format: str,
    url: str,
    method: str,
    params: list[tuple[str, str]],
    auth_token: str,
    idempotency_token: str,
) -> WebhookRequest:
    formatter = CALLBACK_FORMATS[callback_format]
    signed_url = url if method == "POST" else append_query(url, params)
    headers = {
        **formatter.signature_headers(signed_url, params if method == "POST" else [], auth_token),
        IDEMPOTENCY_HEADER: idempotency_token,
    }
    return WebhookRequest(url=url, method=method, params=params, headers=headers)


@dataclass(eq=False)
class _Line:
    """One message's callbacks waiting their turn, and the task delivering them."""

    # Each callback with the journal's commit of the change it reports: a receiver that
    # reads the message on hearing of it must find it so.
    waiting: collections.deque[tuple[OwedCallback, asyncio.Future[None] | None]] = field(
        default_factory=collections.deque
    )
    task: asyncio.Task[None] | None = None


class CallbackStage:
    def __init__(
        self,
        client: HttpClient,
        policy: RetryPolicy,
        journal: Journal,
        token_of: TokenOf,
        *,
        concurrency: int = 64,
    ) -> None:
        self._client = client
        self._policy = policy
        self._journal = journal
        self._token_of = token_of
        self._slots = asyncio.Semaphore(concurrency)
        self._lines: dict[str, _Line] = {}
        # Set by the pipeline: a callback settled (delivered or given up); park a message
        # whose next attempt is due at the given epoch time (False: it must stay here).
        self.settle: Callable[[str, int], None] = lambda sid, seq: None
        self.park: Callable[[str, float], bool] = lambda sid, due: False

    @property
    def waiting(self) -> int:
        return sum(len(line.waiting) + (line.task is not None) for line in self._lines.values())

    def busy(self, sid: str) -> bool:
        """Whether callbacks of `sid` are waiting or being delivered."""
        line = self._lines.get(sid)
        return line is not None and bool(line.waiting)

    def owe(self, callbacks: list[OwedCallback], after: asyncio.Future[None] | None = None) -> None:
        """Queue callbacks behind the message's earlier ones (all of one message), to go
        out once `after` (the commit of what they report) is done."""
        if not callbacks:
            return
        sid = callbacks[0].sid
        line = self._lines.get(sid)
        if line is None:
            line = self._lines[sid] = _Line()
        line.waiting.extend((callback, after) for callback in callbacks)
        if line.task is None:
            line.task = asyncio.get_running_loop().create_task(self._run(sid, line))

    async def stop(self) -> None:
        tasks = [line.task for line in self._lines.values() if line.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        self._lines.clear()

    async def _run(self, sid: str, line: _Line) -> None:
        try:
            while line.waiting:
                callback, after = line.waiting[0]
                if after is not None and not after.done():
                    # A failed commit is the journal's to report; the callback still goes.
                    await _settled(after)
                attempts = callback.attempts_made
                while True:
                    attempts, due = await self._deliver(callback, attempts)
                    if due is None:
                        break
                    if self.park(sid, due):
                        # The database has it now, with everything behind it.
                        line.waiting.clear()
                        return
                    await asyncio.sleep(max(0.0, due - time.time()))
                line.waiting.popleft()
                self.settle(sid, callback.seq)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("status callbacks of %s failed; they stay owed", sid)
        finally:
            if self._lines.get(sid) is line:
                del self._lines[sid]

    async def _deliver(self, callback: OwedCallback, attempts: int) -> tuple[int, float | None]:
        """Attempt delivery until it is done (due None) or the next attempt is due later
        than the parking threshold (due: that epoch time); with the attempts made."""
        _, token = await self._token_of(callback.account_id)
        while True:
            attempts += 1
            request = signed_request(
                callback.callback_format,
                callback.url,
                callback.method,
                callback.params,
                token,
                f"{callback.sid}-{callback.seq}",
            )
            async with self._slots:
                result = await deliver(self._client, request)
            CALLBACK_SECONDS.observe(result.latency_ms / 1000)
            self._journal.write(
                INSERT_ATTEMPT,
                attempt_params(callback.message_id, callback.event, request, attempts, result),
            )
            if result.ok:
                labelled(CALLBACKS, "delivered").inc()
                return attempts, None
            if attempts >= self._policy.max_attempts or result.permanent:
                labelled(CALLBACKS, "given_up").inc()
                log.warning(
                    "giving up %s to %s after %s attempts: %s",
                    callback.event,
                    callback.url,
                    attempts,
                    result.error,
                )
                return attempts, None
            labelled(CALLBACKS, "retried").inc()
            delay = backoff_delay(attempts, self._policy.base_seconds, self._policy.max_seconds)
            if delay >= self._policy.park_after_seconds:
                return attempts, time.time() + delay
            await asyncio.sleep(delay)


def _settled(future: asyncio.Future[None]) -> asyncio.Future[None]:
    """A future done when `future` is, whatever its outcome; cancelling it leaves `future`
    alone (the journal's commit, which other callers share). Cheaper than `asyncio.wait`,
    which the callback path would pay per callback."""
    gate = asyncio.get_running_loop().create_future()
    future.add_done_callback(lambda _: gate.done() or gate.set_result(None))
    return gate


def attempt_params(
    message_id: int | None, event: str, request: WebhookRequest, attempt: int, result: Any
) -> dict[str, Any]:
    return {
        "message_id": message_id,
        "event": event,
        "url": request.full_url,
        "method": request.method,
        "request_params": json_text(dict(request.params)),
        "attempt": attempt,
        "response_status": result.status,
        "response_excerpt": result.excerpt,
        "latency_ms": result.latency_ms,
        "error": result.error,
        "delivered": result.ok,
        "attempted_at": datetime.now(UTC),
    }


class Redeliveries:
    """The handler of redelivery jobs: one recorded callback sent again on request."""

    def __init__(
        self, client: HttpClient, policy: RetryPolicy, journal: Journal, queue: JobQueue
    ) -> None:
        self._client = client
        self._policy = policy
        self._journal = journal
        self._queue = queue

    async def handle(self, job: ClaimedJob) -> None:
        payload = job.payload
        request = WebhookRequest(
            url=payload["url"],
            method=payload["method"],
            params=[(k, v) for k, v in payload["params"]],
            headers=payload.get("headers", {}),
        )
        result = await deliver(self._client, request)
        CALLBACK_SECONDS.observe(result.latency_ms / 1000)
        await self._journal.write(
            INSERT_ATTEMPT,
            attempt_params(
                payload.get("message_id"),
                payload.get("event", "webhook"),
                request,
                job.attempts,
                result,
            ),
        )
        async with self._queue.sessions.begin() as session:
            if result.ok or result.permanent or job.attempts >= self._policy.max_attempts:
                labelled(CALLBACKS, "delivered" if result.ok else "given_up").inc()
                await self._queue.finish(session, job)
            else:
                labelled(CALLBACKS, "retried").inc()
                delay = backoff_delay(
                    job.attempts, self._policy.base_seconds, self._policy.max_seconds
                )
                await self._queue.reschedule(session, job, delay, result.error or "failed")
