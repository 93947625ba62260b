"""Tests for verbal.carriers.sip.useragent over real loopback sockets.

A `RawPeer` is a bare UDP (or TCP) socket that sends hand-written requests, so the
user agent's answers to hostile or odd input are seen exactly as the network sees them;
two user agents call each other for the paths no test peer exercises (TCP, limits).
"""

from __future__ import annotations

import asyncio
import random
import secrets
from collections.abc import AsyncIterator

import pytest

from tests.carriers.sip.conftest import UserAgents
from verbal.carriers.sip import sdp
from verbal.carriers.sip.calls import CallEnd, CallFailed, IncomingCall
from verbal.carriers.sip.message import MessageLimits, Response, parse
from verbal.carriers.sip.useragent import SipLimits, UserAgent

OFFER = sdp.make_offer("127.0.0.1", 40000)


class RawPeer(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.responses: asyncio.Queue[Response] = asyncio.Queue()
        self.port = 0

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        message = parse(data)
        assert isinstance(message, Response)
        self.responses.put_nowait(message)

    async def open(self) -> RawPeer:
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=("127.0.0.1", 0)
        )
        self.port = self.transport.get_extra_info("sockname")[1]
        return self

    def request(
        self,
        ua: UserAgent,
        method: str = "OPTIONS",
        *,
        extra: str = "",
        body: bytes = b"",
        call_id: str | None = None,
        branch: str | None = None,
        cseq: int = 1,
        content_type: str = "application/sdp",
    ) -> bytes:
        branch = branch or "z9hG4bK" + secrets.token_hex(6)
        lines = [
            f"{method} sip:verbal@127.0.0.1:{ua.bound.port} SIP/2.0",
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch={branch};rport",
            "Max-Forwards: 70",
            f"From: <sip:raw@127.0.0.1:{self.port}>;tag=raw1",
            f"To: <sip:verbal@127.0.0.1:{ua.bound.port}>",
            f"Call-ID: {call_id or secrets.token_hex(8)}",
            f"CSeq: {cseq} {method}",
            f"Contact: <sip:raw@127.0.0.1:{self.port}>",
        ]
        if body:
            lines.append(f"Content-Type: {content_type}")
        lines += [line for line in extra.split("\n") if line]
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    def send(self, ua: UserAgent, data: bytes) -> None:
        self.transport.sendto(data, ("127.0.0.1", ua.bound.port))

    async def final(self) -> Response:
        """The next final response (provisional ones are skipped)."""
        async with asyncio.timeout(5):
            while (response := await self.responses.get()).status < 200:
                pass
            return response


@pytest.fixture
async def raw() -> AsyncIterator[RawPeer]:
    peer = await RawPeer().open()
    yield peer
    peer.transport.close()


async def never_answer(call: IncomingCall) -> None:
    call.ring()
    await asyncio.sleep(30)


async def test_an_invite_flood_gets_503_with_retry_after(
    user_agents: UserAgents, raw: RawPeer
) -> None:
    limits = SipLimits(invite_rate=1, invite_burst=3, retry_after=7)
    ua = await user_agents(never_answer, limits=limits)
    for _ in range(10):
        raw.send(ua, raw.request(ua, "INVITE", body=bytes(OFFER)))
    refused = [await raw.final() for _ in range(7)]
    assert {response.status for response in refused} == {503}
    assert refused[0].headers.get("Retry-After") == "7"
    assert raw.responses.empty() or (await raw.responses.get()).status < 200
    raw.send(ua, raw.request(ua))  # the process is still up and answering
    assert (await raw.final()).status == 200


async def test_past_max_calls_an_invite_gets_503(user_agents: UserAgents, raw: RawPeer) -> None:
    ua = await user_agents(never_answer, limits=SipLimits(max_calls=2))
    for _ in range(3):
        raw.send(ua, raw.request(ua, "INVITE", body=bytes(OFFER)))
    assert (await raw.final()).status == 503


async def test_an_oversized_request_gets_513(user_agents: UserAgents, raw: RawPeer) -> None:
    ua = await user_agents(limits=SipLimits(message=MessageLimits(max_size=1500)))
    raw.send(ua, raw.request(ua, extra="X-Padding: " + "p" * 3000))
    assert (await raw.final()).status == 513


@pytest.mark.parametrize(
    ("method", "extra", "body", "content_type", "status"),
    [
        ("INVITE", "Require: 100rel", bytes(OFFER), "application/sdp", 420),
        ("INVITE", "", b"<xml/>", "application/xml", 415),
        ("INVITE", "", b"", "application/sdp", 488),
        (
            "INVITE",
            "",
            bytes(OFFER).replace(b"RTP/AVP 0 8 101", b"RTP/AVP 18"),
            "application/sdp",
            488,
        ),
        ("INVITE", "", b"v=0\r\nnonsense\r\n", "application/sdp", 400),
        ("REGISTER", "", b"", "", 405),
        ("MESSAGE", "", b"hi", "text/plain", 405),
        ("CANCEL", "", b"", "", 481),
    ],
)
async def test_requests_it_cannot_take_get_the_rfcs_status(
    user_agents: UserAgents,
    raw: RawPeer,
    method: str,
    extra: str,
    body: bytes,
    content_type: str,
    status: int,
) -> None:
    ua = await user_agents(never_answer)
    raw.send(ua, raw.request(ua, method, extra=extra, body=body, content_type=content_type))
    response = await raw.final()
    assert response.status == status
    if status == 420:
        assert response.headers.get("Unsupported") == "100rel"
    if status == 405:
        assert "INVITE" in (response.headers.get("Allow") or "")


async def test_the_same_request_on_another_branch_is_a_loop(
    user_agents: UserAgents, raw: RawPeer
) -> None:
    ua = await user_agents(never_answer)
    raw.send(ua, raw.request(ua, "INVITE", body=bytes(OFFER), call_id="merged"))
    raw.send(ua, raw.request(ua, "INVITE", body=bytes(OFFER), call_id="merged"))
    assert (await raw.final()).status == 482


async def test_a_retransmitted_options_gets_the_same_answer_once_handled(
    user_agents: UserAgents, raw: RawPeer
) -> None:
    ua = await user_agents()
    options = raw.request(ua, branch="z9hG4bKsame")
    raw.send(ua, options)
    raw.send(ua, options)
    first, second = await raw.final(), await raw.final()
    assert first == second
    assert "INVITE" in (first.headers.get("Allow") or "")


async def test_garbage_is_dropped_and_the_ua_keeps_answering(
    user_agents: UserAgents, raw: RawPeer
) -> None:
    ua = await user_agents()
    for junk in (
        b"",
        b"\x00" * 100,
        b"SIP/2.0 200 OK\r\n\r\n",
        b"\r\n\r\n",
        secrets.token_bytes(900),
    ):
        raw.send(ua, junk)
    raw.send(ua, raw.request(ua))
    assert (await raw.final()).status == 200


async def test_two_user_agents_call_each_other_over_tcp(user_agents: UserAgents) -> None:
    answered: list[IncomingCall] = []

    async def answer(call: IncomingCall) -> None:
        answered.append(call)
        call.pre_answer(sdp.make_answer(call.offer, "127.0.0.1", 41000))
        call.answer(sdp.make_answer(call.offer, "127.0.0.1", 41000))

    callee = await user_agents(answer, transport="tcp")
    caller = await user_agents(transport="tcp")
    call = await caller.call(
        f"sip:bob@127.0.0.1:{callee.bound.port};transport=tcp",
        from_uri="sip:alice@127.0.0.1",
        offer=OFFER,
    )
    progress = [p async for p in call.progress()]
    assert [p.status for p in progress] == [183]
    assert progress[0].sdp is not None and progress[0].sdp.port == 41000
    answer_sdp = await asyncio.wait_for(call.answered(), 5)
    assert answer_sdp.port == 41000
    await asyncio.wait_for(asyncio.shield(answered[0].confirmed), 5)
    assert "SIP/2.0/TCP" in answered[0].request.headers.values("Via")[0]
    await call.hangup()
    assert await call.ended == CallEnd("local", 200, "OK")
    assert await asyncio.wait_for(answered[0].ended, 5) == CallEnd("remote", 200, "BYE")


async def test_an_unanswered_call_is_refused_480_after_the_answer_timeout(
    user_agents: UserAgents,
) -> None:
    callee = await user_agents(never_answer, limits=SipLimits(answer_timeout=0.3))
    caller = await user_agents()
    call = await caller.call(
        f"sip:bob@127.0.0.1:{callee.bound.port}", from_uri="sip:alice@127.0.0.1", offer=OFFER
    )
    with pytest.raises(CallFailed) as raised:
        await asyncio.wait_for(call.answered(), 5)
    assert raised.value.status == 480


async def test_a_call_to_nobody_fails_408_after_timer_b(user_agents: UserAgents) -> None:
    caller = await user_agents()  # T1 = 50 ms: timer B fires after 3.2 s
    silent = await RawPeer().open()  # a socket that never answers
    try:
        call = await caller.call(
            f"sip:bob@127.0.0.1:{silent.port}", from_uri="sip:alice@127.0.0.1", offer=OFFER
        )
        with pytest.raises(CallFailed) as raised:
            await asyncio.wait_for(call.answered(), 10)
        assert raised.value.status == 408
        assert await call.ended == CallEnd("timeout", 408, "Request Timeout")
    finally:
        silent.transport.close()


async def test_close_hangs_up_the_calls_still_up(user_agents: UserAgents) -> None:
    ended: list[CallEnd] = []

    async def answer(call: IncomingCall) -> None:
        call.answer(sdp.make_answer(call.offer, "127.0.0.1", 41000))
        ended.append(await asyncio.wait_for(asyncio.shield(call.ended), 10))

    callee = await user_agents(answer)
    caller = await user_agents()
    call = await caller.call(
        f"sip:bob@127.0.0.1:{callee.bound.port}", from_uri="sip:alice@127.0.0.1", offer=OFFER
    )
    await asyncio.wait_for(call.answered(), 5)
    await caller.close()
    assert await asyncio.wait_for(call.ended, 5) == CallEnd("local", 200, "OK")
    for _ in range(100):
        if ended:
            break
        await asyncio.sleep(0.02)
    assert ended == [CallEnd("remote", 200, "BYE")]


async def test_mangled_requests_never_raise_inside_the_user_agent(
    user_agents: UserAgents, raw: RawPeer, caplog: pytest.LogCaptureFixture
) -> None:
    """Every mutation of valid requests is answered or dropped, never an internal error."""
    ua = await user_agents(never_answer)
    rng = random.Random(3261)
    originals = [
        raw.request(ua, "INVITE", body=bytes(OFFER)),
        raw.request(ua, "BYE", extra="X: y"),
        raw.request(ua, "CANCEL"),
        raw.request(ua, "ACK"),
        raw.request(ua, "OPTIONS"),
    ]
    tokens = [b" ", b";", b":", b"<", b">", b",", b"\r\n", b"=", b"@", b"\x00", b"tag=", b"SIP/2.0"]
    for _ in range(600):
        data = bytearray(rng.choice(originals))
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data))
            if rng.random() < 0.5:
                del data[at : at + rng.randint(1, 6)]
            else:
                data[at:at] = rng.choice(tokens)
        raw.send(ua, bytes(data))
        if _ % 50 == 0:
            await asyncio.sleep(0.01)  # let the user agent read its socket buffer
    raw.send(ua, raw.request(ua, branch="z9hG4bKlast"))
    async with asyncio.timeout(10):
        while True:
            response = await raw.responses.get()
            if response.top_via.branch == "z9hG4bKlast":
                break
    assert response.status == 200
    errors = [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
    assert errors == [], [r.getMessage() for r in errors]


async def test_a_tcp_stream_past_the_size_limit_is_closed_and_others_carry_on(
    user_agents: UserAgents,
) -> None:
    ua = await user_agents(limits=SipLimits(message=MessageLimits(max_size=4000)))
    reader, writer = await asyncio.open_connection("127.0.0.1", ua.bound.port)
    writer.write(b"OPTIONS sip:verbal@127.0.0.1 SIP/2.0\r\n" + b"X-Junk: aaaaaaaa\r\n" * 400)
    async with asyncio.timeout(5):
        assert await reader.read() == b""  # closed by the user agent, nothing said
    writer.close()

    reader, writer = await asyncio.open_connection("127.0.0.1", ua.bound.port)
    host, port = writer.get_extra_info("sockname")[:2]
    options = (
        f"OPTIONS sip:verbal@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP {host}:{port};branch=z9hG4bKtcp\r\n"
        "From: <sip:t@h>;tag=1\r\nTo: <sip:verbal@h>\r\nCall-ID: tcp1\r\nCSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    writer.write(options)
    async with asyncio.timeout(5):
        head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"SIP/2.0 200 OK\r\n")
    writer.close()


async def test_the_callee_hangs_up_and_extra_headers_reach_it(user_agents: UserAgents) -> None:
    seen: list[str | None] = []

    async def answer_then_hang_up(call: IncomingCall) -> None:
        seen.append(call.headers.get("X-Verbal-Session"))
        call.answer(sdp.make_answer(call.offer, "127.0.0.1", 41000))
        await asyncio.wait_for(asyncio.shield(call.confirmed), 5)
        await call.hangup()

    callee = await user_agents(answer_then_hang_up)
    caller = await user_agents()
    call = await caller.call(
        f"sip:bob@127.0.0.1:{callee.bound.port}",
        from_uri='"Verbal" <sip:alice@127.0.0.1>',
        offer=OFFER,
        headers={"X-Verbal-Session": "SE123"},
    )
    await asyncio.wait_for(call.answered(), 5)
    assert await asyncio.wait_for(call.ended, 5) == CallEnd("remote", 200, "BYE")
    assert seen == ["SE123"]


async def test_a_redirect_fails_the_call_with_its_contacts(user_agents: UserAgents) -> None:
    async def redirect(call: IncomingCall) -> None:
        call.redirect("sip:carol@192.0.2.9:5060")

    callee = await user_agents(redirect)
    caller = await user_agents()
    call = await caller.call(
        f"sip:bob@127.0.0.1:{callee.bound.port}", from_uri="sip:alice@127.0.0.1", offer=OFFER
    )
    with pytest.raises(CallFailed) as raised:
        await asyncio.wait_for(call.answered(), 5)
    assert (raised.value.status, raised.value.contacts) == (302, ("sip:carol@192.0.2.9:5060",))
    assert await call.ended == CallEnd("remote", 302, "Moved Temporarily")
