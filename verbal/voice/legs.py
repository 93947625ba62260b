"""A call leg: one party of a call, as the engine drives it, whatever carries it.

The sandbox's virtual handsets (`verbal/voice/sandbox.py`) and SIP trunks are two kinds of
leg behind one protocol, `CallLeg`: the engine answers, plays, pauses, rejects, redirects
and hangs up through it, and hears what happens to the leg (ringing, answered, ended, with
the cause and the duration) as `LegEvent`s. Statuses are Twilio's names, which Restcomm
shares; the dialects translate them for Plivo and Tropo.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

# A prompt looped "until the call ends" (loop 0, as Twilio and Plivo allow) still ends: at most
# this many rounds, Twilio's own cap.
MAX_LOOPS = 1000


class LegStatus(enum.StrEnum):
    QUEUED = "queued"
    RINGING = "ringing"
    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"
    BUSY = "busy"
    FAILED = "failed"
    NO_ANSWER = "no-answer"
    CANCELED = "canceled"

    @property
    def final(self) -> bool:
        return self in FINAL


FINAL = frozenset(
    {
        LegStatus.COMPLETED,
        LegStatus.BUSY,
        LegStatus.FAILED,
        LegStatus.NO_ANSWER,
        LegStatus.CANCELED,
    }
)


@dataclass(frozen=True, slots=True)
class Prompt:
    """One thing to play: `text` spoken in `voice`, or the sound file at `audio_url`;
    `loop` times (0: until the call ends)."""

    text: str = ""
    audio_url: str | None = None
    voice: str | None = None
    loop: int = 1


@dataclass(frozen=True, slots=True)
class LegEvent:
    """What happened to a leg: its new status; on an end, why and how long it was up."""

    status: LegStatus
    cause: str | None = None  # on an end: "caller hung up", "app hung up", "busy", ...
    duration_seconds: int | None = None  # on an end: seconds since it was answered


Listener = Callable[[LegEvent], None]


class CallLeg(Protocol):
    """One party of a call. Inbound legs arrive ringing; outbound legs are `ring`ed.

    Every method may be called after the far end hung up: it then does nothing, and
    `play`/`pause` return False.
    """

    sid: str  # the call's SID (CA…), given when the leg is made
    local: str  # our side's number (the app's)
    remote: str  # the other party's number

    @property
    def status(self) -> LegStatus: ...

    def listen(self, listener: Listener) -> None:
        """Call `listener` with each event of this leg from now on (from the loop)."""
        ...

    async def ended(self) -> LegEvent:
        """Wait for the leg's end."""
        ...

    async def ring(self, timeout_seconds: float) -> LegStatus:
        """Outbound: place the call and wait until it is answered (IN_PROGRESS) or ends
        unanswered (BUSY, NO_ANSWER after the timeout, FAILED, CANCELED)."""
        ...

    async def answer(self) -> None: ...

    async def pre_answer(self) -> None:
        """Open early media on a ringing inbound call (SIP 183) without answering."""
        ...

    async def play(self, prompt: Prompt) -> bool:
        """Play to the far end until done; False if the call ended meanwhile."""
        ...

    async def pause(self, seconds: float) -> bool:
        """Silence for `seconds`; False if the call ended meanwhile."""
        ...

    async def reject(self, reason: str) -> None:
        """Refuse a ringing inbound call: `busy` or `rejected`."""
        ...

    async def redirect(self, to: str) -> None:
        """Send a ringing inbound call to `to` instead (SIP 302)."""
        ...

    async def hangup(self, cause: str = "app hung up") -> None:
        """End the call: BYE when answered, CANCEL for an outbound one still ringing."""
        ...


class Lines(Protocol):
    """Somewhere calls can be placed: the sandbox network, a SIP trunk."""

    def reaches(self, number: str) -> bool: ...

    def originate(self, account_sid: str, local: str, remote: str, sid: str) -> CallLeg:
        """A new outbound leg from `local` to `remote` (the call `sid`), not yet ringing."""
        ...


async def first_to_answer(
    legs: Sequence[CallLeg], timeout_seconds: float
) -> tuple[CallLeg | None, list[LegStatus]]:
    """Ring every leg at once; the first to answer wins and the others are cancelled.

    Returns the winner (None if none answered) and each leg's outcome, in order.
    """
    rings = [asyncio.ensure_future(leg.ring(timeout_seconds)) for leg in legs]
    winner: CallLeg | None = None
    try:
        pending = set(rings)
        while pending and winner is None:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            answered = [r for r in rings if r in done and _outcome(r) == LegStatus.IN_PROGRESS]
            if answered:
                winner = legs[rings.index(answered[0])]
        # The others: cancelled while ringing, hung up if they answered in the same instant.
        for leg in legs:
            if leg is not winner and not leg.status.final:
                await leg.hangup("another party answered first")
        await asyncio.gather(*rings, return_exceptions=True)
    finally:
        for ring in rings:
            ring.cancel()
    return winner, [_outcome(ring) for ring in rings]


def _outcome(ring: asyncio.Future[LegStatus]) -> LegStatus:
    if not ring.done() or ring.cancelled() or ring.exception() is not None:
        return LegStatus.FAILED
    return ring.result()
