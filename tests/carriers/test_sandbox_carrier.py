"""The sandbox as a carrier (verbal/carriers/sandbox.py): its receipt loop, on real SQLite."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tests.carriers.conftest import eventually
from verbal.carriers.base import InboundSms, OutboundSms, Receipt
from verbal.carriers.sandbox import SandboxCarrier, SandboxNetwork
from verbal.store import create_engine, migrate, session_factory
from verbal.store.directory import Directory
from verbal.store.journal import Journal, backend_for


class Events:
    def __init__(self) -> None:
        self.receipts: list[Receipt] = []

    async def on_receipt(self, receipt: Receipt) -> None:
        self.receipts.append(receipt)

    async def on_inbound(self, sms: InboundSms) -> str:
        raise LookupError(sms.recipient)


def message() -> OutboundSms:
    return OutboundSms(
        message_sid="SM" + uuid.uuid4().hex,
        account_sid="AC" + "0" * 32,
        sender="+15550001000",
        recipient="+15550002000",
        body="hello",
    )


@pytest.mark.parametrize("turns", range(6))
async def test_a_stop_that_races_a_new_receipt_still_stops_the_carrier(
    sqlite_url: str, turns: int
) -> None:
    # stop() cancels the receipt loop 0 to 5 turns after a submit woke it. With
    # asyncio.wait_for (Python 3.11) a cancel arriving as the wake-up completed was
    # swallowed (gh-86296): the loop went on and stop() waited for it forever.
    engine = create_engine(sqlite_url)
    await migrate(engine)
    sessions = session_factory(engine)
    network = SandboxNetwork(sessions, ["+1555"], Directory(sessions))
    journal = Journal(backend_for(engine))
    carrier = SandboxCarrier(network, journal)
    events = Events()
    try:
        await carrier.start(events)
        # A first receipt reported: the loop has run and waits for the next one.
        await carrier.submit(message())
        await eventually(lambda: events.receipts)
        await carrier.submit(message())
        for _ in range(turns):
            await asyncio.sleep(0)
        async with asyncio.timeout(10):
            await carrier.stop()
    finally:
        await journal.close()
        await engine.dispose()
