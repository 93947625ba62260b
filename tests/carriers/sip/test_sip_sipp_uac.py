"""Interop: our user agent calls sipp phones (voice spec scenario 4, and digest auth).

`UserAgent.fork` calls several sipp UASes at once, as Tropo's ``message`` does on the
voice channel: the first to answer wins, the others get CANCEL, and a 200 crossing the
CANCEL is ACKed and then hung up. Every sipp is bounded by ``-timeout`` and killed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from tests.carriers.conftest import eventually
from tests.carriers.sip.conftest import UserAgents
from tests.carriers.sip.peers import Sipp
from verbal.carriers.sip import sdp
from verbal.carriers.sip.auth import Credentials
from verbal.carriers.sip.calls import CallEnd, CallFailed, Progress
from verbal.carriers.sip.transport import Endpoint

pytestmark = pytest.mark.peers

OFFER = sdp.make_offer("127.0.0.1", 40000)
Phones = Callable[..., Awaitable[Sipp]]
FROM = "sip:+15550001000@verbal.test"


@pytest.fixture
async def phones(tmp_path: Path) -> AsyncIterator[Phones]:
    """Start sipp UASes from ``scenarios/``; every one is stopped after the test."""
    started: list[Sipp] = []

    async def start(scenario: str, **values: str) -> Sipp:
        sipp = Sipp(scenario, tmp_path, values=values, timeout=25)
        started.append(sipp)
        return await sipp.start()

    yield start
    for sipp in started:
        await sipp.stop()


async def finished(sipp: Sipp) -> None:
    code = await sipp.wait()
    assert code == 0, f"sipp {sipp.name} exited {code}\n{sipp.report()}"


def uri(sipp: Sipp, user: str) -> str:
    return f"sip:{user}@{sipp.uri_host}"


async def test_fork_the_answer_wins_and_the_ringing_phone_is_cancelled(
    user_agents: UserAgents, phones: Phones
) -> None:
    ua = await user_agents()
    ringing = await phones("uas_ring_until_cancel")
    answering = await phones("uas_answer", DELAY="300")
    winner = await asyncio.wait_for(
        ua.fork([uri(ringing, "alice"), uri(answering, "bob")], from_uri=FROM, offer=OFFER), 15
    )
    assert winner.invite.uri == uri(answering, "bob")
    answer = await winner.answered()
    assert (answer.port > 0, answer.codec) == (True, sdp.PCMU)
    await finished(ringing)  # INVITE / 180 / CANCEL / 200 / 487 / ACK, exactly
    await winner.hangup()
    assert await winner.ended == CallEnd("local", 200, "OK")
    await finished(answering)


async def test_fork_race_a_late_200_is_acked_then_hung_up(
    user_agents: UserAgents, phones: Phones
) -> None:
    ua = await user_agents()
    first = await phones("uas_answer", DELAY="200")
    late = await phones("uas_answer_despite_cancel")
    winner = await asyncio.wait_for(
        ua.fork([uri(late, "late"), uri(first, "first")], from_uri=FROM, offer=OFFER), 15
    )
    assert winner.invite.uri == uri(first, "first")
    await finished(late)  # its 200 was ACKed and BYEd
    assert late.received("ACK sip:late@") == 1 and late.received("BYE sip:late@") == 1
    await winner.hangup()
    await finished(first)


async def test_fork_everyone_busy_fails_with_the_best_status(
    user_agents: UserAgents, phones: Phones
) -> None:
    ua = await user_agents()
    busy = await phones("uas_refuse", STATUS="486", REASON="Busy Here")
    gone = await phones("uas_refuse", STATUS="480", REASON="Temporarily Unavailable")
    declined = await phones("uas_refuse", STATUS="603", REASON="Decline")
    busy_again = await phones("uas_refuse", STATUS="486", REASON="Busy Here")
    with pytest.raises(CallFailed) as raised:
        await asyncio.wait_for(
            ua.fork([uri(busy, "a"), uri(gone, "b")], from_uri=FROM, offer=OFFER), 15
        )
    assert raised.value.status == 480  # the lowest 4xx
    with pytest.raises(CallFailed) as raised:
        await asyncio.wait_for(
            ua.fork([uri(declined, "c"), uri(busy_again, "d")], from_uri=FROM, offer=OFFER), 15
        )
    assert raised.value.status == 603  # a 6xx beats any 4xx
    for sipp in (busy, gone, declined, busy_again):
        await finished(sipp)


async def test_a_call_reports_ringing_then_is_cancelled(
    user_agents: UserAgents, phones: Phones
) -> None:
    ua = await user_agents()
    ringing = await phones("uas_ring_until_cancel")
    call = await ua.call(uri(ringing, "alice"), from_uri=FROM, offer=OFFER)
    progress = call.progress()
    assert await asyncio.wait_for(anext(progress), 5) == Progress(180, "Ringing", None)
    call.cancel()
    with pytest.raises(CallFailed) as raised:
        await asyncio.wait_for(call.answered(), 5)
    assert raised.value.status == 487
    assert await call.ended == CallEnd("local", 487, "Request Terminated")
    await finished(ringing)


async def test_digest_credentials_answer_a_trunks_challenge(
    user_agents: UserAgents, phones: Phones
) -> None:
    ua = await user_agents()
    trunk = await phones("uas_challenge", USER="alice", PASSWORD="wonderland")
    call = await ua.call(
        uri(trunk, "+15550002000"),
        from_uri=FROM,
        offer=OFFER,
        credentials=Credentials("alice", "wonderland"),
    )
    answer = await asyncio.wait_for(call.answered(), 10)
    assert answer.codec == sdp.PCMA
    await call.hangup()
    await finished(trunk)


async def test_wrong_credentials_fail_the_call(user_agents: UserAgents, phones: Phones) -> None:
    ua = await user_agents()
    trunk = await phones("uas_challenge", USER="alice", PASSWORD="wonderland")
    call = await ua.call(
        uri(trunk, "+15550002000"),
        from_uri=FROM,
        offer=OFFER,
        credentials=Credentials("alice", "nope"),
    )
    with pytest.raises(CallFailed) as raised:
        await asyncio.wait_for(call.answered(), 10)
    assert raised.value.status == 403


async def test_registration_answers_the_challenge_refreshes_and_unregisters(
    user_agents: UserAgents, phones: Phones
) -> None:
    ua = await user_agents()
    registrar = await phones("uas_registrar", USER="bob", PASSWORD="pw", EXPIRES="6")
    registration = await asyncio.wait_for(
        ua.register(
            Endpoint("127.0.0.1", registrar.port),
            "sip:bob@registrar.test",
            Credentials("bob", "pw"),
            expires=3600,
        ),
        10,
    )
    assert registration.registered and registration.granted == 6
    first = registration.cseq
    # Refreshed about 1 s in: 6 s granted, refreshed 5 s ahead.
    await eventually(lambda: registration.cseq > first, within=5)
    await registration.unregister()
    assert not registration.registered
    await finished(registrar)


async def test_a_fork_given_up_by_its_caller_cancels_every_phone(
    user_agents: UserAgents, phones: Phones
) -> None:
    ua = await user_agents()
    first = await phones("uas_ring_until_cancel")
    second = await phones("uas_ring_until_cancel")
    with pytest.raises(TimeoutError):  # nobody answers within the app's ring timeout
        await asyncio.wait_for(
            ua.fork([uri(first, "a"), uri(second, "b")], from_uri=FROM, offer=OFFER), 1.0
        )
    await finished(first)
    await finished(second)
