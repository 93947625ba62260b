"""An SMPP 3.4 SMSC on asyncio: the I/O shell around a `Session` in the SMSC role.

`SmscServer` accepts ESME connections and runs one `SmscConnection` per socket. A
connection reads bytes into its session, acts on the events that come out, writes what the
session encodes, and arms one timer for the session's next deadline. It decides nothing
about messages: that is the `SmscHandler`'s job, whose hooks are

* `SmscHandler.authenticate`: accept or refuse a bind (a command_status);
* `SmscHandler.handle_submit`: answer a submit_sm or data_sm (a response PDU, or None to
  leave it unanswered);
* `SmscHandler.bound` / `SmscHandler.unbound`: a connection became able to receive
  deliver_sm, or went away. The handler then sends with `SmscConnection.deliver`, which
  waits for a slot in the window and returns what the ESME answered, as a `Delivery`.

The server also does what every SMSC must, with a named limit for each (`ServerLimits`):
it answers enquire_link and sends its own when the ESME goes quiet, nacks junk, refuses
PDUs that are illegal in the bind state, closes connections that don't bind in time,
stay idle, keep sending junk or stop reading, and caps connections and binds. Hostile
bytes end at most their own connection, never the server.
"""

import asyncio
import contextlib
import logging
import socket
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, fields, replace
from typing import Any

from verbal.carriers.smpp.failed_binds import FailedBinds
from verbal.carriers.smpp.pdu import (
    DEFAULT_MAX_PDU_SIZE,
    INTERFACE_VERSION,
    BindRequest,
    CommandStatus,
    DataSm,
    DeliverSm,
    EnquireLink,
    GenericNack,
    PduError,
    Request,
    Response,
    SubmitSm,
    Tag,
    Tlv,
    Unbind,
)
from verbal.carriers.smpp.session import (
    BindRequested,
    ConnectionClosed,
    EnquireLinkDue,
    Event,
    InactivityTimedOut,
    LocalProtocolError,
    ProtocolError,
    RequestReceived,
    RequestTimedOut,
    ResponseReceived,
    Role,
    Session,
    SessionConfig,
    State,
    UnbindRequested,
    Unbound,
    UnmatchedResponse,
)
from verbal.metrics import SMSC_BINDS_HELD, SMSC_FAILED_BINDS, labelled

__all__ = [
    "Delivery",
    "ServerLimits",
    "SmscConnection",
    "SmscHandler",
    "SmscServer",
]

log = logging.getLogger("verbal.carriers.smpp.server")

_READ_SIZE = 64 * 1024
# Connections the kernel may queue before we accept them (asyncio's default).
_BACKLOG = 100
_RECEIVING = frozenset({State.BOUND_RX, State.BOUND_TRX})


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """Every resource one ESME can hold, bounded. Times are in seconds."""

    max_connections: int = 200
    # Binds one system_id may hold at once (Kannel and Jasmin open one per direction, or
    # several transceivers to spread load).
    max_binds_per_system_id: int = 10
    # command_length above this ends the connection (see pdu.DEFAULT_MAX_PDU_SIZE).
    max_pdu_size: int = DEFAULT_MAX_PDU_SIZE
    # Our own deliver_sm awaiting deliver_sm_resp, per connection.
    window: int = 10
    # How long the ESME has to answer our deliver_sm or enquire_link.
    response_timeout: float = 30.0
    # An enquire_link goes out after this long without a PDU from the ESME.
    enquire_link_interval: float = 30.0
    # A connection that sends nothing at all for this long is closed.
    idle_timeout: float = 300.0
    # A connection must be bound this soon after it opens (SMPP 3.4 §7.2's session_init
    # timer), so that unbound sockets can't sit on connection slots.
    bind_timeout: float = 30.0
    # The ESME's requests being handled at once on one connection; beyond it we stop
    # reading, so a peer that pipelines without limit is slowed down, not buffered.
    max_pending_requests: int = 100
    # Malformed or illegal PDUs tolerated on one connection before it is closed.
    max_protocol_errors: int = 10
    # How long a write may wait for the ESME to read before the connection is given up.
    write_timeout: float = 30.0
    # On shutdown, how long a bound ESME has to answer our unbind.
    unbind_timeout: float = 5.0
    # Failed binds from one address or for one system_id before binds are held back, the
    # first delay (doubling per failure), its cap, and how long failures are remembered
    # (see failed_binds.py).
    failed_binds_allowed: int = 3
    failed_bind_delay: float = 1.0
    failed_bind_max_delay: float = 16.0
    failed_bind_memory: float = 600.0

    def __post_init__(self) -> None:
        for limit in fields(self):
            if getattr(self, limit.name) <= 0:
                msg = f"{limit.name} must be positive, got {getattr(self, limit.name)}"
                raise ValueError(msg)


@dataclass(frozen=True, slots=True)
class Delivery:
    """What became of one deliver_sm: the ESME's response, or why there is none."""

    response: Response | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.response is not None and self.response.command_status == 0

    def describe(self) -> str:
        if self.response is None:
            return self.error or "no response"
        return CommandStatus.name_of(self.response.command_status)


class SmscHandler:
    """What an SMSC does with binds and messages. Override the hooks you need.

    The defaults refuse every bind and fail every submit, so a server with a bare handler
    is safe. A hook that raises is logged and answered with ESME_RSYSERR.
    """

    async def authenticate(self, request: BindRequest, connection: "SmscConnection") -> int:
        """The command_status for this bind: ESME_ROK to accept it."""
        return CommandStatus.ESME_RBINDFAIL

    async def handle_submit(
        self, request: SubmitSm | DataSm, connection: "SmscConnection"
    ) -> Response | None:
        """The response to a submit_sm or data_sm (``request.response(...)``), or None to
        never answer it (the ESME's response timer then fires)."""
        return request.response(CommandStatus.ESME_RSYSERR)

    async def bound(self, connection: "SmscConnection") -> None:
        """``connection`` is bound as a receiver or transceiver: it can take deliver_sm."""

    async def unbound(self, connection: "SmscConnection") -> None:
        """``connection``, once bound, is gone (unbound, closed or lost)."""


class SmscConnection:
    """One ESME's connection. See the module docstring."""

    def __init__(
        self,
        server: "SmscServer",
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self._server = server
        self._limits = server.limits
        self._reader = reader
        self._writer = writer
        self._loop = asyncio.get_running_loop()
        limits = self._limits
        self._session = Session(
            Role.SMSC,
            SessionConfig(
                window=limits.window,
                response_timeout=limits.response_timeout,
                enquire_link_interval=limits.enquire_link_interval,
                inactivity_timeout=limits.idle_timeout,
                max_pdu_size=limits.max_pdu_size,
            ),
            now=self._loop.time(),
        )
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        # The address failed binds are counted against (the port changes every connection).
        self.source = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        # Set once bound: who the ESME is and what it asked to serve.
        self.system_id: str | None = None
        self.system_type = ""
        self.address_range = ""
        self._answers: dict[int, asyncio.Future[Delivery]] = {}
        self._window_freed = asyncio.Event()
        self._handlers: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._bind_timer: asyncio.TimerHandle | None = self._loop.call_later(
            limits.bind_timeout, self._bind_timed_out
        )
        self._errors = 0
        self._closed = asyncio.Event()
        self._close_reason = ""

    def __repr__(self) -> str:
        who = self.system_id or "unbound"
        return f"<SmscConnection {who} from {self.peer} {self._session.state.name}>"

    @property
    def state(self) -> State:
        return self._session.state

    @property
    def receives(self) -> bool:
        """Bound as a receiver or transceiver, and not closing: deliver_sm may go out."""
        return self._session.state in _RECEIVING and not self._closed.is_set()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def free_window(self) -> int:
        """How many more deliver_sm could go out right now without waiting."""
        if not self.receives or not self._session.can_send():
            return 0
        return self._limits.window - len(self._answers)

    async def wait_closed(self) -> None:
        await self._closed.wait()

    # --- sending ------------------------------------------------------------------------

    async def deliver(self, pdu: DeliverSm | DataSm) -> Delivery:
        """Send a deliver_sm (or data_sm) once the window has room; the ESME's answer.

        Never raises for anything the ESME or the network does: a timeout, a refusal
        or a lost connection come back as a `Delivery` saying so.
        """
        while not self._session.can_send():
            if not self.receives:
                return Delivery(None, f"{self!r} cannot take deliver_sm")
            self._window_freed.clear()
            closing = asyncio.ensure_future(self._closed.wait())
            freed = asyncio.ensure_future(self._window_freed.wait())
            try:
                await asyncio.wait({closing, freed}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                closing.cancel()
                freed.cancel()
        sequence_number = self._session.next_sequence_number()
        pdu = replace(pdu, sequence_number=sequence_number)
        answer: asyncio.Future[Delivery] = self._loop.create_future()
        self._answers[sequence_number] = answer
        try:
            self._send(pdu)
        except (LocalProtocolError, PduError) as exc:
            del self._answers[sequence_number]
            return Delivery(None, f"not sent: {exc}")
        await self._drain()
        return await answer

    def _send(self, pdu: Request | Response) -> None:
        """Encode and write ``pdu``; raises LocalProtocolError or PduError if it can't go."""
        data = self._session.send(pdu, now=self._loop.time())
        if not self._writer.is_closing():
            self._writer.write(data)
        self._arm_timer()

    def _reply(self, pdu: Response) -> None:
        """Send a response, logging instead of raising if the session no longer takes it."""
        try:
            self._send(pdu)
        except (LocalProtocolError, PduError) as exc:
            log.warning("%r: could not answer: %s", self, exc)

    async def _drain(self) -> None:
        try:
            async with asyncio.timeout(self._limits.write_timeout):
                await self._writer.drain()
        except TimeoutError:
            self.close("the ESME stopped reading")
        except ConnectionError as exc:
            self.close(f"write failed: {exc}")

    # --- the read loop ------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the connection until it closes; never raises."""
        self._arm_timer()
        try:
            while not self.closed:
                if len(self._handlers) >= self._limits.max_pending_requests:
                    await asyncio.wait(self._handlers, return_when=asyncio.FIRST_COMPLETED)
                    continue
                data = await self._reader.read(_READ_SIZE)
                if self.closed:
                    break
                for event in self._session.receive_data(data, now=self._loop.time()):
                    await self._on_event(event)
                    if self.closed:
                        break
                self._arm_timer()
                await self._drain()
        except ConnectionError as exc:
            self.close(f"connection lost: {exc}")
        except Exception:
            # A bug, not the peer's doing (hostile bytes only ever make events): say so
            # loudly, but lose only this connection.
            log.exception("%r: internal error; closing the connection", self)
            self.close("internal error")
        finally:
            self.close(self._close_reason or "closed")
            await self._finish()

    async def _on_event(self, event: Event) -> None:
        match event:
            case BindRequested(request=request):
                await self._bind(request)
            case RequestReceived(request=SubmitSm() | DataSm() as request):
                self._spawn(self._submit(request))
            case RequestReceived(request=EnquireLink() as request):
                self._reply(request.response())
            case RequestReceived(request=request):
                # The session lets nothing else through from an ESME; should that change,
                # refuse rather than leave the ESME waiting.
                self._reply(
                    GenericNack(
                        command_status=CommandStatus.ESME_RINVCMDID,
                        sequence_number=request.sequence_number,
                    )
                )
            case UnbindRequested(request=request):
                self._reply(request.response())
                self.close("the ESME unbound")
            case ResponseReceived(request=request, response=response):
                self._answered(request, Delivery(response))
            case Unbound():
                self.close("unbound")
            case UnmatchedResponse(response=response):
                log.debug("%r: response nobody waits for: %r", self, response)
            case ProtocolError() as error:
                self._protocol_error(error)
            case ConnectionClosed():
                self.close("the ESME closed the connection")
            case _:
                log.error("%r: unexpected event %r", self, event)

    async def _bind(self, request: BindRequest) -> None:
        failed_binds = self._server.failed_binds
        hold = failed_binds.hold(self.source, request.system_id, self._loop.time())
        if hold is None:
            labelled(SMSC_FAILED_BINDS, "locked_out").inc()
            self._refuse(request, CommandStatus.ESME_RBINDFAIL)
            return
        if hold:
            SMSC_BINDS_HELD.inc()
            try:
                # Cut short if the connection closes: a stopping server waits for it.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(hold):
                        await self._closed.wait()
            finally:
                failed_binds.release(self.source)
            if self.closed:
                return
        try:
            status = await self._server.handler.authenticate(request, self)
        except Exception:
            log.exception("%r: authenticate hook failed", self)
            status = CommandStatus.ESME_RSYSERR
        if status == CommandStatus.ESME_ROK:
            failed_binds.succeeded(self.source, request.system_id)
        else:
            failed_binds.failed(self.source, request.system_id, self._loop.time())
            labelled(SMSC_FAILED_BINDS, "refused").inc()
        if status == CommandStatus.ESME_ROK and not self._server._may_bind(request.system_id):
            log.warning(
                "%r: refused bind of %r: it already holds %d binds",
                self,
                request.system_id,
                self._limits.max_binds_per_system_id,
            )
            labelled(SMSC_FAILED_BINDS, "bind_limit").inc()
            status = CommandStatus.ESME_RBINDFAIL
        if status != CommandStatus.ESME_ROK:
            self._refuse(request, status)
            return
        self._reply(
            request.response(
                system_id=self._server.system_id,
                tlvs=(Tlv.integer(Tag.SC_INTERFACE_VERSION, INTERFACE_VERSION, 1),),
            )
        )
        self.system_id = request.system_id
        self.system_type = request.system_type
        self.address_range = request.address_range
        self._server._bound(self)
        if self._bind_timer is not None:
            self._bind_timer.cancel()
            self._bind_timer = None
        log.info("%r: bound (%s)", self, type(request).__name__)
        if self.receives:
            await self._hook(self._server.handler.bound(self), "bound")

    def _refuse(self, request: BindRequest, status: int) -> None:
        log.info(
            "%r: refused %s of %r: %s",
            self,
            type(request).__name__,
            request.system_id,
            CommandStatus.name_of(status),
        )
        self._reply(request.response(status, system_id=self._server.system_id))
        # One try per connection: guessing passwords costs a TCP handshake each.
        self.close("bind refused")

    async def _submit(self, request: SubmitSm | DataSm) -> None:
        try:
            response = await self._server.handler.handle_submit(request, self)
        except Exception:
            log.exception("%r: handle_submit hook failed", self)
            response = request.response(CommandStatus.ESME_RSYSERR)
        if response is None or self.closed:
            return
        try:
            self._send(response)
        except (LocalProtocolError, PduError) as exc:
            log.error("%r: handle_submit answered %r: %s", self, response, exc)
            self._reply(request.response(CommandStatus.ESME_RSYSERR))
        await self._drain()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def _hook(self, work: Coroutine[Any, Any, None], name: str) -> None:
        try:
            await work
        except Exception:
            log.exception("%r: %s hook failed", self, name)

    def _answered(self, request: Request, delivery: Delivery) -> None:
        answer = self._answers.pop(request.sequence_number, None)
        if answer is not None and not answer.done():
            answer.set_result(delivery)
        self._window_freed.set()

    def _protocol_error(self, error: ProtocolError) -> None:
        self._errors += 1
        log.info(
            "%r: %s (%s)", self, error.description, CommandStatus.name_of(error.command_status)
        )
        if error.reply is not None:
            self._reply(error.reply)
        if error.request is not None:
            self._answered(error.request, Delivery(None, error.description))
        if error.fatal:
            self.close(f"unreadable input: {error.description}")
        elif self._errors >= self._limits.max_protocol_errors:
            self.close(f"{self._errors} bad PDUs")

    # --- timers -------------------------------------------------------------------------

    def _arm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self._session.next_deadline()
        if deadline is not None and not self.closed:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        for event in self._session.handle_timeout(self._loop.time()):
            self._on_timer_event(event)
        self._arm_timer()

    def _on_timer_event(self, event: Event) -> None:
        match event:
            case RequestTimedOut(request=EnquireLink()):
                self.close("no answer to enquire_link")
            case RequestTimedOut(request=request):
                timeout = self._limits.response_timeout
                self._answered(request, Delivery(None, f"no response within {timeout:g}s"))
            case EnquireLinkDue():
                self._reply_or_close(EnquireLink())
            case InactivityTimedOut():
                self.close(f"idle for {self._limits.idle_timeout:g}s")
            case _:
                log.error("%r: unexpected event %r", self, event)

    def _reply_or_close(self, request: Request) -> None:
        try:
            self._send(request)
        except (LocalProtocolError, PduError) as exc:
            self.close(f"could not send {type(request).__name__}: {exc}")

    def _bind_timed_out(self) -> None:
        self._bind_timer = None
        if self.system_id is None:
            self.close(f"not bound within {self._limits.bind_timeout:g}s")

    # --- closing ------------------------------------------------------------------------

    async def unbind(self) -> None:
        """Unbind (if bound) and close; waits at most the unbind timeout for the ESME."""
        if self._session.state in (State.BOUND_TX, State.BOUND_RX, State.BOUND_TRX):
            try:
                self._send(Unbind())
            except (LocalProtocolError, PduError):
                pass  # an unbind is already under way
            else:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._limits.unbind_timeout):
                        await self._closed.wait()
        self.close("server shutting down")

    def close(self, reason: str) -> None:
        """Close now (writes already queued still go out). Safe to call more than once."""
        if self._closed.is_set():
            return
        self._close_reason = reason
        self._closed.set()
        for timer in (self._timer, self._bind_timer):
            if timer is not None:
                timer.cancel()
        self._timer = self._bind_timer = None
        self._session.close()
        for answer in self._answers.values():
            if not answer.done():
                answer.set_result(Delivery(None, f"connection closed: {reason}"))
        self._answers.clear()
        self._window_freed.set()
        self._writer.close()
        log.info("%r: closed: %s", self, reason)

    async def _finish(self) -> None:
        """After the read loop: let running handlers end, then tell the server."""
        if self._handlers:
            await asyncio.wait(self._handlers)
        with contextlib.suppress(ConnectionError, TimeoutError):
            async with asyncio.timeout(self._limits.write_timeout):
                await self._writer.wait_closed()
        if self._server._unregister(self):
            await self._hook(self._server.handler.unbound(self), "unbound")


class SmscServer:
    """Listens for ESMEs and serves each with an `SmscConnection`."""

    def __init__(
        self,
        handler: SmscHandler,
        limits: ServerLimits | None = None,
        *,
        system_id: str = "verbal",
    ) -> None:
        self.handler = handler
        self.limits = limits or ServerLimits()
        # What bind_resp names us as.
        self.system_id = system_id
        self._listener: socket.socket | None = None
        self._connections: set[SmscConnection] = set()
        # One per accepted socket, from accept() until its connection has ended.
        self._tasks: set[asyncio.Task[None]] = set()
        self._binds: Counter[str] = Counter()
        self.failed_binds = FailedBinds(
            allowed=self.limits.failed_binds_allowed,
            first_delay=self.limits.failed_bind_delay,
            max_delay=self.limits.failed_bind_max_delay,
            memory=self.limits.failed_bind_memory,
        )

    @property
    def port(self) -> int:
        """The port listened on (useful after starting on port 0)."""
        if self._listener is None:
            msg = "the server is not listening"
            raise RuntimeError(msg)
        return int(self._listener.getsockname()[1])

    @property
    def connections(self) -> list[SmscConnection]:
        return list(self._connections)

    def bound(self, system_id: str) -> list[SmscConnection]:
        """The open connections bound by ``system_id``."""
        return [c for c in self._connections if c.system_id == system_id and not c.closed]

    async def start(self, host: str, port: int) -> None:
        # Our own accept rather than asyncio.start_server: on Python 3.11 a socket accepted
        # an instant before Server.close() fails to attach to the closed server and asyncio
        # drops it unclosed (CPython gh-109564), so stop() never saw it and the ESME hung.
        # Here a socket is tracked from the moment accept() returns it.
        loop = asyncio.get_running_loop()
        # The address family of the host as given (an IPv6 address listens on IPv6).
        family = (await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM))[0][0]
        listener = socket.create_server((host, port), family=family, backlog=_BACKLOG)
        listener.setblocking(False)
        self._listener = listener
        loop.add_reader(listener.fileno(), self._accept_waiting)
        log.info("SMSC listening on %s:%d", host, self.port)

    async def stop(self) -> None:
        """Stop listening, unbind every ESME, and wait for their connections to end."""
        listener, self._listener = self._listener, None
        if listener is not None:
            asyncio.get_running_loop().remove_reader(listener.fileno())
            listener.close()
        # A connection still starting sees the listener gone and closes itself (`_serve`).
        connections = list(self._connections)
        if connections:
            await asyncio.gather(*(c.unbind() for c in connections))
        if self._tasks:
            await asyncio.wait(self._tasks)

    def _accept_waiting(self) -> None:
        """Take every connection the listener holds (the loop calls this when it is readable)."""
        listener = self._listener
        while listener is not None:
            try:
                sock, peer = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # Out of descriptors, say: pause, or the readable listener spins the loop.
                log.warning("accepting a connection failed (%s); pausing for a second", exc)
                loop = asyncio.get_running_loop()
                loop.remove_reader(listener.fileno())
                loop.call_later(1.0, self._resume_accepting, listener)
                return
            if len(self._tasks) >= self.limits.max_connections:
                log.warning(
                    "refused a connection from %s: %d connections already open",
                    peer,
                    len(self._tasks),
                )
                sock.close()
                continue
            task = asyncio.create_task(self._serve(sock), name=f"smsc-{peer}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _resume_accepting(self, listener: socket.socket) -> None:
        if self._listener is listener:
            asyncio.get_running_loop().add_reader(listener.fileno(), self._accept_waiting)

    async def _serve(self, sock: socket.socket) -> None:
        try:
            reader, writer = await asyncio.open_connection(sock=sock, limit=_READ_SIZE)
        except OSError:
            sock.close()
            return
        if self._listener is None:  # stopped while this connection was starting
            writer.close()
            return
        connection = SmscConnection(self, reader, writer)
        self._connections.add(connection)
        await connection.run()

    def _may_bind(self, system_id: str) -> bool:
        return self._binds[system_id] < self.limits.max_binds_per_system_id

    def _bound(self, connection: SmscConnection) -> None:
        if connection.system_id is not None:
            self._binds[connection.system_id] += 1

    def _unregister(self, connection: SmscConnection) -> bool:
        """Forget a finished connection; True if it had been bound."""
        self._connections.discard(connection)
        system_id = connection.system_id
        if system_id is None:
            return False
        self._binds[system_id] -= 1
        if self._binds[system_id] <= 0:
            del self._binds[system_id]
        return True
