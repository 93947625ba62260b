"""verbal/tasks.py: stopping a task loses no cancellation and hides no error."""

from __future__ import annotations

import asyncio

import pytest

from verbal.tasks import cancel_and_wait


async def test_a_cancel_of_the_one_stopping_is_not_swallowed() -> None:
    release = asyncio.Event()

    async def slow_to_stop() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await release.wait()  # ends only when the test says so

    task = asyncio.create_task(slow_to_stop())
    await asyncio.sleep(0)
    stopper = asyncio.create_task(cancel_and_wait(task))
    await asyncio.sleep(0)
    # With `suppress(CancelledError): await task` this cancel went to the task, ended it,
    # and was swallowed: the stopper returned normally.
    stopper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopper
    assert not task.done()
    release.set()
    await asyncio.wait([task])
    assert task.cancelled()


async def test_the_tasks_own_error_is_raised_and_its_cancellation_is_not() -> None:
    async def failing_on_cancel() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise RuntimeError("cleanup failed") from None

    task = asyncio.create_task(failing_on_cancel())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="cleanup failed"):
        await cancel_and_wait(task)

    quiet = asyncio.create_task(asyncio.Event().wait())
    await asyncio.sleep(0)
    await cancel_and_wait(quiet)
    assert quiet.cancelled()
