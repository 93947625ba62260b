"""The carrier interface: what the dispatcher hands a carrier and what comes back.

Errors are sorted by what the dispatcher should do next, never by parsing text:

    CarrierError                 a submit did not go through
    ├── CarrierTemporaryError    try again later (throttled, queue full, timeout, link down)
    │   └── CarrierUnavailable   this carrier can take nothing now (no live bind): the
    │                            next carrier that reaches the number may
    └── CarrierRejected          permanent: the message fails with `code`, unless another
                                 carrier reaches the number

`code` uses the Twilio/Restcomm 300xx numbers (30003 unreachable handset, 30005 unknown
handset, 30006 landline or unreachable carrier, 30007 filtered, 30008 unknown error).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

ReceiptStatus = Literal["sent", "delivered", "undelivered", "failed"]


@dataclass(frozen=True, slots=True)
class OutboundSms:
    message_sid: str
    account_sid: str
    sender: str
    recipient: str
    body: str
    media_urls: tuple[str, ...] = ()
    # The message may have been submitted before, by a process that died or timed out
    # waiting: a carrier that can tell should answer as it did then, not send it again.
    resubmission: bool = False


@dataclass(frozen=True, slots=True)
class SubmitResult:
    carrier_message_id: str


@dataclass(frozen=True, slots=True)
class Receipt:
    """A delivery report from a carrier about a message it accepted."""

    carrier: str
    carrier_message_id: str
    status: ReceiptStatus
    error_code: int | None = None
    error_message: str | None = None
    # Set by carriers that know Verbal's id for the message (the sandbox), so the receipt
    # matches even before the submit result with the carrier's id has been recorded.
    message_sid: str | None = None


@dataclass(frozen=True, slots=True)
class InboundSms:
    carrier: str
    sender: str
    recipient: str
    body: str
    media_urls: tuple[str, ...] = field(default=())
    carrier_message_id: str | None = None


class CarrierError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class CarrierTemporaryError(CarrierError):
    pass


class CarrierUnavailable(CarrierTemporaryError):
    pass


class CarrierRejected(CarrierError):
    pass


class CarrierEvents(Protocol):
    """What a carrier calls when the network speaks first."""

    async def on_receipt(self, receipt: Receipt) -> None: ...

    async def on_inbound(self, sms: InboundSms) -> str:
        """Record an inbound message; returns its SID. Raises LookupError for an unknown number."""
        ...


class Carrier(Protocol):
    name: str
    # True for a carrier one worker at a time must hold (its binds are limited in number).
    singleton: bool

    def reaches(self, number: str) -> bool:
        """Whether this carrier can deliver to `number`."""
        ...

    async def start(self, events: CarrierEvents) -> None: ...

    async def stop(self) -> None: ...

    async def submit(self, sms: OutboundSms) -> SubmitResult: ...


@dataclass(frozen=True, slots=True)
class RouteRule:
    """When a carrier is a candidate for a message, and in what order.

    ``prefixes`` are the destinations it takes (empty: every number it `reaches`), and the
    longest matching prefix ranks it among carriers of equal ``priority``; ``senders``
    are the sender numbers (or their prefixes) it carries (empty: any). Lower priorities
    are tried first.
    """

    prefixes: tuple[str, ...] = ()
    senders: tuple[str, ...] = ()
    priority: int = 100

    def specificity(self, number: str) -> int | None:
        """How closely ``number`` matches (the prefix's length), or None if it doesn't."""
        if not self.prefixes:
            return 0
        lengths = [len(prefix) for prefix in self.prefixes if number.startswith(prefix)]
        return max(lengths) if lengths else None

    def carries(self, sender: str | None) -> bool:
        return not self.senders or sender is None or sender.startswith(self.senders)


class CarrierRouter:
    """Picks the carriers for a message, best first.

    A carrier is a candidate when it reaches the destination and its `RouteRule` takes the
    destination and the sender. Candidates are ordered by priority, then by the longest
    matching destination prefix, then by the order they were configured in. The first is
    used; the pipeline moves to the next when one is unavailable or rejects the message.
    """

    def __init__(self, carriers: list[Carrier], rules: dict[str, RouteRule] | None = None) -> None:
        self.carriers = carriers
        self._by_name = {carrier.name: carrier for carrier in carriers}
        self._rules = rules or {}

    def candidates(self, number: str, sender: str | None = None) -> list[Carrier]:
        ranked = []
        for position, carrier in enumerate(self.carriers):
            rule = self._rules.get(carrier.name, RouteRule())
            specificity = rule.specificity(number)
            if specificity is None or not rule.carries(sender) or not carrier.reaches(number):
                continue
            ranked.append(((rule.priority, -specificity, position), carrier))
        return [carrier for _, carrier in sorted(ranked, key=lambda pair: pair[0])]

    def route(self, number: str, sender: str | None = None) -> Carrier | None:
        candidates = self.candidates(number, sender)
        return candidates[0] if candidates else None

    def get(self, name: str) -> Carrier | None:
        return self._by_name.get(name)
