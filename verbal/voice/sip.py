"""Calls over SIP trunks: `SipLines` places and takes them, `SipLeg` is one party of one.

The engine drives every call through the `CallLeg` protocol (`legs.py`); here that protocol
is carried by Verbal's own SIP user agent (`verbal/carriers/sip/`) for the signalling and an
`RtpSession` (`verbal/media/`) for the audio. A leg opens its RTP session when it offers or
answers, so a ringing leg holds no port; prompts are rendered once (`audio.render`) and
played frame by frame on the shared media clock.

Outcomes are Twilio's statuses, from the SIP answer: 486 and 600 are busy, 603 declined
(reported busy, as Twilio does), 408, 480 and our own ring timeout no-answer, 487 after our
CANCEL canceled, anything else failed. A trunk that answers 5xx, or nothing at all within
`TRUNK_SILENCE_SECONDS`, gives way to the next trunk that reaches the number.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from verbal.carriers.base import RouteRule
from verbal.carriers.sip import sdp
from verbal.carriers.sip.auth import Credentials
from verbal.carriers.sip.calls import CallEnd, CallFailed, IncomingCall, OutgoingCall
from verbal.carriers.sip.transport import Endpoint
from verbal.carriers.sip.useragent import UserAgent
from verbal.config import Settings
from verbal.ids import sid as new_sid
from verbal.media.g711 import Codec
from verbal.media.session import PortPool, RtpSession
from verbal.tasks import BackgroundTasks
from verbal.voice.legs import MAX_LOOPS, LegEvent, LegStatus, Listener, Prompt

log = logging.getLogger("verbal.voice.sip")

# Renders a prompt to 8 kHz PCM16, or None when it cannot be played (logged by the renderer).
Render = Callable[[Prompt], Awaitable[bytes | None]]
# What runs when a call arrives for one of our numbers (the engine's `Calls.incoming`).
Incoming = Callable[["SipLeg"], Awaitable[None]]


# A trunk that has not answered an INVITE at all after this long is passed over.
TRUNK_SILENCE_SECONDS = 4.0

_BUSY = {486, 600}
_DECLINED = {603}
_NO_ANSWER = {408, 480}


@dataclass(frozen=True, slots=True)
class SipTrunk:
    """Where calls to some numbers go: a SIP server (a carrier's trunk, a PBX, a proxy).

    `prefixes` are the E.164 prefixes it carries (the longest match wins, as for SMPP
    carriers); `username`/`password` answer its digest challenges.
    """

    name: str
    host: str
    port: int = 5060
    transport: str = "udp"
    prefixes: tuple[str, ...] = ("+",)
    username: str | None = None
    password: str | None = None

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint(self.host, self.port, self.transport)

    @property
    def credentials(self) -> Credentials | None:
        if self.username is None:
            return None
        return Credentials(self.username, self.password or "")

    def match(self, number: str) -> int | None:
        """How specific this trunk is for `number` (its longest prefix), or None: the SMPP
        carriers' rule (`RouteRule.specificity`)."""
        return RouteRule(self.prefixes).specificity(number)

    def uri(self, number: str) -> str:
        return f"sip:{number}@{self.host}:{self.port}"


def sip_lines(settings: Settings, render: Render) -> SipLines:
    """The trunks `settings` declare, on a user agent listening at `sip_listen` (not started:
    `SipLines.ua.start()` opens its sockets)."""
    host, _, port = (settings.sip_listen or "127.0.0.1:0").rpartition(":")
    ua = UserAgent(Endpoint(host or "127.0.0.1", int(port or 0), "udp"))
    trunks = [
        SipTrunk(
            name=entry.name,
            host=entry.host,
            port=entry.port,
            transport=entry.transport,
            prefixes=tuple(entry.prefixes) or ("+",),
            username=entry.username,
            password=entry.password.get_secret_value() or None,
        )
        for entry in settings.sip_trunks
    ]
    lines = SipLines(ua, trunks, render)
    ua.on_invite = lines.on_invite
    return lines


class SipLines:
    """The trunks, as the engine sees them (`legs.Lines`), and the calls they bring in."""

    def __init__(
        self,
        ua: UserAgent,
        trunks: Sequence[SipTrunk],
        render: Render,
        ports: PortPool | None = None,
    ) -> None:
        self.ua = ua
        self.trunks = tuple(trunks)
        self.render = render
        self.ports = ports
        # Set by the engine: what runs when a call arrives for one of our numbers.
        self.incoming: Incoming | None = None
        self._tasks = BackgroundTasks(log)

    def trunks_for(self, number: str) -> list[SipTrunk]:
        """The trunks that carry `number`, most specific first."""
        ranked = [
            (-specificity, index, trunk)
            for index, trunk in enumerate(self.trunks)
            if (specificity := trunk.match(number)) is not None
        ]
        return [trunk for _, _, trunk in sorted(ranked, key=lambda item: item[:2])]

    def reaches(self, number: str) -> bool:
        return bool(self.trunks_for(number))

    def originate(self, account_sid: str, local: str, remote: str, sid: str) -> SipLeg:
        return SipLeg(self, sid=sid, local=local, remote=remote)

    async def on_invite(self, call: IncomingCall) -> None:
        """The user agent's hook: a call for one of our numbers runs its voice app."""
        leg = SipLeg(
            self,
            sid=new_sid("CA"),
            local=_number(call.uri),
            remote=_number(call.from_.uri),
            inbound=call,
        )
        if self.incoming is None:
            call.reject(503)
            return
        call.ring()
        self.spawn(self.incoming(leg), f"call {leg.sid}")

    def spawn(self, work: Awaitable[None], name: str) -> None:
        self._tasks.spawn(work, name)

    async def stop(self) -> None:
        await self._tasks.stop()


class SipLeg:
    """One party of a call over a SIP trunk (the `CallLeg` protocol)."""

    def __init__(
        self,
        lines: SipLines,
        *,
        sid: str,
        local: str,
        remote: str,
        inbound: IncomingCall | None = None,
    ) -> None:
        self.sid = sid
        self.local = local
        self.remote = remote
        self._lines = lines
        self._inbound = inbound
        self._outbound: OutgoingCall | None = None
        self._session: RtpSession | None = None
        self._status = LegStatus.RINGING if inbound is not None else LegStatus.QUEUED
        self._listeners: list[Listener] = []
        self._end: asyncio.Future[LegEvent] = asyncio.get_running_loop().create_future()
        self._answered_at: float | None = None
        self._cancelled = False
        if inbound is not None:
            lines.spawn(self._follow(inbound), f"leg {sid}")

    @property
    def status(self) -> LegStatus:
        return self._status

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def ended(self) -> LegEvent:
        return await asyncio.shield(self._end)

    # -- outbound ---------------------------------------------------------------------------

    async def ring(self, timeout_seconds: float) -> LegStatus:
        if self._inbound is not None or self._status != LegStatus.QUEUED:
            raise RuntimeError("only a new outbound leg rings")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_seconds
        failure: CallFailed | None = None
        for trunk in self._lines.trunks_for(self.remote):
            if self._cancelled:
                break
            session = await self._open_session()
            offer = sdp.make_offer(self._lines.ua.host, session.local_address[1])
            try:
                call = await self._lines.ua.call(
                    trunk.uri(self.remote),
                    from_uri=f"sip:{self.local}@{self._lines.ua.host}",
                    offer=offer,
                    proxy=trunk.endpoint,
                    credentials=trunk.credentials,
                )
            except CallFailed as failed:
                failure = failed
                continue
            self._outbound = call
            watch = asyncio.ensure_future(self._watch_progress(call))
            try:
                answer = await _answer_within(call, deadline)
            except TimeoutError:
                call.cancel()
                self._finish(LegStatus.NO_ANSWER, "no answer")
                return self._status
            except CallFailed as failed:
                failure = failed
                if 500 <= failed.status < 600 and not self._cancelled:
                    log.warning("trunk %s did not take a call: %s", trunk.name, failed)
                    self._close_session()
                    continue
                break
            finally:
                watch.cancel()
            self._media(answer)
            self._answered()
            self._lines.spawn(self._follow(call), f"leg {self.sid}")
            return self._status
        self._finish(*_outcome(failure, self._cancelled))
        return self._status

    async def _watch_progress(self, call: OutgoingCall) -> None:
        async for progress in call.progress():
            if progress.status in (180, 183) and self._status == LegStatus.QUEUED:
                self._set(LegStatus.RINGING)
            if progress.sdp is not None and progress.sdp.port:
                self._media(progress.sdp)  # early media plays what the far end sends first

    # -- inbound ----------------------------------------------------------------------------

    async def answer(self) -> None:
        call = self._inbound
        if call is None or self._status != LegStatus.RINGING:
            return
        call.answer(await self._answer_sdp(call))
        self._answered()

    async def pre_answer(self) -> None:
        call = self._inbound
        if call is None or self._status != LegStatus.RINGING:
            return
        call.pre_answer(await self._answer_sdp(call))

    async def reject(self, reason: str) -> None:
        if self._inbound is not None and self._status == LegStatus.RINGING:
            self._inbound.reject(486 if reason == "busy" else 603)
            self._finish(LegStatus.BUSY, reason)

    async def redirect(self, to: str) -> None:
        if self._inbound is not None and self._status == LegStatus.RINGING:
            trunk = next(iter(self._lines.trunks_for(to)), None)
            host = trunk.host if trunk is not None else self._lines.ua.host
            self._inbound.redirect(f"sip:{to}@{host}")
            self._finish(LegStatus.COMPLETED, f"redirected to {to}")

    async def _answer_sdp(self, call: IncomingCall) -> sdp.SessionDescription:
        session = await self._open_session()
        answer = sdp.make_answer(call.offer, self._lines.ua.host, session.local_address[1])
        self._media(call.offer, codec=answer.codec)
        return answer

    # -- both -------------------------------------------------------------------------------

    async def hangup(self, cause: str = "app hung up") -> None:
        if self._status.final:
            return
        if self._status == LegStatus.IN_PROGRESS:
            call = self._outbound or self._inbound
            assert call is not None
            await call.hangup()
            self._finish(LegStatus.COMPLETED, cause)
        elif self._inbound is not None:
            await self.reject("rejected")
        else:
            self._cancelled = True
            if self._outbound is not None:
                self._outbound.cancel()
            self._finish(LegStatus.CANCELED, cause)

    async def play(self, prompt: Prompt) -> bool:
        rounds = prompt.loop if prompt.loop > 0 else MAX_LOOPS
        pcm: bytes | None = None
        for _ in range(rounds):
            if self._session is None or self._status.final:
                break
            if pcm is None:  # rendered once, played each round
                pcm = await self._lines.render(prompt)
            if pcm is None or self._session is None:
                break
            if not await self._until_end(self._session.player.play(pcm)):
                return False
        return not self._status.final

    async def pause(self, seconds: float) -> bool:
        if self._session is None or self._status.final:
            return not self._status.final
        return await self._until_end(self._session.player.pause(seconds))

    # -- the leg's life ---------------------------------------------------------------------

    async def _until_end(self, playback: Awaitable[bool]) -> bool:
        """Wait for `playback`, or the call's end (which stops it); whether it played."""
        play = asyncio.ensure_future(playback)
        await asyncio.wait({play, self._end}, return_when=asyncio.FIRST_COMPLETED)
        if not play.done():
            if self._session is not None:
                self._session.player.stop()
            play.cancel()
            return False
        return not self._end.done()

    async def _follow(self, call: IncomingCall | OutgoingCall) -> None:
        """The far end's hang-up (or CANCEL, or a timeout) ends the leg."""
        end: CallEnd = await call.ended
        if self._status.final:
            return
        if end.by == "local":
            return  # our own hang-up, already finished
        who = "callee hung up" if self._inbound is None else "caller hung up"
        if self._status == LegStatus.IN_PROGRESS:
            self._finish(LegStatus.COMPLETED, who if end.by == "remote" else "timeout")
        else:
            self._finish(LegStatus.CANCELED, who)

    async def _open_session(self) -> RtpSession:
        if self._session is None:
            self._session = await RtpSession.open(host=self._lines.ua.host, ports=self._lines.ports)
        return self._session

    def _media(self, far: sdp.SessionDescription, codec: int | None = None) -> None:
        if self._session is not None:
            self._session.update(
                remote=(far.address, far.port),
                codec=Codec(codec if codec is not None else far.codec),
                event_payload_type=far.telephone_event,
            )

    def _close_session(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def _answered(self) -> None:
        self._answered_at = time.monotonic()
        self._set(LegStatus.IN_PROGRESS)

    def _set(
        self, status: LegStatus, cause: str | None = None, duration: int | None = None
    ) -> None:
        self._status = status
        event = LegEvent(status, cause, duration)
        for listener in self._listeners:
            listener(event)

    def _finish(self, status: LegStatus, cause: str) -> None:
        if self._status.final:
            return
        duration = 0
        if self._answered_at is not None:
            duration = round(time.monotonic() - self._answered_at)
        self._close_session()
        self._set(status, cause, duration)
        with contextlib.suppress(asyncio.InvalidStateError):
            self._end.set_result(LegEvent(status, cause, duration))


async def _answer_within(call: OutgoingCall, deadline: float) -> sdp.SessionDescription:
    """The call's answer by `deadline` (else TimeoutError); a trunk that has not answered
    the INVITE at all (not even 100 Trying) after `TRUNK_SILENCE_SECONDS` is given up as
    503, so that the next trunk gets its turn well before the caller's patience ends."""
    loop = asyncio.get_running_loop()
    answer = asyncio.ensure_future(call.answered())
    silence = min(TRUNK_SILENCE_SECONDS, max(0.0, deadline - loop.time()))
    await asyncio.wait({answer}, timeout=silence)
    if not answer.done() and call.status is None and loop.time() < deadline:
        answer.cancel()
        call.cancel()
        raise CallFailed(503, "Trunk Not Answering")
    try:
        async with asyncio.timeout_at(deadline):
            return await answer
    finally:
        answer.cancel()


def _outcome(failure: CallFailed | None, cancelled: bool) -> tuple[LegStatus, str]:
    if cancelled:
        return LegStatus.CANCELED, "app hung up"
    if failure is None:
        return LegStatus.FAILED, "no trunk reaches the number"
    if failure.status in _BUSY:
        return LegStatus.BUSY, "busy"
    if failure.status in _DECLINED:
        return LegStatus.BUSY, "declined"
    if failure.status in _NO_ANSWER:
        return LegStatus.NO_ANSWER, "no answer"
    if failure.status == 487:
        return LegStatus.CANCELED, "canceled"
    return LegStatus.FAILED, f"{failure.status} {failure.reason}"


def _number(uri: str) -> str:
    """The user part of a SIP or tel URI (`sip:+15550001000@host;user=phone`)."""
    return uri.split(":", 1)[-1].split("@", 1)[0].split(";", 1)[0]
