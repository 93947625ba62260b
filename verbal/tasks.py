"""Stopping an asyncio task without losing a cancellation meant for the one stopping it."""

import asyncio
from typing import Any

__all__ = ["cancel_and_wait"]


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
