"""The SMPP session state machine, for either end of a bind, with no I/O and no clock.

Like h11's ``Connection``, a `Session` only turns PDUs into bytes (`Session.send`) and
bytes into events (`Session.receive_data`); the I/O shell reads, writes and sleeps. The
shell passes the time in (``now``, from a monotonic clock) wherever the session needs it,
and asks `Session.next_deadline` when to call `Session.handle_timeout` next.

What the session decides:

* **Legality.** Which role may send which request in which state (SMPP 3.4 §2, §4):
  an ESME binds, submits and unbinds, an SMSC delivers and outbinds, both ask
  enquire_link. Sending something illegal raises `LocalProtocolError`; receiving it
  yields a `ProtocolError` event whose ``reply`` is the right refusal (ESME_RINVBNDSTS,
  ESME_RALYBND, a generic_nack with ESME_RINVCMDID), for the shell to `send`.
* **Sequence numbers and the window.** Requests are numbered 1..0x7FFFFFFF, wrapping,
  never reusing a number still awaiting its response. At most ``window`` requests are
  outstanding; `can_send` says whether one more may go. enquire_link and unbind don't
  count: they must get through when the window is full of submits that went unanswered.
* **Matching.** A response (or generic_nack) is paired with the request it answers and
  reported as one event; a response to nothing becomes `UnmatchedResponse`.
* **Timers.** A response timeout per request, an enquire_link due after a quiet interval
  and an inactivity timeout (SMPP 3.4 §7.2; the spec gives no values, `SessionConfig`'s
  defaults follow Kannel's and Jasmin's).

The bind states are OPEN → BOUND_TX / BOUND_RX / BOUND_TRX → UNBOUND → CLOSED.
"""

import enum
from dataclasses import dataclass, replace

from verbal.carriers.smpp.pdu import (
    DEFAULT_MAX_PDU_SIZE,
    MAX_SEQUENCE_NUMBER,
    RESPONSE_BIT,
    BindRequest,
    CommandId,
    CommandStatus,
    GenericNack,
    Pdu,
    PduError,
    PduReader,
    Request,
    Response,
    Unbind,
    UnknownPdu,
    pdu_class,
)

__all__ = [
    "BindRequested",
    "Bound",
    "ConnectionClosed",
    "EnquireLinkDue",
    "Event",
    "InactivityTimedOut",
    "LocalProtocolError",
    "ProtocolError",
    "RequestReceived",
    "RequestTimedOut",
    "ResponseReceived",
    "Role",
    "Session",
    "SessionConfig",
    "State",
    "UnbindRequested",
    "Unbound",
    "UnmatchedResponse",
]


class Role(enum.Enum):
    ESME = "esme"
    SMSC = "smsc"


class State(enum.Enum):
    OPEN = "open"
    BOUND_TX = "bound_tx"
    BOUND_RX = "bound_rx"
    BOUND_TRX = "bound_trx"
    UNBOUND = "unbound"
    CLOSED = "closed"


class LocalProtocolError(Exception):
    """Our side tried something the session does not allow; nothing was sent."""


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """The limits and timers of one session. A timer set to None is off."""

    # Requests outstanding at once. Carriers commonly allow about 10 (Kannel's
    # max-pending-submits default); exceeding theirs gets ESME_RTHROTTLED or a disconnect.
    window: int = 10
    # Seconds to wait for a response before reporting the request as timed out.
    response_timeout: float | None = 30.0
    # Seconds without any PDU from the peer after which an enquire_link is due.
    enquire_link_interval: float | None = 30.0
    # Seconds without any PDU from the peer after which the session is considered dead.
    inactivity_timeout: float | None = 300.0
    max_pdu_size: int = DEFAULT_MAX_PDU_SIZE

    def __post_init__(self) -> None:
        if self.window < 1:
            msg = f"window must be at least 1, got {self.window}"
            raise ValueError(msg)
        for name in ("response_timeout", "enquire_link_interval", "inactivity_timeout"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                msg = f"{name} must be positive or None, got {value}"
                raise ValueError(msg)


# --- events ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BindRequested:
    """(SMSC) An ESME asks to bind: answer with ``request.response(...)``, accepting or not."""

    request: BindRequest


@dataclass(frozen=True, slots=True)
class Bound:
    """(ESME) The SMSC accepted our bind; the session is now bound.

    A refused bind arrives as `ResponseReceived` instead and leaves the session OPEN.
    """

    request: BindRequest
    response: Response


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A legal request from the peer. Answer it with ``request.response(...)`` (an
    outbind has no response: bind as a receiver instead)."""

    request: Request


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """The response to one of our requests: its own _resp, or a generic_nack."""

    request: Request
    response: Response


@dataclass(frozen=True, slots=True)
class UnbindRequested:
    """The peer unbinds: answer with ``request.response()``, then close the connection."""

    request: Unbind


@dataclass(frozen=True, slots=True)
class Unbound:
    """The peer acknowledged our unbind: close the connection."""

    request: Unbind
    response: Response


@dataclass(frozen=True, slots=True)
class RequestTimedOut:
    """No response came within the response timeout; the request left the window.

    Whether the peer acted on it is unknown: resending it is "at least once".
    """

    request: Request


@dataclass(frozen=True, slots=True)
class EnquireLinkDue:
    """The peer has been quiet for the enquire_link interval: send an `EnquireLink`."""


@dataclass(frozen=True, slots=True)
class InactivityTimedOut:
    """Nothing came from the peer for the inactivity timeout: unbind or close."""


@dataclass(frozen=True, slots=True)
class UnmatchedResponse:
    """A response no outstanding request is waiting for (late, after its request timed
    out, or bogus). A late submit_sm_resp still means the SMSC took the message."""

    response: Response | UnknownPdu


@dataclass(frozen=True, slots=True)
class ProtocolError:
    """The peer sent something malformed or illegal.

    Send ``reply`` if there is one; if ``fatal``, the byte stream can't be followed any
    more and the session is CLOSED: send the reply, drop the connection, and collect our
    unanswered requests with `Session.close`. ``request``
    is our request that a malformed response was answering, if any; it has left the
    window.
    """

    description: str
    command_status: int
    reply: Response | None
    fatal: bool = False
    request: Request | None = None


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The peer closed the connection; ``unanswered`` are our requests that got no response."""

    unanswered: tuple[Request, ...]


Event = (
    BindRequested
    | Bound
    | RequestReceived
    | ResponseReceived
    | UnbindRequested
    | Unbound
    | RequestTimedOut
    | EnquireLinkDue
    | InactivityTimedOut
    | UnmatchedResponse
    | ProtocolError
    | ConnectionClosed
)


# --- legality (SMPP 3.4 §2 and each PDU's description in §4) --------------------------------

_BOUND = frozenset({State.BOUND_TX, State.BOUND_RX, State.BOUND_TRX})
_ESME_TRANSMITS = frozenset({State.BOUND_TX, State.BOUND_TRX})
_ESME_RECEIVES = frozenset({State.BOUND_RX, State.BOUND_TRX})
_OPEN = frozenset({State.OPEN})
# SMPP 3.4 lists enquire_link for the bound states; 5.0 allows it in OPEN too, and
# answering one costs nothing, so both are accepted.
_LINK_CHECK = _BOUND | _OPEN

# For each role, the requests it may send and the states it may send them in. A request
# from the peer is legal when the peer's role may send it in the current state.
_MAY_SEND: dict[Role, dict[int, frozenset[State]]] = {
    Role.ESME: {
        CommandId.BIND_TRANSMITTER: _OPEN,
        CommandId.BIND_RECEIVER: _OPEN,
        CommandId.BIND_TRANSCEIVER: _OPEN,
        CommandId.SUBMIT_SM: _ESME_TRANSMITS,
        CommandId.DATA_SM: _ESME_TRANSMITS,
        CommandId.ENQUIRE_LINK: _LINK_CHECK,
        CommandId.UNBIND: _BOUND,
    },
    Role.SMSC: {
        CommandId.OUTBIND: _OPEN,
        CommandId.DELIVER_SM: _ESME_RECEIVES,
        CommandId.DATA_SM: _ESME_RECEIVES,
        CommandId.ENQUIRE_LINK: _LINK_CHECK,
        CommandId.UNBIND: _BOUND,
    },
}
_PEER = {Role.ESME: Role.SMSC, Role.SMSC: Role.ESME}
_BOUND_BY: dict[int, State] = {
    CommandId.BIND_TRANSMITTER: State.BOUND_TX,
    CommandId.BIND_RECEIVER: State.BOUND_RX,
    CommandId.BIND_TRANSCEIVER: State.BOUND_TRX,
}
# Requests outside the window: see the module docstring.
_UNWINDOWED: frozenset[int] = frozenset({CommandId.ENQUIRE_LINK, CommandId.UNBIND})


def _name(command_id: int) -> str:
    try:
        return CommandId(command_id).name.lower()
    except ValueError:
        return f"command 0x{command_id:08X}"


@dataclass(slots=True)
class _Pending:
    """One of our requests awaiting its response."""

    request: Request
    deadline: float | None
    windowed: bool


class Session:
    """One SMPP session, for the ``role`` we play in it. See the module docstring.

    ``now`` is the time on the shell's monotonic clock, in seconds, when the connection
    opened; every later ``now`` must come from the same clock.
    """

    def __init__(self, role: Role, config: SessionConfig | None = None, *, now: float) -> None:
        self.role = role
        self.config = config or SessionConfig()
        self._state = State.OPEN
        self._reader = PduReader(self.config.max_pdu_size)
        # Our requests awaiting a response, in the order sent: with one timeout for all,
        # that is also deadline order, so the earliest deadline is always the first entry.
        self._sent: dict[int, _Pending] = {}
        self._windowed = 0
        self._enquiring = 0  # enquire_links among self._sent
        # The peer's requests awaiting our response: sequence number -> command_id.
        self._owed: dict[int, int] = {}
        self._next_sequence_number = 1
        self._bind_in_progress: int | None = None  # its sequence number
        self._unbinding = False  # an unbind went either way: no new requests from us
        self._keepalive_at = self._inactive_at = 0.0
        self._heard_from_peer(now)

    @property
    def state(self) -> State:
        return self._state

    def can_send(self) -> bool:
        """True if one more windowed request (submit_sm, deliver_sm ...) may be sent now."""
        return self._state in _BOUND and not self._unbinding and self._windowed < self.config.window

    def next_sequence_number(self) -> int:
        """Reserve the next sequence number, for a caller that needs it before `send`.

        `send` numbers a request whose sequence_number is 0 by itself.
        """
        number = self._next_sequence_number
        while number in self._sent:  # only possible after a wrap
            number = number % MAX_SEQUENCE_NUMBER + 1
        self._next_sequence_number = number % MAX_SEQUENCE_NUMBER + 1
        return number

    # --- sending -------------------------------------------------------------------------

    def send(self, pdu: Pdu, *, now: float) -> bytes:
        """The bytes to write for ``pdu``, after checking it is legal now.

        Raises `LocalProtocolError` if it isn't, or `PduError` if a field can't be
        encoded; either way nothing changed.
        """
        if isinstance(pdu, Request):
            return self._send_request(pdu, now)
        if isinstance(pdu, Response):
            return self._send_response(pdu)
        msg = f"{type(pdu).__name__} is neither a request nor a response"
        raise LocalProtocolError(msg)

    def _send_request(self, request: Request, now: float) -> bytes:
        command_id = request.command_id
        states = _MAY_SEND[self.role].get(command_id)
        if states is None:
            msg = f"an {self.role.name} never sends {_name(command_id)}"
            raise LocalProtocolError(msg)
        if self._state not in states or self._unbinding:
            state = "unbinding" if self._unbinding else self._state.name
            msg = f"{_name(command_id)} is not allowed while {state}"
            raise LocalProtocolError(msg)
        if command_id in _BOUND_BY and self._bind_in_progress is not None:
            msg = "a bind is already waiting for its response"
            raise LocalProtocolError(msg)
        windowed = command_id not in _UNWINDOWED
        if windowed and self._windowed >= self.config.window:
            msg = f"the window of {self.config.window} requests is full: check can_send()"
            raise LocalProtocolError(msg)
        if request.sequence_number == 0:
            request = replace(request, sequence_number=self.next_sequence_number())
        elif not 1 <= request.sequence_number <= MAX_SEQUENCE_NUMBER or (
            request.sequence_number in self._sent
        ):
            msg = f"sequence_number {request.sequence_number} is out of range or in use"
            raise LocalProtocolError(msg)
        data = request.encode()

        if request.response_class is not None:  # outbind is never answered
            timeout = self.config.response_timeout
            deadline = None if timeout is None else now + timeout
            self._sent[request.sequence_number] = _Pending(request, deadline, windowed)
            self._windowed += windowed
            self._enquiring += command_id == CommandId.ENQUIRE_LINK
        if command_id in _BOUND_BY:
            self._bind_in_progress = request.sequence_number
        elif command_id == CommandId.UNBIND:
            self._unbinding = True
        return data

    def _send_response(self, response: Response) -> bytes:
        if isinstance(response, GenericNack):
            # Allowed for any sequence number, even after a fatal error: it is how an
            # unreadable or unknown PDU is answered (SMPP 3.4 §4.3).
            data = response.encode()
            self._owed.pop(response.sequence_number, None)
            return data
        if self._state is State.CLOSED:
            msg = "the session is closed"
            raise LocalProtocolError(msg)
        request_id = self._owed.get(response.sequence_number)
        if request_id is None:
            msg = f"no request with sequence_number {response.sequence_number} awaits a response"
            raise LocalProtocolError(msg)
        if response.command_id != request_id | RESPONSE_BIT:
            msg = f"{_name(response.command_id)} does not answer {_name(request_id)}"
            raise LocalProtocolError(msg)
        data = response.encode()

        del self._owed[response.sequence_number]
        accepted = response.command_status == CommandStatus.ESME_ROK
        if request_id in _BOUND_BY and response.sequence_number == self._bind_in_progress:
            self._bind_in_progress = None
            if accepted:
                self._state = _BOUND_BY[request_id]
        elif request_id == CommandId.UNBIND:
            if accepted:
                self._state = State.UNBOUND
            else:
                self._unbinding = False  # we refused it; carry on bound
        return data

    # --- receiving -----------------------------------------------------------------------

    def receive_data(self, data: bytes, *, now: float) -> list[Event]:
        """Feed bytes read from the connection; ``b""`` means the peer closed it.

        Returns the events of every PDU the bytes complete, in order (often none, when a
        PDU is still incomplete).
        """
        if self._state is State.CLOSED:
            msg = "the session is closed"
            raise LocalProtocolError(msg)
        if not data:
            return [ConnectionClosed(tuple(self.close()))]
        self._reader.feed(data)
        events: list[Event] = []
        while True:
            try:
                pdu = self._reader.next_pdu()
            except PduError as exc:
                events.append(self._malformed(exc))
                if exc.fatal:
                    break
                continue
            if pdu is None:
                break
            self._heard_from_peer(now)
            if isinstance(pdu, Request):
                events.append(self._on_request(pdu))
            elif isinstance(pdu, Response):
                events.append(self._on_response(pdu))
            else:
                events.append(self._unknown(pdu))
        return events

    def _on_request(self, request: Request) -> Event:
        command_id = request.command_id
        sequence_number = request.sequence_number
        states = _MAY_SEND[_PEER[self.role]].get(command_id)
        if states is None:
            # The peer's role never sends this (an SMSC binding to us, an ESME delivering).
            description = f"an {_PEER[self.role].name} may not send {_name(command_id)}"
            return self._refuse(request, description, CommandStatus.ESME_RINVCMDID, nack=True)
        if self._state not in states:
            status = (
                CommandStatus.ESME_RALYBND
                if command_id in _BOUND_BY and self._state in _BOUND
                else CommandStatus.ESME_RINVBNDSTS
            )
            description = f"{_name(command_id)} is not allowed in {self._state.name}"
            return self._refuse(request, description, status)
        if command_id in _BOUND_BY and self._bind_in_progress is not None:
            description = "a second bind while the first awaits its response"
            return self._refuse(request, description, CommandStatus.ESME_RINVBNDSTS)

        if request.response_class is not None:
            self._owed[sequence_number] = command_id
        if isinstance(request, BindRequest):
            self._bind_in_progress = sequence_number
            return BindRequested(request)
        if isinstance(request, Unbind):
            self._unbinding = True
            return UnbindRequested(request)
        return RequestReceived(request)

    def _refuse(
        self, request: Request, description: str, status: int, *, nack: bool = False
    ) -> ProtocolError:
        """A ProtocolError whose reply refuses ``request`` with ``status``."""
        if nack or request.response_class is None:
            reply: Response = GenericNack(
                command_status=status, sequence_number=request.sequence_number
            )
        else:
            reply = request.response(status)
            self._owed[request.sequence_number] = request.command_id
        return ProtocolError(description, status, reply)

    def _on_response(self, response: Response) -> Event:
        pending = self._sent.get(response.sequence_number)
        if pending is None:
            return UnmatchedResponse(response)
        request = pending.request
        is_nack = isinstance(response, GenericNack)
        if not is_nack and response.command_id != request.command_id | RESPONSE_BIT:
            # Leave the request waiting: its real response may still come.
            description = (
                f"{_name(response.command_id)} with sequence_number {response.sequence_number} "
                f"does not answer {_name(request.command_id)}"
            )
            return ProtocolError(description, CommandStatus.ESME_RINVCMDID, None)
        self._forget(response.sequence_number)

        accepted = not is_nack and response.command_status == CommandStatus.ESME_ROK
        if isinstance(request, BindRequest):
            if accepted:
                self._state = _BOUND_BY[request.command_id]
                return Bound(request, response)
        elif isinstance(request, Unbind):
            if accepted:
                self._state = State.UNBOUND
                return Unbound(request, response)
            self._unbinding = False  # the peer refused; carry on bound
        return ResponseReceived(request, response)

    def _unknown(self, pdu: UnknownPdu) -> Event:
        if pdu.command_id & RESPONSE_BIT:
            return UnmatchedResponse(pdu)
        description = f"unknown {_name(pdu.command_id)}"
        reply = GenericNack(
            command_status=CommandStatus.ESME_RINVCMDID, sequence_number=pdu.sequence_number
        )
        return ProtocolError(description, CommandStatus.ESME_RINVCMDID, reply)

    def _malformed(self, error: PduError) -> ProtocolError:
        status = error.command_status
        sequence_number = error.sequence_number or 0
        command_id = error.command_id
        if error.fatal:
            # Keep our unanswered requests for close() to hand back.
            self._state = State.CLOSED
            nack = GenericNack(command_status=status, sequence_number=sequence_number)
            return ProtocolError(str(error), status, nack, fatal=True)
        if command_id is None or command_id & RESPONSE_BIT:
            # A response we can't read: fail the request it answers rather than leave it
            # to time out, since whatever it was, it will not be answered again.
            pending = self._forget(sequence_number)
            request = pending.request if pending else None
            return ProtocolError(str(error), status, None, request=request)
        # A request with a bad field is refused with its own response type (SMPP 3.4 §4),
        # carrying the status that names the field.
        cls = pdu_class(command_id)
        response_class = getattr(cls, "response_class", None)
        if response_class is None:
            reply: Response = GenericNack(command_status=status, sequence_number=sequence_number)
        else:
            reply = response_class(command_status=status, sequence_number=sequence_number)
            self._owed[sequence_number] = command_id
        return ProtocolError(str(error), status, reply)

    def _forget(self, sequence_number: int) -> _Pending | None:
        """Take one of our requests out of the window, answered or given up on."""
        pending = self._sent.pop(sequence_number, None)
        if pending is not None:
            self._windowed -= pending.windowed
            command_id = pending.request.command_id
            self._enquiring -= command_id == CommandId.ENQUIRE_LINK
            if sequence_number == self._bind_in_progress and command_id in _BOUND_BY:
                self._bind_in_progress = None
        return pending

    # --- time ----------------------------------------------------------------------------

    def _heard_from_peer(self, now: float) -> None:
        interval = self.config.enquire_link_interval
        if interval is not None:
            self._keepalive_at = now + interval
        timeout = self.config.inactivity_timeout
        if timeout is not None:
            self._inactive_at = now + timeout

    def _keepalive_armed(self) -> bool:
        # Not while an enquire_link is already out: its response timeout covers the link.
        return (
            self.config.enquire_link_interval is not None
            and self._state in _BOUND
            and not self._unbinding
            and not self._enquiring
        )

    def next_deadline(self) -> float | None:
        """When `handle_timeout` next has something to do, or None if never (for now).

        The answer changes with every send and receive, so ask again after each.
        """
        if self._state is State.CLOSED:
            return None
        deadlines = []
        if self._sent:
            first = next(iter(self._sent.values())).deadline
            if first is not None:
                deadlines.append(first)
        if self._keepalive_armed():
            deadlines.append(self._keepalive_at)
        if self.config.inactivity_timeout is not None:
            deadlines.append(self._inactive_at)
        return min(deadlines, default=None)

    def handle_timeout(self, now: float) -> list[Event]:
        """The events of every deadline at or before ``now``; safe to call at any time."""
        events: list[Event] = []
        if self._state is State.CLOSED:
            return events
        while self._sent:
            sequence_number, pending = next(iter(self._sent.items()))
            if pending.deadline is None or pending.deadline > now:
                break
            self._forget(sequence_number)
            events.append(RequestTimedOut(pending.request))
        interval = self.config.enquire_link_interval
        if interval is not None and self._keepalive_armed() and self._keepalive_at <= now:
            # Ask again an interval later if the shell lets this one pass.
            self._keepalive_at = now + interval
            events.append(EnquireLinkDue())
        timeout = self.config.inactivity_timeout
        if timeout is not None and self._inactive_at <= now:
            self._inactive_at = now + timeout
            events.append(InactivityTimedOut())
        return events

    def close(self) -> list[Request]:
        """Mark the session CLOSED (the connection is gone); returns our unanswered requests."""
        self._state = State.CLOSED
        unanswered = [pending.request for pending in self._sent.values()]
        self._sent.clear()
        self._owed.clear()
        self._windowed = self._enquiring = 0
        self._bind_in_progress = None
        return unanswered
