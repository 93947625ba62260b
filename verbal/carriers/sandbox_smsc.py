"""The sandbox network's SMPP front door: an SMSC that any ESME can bind to.

ESMEs bind with the configured credentials (`EsmeAccount`): a system_id and password,
and the Verbal account whose sandbox they play in. Everything then happens as for that
account's API messages: the account's outcome rules script the submits, the handsets'
inboxes show what arrived, and the sandbox API texts back from a handset.

* **submit_sm / data_sm** to a handset (destination_addr in international form) is
  decoded (GSM-7, Latin-1, UCS-2; short_message or message_payload); the parts of a long
  message (UDH or SAR) are kept until the last one arrives and then reach the handset as
  one text. Each PDU is answered at once: a message_id, or the refusal the rules script
  (throttle: ESME_RTHROTTLED; fail: `FAIL_STATUSES`; timeout: no answer at all).
* **Receipts** go out as deliver_sm (esm_class 0x04) with the usual receipt text, and the
  receipted_message_id and message_state TLVs: one per submitted PDU whose
  registered_delivery asks for it, once the rule's delay has passed.
* **Handset texts** to a number in an ESME's ``numbers`` go to that ESME as deliver_sm (a
  long text as UDH parts), unless the number is one of Verbal's own numbers: those always
  belong to Verbal's pipeline.

What the SMSC owes an ESME (receipts, texts) waits in the ``smsc_outbox`` table until
the ESME acknowledges it, across unbinds and restarts; the parts of an unfinished long
message wait in ``smsc_parts``. Delivery to an ESME is at least once: a deliver_sm
whose response was lost goes out again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import logging
import secrets
import string
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import and_, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from verbal.carriers.base import OutboundSms
from verbal.carriers.encoding import Concat, decode_text
from verbal.carriers.globs import number_glob
from verbal.carriers.sandbox import (
    HandsetText,
    NotServed,
    Outcome,
    SandboxNetwork,
    Verdict,
)
from verbal.carriers.smpp.pdu import (
    BindRequest,
    CommandStatus,
    DataSm,
    DeliverSm,
    MessageState,
    PduError,
    Response,
    SubmitSm,
    Tag,
    Tlv,
    decode,
)
from verbal.carriers.smpp.server import (
    ServerLimits,
    SmscConnection,
    SmscHandler,
    SmscServer,
)
from verbal.carriers.smpp.text import DecodedMessage, decode_message, encode_message
from verbal.store.models import Account, SmscOutbox, SmscPart
from verbal.tasks import cancel_and_wait

__all__ = ["FAIL_STATUSES", "EsmeAccount", "SandboxSmsc"]

log = logging.getLogger("verbal.carriers.sandbox_smsc")

# The submit_sm_resp status for a "fail" rule, by its error code; others get
# ESME_RSUBMITFAIL. Unknown handsets and landlines are bad destination addresses.
FAIL_STATUSES = {
    30005: CommandStatus.ESME_RINVDSTADR,
    30006: CommandStatus.ESME_RINVDSTADR,
}
# Most whole messages taken into the network in one transaction.
BATCH = 100
# How long the parts of a long message may take to arrive; then it is undeliverable.
PARTS_TIMEOUT_SECONDS = 300.0
# The error of a long message whose parts stopped coming.
INCOMPLETE_ERROR = 30008
# deliver_sm the ESME neither takes nor refuses for good are retried with backoff, this
# many times in all.
MAX_DELIVERY_ATTEMPTS = 20
RETRY_BASE_SECONDS = 1.0
RETRY_MAX_SECONDS = 60.0
# esm_class of a delivery receipt (SMPP 3.4 §5.2.12).
ESM_CLASS_RECEIPT = 0x04
# network_error_code's network type for GSM (SMPP 3.4 §5.3.2.31).
_GSM_NETWORK = 3
# deliver_sm refusals that mean "never": the ESME will not take this one, retry or not.
_REFUSED_FOR_GOOD = frozenset({CommandStatus.ESME_RX_P_APPN, CommandStatus.ESME_RX_R_APPN})
# Characters a receipt's text: field keeps. They are the same octets in ASCII and in
# GSM-7, so any ESME reads them right whatever it takes data_coding 0 to mean.
_RECEIPT_SAFE = frozenset(string.ascii_letters + string.digits + " !\"#%&'()*+,-./:;<=>?")


@dataclass(frozen=True, slots=True)
class EsmeAccount:
    """Who may bind, and where their messages belong."""

    system_id: str
    password: str = field(repr=False)
    # The account whose sandbox the ESME plays in; empty means the database's only
    # account (binds are refused while there are several).
    account_sid: str = ""
    # Numbers (globs such as +1555000*) whose handset texts go to this ESME.
    numbers: tuple[str, ...] = ()

    def takes(self, number: str) -> bool:
        return any(number_glob(pattern).matches(number) for pattern in self.numbers)


class SandboxSmsc(SmscHandler):
    """The SMPP front door of a `SandboxNetwork`; see the module docstring."""

    def __init__(
        self,
        network: SandboxNetwork,
        esmes: Sequence[EsmeAccount],
        *,
        host: str = "127.0.0.1",
        port: int = 2775,
        limits: ServerLimits | None = None,
        poll_seconds: float = 1.0,
        parts_timeout: float = PARTS_TIMEOUT_SECONDS,
        shared_database: bool = False,
    ) -> None:
        self.network = network
        self._sessions = network.sessions
        self._esmes = {esme.system_id: esme for esme in esmes}
        self.server = SmscServer(self, limits)
        self._host = host
        self._port = port
        self._poll = poll_seconds
        self._parts_timeout = parts_timeout
        self._shared = shared_database
        # The account each bound system_id plays for, resolved at its bind.
        self._accounts: dict[str, str] = {}
        # One deliver_sm sender per receiving connection, and the event that wakes it.
        self._senders: dict[SmscConnection, asyncio.Task[None]] = {}
        self._wakeups: dict[SmscConnection, asyncio.Event] = {}
        # Whole messages waiting to be taken in together, and the task taking them.
        self._waiting: list[_Submit] = []
        self._taker: asyncio.Task[None] | None = None
        # Whether a long message is complete is decided one part at a time.
        self._parts_lock = asyncio.Lock()
        # Concatenation references of long handset texts, rolling from a random start.
        self._references = itertools.count(secrets.randbelow(256))
        self._sweeper: asyncio.Task[None] | None = None
        network.add_door(self)

    @property
    def port(self) -> int:
        return self.server.port

    async def start(self) -> None:
        await self.server.start(self._host, self._port)
        self._sweeper = asyncio.create_task(self._sweep_parts(), name="smsc-parts")

    async def stop(self) -> None:
        if self._sweeper is not None:
            await cancel_and_wait(self._sweeper)
            self._sweeper = None
        await self.server.stop()

    # -- binds ---------------------------------------------------------------------------

    async def authenticate(self, request: BindRequest, connection: SmscConnection) -> int:
        system_id = request.system_id
        esme = self._esmes.get(system_id)
        if esme is None:
            return CommandStatus.ESME_RINVSYSID
        if not hmac.compare_digest(request.password.encode(), esme.password.encode()):
            return CommandStatus.ESME_RINVPASWD
        async with self._sessions() as session:
            account_sid = await self._account_of(session, esme)
        if account_sid is None:
            log.error(
                "ESME %r may not bind: its account %s; set account_sid in its smsc_esmes entry",
                system_id,
                f"{esme.account_sid} does not exist"
                if esme.account_sid
                else "is not given and the database holds several accounts (or none)",
            )
            return CommandStatus.ESME_RBINDFAIL
        self._accounts[system_id] = account_sid
        return CommandStatus.ESME_ROK

    async def _account_of(self, session: AsyncSession, esme: EsmeAccount) -> str | None:
        if esme.account_sid:
            return await session.scalar(select(Account.sid).where(Account.sid == esme.account_sid))
        sids = (await session.scalars(select(Account.sid).limit(2))).all()
        return sids[0] if len(sids) == 1 else None

    # -- submits -------------------------------------------------------------------------

    async def handle_submit(
        self, request: SubmitSm | DataSm, connection: SmscConnection
    ) -> Response | None:
        system_id = connection.system_id or ""
        account_sid = self._accounts[system_id]
        handset = _international(request.destination_addr, request.dest_addr_ton)
        if handset is None or not self.network.reaches(handset):
            return request.response(CommandStatus.ESME_RINVDSTADR)
        try:
            decoded = decode_message(request)
        except ValueError:
            return request.response(CommandStatus.ESME_RINVMSGLEN)
        concat = decoded.concat if decoded.concat and decoded.concat.total > 1 else None
        submit = _Submit(system_id, account_sid, handset, request, _new_message_id(), concat)
        if concat is None:
            return await self._accept_soon(submit)
        async with self._parts_lock:
            [answer] = await self._accept([submit])
        return answer

    async def _accept_soon(self, submit: _Submit) -> Response | None:
        """Take a whole message in together with those submitted at about the same time:
        one transaction, and so one commit, for all of them, since the commit is most of
        what a submit costs."""
        submit.answer = asyncio.get_running_loop().create_future()
        self._waiting.append(submit)
        if self._taker is None:
            self._taker = asyncio.create_task(self._take_waiting(), name="smsc-accept")
        return await submit.answer

    async def _take_waiting(self) -> None:
        # One turn of the loop first, for the other submits of the same read to join.
        await asyncio.sleep(0)
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[:BATCH], self._waiting[BATCH:]
                try:
                    answers = await self._accept(batch)
                except Exception:
                    # Whatever went wrong, it need not be every submit's fault: one by one.
                    for submit in batch:
                        await self._settle_alone(submit)
                    continue
                for submit, answer in zip(batch, answers, strict=True):
                    if submit.answer is not None and not submit.answer.done():
                        submit.answer.set_result(answer)
        finally:
            self._taker = None

    async def _settle_alone(self, submit: _Submit) -> None:
        assert submit.answer is not None
        try:
            [answer] = await self._accept([submit])
        except Exception as exc:
            if not submit.answer.done():
                submit.answer.set_exception(exc)  # the server answers ESME_RSYSERR
            return
        if not submit.answer.done():
            submit.answer.set_result(answer)

    async def _accept(self, submits: Sequence[_Submit]) -> list[Response | None]:
        """Take submitted PDUs (whole messages, or parts of long ones) into the network in
        one transaction, and answer each as its account's rules say."""
        answers: list[Response | None] = []
        receipts_due: set[tuple[str, float]] = set()
        async with self._sessions.begin() as session:
            for submit in submits:
                answer, receipt_in = await self._admit(session, submit)
                answers.append(answer)
                if receipt_in is not None:
                    receipts_due.add((submit.system_id, receipt_in))
        for system_id, after in receipts_due:
            self._nudge(system_id, after=after)
        return answers

    async def _admit(
        self, session: AsyncSession, submit: _Submit
    ) -> tuple[Response | None, float | None]:
        """The answer to one submitted PDU, and in how many seconds a receipt it earned
        falls due (None: it earned none yet)."""
        request = submit.request
        verdict = await self.network.verdict(submit.account_sid, submit.handset, session)
        if verdict.outcome == Outcome.THROTTLE:
            return request.response(CommandStatus.ESME_RTHROTTLED), None
        if verdict.outcome == Outcome.FAIL:
            status = FAIL_STATUSES.get(verdict.error_code or 0, CommandStatus.ESME_RSUBMITFAIL)
            return request.response(status), None
        if verdict.outcome == Outcome.TIMEOUT:
            return None, None  # lost in the network: the ESME's response timer will tell
        parts: list[tuple[SubmitSm | DataSm, str]] | None = [(request, submit.message_id)]
        if submit.concat is not None:
            parts = await self._add_part(
                session, submit.system_id, request, submit.message_id, submit.concat
            )
        receipt_in = None
        if parts is not None:
            self._take(
                session, submit.system_id, submit.account_sid, submit.handset, parts, verdict
            )
            if verdict.receipt is not None:
                receipt_in = verdict.delay_seconds
        return request.response(message_id=submit.message_id), receipt_in

    async def _add_part(
        self,
        session: AsyncSession,
        system_id: str,
        request: SubmitSm | DataSm,
        message_id: str,
        concat: Concat,
    ) -> list[tuple[SubmitSm | DataSm, str]] | None:
        """Keep one part; if that completes its message, take all its parts out (in
        order) and return them."""
        session.add(
            SmscPart(
                system_id=system_id,
                source_addr=request.source_addr,
                destination_addr=request.destination_addr,
                reference=concat.reference,
                total=concat.total,
                sequence=concat.sequence,
                message_id=message_id,
                pdu=request.encode(),
                received_at=time.time(),
            )
        )
        await session.flush()
        group = (
            SmscPart.system_id == system_id,
            SmscPart.source_addr == request.source_addr,
            SmscPart.destination_addr == request.destination_addr,
            SmscPart.reference == concat.reference,
            SmscPart.total == concat.total,
        )
        rows = (await session.scalars(select(SmscPart).where(*group))).all()
        if len({row.sequence for row in rows}) < concat.total:
            return None
        await session.execute(delete(SmscPart).where(*group))
        return _parts_of(rows)

    def _take(
        self,
        session: AsyncSession,
        system_id: str,
        account_sid: str,
        handset: str,
        parts: Sequence[tuple[SubmitSm | DataSm, str]],
        verdict: Verdict,
    ) -> None:
        """Record a whole message in the network, and queue the receipts its parts earn."""
        first, first_id = parts[0]
        body = _text_of([pdu for pdu, _ in parts])
        sender = _international(first.source_addr, first.source_addr_ton) or first.source_addr
        sms = OutboundSms(first_id, account_sid, sender, handset, body)
        session.add(self.network.delivery(sms, first_id, verdict, receipt_pending=False).row())
        if verdict.receipt is None:
            return
        now = time.time()
        done = now + verdict.delay_seconds
        for pdu, message_id in parts:
            if not _wants_receipt(pdu.registered_delivery, verdict):
                continue
            try:
                receipt = _receipt(pdu, message_id, verdict, now, done, body).encode()
            except PduError as exc:
                log.warning("no receipt for %s: %s", message_id, exc)
                continue
            session.add(
                SmscOutbox(
                    system_id=system_id,
                    pdu=receipt,
                    not_before=done,
                    leased_until=0.0,
                    attempts=0,
                    created_at=now,
                )
            )

    async def _sweep_parts(self) -> None:
        """Now and then, give up on long messages whose parts stopped coming."""
        while True:
            await asyncio.sleep(self._poll)
            try:
                await self._expire_parts()
            except Exception:
                log.exception("expiring unfinished long messages failed; retrying")

    async def _expire_parts(self) -> None:
        cutoff = time.time() - self._parts_timeout
        key = (
            SmscPart.system_id,
            SmscPart.source_addr,
            SmscPart.destination_addr,
            SmscPart.reference,
            SmscPart.total,
        )
        async with self._parts_lock, self._sessions.begin() as session:
            stale = (
                await session.execute(select(*key).where(SmscPart.received_at < cutoff).distinct())
            ).all()
            for group in stale:
                same = and_(*(column == value for column, value in zip(key, group, strict=True)))
                rows = (await session.scalars(select(SmscPart).where(same))).all()
                await session.execute(delete(SmscPart).where(same))
                system_id = group[0]
                esme = self._esmes.get(system_id)
                account_sid = esme and await self._account_of(session, esme)
                parts = _parts_of(rows)
                handset = _international(rows[0].destination_addr, parts[0][0].dest_addr_ton)
                log.warning(
                    "long message %s from ESME %r: %d of %d parts came; undeliverable",
                    parts[0][1],
                    system_id,
                    len({row.sequence for row in rows}),
                    group[4],
                )
                if account_sid and handset:
                    verdict = Verdict(Outcome.UNDELIVERABLE, 0.0, INCOMPLETE_ERROR)
                    self._take(session, system_id, account_sid, handset, parts, verdict)
                    self._nudge(system_id)

    # -- handset texts -------------------------------------------------------------------

    async def serves(self, account_sid: str, number: str) -> bool:
        if not any(esme.takes(number) for esme in self._esmes.values()):
            return False  # no ESME's number: nothing to read
        async with self._sessions() as session:
            return await self._esme_for(session, account_sid, number) is not None

    async def _esme_for(
        self, session: AsyncSession, account_sid: str, number: str
    ) -> EsmeAccount | None:
        """The ESME of ``account_sid`` whose numbers take ``number``, if any; never for
        one of Verbal's own numbers."""
        candidates = [esme for esme in self._esmes.values() if esme.takes(number)]
        if not candidates or await self.network.owner(number, session) is not None:
            return None
        for esme in candidates:
            if await self._account_of(session, esme) == account_sid:
                return esme
        return None

    async def handset_text(self, text: HandsetText) -> str:
        if text.media_urls:
            log.info("%s to %s: media URLs do not travel over SMPP", text.handset, text.to)
        message_id = _new_message_id()
        async with self._sessions.begin() as session:
            esme = await self._esme_for(session, text.account_sid, text.to)
            if esme is None:
                raise NotServed(f"{text.to} is not one of this account's numbers")
            now = time.time()
            for part in encode_message(text.body, reference=next(self._references)):
                pdu = DeliverSm(
                    source_addr_ton=1,
                    source_addr_npi=1,
                    source_addr=text.handset.removeprefix("+"),
                    dest_addr_ton=1,
                    dest_addr_npi=1,
                    destination_addr=text.to.removeprefix("+"),
                    esm_class=part.esm_class,
                    data_coding=part.data_coding,
                    short_message=part.short_message,
                    tlvs=part.tlvs,
                )
                session.add(
                    SmscOutbox(
                        system_id=esme.system_id,
                        pdu=pdu.encode(),
                        not_before=now,
                        leased_until=0.0,
                        attempts=0,
                        created_at=now,
                    )
                )
        self._nudge(esme.system_id)
        return message_id

    # -- sending deliver_sm --------------------------------------------------------------

    async def bound(self, connection: SmscConnection) -> None:
        wake = asyncio.Event()
        self._wakeups[connection] = wake
        self._senders[connection] = asyncio.create_task(
            self._send_outbox(connection, wake), name=f"smsc-send-{connection.system_id}"
        )

    async def unbound(self, connection: SmscConnection) -> None:
        wake = self._wakeups.pop(connection, None)
        if wake is not None:
            wake.set()
        sender = self._senders.pop(connection, None)
        if sender is not None:
            await sender

    def _nudge(self, system_id: str, after: float = 0.0) -> None:
        """Wake the senders of ``system_id`` (``after`` seconds from now: when a receipt
        falls due). Between nudges they look every poll, for rows other processes added."""
        if after > 0:
            asyncio.get_running_loop().call_later(after, self._nudge, system_id)
            return
        for connection, wake in self._wakeups.items():
            if connection.system_id == system_id:
                wake.set()

    async def _send_outbox(self, connection: SmscConnection, wake: asyncio.Event) -> None:
        """Feed one receiving connection what its system_id is owed, a window at a time."""
        system_id = connection.system_id or ""
        window = self.server.limits.window
        in_flight: set[asyncio.Task[None]] = set()
        settled = _Settled()

        def done(task: asyncio.Task[None]) -> None:
            in_flight.discard(task)
            wake.set()

        try:
            while not connection.closed:
                wake.clear()
                free = min(connection.free_window(), window - len(in_flight))
                rows = await self._claim(system_id, free, settled) if free > 0 else []
                for row_id, pdu, attempts in rows:
                    task = asyncio.create_task(
                        self._send_one(connection, row_id, pdu, attempts, settled)
                    )
                    in_flight.add(task)
                    task.add_done_callback(done)
                if rows and len(rows) == free:
                    continue  # maybe more are due: look again once the window has room
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._poll):
                        await wake.wait()
        except Exception:
            log.exception("sending to ESME %r failed; closing its connection", system_id)
            connection.close("internal error")
        finally:
            if in_flight:
                await asyncio.wait(in_flight)
            try:
                await self._claim(system_id, 0, settled)
            except Exception:
                # Their leases run out and they go again: at least once, as always.
                log.exception("recording what ESME %r was sent failed", system_id)

    def _lease_seconds(self) -> float:
        # Long enough for a deliver_sm to get its answer or time out.
        limits = self.server.limits
        return 2 * limits.response_timeout + limits.write_timeout

    async def _claim(
        self, system_id: str, limit: int, settled: _Settled
    ) -> list[tuple[int, bytes, int]]:
        """Record what was ``settled`` since the last claim, and lease up to ``limit`` due
        rows for ``system_id``: one transaction per window, not one per deliver_sm."""
        now = time.time()
        async with self._sessions.begin() as session:
            if settled.done:
                await session.execute(delete(SmscOutbox).where(SmscOutbox.id.in_(settled.done)))
            for row_id, not_before in settled.retry:
                await session.execute(
                    update(SmscOutbox)
                    .where(SmscOutbox.id == row_id)
                    .values(not_before=not_before, leased_until=0.0)
                )
            settled.done, settled.retry = [], []
            if limit <= 0:
                return []
            due = (
                select(SmscOutbox.id)
                .where(
                    SmscOutbox.system_id == system_id,
                    SmscOutbox.not_before <= now,
                    SmscOutbox.leased_until <= now,
                )
                .order_by(SmscOutbox.id)
                .limit(limit)
            )
            if self._shared:
                due = due.with_for_update(skip_locked=True)
            rows = (
                await session.execute(
                    update(SmscOutbox)
                    .where(SmscOutbox.id.in_(due.scalar_subquery()))
                    .values(
                        leased_until=now + self._lease_seconds(),
                        attempts=SmscOutbox.attempts + 1,
                    )
                    .returning(SmscOutbox.id, SmscOutbox.pdu, SmscOutbox.attempts)
                )
            ).all()
        return sorted((row.id, row.pdu, row.attempts) for row in rows)

    async def _send_one(
        self,
        connection: SmscConnection,
        row_id: int,
        data: bytes,
        attempts: int,
        settled: _Settled,
    ) -> None:
        try:
            pdu = decode(data)
        except PduError:
            pdu = None
        if not isinstance(pdu, DeliverSm):
            log.error("dropping unreadable outbox row %d for %r", row_id, connection.system_id)
            settled.done.append(row_id)
            return
        delivery = await connection.deliver(pdu)
        status = None if delivery.response is None else delivery.response.command_status
        if delivery.ok:
            settled.done.append(row_id)
        elif status in _REFUSED_FOR_GOOD or attempts >= MAX_DELIVERY_ATTEMPTS:
            log.warning(
                "ESME %r did not take a deliver_sm (%s, attempt %d); dropped",
                connection.system_id,
                delivery.describe(),
                attempts,
            )
            settled.done.append(row_id)
        elif connection.closed:
            # A lost connection is no fault of the message: it goes out on the next bind.
            settled.retry.append((row_id, time.time()))
        else:
            delay = min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2 ** (attempts - 1))
            log.info(
                "ESME %r: deliver_sm not taken (%s); retrying in %.0fs",
                connection.system_id,
                delivery.describe(),
                delay,
            )
            settled.retry.append((row_id, time.time() + delay))
            self._nudge(connection.system_id or "", after=delay)


@dataclass(slots=True)
class _Submit:
    """One submit_sm (or data_sm) on its way into the network."""

    system_id: str
    account_sid: str
    handset: str
    request: SubmitSm | DataSm
    message_id: str
    # Which part of a long message it is, if it is one.
    concat: Concat | None
    # Where the answer goes, for a submit taken in with others.
    answer: asyncio.Future[Response | None] | None = None


@dataclass(slots=True)
class _Settled:
    """What a sender learned of its deliver_sm since its last claim, written with the next."""

    # Acknowledged, or refused for good: delete.
    done: list[int] = field(default_factory=list)
    # Not taken this time: (row id, when to try again).
    retry: list[tuple[int, float]] = field(default_factory=list)


# -- PDUs and texts ---------------------------------------------------------------------------


def _new_message_id() -> str:
    # 80 random bits as hex: unique enough, and readable by ESMEs that expect hex ids.
    return secrets.token_hex(10)


def _international(address: str, ton: int) -> str | None:
    """``address`` as an E.164 number, if it is one: digits in international form (TON 1,
    or TON 0 "unknown", which ESMEs use for full numbers too), with or without a '+'."""
    digits = address.removeprefix("+")
    international = address.startswith("+") or ton in (0, 1)
    if international and digits.isascii() and digits.isdigit() and 1 <= len(digits) <= 15:
        return "+" + digits
    return None


def _parts_of(rows: Sequence[SmscPart]) -> list[tuple[SubmitSm | DataSm, str]]:
    """The stored parts as PDUs with their message ids, in sequence order."""
    parts = []
    for row in sorted(rows, key=lambda row: (row.sequence, row.id)):
        pdu = decode(row.pdu)
        assert isinstance(pdu, SubmitSm | DataSm)  # only they are stored
        parts.append((pdu, row.message_id))
    return parts


def _text_of(pdus: Sequence[SubmitSm | DataSm]) -> str:
    """The text of a message from its parts (one PDU, or several in sequence order)."""
    decoded: dict[int, DecodedMessage] = {}
    for pdu in pdus:
        message = decode_message(pdu)
        decoded.setdefault(message.concat.sequence if message.concat else 0, message)
    messages = list(decoded.values())
    alphabets = {message.alphabet for message in messages}
    if None in alphabets:
        # Binary or an alphabet the sandbox doesn't read: show the octets.
        text = b"".join(message.user_data for message in messages).hex()
    elif len(alphabets) == 1:
        # Joined before decoding: a sender may split a UCS-2 surrogate pair across parts.
        (alphabet,) = alphabets
        assert alphabet is not None
        text = decode_text(b"".join(message.user_data for message in messages), alphabet)
    else:
        text = "".join(message.text or "" for message in messages)
    # A NUL can't be stored in PostgreSQL text.
    return text.replace("\0", "\N{REPLACEMENT CHARACTER}")


def _wants_receipt(registered_delivery: int, verdict: Verdict) -> bool:
    """registered_delivery bits 1-0 (SMPP 3.4 §5.2.17): 1 always, 2 on failure only; 3 (SMPP
    5.0: on success only) is honoured too."""
    wanted = registered_delivery & 0x03
    delivered = verdict.receipt == "delivered"
    return wanted == 1 or (wanted == 2 and not delivered) or (wanted == 3 and delivered)


def _smpp_date(epoch: float) -> str:
    return time.strftime("%y%m%d%H%M", time.gmtime(epoch))


def _receipt(
    submit: SubmitSm | DataSm,
    message_id: str,
    verdict: Verdict,
    submitted: float,
    done: float,
    body: str,
) -> DeliverSm:
    """The delivery receipt for one submitted PDU (SMPP 3.4 Appendix B's text, and TLVs)."""
    delivered = verdict.receipt == "delivered"
    # err: the Verbal error's last three digits (30003 -> 003), so it maps straight back.
    error = 0 if delivered else (verdict.error_code or INCOMPLETE_ERROR) % 1000
    excerpt = "".join(char if char in _RECEIPT_SAFE else "?" for char in body[:20])
    text = (
        f"id:{message_id} sub:001 dlvrd:{'001' if delivered else '000'} "
        f"submit date:{_smpp_date(submitted)} done date:{_smpp_date(done)} "
        f"stat:{'DELIVRD' if delivered else 'UNDELIV'} err:{error:03d} text:{excerpt}"
    )
    state = MessageState.DELIVERED if delivered else MessageState.UNDELIVERABLE
    tlvs = [
        Tlv.cstring(Tag.RECEIPTED_MESSAGE_ID, message_id),
        Tlv.integer(Tag.MESSAGE_STATE, state, 1),
    ]
    if not delivered:
        tlvs.append(Tlv(Tag.NETWORK_ERROR_CODE, bytes([_GSM_NETWORK]) + error.to_bytes(2, "big")))
    # From the handset to the sender, as the submit had them.
    return DeliverSm(
        source_addr_ton=submit.dest_addr_ton,
        source_addr_npi=submit.dest_addr_npi,
        source_addr=submit.destination_addr,
        dest_addr_ton=submit.source_addr_ton,
        dest_addr_npi=submit.source_addr_npi,
        destination_addr=submit.source_addr,
        esm_class=ESM_CLASS_RECEIPT,
        short_message=text.encode("ascii"),
        tlvs=tuple(tlvs),
    )
