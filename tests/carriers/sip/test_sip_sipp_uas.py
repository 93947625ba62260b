"""Interop: sipp calls our user agent (voice spec scenarios 8, 9 and 11).

Each test runs sipp as the caller against a `UserAgent` in this process and checks sipp's
exit status (0: every expected message came, in order, with the exact status), its
message log, and what the user agent saw. sipp is bounded by ``-timeout`` and killed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.carriers.sip.conftest import UserAgents
from tests.carriers.sip.peers import Sipp
from verbal.carriers.sip import sdp
from verbal.carriers.sip.calls import CallEnd
from verbal.carriers.sip.useragent import IncomingCall, SipLimits

pytestmark = pytest.mark.peers


def answer_of(call: IncomingCall) -> sdp.SessionDescription:
    return sdp.make_answer(call.offer, "127.0.0.1", 40000)


class Recorder:
    """An on_invite handler that rings, then does ``action`` after ``delay`` seconds."""

    def __init__(self, action: str = "answer", delay: float = 0.1) -> None:
        self.action = action
        self.delay = delay
        self.calls: list[IncomingCall] = []
        self.ends: list[CallEnd] = []

    async def __call__(self, call: IncomingCall) -> None:
        self.calls.append(call)
        call.ring()
        await asyncio.sleep(self.delay)
        if self.action == "answer":
            call.answer(answer_of(call))
        elif self.action == "answer-and-hang-up":
            call.answer(answer_of(call))
            await asyncio.wait_for(asyncio.shield(call.confirmed), 5)
            await asyncio.sleep(0.2)
            await call.hangup()
        elif self.action.startswith("reject "):
            call.reject(int(self.action.split()[1]))
        elif self.action.startswith("redirect "):
            call.redirect(self.action.split()[1])
        self.ends.append(await asyncio.wait_for(asyncio.shield(call.ended), 20))


async def sipp_calls(
    ua_port: int,
    scenario: str,
    tmp_path: Path,
    *,
    bound: float = 30.0,
    values: dict[str, str] | None = None,
    args: Sequence[str] = (),
) -> Sipp:
    sipp = Sipp(
        scenario,
        tmp_path,
        remote=f"127.0.0.1:{ua_port}",
        timeout=bound,
        values=values,
        args=args,
    )
    code = await sipp.run()
    assert code == 0, f"sipp exited {code}\n{sipp.report()}"
    return sipp


async def test_a_retransmitted_invite_is_absorbed(user_agents: UserAgents, tmp_path: Path) -> None:
    handler = Recorder("answer", delay=0.3)
    ua = await user_agents(handler)
    sipp = await sipp_calls(ua.bound.port, "uac_invite_twice", tmp_path, args=["-s", "verbal"])
    assert len(handler.calls) == 1
    assert handler.ends == [CallEnd("remote", 200, "BYE")]
    assert sipp.sent("INVITE sip:verbal@") == 2


async def test_a_withheld_ack_gets_the_200_resent_then_a_bye(
    user_agents: UserAgents, tmp_path: Path
) -> None:
    handler = Recorder("answer", delay=0.05)
    ua = await user_agents(handler)  # T1 = 50 ms: 64*T1 = 3.2 s
    sipp = await sipp_calls(ua.bound.port, "uac_withhold_ack", tmp_path, bound=20)
    assert handler.ends == [CallEnd("timeout", 408, "no ACK")]
    # The first 200 and its retransmissions: 50, 100, 200, 400, 400 ... ms apart for 3.2 s.
    assert sipp.received("SIP/2.0 200 OK") >= 8, sipp.messages()[-3000:]
    assert sipp.received("BYE sip:caller@") == 1


async def test_cancel_before_the_answer_gets_487(user_agents: UserAgents, tmp_path: Path) -> None:
    handler = Recorder("nothing", delay=10)
    ua = await user_agents(handler)
    await sipp_calls(ua.bound.port, "uac_cancel", tmp_path)
    call = handler.calls[0]
    assert await asyncio.wait_for(call.ended, 5) == CallEnd("remote", 487, "cancelled")


async def test_bye_in_the_middle_of_a_call_ends_it(user_agents: UserAgents, tmp_path: Path) -> None:
    handler = Recorder("answer", delay=0.05)
    ua = await user_agents(handler)
    await sipp_calls(ua.bound.port, "uac", tmp_path, args=["-d", "500"])
    assert handler.ends == [CallEnd("remote", 200, "BYE")]


async def test_options_unknown_methods_strays_and_malformed_requests(
    user_agents: UserAgents, tmp_path: Path
) -> None:
    ua = await user_agents(Recorder())
    sipp = await sipp_calls(ua.bound.port, "uac_oddities", tmp_path)
    for status in ("200 OK", "405 Method Not Allowed", "481 Call", "483 Too Many", "400 Bad"):
        assert sipp.received(f"SIP/2.0 {status}") >= 1


@pytest.mark.parametrize(
    ("action", "status", "match"),
    [
        ("reject 486", "486", "SIP/2.0 486 Busy Here"),
        ("reject 603", "603", "SIP/2.0 603 Decline"),
        ("redirect sip:elsewhere@192.0.2.1", "302", "Contact: <sip:elsewhere@192.0.2.1>"),
    ],
)
async def test_the_ua_rejects_and_redirects_with_exact_codes(
    user_agents: UserAgents, tmp_path: Path, action: str, status: str, match: str
) -> None:
    handler = Recorder(action, delay=0.05)
    ua = await user_agents(handler)
    await sipp_calls(
        ua.bound.port, "uac_expect_final", tmp_path, values={"STATUS": status, "MATCH": match}
    )
    assert [end.status for end in handler.ends] == [int(status)]


async def test_the_ua_hangs_up_with_bye(user_agents: UserAgents, tmp_path: Path) -> None:
    handler = Recorder("answer-and-hang-up", delay=0.05)
    ua = await user_agents(handler)
    await sipp_calls(ua.bound.port, "uac_hung_up", tmp_path)
    assert handler.ends == [CallEnd("local", 200, "OK")]


@pytest.mark.slow
async def test_bounded_load_of_200_calls_succeeds(user_agents: UserAgents, tmp_path: Path) -> None:
    handler = Recorder("answer", delay=0.0)
    ua = await user_agents(handler, limits=SipLimits(max_calls=100))
    sipp = Sipp("uac", tmp_path, remote=f"127.0.0.1:{ua.bound.port}", calls=200, timeout=60)
    sipp.command += ["-r", "10", "-l", "50"]
    await sipp.run()
    stats = sipp.stats()
    successful, created = int(stats["SuccessfulCall(C)"]), int(stats["TotalCallCreated"])
    assert created == 200
    assert successful >= 198, stats


async def test_hold_and_unhold_by_reinvite_get_the_mirrored_direction(
    user_agents: UserAgents, tmp_path: Path
) -> None:
    directions: list[sdp.Direction] = []

    async def answer(call: IncomingCall) -> None:
        call.on_update = lambda remote: directions.append(remote.direction)
        call.answer(answer_of(call))
        await asyncio.wait_for(asyncio.shield(call.ended), 10)

    ua = await user_agents(answer)
    await sipp_calls(ua.bound.port, "uac_hold", tmp_path, bound=15)
    assert directions == [sdp.Direction.SENDONLY, sdp.Direction.SENDRECV]
