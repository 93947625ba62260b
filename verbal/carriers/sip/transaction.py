"""RFC 3261 §17 transactions as pure state machines, with RFC 6026's Accepted state.

A transaction never touches a socket or a clock. Each input (`start`, a message received,
a TU action such as `ServerInvite.respond`, `timer_fired`) returns the actions the shell
carries out, in order: `Send` these bytes to the transaction's peer, `StartTimer` /
`CancelTimer` a named timer (starting a running timer restarts it), `Deliver` a message
to the transaction user, `TimedOut` (the peer never answered, or never ACKed), and
`Terminated` (forget the transaction).

The four machines and their states (figures 5 to 8 of RFC 3261, amended by RFC 6026):

=====================  ================================================================
`ClientInvite`         CALLING -1xx-> PROCEEDING; 300-699 -> COMPLETED (ACK sent here,
                       timer D) -> TERMINATED; 2xx -> ACCEPTED (timer M; later 2xx from
                       forks are delivered for the TU to ACK) -> TERMINATED. Timer A
                       resends the INVITE over UDP, timer B gives up.
`ClientNonInvite`      TRYING -1xx-> PROCEEDING; final -> COMPLETED (timer K) ->
                       TERMINATED. Timer E resends (doubling to T2), timer F gives up.
`ServerInvite`         PROCEEDING (a 100 Trying is sent at once; retransmitted INVITEs get
                       the last provisional again); 2xx -> ACCEPTED: the 2xx is resent, on
                       any transport, with §13.3.1.4's doubling interval until the TU reports
                       the ACK
                       (`ack_received`), timer L ends it and reports `TimedOut` if no ACK
                       came; 300-699 -> COMPLETED (timer G resends, timer H gives up) -ACK->
                       CONFIRMED (timer I) -> TERMINATED.
`ServerNonInvite`      TRYING -1xx-> PROCEEDING; final -> COMPLETED (timer J absorbs
                       retransmissions) -> TERMINATED.
=====================  ================================================================

Strictly the 2xx retransmission belongs to the UAS core (§13.3.1.4); it lives in
`ServerInvite` because it runs exactly as long as the Accepted state and on the same peer.
Over reliable transports (TCP) nothing else is resent and timers D, I, J and K are zero.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from verbal.carriers.sip.message import Headers, Message, Request, Response

__all__ = [
    "Action",
    "CancelTimer",
    "ClientInvite",
    "ClientNonInvite",
    "Deliver",
    "Send",
    "ServerInvite",
    "ServerNonInvite",
    "StartTimer",
    "State",
    "Terminated",
    "TimedOut",
    "Timers",
    "client_key",
    "server_key",
]

BRANCH_COOKIE = "z9hG4bK"


@dataclass(frozen=True, slots=True)
class Timers:
    """RFC 3261's base intervals, in seconds (§17.1.1.1; Table 4 derives every timer)."""

    t1: float = 0.5  # round-trip estimate
    t2: float = 4.0  # longest interval between resends of a non-INVITE request or a 2xx
    t4: float = 5.0  # longest time a message stays in the network

    def __post_init__(self) -> None:
        if not 0 < self.t1 <= self.t2 or self.t4 <= 0:
            msg = f"timers need 0 < t1 <= t2 and t4 > 0, got {self}"
            raise ValueError(msg)

    @property
    def timeout(self) -> float:
        """64*T1: timers B, F, H, J and L (32 s with the default T1)."""
        return 64 * self.t1


# --- actions ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    message: Message


@dataclass(frozen=True, slots=True)
class StartTimer:
    name: str
    delay: float


@dataclass(frozen=True, slots=True)
class CancelTimer:
    name: str


@dataclass(frozen=True, slots=True)
class Deliver:
    message: Message


@dataclass(frozen=True, slots=True)
class TimedOut:
    """Timer B or F (no final response), H (no ACK for a failure) or L (no ACK for a 2xx)."""

    timer: str


@dataclass(frozen=True, slots=True)
class Terminated:
    pass


Action = Send | StartTimer | CancelTimer | Deliver | TimedOut | Terminated


class State(enum.Enum):
    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    ACCEPTED = "accepted"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


def server_key(request: Request) -> tuple[str, ...]:
    """What matches a request to its server transaction (§17.2.3).

    An ACK matches the INVITE's transaction (only a non-2xx ACK shares its branch), and a
    CANCEL has its own. Requests from pre-RFC 3261 peers, without the magic cookie, fall
    back to Call-ID, CSeq number and From tag.
    """
    via = request.top_via
    method = "INVITE" if request.method == "ACK" else request.method
    branch = via.branch or ""
    host, port = via.sent_by
    if branch.startswith(BRANCH_COOKIE):
        return (branch, host, str(port), method)
    return (request.call_id, str(request.cseq[0]), request.from_.tag or "", method)


def client_key(message: Message) -> tuple[str, str]:
    """What matches a response to our client transaction (§17.1.3): branch, CSeq method."""
    return (message.top_via.branch or "", message.cseq[1])


class _Transaction:
    def __init__(self, request: Request, timers: Timers, reliable: bool) -> None:
        self.request = request
        self.timers = timers
        self.reliable = reliable
        self.state = State.TERMINATED

    def _terminate(self, *, cancel: tuple[str, ...] = ()) -> list[Action]:
        self.state = State.TERMINATED
        return [*(CancelTimer(name) for name in cancel), Terminated()]

    def _wait(self, seconds: float) -> float:
        return 0.0 if self.reliable else seconds


# --- client ---------------------------------------------------------------------------------


class ClientInvite(_Transaction):
    def start(self) -> list[Action]:
        self.state = State.CALLING
        self._interval = self.timers.t1
        actions: list[Action] = [Send(self.request), StartTimer("B", self.timers.timeout)]
        if not self.reliable:
            actions.append(StartTimer("A", self._interval))
        return actions

    def receive(self, response: Response) -> list[Action]:
        if self.state in (State.CALLING, State.PROCEEDING):
            if response.status < 200:
                self.state = State.PROCEEDING
                return [CancelTimer("A"), CancelTimer("B"), Deliver(response)]
            stop: list[Action] = [CancelTimer("A"), CancelTimer("B")]
            if response.status < 300:
                self.state = State.ACCEPTED
                return [*stop, StartTimer("M", self.timers.timeout), Deliver(response)]
            self.state = State.COMPLETED
            self._ack = self._ack_for(response)
            return [
                *stop,
                Send(self._ack),
                StartTimer("D", self._wait(32.0)),
                Deliver(response),
            ]
        if self.state is State.ACCEPTED and 200 <= response.status < 300:
            return [Deliver(response)]  # a retransmission or another fork's 2xx: the TU ACKs
        if self.state is State.COMPLETED and response.status >= 300:
            return [Send(self._ack)]
        return []

    def timer_fired(self, name: str) -> list[Action]:
        if name == "A" and self.state is State.CALLING:
            self._interval *= 2
            return [Send(self.request), StartTimer("A", self._interval)]
        if name == "B" and self.state is State.CALLING:
            return [TimedOut("B"), *self._terminate(cancel=("A",))]
        if (name == "D" and self.state is State.COMPLETED) or (
            name == "M" and self.state is State.ACCEPTED
        ):
            return self._terminate()
        return []

    def _ack_for(self, response: Response) -> Request:
        """The ACK of a non-2xx final response (§17.1.1.3): same branch as the INVITE."""
        request = self.request
        headers = [
            ("Via", request.headers.values("Via")[0]),
            ("Max-Forwards", "70"),
            *((name, value) for name, value in request.headers if name == "Route"),
            ("From", request.headers.get("From") or ""),
            ("To", response.headers.get("To") or ""),
            ("Call-ID", request.call_id),
            ("CSeq", f"{request.cseq[0]} ACK"),
        ]
        return Request("ACK", request.uri, Headers.of(headers))


class ClientNonInvite(_Transaction):
    def start(self) -> list[Action]:
        self.state = State.TRYING
        self._interval = self.timers.t1
        actions: list[Action] = [Send(self.request), StartTimer("F", self.timers.timeout)]
        if not self.reliable:
            actions.append(StartTimer("E", self._interval))
        return actions

    def receive(self, response: Response) -> list[Action]:
        if self.state not in (State.TRYING, State.PROCEEDING):
            return []  # a retransmitted final response, absorbed in COMPLETED
        if response.status < 200:
            self.state = State.PROCEEDING
            return [Deliver(response)]
        self.state = State.COMPLETED
        return [
            CancelTimer("E"),
            CancelTimer("F"),
            StartTimer("K", self._wait(self.timers.t4)),
            Deliver(response),
        ]

    def timer_fired(self, name: str) -> list[Action]:
        if name == "E" and self.state in (State.TRYING, State.PROCEEDING):
            if self.state is State.TRYING:
                self._interval = min(2 * self._interval, self.timers.t2)
            else:
                self._interval = self.timers.t2
            return [Send(self.request), StartTimer("E", self._interval)]
        if name == "F" and self.state in (State.TRYING, State.PROCEEDING):
            return [TimedOut("F"), *self._terminate(cancel=("E",))]
        if name == "K" and self.state is State.COMPLETED:
            return self._terminate()
        return []


# --- server ---------------------------------------------------------------------------------


class ServerInvite(_Transaction):
    def start(self, trying: Response) -> list[Action]:
        """Begin with the INVITE received; ``trying`` is its 100, sent at once (§17.2.1)."""
        self.state = State.PROCEEDING
        self.last_response: Response = trying
        self.acked = False  # the 2xx's ACK came (ACCEPTED only)
        return [Send(trying), Deliver(self.request)]

    def respond(self, response: Response) -> list[Action]:
        """The TU answers. Raises `ValueError` once a final response has been sent."""
        if self.state is not State.PROCEEDING:
            msg = f"the INVITE was already answered ({self.last_response.status})"
            raise ValueError(msg)
        self.last_response = response
        if response.status < 200:
            return [Send(response)]
        if response.status < 300:
            # Resent even over TCP (§13.3.1.4): the ACK is end to end, and a hop beyond
            # the first may be UDP.
            self.state = State.ACCEPTED
            self._interval = self.timers.t1
            return [
                Send(response),
                StartTimer("L", self.timers.timeout),
                StartTimer("G", self._interval),
            ]
        self.state = State.COMPLETED
        self._interval = self.timers.t1
        actions = [Send(response), StartTimer("H", self.timers.timeout)]
        if not self.reliable:
            actions.append(StartTimer("G", self._interval))
        return actions

    def receive(self, request: Request) -> list[Action]:
        """A retransmitted INVITE, or the ACK of a non-2xx final response."""
        if request.method == "ACK":
            if self.state is State.COMPLETED:
                self.state = State.CONFIRMED
                return [
                    CancelTimer("G"),
                    CancelTimer("H"),
                    StartTimer("I", self._wait(self.timers.t4)),
                ]
            return []
        if self.state in (State.PROCEEDING, State.COMPLETED):
            return [Send(self.last_response)]
        return []  # ACCEPTED: the 2xx goes out on its own schedule (RFC 6026 §8.5)

    def ack_received(self) -> list[Action]:
        """The TU matched the 2xx's ACK to this INVITE's dialog: stop resending the 2xx."""
        if self.state is State.ACCEPTED and not self.acked:
            self.acked = True
            return [CancelTimer("G")]
        return []

    def timer_fired(self, name: str) -> list[Action]:
        if name == "G" and self.state in (State.ACCEPTED, State.COMPLETED):
            # A 2xx and a failure are resent alike: T1, doubling, at most T2.
            self._interval = min(2 * self._interval, self.timers.t2)
            return [Send(self.last_response), StartTimer("G", self._interval)]
        if name == "H" and self.state is State.COMPLETED:
            return [TimedOut("H"), *self._terminate(cancel=("G",))]
        if name == "L" and self.state is State.ACCEPTED:
            timed_out: list[Action] = [] if self.acked else [TimedOut("L")]
            return [*timed_out, *self._terminate(cancel=("G",))]
        if name == "I" and self.state is State.CONFIRMED:
            return self._terminate()
        return []


class ServerNonInvite(_Transaction):
    def start(self) -> list[Action]:
        self.state = State.TRYING
        self.last_response: Response | None = None
        return [Deliver(self.request)]

    def respond(self, response: Response) -> list[Action]:
        if self.state not in (State.TRYING, State.PROCEEDING):
            msg = "the request was already answered"
            raise ValueError(msg)
        self.last_response = response
        if response.status < 200:
            self.state = State.PROCEEDING
            return [Send(response)]
        self.state = State.COMPLETED
        return [Send(response), StartTimer("J", self._wait(self.timers.timeout))]

    def receive(self, request: Request) -> list[Action]:
        if self.last_response is not None and self.state in (State.PROCEEDING, State.COMPLETED):
            return [Send(self.last_response)]
        return []

    def timer_fired(self, name: str) -> list[Action]:
        if name == "J" and self.state is State.COMPLETED:
            return self._terminate()
        return []
