"""The message pipeline: accept, submit, receipts, callbacks, inbound messages.

Work moves in memory; the database records it (docs/architecture.md, "The message path").
An accepted message becomes a `MessageRecord` in this process's table of live messages and
its SID goes onto the submit queue; every status change is computed by the pure state
machine (`machine.advance`) and written to the journal as one guarded UPDATE plus its
timeline rows, without waiting; the callbacks a change owes go to the callback stage, which
delivers each message's in order. Only acceptance waits for its commit: a 201 means the
message is on disk.

The `messages` row is the outbox (`ledger.py`): while this process works on a message it
holds the row's lease; work that must wait (a retry minutes away, a scheduled send, a
singleton carrier another process holds) is parked in the row with the time it is due, and
whoever claims it then (this process or another) picks it up. After a crash the rows say
exactly what is left: submissions, and callbacks not yet settled.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, Protocol
from urllib.parse import urlsplit

from sqlalchemy import delete, event, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from verbal import ids
from verbal.carriers.base import (
    Carrier,
    CarrierRejected,
    CarrierRouter,
    CarrierTemporaryError,
    CarrierUnavailable,
    InboundSms,
    OutboundSms,
    Receipt,
    SubmitResult,
)
from verbal.carriers.encoding import analyze
from verbal.dispatch.backoff import backoff_delay
from verbal.dispatch.queue import JobQueue
from verbal.dispatch.ratelimit import Buckets
from verbal.messaging import ledger
from verbal.messaging.addresses import InvalidNumber, to_e164
from verbal.messaging.callbacks import (
    REDELIVERY_JOB,
    CallbackStage,
    owed_callback,
    signed_request,
)
from verbal.messaging.errors import (
    CallbackNotFound,
    MessageNotFound,
    MessageRefused,
    NumberNotInService,
    Refusal,
)
from verbal.messaging.machine import (
    TO_SUBMIT,
    MessageRecord,
    TimelineEntry,
    advance,
    settle_callback,
)
from verbal.messaging.optouts import Keyword, OptOuts, is_service, keyword, reply
from verbal.messaging.pools import pick_sender
from verbal.messaging.states import Status
from verbal.metrics import CARRIER_ERRORS, MESSAGE_TRANSITIONS, SUBMIT_SECONDS, labelled
from verbal.store.directory import Directory
from verbal.store.journal import Journal, Statement, execute_in
from verbal.store.models import Account, Message, MessageEvent, WebhookAttempt
from verbal.store.services import Pool, Services
from verbal.tasks import cancel_and_wait

log = logging.getLogger("verbal.messaging")

INBOUND_JOB = "inbound"
MAX_BODY_CHARS = 1600  # Twilio's limit for one message, however many segments
MAX_MEDIA = 10
MAX_URL_LENGTH = 2048  # the size of every URL column
# Rate-limit waits up to this long happen in place; longer ones park the message.
RATE_WAIT_IN_PLACE_SECONDS = 1.0
ERROR_EXPIRED = (30036, "Validity period expired")
ERROR_NO_ROUTE = (30008, "No carrier reaches the destination")
# Messages in `sent` kept in memory for their receipt, so that it needs no read (a single
# process only: with several, another may have moved the message meanwhile).
AWAITING_RECEIPT = 50_000
# On PostgreSQL, wake the workers of every node when work is parked for them.
NOTIFY_WORKERS = Statement("SELECT pg_notify('verbal_jobs', :channel)", order=90, key="channel")


class PipelineElsewhere(Protocol):
    """This node's pipeline when it runs in another process (`verbal/processes.py`): the API
    process hands it what it accepted, leased to it in the same commit."""

    owner: str

    @property
    def backlog(self) -> int:
        """Messages the other process works on, as it last said, plus those sent since."""
        ...

    def hand_over(self, records: list[MessageRecord], account_sids: dict[int, str]) -> None:
        """Give committed messages to the pipeline."""
        ...

    def wake(self) -> None:
        """Say that work was parked in the rows (or jobs added) and has committed."""
        ...


class Overloaded(Exception):
    """The pipeline has more work in hand than its admission limit: try again later."""

    def __init__(self, backlog: int, limit: int) -> None:
        super().__init__(f"{backlog} messages in progress (limit {limit})")
        self.backlog = backlog
        self.limit = limit


@dataclass(frozen=True, slots=True)
class SendRequest:
    to: str | None
    from_: str | None
    body: str | None = None
    media_urls: tuple[str, ...] = ()
    status_callback: str | None = None
    status_callback_method: str = "POST"
    callback_format: str = "twilio"
    validity_period: int | None = None
    # Hold the message until then (aware datetime); None sends at once.
    send_at: datetime | None = None
    # Send through this Messaging Service: without `from_`, a number of its pool sends.
    messaging_service_sid: str | None = None


class _Valid(NamedTuple):
    to: str
    sender: str
    body: str
    media: tuple[str, ...]
    pool: Pool | None


@dataclass(slots=True)
class PipelineSettings:
    submit_timeout_seconds: float = 10.0
    submit_retry_base_seconds: float = 1.0
    submit_retry_max_seconds: float = 300.0
    validity_period_seconds: int = 36000
    # How far ahead a message may be scheduled (Twilio: 5 minutes to 35 days).
    schedule_min_lead_seconds: float = 300.0
    schedule_max_lead_seconds: float = 35 * 86400.0
    rate_per_carrier: dict[str, float] = field(default_factory=dict)
    # Messages per second from any one sender number (0: no limit).
    rate_per_sender: float = 0.0
    # Submissions handed to carriers at once.
    submit_concurrency: int = 64
    # Retries due later than this leave memory (parked in their row).
    park_after_seconds: float = 5.0
    # Messages in progress in this process beyond which new ones are refused (0: no limit).
    admission_limit: int = 2_000
    lease_seconds: float = 60.0
    # How often to look for parked work that fell due (workers).
    poll_seconds: float = 1.0


class Messaging:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        journal: Journal,
        queue: JobQueue,
        router: CarrierRouter,
        settings: PipelineSettings,
        buckets: Buckets,
        directory: Directory,
        callbacks: CallbackStage,
        optouts: OptOuts,
        services: Services,
        *,
        owner: str,
        shared_database: bool = False,
        elsewhere: PipelineElsewhere | None = None,
    ) -> None:
        self._sessions = sessions
        self._journal = journal
        self._queue = queue
        self._router = router
        self._settings = settings
        self._buckets = buckets
        self._directory = directory
        self._callbacks = callbacks
        self._optouts = optouts
        self._services = services
        self._owner = owner
        self._shared = shared_database
        self._elsewhere = elsewhere
        self._renewed_at = 0.0
        self._ids = ledger.IdBlocks(sessions)
        # Messages this process works on, by SID: the newest record of each.
        self._live: dict[str, MessageRecord] = {}
        self._awaiting_receipt: collections.OrderedDict[str, MessageRecord] = (
            collections.OrderedDict()
        )
        self._by_carrier_id: dict[tuple[str, str], str] = {}
        self._submits: asyncio.Queue[str] = asyncio.Queue()
        self._submit_attempts: dict[str, int] = {}
        self._lanes: set[str] = set()  # singleton carriers this process holds
        self._account_sids: dict[int, str] = {}
        self._submitting = 0  # submissions waiting for a carrier's answer
        self._drained = asyncio.Event()  # set whenever that count comes back to 0
        self._tasks: list[asyncio.Task[None]] = []
        self._timers: set[asyncio.TimerHandle] = set()
        self._wake = asyncio.Event()
        self._working = False
        callbacks.settle = self._settle
        callbacks.park = self._park_callbacks

    # -- running ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Run the stages: submission workers and the sweeper that claims parked work."""
        self._working = True
        for number in range(self._settings.submit_concurrency):
            self._tasks.append(asyncio.create_task(self._submitter(), name=f"submit-{number}"))
        self._tasks.append(asyncio.create_task(self._sweeper(), name="message-sweeper"))

    async def stop(self, deadline: float = 10.0) -> None:
        """Stop the stages and hand back what is in memory: the rows keep the work.

        Submissions already handed to a carrier get `deadline` seconds to be answered, so
        that a carrier's answer is not thrown away needlessly.
        """
        self._working = False
        if self._submitting:
            self._drained.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(deadline):
                    await self._drained.wait()
        for task in self._tasks:
            task.cancel()
        for timer in self._timers:
            timer.cancel()
        await self._callbacks.stop()
        for task in self._tasks:
            await cancel_and_wait(task)
        self._tasks.clear()
        for record in list(self._live.values()):
            self._write(record, (), ledger.Whereabouts(time.time()))
        self._live.clear()
        await self._journal.flushed()

    def wake(self) -> None:
        """Look for parked work now (a notification said some was added)."""
        self._wake.set()

    def hold_lane(self, carrier: str) -> None:
        self._lanes.add(carrier)
        self._wake.set()

    def release_lane(self, carrier: str) -> None:
        self._lanes.discard(carrier)

    @property
    def backlog(self) -> int:
        """Messages in progress (admitted and not yet done with) in this process, or in the
        pipeline process it hands its messages to."""
        if self._elsewhere is not None:
            return len(self._live) + self._elsewhere.backlog
        return len(self._live)

    # -- accepting ------------------------------------------------------------------------

    async def send(self, account: Account, request: SendRequest) -> MessageRecord:
        """Validate and durably accept an outbound message; raises MessageRefused, or
        Overloaded when the pipeline is over its admission limit."""
        return await self._send(account, request, "outbound-api")

    async def _send(
        self,
        account: Account,
        request: SendRequest,
        direction: str,
        *,
        confirming_keyword: bool = False,
    ) -> MessageRecord:
        self.admit_check()
        await self._ids.ensure(1)
        record, entries, where = await self._accepted(
            account, request, direction, confirming_keyword=confirming_keyword
        )
        await self._write(record, entries, where, new=True)
        self.admit([record])
        return record

    async def prepare(self, count: int) -> None:
        """Make sure `count` messages can be accepted inside a transaction the caller is
        about to open (`accept`): their ids are reserved beforehand."""
        await self._ids.ensure(count)

    async def stage(
        self, account: Account, request: SendRequest, *, direction: str
    ) -> tuple[MessageRecord, list[tuple[Statement, Any]]]:
        """Validate a message and return it with the journal intents that accept it, for a
        caller that writes them in a batch of its own (the engine, with a session's
        progress) and calls `admit` once that batch has committed; raises MessageRefused.
        Call `prepare` first."""
        record, entries, where = await self._accepted(account, request, direction)
        return record, ledger.intents(record, entries, where, new=True)

    async def accept(
        self,
        session: AsyncSession,
        account: Account,
        request: SendRequest,
        *,
        direction: str = "outbound-api",
    ) -> MessageRecord:
        """Accept a message inside the caller's transaction (the engine commits it with the
        session's progress, so a crash neither loses nor repeats it). Call `prepare` before
        the transaction; work on the message starts when it has committed."""
        record, entries, where = await self._accepted(account, request, direction, session)
        await execute_in(session, ledger.INSERT_MESSAGE, [ledger.insert_params(record, where)])
        await execute_in(
            session, ledger.INSERT_EVENT, [ledger.event_params(entry) for entry in entries]
        )
        info = session.sync_session.info
        # A tuple, replaced rather than appended to: group commit restores `info` when a
        # unit rolls back, and the unit's messages must leave with it.
        info[_ACCEPTED_KEY] = (*info.get(_ACCEPTED_KEY, ()), (self, record))
        return record

    def admit(self, records: list[MessageRecord]) -> None:
        """Start work on messages whose acceptance has committed."""
        if not self._working:
            if not records:
                return
            if self._elsewhere is not None:
                sids = {r.account_id: self._account_sids[r.account_id] for r in records}
                self._elsewhere.hand_over(records, sids)
            elif self._shared:
                self._journal.write(NOTIFY_WORKERS, {"channel": ""})
            return
        for record in records:
            if record.status == Status.SCHEDULED and not record.callbacks_owed:
                continue  # parked until its time: the sweeper takes it then
            self._live[record.sid] = record
            if record.callbacks_owed:
                # A message just accepted owes the callback of its one entry (queued).
                entry = TimelineEntry(
                    record.id, record.event_seq, record.status, record.date_created, None, True
                )
                self._owe(record, [entry])
            if record.status != Status.SCHEDULED:
                self._submits.put_nowait(record.sid)

    def take_over(self, records: list[MessageRecord], account_sids: dict[int, str]) -> None:
        """Start work on messages the API process accepted and handed over, leased to this
        process in the commit that accepted them."""
        self._account_sids.update(account_sids)
        self.admit(records)

    def admit_check(self) -> None:
        limit = self._settings.admission_limit
        backlog = self.backlog
        if limit and backlog >= limit:
            raise Overloaded(backlog, limit)

    async def _accepted(
        self,
        account: Account,
        request: SendRequest,
        direction: str,
        session: AsyncSession | None = None,
        *,
        confirming_keyword: bool = False,
    ) -> tuple[MessageRecord, tuple[TimelineEntry, ...], ledger.Whereabouts]:
        """A valid request as a new message, queued (or scheduled), with its timeline and
        where its work will stand; raises MessageRefused."""
        to, sender, body, media, pool = await self._validate(
            account, request, session, confirming_keyword=confirming_keyword
        )
        self._account_sids[account.id] = account.sid
        info = analyze(body)
        now = datetime.now(UTC)
        self._check_schedule(request.send_at, now)
        validity = request.validity_period or self._settings.validity_period_seconds
        # A scheduled message's validity starts when it is released.
        start = request.send_at or now
        accepted = MessageRecord(
            id=self._ids.take(),
            sid=ids.sid("SM"),
            account_id=account.id,
            direction=direction,
            from_number=sender,
            to_number=to,
            body=body,
            media_urls=tuple(media),
            encoding=info.encoding.value,
            num_segments=info.segments,
            status=Status.ACCEPTED.value,
            # A service's status callback serves the messages that name none.
            status_callback=request.status_callback or (pool and pool.status_callback) or None,
            status_callback_method=request.status_callback_method,
            callback_format=request.callback_format,
            carrier=None,
            carrier_message_id=None,
            error_code=None,
            error_message=None,
            expires_at=start + timedelta(seconds=validity),
            send_at=request.send_at,
            date_created=now,
            date_updated=now,
            date_sent=None,
            messaging_service_sid=pool.sid if pool is not None else None,
        )
        target = Status.QUEUED if request.send_at is None else Status.SCHEDULED
        step = advance(accepted, target, now)
        for entry in step.entries:
            labelled(MESSAGE_TRANSITIONS, entry.status, direction).inc()
        if request.send_at is not None:
            where = ledger.Whereabouts(request.send_at.timestamp())
        elif self._working:
            where = self._held()
        elif self._elsewhere is not None:
            where = self._held(self._elsewhere.owner)
        else:
            where = ledger.Whereabouts(time.time())
        return step.record, step.entries, where

    def _check_schedule(self, send_at: datetime | None, now: datetime) -> None:
        if send_at is None:
            return
        lead = (send_at - now).total_seconds()
        low = self._settings.schedule_min_lead_seconds
        high = self._settings.schedule_max_lead_seconds
        if not low <= lead <= high:
            raise MessageRefused(
                Refusal.SEND_AT_OUT_OF_RANGE,
                f"SendAt must be between {low:g} seconds and {high:g} seconds in the future.",
            )

    async def _validate(
        self,
        account: Account,
        request: SendRequest,
        session: AsyncSession | None,
        *,
        confirming_keyword: bool = False,
    ) -> _Valid:
        if not request.to:
            raise MessageRefused(Refusal.TO_MISSING, "A 'To' phone number is required.")
        pool = None
        if request.messaging_service_sid is not None:
            sid = request.messaging_service_sid
            if _SERVICE_SID.fullmatch(sid):  # anything else is looked up for nothing
                pool = await self._services.pool(sid, session)
            if pool is None or pool.account_id != account.id:
                raise MessageRefused(
                    Refusal.SERVICE_NOT_FOUND,
                    f"The Messaging Service {request.messaging_service_sid} does not exist.",
                )
        if not request.from_ and pool is None:
            raise MessageRefused(Refusal.FROM_MISSING, "A 'From' phone number is required.")
        body = request.body or ""
        if not body and not request.media_urls:
            raise MessageRefused(Refusal.BODY_MISSING, "Message body is required.")
        if len(body) > MAX_BODY_CHARS:
            raise MessageRefused(
                Refusal.BODY_TOO_LONG,
                f"The message body exceeds the {MAX_BODY_CHARS} character limit.",
            )
        if len(request.media_urls) > MAX_MEDIA:
            raise MessageRefused(
                Refusal.TOO_MANY_MEDIA, f"A message can have at most {MAX_MEDIA} media URLs."
            )
        for url in request.media_urls:
            if not is_http_url(url):
                raise MessageRefused(Refusal.MEDIA_URL_INVALID, f"Media URL {url!r} is not valid.")
        if request.status_callback and not is_http_url(request.status_callback):
            raise MessageRefused(
                Refusal.CALLBACK_URL_INVALID,
                f"StatusCallback {request.status_callback!r} is not a valid URL.",
            )
        if request.status_callback_method not in ("GET", "POST"):
            raise MessageRefused(
                Refusal.CALLBACK_METHOD_INVALID, "StatusCallbackMethod must be GET or POST."
            )
        if request.validity_period is not None and not (
            1 <= request.validity_period <= self._settings.validity_period_seconds
        ):
            raise MessageRefused(
                Refusal.VALIDITY_INVALID,
                f"ValidityPeriod must be between 1 and {self._settings.validity_period_seconds}.",
            )
        try:
            to = to_e164(request.to)
        except InvalidNumber:
            raise MessageRefused(
                Refusal.TO_INVALID, f"The 'To' number {request.to} is not a valid phone number."
            ) from None
        sender = self._sender(request, pool, to)
        if await self._directory.number_owner(sender, session) != account.id:
            raise MessageRefused(
                Refusal.FROM_NOT_OWNED,
                f"The From phone number {sender} is not a valid, SMS-capable inbound phone "
                "number or short code for your account.",
            )
        # The confirmation of a STOP is the one text an opted-out recipient still gets.
        if not confirming_keyword:
            service_sid = pool.sid if pool is not None else None
            scope = await self._optouts.blocked(
                account.id, sender, to, session, service_sid=service_sid
            )
            if scope is not None:
                of = f"the Messaging Service {scope}" if is_service(scope) else scope
                raise MessageRefused(
                    Refusal.OPTED_OUT,
                    f"Attempt to send to unsubscribed recipient: {to} opted out of messages "
                    f"from {of} (texted STOP or a synonym) and has not opted back in.",
                )
        if self._router.route(to, sender) is None:
            raise MessageRefused(
                Refusal.UNREACHABLE, f"The 'To' phone number {to} is not reachable by any carrier."
            )
        return _Valid(to, sender, body, request.media_urls, pool)

    @staticmethod
    def _sender(request: SendRequest, pool: Pool | None, to: str) -> str:
        """The number the message leaves from: `From`, else one of the service's pool."""
        if request.from_:
            try:
                return to_e164(request.from_)
            except InvalidNumber:
                raise MessageRefused(
                    Refusal.FROM_INVALID,
                    f"The 'From' number {request.from_} is not a valid phone number.",
                ) from None
        picked = pick_sender(pool.numbers, to) if pool is not None else None
        if picked is None:
            raise MessageRefused(
                Refusal.SERVICE_EMPTY,
                f"The Messaging Service {request.messaging_service_sid} has no phone numbers "
                "to send from.",
            )
        return picked

    # -- recording changes ------------------------------------------------------------------

    def _held(self, owner: str | None = None) -> ledger.Whereabouts:
        now = time.time()
        return ledger.Whereabouts(now, owner or self._owner, now + self._settings.lease_seconds)

    def _notify_workers(self) -> None:
        """Tell the workers work was parked for them, once it has committed."""
        if self._elsewhere is not None:
            wake = self._elsewhere.wake
            self._journal.flushed().add_done_callback(lambda _: wake())
        elif self._shared:
            self._journal.write(NOTIFY_WORKERS, {"channel": ""})

    def _write(
        self,
        record: MessageRecord,
        entries: tuple[TimelineEntry, ...] | list[TimelineEntry],
        where: ledger.Whereabouts,
        *,
        new: bool = False,
    ) -> asyncio.Future[None]:
        return self._journal.write_many(ledger.intents(record, entries, where, new=new))

    def _apply(
        self,
        record: MessageRecord,
        target: Status,
        *,
        error: tuple[int, str] | None = None,
        carrier: str | None = None,
        carrier_message_id: str | None = None,
    ) -> MessageRecord:
        """Move a message, record the move and start what it owes (callbacks)."""
        step = advance(
            record,
            target,
            datetime.now(UTC),
            error=error,
            carrier=carrier,
            carrier_message_id=carrier_message_id,
        )
        if not step.changed and step.record is record:
            return record
        for entry in step.entries:
            labelled(MESSAGE_TRANSITIONS, entry.status, record.direction).inc()
        self._record(step.record, step.entries)
        self._owe(step.record, [entry for entry in step.entries if entry.callback])
        return step.record

    def _record(self, record: MessageRecord, entries: tuple[TimelineEntry, ...] = ()) -> None:
        """Keep `record` as the message's newest state and journal it, with where its work
        stands: held here while anything is left to do, released otherwise."""
        if record.carrier and record.carrier_message_id:
            self._by_carrier_id[(record.carrier, record.carrier_message_id)] = record.sid
        busy = (
            record.status in TO_SUBMIT or record.callbacks_owed or self._callbacks.busy(record.sid)
        )
        if busy and self._working:
            self._live[record.sid] = record
            self._write(record, entries, self._held())
            return
        self._live.pop(record.sid, None)
        self._submit_attempts.pop(record.sid, None)
        if record.status == Status.SCHEDULED and record.send_at is not None:
            # Its callbacks are settled: it waits in its row until its time.
            self._write(record, entries, ledger.Whereabouts(record.send_at.timestamp()))
            return
        if busy:  # a process without workers (an API node) leaves the work to them
            self._write(record, entries, ledger.Whereabouts(time.time()))
            self._notify_workers()
            return
        self._write(record, entries, ledger.DONE)
        if record.carrier and record.carrier_message_id:
            self._by_carrier_id.pop((record.carrier, record.carrier_message_id), None)
        if record.status == Status.SENT and not self._shared:
            self._awaiting_receipt[record.sid] = record
            if record.carrier and record.carrier_message_id:
                self._by_carrier_id[(record.carrier, record.carrier_message_id)] = record.sid
            while len(self._awaiting_receipt) > AWAITING_RECEIPT:
                _, old = self._awaiting_receipt.popitem(last=False)
                if old.carrier and old.carrier_message_id:
                    self._by_carrier_id.pop((old.carrier, old.carrier_message_id), None)

    def _park(self, record: MessageRecord, due: float, lane: str | None = None) -> None:
        """Hand a message's work back to its row, due at epoch time `due`."""
        self._live.pop(record.sid, None)
        self._write(record, (), ledger.Whereabouts(due, lane=lane))
        self._notify_workers()

    def _current(self, sid: str) -> MessageRecord | None:
        return self._live.get(sid) or self._awaiting_receipt.get(sid)

    # -- callbacks --------------------------------------------------------------------------

    def _owe(
        self,
        record: MessageRecord,
        entries: list[TimelineEntry],
        attempts: dict[str, int] | None = None,
    ) -> None:
        """Hand the callbacks `entries` owe to the callback stage. The account's SID (a
        parameter of every callback) is known: whatever brings a record into memory
        learns it first (`_know_account`)."""
        if not entries or not record.status_callback:
            return
        account_sid = self._account_sids[record.account_id]
        made = attempts or {}
        self._callbacks.owe(
            [
                owed_callback(record, entry, account_sid, made.get(f"status:{entry.status}", 0))
                for entry in entries
            ],
            # The journal's next commit holds the change these report (just written).
            after=self._journal.flushed(),
        )

    async def _know_account(self, account_id: int) -> None:
        if account_id not in self._account_sids:
            sid, _ = await self.token_of(account_id)
            self._account_sids[account_id] = sid

    async def token_of(self, account_id: int) -> tuple[str, str]:
        """The SID and current auth token of an account, for signing its callbacks."""
        account = await self._directory.account_by_id(account_id)
        if account is None:
            raise LookupError(f"no account {account_id}")
        return account.sid, account.auth_token

    def _settle(self, sid: str, seq: int) -> None:
        record = self._current(sid)
        if record is None:
            log.error("callback %s of %s settled for a message not in memory", seq, sid)
            return
        self._record(settle_callback(record, seq))

    def _park_callbacks(self, sid: str, due: float) -> bool:
        """Park a message whose next callback attempt is `due` (epoch); False when it has
        a submission in progress, which keeps it here."""
        record = self._live.get(sid)
        if record is None or record.status in TO_SUBMIT:
            return False
        self._park(record, due)
        return True

    # -- submitting -------------------------------------------------------------------------

    async def _submitter(self) -> None:
        while True:
            sid = await self._submits.get()
            try:
                await self._submit_one(sid)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("submitting %s failed; retrying", sid, extra={"message_sid": sid})
                record = self._live.get(sid)
                if record is not None:
                    self._retry_later(record, "internal error")

    async def _submit_one(self, sid: str) -> None:
        record = self._live.get(sid)
        if record is None or record.status not in TO_SUBMIT:
            return
        if record.expires_at is not None and record.expires_at <= datetime.now(UTC):
            self._apply(record, Status.FAILED, error=ERROR_EXPIRED)
            return
        candidates = self._router.candidates(record.to_number, record.from_number)
        if not candidates:
            self._apply(record, Status.FAILED, error=ERROR_NO_ROUTE)
            return
        first = candidates[0]
        if first.singleton and first.name not in self._lanes:
            self._park(record, time.time(), lane=first.name)
            return
        if not await self._within_rate(record, first):
            return
        record = self._live.get(sid)
        if record is None or record.status not in TO_SUBMIT:
            return
        resubmission = record.status == Status.SENDING
        record = record.evolve(carrier=first.name)
        moved = self._apply(record, Status.SENDING)
        if moved is record:  # a resubmission: already sending, only the carrier is new
            self._record(record)
        sms = OutboundSms(
            message_sid=record.sid,
            account_sid=self._account_sids[record.account_id],
            sender=record.from_number,
            recipient=record.to_number,
            body=record.body,
            media_urls=record.media_urls,
            resubmission=resubmission,
        )
        self._submitting += 1
        try:
            outcome = await self._submit_in_turn(record, candidates, sms)
        finally:
            self._submitting -= 1
            if not self._submitting:
                self._drained.set()
        if outcome is None:
            return
        carrier, result = outcome
        current = self._current(sid)
        if current is None:
            return  # a receipt finished it meanwhile, callbacks and all
        current = current.evolve(
            carrier=current.carrier if current.final else carrier.name,
            carrier_message_id=current.carrier_message_id or result.carrier_message_id,
        )
        if self._apply(current, Status.SENT) is current:
            self._record(current)  # already past sent: keep the carrier's id

    async def _submit_in_turn(
        self, record: MessageRecord, candidates: list[Carrier], sms: OutboundSms
    ) -> tuple[Carrier, SubmitResult] | None:
        """Offer the message to each candidate carrier in turn until one takes it.

        The next carrier gets it when one has no live link (CarrierUnavailable) or refuses
        it for good (CarrierRejected); the last one's refusal fails the message, and a
        temporary error or a timeout retries later. None: failed or retrying.
        """
        sid = sms.message_sid
        error: Exception | None = None
        for index, carrier in enumerate(candidates):
            if index and not await self._within_rate(record, carrier):
                return None
            try:
                return carrier, await self._submit(carrier, sms)
            except (CarrierRejected, CarrierUnavailable) as exc:
                error = exc
                if index + 1 < len(candidates):
                    log.info(
                        "message %s: %s; trying carrier %s",
                        sid,
                        exc,
                        candidates[index + 1].name,
                        extra={"message_sid": sid},
                    )
                    continue
            except (CarrierTemporaryError, TimeoutError) as exc:
                error = exc
            break
        current = self._live.get(sid)
        if current is None:
            return None
        if isinstance(error, CarrierRejected):
            self._apply(current, Status.FAILED, error=(error.code, error.message))
            return None
        reason = "submit timed out" if isinstance(error, TimeoutError) else str(error)
        self._retry_later(current, reason)
        return None

    def _retry_later(self, record: MessageRecord, reason: str) -> None:
        attempts = self._submit_attempts.get(record.sid, 0) + 1
        self._submit_attempts[record.sid] = attempts
        delay = backoff_delay(
            attempts,
            self._settings.submit_retry_base_seconds,
            self._settings.submit_retry_max_seconds,
        )
        sid = record.sid
        log.info(
            "message %s: %s; retrying in %.1fs", sid, reason, delay, extra={"message_sid": sid}
        )
        self._later(record, delay)

    def _later(self, record: MessageRecord, delay: float) -> None:
        """Submit again after `delay` seconds: in memory if soon, from the row otherwise."""
        if delay >= self._settings.park_after_seconds and not self._callbacks.busy(record.sid):
            self._park(record, time.time() + delay)
            return
        loop = asyncio.get_running_loop()

        def resume() -> None:
            self._timers.discard(timer)
            self._submits.put_nowait(record.sid)

        timer = loop.call_later(delay, resume)
        self._timers.add(timer)

    async def _within_rate(self, record: MessageRecord, carrier: Carrier) -> bool:
        """Take a token for the carrier and one for the sender, waiting briefly if need be.

        False means the wait would be long and the message was parked until then.
        """
        limits = [(f"carrier:{carrier.name}", self._settings.rate_per_carrier.get(carrier.name, 0))]
        limits.append((f"sender:{record.from_number}", self._settings.rate_per_sender))
        for key, rate in limits:
            if not rate:
                continue
            wait = await self._buckets.reserve(key, rate)
            while 0 < wait <= RATE_WAIT_IN_PLACE_SECONDS:
                await asyncio.sleep(wait)
                wait = await self._buckets.reserve(key, rate)
            if wait > 0:
                current = self._live.get(record.sid)
                if current is not None:
                    self._later(current, wait)
                return False
        return True

    async def _submit(self, carrier: Carrier, sms: OutboundSms) -> SubmitResult:
        """Hand a message to its carrier within the submit timeout, and measure it."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._settings.submit_timeout_seconds):
                return await carrier.submit(sms)
        except CarrierRejected:
            labelled(CARRIER_ERRORS, carrier.name, "rejected").inc()
            raise
        except CarrierTemporaryError:
            labelled(CARRIER_ERRORS, carrier.name, "temporary").inc()
            raise
        except TimeoutError:
            labelled(CARRIER_ERRORS, carrier.name, "timeout").inc()
            raise
        finally:
            labelled(SUBMIT_SECONDS, carrier.name).observe(time.perf_counter() - started)

    # -- claiming parked work ---------------------------------------------------------------

    async def _sweeper(self) -> None:
        while True:
            try:
                claimed = await self._claim()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("claiming parked messages failed; retrying")
                claimed = 0
            await self._renew_leases()
            if claimed:
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.poll_seconds):
                    await self._wake.wait()

    async def _renew_leases(self) -> None:
        """Extend the leases of the messages in memory, a third of a lease after the last
        time: only where other processes claim from the same rows (PostgreSQL)."""
        now = time.time()
        due = self._renewed_at + self._settings.lease_seconds / 3
        if not self._shared or not self._live or now < due:
            return
        self._renewed_at = now
        with contextlib.suppress(Exception):
            await ledger.renew(
                self._sessions,
                self._owner,
                [record.id for record in self._live.values()],
                now + self._settings.lease_seconds,
            )

    async def _claim(self) -> int:
        limit = self._settings.admission_limit
        room = limit - len(self._live) if limit else 500
        if room <= 0:
            return 0
        claimed = await ledger.claim(
            self._sessions,
            owner=self._owner,
            lease_seconds=self._settings.lease_seconds,
            lanes=sorted(self._lanes),
            limit=min(room, 500),
            skip_locked=self._shared,
        )
        fresh = [record for record, _ in claimed if record.sid not in self._live]
        for account_id in {record.account_id for record in fresh}:
            await self._know_account(account_id)
        owed = await ledger.owed_callbacks(self._sessions, fresh)
        attempts = await ledger.attempts_made(self._sessions, list(owed))
        now = datetime.now(UTC)
        for record in fresh:
            if record.sid in self._live:
                continue  # a receipt brought it in meanwhile, with what it owed
            self._live[record.sid] = record
            self._owe(record, owed.get(record.id, []), attempts.get(record.id))
            if record.status == Status.SCHEDULED:
                if record.send_at is not None and record.send_at > now:
                    self._park(record, record.send_at.timestamp())
                    continue
                record = self._apply(record, Status.QUEUED)
            if record.status in (Status.ACCEPTED, Status.QUEUED, Status.SENDING):
                self._submits.put_nowait(record.sid)
            else:
                self._record(record)
        return len(claimed)

    async def recover(self) -> None:
        """On a single-process (SQLite) start: every lease in the table was left by a crashed
        run, and is this process's to take over."""
        released = await ledger.release_all(self._sessions)
        if released:
            log.info("resuming %d messages left in flight by the previous run", released)

    # -- changing an accepted message -----------------------------------------------------

    async def _load(self, sid: str) -> MessageRecord | None:
        return self._current(sid) or await ledger.load(self._sessions, sid=sid)

    async def cancel(self, account: Account, sid: str) -> MessageRecord:
        """Cancel a scheduled message before it is released."""
        record = await self._load(sid)
        if record is None or record.account_id != account.id:
            raise MessageNotFound(sid)
        self._account_sids[account.id] = account.sid
        if record.status != Status.SCHEDULED:
            raise MessageRefused(
                Refusal.NOT_CANCELABLE,
                f"Message {sid} is {record.status}: only scheduled messages can be canceled.",
            )
        record = self._apply(record, Status.CANCELED)
        await self._journal.flushed()
        return record

    async def redact(self, account: Account, sid: str) -> Message:
        """Blank a finished message's body (Twilio: update with an empty Body)."""
        await self._journal.flushed()
        async with self._sessions.begin() as session:
            message = await self._owned(session, account, sid)
            self._require_final(message, "redacted")
            message.body = ""
            message.date_updated = datetime.now(UTC)
        return message

    async def delete(self, account: Account, sid: str) -> None:
        """Delete a finished message with its timeline and callback log.

        Refused while the message or one of its status callbacks is still on its way.
        """
        await self._journal.flushed()
        async with self._sessions.begin() as session:
            message = await self._owned(session, account, sid)
            self._require_final(message, "deleted")
            if (
                message.callback_cursor < message.callback_seq
                or sid in self._live
                or await self._queue.has_ordered_jobs(session, message.sid)
            ):
                raise MessageRefused(
                    Refusal.IN_PROGRESS,
                    f"Message {sid} still has status callbacks to deliver; try again shortly.",
                )
            for model in (MessageEvent, WebhookAttempt):
                await session.execute(delete(model).where(model.message_id == message.id))
            await session.delete(message)
        self._awaiting_receipt.pop(sid, None)

    async def _owned(self, session: AsyncSession, account: Account, sid: str) -> Message:
        message = await session.scalar(select(Message).where(Message.sid == sid))
        if message is None or message.account_id != account.id:
            raise MessageNotFound(sid)
        return message

    @staticmethod
    def _require_final(message: Message, change: str) -> None:
        if message.rank < 9:
            raise MessageRefused(
                Refusal.IN_PROGRESS,
                f"Message {message.sid} is {message.status} and cannot be {change} until it "
                "reaches a final status.",
            )

    async def redeliver_callback(self, account: Account, attempt_id: int) -> None:
        """Send a recorded status callback again, durably, after the message's pending ones.

        The parameters are the ones that attempt carried; the signature is made anew with the
        account's current token, and the idempotency token is new: the developer asked for
        this delivery, so a receiver must not drop it as a repeat. Raises CallbackNotFound.
        """
        await self._journal.flushed()
        async with self._sessions.begin() as session:
            attempt = await session.get(WebhookAttempt, attempt_id)
            message = None
            if attempt is not None and attempt.message_id is not None:
                message = await session.get(Message, attempt.message_id)
            if attempt is None or message is None or message.account_id != account.id:
                raise CallbackNotFound(f"no status callback attempt {attempt_id}")
            if not message.status_callback:
                raise CallbackNotFound(f"message {message.sid} has no status callback URL")
            params = [(str(k), str(v)) for k, v in attempt.request_params.items()]
            request = signed_request(
                message.callback_format,
                message.status_callback,
                attempt.method,
                params,
                account.auth_token,
                f"{message.sid}-{uuid.uuid4().hex}",
            )
            payload: dict[str, Any] = {
                "message_id": message.id,
                "event": attempt.event,
                "url": request.url,
                "method": request.method,
                "params": params,
                "headers": request.headers,
            }
            await self._queue.enqueue(session, REDELIVERY_JOB, payload, ordering_key=message.sid)

    # -- carrier events -------------------------------------------------------------------

    async def on_receipt(self, receipt: Receipt) -> None:
        sid = receipt.message_sid or self._by_carrier_id.get(
            (receipt.carrier, receipt.carrier_message_id)
        )
        record = self._current(sid) if sid is not None else None
        if record is None:
            if receipt.message_sid is not None:
                record = await ledger.load(self._sessions, sid=receipt.message_sid)
            else:
                record = await ledger.load(
                    self._sessions,
                    carrier=receipt.carrier,
                    carrier_message_id=receipt.carrier_message_id,
                )
        if record is None:
            log.warning(
                "receipt from %s for unknown message %s dropped",
                receipt.carrier,
                receipt.carrier_message_id,
            )
            return
        self._awaiting_receipt.pop(record.sid, None)
        await self._know_account(record.account_id)
        if record.callbacks_owed and not self._callbacks.busy(record.sid):
            # Read from its row (a restart, or another process's message): the callbacks it
            # still owed go first, in order, before the ones this receipt adds.
            owed = await ledger.owed_callbacks(self._sessions, [record])
            attempts = await ledger.attempts_made(self._sessions, list(owed))
            current = self._current(record.sid)
            if current is None or current is record:
                self._owe(record, owed.get(record.id, []), attempts.get(record.id))
            else:
                record = current
        target = Status(receipt.status)
        error = None
        if target in (Status.UNDELIVERED, Status.FAILED):
            error = (receipt.error_code or 30008, receipt.error_message or "Unknown error")
        before = record
        record = self._apply(
            record,
            target,
            error=error,
            carrier=receipt.carrier,
            carrier_message_id=receipt.carrier_message_id,
        )
        if record is not before and record.event_seq == before.event_seq:
            self._record(record)  # only the carrier's id was filled in

    async def on_inbound(self, sms: InboundSms) -> str:
        account_id = await self._directory.number_owner(sms.recipient)
        if account_id is None:
            raise NumberNotInService(f"{sms.recipient} is not a number in service")
        handset = _e164_or_as_is(sms.sender)
        # A text to a pool number is the service's: its opt-out keywords and its apps' view.
        service_sid = await self._services.service_of(account_id, sms.recipient)
        kind = keyword(sms.body)
        if kind in (Keyword.OPT_OUT, Keyword.OPT_IN):
            # Before the message is recorded: the app it goes to must find the change made
            # (its reply to a STOP is refused), and a failure here leaves nothing half done.
            await self._optouts.set(
                account_id, sms.recipient, handset, opted_out=kind == Keyword.OPT_OUT
            )
        await self._ids.ensure(1)
        info = analyze(sms.body)
        now = datetime.now(UTC)
        record = MessageRecord(
            id=self._ids.take(),
            sid=ids.sid("SM"),
            account_id=account_id,
            direction="inbound",
            from_number=sms.sender,
            to_number=sms.recipient,
            body=sms.body,
            media_urls=tuple(sms.media_urls),
            encoding=info.encoding.value,
            num_segments=info.segments,
            status=Status.RECEIVING.value,
            status_callback=None,
            status_callback_method="POST",
            callback_format="twilio",
            carrier=sms.carrier,
            carrier_message_id=sms.carrier_message_id,
            error_code=None,
            error_message=None,
            expires_at=None,
            send_at=None,
            date_created=now,
            date_updated=now,
            date_sent=None,
            messaging_service_sid=service_sid,
        )
        receiving = TimelineEntry(record.id, 1, Status.RECEIVING.value, now, None, False)
        record = record.evolve(event_seq=1)
        step = advance(record, Status.RECEIVED, now)
        labelled(MESSAGE_TRANSITIONS, Status.RECEIVED.value, "inbound").inc()
        self._write(step.record, (receiving, *step.entries), ledger.DONE, new=True)
        # Whoever runs the number's app (the engine) takes it from here, durably.
        await self._journal.write(
            ledger.INSERT_JOB, ledger.job_params(INBOUND_JOB, {"message_sid": record.sid})
        )
        self._queue.wake()
        if kind is not None:
            await self._confirm(account_id, sms.recipient, handset, kind)
        return record.sid

    async def _confirm(self, account_id: int, number: str, handset: str, kind: Keyword) -> None:
        """Answer a keyword with the account's reply (by default Twilio's), unless it switched
        that reply off; a refusal is logged, never the inbound message's failure (it is
        recorded already)."""
        account = await self._directory.account_by_id(account_id)
        if account is None or (text := reply(account, kind)) is None:
            return
        request = SendRequest(to=handset, from_=number, body=text)
        try:
            await self._send(account, request, "outbound-reply", confirming_keyword=True)
        except (MessageRefused, Overloaded) as refused:
            log.warning(
                "confirmation of %s from %s to %s not sent: %s", kind, handset, number, refused
            )


_ACCEPTED_KEY = "verbal.messaging.accepted"
_SERVICE_SID = re.compile("MG[0-9a-f]{32}")


def _e164_or_as_is(number: str) -> str:
    """A handset's number as sends address it (E.164), or as the carrier gave it when it
    is no phone number (an alphanumeric sender cannot be texted anyway)."""
    try:
        return to_e164(number)
    except InvalidNumber:
        return number


@event.listens_for(Session, "after_commit")
def _admit_after_commit(session: Session) -> None:
    accepted = session.info.pop(_ACCEPTED_KEY, ())
    by_pipeline: dict[int, tuple[Messaging, list[MessageRecord]]] = {}
    for messaging, record in accepted:
        by_pipeline.setdefault(id(messaging), (messaging, []))[1].append(record)
    for messaging, records in by_pipeline.values():
        messaging.admit(records)


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    if not session.in_nested_transaction():
        session.info.pop(_ACCEPTED_KEY, None)


@functools.lru_cache(maxsize=512)  # a handful of callback URLs serve most messages
def is_http_url(url: str) -> bool:
    """An absolute http(s) URL with a host, that a webhook can be sent to and a URL column
    (2,048 characters) can hold."""
    if len(url) > MAX_URL_LENGTH:
        return False
    # Spaces and control characters would not survive the request line; urlsplit raises
    # on a malformed IPv6 host ("http://[").
    if any(char.isspace() or ord(char) < 0x20 or char == "\x7f" for char in url):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)
