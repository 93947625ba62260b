"""RTP (RFC 3550) and its telephone events (RFC 4733), with no sockets and no clock.

`parse` turns a datagram into an `RtpPacket` or raises `RtpError`; `RtpSender` numbers our
outgoing stream (one SSRC, a sequence number and a timestamp that advances 160 samples a
tick, whatever is sent) and turns digits into event packets; `DigitReceiver` turns incoming
event packets into digits, once each. The asyncio shell is `session.py`.
"""

from __future__ import annotations

import random
import struct
from collections import deque
from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "DIGITS",
    "MAX_PACKET",
    "DigitReceiver",
    "RtpError",
    "RtpPacket",
    "RtpSender",
    "TelephoneEvent",
    "parse",
]

_HEADER = struct.Struct("!BBHII")
_EVENT = struct.Struct("!BBH")
# A datagram bigger than a typical MTU is not G.711 at any sane packetisation time (120 ms of
# PCMU is 972 bytes with its header); anything larger is dropped unread.
MAX_PACKET = 1500
# RFC 4733 3.2: events 0-15 are the DTMF keys, in this order. Others (flash, tones) are ignored.
DIGITS = "0123456789*#ABCD"
# 20 ms at 8 kHz: the timestamp step of every tick.
TICK_SAMPLES = 160
# An event's packets are sent once a tick, and its end three times (RFC 4733 2.5.1.4).
END_REPEATS = 3
DEFAULT_VOLUME = 10  # -10 dBm0, what common phones send


class RtpError(ValueError):
    """The datagram is not an RTP packet we can read."""


class RtpPacket(NamedTuple):
    # A named tuple rather than a frozen dataclass: every packet of every call makes one, and
    # a tuple is built several times faster.
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False

    def encode(self) -> bytes:
        return _encode(
            self.payload_type, self.sequence, self.timestamp, self.ssrc, self.payload, self.marker
        )


def _encode(
    payload_type: int, sequence: int, timestamp: int, ssrc: int, payload: bytes, marker: bool
) -> bytes:
    second = payload_type | 0x80 if marker else payload_type
    return _HEADER.pack(0x80, second, sequence, timestamp, ssrc) + payload


def parse(data: bytes) -> RtpPacket:
    """One datagram to a packet: CSRCs and a header extension are skipped, padding removed."""
    if len(data) < _HEADER.size:
        raise RtpError("shorter than an RTP header")
    first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
    if first == 0x80:  # the common case: no CSRC, extension or padding
        return RtpPacket(second & 0x7F, sequence, timestamp, ssrc, data[12:], second > 127)
    if first >> 6 != 2:
        raise RtpError("not RTP version 2")
    start = _HEADER.size + 4 * (first & 0x0F)
    if first & 0x10:  # extension: 16-bit profile, 16-bit length in 32-bit words
        if len(data) < start + 4:
            raise RtpError("truncated header extension")
        (words,) = struct.unpack_from("!H", data, start + 2)
        start += 4 + 4 * words
    end = len(data)
    if first & 0x20:  # padding: the last octet counts the padding octets, itself included
        if end <= start or data[-1] == 0 or data[-1] > end - start:
            raise RtpError("bad padding")
        end -= data[-1]
    if start > end:
        raise RtpError("header longer than the packet")
    return RtpPacket(second & 0x7F, sequence, timestamp, ssrc, bytes(data[start:end]), second > 127)


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """The 4-octet payload of an RFC 4733 event packet."""

    event: int
    end: bool
    volume: int
    duration: int

    @classmethod
    def parse(cls, payload: bytes) -> TelephoneEvent:
        if len(payload) < _EVENT.size:
            raise RtpError("telephone-event payload shorter than 4 octets")
        event, flags, duration = _EVENT.unpack_from(payload)
        return cls(event, bool(flags & 0x80), flags & 0x3F, duration)

    def encode(self) -> bytes:
        return _EVENT.pack(self.event, (0x80 if self.end else 0) | self.volume, self.duration)


@dataclass(slots=True)
class _Digit:
    event: int
    duration: int  # samples
    gap: int  # samples of audio after it before the next digit
    timestamp: int = -1  # the event's, set at its first packet
    elapsed: int = 0
    ends_sent: int = 0


class RtpSender:
    """Our outgoing stream. Every tick produces at most one packet, and the timestamp advances
    one tick whether or not a packet was sent, so the receiver's timeline follows the clock.

    Random SSRC, first sequence number and first timestamp, as RFC 3550 5.1 asks.
    """

    def __init__(
        self,
        payload_type: int,
        event_payload_type: int | None = None,
        *,
        rng: random.Random | None = None,
    ) -> None:
        rng = rng or random.SystemRandom()
        self.payload_type = payload_type
        self.event_payload_type = event_payload_type
        self.ssrc = rng.getrandbits(32)
        self.sequence = rng.getrandbits(16)
        self.timestamp = rng.getrandbits(32)
        self._marker = True  # the first packet begins a talkspurt (RFC 3551 4.1)
        self._digits: deque[_Digit] = deque()

    def _packet(self, payload_type: int, payload: bytes, timestamp: int, marker: bool) -> bytes:
        packet = _encode(payload_type, self.sequence, timestamp, self.ssrc, payload, marker)
        self.sequence = (self.sequence + 1) & 0xFFFF
        return packet

    def _advance(self) -> None:
        self.timestamp = (self.timestamp + TICK_SAMPLES) & 0xFFFFFFFF

    def audio(self, payload: bytes) -> bytes:
        """This tick's audio packet."""
        # Every call's every tick comes here: `_packet` and `_advance` inlined.
        timestamp, sequence = self.timestamp, self.sequence
        packet = _encode(self.payload_type, sequence, timestamp, self.ssrc, payload, self._marker)
        self.sequence = (sequence + 1) & 0xFFFF
        self.timestamp = (timestamp + TICK_SAMPLES) & 0xFFFFFFFF
        self._marker = False
        return packet

    def skip(self) -> None:
        """This tick sends nothing; the next audio begins a new talkspurt."""
        self._marker = True
        self._advance()

    def queue_digits(self, digits: str, *, duration: int = 800, gap: int = 400) -> None:
        """Send these keys as events, `duration` samples each, `gap` samples of audio between."""
        if self.event_payload_type is None:
            raise ValueError("no telephone-event payload type was negotiated")
        if duration < TICK_SAMPLES or duration > 0xFFFF:
            raise ValueError("a digit lasts from 20 ms to about 8 s")
        for key in digits.upper():
            if key not in DIGITS:
                raise ValueError(f"{key!r} is not a DTMF key")
        self._digits.extend(_Digit(DIGITS.index(key), duration, gap) for key in digits.upper())

    @property
    def sending_digits(self) -> bool:
        return bool(self._digits)

    def digit_tick(self, silence: bytes) -> bytes:
        """This tick's packet while digits are queued: an event packet, or `silence` as audio in
        the gap after one. Only call it while `sending_digits`."""
        digit = self._digits[0]
        assert self.event_payload_type is not None  # queue_digits checked it
        if digit.ends_sent == END_REPEATS:  # the gap
            digit.gap -= TICK_SAMPLES
            if digit.gap <= 0:
                self._digits.popleft()
            return self.audio(silence)
        first = digit.timestamp < 0
        if first:
            digit.timestamp = self.timestamp
        digit.elapsed = min(digit.elapsed + TICK_SAMPLES, digit.duration)
        end = digit.elapsed == digit.duration
        digit.ends_sent += end
        payload = TelephoneEvent(digit.event, end, DEFAULT_VOLUME, digit.elapsed).encode()
        packet = self._packet(self.event_payload_type, payload, digit.timestamp, first)
        self._advance()
        if digit.ends_sent == END_REPEATS:
            self._marker = True  # audio after an event begins a talkspurt
            if digit.gap <= 0:
                self._digits.popleft()
        return packet


class DigitReceiver:
    """Event packets to keys, each key once.

    An event is its (SSRC, timestamp, key); it is reported at its first end packet, and the
    two repeats of that end are dropped. A new non-end packet of the very same event after its
    end starts the event again: sipp's bundled DTMF captures replay fixed timestamps and SSRC,
    so "44" arrives as the same event twice, told apart only by the end bits between. An event
    whose end packets were all lost is reported when the next one begins.
    """

    def __init__(self) -> None:
        self._open: tuple[int, int, int] | None = None
        self._ended: tuple[int, int, int] | None = None

    def receive(self, packet: RtpPacket) -> str | None:
        """The key this packet completes, if any; raises `RtpError` for a short payload."""
        event = TelephoneEvent.parse(packet.payload)
        if event.event >= len(DIGITS):
            return None
        key = (packet.ssrc, packet.timestamp, event.event)
        if event.end:
            self._open = None
            if key == self._ended:
                return None
            self._ended = key
            return DIGITS[event.event]
        if key == self._ended:
            self._ended = None
        unfinished, self._open = self._open, key
        if unfinished is not None and unfinished != key:
            return DIGITS[unfinished[2]]
        return None
