"""Carriers held by one worker at a time, through a lease in the shared database.

An SMSC may allow an account only so many binds. A carrier declared `singleton` is bound by
whichever worker holds its lease: that worker starts the carrier and takes the messages parked
in the carrier's lane (`messages.lane`, see `verbal.messaging.ledger`); the other workers
leave both alone, parking there the messages they route to it. The holder renews the lease
every third of its length; if it cannot (the database is out of reach), it stops the carrier
at once, before anyone else can take over, so two workers never hold the binds together. A
holder that dies stops renewing, and when its lease runs out the next worker to ask binds
and sends what has queued up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from verbal.carriers.base import Carrier
from verbal.dispatch.leases import Leases
from verbal.messaging.service import Messaging
from verbal.tasks import cancel_and_wait

log = logging.getLogger("verbal.carriers")


class SingletonCarrier:
    def __init__(
        self,
        carrier: Carrier,
        leases: Leases,
        messaging: Messaging,
    ) -> None:
        self.carrier = carrier
        self._leases = leases
        self._messaging = messaging
        self._lease = f"carrier:{carrier.name}"
        self.held = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._hold(), name=f"lease-{self._lease}")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
        if self.held:
            await self._let_go()
            with contextlib.suppress(Exception):
                await self._leases.release(self._lease)  # the next holder need not wait

    async def _hold(self) -> None:
        while True:
            try:
                holding = await self._leases.acquire(self._lease)
            except Exception:
                log.exception("could not renew the lease on %s", self.carrier.name)
                holding = False
            if holding and not self.held:
                try:
                    await self._take_over()
                except Exception:
                    # Keep no half-started carrier; let another worker have a go.
                    log.exception(
                        "could not start carrier %s; handing its lease back", self.carrier.name
                    )
                    await self._let_go()
                    with contextlib.suppress(Exception):
                        await self._leases.release(self._lease)
            elif self.held and not holding:
                log.warning("lost the lease on carrier %s; unbinding", self.carrier.name)
                await self._let_go()
            await asyncio.sleep(self._leases.seconds / 3)

    async def _take_over(self) -> None:
        log.info("holding carrier %s (lease %s)", self.carrier.name, self._leases.owner)
        await self.carrier.start(self._messaging)
        self.held = True
        self._messaging.hold_lane(self.carrier.name)

    async def _let_go(self) -> None:
        self._messaging.release_lane(self.carrier.name)
        self.held = False
        try:
            await self.carrier.stop()
        except Exception:  # stopping must not end the holding loop
            log.exception("stopping carrier %s failed", self.carrier.name)
