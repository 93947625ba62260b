"""An SMPP carrier: messages out as submit_sm over several binds; receipts and texts back.

**Sending.** `SmppCarrier.submit` codes the text with the carrier's `TextCoding` (one
submit_sm per part, with a reference that rolls per destination) and sends the parts in
order, each on the bound transmitter with the most room in its window. It returns once
every part has its submit_sm_resp, so the message stays ``sending`` until the SMSC has it
all. Each accepted part is recorded at once (``smpp_parts``), so a submit retried after a
crash, a timeout or a partial failure sends only the parts not yet accepted, with the same
reference; and a retry that arrives while the first attempt is still running in this
process waits for that attempt instead of sending again.

What the SMSC answers decides what happens next:

* ESME_ROK: the part is accepted;
* ESME_RTHROTTLED, ESME_RMSGQFUL: that bind pauses and the part goes again, on another
  bind or after the pause, for up to ``submit_patience`` seconds; then
  `CarrierTemporaryError`, and the pipeline retries later;
* a lost connection or a response timeout: the part goes again the same way. If the SMSC
  had it after all, it goes out twice: SMPP cannot tell, and losing it would be worse;
* ESME_RSYSERR, ESME_RSUBMITFAIL, ESME_RX_T_APPN and the like: `CarrierTemporaryError`;
* anything else: `CarrierRejected`, with a Twilio code (`_REJECTIONS`), so the message
  fails, unless the router has another carrier for it;
* no bind up within ``bind_wait`` seconds: `CarrierUnavailable`, so the router tries the
  next carrier.

**Receipts.** Each part has its own receipt. A message is delivered when every part is;
undelivered or failed as soon as any part is (its error is the message's). A receipt is
matched to its part by id: exactly, else by the number the id spells in decimal or hex
(`receipts.id_keys`). A receipt may beat the submit_sm_resp of its part, or arrive on
another bind or at another worker than the one waiting for the response; one that matches
nothing yet is set aside (``smpp_waiting_receipts``) for up to ``receipt_wait`` seconds and
tried again whenever a part is recorded, and every second; a carrier starting reloads what
a previous run set aside. A receipt is answered ESME_ROK once what it changed has committed
(the part's outcome, the message's, or the receipt set aside), so a crash after the answer
loses nothing; ESME_RX_T_APPN if recording it failed, so the SMSC sends it again.

**Inbound texts.** A deliver_sm that is not a receipt is a text for one of our numbers.
Long ones are joined (`inbound.Reassembler`; after ``mo_timeout`` seconds what arrived is
handed over, marked); each part is stored (``smpp_inbound_parts``) before it is answered
and reloaded by a carrier starting, until its text is recorded (a crash between recording
the text and forgetting its parts hands the text over twice: at least once, never lost).
The answer says what became of it: ESME_ROK once recorded,
ESME_RINVDSTADR for a number nobody owns (the SMSC drops it), ESME_RX_T_APPN when
recording failed (the SMSC tries again), ESME_RMSGQFUL while too many long texts are
incomplete.

An SMPP text carries no media: media URLs are sent as lines of text after the body.
"""

import asyncio
import collections
import contextlib
import functools
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from verbal.carriers import smpp_status as bind_status
from verbal.carriers.base import (
    CarrierEvents,
    CarrierRejected,
    CarrierTemporaryError,
    CarrierUnavailable,
    InboundSms,
    OutboundSms,
    Receipt,
    SubmitResult,
)
from verbal.carriers.encoding import Alphabet
from verbal.carriers.smpp.client import (
    THROTTLE_STATUSES,
    Bind,
    BindConfig,
    BindMode,
    BindStatus,
    LinkError,
    Pulse,
)
from verbal.carriers.smpp.inbound import Fragment, PartsKey, Reassembler, ReassemblyFull
from verbal.carriers.smpp.pdu import (
    CommandStatus,
    DataSm,
    DeliverSm,
    SubmitSm,
    SubmitSmResp,
)
from verbal.carriers.smpp.receipts import (
    IdKeys,
    ParsedReceipt,
    ReceiptOutcome,
    id_keys,
    is_receipt,
    parse_receipt,
)
from verbal.carriers.smpp.text import TextCoding, decode_message, encode_message
from verbal.metrics import SMPP_RECEIPTS, SMPP_SUBMITS, labelled
from verbal.store.journal import Journal, Params, Statement
from verbal.store.models import SmppInboundPart, SmppPart, SmppWaitingReceipt
from verbal.tasks import cancel_and_wait

__all__ = ["SmppCarrier", "SmppCarrierConfig"]

log = logging.getLogger("verbal.carriers.smpp")

_S = CommandStatus
# Errors worth another try later, at this carrier (SMPP 3.4 §5.1.3, and smpp.md §4.2).
_TEMPORARY = frozenset(
    {
        _S.ESME_RSYSERR,
        _S.ESME_RSUBMITFAIL,
        _S.ESME_RX_T_APPN,
        _S.ESME_RINVBNDSTS,
        _S.ESME_RUNKNOWNERR,
    }
)
_UNKNOWN_HANDSET = 30005
_FILTERED = 30007
_UNKNOWN_ERROR = 30008
_QUEUE_OVERFLOW = 30001
# A refusal's Twilio code and what it means, for the message's error_message.
_REJECTIONS: dict[int, tuple[int, str]] = {
    _S.ESME_RINVDSTADR: (_UNKNOWN_HANDSET, "invalid destination address"),
    _S.ESME_RINVDSTTON: (_UNKNOWN_HANDSET, "invalid destination address type"),
    _S.ESME_RINVDSTNPI: (_UNKNOWN_HANDSET, "invalid destination numbering plan"),
    _S.ESME_RINVSRCADR: (_FILTERED, "the sender is not allowed"),
    _S.ESME_RINVSRCTON: (_FILTERED, "invalid sender address type"),
    _S.ESME_RINVSRCNPI: (_FILTERED, "invalid sender numbering plan"),
    _S.ESME_RX_P_APPN: (_FILTERED, "refused by the carrier's application"),
    _S.ESME_RX_R_APPN: (_FILTERED, "the carrier refuses all messages from this account"),
    _S.ESME_RINVMSGLEN: (_UNKNOWN_ERROR, "the carrier refused the message's length"),
}
# A rolling reference per destination, for this many destinations (the least recent go).
_MAX_REFERENCES = 50_000
# Receipts set aside for a message not recorded yet, at most.
_MAX_UNMATCHED = 10_000
# How often set-aside receipts and incomplete texts are looked at, at the least.
_SWEEP_SECONDS = 1.0
# The longest pause between two tries of one set-aside receipt.
_MAX_SWEEP_PAUSE = 16.0


@dataclass(slots=True)
class _SetAside:
    """A receipt whose part is not recorded (yet), and when to try it again."""

    parsed: ParsedReceipt
    keys: IdKeys
    expires: float
    due: float
    pause: float = _SWEEP_SECONDS / 2


@dataclass(frozen=True, slots=True)
class SmppCarrierConfig:
    """One carrier: its binds, how it wants texts coded, and how patient to be with it."""

    name: str
    # Every bind connects so; `mode` is overridden for TX+RX pairs.
    bind: BindConfig
    binds: int = 1
    # Bind a transmitter and a receiver per bind instead of one transceiver.
    pairs: bool = False
    coding: TextCoding = field(default_factory=TextCoding)
    # 1: a receipt on success and failure; 2: on failure only; 0: none (SMPP 3.4 §5.2.17).
    registered_delivery: int = 1
    service_type: str = ""
    # Destinations it reaches (empty: every number); the router ranks carriers by them.
    prefixes: tuple[str, ...] = ()
    # Held by one worker at a time (see `Settings.carriers[].singleton`).
    singleton: bool = False
    bind_wait: float = 5.0
    submit_patience: float = 10.0
    mo_timeout: float = 60.0
    receipt_wait: float = 60.0
    status_interval: float = 5.0


def _submit_address(number: str) -> tuple[int, int, str]:
    """TON, NPI and address for a number: international E.164, a short code or a name."""
    digits = number.removeprefix("+")
    if digits.isdigit() and (number.startswith("+") or len(digits) > 8):
        return 1, 1, digits  # international, ISDN (E.164)
    if digits.isdigit():
        return 0, 1, digits  # a short code: the SMSC knows it as it is
    return 5, 0, number  # alphanumeric


def _number(address: str, ton: int) -> str:
    """A received address as Verbal writes numbers: E.164 with its +, when it is one.

    TON 1 is international; many SMSCs send TON 0 (unknown) for the same full numbers, so
    digits longer than a short code count as international too.
    """
    digits = address.removeprefix("+")
    if digits.isdigit() and (address.startswith("+") or ton == 1 or (ton == 0 and len(digits) > 8)):
        return "+" + digits
    return address


def _text_of(sms: OutboundSms) -> str:
    return "\n".join(filter(None, (sms.body, *sms.media_urls)))


# The carrier's writes, recorded through the journal (verbal/store/journal.py).
_PART_COLUMNS = (
    "carrier",
    "message_sid",
    "part_id",
    "id_decimal",
    "id_hex",
    "sequence",
    "total",
    "reference",
    "created_at",
)
# SMSCs reuse ids once their counters wrap: the newest message owns an id, and its part
# starts with no receipt. One upsert, rather than a delete and an insert, per part.
RECORD_PART = Statement(
    f"INSERT INTO smpp_parts ({', '.join(_PART_COLUMNS)}) "
    f"VALUES ({', '.join(':' + c for c in _PART_COLUMNS)}) "
    "ON CONFLICT (carrier, part_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _PART_COLUMNS if c not in ("carrier", "part_id"))
    + ", state = NULL, outcome = NULL, error_code = NULL, error_message = NULL",
    order=55,
    times=("created_at",),
)
RECEIPT_ON_PART = Statement(
    "UPDATE smpp_parts SET state = :state, outcome = :outcome, error_code = :error_code, "
    "error_message = :error_message WHERE carrier = :carrier AND part_id = :part_id",
    order=56,
)
# Receipts set aside and parts of long texts: stored before they are answered ESME_ROK,
# forgotten once matched or joined (`_forget`).
_WAITING_COLUMNS = (
    "carrier",
    "receipt_id",
    "state",
    "outcome",
    "error_code",
    "error_message",
    "received_at",
)
FORGET_WAITING_RECEIPT = Statement(
    "DELETE FROM smpp_waiting_receipts WHERE carrier = :carrier AND receipt_id = :receipt_id",
    order=57,
)
STORE_WAITING_RECEIPT = Statement(
    f"INSERT INTO smpp_waiting_receipts ({', '.join(_WAITING_COLUMNS)}) "
    f"VALUES ({', '.join(':' + c for c in _WAITING_COLUMNS)})",
    order=58,
    times=("received_at",),
)
_INBOUND_COLUMNS = (
    "carrier",
    "sender",
    "recipient",
    "reference",
    "total",
    "sequence",
    "alphabet",
    "user_data",
    "received_at",
)
_TEXT_ROWS = (
    "carrier = :carrier AND sender = :sender AND recipient = :recipient "
    "AND reference = :reference AND total = :total"
)
FORGET_INBOUND_TEXT = Statement(f"DELETE FROM smpp_inbound_parts WHERE {_TEXT_ROWS}", order=57)
FORGET_INBOUND_PART = Statement(
    f"DELETE FROM smpp_inbound_parts WHERE {_TEXT_ROWS} AND sequence = :sequence", order=57
)
STORE_INBOUND_PART = Statement(
    f"INSERT INTO smpp_inbound_parts ({', '.join(_INBOUND_COLUMNS)}) "
    f"VALUES ({', '.join(':' + c for c in _INBOUND_COLUMNS)})",
    order=58,
    times=("received_at",),
)
# Parts remembered for their receipts; older ones are looked up in the database.
_REMEMBERED_PARTS = 100_000


@dataclass(eq=False, slots=True)
class _SentPart:
    """A part this process sent, with its receipt's outcome once known (what `smpp_parts`
    records, kept in memory to match receipts without a read)."""

    message_sid: str
    part_id: str
    sequence: int
    total: int
    reference: int
    state: str | None = None
    outcome: str | None = None
    error_code: int | None = None
    error_message: str | None = None


class SmppCarrier:
    """A `Carrier` over SMPP 3.4; see the module docstring."""

    def __init__(
        self,
        config: SmppCarrierConfig,
        sessions: async_sessionmaker[AsyncSession],
        journal: Journal,
        *,
        owner: str,
    ) -> None:
        self.config = config
        self.name = config.name
        self.singleton = config.singleton
        self._sessions = sessions
        self._journal = journal
        self._owner = owner
        self._changed = Pulse()
        self._wake = Pulse()
        self.binds = [
            Bind(
                bind_config,
                name=name,
                carrier=config.name,
                on_deliver=self._on_deliver,
                on_change=self._changed.fire,
            )
            for name, bind_config in self._bind_configs()
        ]
        self._transmitters = [bind for bind in self.binds if bind.transmits]
        self._events: CarrierEvents | None = None
        self._inflight: dict[str, asyncio.Task[SubmitResult]] = {}
        self._references: dict[str, int] = {}
        # Receipts for no part recorded yet, by id.
        self._unmatched: dict[str, _SetAside] = {}
        # Ids among them whose part was just recorded here: to be tried again at once.
        self._recheck: set[str] = set()
        # Ids of parts accepted and not recorded yet.
        self._recording: set[str] = set()
        # The parts this process sent lately, by id, and each message's: a receipt for one
        # of them is matched without a read (the rows are written through the journal).
        self._parts: collections.OrderedDict[str, _SentPart] = collections.OrderedDict()
        self._messages: dict[str, list[_SentPart]] = {}
        self._reassembler = Reassembler(config.mo_timeout)
        self._task: asyncio.Task[None] | None = None
        self._reported: dict[str, tuple[int, float]] = {}

    def _bind_configs(self) -> list[tuple[str, BindConfig]]:
        config = self.config
        if not config.pairs:
            return [(f"{config.name}#{i}", config.bind) for i in range(1, config.binds + 1)]
        configs = []
        for i in range(1, config.binds + 1):
            for mode in (BindMode.TRANSMITTER, BindMode.RECEIVER):
                configs.append((f"{config.name}#{i}-{mode.value}", replace(config.bind, mode=mode)))
        return configs

    # --- the carrier interface ------------------------------------------------------------

    def reaches(self, number: str) -> bool:
        return not self.config.prefixes or number.startswith(self.config.prefixes)

    async def start(self, events: CarrierEvents) -> None:
        self._events = events
        await bind_status.withdraw(self._sessions, self._owner, self.name)
        await self._reload()
        for bind in self.binds:
            await bind.start()
        self._task = asyncio.create_task(self._maintain(), name=f"smpp-{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        # Unbinding lets the SMSC answer what it has; parts it accepted are recorded by the
        # submits still running, given a moment. Those cut short are sent again later.
        await asyncio.gather(*(bind.stop() for bind in self.binds))
        sending = list(self._inflight.values())
        if sending:
            _, unfinished = await asyncio.wait(sending, timeout=self.config.bind.unbind_timeout)
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)
        with contextlib.suppress(Exception):
            await bind_status.withdraw(self._sessions, self._owner, self.name)

    async def submit(self, sms: OutboundSms) -> SubmitResult:
        task = self._inflight.get(sms.message_sid)
        if task is None:
            task = asyncio.create_task(self._send(sms), name=f"smpp-submit-{sms.message_sid}")
            self._inflight[sms.message_sid] = task
            task.add_done_callback(functools.partial(self._sent, sms.message_sid))
        # The pipeline may give up waiting (its submit timeout); the sending goes on, and
        # its outcome is recorded for the retry to find.
        return await asyncio.shield(task)

    def statuses(self) -> list[BindStatus]:
        return [bind.status() for bind in self.binds]

    # --- sending --------------------------------------------------------------------------

    def _sent(self, message_sid: str, task: asyncio.Task[SubmitResult]) -> None:
        if self._inflight.get(message_sid) is task:
            del self._inflight[message_sid]
        if not task.cancelled():
            task.exception()  # retrieved: a caller that stopped waiting must not be warned

    async def _send(self, sms: OutboundSms) -> SubmitResult:
        recorded = await self._recorded(sms)
        first = next(iter(recorded.values()), None)
        reference = first.reference if first else self._next_reference(sms.recipient)
        try:
            parts = encode_message(_text_of(sms), self.config.coding, reference)
        except ValueError as exc:
            message = f"{self.name} cannot carry this text: {exc}"
            raise CarrierRejected(_UNKNOWN_ERROR, message) from None
        if first is not None and first.total != len(parts):
            recorded = {}  # coded differently since (the settings changed): send it all
        source_ton, source_npi, source = _submit_address(sms.sender)
        dest_ton, dest_npi, destination = _submit_address(sms.recipient)
        ids: dict[int, str] = {}
        for sequence, part in enumerate(parts, 1):
            if sequence in recorded:
                ids[sequence] = recorded[sequence].part_id
                continue
            pdu = SubmitSm(
                service_type=self.config.service_type,
                source_addr_ton=source_ton,
                source_addr_npi=source_npi,
                source_addr=source,
                dest_addr_ton=dest_ton,
                dest_addr_npi=dest_npi,
                destination_addr=destination,
                esm_class=part.esm_class,
                registered_delivery=self.config.registered_delivery,
                data_coding=part.data_coding,
                short_message=part.short_message,
                tlvs=part.tlvs,
            )
            # An SMSC that gives no id still accepted the part; receipts can't match it.
            part_id = await self._submit_part(pdu) or f"{sms.message_sid}.{sequence}"
            self._recording.add(part_id)
            try:
                await self._record(sms.message_sid, part_id, sequence, len(parts), reference)
            finally:
                self._recording.discard(part_id)
            ids[sequence] = part_id
        return SubmitResult(ids[1])

    async def _submit_part(self, pdu: SubmitSm) -> str:
        """Send one part until the SMSC accepts it; its message_id. See the module doc."""
        give_up = time.monotonic() + self.config.submit_patience
        last: CarrierTemporaryError | None = None
        while (left := give_up - time.monotonic()) > 0 or last is None:
            bind = await self._pick_bind()
            try:
                response = await bind.submit(pdu, wait=max(left, 0.0))
            except LinkError as exc:
                if exc.sent:
                    labelled(SMPP_SUBMITS, self.name, "unanswered").inc()
                # "No room in time" says less than the throttle or loss that caused it.
                if exc.sent or last is None:
                    last = exc
                continue
            status = response.command_status
            name = CommandStatus.name_of(status)
            if status == CommandStatus.ESME_ROK:
                labelled(SMPP_SUBMITS, self.name, "ok").inc()
                return response.message_id if isinstance(response, SubmitSmResp) else ""
            if status in THROTTLE_STATUSES:
                labelled(SMPP_SUBMITS, self.name, "throttled").inc()
                last = CarrierTemporaryError(_QUEUE_OVERFLOW, f"{self.name} is throttling ({name})")
                continue
            if status in _TEMPORARY:
                labelled(SMPP_SUBMITS, self.name, "temporary").inc()
                message = f"{self.name} failed to take it ({name})"
                raise CarrierTemporaryError(_UNKNOWN_ERROR, message)
            labelled(SMPP_SUBMITS, self.name, "rejected").inc()
            code, meaning = _REJECTIONS.get(status, (_UNKNOWN_ERROR, "refused"))
            raise CarrierRejected(code, f"{self.name}: {meaning} ({name})")
        raise last

    async def _pick_bind(self) -> Bind:
        """The bound transmitter with the most room, waiting up to ``bind_wait`` for one."""
        give_up = time.monotonic() + self.config.bind_wait
        while True:
            bound = [bind for bind in self._transmitters if bind.bound]
            if bound:
                return min(bound, key=lambda bind: (not bind.has_room(), bind.load))
            left = give_up - time.monotonic()
            if left <= 0:
                why = next(
                    (b.status().last_error for b in self.binds if b.status().last_error), None
                )
                raise CarrierUnavailable(
                    _UNKNOWN_ERROR, f"no bind of {self.name} is up" + (f": {why}" if why else "")
                )
            await self._changed.wait(left)

    def _next_reference(self, destination: str) -> int:
        # pop and reinsert keeps the dict in least-recently-used order.
        reference = (self._references.pop(destination, random.randrange(0x10000)) + 1) % 0x10000
        self._references[destination] = reference
        if len(self._references) > _MAX_REFERENCES:
            del self._references[next(iter(self._references))]
        return reference

    async def _recorded(self, sms: OutboundSms) -> dict[int, SmppPart | _SentPart]:
        """The parts of `sms` the SMSC accepted already, by sequence: those this process
        remembers, else, for a message that may have gone out before (a resubmission, maybe
        by a process that died), those recorded in the database."""
        remembered = self._messages.get(sms.message_sid)
        if remembered:
            return {part.sequence: part for part in remembered}
        if not sms.resubmission:
            return {}
        await self._journal.flushed()  # parts recorded here a moment ago are on disk
        async with self._sessions() as session:
            rows = await session.scalars(
                select(SmppPart).where(
                    SmppPart.carrier == self.name, SmppPart.message_sid == sms.message_sid
                )
            )
            return {row.sequence: row for row in rows}

    async def _record(
        self, message_sid: str, part_id: str, sequence: int, total: int, reference: int
    ) -> None:
        """Record an accepted part: in memory for its receipt, and through the journal."""
        keys = id_keys(part_id)
        values = {
            "carrier": self.name,
            "message_sid": message_sid,
            "part_id": part_id,
            "id_decimal": keys.decimal,
            "id_hex": keys.hexadecimal,
            "sequence": sequence,
            "total": total,
            "reference": reference,
            "created_at": datetime.now(UTC),
        }
        self._journal.write(RECORD_PART, values)
        part = _SentPart(message_sid, part_id, sequence, total, reference)
        self._remember(part)
        if self._unmatched:
            self._note_recorded(part_id, keys)

    def _remember(self, part: _SentPart) -> None:
        old = self._parts.pop(part.part_id, None)
        if old is not None:
            self._forget_message(old.message_sid)
        self._parts[part.part_id] = part
        self._messages.setdefault(part.message_sid, []).append(part)
        while len(self._parts) > _REMEMBERED_PARTS:
            _, oldest = self._parts.popitem(last=False)
            self._forget_message(oldest.message_sid)

    def _forget_message(self, message_sid: str) -> None:
        for part in self._messages.pop(message_sid, ()):
            if self._parts.get(part.part_id) is part:
                del self._parts[part.part_id]

    def _note_recorded(self, part_id: str, keys: IdKeys) -> None:
        """Mark the set-aside receipts that may be for ``part_id``, and wake the upkeep."""
        numbers = {keys.decimal, keys.hexadecimal} - {None}
        for receipt_id, waiting in self._unmatched.items():
            theirs = waiting.keys
            if receipt_id == part_id or numbers & {theirs.decimal, theirs.hexadecimal}:
                self._recheck.add(receipt_id)
        if self._recheck:
            self._wake.fire()

    # --- what the SMSC sends ----------------------------------------------------------------

    async def _on_deliver(self, pdu: DeliverSm | DataSm) -> int:
        if is_receipt(pdu, self.config.coding):
            return await self._on_receipt(pdu)
        return await self._on_text(pdu)

    async def _on_receipt(self, pdu: DeliverSm | DataSm) -> int:
        parsed = parse_receipt(pdu, self.config.coding)
        if parsed is None:
            labelled(SMPP_RECEIPTS, self.name, "unreadable").inc()
            log.warning("%s: a receipt names no message or state: %r", self.name, pdu)
            return CommandStatus.ESME_ROK  # sending it again would not make it readable
        if parsed.outcome is ReceiptOutcome.PENDING:
            labelled(SMPP_RECEIPTS, self.name, "pending").inc()
            return CommandStatus.ESME_ROK
        # A receipt for a part accepted here and being recorded right now (it beat the
        # submit_sm_resp, or nearly) needs no lookup to know it must wait.
        if parsed.message_id in self._recording or not await self._apply(parsed):
            self._set_aside(parsed)
        # Answered once what it changed has committed, in the journal's batch: the part's
        # outcome, the message's, or the receipt set aside. A failure answers RX_T_APPN.
        # Shielded: a handler cancelled as its bind stops must not cancel the batch's future.
        await asyncio.shield(self._journal.flushed())
        return CommandStatus.ESME_ROK

    def _set_aside(self, parsed: ParsedReceipt) -> None:
        if len(self._unmatched) >= _MAX_UNMATCHED:
            oldest = next(iter(self._unmatched))
            del self._unmatched[oldest]
            self._forget(FORGET_WAITING_RECEIPT, {"carrier": self.name, "receipt_id": oldest})
            labelled(SMPP_RECEIPTS, self.name, "unmatched").inc()
            log.warning("%s: too many receipts waiting; dropped the one for %s", self.name, oldest)
        now = time.monotonic()
        self._unmatched[parsed.message_id] = _SetAside(
            parsed, id_keys(parsed.message_id), expires=now + self.config.receipt_wait, due=now
        )
        row = {"carrier": self.name, "receipt_id": parsed.message_id}
        # A receipt sent again replaces the one set aside.
        self._journal.write(FORGET_WAITING_RECEIPT, row)
        self._journal.write(
            STORE_WAITING_RECEIPT,
            {
                **row,
                "state": parsed.state,
                "outcome": parsed.outcome.value,
                "error_code": parsed.error_code,
                "error_message": parsed.error_message,
                "received_at": datetime.now(UTC),
            },
        )

    def _forget(self, statement: Statement, params: Params) -> None:
        """Delete stored rows once everything written so far has committed.

        Deletes run before inserts within a journal tick (their `order`), so a row stored
        and forgotten in one tick would stay; this puts the delete in a later tick.
        """

        def write(_: object) -> None:
            try:
                self._journal.write(statement, params)
            except RuntimeError:  # the journal closed (stopping): the row is reloaded
                log.info("%s: stopping; a stored row stays for the next start", self.name)

        self._journal.flushed().add_done_callback(write)

    async def _reload(self) -> None:
        """Take back what a previous run answered and left waiting: receipts set aside
        and parts of long texts. Every worker with this carrier reloads them all: applying
        a receipt twice changes nothing."""
        async with self._sessions() as session:
            receipts = await session.scalars(
                select(SmppWaitingReceipt)
                .where(SmppWaitingReceipt.carrier == self.name)
                .order_by(SmppWaitingReceipt.id)
            )
            parts = await session.scalars(
                select(SmppInboundPart)
                .where(SmppInboundPart.carrier == self.name)
                .order_by(SmppInboundPart.id)
            )
            now = time.monotonic()
            for row in receipts:
                parsed = ParsedReceipt(
                    row.receipt_id,
                    row.state,
                    ReceiptOutcome(row.outcome),
                    row.error_code,
                    row.error_message,
                )
                self._unmatched[row.receipt_id] = _SetAside(
                    parsed, id_keys(row.receipt_id), expires=now + self.config.receipt_wait, due=now
                )
            for part in parts:
                key = PartsKey(part.sender, part.recipient, part.reference, part.total)
                alphabet = Alphabet(part.alphabet) if part.alphabet is not None else None
                fragment = Fragment(key, part.sequence, alphabet, part.user_data)
                try:
                    self._reassembler.add(fragment, now)
                except ReassemblyFull:
                    log.warning("%s: too many stored parts of texts; one left aside", self.name)

    async def _apply(self, parsed: ParsedReceipt) -> bool:
        """Record a receipt on its part and report the message's outcome if it is known.

        False when no recorded part has its id (yet).
        """
        sent = self._parts.get(parsed.message_id)
        if sent is not None:
            return await self._apply_sent(sent, parsed)
        async with self._sessions.begin() as session:
            part = await self._find_part(session, parsed.message_id)
            if part is None:
                return False
            parts = [part]
            if part.total > 1:
                # Lock every part of the message, so that receipts for two parts recorded at
                # once still see each other's outcome.
                parts = list(
                    await session.scalars(
                        select(SmppPart)
                        .where(
                            SmppPart.message_sid == part.message_sid,
                            SmppPart.carrier == self.name,
                        )
                        .order_by(SmppPart.sequence)
                        .with_for_update()
                    )
                )
            part.state = parsed.state
            part.outcome = parsed.outcome.value
            part.error_code = parsed.error_code
            part.error_message = parsed.error_message
            receipt = self._verdict(parts)
        labelled(SMPP_RECEIPTS, self.name, "matched").inc()
        if receipt is not None:
            assert self._events is not None, "start() first"
            # Outside the transaction above: SQLite has one connection, and on_receipt
            # needs it. A crash in between leaves the part recorded and the message not;
            # the SMSC, unanswered, sends the receipt again and this runs again.
            await self._events.on_receipt(receipt)
        return True

    async def _apply_sent(self, sent: _SentPart, parsed: ParsedReceipt) -> bool:
        """`_apply` for a part this process sent: decided in memory."""
        sent.state = parsed.state
        sent.outcome = parsed.outcome.value
        sent.error_code = parsed.error_code
        sent.error_message = parsed.error_message
        self._journal.write(
            RECEIPT_ON_PART,
            {
                "carrier": self.name,
                "part_id": sent.part_id,
                "state": sent.state,
                "outcome": sent.outcome,
                "error_code": sent.error_code,
                "error_message": sent.error_message,
            },
        )
        labelled(SMPP_RECEIPTS, self.name, "matched").inc()
        parts = sorted(self._messages[sent.message_sid], key=lambda part: part.sequence)
        # The message's verdict waits for every part to be accepted (the last receipt to
        # come then decides it).
        receipt = self._verdict(parts) if len(parts) == sent.total else None  # type: ignore[arg-type]
        if receipt is not None:
            self._forget_message(sent.message_sid)
            assert self._events is not None, "start() first"
            await self._events.on_receipt(receipt)
        return True

    async def _find_part(self, session: AsyncSession, receipt_id: str) -> SmppPart | None:
        keys = id_keys(receipt_id)
        numbers = {keys.decimal, keys.hexadecimal} - {None}
        conditions = [SmppPart.part_id == receipt_id]
        if numbers:
            conditions += [SmppPart.id_decimal.in_(numbers), SmppPart.id_hex.in_(numbers)]
        rows = await session.scalars(
            select(SmppPart)
            .where(SmppPart.carrier == self.name, or_(*conditions))
            .order_by(SmppPart.id.desc())
            .limit(20)
        )

        def closeness(row: SmppPart) -> int:
            if row.part_id == receipt_id:
                return 0  # the same id
            if (keys.decimal and row.id_decimal == keys.decimal) or (
                keys.hexadecimal and row.id_hex == keys.hexadecimal
            ):
                return 1  # the same number in the same base (leading zeros, letter case)
            return 2  # the same number, in the other base

        # Newest first among equals: an id an SMSC reused belongs to its latest message.
        return min(rows, key=closeness, default=None)

    def _verdict(self, parts: Sequence[SmppPart]) -> Receipt | None:
        """The message's receipt, once its parts' receipts decide it (module docstring)."""
        first = parts[0]
        total = first.total
        failing = next((p for p in parts if p.outcome in ("undelivered", "failed")), None)
        if failing is not None:
            prefix = f"part {failing.sequence} of {total}: " if total > 1 else ""
            return Receipt(
                carrier=self.name,
                carrier_message_id=first.part_id,
                status=failing.outcome,  # type: ignore[arg-type]
                error_code=failing.error_code,
                error_message=prefix + (failing.error_message or ""),
                message_sid=first.message_sid,
            )
        delivered = sum(p.outcome == "delivered" for p in parts)
        if delivered < total:
            return None
        return Receipt(
            carrier=self.name,
            carrier_message_id=first.part_id,
            status="delivered",
            message_sid=first.message_sid,
        )

    async def _on_text(self, pdu: DeliverSm | DataSm) -> int:
        try:
            decoded = decode_message(pdu, self.config.coding)
        except ValueError as exc:
            log.warning("%s: an unreadable text (%s): %r", self.name, exc, pdu)
            return CommandStatus.ESME_RX_P_APPN
        sender = _number(pdu.source_addr, pdu.source_addr_ton)
        recipient = _number(pdu.destination_addr, pdu.dest_addr_ton)
        concat = decoded.concat
        if concat is None or concat.total == 1:
            text = decoded.text
            if text is None:
                text = decoded.user_data.decode("latin-1")
            return await self._inbound(sender, recipient, text)
        key = PartsKey(sender, recipient, concat.reference, concat.total)
        fragment = Fragment(key, concat.sequence, decoded.alphabet, decoded.user_data)
        try:
            whole = self._reassembler.add(fragment, time.monotonic())
        except ReassemblyFull:
            return CommandStatus.ESME_RMSGQFUL
        if whole is None:
            # Answered once stored (a failure answers RX_T_APPN, and the SMSC sends it again).
            await asyncio.shield(self._store_part(fragment))
            return CommandStatus.ESME_ROK
        status = await self._inbound(sender, recipient, whole.text)
        if status != CommandStatus.ESME_RX_T_APPN:
            self._discard_text(key)
        return status

    def _store_part(self, fragment: Fragment) -> asyncio.Future[None]:
        key = fragment.key
        row = {
            "carrier": self.name,
            "sender": key.sender,
            "recipient": key.recipient,
            "reference": key.reference,
            "total": key.total,
            "sequence": fragment.sequence,
        }
        # A part sent again replaces the one stored, as it does in the reassembler.
        self._journal.write(FORGET_INBOUND_PART, row)
        alphabet = fragment.alphabet.value if fragment.alphabet is not None else None
        return self._journal.write(
            STORE_INBOUND_PART,
            {
                **row,
                "alphabet": alphabet,
                "user_data": fragment.user_data,
                "received_at": datetime.now(UTC),
            },
        )

    def _discard_text(self, key: PartsKey) -> None:
        """Forget the parts of a text that was recorded (or refused for good)."""
        self._reassembler.discard(key)
        self._forget(
            FORGET_INBOUND_TEXT,
            {
                "carrier": self.name,
                "sender": key.sender,
                "recipient": key.recipient,
                "reference": key.reference,
                "total": key.total,
            },
        )

    async def _inbound(self, sender: str, recipient: str, text: str) -> int:
        assert self._events is not None, "start() first"
        try:
            await self._events.on_inbound(InboundSms(self.name, sender, recipient, text))
        except LookupError:
            log.info("%s: a text for %s, which no account owns, refused", self.name, recipient)
            return CommandStatus.ESME_RINVDSTADR
        except Exception:
            log.exception("%s: recording a text from %s failed", self.name, sender)
            return CommandStatus.ESME_RX_T_APPN
        return CommandStatus.ESME_ROK

    # --- upkeep -----------------------------------------------------------------------------

    async def _maintain(self) -> None:
        next_sweep = next_report = 0.0
        while True:
            try:
                now = time.monotonic()
                if now >= next_sweep:
                    # Every receipt set aside: its part may have been recorded by another
                    # worker; and texts whose missing parts are overdue.
                    next_sweep = now + _SWEEP_SECONDS
                    self._recheck.clear()
                    await self._retry_unmatched(list(self._unmatched), sweep=True)
                    await self._hand_over_incomplete()
                else:
                    ids, self._recheck = list(self._recheck), set()
                    await self._retry_unmatched(ids)
                if now >= next_report:
                    next_report = now + self.config.status_interval
                    await self._report()
            except Exception:
                log.exception("%s: upkeep failed; trying again", self.name)
            if not self._recheck:
                await self._wake.wait(max(0.0, next_sweep - time.monotonic()))

    async def _retry_unmatched(self, receipt_ids: list[str], *, sweep: bool = False) -> None:
        """Try receipts set aside again: those named, or in a sweep those due for it."""
        for receipt_id in receipt_ids:
            waiting = self._unmatched.get(receipt_id)
            now = time.monotonic()
            if waiting is None or (sweep and now < waiting.due):
                continue
            if await self._apply(waiting.parsed):
                self._drop_waiting(receipt_id)
            elif now >= waiting.expires:
                self._drop_waiting(receipt_id)
                labelled(SMPP_RECEIPTS, self.name, "unmatched").inc()
                log.warning(
                    "%s: receipt for %s matches no message sent here; dropped",
                    self.name,
                    receipt_id,
                )
            else:
                # A part recorded here is noticed at once (_note_recorded); sweeps are for
                # parts other workers record, and thin out: 1, 2, 4 ... seconds apart.
                waiting.pause = min(waiting.pause * 2, _MAX_SWEEP_PAUSE)
                waiting.due = now + waiting.pause

    def _drop_waiting(self, receipt_id: str) -> None:
        self._unmatched.pop(receipt_id, None)
        self._forget(FORGET_WAITING_RECEIPT, {"carrier": self.name, "receipt_id": receipt_id})

    async def _hand_over_incomplete(self) -> None:
        for message in self._reassembler.expired(time.monotonic()):
            key = message.key
            if not await self._parts_stored(key):
                # Joined by another worker since (it took back the stored parts at its
                # start, as this one did): it recorded the text and forgot the parts.
                log.info("%s: a text from %s was joined elsewhere", self.name, key.sender)
                self._reassembler.discard(key)
                continue
            log.info(
                "%s: a text from %s lacks parts %s after %gs; handing over what arrived",
                self.name,
                key.sender,
                list(message.missing),
                self.config.mo_timeout,
            )
            status = await self._inbound(key.sender, key.recipient, message.text)
            if status != CommandStatus.ESME_RX_T_APPN:
                self._discard_text(key)

    async def _parts_stored(self, key: PartsKey) -> bool:
        async with self._sessions() as session:
            found = await session.scalar(
                select(SmppInboundPart.id)
                .where(
                    SmppInboundPart.carrier == self.name,
                    SmppInboundPart.sender == key.sender,
                    SmppInboundPart.recipient == key.recipient,
                    SmppInboundPart.reference == key.reference,
                    SmppInboundPart.total == key.total,
                )
                .limit(1)
            )
        return found is not None

    async def _report(self) -> None:
        now = time.monotonic()
        reports = []
        for status in self.statuses():
            count, at = self._reported.get(status.name, (status.submitted, now))
            rate = (status.submitted - count) / (now - at) if now > at else 0.0
            self._reported[status.name] = (status.submitted, now)
            reports.append((status, rate))
        await bind_status.publish(self._sessions, self._owner, self.name, reports)
