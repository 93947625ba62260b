"""The calls of one process: placing and taking them, and running their sessions.

A call is a `CallLeg` (`verbal/voice/legs.py`) from one of the process's `Lines` (the
sandbox's handsets today, SIP trunks later) and a `CallRecord` (`verbal/voice/records.py`).
What happens to the leg (ringing, answered, ended) becomes a change of the record, written
through the journal, and the status callbacks the call's app asked for
(`verbal/voice/callbacks.py`). While the call is up a session runs the app on it through
the same interpreter as text sessions (`Engine.run_call`); the interpreter's call actions
(`Speak`, `Silence`, `EndCall`, `Dial`) come back here through `perform`.

Calls live in the memory of the process that runs them. A process that dies loses its calls;
`verbal.voice.records.recover` gives their rows a final state on the next start.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from verbal.dialects.types import Dialect
from verbal.dialects.verbs import Say, Target
from verbal.engine.interpreter import (
    Action,
    AppFacts,
    Dial,
    Dialed,
    EndCall,
    SessionState,
    Silence,
    Speak,
)
from verbal.engine.sessions import Engine
from verbal.ids import sid as new_sid
from verbal.messaging.addresses import InvalidNumber, to_e164
from verbal.store.directory import Directory
from verbal.store.journal import Journal
from verbal.store.models import Account, Application, PhoneNumber
from verbal.tasks import BackgroundTasks
from verbal.voice.callbacks import CallReporter
from verbal.voice.legs import CallLeg, LegEvent, LegStatus, Lines, Prompt, first_to_answer
from verbal.voice.records import CallRecord, insert_intent, update_intent
from verbal.webhooks.client import HttpClient

log = logging.getLogger("verbal.engine.calls")

# Twilio's default and ceiling for how long an outbound call rings.
DEFAULT_TIMEOUT_SECONDS = 60
MAX_TIMEOUT_SECONDS = 600
STATUS_EVENTS = ("initiated", "ringing", "answered", "completed")


class CallRefused(Exception):
    """A call could not be placed; `code` is Twilio's error number for why."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class CallRequest:
    """A call to place for an app (the Calls APIs): from one of the account's numbers to
    `to`, running the document at `url` (or the `document` given inline) once answered."""

    to: str
    from_: str
    url: str | None = None
    method: str = "POST"
    fallback_url: str | None = None
    fallback_method: str = "POST"
    document: bytes | None = None  # TwiML given inline (Twilio's `Twiml`)
    status_callback: str | None = None
    status_callback_method: str = "POST"
    status_callback_events: tuple[str, ...] = ("completed",)
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS
    dialect: str = "rcml"


@dataclass(slots=True)
class _Live:
    """A call up in this process: its leg, its record, who hears of it, what it runs."""

    leg: CallLeg
    record: CallRecord
    reporter: CallReporter
    session: asyncio.Task[None] | None = None
    # A new document for the call (the Calls API's update): the session restarts on it.
    redirect: tuple[Target | None, bytes | None] | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


class Calls:
    def __init__(
        self,
        engine: Engine,
        sessions: async_sessionmaker[AsyncSession],
        journal: Journal,
        directory: Directory,
        dialects: Mapping[str, Dialect],
        http: HttpClient,
        lines: Sequence[Lines],
        node: str,
    ) -> None:
        self._engine = engine
        self._sessions = sessions
        self._journal = journal
        self._directory = directory
        self._dialects = dialects
        self._http = http
        self._lines = list(lines)
        self.node = node
        self._live: dict[str, _Live] = {}
        self._tasks = BackgroundTasks(log)
        engine.calls = self

    # -- placing and taking calls ------------------------------------------------------------

    async def place(self, account: Account, request: CallRequest) -> CallRecord:
        """Place a call for the Calls APIs; returns its record once its row has committed."""
        try:
            to = to_e164(request.to)
        except InvalidNumber:
            raise CallRefused(21217, f"The phone number {request.to!r} is not valid") from None
        try:
            from_ = to_e164(request.from_)
        except InvalidNumber:
            raise CallRefused(21212, f"{request.from_!r} is not a valid caller ID") from None
        if await self._directory.number_owner(from_) != account.id:
            raise CallRefused(21210, f"{from_} is not one of this account's numbers")
        lines = self._lines_for(to)
        if lines is None:
            raise CallRefused(21215, f"No route reaches {to}")
        record = CallRecord(
            sid=new_sid("CA"),
            account_id=account.id,
            account_sid=account.sid,
            direction="outbound-api",
            from_number=from_,
            to_number=to,
            dialect=request.dialect,
            node=self.node,
            url=request.url,
            method=request.method,
            status_callback=request.status_callback,
            status_callback_method=request.status_callback_method,
            status_callback_events=request.status_callback_events,
            timeout_seconds=request.timeout_seconds,
        )
        await self._journal.write(*insert_intent(record))
        leg = lines.originate(account.sid, from_, to, record.sid)
        live = self._watch(leg, record, account)
        app = _voice_facts(
            account,
            from_,
            request.url,
            request.method,
            request.fallback_url,
            request.fallback_method,
        )
        live.reporter.report("initiated", record)
        self._tasks.spawn(self._outbound(live, account, app, request), f"call {record.sid}")
        return record

    async def incoming(self, leg: CallLeg) -> None:
        """A call arrived for one of our numbers: run the number's voice app on it."""
        found = await self._voice_app(leg.local)
        if found is None:
            log.info("a call to %s, which runs no voice app, is refused", leg.local)
            await leg.reject("rejected")
            return
        application, account = found
        record = CallRecord(
            sid=leg.sid,
            account_id=account.id,
            account_sid=account.sid,
            direction="inbound",
            from_number=leg.remote,
            to_number=leg.local,
            dialect=application.dialect,
            node=self.node,
            application_id=application.id,
            url=application.voice_url,
            method=application.voice_method,
            status_callback=application.status_callback,
            status_callback_method=application.status_callback_method,
            status_callback_events=("completed",),
            status=LegStatus.RINGING,
        )
        await self._journal.write(*insert_intent(record))
        live = self._watch(leg, record, account)
        app = _voice_facts(
            account,
            leg.local,
            application.voice_url,
            application.voice_method,
            application.voice_fallback_url,
            application.voice_fallback_method,
        )
        live.reporter.report("ringing", record)
        await self._converse(live, account, app, application.id, application.dialect, None)

    async def _outbound(
        self, live: _Live, account: Account, app: AppFacts, request: CallRequest
    ) -> None:
        status = await live.leg.ring(float(request.timeout_seconds))
        if status != LegStatus.IN_PROGRESS:
            await live.done.wait()
            return
        application_id = await self._application_of(live.record.from_number)
        await self._converse(live, account, app, application_id, request.dialect, request.document)

    async def _converse(
        self,
        live: _Live,
        account: Account,
        app: AppFacts,
        application_id: int | None,
        dialect: str,
        document: bytes | None,
    ) -> None:
        """Run sessions on the call until it ends: one, or a new one for each redirect."""
        record = live.record
        target: Target | None = None
        while True:
            state = SessionState(
                sid=secrets.token_hex(16),
                account_id=account.id,
                application_id=application_id,
                dialect=dialect,
                channel="voice",
                launch="inbound" if record.direction == "inbound" else "call",
                started_at=datetime.now(UTC),
                local_number=record.to_number
                if record.direction == "inbound"
                else record.from_number,
                remote_number=record.from_number
                if record.direction == "inbound"
                else record.to_number,
                call_sid=record.sid,
            )
            if document is not None:
                state.document_body = document
                state.document_type = "text/xml"
                state.document_url = ""
                state.documents_fetched = 1
            elif target is not None:
                app = _with_voice_url(app, target)
            record.session_sid = state.sid
            self._journal.write(*update_intent(record))
            # Each request to the app tells the call as it is then (answered, ...).
            facts = replace(app, call=record.facts)
            started = ("started", {"trigger": f"call {record.direction}", "call_sid": record.sid})
            live.session = asyncio.ensure_future(
                self._engine.run_call(state, account, facts, [started])
            )
            try:
                await live.session
            except asyncio.CancelledError:
                if live.redirect is None:
                    raise
            except Exception:
                log.exception("the session on call %s failed", record.sid)
            if live.redirect is None or live.leg.status.final:
                break
            target, document = live.redirect
            live.redirect = None
        await self.session_ended(record.sid, None)
        await live.done.wait()

    # -- what the interpreter asks -----------------------------------------------------------

    async def perform(self, action: Action, state: SessionState, account: Account) -> Any:
        if isinstance(action, Dial):
            return await self._dial(action, state, account)
        live = self._live.get(state.call_sid or "")
        if live is None:
            return False  # the call is gone (ended, or held by another process)
        leg = live.leg
        if isinstance(action, Speak):
            await (leg.pre_answer() if action.early else leg.answer())
            for say in action.says:
                if not await _play(leg, say):
                    return False
            return not leg.status.final
        if isinstance(action, Silence):
            await (leg.pre_answer() if action.early else leg.answer())
            return await leg.pause(action.seconds)
        assert isinstance(action, EndCall)
        if action.how == "reject":
            await leg.reject(action.reason or "rejected")
        elif action.how == "deflect":
            await leg.redirect(action.to or "")
        elif action.after_seconds:
            self._tasks.spawn(self._hang_up_later(leg, action.after_seconds), "scheduled hang-up")
        else:
            if leg.status == LegStatus.RINGING and action.reason:
                await leg.reject(action.reason)
            else:
                await leg.hangup("app hung up")
        return None

    async def session_ended(self, call_sid: str, reason: str | None) -> None:
        live = self._live.get(call_sid)
        if live is not None and not live.leg.status.final:
            await live.leg.hangup(reason or "the document ended")

    async def _dial(self, action: Dial, state: SessionState, account: Account) -> Dialed:
        """Call every destination; the first to answer hears the says or becomes the
        session's call."""
        parent = state.call_sid
        legs: list[CallLeg] = []
        for number in action.to:
            try:
                to = to_e164(number)
            except InvalidNumber:
                continue
            lines = self._lines_for(to)
            if lines is None:
                continue
            record = CallRecord(
                sid=new_sid("CA"),
                account_id=account.id,
                account_sid=account.sid,
                direction="outbound-dial" if parent else "outbound-api",
                from_number=action.sender,
                to_number=to,
                dialect=state.dialect,
                node=self.node,
                application_id=state.application_id,
                session_sid=state.sid,
                parent_sid=parent,
                timeout_seconds=int(action.timeout_seconds),
                status_callback_events=(),
            )
            self._journal.write(*insert_intent(record))
            leg = lines.originate(account.sid, action.sender, to, record.sid)
            self._watch(leg, record, account)
            legs.append(leg)
        if not legs:
            return Dialed("failed")
        winner, outcomes = await first_to_answer(legs, action.timeout_seconds)
        if winner is None:
            status = _summary(outcomes)
            return Dialed(status)
        if not action.keep:
            for say in action.says:
                if not await _play(winner, say):
                    break
            await winner.hangup("app hung up")
        return Dialed("answered", winner.sid, winner.remote)

    # -- the Calls APIs' changes -------------------------------------------------------------

    async def hang_up(self, call_sid: str, status: str) -> bool:
        """Status=completed (any call) or canceled (one not answered yet); whether the call
        was live here and the change applied."""
        live = self._live.get(call_sid)
        if live is None or live.leg.status.final:
            return False
        if status == "canceled" and live.leg.status == LegStatus.IN_PROGRESS:
            return False
        await live.leg.hangup("hung up through the API")
        return True

    async def redirect(self, call_sid: str, target: Target | None, document: bytes | None) -> bool:
        """Run a new document on a live call now (the Calls API's Url or Twiml)."""
        live = self._live.get(call_sid)
        if live is None or live.leg.status.final or live.session is None:
            return False
        live.redirect = (target, document)
        live.session.cancel()
        return True

    def live(self, call_sid: str) -> CallRecord | None:
        found = self._live.get(call_sid)
        return found.record if found is not None else None

    async def stop(self) -> None:
        """Hang up every call of this process, then wait for their tasks."""
        for live in list(self._live.values()):
            await live.leg.hangup("server stopping")
        await self._tasks.stop()

    # -- the leg's life, recorded -------------------------------------------------------------

    def _watch(self, leg: CallLeg, record: CallRecord, account: Account) -> _Live:
        live = _Live(leg, record, CallReporter(self._http, self._dialects, account.auth_token))
        self._live[record.sid] = live

        def changed(event: LegEvent) -> None:
            now = datetime.now(UTC)
            if not record.advance(event.status, now, event.cause, event.duration_seconds):
                return
            self._journal.write(*update_intent(record))
            live.reporter.report(_EVENTS.get(event.status, "completed"), record)
            if event.status.final:
                self._live.pop(record.sid, None)
                live.done.set()
                self._tasks.spawn(live.reporter.close(), f"callbacks of {record.sid}")

        leg.listen(changed)
        return live

    async def _hang_up_later(self, leg: CallLeg, seconds: float) -> None:
        await asyncio.sleep(seconds)
        await leg.hangup("scheduled hang-up")

    def _lines_for(self, number: str) -> Lines | None:
        return next((lines for lines in self._lines if lines.reaches(number)), None)

    # -- reads ----------------------------------------------------------------------------------

    async def _voice_app(self, number: str) -> tuple[Application, Account] | None:
        """The app that answers calls to `number`: its voice application, else the one
        that answers its messages, if that has a voice URL."""
        found: Application | None = None
        async with self._sessions() as session:
            row = await session.scalar(select(PhoneNumber).where(PhoneNumber.number == number))
            if row is None:
                return None
            # Twilio: the VoiceApplicationSid, else the number's own VoiceUrl; Plivo's app_id
            # (the messaging application) answers calls too when it has an answer URL.
            for app_id in (row.voice_application_id, row.own_application_id, row.application_id):
                if app_id is None:
                    continue
                application = await session.get(Application, app_id)
                if application is not None and application.voice_url and not application.deleted:
                    found = application
                    break
        if found is None:
            return None
        # Outside the session: on SQLite the directory's own read (a cold cache) needs the
        # one pooled connection, which a session still open would hold for ever.
        account = await self._directory.account_by_id(found.account_id)
        return (found, account) if account is not None else None

    async def _application_of(self, number: str) -> int | None:
        found = await self._voice_app(number)
        return found[0].id if found is not None else None


def _voice_facts(
    account: Account,
    number: str,
    url: str | None,
    method: str,
    fallback_url: str | None,
    fallback_method: str,
) -> AppFacts:
    """What a call's session knows of its app: only the voice URLs count on a call."""
    return AppFacts(
        account_sid=account.sid,
        auth_token=account.auth_token,
        sms_url=None,
        sms_method="POST",
        sms_fallback_url=None,
        sms_fallback_method="POST",
        app_number=number,
        voice_url=url,
        voice_method=method,
        voice_fallback_url=fallback_url,
        voice_fallback_method=fallback_method,
    )


_EVENTS = {
    LegStatus.QUEUED: "initiated",
    LegStatus.RINGING: "ringing",
    LegStatus.IN_PROGRESS: "answered",
}


async def _play(leg: CallLeg, say: Say) -> bool:
    """One say item: its sound files played, else its text spoken."""
    if say.audio:
        for url in say.audio:
            if not await leg.play(Prompt(audio_url=url, loop=say.loop)):
                return False
        return True
    if not say.text:
        return not leg.status.final
    return await leg.play(Prompt(text=say.text, voice=say.voice, loop=say.loop))


def _summary(outcomes: list[LegStatus]) -> str:
    """How a fork that no one answered went: busy if anyone was, else no-answer or failed."""
    for status in (LegStatus.BUSY, LegStatus.NO_ANSWER, LegStatus.CANCELED):
        if status in outcomes:
            return status.value
    return LegStatus.FAILED.value


def _with_voice_url(app: AppFacts, target: Target) -> AppFacts:
    return replace(app, voice_url=target.url, voice_method=target.method, voice_fallback_url=None)
