"""Sandbox voice: the virtual handsets as call legs, which ring, answer, refuse and listen.

A call between Verbal and a handset is a pair in this process: the platform's side is a
`SandboxLeg` (a `CallLeg` the engine drives like any other), the handset's side is the
`HandsetCall` that keeps what the handset heard, as PCM (8 kHz, 16-bit) and as a list of
what was played. A called handset does what the account's voice rules say (`answer`,
`no-answer`, `busy`, `decline`, `fail`, after ringing `delay_seconds`:
`verbal/carriers/sandbox.py`); a handset can also call one of the account's numbers, whose
voice app then runs, and hang up after a while.

Playing takes real time: a two-second prompt keeps the call busy for two seconds, so that
durations, hang-ups in the middle of a prompt and first-to-answer races behave as on a
network. Recordings are kept in memory for the most recent calls only.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
import wave
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from verbal.carriers.sandbox import CallOutcome, NotServed, SandboxNetwork
from verbal.tasks import BackgroundTasks
from verbal.voice import audio
from verbal.voice.legs import MAX_LOOPS, LegEvent, LegStatus, Listener, Prompt

log = logging.getLogger("verbal.voice.sandbox")

# A handset hangs up a call this long after it was answered, whatever else happens: no call
# keeps a process's memory forever.
MAX_CALL_SECONDS = 3600.0
# A handset that calls gives up when not answered within this long.
CALLER_PATIENCE_SECONDS = 60.0
# What a handset heard is kept for this many calls in the process (oldest dropped first),
# each at most this long.
KEPT_CALLS = 200
MAX_RECORDING_BYTES = 600 * audio.BYTES_PER_SECOND


@dataclass(slots=True)
class Heard:
    """One thing a handset heard: `speech` (its text), `audio` (its URL) or `silence`."""

    kind: str
    detail: str
    seconds: float
    early: bool = False  # before the call was answered (early media)


@dataclass(slots=True)
class HandsetCall:
    """A call as the handset saw it."""

    sid: str
    account_sid: str
    handset: str
    other: str  # the account's number: who called the handset, or whom it called
    direction: str  # "incoming" (the handset was called) or "outgoing" (it called)
    status: str = LegStatus.RINGING.value
    cause: str | None = None
    heard: list[Heard] = field(default_factory=list)
    pcm: bytearray = field(default_factory=bytearray)
    started_at: float = field(default_factory=time.time)
    answered_at: float | None = None
    ended_at: float | None = None

    def wav(self) -> bytes:
        """What the handset heard, as a WAV file (8 kHz, 16-bit, mono)."""
        out = io.BytesIO()
        with wave.open(out, "wb") as file:
            file.setnchannels(1)
            file.setsampwidth(2)
            file.setframerate(audio.SAMPLE_RATE)
            file.writeframes(bytes(self.pcm))
        return out.getvalue()

    def _keep(self, pcm: bytes) -> None:
        room = MAX_RECORDING_BYTES - len(self.pcm)
        if room > 0:
            self.pcm += pcm[:room]


Incoming = Callable[["SandboxLeg"], Awaitable[None]]


class SandboxPhones:
    """The handsets' voice side: `Lines` for calls to handsets, and calls from them."""

    def __init__(self, network: SandboxNetwork, fetch_audio: audio.FetchAudio | None) -> None:
        self.network = network
        self._render = audio.renderer(fetch_audio)
        self._calls: OrderedDict[str, HandsetCall] = OrderedDict()
        # The legs of calls still up, by SID (dropped when they end).
        self._legs: dict[str, SandboxLeg] = {}
        self._tasks = BackgroundTasks(log)
        # Set by the engine: what runs when a handset calls one of an account's numbers.
        self.incoming: Incoming | None = None

    def reaches(self, number: str) -> bool:
        return self.network.reaches(number)

    def originate(self, account_sid: str, local: str, remote: str, sid: str) -> SandboxLeg:
        record = self._remember(HandsetCall(sid, account_sid, remote, local, "incoming"))
        return SandboxLeg(self, record, local=local, remote=remote, outbound=True)

    async def call_from_handset(
        self,
        account_sid: str,
        handset: str,
        to: str,
        sid: str,
        hangup_after_seconds: float | None = None,
    ) -> SandboxLeg:
        """``handset`` calls ``to``, one of ``account_sid``'s numbers; the number's voice app
        answers it (through `incoming`). Raises `NotAHandset` or `NotServed`."""
        self.network.check_handset(handset)
        if await self.network.owner(to) != account_sid:
            raise NotServed(f"{to} is not one of this account's numbers")
        if self.incoming is None:
            raise NotServed("this server takes no calls")
        record = self._remember(HandsetCall(sid, account_sid, handset, to, "outgoing"))
        leg = SandboxLeg(
            self,
            record,
            local=to,
            remote=handset,
            outbound=False,
            hangup_after_seconds=hangup_after_seconds,
        )
        self.spawn(self.incoming(leg), f"call {sid}")
        self.spawn(leg._give_up_after(CALLER_PATIENCE_SECONDS), f"patience {sid}")
        return leg

    def hang_up(self, sid: str) -> None:
        """The handset of call `sid` puts the phone down (if the call is up here)."""
        leg = self._legs.get(sid)
        if leg is not None:
            leg.handset_hangs_up()

    def calls(self, account_sid: str, handset: str) -> list[HandsetCall]:
        """The handset's recent calls with ``account_sid``'s numbers, newest first."""
        return [
            call
            for call in reversed(self._calls.values())
            if call.account_sid == account_sid and call.handset == handset
        ]

    def call(self, account_sid: str, sid: str) -> HandsetCall | None:
        found = self._calls.get(sid)
        return found if found is not None and found.account_sid == account_sid else None

    def spawn(self, work: Awaitable[None], name: str) -> None:
        self._tasks.spawn(work, name)

    async def stop(self) -> None:
        await self._tasks.stop()

    def _remember(self, call: HandsetCall) -> HandsetCall:
        self._calls[call.sid] = call
        while len(self._calls) > KEPT_CALLS:
            self._calls.popitem(last=False)
        return call


class SandboxLeg:
    """Verbal's side of a call with a handset (see the module docstring)."""

    def __init__(
        self,
        phones: SandboxPhones,
        record: HandsetCall,
        *,
        local: str,
        remote: str,
        outbound: bool,
        hangup_after_seconds: float | None = None,
    ) -> None:
        self.local = local
        self.remote = remote
        self.sid = record.sid
        self.record = record
        self._phones = phones
        self._outbound = outbound
        self._status = LegStatus.QUEUED if outbound else LegStatus.RINGING
        self._listeners: list[Listener] = []
        self._end: asyncio.Future[LegEvent] = asyncio.get_running_loop().create_future()
        phones._legs[record.sid] = self
        self._end.add_done_callback(lambda _: phones._legs.pop(record.sid, None))
        self._answered_at: float | None = None
        self._early = False
        self._hangup_after = hangup_after_seconds

    @property
    def status(self) -> LegStatus:
        return self._status

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def ended(self) -> LegEvent:
        return await asyncio.shield(self._end)

    # -- ringing ---------------------------------------------------------------------------

    async def ring(self, timeout_seconds: float) -> LegStatus:
        if not self._outbound or self._status != LegStatus.QUEUED:
            raise RuntimeError("only a new outbound leg rings")
        phones = self._phones
        outcome, delay = await phones.network.call_verdict(self.record.account_sid, self.remote)
        if self._status.final:
            return self._status  # hung up while the rules were read
        if outcome == CallOutcome.FAIL:
            self._finish(LegStatus.FAILED, "unreachable")
            return self._status
        self._set(LegStatus.RINGING)
        rings = timeout_seconds if outcome == CallOutcome.NO_ANSWER else delay
        if await self._wait_end(min(rings, timeout_seconds)):
            return self._status  # cancelled while ringing
        if outcome == CallOutcome.NO_ANSWER or delay >= timeout_seconds:
            self._finish(LegStatus.NO_ANSWER, "no answer")
        elif outcome == CallOutcome.BUSY:
            self._finish(LegStatus.BUSY, "busy")
        elif outcome == CallOutcome.DECLINE:
            # SIP 603: reported as busy, as Twilio reports a declined call.
            self._finish(LegStatus.BUSY, "declined")
        else:
            self._answered()
        return self._status

    async def answer(self) -> None:
        if self._status == LegStatus.RINGING and not self._outbound:
            self._answered()

    async def pre_answer(self) -> None:
        if self._status == LegStatus.RINGING:
            self._early = True

    async def reject(self, reason: str) -> None:
        if self._status == LegStatus.RINGING and not self._outbound:
            self._finish(LegStatus.BUSY, reason)

    async def redirect(self, to: str) -> None:
        if self._status == LegStatus.RINGING and not self._outbound:
            self._finish(LegStatus.COMPLETED, f"redirected to {to}")

    async def hangup(self, cause: str = "app hung up") -> None:
        if self._status.final:
            return
        if self._status == LegStatus.IN_PROGRESS:
            self._finish(LegStatus.COMPLETED, cause)
        elif self._outbound:
            self._finish(LegStatus.CANCELED, cause)
        else:
            # Hanging up a call that rings refuses it (Plivo: reason "rejected").
            self._finish(LegStatus.BUSY, "rejected")

    def handset_hangs_up(self) -> None:
        """The handset's side ends the call (a person putting the phone down)."""
        if self._status.final:
            return
        who = "caller hung up" if not self._outbound else "callee hung up"
        answered = self._status == LegStatus.IN_PROGRESS
        self._finish(LegStatus.COMPLETED if answered else LegStatus.CANCELED, who)

    # -- media ------------------------------------------------------------------------------

    async def play(self, prompt: Prompt) -> bool:
        rounds = prompt.loop if prompt.loop > 0 else MAX_LOOPS
        pcm: bytes | None = None
        for _ in range(rounds):
            if not self._hears():
                return not self._status.final
            if pcm is None:  # rendered once, played each round
                pcm = await self._phones._render(prompt)
                if pcm is None:
                    return not self._status.final
            kind, detail = (
                ("audio", prompt.audio_url) if prompt.audio_url else ("speech", prompt.text)
            )
            if not await self._hear(pcm, kind, detail or ""):
                return False
        return not self._status.final

    async def pause(self, seconds: float) -> bool:
        if not self._hears():
            return not self._status.final
        # Silence is heard in real time, and kept as zeros up to the recording's limit.
        return await self._hear(None, "silence", f"{seconds:g}", seconds)

    # -- the leg's life ---------------------------------------------------------------------

    def _hears(self) -> bool:
        return self._status == LegStatus.IN_PROGRESS or (
            self._early and self._status == LegStatus.RINGING
        )

    async def _hear(
        self, pcm: bytes | None, kind: str, detail: str, seconds: float | None = None
    ) -> bool:
        """Let the handset hear `pcm` (or silence) in real time; False if the call ended
        first, having kept what was heard until then."""
        length = audio.seconds(pcm) if pcm is not None else (seconds or 0.0)
        early = self._status == LegStatus.RINGING
        loop = asyncio.get_running_loop()
        started = loop.time()
        ended = await self._wait_end(length)
        heard = min(length, loop.time() - started) if ended else length
        size = int(heard * audio.SAMPLE_RATE) * 2
        self.record._keep(pcm[:size] if pcm is not None else bytes(size))
        self.record.heard.append(Heard(kind, detail, round(heard, 3), early))
        return not ended

    async def _wait_end(self, seconds: float) -> bool:
        """Wait `seconds` or until the call ends; whether it ended."""
        if seconds > 0 and not self._end.done():
            await asyncio.wait({self._end}, timeout=seconds)
        return self._end.done()

    async def _give_up_after(self, seconds: float) -> None:
        if not await self._wait_end(seconds) and self._status == LegStatus.RINGING:
            self._finish(LegStatus.NO_ANSWER, "caller gave up")

    async def _hang_up_later(self, seconds: float) -> None:
        if not await self._wait_end(seconds):
            self.handset_hangs_up()

    def _answered(self) -> None:
        self._answered_at = time.monotonic()
        self.record.answered_at = time.time()
        self._set(LegStatus.IN_PROGRESS)
        limit = min(self._hangup_after or MAX_CALL_SECONDS, MAX_CALL_SECONDS)
        self._phones.spawn(self._hang_up_later(limit), f"handset {self.remote} hang-up")

    def _set(
        self, status: LegStatus, cause: str | None = None, duration: int | None = None
    ) -> None:
        self._status = status
        self.record.status = status.value
        event = LegEvent(status, cause, duration)
        for listener in self._listeners:
            listener(event)

    def _finish(self, status: LegStatus, cause: str) -> None:
        duration = 0
        if self._answered_at is not None:
            duration = round(time.monotonic() - self._answered_at)
        self.record.cause = cause
        self.record.ended_at = time.time()
        self._set(status, cause, duration)
        with contextlib.suppress(asyncio.InvalidStateError):
            self._end.set_result(LegEvent(status, cause, duration))
