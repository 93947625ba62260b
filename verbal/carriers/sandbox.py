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
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import fnmatch
import logging
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from verbal.carriers.base import (
    CarrierEvents,
    CarrierRejected,
    CarrierTemporaryError,
    InboundSms,
    OutboundSms,
    Receipt,
    SubmitResult,
)
from verbal.store.models import SandboxDelivery, SandboxRule

log = logging.getLogger("verbal.carriers.sandbox")

RECEIPT_BATCH = 500


class Outcome(enum.StrEnum):
    DELIVER = "deliver"
    UNDELIVERABLE = "undeliverable"
    FAIL = "fail"
    SILENT = "silent"
    TIMEOUT = "timeout"
    THROTTLE = "throttle"


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
    outcome: Outcome
    delay_seconds: float
    error_code: int | None

    def matches(self, number: str) -> bool:
        return fnmatch.fnmatchcase(number, self.pattern)


class NotAHandset(ValueError):
    pass


class SandboxCarrier:
    name = "sandbox"

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        prefixes: list[str],
        *,
        idle_poll_seconds: float = 1.0,
        shared_database: bool = False,
    ) -> None:
        self._sessions = sessions
        self.prefixes = tuple(prefixes)
        # With several workers on one PostgreSQL, each takes its own receipts to report.
        self._shared = shared_database
        self._idle_poll = idle_poll_seconds
        self._events: CarrierEvents | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- the carrier interface ------------------------------------------------------------

    def reaches(self, number: str) -> bool:
        return number.startswith(self.prefixes)

    async def start(self, events: CarrierEvents) -> None:
        self._events = events
        self._task = asyncio.create_task(self._report_receipts(), name="sandbox-receipts")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def submit(self, sms: OutboundSms) -> SubmitResult:
        try:
            return await self._submit(sms)
        except IntegrityError:
            # Two claims of one job raced (a lease ran out mid-submit): the first one won.
            async with self._sessions() as session:
                return SubmitResult(await self._known_submission(session, sms.message_sid) or "")

    async def _submit(self, sms: OutboundSms) -> SubmitResult:
        async with self._sessions.begin() as session:
            # A resubmission after a crash gets the answer the first submission got.
            known = await self._known_submission(session, sms.message_sid)
            if known is not None:
                return SubmitResult(known)
            rule = await self._rule_for(session, sms.account_sid, sms.recipient)
            outcome = rule.outcome if rule else Outcome.DELIVER
            delay = rule.delay_seconds if rule else 0.0
            code = (rule.error_code if rule else None) or DEFAULT_ERROR_CODES.get(outcome)
            if outcome == Outcome.FAIL:
                raise CarrierRejected(code or 30008, ERROR_TEXT.get(code or 30008, "Rejected"))
            if outcome == Outcome.THROTTLE:
                raise CarrierTemporaryError(30001, "Sandbox carrier is throttling")
            if outcome != Outcome.TIMEOUT:
                carrier_id = "SB" + secrets.token_hex(12)
                session.add(self._delivery(sms, carrier_id, outcome, delay, code))
        if outcome == Outcome.TIMEOUT:
            await asyncio.Event().wait()  # never answers; the caller's timeout ends this
        self._wake.set()
        return SubmitResult(carrier_id)

    @staticmethod
    async def _known_submission(session: AsyncSession, message_sid: str) -> str | None:
        return await session.scalar(
            select(SandboxDelivery.carrier_message_id).where(
                SandboxDelivery.message_sid == message_sid
            )
        )

    @staticmethod
    def _delivery(
        sms: OutboundSms, carrier_id: str, outcome: Outcome, delay: float, code: int | None
    ) -> SandboxDelivery:
        now = time.time()
        receipt = {Outcome.DELIVER: "delivered", Outcome.UNDELIVERABLE: "undelivered"}
        return SandboxDelivery(
            message_sid=sms.message_sid,
            carrier_message_id=carrier_id,
            account_sid=sms.account_sid,
            handset=sms.recipient,
            sender=sms.sender,
            body=sms.body,
            media_urls=list(sms.media_urls),
            outcome=outcome.value,
            in_inbox=outcome in (Outcome.DELIVER, Outcome.SILENT),
            visible_at=now + delay,
            receipt_status=receipt.get(outcome),
            receipt_error_code=code if outcome == Outcome.UNDELIVERABLE else None,
            receipt_due=now + delay if outcome in receipt else None,
            receipt_reported=outcome not in receipt,
        )

    # -- receipts ------------------------------------------------------------------------

    def _due(self, now: float) -> Any:
        query = (
            select(SandboxDelivery)
            .where(~SandboxDelivery.receipt_reported, SandboxDelivery.receipt_due <= now)
            .order_by(SandboxDelivery.receipt_due)
            .limit(RECEIPT_BATCH)
        )
        # Rows stay locked until they are marked reported, so other workers skip them; if
        # this process dies first, the locks go with it and another worker reports them.
        return query.with_for_update(skip_locked=True) if self._shared else query

    async def _report_batch(self) -> int:
        """Report one batch of due receipts; return how many there were.

        A receipt is marked reported only after its message took it, so a crash in between
        reports it again, which the message's state machine absorbs.
        """
        if self._shared:
            async with self._sessions.begin() as session:
                due = (await session.scalars(self._due(time.time()))).all()
                await self._report(due)
                await self._mark_reported(session, due)
        else:
            # One process owns a SQLite file, and its single connection must be free for
            # the messages' own transactions while receipts are reported.
            async with self._sessions() as session:
                due = (await session.scalars(self._due(time.time()))).all()
            await self._report(due)
            async with self._sessions.begin() as session:
                await self._mark_reported(session, due)
        return len(due)

    async def _report(self, due: Sequence[SandboxDelivery]) -> None:
        assert self._events is not None, "start() first"
        for delivery in due:
            code = delivery.receipt_error_code
            await self._events.on_receipt(
                Receipt(
                    carrier=self.name,
                    carrier_message_id=delivery.carrier_message_id,
                    status=delivery.receipt_status,  # type: ignore[arg-type]
                    error_code=code,
                    error_message=ERROR_TEXT.get(code) if code else None,
                    message_sid=delivery.message_sid,
                )
            )

    @staticmethod
    async def _mark_reported(session: AsyncSession, due: Sequence[SandboxDelivery]) -> None:
        if due:
            await session.execute(
                update(SandboxDelivery)
                .where(SandboxDelivery.id.in_([d.id for d in due]))
                .values(receipt_reported=True)
            )

    async def _report_receipts(self) -> None:
        while True:
            try:
                next_due = await self._report_due()
            except Exception:
                log.exception("reporting sandbox receipts failed; retrying")
                next_due = None
            self._wake.clear()
            timeout = self._idle_poll
            if next_due is not None:
                timeout = max(0.0, min(timeout, next_due - time.time()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _report_due(self) -> float | None:
        """Report every receipt that is due; return when the next one falls due."""
        while await self._report_batch() == RECEIPT_BATCH:
            pass
        async with self._sessions() as session:
            return await session.scalar(
                select(func.min(SandboxDelivery.receipt_due)).where(
                    ~SandboxDelivery.receipt_reported
                )
            )

    # -- what the sandbox API offers ------------------------------------------------------

    def check_handset(self, number: str) -> None:
        if not self.reaches(number):
            raise NotAHandset(
                f"{number} is not a sandbox handset; handsets start with "
                + " or ".join(self.prefixes)
            )

    async def inbox(
        self, account_sid: str, handset: str, limit: int = 100
    ) -> list[SandboxDelivery]:
        """Messages the handset has received from `account_sid`'s numbers, newest first."""
        self.check_handset(handset)
        async with self._sessions() as session:
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

    async def send_from_handset(
        self, handset: str, to: str, body: str, media_urls: tuple[str, ...] = ()
    ) -> str:
        """A handset texts `to`; returns the SID of the inbound message Verbal recorded."""
        self.check_handset(handset)
        assert self._events is not None, "start() first"
        return await self._events.on_inbound(
            InboundSms(
                carrier=self.name,
                sender=handset,
                recipient=to,
                body=body,
                media_urls=media_urls,
                carrier_message_id="SB" + secrets.token_hex(12),
            )
        )

    async def rules(self, account_sid: str) -> list[Rule]:
        async with self._sessions() as session:
            return await self._rules(session, account_sid)

    async def add_rule(
        self,
        account_sid: str,
        pattern: str,
        outcome: Outcome,
        delay_seconds: float = 0.0,
        error_code: int | None = None,
    ) -> Rule:
        async with self._sessions.begin() as session:
            row = SandboxRule(
                account_sid=account_sid,
                pattern=pattern,
                outcome=outcome.value,
                delay_seconds=delay_seconds,
                error_code=error_code,
            )
            session.add(row)
            await session.flush()
            return self._rule(row)

    async def delete_rule(self, account_sid: str, rule_id: int | None = None) -> int:
        """Delete one rule, or all the account's when `rule_id` is None; returns how many."""
        statement = delete(SandboxRule).where(SandboxRule.account_sid == account_sid)
        if rule_id is not None:
            statement = statement.where(SandboxRule.id == rule_id)
        async with self._sessions.begin() as session:
            result: Any = await session.execute(statement)
        return int(result.rowcount or 0)

    async def _rules(self, session: AsyncSession, account_sid: str) -> list[Rule]:
        rows = await session.scalars(
            select(SandboxRule)
            .where(SandboxRule.account_sid == account_sid)
            .order_by(SandboxRule.id)
        )
        return [self._rule(row) for row in rows]

    async def _rule_for(self, session: AsyncSession, account_sid: str, number: str) -> Rule | None:
        rules = await self._rules(session, account_sid)
        return next((rule for rule in rules if rule.matches(number)), None)

    @staticmethod
    def _rule(row: SandboxRule) -> Rule:
        return Rule(row.id, row.pattern, Outcome(row.outcome), row.delay_seconds, row.error_code)
