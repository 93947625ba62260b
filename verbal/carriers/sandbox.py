"""The sandbox: an embedded simulated mobile network for development and tests.

Every number that starts with one of the configured prefixes is a virtual handset. A
message submitted to a handset lands in its inbox and earns a delivery receipt, unless an
outcome rule scripts something else, so every status path can be exercised without a real
carrier:

    deliver        inbox + receipt "delivered" (after `delay_seconds`)
    undeliverable  no inbox, receipt "undelivered" with `error_code` (default 30003)
    fail           the submit is refused: the message fails with `error_code` (default 30008)
    silent         inbox, but no receipt ever comes: the message stays "sent"
    timeout        the submit is never answered: the dispatcher times out and retries
    throttle       the submit is refused as temporary: the dispatcher backs off and retries

A handset can also send: its message arrives as an inbound message on the number it texts.
Rules and inboxes belong to an account: a rule scripts only that account's messages, and an
inbox shows only what that account's numbers sent. Deliveries and pending receipts are rows
in the database, so a restart loses none of them.

`SandboxNetwork` is the network itself: handsets, rules and the verdict they give, the
deliveries and inboxes. Messages reach it through *front doors*, which differ only in how
they speak: `SandboxCarrier` is the door of Verbal's own pipeline (a `Carrier`: outcomes
become carrier errors, receipts become `on_receipt` calls), and
`verbal.carriers.sandbox_smsc.SandboxSmsc` the door for any ESME over SMPP. A handset's
text goes out through the first door that serves the number it texts.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import heapq
import itertools
import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any, Protocol

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from verbal.carriers.base import (
    CarrierEvents,
    CarrierRejected,
    CarrierTemporaryError,
    InboundSms,
    OutboundSms,
    Receipt,
    ReceiptStatus,
    SubmitResult,
)
from verbal.carriers.globs import number_glob
from verbal.store.cache import TtlCache
from verbal.store.directory import Directory
from verbal.store.journal import Journal, Statement, json_text
from verbal.store.models import SandboxDelivery, SandboxRule
from verbal.tasks import cancel_and_wait

log = logging.getLogger("verbal.carriers.sandbox")

RECEIPT_BATCH = 500
# How long a process trusts its copy of an account's rules (changes it makes itself apply
# at once).
RULES_TTL_SECONDS = 2.0


class Outcome(enum.StrEnum):
    DELIVER = "deliver"
    UNDELIVERABLE = "undeliverable"
    FAIL = "fail"
    SILENT = "silent"
    TIMEOUT = "timeout"
    THROTTLE = "throttle"


class CallOutcome(enum.StrEnum):
    """What a handset does when it is called (rules of channel `voice`); `delay_seconds`
    is how long it rings first.

        answer     answers after ringing (`delay_seconds`, default 0)
        no-answer  rings until the caller gives up
        busy       is busy (SIP 486) after ringing
        decline    declines the call (SIP 603) after ringing
        fail       cannot be reached at all (the call fails at once)
    """

    ANSWER = "answer"
    NO_ANSWER = "no-answer"
    BUSY = "busy"
    DECLINE = "decline"
    FAIL = "fail"


CHANNELS = ("text", "voice")


DEFAULT_ERROR_CODES = {Outcome.UNDELIVERABLE: 30003, Outcome.FAIL: 30008}
ERROR_TEXT = {
    30003: "Unreachable destination handset",
    30005: "Unknown destination handset",
    30006: "Landline or unreachable carrier",
    30007: "Carrier violation",
    30008: "Unknown error",
}


@dataclass(frozen=True, slots=True)
class Rule:
    id: int
    pattern: str
    outcome: Outcome | CallOutcome
    delay_seconds: float
    error_code: int | None
    channel: str = "text"  # text rules script messages, voice rules calls

    def matches(self, number: str) -> bool:
        return number_glob(self.pattern).matches(number)


class NotAHandset(ValueError):
    pass


class NotServed(LookupError):
    """A handset texted a number that no front door serves for the account."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the network does with one message to a handset, as the account's rules say."""

    outcome: Outcome
    delay_seconds: float = 0.0
    # The 300xx code of an undeliverable or failed message.
    error_code: int | None = None

    @property
    def receipt(self) -> ReceiptStatus | None:
        """The receipt the message earns, if any."""
        return _RECEIPTS.get(self.outcome)

    @property
    def error_text(self) -> str:
        return ERROR_TEXT.get(self.error_code or 30008, "Unknown error")


_RECEIPTS: dict[Outcome, ReceiptStatus] = {
    Outcome.DELIVER: "delivered",
    Outcome.UNDELIVERABLE: "undelivered",
}


@dataclass(frozen=True, slots=True)
class HandsetText:
    """A handset texting ``to``, scripted by ``account_sid``."""

    account_sid: str
    handset: str
    to: str
    body: str
    media_urls: tuple[str, ...] = ()


class FrontDoor(Protocol):
    """How messages enter and leave the network (see the module docstring)."""

    async def serves(self, account_sid: str, number: str) -> bool:
        """Whether texts to ``number``, scripted by ``account_sid``, leave through this door."""
        ...

    async def handset_text(self, text: HandsetText) -> str:
        """Take a handset's text out of the network; returns the id it was given."""
        ...


@dataclass(frozen=True, slots=True)
class Delivery:
    """A message the network took, as its `sandbox_deliveries` row records it. A plain value
    rather than the ORM row: the sandbox carrier makes one per message and writes it through
    the journal, and building an ORM instance cost more than the rest of the submit."""

    message_sid: str
    carrier_message_id: str
    account_sid: str
    handset: str
    sender: str
    body: str
    media_urls: tuple[str, ...]
    outcome: str
    in_inbox: bool
    visible_at: float
    receipt_status: str | None
    receipt_error_code: int | None
    receipt_due: float | None
    receipt_reported: bool

    def row(self) -> SandboxDelivery:
        """The ORM row, for a caller that writes it in a session of its own."""
        values = dict(zip(_DELIVERY_FIELDS, _delivery_values(self), strict=True))
        values["media_urls"] = list(self.media_urls)
        return SandboxDelivery(**values)


class SandboxNetwork:
    """The simulated network: handsets, rules, deliveries and inboxes. See the module doc."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        prefixes: list[str],
        directory: Directory,
    ) -> None:
        self.sessions = sessions
        self.prefixes = tuple(prefixes)
        self._directory = directory
        self._doors: list[FrontDoor] = []
        self._rules_cache: TtlCache[list[Rule]] = TtlCache(RULES_TTL_SECONDS)

    def add_door(self, door: FrontDoor) -> None:
        """Open a front door; doors are asked in the order they were added."""
        self._doors.append(door)

    def reaches(self, number: str) -> bool:
        return number.startswith(self.prefixes)

    def check_handset(self, number: str) -> None:
        if not self.reaches(number):
            raise NotAHandset(
                f"{number} is not a sandbox handset; handsets start with "
                + " or ".join(self.prefixes)
            )

    # -- messages into the network ---------------------------------------------------------

    async def verdict(
        self, account_sid: str, handset: str, session: AsyncSession | None = None
    ) -> Verdict:
        """The fate of ``account_sid``'s next message to ``handset``: its first matching
        rule, or delivery. A caller inside a transaction passes its session, which reads
        the rules if they are not cached (SQLite has one connection: another would wait
        for this transaction forever)."""
        rules = await self.rules(account_sid, session)
        rule = next((r for r in rules if r.channel == "text" and r.matches(handset)), None)
        if rule is None or not isinstance(rule.outcome, Outcome):
            return Verdict(Outcome.DELIVER)
        code = rule.error_code or DEFAULT_ERROR_CODES.get(rule.outcome)
        return Verdict(rule.outcome, rule.delay_seconds, code)

    async def call_verdict(self, account_sid: str, handset: str) -> tuple[CallOutcome, float]:
        """What ``handset`` does when ``account_sid`` calls it, and after how many seconds
        of ringing: its first matching voice rule, or answering at once."""
        rules = await self.rules(account_sid)
        for rule in rules:
            if rule.channel == "voice" and rule.matches(handset):
                return CallOutcome(rule.outcome), rule.delay_seconds
        return CallOutcome.ANSWER, 0.0

    @staticmethod
    def delivery(
        sms: OutboundSms, carrier_id: str, verdict: Verdict, *, receipt_pending: bool
    ) -> Delivery:
        """What the network records of taking ``sms`` (a `sandbox_deliveries` row).

        ``receipt_pending`` leaves the receipt for `SandboxCarrier`'s receipt loop to
        report; a door that hands its receipts over itself passes False.
        """
        now = time.time()
        receipt = verdict.receipt
        return Delivery(
            message_sid=sms.message_sid,
            carrier_message_id=carrier_id,
            account_sid=sms.account_sid,
            handset=sms.recipient,
            sender=sms.sender,
            body=sms.body,
            media_urls=tuple(sms.media_urls),
            outcome=verdict.outcome.value,
            in_inbox=verdict.outcome in (Outcome.DELIVER, Outcome.SILENT),
            visible_at=now + verdict.delay_seconds,
            receipt_status=receipt,
            receipt_error_code=verdict.error_code if receipt == "undelivered" else None,
            receipt_due=now + verdict.delay_seconds if receipt else None,
            receipt_reported=not (receipt and receipt_pending),
        )

    # -- messages out of the network --------------------------------------------------------

    async def owner(self, number: str, session: AsyncSession | None = None) -> str | None:
        """The SID of the account that holds ``number`` as a Verbal number, if one does.

        From the directory's caches, which the pipeline reads the same number's owner from
        a moment later (`Messaging.on_inbound`): a query per handset's text was a third of
        the API process's CPU in `bench/app_round_trip.py`. A caller inside a transaction
        passes its session (see `Directory.number_owner`)."""
        account_id = await self._directory.number_owner(number, session)
        if account_id is None:
            return None
        account = await self._directory.account_by_id(account_id, session)
        return account.sid if account is not None else None

    async def send_from_handset(
        self,
        handset: str,
        to: str,
        body: str,
        media_urls: tuple[str, ...] = (),
        *,
        account_sid: str,
    ) -> str:
        """``handset`` texts ``to``, on ``account_sid``'s script; returns the id of the
        message the serving door made of it. Raises `NotServed` when no door serves ``to``
        for that account."""
        self.check_handset(handset)
        door = None
        for candidate in self._doors:
            if await candidate.serves(account_sid, to):
                door = candidate
                break
        if door is None:
            raise NotServed(f"{to} is not one of this account's numbers")
        return await door.handset_text(HandsetText(account_sid, handset, to, body, media_urls))

    async def inbox(
        self, account_sid: str, handset: str, limit: int = 100
    ) -> list[SandboxDelivery]:
        """Messages the handset has received from `account_sid`'s numbers, newest first."""
        self.check_handset(handset)
        async with self.sessions() as session:
            rows = await session.scalars(
                select(SandboxDelivery)
                .where(
                    SandboxDelivery.account_sid == account_sid,
                    SandboxDelivery.handset == handset,
                    SandboxDelivery.in_inbox,
                    SandboxDelivery.visible_at <= time.time(),
                )
                .order_by(SandboxDelivery.id.desc())
                .limit(limit)
            )
            return list(rows)

    # -- rules -------------------------------------------------------------------------------

    async def rules(self, account_sid: str, session: AsyncSession | None = None) -> list[Rule]:
        """The account's rules, in the order they are tried.

        Cached: every message to a handset asks for them. A change made here clears the
        account's entry at once; one made by another process (a second node on PostgreSQL)
        is seen within `RULES_TTL_SECONDS`.
        """

        async def load() -> list[Rule]:
            if session is not None:
                return await self._rules(session, account_sid)
            async with self.sessions() as own:
                return await self._rules(own, account_sid)

        rules = await self._rules_cache.get(account_sid, load, shared=session is None)
        return rules or []

    async def add_rule(
        self,
        account_sid: str,
        pattern: str,
        outcome: Outcome | CallOutcome,
        delay_seconds: float = 0.0,
        error_code: int | None = None,
        channel: str = "text",
    ) -> Rule:
        if channel not in CHANNELS:
            raise ValueError(f"a rule's channel is text or voice, not {channel!r}")
        expected = CallOutcome if channel == "voice" else Outcome
        if not isinstance(outcome, expected):
            raise ValueError(f"{outcome.value!r} is not an outcome of a {channel} rule")
        self._rules_cache.forget(account_sid)
        async with self.sessions.begin() as session:
            row = SandboxRule(
                account_sid=account_sid,
                pattern=pattern,
                outcome=outcome.value,
                delay_seconds=delay_seconds,
                error_code=error_code,
                channel=channel,
            )
            session.add(row)
            await session.flush()
        self._rules_cache.forget(account_sid)
        return self._rule(row)

    async def delete_rule(self, account_sid: str, rule_id: int | None = None) -> int:
        """Delete one rule, or all the account's when `rule_id` is None; returns how many."""
        statement = delete(SandboxRule).where(SandboxRule.account_sid == account_sid)
        if rule_id is not None:
            statement = statement.where(SandboxRule.id == rule_id)
        async with self.sessions.begin() as session:
            result: Any = await session.execute(statement)
        self._rules_cache.forget(account_sid)
        return int(result.rowcount or 0)

    async def _rules(self, session: AsyncSession, account_sid: str) -> list[Rule]:
        rows = await session.scalars(
            select(SandboxRule)
            .where(SandboxRule.account_sid == account_sid)
            .order_by(SandboxRule.id)
        )
        return [self._rule(row) for row in rows]

    @staticmethod
    def _rule(row: SandboxRule) -> Rule:
        outcome = CallOutcome(row.outcome) if row.channel == "voice" else Outcome(row.outcome)
        return Rule(row.id, row.pattern, outcome, row.delay_seconds, row.error_code, row.channel)


# The sandbox carrier's writes, recorded through the journal (verbal/store/journal.py).
_DELIVERY_COLUMNS = (
    "message_sid",
    "carrier_message_id",
    "account_sid",
    "handset",
    "sender",
    "body",
    "media_urls",
    "outcome",
    "in_inbox",
    "visible_at",
    "receipt_status",
    "receipt_error_code",
    "receipt_due",
    "receipt_reported",
    "submitted_at",
)
_DELIVERY_FIELDS = _DELIVERY_COLUMNS[:-1]  # submitted_at is the database's clock
_delivery_values = attrgetter(*_DELIVERY_FIELDS)
INSERT_DELIVERY = Statement(
    f"INSERT INTO sandbox_deliveries ({', '.join(_DELIVERY_COLUMNS)}) "
    f"VALUES ({', '.join(':' + c for c in _DELIVERY_COLUMNS)})",
    order=50,
    times=("submitted_at",),
)
MARK_REPORTED = Statement(
    "UPDATE sandbox_deliveries SET receipt_reported = :reported WHERE message_sid = :message_sid",
    order=60,
)
# A receipt still unreported this long after it fell due was owed by a process that died
# (the live one reports from memory, at once): the stale sweep reports it.
STALE_RECEIPT_SECONDS = 10.0
STALE_SWEEP_SECONDS = 30.0


class SandboxCarrier:
    """The network's front door for Verbal's own pipeline: the sandbox as a `Carrier`.

    Submissions are decided in memory (the account's rules are cached) and recorded through
    the journal; the receipts they earn wait in a heap in memory until due. The delivery row
    holds each pending receipt too, so a process that starts reports what a dead one owed
    (at start, then by a periodic sweep of stale rows, which on PostgreSQL locks what it
    takes, so workers do not report the same receipts).
    """

    name = "sandbox"
    singleton = False  # every worker may hand messages to the simulated network

    def __init__(
        self,
        network: SandboxNetwork,
        journal: Journal,
        *,
        shared_database: bool = False,
    ) -> None:
        self.network = network
        self._sessions = network.sessions
        self._journal = journal
        self._shared = shared_database
        self._events: CarrierEvents | None = None
        self._due: list[tuple[float, int, Receipt]] = []
        self._order = itertools.count()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        network.add_door(self)

    # -- the carrier interface ------------------------------------------------------------

    def reaches(self, number: str) -> bool:
        return self.network.reaches(number)

    async def start(self, events: CarrierEvents) -> None:
        self._events = events
        self._task = asyncio.create_task(self._report_receipts(), name="sandbox-receipts")

    def take_texts(self, events: CarrierEvents) -> None:
        """Take handsets' texts to Verbal's numbers without carrying messages: for the API
        process of a two-process server (`verbal/processes.py`), which serves the sandbox
        API while the pipeline process runs this carrier. `events.on_inbound` records each
        text with its app's job, which the pipeline's workers run."""
        self._events = events

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None

    async def submit(self, sms: OutboundSms) -> SubmitResult:
        if sms.resubmission:
            # Taken over after a crash: the network may have the message already, and then
            # the answer is the one the first submission got (no second copy).
            async with self._sessions() as session:
                known = await self._known_submission(session, sms.message_sid)
            if known is not None:
                return SubmitResult(known)
        verdict = await self.network.verdict(sms.account_sid, sms.recipient)
        if verdict.outcome == Outcome.FAIL:
            raise CarrierRejected(verdict.error_code or 30008, verdict.error_text)
        if verdict.outcome == Outcome.THROTTLE:
            raise CarrierTemporaryError(30001, "Sandbox carrier is throttling")
        if verdict.outcome == Outcome.TIMEOUT:
            await asyncio.Event().wait()  # never answers; the caller's timeout ends this
        carrier_id = "SB" + secrets.token_hex(12)
        delivery = self.network.delivery(sms, carrier_id, verdict, receipt_pending=True)
        self._journal.write(INSERT_DELIVERY, _delivery_params(delivery))
        if delivery.receipt_status is not None and delivery.receipt_due is not None:
            receipt = _receipt_of(delivery)
            heapq.heappush(self._due, (delivery.receipt_due, next(self._order), receipt))
            self._wake.set()
        return SubmitResult(carrier_id)

    @staticmethod
    async def _known_submission(session: AsyncSession, message_sid: str) -> str | None:
        return await session.scalar(
            select(SandboxDelivery.carrier_message_id).where(
                SandboxDelivery.message_sid == message_sid
            )
        )

    # -- handsets' texts to Verbal's numbers ----------------------------------------------

    async def serves(self, account_sid: str, number: str) -> bool:
        """Texts to the account's own Verbal numbers arrive through Verbal's pipeline."""
        return await self.network.owner(number) == account_sid

    async def handset_text(self, text: HandsetText) -> str:
        assert self._events is not None, "start() first"
        return await self._events.on_inbound(
            InboundSms(
                carrier=self.name,
                sender=text.handset,
                recipient=text.to,
                body=text.body,
                media_urls=text.media_urls,
                carrier_message_id="SB" + secrets.token_hex(12),
            )
        )

    # -- receipts ------------------------------------------------------------------------

    async def _report_receipts(self) -> None:
        sweep_at = 0.0  # at once: what a previous run left unreported
        while True:
            now = time.time()
            if now >= sweep_at:
                try:
                    await self._sweep(stale_before=now - STALE_RECEIPT_SECONDS * (sweep_at > 0))
                except Exception:
                    log.exception("reporting left-over sandbox receipts failed; retrying")
                sweep_at = now + STALE_SWEEP_SECONDS
            while self._due and self._due[0][0] <= time.time():
                _, _, receipt = heapq.heappop(self._due)
                try:
                    await self._report(receipt)
                except Exception:
                    log.exception("reporting the receipt of %s failed", receipt.message_sid)
            self._wake.clear()
            timeout = sweep_at - time.time()
            if self._due:
                timeout = min(timeout, self._due[0][0] - time.time())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, timeout)):
                    await self._wake.wait()

    async def _report(self, receipt: Receipt) -> None:
        assert self._events is not None, "start() first"
        # Marked reported only after the message took it (the journal keeps that order),
        # so a crash in between reports it again, which the message's state absorbs.
        await self._events.on_receipt(receipt)
        self._journal.write(MARK_REPORTED, {"reported": True, "message_sid": receipt.message_sid})

    async def _sweep(self, stale_before: float) -> None:
        """Report, from the database, receipts that fell due before `stale_before` and are
        still unreported: the first sweep takes everything a previous run owed."""
        while True:
            query = (
                select(SandboxDelivery)
                .where(
                    ~SandboxDelivery.receipt_reported, SandboxDelivery.receipt_due <= stale_before
                )
                .order_by(SandboxDelivery.receipt_due)
                .limit(RECEIPT_BATCH)
            )
            if self._shared:
                # Rows stay locked until they are marked, so other workers skip them.
                async with self._sessions.begin() as session:
                    due = (await session.scalars(query.with_for_update(skip_locked=True))).all()
                    for delivery in due:
                        await self._events.on_receipt(_receipt_of(delivery))  # type: ignore[union-attr]
                    await self._mark_reported(session, due)
            else:
                async with self._sessions() as session:
                    due = (await session.scalars(query)).all()
                for delivery in due:
                    await self._report(_receipt_of(delivery))
                await self._journal.flushed()
            if len(due) < RECEIPT_BATCH:
                return

    @staticmethod
    async def _mark_reported(session: AsyncSession, due: Sequence[SandboxDelivery]) -> None:
        if due:
            await session.execute(
                update(SandboxDelivery)
                .where(SandboxDelivery.id.in_([d.id for d in due]))
                .values(receipt_reported=True)
            )


def _receipt_of(delivery: SandboxDelivery | Delivery) -> Receipt:
    code = delivery.receipt_error_code
    return Receipt(
        carrier=SandboxCarrier.name,
        carrier_message_id=delivery.carrier_message_id,
        status=delivery.receipt_status,  # type: ignore[arg-type]
        error_code=code,
        error_message=ERROR_TEXT.get(code) if code else None,
        message_sid=delivery.message_sid,
    )


def _delivery_params(delivery: Delivery) -> dict[str, Any]:
    params = dict(zip(_DELIVERY_FIELDS, _delivery_values(delivery), strict=True))
    params["media_urls"] = json_text(list(delivery.media_urls))
    params["submitted_at"] = datetime.now(UTC)
    return params
