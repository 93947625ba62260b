"""Fixtures for the SIP tests: user agents on loopback, closed after each test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from verbal.carriers.sip.transport import Endpoint
from verbal.carriers.sip.useragent import IncomingCall, SipLimits, Timers, UserAgent

# Short timers keep "no ACK, then BYE after 64*T1" to a couple of seconds.
FAST = Timers(t1=0.05, t2=0.4, t4=0.5)

UserAgents = Callable[..., Awaitable[UserAgent]]


@pytest.fixture
async def user_agents() -> AsyncIterator[UserAgents]:
    """Start user agents on 127.0.0.1 (port 0); all are closed after the test."""
    started: list[UserAgent] = []

    async def start(
        on_invite: Callable[[IncomingCall], Awaitable[None]] | None = None,
        *,
        timers: Timers = FAST,
        limits: SipLimits | None = None,
        **options: Any,
    ) -> UserAgent:
        ua = UserAgent(
            Endpoint("127.0.0.1", 0, options.pop("transport", "udp")),
            on_invite=on_invite,
            timers=timers,
            limits=limits,
            **options,
        )
        await ua.start()
        started.append(ua)
        return ua

    yield start
    for ua in started:
        await ua.close()
