"""Stopping an asyncio task without losing a cancellation meant for the one stopping it, and
tasks an owner starts and forgets until it stops."""

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

__all__ = ["BackgroundTasks", "cancel_and_wait"]


async def cancel_and_wait(task: asyncio.Future[Any]) -> None:
    """Cancel ``task`` and wait until it has ended; raise what it raised, if not cancelled.

    Not ``task.cancel(); with suppress(CancelledError): await task``: that also swallows a
    cancellation of the caller arriving meanwhile (a shutdown deadline, an
    ``asyncio.timeout`` around ``stop()``), which then never takes effect.
    """
    task.cancel()
    await asyncio.wait([task])
    if not task.cancelled():
        task.result()


class BackgroundTasks:
    """Tasks an owner starts and does not await (a call's session, a far end's hang-up):
    kept until they end so that none is collected mid-flight, a failure logged with its
    name, all cancelled by `stop`."""

    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self._tasks: set[asyncio.Future[None]] = set()

    def spawn(self, work: Awaitable[None], name: str) -> None:
        task = asyncio.ensure_future(work)
        if isinstance(task, asyncio.Task):
            task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._done(done, name))

    def _done(self, task: asyncio.Future[None], name: str) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._log.error("%s failed", name, exc_info=task.exception())

    async def stop(self) -> None:
        """Cancel every task still running and wait until all have ended."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
