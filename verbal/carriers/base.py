"""The carrier interface: what the dispatcher hands a carrier and what comes back.

Errors are sorted by what the dispatcher should do next, never by parsing text:

    CarrierError                 a submit did not go through
    ├── CarrierTemporaryError    try again later (throttled, queue full, timeout, link down)
    └── CarrierRejected          permanent: the message fails with `code`

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

    def reaches(self, number: str) -> bool:
        """Whether this carrier can deliver to `number`."""
        ...

    async def start(self, events: CarrierEvents) -> None: ...

    async def stop(self) -> None: ...

    async def submit(self, sms: OutboundSms) -> SubmitResult: ...


class CarrierRouter:
    """Picks the carrier for a destination: the first, in configured order, that reaches it."""

    def __init__(self, carriers: list[Carrier]) -> None:
        self.carriers = carriers
        self._by_name = {carrier.name: carrier for carrier in carriers}

    def route(self, number: str) -> Carrier | None:
        return next((c for c in self.carriers if c.reaches(number)), None)

    def get(self, name: str) -> Carrier | None:
        return self._by_name.get(name)
