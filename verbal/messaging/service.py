"""The message pipeline: accept, dispatch, record receipts and inbound messages.

Every change of a message's status goes through `_advance`, in the transaction that caused
it, which writes the timeline rows and enqueues that transition's status callback. So the
message, its history and the callbacks it owes can never disagree, whatever crashes.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

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
from verbal.dialects import CALLBACK_FORMATS
from verbal.dialects.types import MessageFacts
from verbal.dispatch.backoff import backoff_delay
from verbal.dispatch.queue import ClaimedJob, JobQueue
from verbal.dispatch.ratelimit import Buckets
from verbal.messaging.addresses import InvalidNumber, to_e164
from verbal.messaging.errors import (
    CallbackNotFound,
    MessageNotFound,
    MessageRefused,
    NumberNotInService,
    Refusal,
)
from verbal.messaging.states import Status, is_final, path_to
from verbal.metrics import CARRIER_ERRORS, MESSAGE_TRANSITIONS, SUBMIT_SECONDS
from verbal.store.models import Account, Message, MessageEvent, PhoneNumber, WebhookAttempt
from verbal.webhooks.delivery import IDEMPOTENCY_HEADER, append_query

log = logging.getLogger("verbal.messaging")

SUBMIT_JOB = "submit"
WEBHOOK_JOB = "webhook"
INBOUND_JOB = "inbound"
MAX_BODY_CHARS = 1600  # Twilio's limit for one message, however many segments
MAX_MEDIA = 10
MAX_URL_LENGTH = 2048  # the size of every URL column
# Transitions that produce a status callback. "sending" lasts milliseconds and Twilio does
# not report it; inbound messages report nothing.
CALLBACK_STATUSES = frozenset(
    {
        Status.SCHEDULED,
        Status.QUEUED,
        Status.SENT,
        Status.DELIVERED,
        Status.UNDELIVERED,
        Status.FAILED,
        Status.CANCELED,
    }
)
# Rate-limit waits up to this long happen in place; longer ones put the job back.
RATE_WAIT_IN_PLACE_SECONDS = 1.0
ERROR_EXPIRED = (30036, "Validity period expired")
ERROR_NO_ROUTE = (30008, "No carrier reaches the destination")


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


class Messaging:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        queue: JobQueue,
        router: CarrierRouter,
        settings: PipelineSettings,
        buckets: Buckets,
    ) -> None:
        self._sessions = sessions
        self._queue = queue
        self._router = router
        self._settings = settings
        self._buckets = buckets

    # -- accepting ------------------------------------------------------------------------

    async def send(self, account: Account, request: SendRequest) -> Message:
        """Validate and durably accept an outbound message; raises MessageRefused."""
        async with self._sessions.begin() as session:
            return await self.accept(session, account, request)

    async def accept(
        self,
        session: AsyncSession,
        account: Account,
        request: SendRequest,
        *,
        direction: str = "outbound-api",
    ) -> Message:
        """Accept a message inside the caller's transaction (the engine commits it together
        with the session's progress, so a crash neither loses nor repeats it)."""
        to, sender, body, media = await self._validate(session, account, request)
        info = analyze(body)
        now = datetime.now(UTC)
        self._check_schedule(request.send_at, now)
        validity = request.validity_period or self._settings.validity_period_seconds
        # A scheduled message's validity starts when it is released.
        start = request.send_at or now
        message = Message(
            sid=ids.sid("SM"),
            account_id=account.id,
            direction=direction,
            from_number=sender,
            to_number=to,
            body=body,
            media_urls=list(media),
            encoding=info.encoding.value,
            num_segments=info.segments,
            status=Status.ACCEPTED.value,
            status_callback=request.status_callback or None,
            status_callback_method=request.status_callback_method,
            callback_format=request.callback_format,
            expires_at=start + timedelta(seconds=validity),
            send_at=request.send_at,
            date_created=now,
            date_updated=now,
        )
        session.add(message)
        await session.flush()
        delay = 0.0
        if request.send_at is None:
            await self._advance(session, message, Status.QUEUED, account=account)
        else:
            await self._advance(session, message, Status.SCHEDULED, account=account)
            delay = (request.send_at - now).total_seconds()
        await self._queue.enqueue(
            session,
            submit_kind(self._router.route(to, sender)),
            {"message_sid": message.sid, "to": to, "from": sender},
            delay=delay,
        )
        return message

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

    # -- changing an accepted message -----------------------------------------------------

    async def cancel(self, account: Account, sid: str) -> Message:
        """Cancel a scheduled message before it is released; its submit job then ends idle."""
        async with self._sessions.begin() as session:
            message = await self._owned(session, account, sid)
            if message.status != Status.SCHEDULED:
                raise MessageRefused(
                    Refusal.NOT_CANCELABLE,
                    f"Message {sid} is {message.status}: only scheduled messages can be canceled.",
                )
            await self._advance(session, message, Status.CANCELED, account=account)
            return message

    async def redact(self, account: Account, sid: str) -> Message:
        """Blank a finished message's body (Twilio: update with an empty Body)."""
        async with self._sessions.begin() as session:
            message = await self._owned(session, account, sid)
            self._require_final(message, "redacted")
            message.body = ""
            message.date_updated = datetime.now(UTC)
            return message

    async def delete(self, account: Account, sid: str) -> None:
        """Delete a finished message with its timeline and callback log.

        Refused while the message or one of its status callbacks is still on its way, so no
        job ever wakes up to a message that is gone.
        """
        async with self._sessions.begin() as session:
            message = await self._owned(session, account, sid)
            self._require_final(message, "deleted")
            if await self._queue.has_ordered_jobs(session, message.sid):
                raise MessageRefused(
                    Refusal.IN_PROGRESS,
                    f"Message {sid} still has status callbacks to deliver; try again shortly.",
                )
            for model in (MessageEvent, WebhookAttempt):
                await session.execute(delete(model).where(model.message_id == message.id))
            await session.delete(message)

    async def _owned(self, session: AsyncSession, account: Account, sid: str) -> Message:
        message = await self._lock(session, sid=sid)
        if message is None or message.account_id != account.id:
            raise MessageNotFound(sid)
        return message

    @staticmethod
    def _require_final(message: Message, change: str) -> None:
        if not is_final(message.status):
            raise MessageRefused(
                Refusal.IN_PROGRESS,
                f"Message {message.sid} is {message.status} and cannot be {change} until it "
                "reaches a final status.",
            )

    async def _validate(
        self, session: AsyncSession, account: Account, request: SendRequest
    ) -> tuple[str, str, str, tuple[str, ...]]:
        if not request.to:
            raise MessageRefused(Refusal.TO_MISSING, "A 'To' phone number is required.")
        if not request.from_:
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
        try:
            sender = to_e164(request.from_)
        except InvalidNumber:
            raise MessageRefused(
                Refusal.FROM_INVALID,
                f"The 'From' number {request.from_} is not a valid phone number.",
            ) from None
        owned = await session.scalar(
            select(PhoneNumber.id).where(
                PhoneNumber.number == sender, PhoneNumber.account_id == account.id
            )
        )
        if owned is None:
            raise MessageRefused(
                Refusal.FROM_NOT_OWNED,
                f"The From phone number {sender} is not a valid, SMS-capable inbound phone "
                "number or short code for your account.",
            )
        if self._router.route(to, sender) is None:
            raise MessageRefused(
                Refusal.UNREACHABLE, f"The 'To' phone number {to} is not reachable by any carrier."
            )
        return to, sender, body, request.media_urls

    # -- dispatching ----------------------------------------------------------------------

    async def handle_submit(self, job: ClaimedJob) -> None:
        """Run one submit job: hand the message to its carrier and record the outcome."""
        sid = job.payload["message_sid"]
        candidates = self._router.candidates(job.payload["to"], job.payload.get("from"))
        carrier = candidates[0] if candidates else None
        if carrier is not None and not await self._within_rate(job, carrier):
            return
        async with self._sessions.begin() as session:
            message = await self._lock(session, sid=sid)
            if message is None or is_final(message.status):
                await self._queue.finish(session, job)
                return
            if message.expires_at is not None and message.expires_at <= datetime.now(UTC):
                await self._fail(session, message, *ERROR_EXPIRED)
                await self._queue.finish(session, job)
                return
            if carrier is None:
                await self._fail(session, message, *ERROR_NO_ROUTE)
                await self._queue.finish(session, job)
                return
            account = await session.get(Account, message.account_id)
            if account is None:
                raise LookupError(f"message {message.sid} has no account")
            message.carrier = carrier.name
            await self._advance(session, message, Status.SENDING, account=account)
            sms = OutboundSms(
                message_sid=message.sid,
                account_sid=account.sid,
                sender=message.from_number,
                recipient=message.to_number,
                body=message.body,
                media_urls=tuple(message.media_urls),
            )

        outcome = await self._submit_in_turn(job, candidates, sms)
        if outcome is None:
            return
        carrier, result = outcome
        async with self._sessions.begin() as session:
            message = await self._lock(session, sid=sid)
            if message is not None:
                message.carrier = carrier.name
                message.carrier_message_id = message.carrier_message_id or result.carrier_message_id
                await self._advance(session, message, Status.SENT)
            await self._queue.finish(session, job)

    async def _submit_in_turn(
        self, job: ClaimedJob, candidates: list[Carrier], sms: OutboundSms
    ) -> tuple[Carrier, SubmitResult] | None:
        """Offer the message to each candidate carrier in turn until one takes it.

        The next carrier gets it when one has no live link (CarrierUnavailable) or refuses
        it for good (CarrierRejected); the last one's refusal fails the message, and a
        temporary error or a timeout puts the job back for later. None: the job is done
        with, failed or rescheduled.
        """
        sid = sms.message_sid
        error: Exception | None = None
        for index, carrier in enumerate(candidates):
            if index and not await self._within_rate(job, carrier):
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
        if isinstance(error, CarrierRejected):
            async with self._sessions.begin() as session:
                message = await self._lock(session, sid=sid)
                if message is not None:
                    await self._fail(session, message, error.code, error.message)
                await self._queue.finish(session, job)
            return None
        reason = "submit timed out" if isinstance(error, TimeoutError) else str(error)
        delay = backoff_delay(
            job.attempts,
            self._settings.submit_retry_base_seconds,
            self._settings.submit_retry_max_seconds,
        )
        log.info(
            "message %s: %s; retrying in %.1fs", sid, reason, delay, extra={"message_sid": sid}
        )
        async with self._sessions.begin() as session:
            await self._queue.reschedule(session, job, delay, reason)
        return None

    async def _within_rate(self, job: ClaimedJob, carrier: Carrier) -> bool:
        """Take a token for the carrier and one for the sender, waiting briefly if need be.

        False means the wait would be long and the job was put back for later.
        """
        limits = [(f"carrier:{carrier.name}", self._settings.rate_per_carrier.get(carrier.name, 0))]
        if job.payload.get("from"):
            limits.append((f"sender:{job.payload['from']}", self._settings.rate_per_sender))
        for key, rate in limits:
            wait = await self._buckets.reserve(key, rate)
            while 0 < wait <= RATE_WAIT_IN_PLACE_SECONDS:
                await asyncio.sleep(wait)
                wait = await self._buckets.reserve(key, rate)
            if wait > 0:
                # A long wait would outlive the job's lease: give the job back instead.
                async with self._sessions.begin() as session:
                    await self._queue.reschedule(session, job, wait, f"rate limited ({key})")
                return False
        return True

    async def _submit(self, carrier: Carrier, sms: OutboundSms) -> SubmitResult:
        """Hand a message to its carrier within the submit timeout, and measure it."""
        started = time.perf_counter()
        try:
            return await asyncio.wait_for(
                carrier.submit(sms), self._settings.submit_timeout_seconds
            )
        except CarrierRejected:
            CARRIER_ERRORS.labels(carrier.name, "rejected").inc()
            raise
        except CarrierTemporaryError:
            CARRIER_ERRORS.labels(carrier.name, "temporary").inc()
            raise
        except TimeoutError:
            CARRIER_ERRORS.labels(carrier.name, "timeout").inc()
            raise
        finally:
            SUBMIT_SECONDS.labels(carrier.name).observe(time.perf_counter() - started)

    # -- carrier events -------------------------------------------------------------------

    async def on_receipt(self, receipt: Receipt) -> None:
        async with self._sessions.begin() as session:
            if receipt.message_sid is not None:
                message = await self._lock(session, sid=receipt.message_sid)
            else:
                message = await self._lock(
                    session, carrier=receipt.carrier, carrier_message_id=receipt.carrier_message_id
                )
            if message is None:
                log.warning(
                    "receipt from %s for unknown message %s dropped",
                    receipt.carrier,
                    receipt.carrier_message_id,
                )
                return
            # The receipt may beat the recording of the submit result: fill that in too.
            message.carrier = message.carrier or receipt.carrier
            message.carrier_message_id = message.carrier_message_id or receipt.carrier_message_id
            target = Status(receipt.status)
            if target in (Status.UNDELIVERED, Status.FAILED):
                message.error_code = receipt.error_code or 30008
                message.error_message = (receipt.error_message or "Unknown error")[:512]
            await self._advance(session, message, target)

    async def on_inbound(self, sms: InboundSms) -> str:
        async with self._sessions.begin() as session:
            number = await session.scalar(
                select(PhoneNumber).where(PhoneNumber.number == sms.recipient)
            )
            if number is None:
                raise NumberNotInService(f"{sms.recipient} is not a number in service")
            info = analyze(sms.body)
            now = datetime.now(UTC)
            message = Message(
                sid=ids.sid("SM"),
                account_id=number.account_id,
                direction="inbound",
                from_number=sms.sender,
                to_number=sms.recipient,
                body=sms.body,
                media_urls=list(sms.media_urls),
                encoding=info.encoding.value,
                num_segments=info.segments,
                status=Status.RECEIVING.value,
                carrier=sms.carrier,
                carrier_message_id=sms.carrier_message_id,
                date_created=now,
                date_updated=now,
            )
            session.add(message)
            await session.flush()
            session.add(MessageEvent(message_id=message.id, status=Status.RECEIVING.value))
            await self._advance(session, message, Status.RECEIVED)
            # Whoever runs the number's app (the engine) takes it from here, durably.
            await self._queue.enqueue(session, INBOUND_JOB, {"message_sid": message.sid})
            return message.sid

    # -- the one way a status changes -----------------------------------------------------

    async def _fail(self, session: AsyncSession, message: Message, code: int, text: str) -> None:
        message.error_code = code
        message.error_message = text[:512]
        await self._advance(session, message, Status.FAILED)

    async def _advance(
        self,
        session: AsyncSession,
        message: Message,
        target: Status,
        *,
        account: Account | None = None,
    ) -> None:
        steps = path_to(Status(message.status), target)
        if not steps:
            return
        now = datetime.now(UTC)
        for step in steps:
            MESSAGE_TRANSITIONS.labels(step.value, message.direction).inc()
            message.status = step.value
            message.date_updated = now
            if step == Status.SENT:
                message.date_sent = now
            error = message.error_code if is_final(step) else None
            # A Core insert: the ORM's unit of work cost more than the statement (queue.py).
            await session.execute(
                insert(MessageEvent.__table__).values(
                    message_id=message.id, status=step.value, occurred_at=now, error_code=error
                )
            )
            if message.status_callback and step in CALLBACK_STATUSES:
                if account is None:
                    account = await session.get(Account, message.account_id)
                if account is None:
                    raise LookupError(f"message {message.sid} has no account")
                await self._enqueue_status_callback(
                    session, message, account, with_error=error is not None
                )

    async def _enqueue_status_callback(
        self, session: AsyncSession, message: Message, account: Account, *, with_error: bool
    ) -> None:
        formatter = CALLBACK_FORMATS[message.callback_format]
        # A filled-in intermediate status (sent, before a failed receipt) carries no error.
        facts = MessageFacts(
            sid=message.sid,
            account_sid=account.sid,
            from_number=message.from_number,
            to_number=message.to_number,
            body=message.body,
            status=message.status,
            error_code=message.error_code if with_error else None,
            error_message=message.error_message if with_error else None,
            media_urls=tuple(message.media_urls),
            num_segments=message.num_segments,
            date_updated=message.date_updated,
        )
        await self._enqueue_callback(
            session,
            message,
            account,
            f"status:{message.status}",
            message.status_callback_method,
            formatter.params(facts),
        )

    async def _enqueue_callback(
        self,
        session: AsyncSession,
        message: Message,
        account: Account,
        event: str,
        method: str,
        params: list[tuple[str, str]],
    ) -> None:
        url = message.status_callback or ""
        signed_url = url if method == "POST" else append_query(url, params)
        formatter = CALLBACK_FORMATS[message.callback_format]
        payload: dict[str, Any] = {
            "message_id": message.id,
            "event": event,
            "url": url,
            "method": method,
            "params": params,
            # Signed now, with the token the account has now: the job then holds no secret.
            "headers": {
                **formatter.signature_headers(
                    signed_url, params if method == "POST" else [], account.auth_token
                ),
                # One token per status event, the same on every retry: a receiver that saw
                # it already (a worker died after the request, before recording it) skips it.
                IDEMPOTENCY_HEADER: f"{message.sid}-{uuid.uuid4().hex}",
            },
        }
        await self._queue.enqueue(session, WEBHOOK_JOB, payload, ordering_key=message.sid)

    async def redeliver_callback(self, account: Account, attempt_id: int) -> None:
        """Send a recorded status callback again, durably, after the message's pending ones.

        The parameters are the ones that attempt carried; the signature is made anew with the
        account's current token, and the idempotency token is new: the developer asked for
        this delivery, so a receiver must not drop it as a repeat. Raises CallbackNotFound.
        """
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
            await self._enqueue_callback(
                session, message, account, attempt.event, attempt.method, params
            )

    async def _lock(
        self,
        session: AsyncSession,
        *,
        sid: str | None = None,
        carrier: str | None = None,
        carrier_message_id: str | None = None,
    ) -> Message | None:
        """Load a message for update: concurrent events on one message apply one by one."""
        query = select(Message).with_for_update()
        if sid is not None:
            query = query.where(Message.sid == sid)
        else:
            query = query.where(
                Message.carrier == carrier, Message.carrier_message_id == carrier_message_id
            )
        return await session.scalar(query)


def submit_kind(carrier: Carrier | None) -> str:
    """The job kind of a message's submission. A singleton carrier's messages get a kind of
    their own, which only the worker holding that carrier claims (it may still fail over to
    the next carrier from there)."""
    if carrier is not None and carrier.singleton:
        return f"{SUBMIT_JOB}@{carrier.name}"
    return SUBMIT_JOB


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
