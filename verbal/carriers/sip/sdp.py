"""SDP (RFC 4566) and the offer/answer model (RFC 3264) for one G.711 audio stream.

Calls carry one audio stream: PCMU (static payload type 0) or PCMA (8), with
telephone-event (RFC 4733, a dynamic payload type) for DTMF. A `SessionDescription` is
that stream as one side describes it; `parse` reads the first audio m-line of a body and
remembers the other m-lines, which an answer must mirror with port 0 (RFC 3264 §6).

Hold (RFC 3264 §8.4): an offer with ``sendonly`` is answered ``recvonly``, ``inactive``
with ``inactive``, and a plain ``sendrecv`` re-offer takes the call off hold.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace

__all__ = [
    "PCMA",
    "PCMU",
    "Direction",
    "SdpError",
    "SessionDescription",
    "make_answer",
    "make_offer",
    "parse",
]

PCMU = 0
PCMA = 8
_NAMES = {PCMU: "PCMU", PCMA: "PCMA"}
DEFAULT_TELEPHONE_EVENT = 101


class Direction(enum.StrEnum):
    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    def answer(self) -> Direction:
        """The direction that answers this one (RFC 3264 §6.1)."""
        return {
            Direction.SENDONLY: Direction.RECVONLY,
            Direction.RECVONLY: Direction.SENDONLY,
        }.get(self, self)


class SdpError(Exception):
    """An SDP body we cannot use. ``code`` is the SIP status to answer with (488 or 400)."""

    def __init__(self, message: str, code: int = 488) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.more_info = "RFC 3264 §6"


@dataclass(frozen=True, slots=True)
class SessionDescription:
    """One side's audio stream.

    ``codecs`` are the G.711 payload types in preference order (an answer has exactly
    one: the chosen codec, `codec`). ``port`` 0 means the stream is rejected.
    ``rejected`` are the other m-lines of an offer (video ...), as ``(media, proto,
    formats)``, echoed with port 0 in the answer.
    """

    address: str
    port: int
    codecs: tuple[int, ...] = (PCMU, PCMA)
    telephone_event: int | None = DEFAULT_TELEPHONE_EVENT
    direction: Direction = Direction.SENDRECV
    session_id: int = 0
    version: int = 0
    ptime: int | None = 20
    rejected: tuple[tuple[str, str, str], ...] = field(default=())

    @property
    def codec(self) -> int:
        """The first (for an answer, the only) payload type."""
        return self.codecs[0]

    @property
    def on_hold(self) -> bool:
        """True when this side does not want to receive media."""
        return self.direction in (Direction.SENDONLY, Direction.INACTIVE)

    def __bytes__(self) -> bytes:
        family = "IP6" if ":" in self.address else "IP4"
        formats = [*self.codecs]
        if self.telephone_event is not None:
            formats.append(self.telephone_event)
        lines = [
            "v=0",
            f"o=verbal {self.session_id} {self.version} IN {family} {self.address}",
            "s=verbal",
            f"c=IN {family} {self.address}",
            "t=0 0",
            f"m=audio {self.port} RTP/AVP {' '.join(map(str, formats))}",
        ]
        lines += [f"a=rtpmap:{pt} {_NAMES[pt]}/8000" for pt in self.codecs]
        if self.telephone_event is not None:
            lines.append(f"a=rtpmap:{self.telephone_event} telephone-event/8000")
            lines.append(f"a=fmtp:{self.telephone_event} 0-16")
        if self.ptime:
            lines.append(f"a=ptime:{self.ptime}")
        lines.append(f"a={self.direction}")
        lines += [f"m={media} 0 {proto} {formats}" for media, proto, formats in self.rejected]
        return ("\r\n".join(lines) + "\r\n").encode()


def make_offer(
    address: str,
    port: int,
    *,
    codecs: tuple[int, ...] = (PCMU, PCMA),
    telephone_event: int | None = DEFAULT_TELEPHONE_EVENT,
    direction: Direction = Direction.SENDRECV,
    session_id: int = 0,
    version: int = 0,
) -> SessionDescription:
    """Our offer: ``codecs`` in preference order, telephone-event unless None."""
    if not codecs or any(pt not in _NAMES for pt in codecs):
        raise ValueError(f"codecs must be among {sorted(_NAMES)}, got {codecs}")
    return SessionDescription(
        address, port, codecs, telephone_event, direction, session_id, version
    )


def make_answer(
    offer: SessionDescription,
    address: str,
    port: int,
    *,
    codecs: tuple[int, ...] = (PCMU, PCMA),
    session_id: int = 0,
    version: int = 0,
) -> SessionDescription:
    """Our answer to ``offer``: the offer's most preferred codec among ours (§6.1), its
    telephone-event payload type if it offered one, the answering direction, and the
    offer's other m-lines rejected. Raises `SdpError` (488) when no codec is common.
    """
    common = [pt for pt in offer.codecs if pt in codecs]
    if offer.port == 0 or not common:
        raise SdpError("no common audio codec (PCMU or PCMA) in the offer")
    return SessionDescription(
        address,
        port,
        (common[0],),
        offer.telephone_event,
        offer.direction.answer(),
        session_id,
        version,
        offer.ptime and 20,
        offer.rejected,
    )


@dataclass(slots=True)
class _Audio:
    """The audio m-line being read."""

    port: int
    formats: list[str]
    rtpmap: dict[str, str] = field(default_factory=dict)
    address: str = ""
    direction: Direction | None = None
    ptime: int | None = None


def parse(body: bytes) -> SessionDescription:
    """The first audio stream of an SDP body. Raises `SdpError` (400 if it is not SDP,
    488 if it has no usable audio stream)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SdpError("SDP is not UTF-8", 400) from exc
    session_address = ""
    session_direction = Direction.SENDRECV
    session_id = version = 0
    audio: _Audio | None = None
    in_audio = False  # attributes apply to the audio m-line, not to a rejected one
    rejected: list[tuple[str, str, str]] = []
    directions = {d.value for d in Direction}
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if len(line) < 2 or line[1] != "=":
            raise SdpError(f"bad SDP line {line[:40]!r}", 400)
        kind, value = line[0], line[2:]
        if kind == "o":
            parts = value.split()
            if len(parts) == 6 and parts[1].isdigit() and parts[2].isdigit():
                session_id, version = int(parts[1]), int(parts[2])
        elif kind == "m":
            parts = value.split()
            if len(parts) < 4 or not parts[1].split("/")[0].isdigit():
                raise SdpError(f"bad m-line {line[:60]!r}", 400)
            in_audio = parts[0] == "audio" and audio is None and parts[2] == "RTP/AVP"
            if in_audio:
                audio = _Audio(int(parts[1].split("/")[0]), parts[3:])
            else:
                rejected.append((parts[0], parts[2], " ".join(parts[3:])))
        elif kind == "c":
            parts = value.split()
            if len(parts) < 3:
                raise SdpError(f"bad c-line {line[:60]!r}", 400)
            address = parts[2].split("/")[0]
            if in_audio and audio is not None:
                audio.address = address
            elif audio is None and not rejected:
                session_address = address
        elif kind == "a":
            name, _, attr = value.partition(":")
            if name in directions:
                if in_audio and audio is not None:
                    audio.direction = Direction(name)
                elif audio is None and not rejected:
                    session_direction = Direction(name)
            elif in_audio and audio is not None and name == "rtpmap":
                pt, _, encoding = attr.partition(" ")
                audio.rtpmap[pt] = encoding.split("/")[0].upper()
            elif in_audio and audio is not None and name == "ptime" and attr.isdigit():
                audio.ptime = int(attr)
    if audio is None:
        raise SdpError("no RTP/AVP audio stream in the offer")
    codecs: list[int] = []
    telephone_event = None
    for fmt in audio.formats:
        if not fmt.isdigit():
            continue
        pt, name = int(fmt), audio.rtpmap.get(fmt, "")
        if pt in _NAMES and name in ("", _NAMES[pt]):
            codecs.append(pt)
        elif name == "TELEPHONE-EVENT" and telephone_event is None:
            telephone_event = pt
    address = audio.address or session_address
    if not address:
        raise SdpError("no connection address", 400)
    return SessionDescription(
        address,
        audio.port,
        tuple(codecs),
        telephone_event,
        audio.direction or session_direction,
        session_id,
        version,
        audio.ptime,
        tuple(rejected),
    )


def with_version(sdp: SessionDescription, version: int) -> SessionDescription:
    """``sdp`` as a later version of the same session (o= version incremented, §8)."""
    return replace(sdp, version=version)
