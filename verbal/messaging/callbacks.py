"""Status-callback delivery: the handler for webhook jobs.

Each attempt is recorded. A failed attempt (no answer, timeout, non-2xx) is retried with
exponential backoff until `max_attempts`; the job's ordering key (the message SID) keeps a
message's callbacks in order, so a later status waits until the earlier one is delivered
or given up.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from verbal.dispatch.backoff import backoff_delay
from verbal.dispatch.queue import ClaimedJob, JobQueue
from verbal.metrics import CALLBACK_SECONDS, CALLBACKS
from verbal.store.models import WebhookAttempt
from verbal.webhooks.client import HttpClient
from verbal.webhooks.delivery import WebhookRequest, deliver

log = logging.getLogger("verbal.webhooks")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 8
    base_seconds: float = 2.0
    max_seconds: float = 600.0


class CallbackSender:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        queue: JobQueue,
        client: HttpClient,
        policy: RetryPolicy,
    ) -> None:
        self._sessions = sessions
        self._queue = queue
        self._client = client
        self._policy = policy

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
        async with self._sessions.begin() as session:
            # A Core insert: attempts are written, never loaded here (see dispatch/queue.py).
            await session.execute(
                insert(WebhookAttempt.__table__).values(
                    message_id=payload.get("message_id"),
                    event=payload.get("event", "webhook"),
                    url=request.full_url,
                    method=request.method,
                    request_params=dict(request.params),
                    attempt=job.attempts,
                    response_status=result.status,
                    response_excerpt=result.excerpt,
                    latency_ms=result.latency_ms,
                    error=result.error,
                    delivered=result.ok,
                )
            )
            if result.ok:
                CALLBACKS.labels("delivered").inc()
                await self._queue.finish(session, job)
            elif job.attempts >= self._policy.max_attempts:
                CALLBACKS.labels("given_up").inc()
                log.warning(
                    "giving up %s to %s after %s attempts: %s",
                    payload.get("event"),
                    request.url,
                    job.attempts,
                    result.error,
                )
                await self._queue.finish(session, job)
            else:
                CALLBACKS.labels("retried").inc()
                delay = backoff_delay(
                    job.attempts, self._policy.base_seconds, self._policy.max_seconds
                )
                await self._queue.reschedule(session, job, delay, result.error or "failed")
