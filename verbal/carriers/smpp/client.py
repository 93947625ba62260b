"""One SMPP bind to an SMSC, kept up: the asyncio shell around `session.Session`.

A `Bind` owns one TCP connection at a time. It connects, binds (transceiver, transmitter
or receiver), answers enquire_link and sends its own when the link is quiet, and when the
connection is lost or refused it connects again after a growing, jittered delay. All SMPP
decisions (what is legal, sequence numbers, the window, the timers) are the session's;
this module reads, writes, sleeps when the session says, and turns its events into
futures and callbacks.

What a caller sees:

* `Bind.submit` sends one submit_sm when the bind is bound, has room in its window, is not
  pausing after a throttle, and its own throughput cap allows, and returns the
  submit_sm_resp, whatever its status. It raises `LinkError` when no response can come:
  the bind is down (``sent`` False: the SMSC never saw the request), or the connection
  was lost or the response timed out after sending (``sent`` True: the SMSC may have the
  message, and sending it again may deliver it twice; that is SMPP's, and every ESME's,
  "at least once").
* ESME_RTHROTTLED and ESME_RMSGQFUL pause the bind's submits for `BindConfig.throttle_pause`
  seconds, doubling while they go on, up to `throttle_pause_max`; the response still
  goes back to the caller, who decides where to send the message next.
* deliver_sm and data_sm from the SMSC go to the ``on_deliver`` callback, whose return
  value is the command_status of the response (ESME_ROK, or why the message can't be
  taken); the response goes out when it returns. A callback that raises is answered with
  ESME_RX_T_APPN, so the SMSC tries again later.
* `Bind.status` says how the bind is doing, with a readable diagnosis of the last failure
  (a wrong password, a wrong system_type, a refused connection, a timeout), for logs and
  `verbal carriers list`. The password is never in it, nor in any log line.
"""

import asyncio
import contextlib
import enum
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

from verbal.carriers.base import CarrierTemporaryError
from verbal.carriers.smpp.pdu import (
    BindReceiver,
    BindRequest,
    BindTransceiver,
    BindTransmitter,
    CommandId,
    CommandStatus,
    DataSm,
    DeliverSm,
    EnquireLink,
    GenericNack,
    PduError,
    Request,
    Response,
    SubmitSm,
    Unbind,
)
from verbal.carriers.smpp.session import (
    Bound,
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
    UnbindRequested,
    Unbound,
    UnmatchedResponse,
)
from verbal.metrics import SMPP_BIND_UP, SMPP_WINDOW_IN_USE
from verbal.tasks import cancel_and_wait

__all__ = [
    "THROTTLE_STATUSES",
    "Bind",
    "BindConfig",
    "BindMode",
    "BindState",
    "BindStatus",
    "DeliverHandler",
    "LinkError",
    "Pulse",
    "diagnose_bind_refusal",
]

log = logging.getLogger("verbal.carriers.smpp")

_READ_SIZE = 65536
# Statuses that mean "not now" from this bind's SMSC: pause, then send again.
THROTTLE_STATUSES = frozenset({CommandStatus.ESME_RTHROTTLED, CommandStatus.ESME_RMSGQFUL})


class BindMode(enum.StrEnum):
    TRANSCEIVER = "trx"
    TRANSMITTER = "tx"
    RECEIVER = "rx"

    @property
    def transmits(self) -> bool:
        return self is not BindMode.RECEIVER

    @property
    def receives(self) -> bool:
        return self is not BindMode.TRANSMITTER


_BIND_PDU: dict[BindMode, type[BindRequest]] = {
    BindMode.TRANSCEIVER: BindTransceiver,
    BindMode.TRANSMITTER: BindTransmitter,
    BindMode.RECEIVER: BindReceiver,
}


@dataclass(frozen=True, slots=True)
class BindConfig:
    """Where and how to bind, and the limits of one bind."""

    host: str
    port: int
    system_id: str
    password: str = field(repr=False)
    system_type: str = ""
    mode: BindMode = BindMode.TRANSCEIVER
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""
    # The window, the response timeout, enquire_link and inactivity timers.
    session: SessionConfig = field(default_factory=SessionConfig)
    connect_timeout: float = 10.0
    # Reconnect delays grow from the first to the last, with jitter (see _Reconnects).
    reconnect_min: float = 1.0
    reconnect_max: float = 60.0
    # submit_sm per second on this bind; 0 is no cap. Carriers commonly allow tens.
    throughput: float = 0.0
    throttle_pause: float = 1.0
    throttle_pause_max: float = 30.0
    # How long stop() waits for the SMSC's unbind_resp before closing anyway.
    unbind_timeout: float = 5.0


class BindState(enum.StrEnum):
    STOPPED = "stopped"
    CONNECTING = "connecting"
    BINDING = "binding"
    BOUND = "bound"
    UNBINDING = "unbinding"
    # Down, waiting to connect again.
    WAITING = "waiting"


@dataclass(frozen=True, slots=True)
class BindStatus:
    """A snapshot of one bind, for `verbal carriers list`, metrics and logs."""

    name: str
    mode: BindMode
    state: BindState
    window: int
    in_flight: int
    submitted: int  # submit_sm answered with ESME_ROK since start
    throttled: int  # submit_sm answered with ESME_RTHROTTLED or ESME_RMSGQFUL
    bound_since: float | None  # time.time() of the current bind
    last_error: str | None  # the diagnosis of the last failure, kept after recovery
    last_error_at: float | None


DeliverHandler = Callable[[DeliverSm | DataSm], Awaitable[int]]


class LinkError(CarrierTemporaryError):
    """No response will come for a request. ``sent``: it went out, so the SMSC may have it."""

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(30008, message)
        self.sent = sent


def _command(request: Request) -> str:
    return CommandId(request.command_id).name.lower()


def diagnose_bind_refusal(status: int, config: BindConfig, nack: bool = False) -> str:
    """Say in words why an SMSC refused a bind (never quoting the password)."""
    name = CommandStatus.name_of(status)
    if nack:
        return f"the SMSC answered the bind with generic_nack {name}: does it speak SMPP 3.4?"
    reasons: dict[int, str] = {
        CommandStatus.ESME_RINVPASWD: f"wrong password for system_id {config.system_id!r}",
        CommandStatus.ESME_RINVSYSID: f"the SMSC does not know system_id {config.system_id!r}",
        CommandStatus.ESME_RINVSYSTYP: (
            f"wrong system_type {config.system_type!r} for system_id {config.system_id!r}"
        ),
        CommandStatus.ESME_RALYBND: (
            "already bound: the SMSC allows fewer binds for this system_id than are configured"
        ),
        CommandStatus.ESME_RBINDFAIL: (
            "bind refused without a reason: check system_id, password, system_type and the "
            "address the SMSC expects you to connect from"
        ),
    }
    return f"{reasons.get(status, 'bind refused')} ({name})"


class Pulse:
    """Wakes everyone waiting for "something changed" (room in the window, a new state)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def fire(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, seconds: float | None) -> None:
        """Until the next `fire`, or ``seconds`` (None: no limit)."""
        # Not wait_for: before Python 3.12 it returns normally when the waiting task is
        # cancelled just as the event fires (gh-86296), and a loop waiting here (the carrier's
        # upkeep) would never see its cancellation and never stop.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._event.wait()


class _TokenBucket:
    """``rate`` tokens a second, bursts of up to max(1, rate); rate 0 is unlimited."""

    def __init__(self, rate: float) -> None:
        self._rate = rate
        self._capacity = max(1.0, rate)
        self._tokens = self._capacity
        self._updated = 0.0

    def wait_time(self, now: float) -> float:
        """Seconds until a token is free (0: one is)."""
        if self._rate <= 0:
            return 0.0
        self._tokens = min(self._capacity, self._tokens + (now - self._updated) * self._rate)
        self._updated = now
        return 0.0 if self._tokens >= 1 else (1 - self._tokens) / self._rate

    def take(self) -> None:
        if self._rate > 0:
            self._tokens -= 1


class _Reconnects:
    """Delays between connection attempts: "decorrelated jitter".

    Each delay is drawn between the minimum and three times the previous one, capped, so
    that the binds of many carriers and workers that lost one SMSC at the same moment do
    not all knock again in step. A bind that came up starts again from the minimum.
    """

    def __init__(self, minimum: float, maximum: float) -> None:
        self._min = minimum
        self._max = maximum
        self._last = minimum

    def next(self) -> float:
        self._last = min(self._max, random.uniform(self._min, self._last * 3))
        return self._last

    def reset(self) -> None:
        self._last = self._min


# The least time between two writes of a bind under load (see `_Link`).
FLUSH_SPACING = 0.001


class _Link:
    """One TCP connection and its SMPP session; a new one for every connect."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, session: Session
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.session = session
        self.waiting: dict[int, asyncio.Future[Response]] = {}
        self.timer_target: float | None = None
        self.closed = False
        # PDUs written in one turn of the loop go out in one system call: the submits the
        # pipeline's workers make together, the responses to a burst of receipts. A write
        # per PDU was the pipeline's largest single cost in py-spy under load (a system
        # call costs more than encoding the PDU; on loopback it carries the peer's receive
        # path too). Under load, writes are also spaced FLUSH_SPACING apart, so that one
        # carries what several turns wrote (a turn per write was still 9 % of the pipeline
        # at 1,000 msg/s); when writes are rarer than that, nothing waits.
        self._outgoing = bytearray()
        self._last_flush = 0.0

    def write(self, data: bytes) -> None:
        if not self._outgoing:
            loop = asyncio.get_running_loop()
            wait = self._last_flush + FLUSH_SPACING - loop.time()
            if wait > 0:
                loop.call_later(wait, self.flush)
            else:
                loop.call_soon(self.flush)
        self._outgoing += data

    def flush(self) -> None:
        if self._outgoing and not self.writer.is_closing():
            self.writer.write(bytes(self._outgoing))
            self._last_flush = asyncio.get_running_loop().time()
        self._outgoing.clear()


class Bind:
    """One bind, kept up from `start` to `stop`. See the module docstring."""

    def __init__(
        self,
        config: BindConfig,
        *,
        name: str,
        carrier: str = "",
        on_deliver: DeliverHandler | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.name = name
        self.carrier = carrier
        self._on_deliver = on_deliver
        self._on_change = on_change
        self._state = BindState.STOPPED
        self._link: _Link | None = None
        self._changed = Pulse()
        self._timer_wake = Pulse()
        self._turnstile = asyncio.Lock()
        self._queued = 0  # submits waiting for their turn
        # Set when the submit at the head of the turnstile may find things changed.
        self._room = asyncio.Event()
        self._bucket = _TokenBucket(config.throughput)
        self._reconnects = _Reconnects(config.reconnect_min, config.reconnect_max)
        self._paused_until = 0.0
        self._pause = config.throttle_pause
        self._submitted = 0
        self._throttled = 0
        self._bound_since: float | None = None
        self._last_error: str | None = None
        self._last_error_at: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._up = SMPP_BIND_UP.labels(carrier, name)
        self._window_gauge = SMPP_WINDOW_IN_USE.labels(carrier, name)

    # --- what callers see -----------------------------------------------------------------

    @property
    def state(self) -> BindState:
        return self._state

    @property
    def bound(self) -> bool:
        return self._state is BindState.BOUND

    @property
    def transmits(self) -> bool:
        return self.config.mode.transmits

    @property
    def in_flight(self) -> int:
        link = self._link
        return len(link.waiting) if link is not None else 0

    @property
    def load(self) -> int:
        """Submits awaiting a response or waiting for their turn: for spreading work."""
        return self.in_flight + self._queued

    def has_room(self) -> bool:
        """Bound, transmitting, not pausing and with room in its window right now."""
        link = self._link
        return (
            self.bound
            and self.transmits
            and link is not None
            and link.session.can_send()
            and time.monotonic() >= self._paused_until
        )

    def status(self) -> BindStatus:
        return BindStatus(
            name=self.name,
            mode=self.config.mode,
            state=self._state,
            window=self.config.session.window,
            in_flight=self.in_flight,
            submitted=self._submitted,
            throttled=self._throttled,
            bound_since=self._bound_since,
            last_error=self._last_error,
            last_error_at=self._last_error_at,
        )

    async def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name=f"smpp-bind-{self.name}")

    async def stop(self) -> None:
        """Unbind cleanly (waiting up to `unbind_timeout` for the SMSC), then close."""
        self._stopping = True
        link = self._link
        if link is not None and self.bound:
            self._set_state(BindState.UNBINDING)
            try:
                self._write(link, Unbind())
            except LocalProtocolError:
                pass  # not bound after all: just close
            else:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.config.unbind_timeout):
                        await self._closed(link)
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        for task in list(self._handlers):
            task.cancel()
        self._set_state(BindState.STOPPED)

    async def wait_bound(self, within: float) -> bool:
        """Wait until bound, up to ``within`` seconds; True if it is."""
        deadline = time.monotonic() + within
        while not self.bound:
            left = deadline - time.monotonic()
            if left <= 0 or self._stopping:
                return False
            await self._changed.wait(left)
        return True

    async def submit(self, pdu: SubmitSm, *, wait: float | None = None) -> Response:
        """Send ``pdu`` when the bind can take it and return its response (see module doc).

        ``wait`` bounds the time spent waiting for room (None: no bound); the wait for the
        response is bounded by the session's response timeout. Raises `LinkError`, or
        `PduError` for a PDU that can't be encoded.
        """
        try:
            async with asyncio.timeout(wait):
                link = await self._take_turn()
        except TimeoutError:
            raise LinkError(f"bind {self.name} had no room within {wait:g}s", sent=False) from None
        future = self._request(link, pdu)
        with contextlib.suppress(OSError):
            # A lost connection shows as the read loop's ConnectionClosed, failing the future.
            await link.writer.drain()
        response = await future
        if response.command_status in THROTTLE_STATUSES:
            self._throttled += 1
            self._paused_until = time.monotonic() + self._pause
            log.info(
                "bind %s: %s; pausing submits for %.1fs",
                self.name,
                CommandStatus.name_of(response.command_status),
                self._pause,
            )
            self._pause = min(self._pause * 2, self.config.throttle_pause_max)
        elif response.command_status == CommandStatus.ESME_ROK:
            self._submitted += 1
            self._pause = self.config.throttle_pause
        return response

    async def _take_turn(self) -> _Link:
        """Wait until one more submit may go now; the link to send it on.

        Submits queue in order at the turnstile, and only the one at its head waits for
        room, the end of a throttle pause and a token: a response that frees the window
        wakes one task, not all the thousands that may be queued.
        """
        self._queued += 1
        try:
            return await self._wait_at_turnstile()
        finally:
            self._queued -= 1

    async def _wait_at_turnstile(self) -> _Link:
        async with self._turnstile:
            while True:
                link = self._link
                if self._stopping or not self.bound or link is None:
                    raise LinkError(f"bind {self.name} is not bound ({self._state})", sent=False)
                if not self.transmits:
                    raise LinkError(f"bind {self.name} is a receiver", sent=False)
                now = time.monotonic()
                self._room.clear()
                if not link.session.can_send():
                    pause = None
                elif now < self._paused_until:
                    pause = self._paused_until - now
                elif (delay := self._bucket.wait_time(now)) > 0:
                    pause = delay
                else:
                    self._bucket.take()
                    return link
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(pause):  # not wait_for: see Pulse.wait
                        await self._room.wait()

    # --- the connection loop --------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self._connect_and_serve()
            except asyncio.CancelledError:
                raise
            except Exception:
                # A bug here must not end the bind for good: record it and reconnect.
                log.exception("bind %s: unexpected error; reconnecting", self.name)
                self._failed("internal error (see the log)")
            if self._stopping:
                break
            delay = self._reconnects.next()
            self._set_state(BindState.WAITING)
            log.debug("bind %s: connecting again in %.1fs", self.name, delay)
            await self._changed.wait(delay)

    async def _connect_and_serve(self) -> None:
        config = self.config
        where = f"{config.host}:{config.port}"
        self._set_state(BindState.CONNECTING)
        try:
            async with asyncio.timeout(config.connect_timeout):
                reader, writer = await asyncio.open_connection(config.host, config.port)
        except TimeoutError:
            self._failed(
                f"no answer connecting to {where} within {config.connect_timeout:g}s "
                "(wrong address, or a firewall dropping packets?)"
            )
            return
        except ConnectionRefusedError:
            self._failed(f"connection refused by {where}: nothing listens there")
            return
        except OSError as exc:
            self._failed(f"cannot connect to {where}: {exc.strerror or exc}")
            return
        link = _Link(reader, writer, Session(Role.ESME, config.session, now=time.monotonic()))
        self._link = link
        timer = asyncio.create_task(self._timers(link), name=f"smpp-timers-{self.name}")
        try:
            self._set_state(BindState.BINDING)
            self._write(link, self._bind_request())
            await self._read(link)
        finally:
            await cancel_and_wait(timer)
            self._close(link)

    def _bind_request(self) -> BindRequest:
        config = self.config
        return _BIND_PDU[config.mode](
            system_id=config.system_id,
            password=config.password,
            system_type=config.system_type,
            addr_ton=config.addr_ton,
            addr_npi=config.addr_npi,
            address_range=config.address_range,
        )

    async def _read(self, link: _Link) -> None:
        while not link.closed:
            try:
                data = await link.reader.read(_READ_SIZE)
            except OSError:
                data = b""  # a reset connection is a closed one
            if link.closed:
                return  # closed from our side (a timer, an unbind) while reading
            self._handle(link, link.session.receive_data(data, now=time.monotonic()))
            if not data:
                return

    async def _timers(self, link: _Link) -> None:
        """Sleep until the session's next deadline, or until a send makes it earlier."""
        while not link.closed:
            deadline = link.session.next_deadline()
            link.timer_target = deadline
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            await self._timer_wake.wait(wait)
            if not link.closed:
                self._handle(link, link.session.handle_timeout(time.monotonic()))

    def _deadline_moved(self, link: _Link) -> None:
        deadline = link.session.next_deadline()
        if deadline is not None and (link.timer_target is None or deadline < link.timer_target):
            self._timer_wake.fire()

    # --- sending and closing --------------------------------------------------------------

    def _write(self, link: _Link, pdu: Request | Response) -> int:
        """Write ``pdu``, numbering it if it is a new request; returns its sequence number.

        Raises `LocalProtocolError` when the session does not allow it now.
        """
        if link.closed:
            raise LocalProtocolError("the connection is closed")
        if isinstance(pdu, Request) and pdu.sequence_number == 0:
            pdu = replace(pdu, sequence_number=link.session.next_sequence_number())
        link.write(link.session.send(pdu, now=time.monotonic()))
        if isinstance(pdu, Request):
            self._deadline_moved(link)
        return pdu.sequence_number

    def _request(self, link: _Link, request: SubmitSm) -> asyncio.Future[Response]:
        """Write ``request`` and return the future of its response."""
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        link.waiting[self._write(link, request)] = future
        self._window_gauge.set(len(link.waiting))
        return future

    def _answer(self, link: _Link, response: Response) -> None:
        if link.closed:
            return  # the SMSC sends its request again on its next bind
        try:
            self._write(link, response)
        except (LocalProtocolError, PduError) as exc:
            log.warning("bind %s: could not answer: %s", self.name, exc)

    def _resolve(self, link: _Link, sequence_number: int, outcome: Response | Exception) -> None:
        future = link.waiting.pop(sequence_number, None)
        self._window_gauge.set(len(link.waiting))
        if future is not None and not future.done():
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
        self._room.set()

    def _close(self, link: _Link) -> None:
        if link.closed:
            return
        link.closed = True
        link.flush()
        link.writer.close()
        link.session.close()
        lost = LinkError(f"bind {self.name}: connection lost before the response", sent=True)
        for sequence_number in list(link.waiting):
            self._resolve(link, sequence_number, lost)
        if self._link is link:
            self._link = None
            self._bound_since = None
        self._timer_wake.fire()
        if self._state in (BindState.BOUND, BindState.BINDING, BindState.UNBINDING):
            self._set_state(BindState.WAITING)
        self._changed.fire()

    async def _closed(self, link: _Link) -> None:
        while not link.closed:
            await self._changed.wait(None)

    # --- events ---------------------------------------------------------------------------

    def _handle(self, link: _Link, events: list[Event]) -> None:
        for event in events:
            self._handle_one(link, event)
        if not link.closed:
            self._deadline_moved(link)

    def _handle_one(self, link: _Link, event: Event) -> None:
        match event:
            case Bound():
                self._bound_since = time.time()
                self._reconnects.reset()
                self._set_state(BindState.BOUND)
                log.info("bind %s: bound as %s", self.name, self.config.mode.name.lower())
            case ResponseReceived(request=request, response=response):
                if isinstance(request, BindRequest):
                    nack = isinstance(response, GenericNack)
                    self._failed(diagnose_bind_refusal(response.command_status, self.config, nack))
                    self._close(link)
                elif isinstance(request, SubmitSm):
                    self._resolve(link, request.sequence_number, response)
            case RequestTimedOut(request=request):
                timeout = self.config.session.response_timeout
                if isinstance(request, SubmitSm):
                    error = LinkError(f"no response within {timeout:g}s", sent=True)
                    self._resolve(link, request.sequence_number, error)
                else:
                    self._failed(f"no answer to {_command(request)} within {timeout:g}s")
                    self._close(link)
            case RequestReceived(request=request):
                if isinstance(request, EnquireLink):
                    self._answer(link, request.response())
                elif isinstance(request, DeliverSm | DataSm):
                    self._spawn_handler(link, request)
            case EnquireLinkDue():
                with contextlib.suppress(LocalProtocolError):
                    self._write(link, EnquireLink())
            case UnbindRequested(request=request):
                self._answer(link, request.response())
                self._failed("the SMSC unbound us")
                self._close(link)
            case Unbound():
                self._close(link)
            case InactivityTimedOut():
                timeout = self.config.session.inactivity_timeout or 0
                self._failed(f"nothing heard from the SMSC for {timeout:g}s")
                self._close(link)
            case UnmatchedResponse(response=response):
                # Most likely a submit_sm_resp after its request timed out: the SMSC has the
                # message, and a resend of it goes out twice.
                log.warning(
                    "bind %s: response to nothing waiting (sequence %d, %s), probably late",
                    self.name,
                    response.sequence_number,
                    CommandStatus.name_of(response.command_status),
                )
            case ProtocolError() as error:
                log.warning(
                    "bind %s: protocol error from the SMSC: %s", self.name, error.description
                )
                if error.reply is not None:
                    self._answer(link, error.reply)
                if error.request is not None:
                    failure = LinkError(f"unreadable response: {error.description}", sent=True)
                    self._resolve(link, error.request.sequence_number, failure)
                if error.fatal:
                    self._failed(f"the SMSC broke the protocol: {error.description}")
                    self._close(link)
            case ConnectionClosed():
                if self._state is BindState.BINDING:
                    self._failed(
                        "the SMSC closed the connection during the bind (some do that instead "
                        "of refusing: check system_id, password and system_type)"
                    )
                elif not self._stopping:
                    self._failed("the SMSC closed the connection")
                self._close(link)

    def _spawn_handler(self, link: _Link, request: DeliverSm | DataSm) -> None:
        task = asyncio.create_task(self._deliver(link, request))
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def _deliver(self, link: _Link, request: DeliverSm | DataSm) -> None:
        status: int = CommandStatus.ESME_RX_T_APPN
        if self._on_deliver is not None:
            try:
                status = await self._on_deliver(request)
            except Exception:
                log.exception("bind %s: handling a %s failed", self.name, type(request).__name__)
        self._answer(link, request.response(status))
        if not link.closed:
            self._deadline_moved(link)

    # --- state ----------------------------------------------------------------------------

    def _set_state(self, state: BindState) -> None:
        if state is self._state:
            return
        self._state = state
        self._up.set(1 if state is BindState.BOUND else 0)
        if state is not BindState.BOUND:
            self._window_gauge.set(0)
        self._changed.fire()
        self._room.set()
        if self._on_change is not None:
            self._on_change()

    def _failed(self, diagnosis: str) -> None:
        # A bind that keeps failing the same way says so once, not at every attempt.
        level = logging.DEBUG if diagnosis == self._last_error else logging.WARNING
        self._last_error = diagnosis
        self._last_error_at = time.time()
        log.log(
            level,
            "bind %s to %s:%d as %r: %s",
            self.name,
            self.config.host,
            self.config.port,
            self.config.system_id,
            diagnosis,
        )
