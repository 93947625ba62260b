"""One call leg's audio: an RTP session on a UDP port of a bounded range.

`RtpSession.open()` binds the next free even port of a `PortPool`, subscribes to the shared
media clock and from then on sends one packet every 20 ms: the player's frame, a DTMF event
while digits go out, or silence. Silence is sent on purpose while nothing plays: it keeps
NAT bindings open, lets a peer that latches onto our address do so before the first prompt,
and keeps peers with an RTP inactivity timeout from hanging up during a long wait.

Incoming packets are checked and counted, never trusted (`SessionStats`):

- more than `MAX_PACKET` bytes, or not RTP: dropped (oversize, garbage);
- **latching** (symmetric RTP): we send to the address the first valid packet came from,
  whatever SDP said, because a peer behind NAT sends from an address it cannot know; after
  that, packets from any other address are dropped (foreign). The first valid packet wins:
  the usual rule of symmetric RTP, which trusts the path the signalling set up;
- audio (PCMU or PCMA, either law whatever was negotiated: both are static payload types)
  from one SSRC at a time: a different SSRC is adopted only after `SSRC_PROBATION` packets in
  sequence with none from the current one in between, so interleaved packets of a stray
  SSRC are dropped while a real change of stream (transfer, re-INVITE) is followed;
- telephone events (the negotiated payload type) become keys in `digits`, de-duplicated,
  from any SSRC: test tools and some gateways send them on a stream of their own;
- comfort noise (13) and every other payload type: ignored.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import ipaddress
import socket
from dataclasses import dataclass
from typing import cast

from verbal.media.clock import MediaClock, Subscription, shared_clock
from verbal.media.errors import MediaError
from verbal.media.g711 import Codec, silence
from verbal.media.player import Player
from verbal.media.recorder import Recorder
from verbal.media.rtp import MAX_PACKET, DigitReceiver, RtpError, RtpSender, parse

__all__ = ["PortPool", "RtpSession", "SessionStats", "default_pool"]

Address = tuple[str, int]

SSRC_PROBATION = 4
DIGITS_QUEUED = 64  # keys nobody has read yet; more are dropped (counted)
# Either law is decoded whatever was negotiated: both are static payload types.
_DECODERS = {codec.value: codec.decode for codec in Codec}


class PortPool:
    """The even ports of [first, last] that RTP sessions of this process may bind.

    Even ports only: RTP's convention (RFC 3550 11), which leaves port + 1 to RTCP. Ports are
    handed out round-robin, so a port just released is the last to be reused and a late
    packet of the old call does not reach a new one; a port another program holds is
    skipped. Every call takes one port, so the range's size bounds concurrent calls.
    """

    def __init__(self, first: int = 20000, last: int = 20999) -> None:
        if not 1024 <= first <= last <= 65535:
            raise ValueError("an RTP port range is within 1024-65535, first <= last")
        self.first = first + first % 2
        self.last = last
        self._in_use: set[int] = set()
        self._next = self.first

    @property
    def size(self) -> int:
        return max(0, (self.last - self.first) // 2 + 1)

    @property
    def in_use(self) -> int:
        return len(self._in_use)

    def bind(self, host: str) -> socket.socket:
        """A UDP socket bound to the next free port, or `MediaError("ports_exhausted")`."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        for _ in range(self.size):
            port = self._next
            self._next = port + 2 if port + 2 <= self.last else self.first
            if port in self._in_use:
                continue
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                sock.bind((host, port))
            except OSError as error:
                sock.close()
                if error.errno == errno.EADDRINUSE:
                    continue  # another program's: try the next
                raise
            sock.setblocking(False)
            self._in_use.add(port)
            return sock
        raise MediaError(
            "ports_exhausted",
            f"all {self.size} RTP ports of {self.first}-{self.last} on {host} are in use",
        )

    def release(self, port: int) -> None:
        self._in_use.discard(port)


@functools.cache
def default_pool() -> PortPool:
    """The process's pool of 20000-20999, for sessions opened without one."""
    return PortPool()


def _sdp_address(address: Address | None) -> Address | None:
    """An SDP connection address as a send address: an IP literal (a host name would make
    every send resolve it), None for the unspecified address of an old-style hold."""
    if address is None:
        return None
    host, port = address
    if ipaddress.ip_address(host).is_unspecified or port == 0:
        return None
    return (host, port)


@dataclass(slots=True)
class SessionStats:
    packets_sent: int = 0
    packets_received: int = 0  # accepted: audio and events
    oversize: int = 0
    garbage: int = 0
    foreign: int = 0  # from an address other than the latched one
    wrong_ssrc: int = 0
    ignored: int = 0  # comfort noise, unknown payload types, digits nobody read

    @property
    def dropped(self) -> int:
        return self.oversize + self.garbage + self.foreign + self.wrong_ssrc + self.ignored


class RtpSession(asyncio.DatagramProtocol):
    """Use `await RtpSession.open(...)`; `close()` stops sending at once and frees the port
    on the loop's next iteration."""

    def __init__(
        self,
        codec: Codec,
        event_payload_type: int | None,
        remote: Address | None,
        clock: MediaClock,
        send_silence: bool,
    ) -> None:
        self.codec = codec
        self.event_payload_type = event_payload_type
        self.remote = remote
        self.latched = False
        # False while the far end holds the call (SDP a=sendonly or a=inactive from it): time
        # and the player go on, nothing is sent.
        self.sending = True
        self.send_silence = send_silence
        self.player = Player()
        self.recorder: Recorder | None = None
        # Keys as the far end pressed them: '0'-'9', '*', '#', 'A'-'D'.
        self.digits: asyncio.Queue[str] = asyncio.Queue(DIGITS_QUEUED)
        self.stats = SessionStats()
        self._sender = RtpSender(codec.value, event_payload_type)
        # What every tick needs, looked up once per negotiation rather than per frame.
        self._encode = codec.encode
        self._silence = silence(codec)
        self._digit_receiver = DigitReceiver()
        self._digits_sent: list[asyncio.Future[None]] = []
        self._ssrc: int | None = None
        self._candidate: tuple[int, int, int] | None = None  # ssrc, next sequence, count
        self._clock = clock
        self._subscription: Subscription | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._pool: PortPool | None = None
        self.local_address: Address = ("", 0)

    @classmethod
    async def open(
        cls,
        *,
        host: str = "127.0.0.1",
        ports: PortPool | None = None,
        codec: Codec = Codec.PCMU,
        event_payload_type: int | None = 101,
        remote: Address | None = None,
        send_silence: bool = True,
        clock: MediaClock | None = None,
    ) -> RtpSession:
        """Bind a port on `host` and start the session. `remote` is the address the far end's
        SDP gave, if known yet (an IP address; 0.0.0.0, the old way to hold a call, counts as
        none); `event_payload_type` the negotiated telephone-event type (None when the far
        end has none: then no digits are sent or read)."""
        remote = _sdp_address(remote)
        pool = ports or default_pool()
        sock = pool.bind(host)
        session = cls(codec, event_payload_type, remote, clock or shared_clock(), send_silence)
        loop = asyncio.get_running_loop()
        try:
            await loop.create_datagram_endpoint(lambda: session, sock=sock)
        except BaseException:
            pool.release(sock.getsockname()[1])
            sock.close()
            raise
        session._pool = pool
        session.local_address = sock.getsockname()[:2]
        session._subscription = session._clock.subscribe(session._tick)
        return session

    # -- what the call controller changes --------------------------------------------------

    def update(
        self,
        *,
        remote: Address | None = None,
        codec: Codec | None = None,
        event_payload_type: int | None = None,
    ) -> None:
        """Apply a (re-)negotiation: a new SDP address drops the latch, so the next packet
        latches again; a new codec takes effect at the next frame."""
        if remote is not None:
            self.remote = _sdp_address(remote)
            self.latched = False
        if codec is not None:
            self.codec = codec
            self._sender.payload_type = codec.value
            self._encode = codec.encode
            self._silence = silence(codec)
        if event_payload_type is not None:
            self.event_payload_type = event_payload_type
            self._sender.event_payload_type = event_payload_type

    async def send_digits(self, digits: str, *, duration: float = 0.1, gap: float = 0.05) -> None:
        """Send keys as RFC 4733 events, `duration` seconds each and `gap` seconds apart;
        returns when the last has gone. The player is held (not skipped) meanwhile.
        ValueError for a key that is not DTMF, or when no telephone-event was negotiated."""
        self._sender.queue_digits(digits, duration=round(duration * 8000), gap=round(gap * 8000))
        done = asyncio.get_running_loop().create_future()
        self._digits_sent.append(done)
        await done

    @property
    def late_frames(self) -> int:
        """This session's frames sent more than 10 ms late (see `clock.py`)."""
        return self._subscription.late_frames if self._subscription else 0

    def close(self) -> None:
        if self._subscription is not None:
            self._subscription.cancel()  # kept: its counts stay readable
        self.player.close()
        for done in self._digits_sent:
            if not done.done():
                done.set_exception(MediaError("closed", "the RTP session was closed"))
        self._digits_sent.clear()
        if self._transport is not None:
            self._transport.close()  # the port returns to the pool in connection_lost
            self._transport = None

    # -- the clock's tick --------------------------------------------------------------------

    def _tick(self) -> None:
        sender = self._sender
        if sender.sending_digits:
            packet = sender.digit_tick(self._silence)
            if not sender.sending_digits:
                for done in self._digits_sent:
                    if not done.done():
                        done.set_result(None)
                self._digits_sent.clear()
        else:
            frame = self.player.next_frame()
            if frame is not None:
                packet = sender.audio(self._encode(frame))
            elif self.send_silence:
                packet = sender.audio(self._silence)
            else:
                sender.skip()
                return
        if self.remote is not None and self.sending and self._transport is not None:
            self._transport.sendto(packet, self.remote)
            self.stats.packets_sent += 1

    # -- asyncio's side ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        # The socket is closed only now (the loop's next iteration after close()): handing
        # its port out earlier would make the next bind fail.
        if self._pool is not None:
            self._pool.release(self.local_address[1])
            self._pool = None

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable while the far end is not listening yet: nothing to do, the
        # next frame tries again.
        pass

    def datagram_received(self, data: bytes, addr: Address) -> None:
        stats = self.stats
        if len(data) > MAX_PACKET:
            stats.oversize += 1
            return
        try:
            packet = parse(data)
        except RtpError:
            stats.garbage += 1
            return
        payload_type = packet.payload_type
        is_event = payload_type == self.event_payload_type
        decode = _DECODERS.get(payload_type)
        if decode is None and not is_event:
            stats.ignored += 1
            return
        if len(addr) > 2:
            addr = addr[:2]  # IPv6's flow info and scope id
        if not self.latched:
            self.remote = addr
            self.latched = True
        elif addr != self.remote:
            stats.foreign += 1
            return
        if is_event:
            try:
                key = self._digit_receiver.receive(packet)
            except RtpError:
                stats.garbage += 1
                return
            stats.packets_received += 1
            if key is not None:
                try:
                    self.digits.put_nowait(key)
                except asyncio.QueueFull:
                    stats.ignored += 1
            return
        if packet.ssrc == self._ssrc:
            self._candidate = None
        elif not self._accept_ssrc(packet.ssrc, packet.sequence):
            stats.wrong_ssrc += 1
            return
        stats.packets_received += 1
        if self.recorder is not None and decode is not None:
            self.recorder.write(packet.ssrc, packet.timestamp, decode(packet.payload))

    def _accept_ssrc(self, ssrc: int, sequence: int) -> bool:
        """Whether a packet of an SSRC other than the current one is taken (and adopted)."""
        if self._ssrc is None:
            self._ssrc = ssrc
            return True
        candidate = self._candidate
        if candidate is not None and candidate[0] == ssrc and candidate[1] == sequence:
            count = candidate[2] + 1
        else:
            count = 1
        if count >= SSRC_PROBATION:
            self._ssrc = ssrc
            self._candidate = None
            return True
        self._candidate = (ssrc, (sequence + 1) & 0xFFFF, count)
        return False
