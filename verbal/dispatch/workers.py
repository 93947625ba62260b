"""Workers: claim due jobs and run their handlers, a bounded number at a time.

A handler ends its job itself (`JobQueue.finish` or `reschedule`) in the transaction that
records the work, so work and queue never disagree. If a handler raises instead, the job
is put back with a backoff and the error kept on the job; the process carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from verbal.dispatch.backoff import backoff_delay
from verbal.dispatch.queue import ClaimedJob, JobQueue
from verbal.metrics import JOBS_RUN, labelled

Handler = Callable[[ClaimedJob], Awaitable[None]]
log = logging.getLogger("verbal.dispatch")


class Dispatcher:
    def __init__(
        self,
        queue: JobQueue,
        sessions_begin: Callable[[], contextlib.AbstractAsyncContextManager],
        *,
        concurrency: int,
        idle_poll_seconds: float,
        retry_base_seconds: float = 1.0,
        retry_max_seconds: float = 300.0,
    ) -> None:
        self._queue = queue
        self._begin = sessions_begin
        self._handlers: dict[str, Handler] = {}
        self._concurrency = concurrency
        self._idle_poll = idle_poll_seconds
        self._retry_base = retry_base_seconds
        self._retry_max = retry_max_seconds
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(concurrency)
        self._active: set[asyncio.Task[None]] = set()
        self._stopping = False
        queue.add_listener(self._wake.set)

    def register(self, kind: str, handler: Handler) -> None:
        self._handlers[kind] = handler
        self._wake.set()  # jobs of this kind may be waiting already

    def unregister(self, kind: str) -> None:
        """Stop claiming jobs of `kind` (those running finish)."""
        self._handlers.pop(kind, None)

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            free = self._concurrency - len(self._active)
            if free <= 0:
                await asyncio.wait(self._active, return_when=asyncio.FIRST_COMPLETED)
                continue
            self._wake.clear()
            try:
                jobs = await self._queue.claim(free, tuple(self._handlers))
            except Exception:
                # The database is unreachable or busy beyond its timeout: keep the worker
                # alive and try again, rather than silently stopping all dispatch.
                log.exception("claiming jobs failed; retrying in %.1fs", self._idle_poll)
                await asyncio.sleep(self._idle_poll)
                continue
            for job in jobs:
                task = asyncio.create_task(self._run_one(job), name=f"job-{job.id}")
                self._active.add(task)
                task.add_done_callback(self._active.discard)
            if len(jobs) < free:
                await self._idle()

    async def _idle(self) -> None:
        # A job already due but not claimed is leased elsewhere or waits behind an earlier
        # job with its ordering key; the end of any local job wakes us, so poll gently.
        timeout = self._idle_poll
        try:
            due = await self._queue.next_due()
        except Exception:
            log.exception("reading the next due job failed")
            due = None
        if due is not None and due > time.time():
            timeout = min(timeout, due - time.time())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wake.wait()

    async def _run_one(self, job: ClaimedJob) -> None:
        handler = self._handlers.get(job.kind)
        try:
            if handler is None:
                raise LookupError(f"no handler for job kind {job.kind!r}")
            await handler(job)
            labelled(JOBS_RUN, job.kind, "ok").inc()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            labelled(JOBS_RUN, job.kind, "error").inc()
            log.exception(
                "job %s (%s) failed on attempt %s",
                job.id,
                job.kind,
                job.attempts,
                extra={"job_id": job.id, "job_kind": job.kind},
            )
            delay = backoff_delay(job.attempts, self._retry_base, self._retry_max)
            try:
                async with self._begin() as session:
                    error = f"{type(exc).__name__}: {exc}"
                    await self._queue.reschedule(session, job, delay, error)
            except Exception:
                log.exception("could not reschedule job %s; its lease will expire", job.id)
        finally:
            self._wake.set()  # a finished job may unblock the next one with its ordering key

    async def stop(self, deadline: float = 10.0) -> None:
        """Stop claiming, give in-flight jobs `deadline` seconds, then cancel the rest."""
        self._stopping = True
        self._wake.set()
        if self._active:
            _, pending = await asyncio.wait(self._active, timeout=deadline)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        await self._queue.release_leases()
