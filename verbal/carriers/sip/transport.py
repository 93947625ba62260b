"""SIP over UDP and TCP (RFC 3261 §18) on asyncio, and where responses go (RFC 3581).

`SipTransport` listens on one address with both transports, as SIP servers do on 5060:
UDP first (port 0 lets the kernel choose), then TCP on the same port number. Whole
messages go to the ``on_message`` callback with the source address and the transport
they came by; nothing here parses more than TCP framing needs (`StreamFramer`).

Sending is fire-and-forget, as UDP is: `send` writes a datagram, or writes on the TCP
connection to that address, opening one if there is none. A TCP connection that cannot be
opened is logged and the transaction's own timer (B or F) reports the failure.

`stamp_via` and `response_address` are the pure rules for the top Via of a received
request: ``received`` when the source IP differs from sent-by (§18.2.1), ``rport`` filled
in when the client asked for it (RFC 3581 §4), and the response sent back to the source
(RFC 3581 §4; §18.2.2 over TCP: the same connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any

from verbal.carriers.sip.message import (
    DEFAULT_LIMITS,
    MessageLimits,
    ParseError,
    Request,
    StreamFramer,
    Via,
)
from verbal.tasks import BackgroundTasks

__all__ = [
    "Address",
    "Endpoint",
    "SipTransport",
    "response_address",
    "stamp_via",
]

log = logging.getLogger("verbal.carriers.sip")

Address = tuple[str, int]
MessageHandler = Callable[[bytes, Address, str], None]
# Open TCP connections, incoming and outgoing together; a new one past this is refused.
DEFAULT_MAX_CONNECTIONS = 1024


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A SIP address to listen on or send to; ``transport`` is "udp" or "tcp"."""

    host: str
    port: int = 5060
    transport: str = "udp"

    def __post_init__(self) -> None:
        if self.transport not in ("udp", "tcp"):
            msg = f"transport must be udp or tcp, got {self.transport!r}"
            raise ValueError(msg)

    @property
    def address(self) -> Address:
        return (self.host, self.port)


def stamp_via(request: Request, source: Address) -> Request:
    """``request`` with its top Via marked with where it really came from."""
    values = request.headers.values("Via")
    via = Via.parse(values[0])
    params = dict(via.params)
    if via.host != source[0] or "rport" in params:
        params["received"] = source[0]
    if "rport" in params:
        params["rport"] = str(source[1])
    if params == via.params:
        return request
    headers = request.headers.without("Via")
    stamped = [str(replace(via, params=params)), *values[1:]]
    for value in reversed(stamped):
        headers = headers.added("Via", value, first=True)
    return replace(request, headers=headers)


def response_address(via: Via, source: Address, transport: str) -> Address:
    """Where the responses to a request with (stamped) top ``via`` go."""
    if transport == "tcp":
        return source
    host = via.params.get("received") or via.host
    rport = via.params.get("rport", "")
    if rport.isdigit():
        return (host, int(rport))
    return (host, via.sent_by[1])


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, owner: SipTransport) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        self.owner.deliver(data, (addr[0], addr[1]), "udp")

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a peer that went away: the transaction times out.
        log.debug("UDP error: %s", exc)


class SipTransport:
    def __init__(
        self,
        local: Endpoint,
        on_message: MessageHandler,
        *,
        limits: MessageLimits = DEFAULT_LIMITS,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        self.local = local
        self.on_message = on_message
        self.limits = limits
        self.max_connections = max_connections
        self._udp: asyncio.DatagramTransport | None = None
        self._server: asyncio.Server | None = None
        self._connections: dict[Address, asyncio.StreamWriter] = {}
        self._connecting: dict[Address, list[bytes]] = {}
        self._tasks = BackgroundTasks(log)
        self.bound = local

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        # With port 0 the kernel picks a free UDP port, which TCP may hold already: then
        # both are tried again on another port.
        attempts = 20 if self.local.port == 0 else 1
        for attempt in range(attempts):
            udp, _ = await loop.create_datagram_endpoint(
                lambda: _Datagrams(self), local_addr=self.local.address
            )
            host, port = udp.get_extra_info("sockname")[:2]
            try:
                self._server = await asyncio.start_server(self._accepted, host, port)
            except OSError:
                udp.close()
                if attempt == attempts - 1:
                    raise
                continue
            self._udp = udp
            self.bound = replace(self.local, host=host, port=port)
            return

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._server is not None:
            self._server.close()
        for writer in list(self._connections.values()):
            writer.close()
        await self._tasks.stop()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    def deliver(self, data: bytes, source: Address, transport: str) -> None:
        try:
            self.on_message(data, source, transport)
        except Exception:
            # One bad message must not take the listener down; the UA logs what it can.
            log.exception("SIP message from %s:%s could not be handled", *source)

    def send(self, data: bytes, destination: Address, transport: str = "udp") -> None:
        if transport == "udp":
            if self._udp is not None and not self._udp.is_closing():
                self._udp.sendto(data, destination)
            return
        writer = self._connections.get(destination)
        if writer is not None and not writer.is_closing():
            writer.write(data)
        elif destination in self._connecting:
            self._connecting[destination].append(data)
        elif len(self._connections) + len(self._connecting) < self.max_connections:
            self._connecting[destination] = [data]
            self._spawn(self._connect(destination))
        else:
            log.warning("no TCP connection to %s:%s: at the limit of connections", *destination)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        self._tasks.spawn(coroutine, "SIP connection")

    async def _connect(self, destination: Address) -> None:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(*destination), timeout=10
            )
        except (OSError, TimeoutError) as exc:
            log.warning("TCP connection to %s:%s failed: %s", *destination, exc)
            self._connecting.pop(destination, None)
            return
        for data in self._connecting.pop(destination, []):
            writer.write(data)
        await self._serve(reader, writer, destination)

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        if len(self._connections) >= self.max_connections:
            writer.close()
            return
        task = asyncio.current_task()
        if task is not None:
            self._tasks.spawn(task, "SIP connection")  # kept and stopped as the others
        await self._serve(reader, writer, (peer[0], peer[1]))

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: Address
    ) -> None:
        self._connections[peer] = writer
        framer = StreamFramer(self.limits)
        try:
            while data := await reader.read(65536):
                for message in framer.feed(data):
                    self.deliver(message, peer, "tcp")
        except ParseError as exc:
            log.info("closing TCP connection from %s:%s: %s", *peer, exc.message)
        except (ConnectionError, OSError):
            pass
        finally:
            if self._connections.get(peer) is writer:
                del self._connections[peer]
            writer.close()
