"""The session engine: start sessions, and drive each step of one through the interpreter.

A session advances in *steps*, each a durable job: the inbound text's own job for the first
step of a session it starts, then `session.step` jobs with the session SID as ordering key,
so that one session never runs two steps at once and a crash resumes where it stopped.

A step is one pass (`docs/architecture.md`, "App sessions"): load the session with what it
needs once, run the interpreter (`interpreter.py`), a pure generator, performing the I/O it
asks for (the app's documents, validating texts), then write its whole outcome as one
journal batch: the session row, its log events, the messages it sends, the job that ends
and the step that follows. A step killed at any instant has happened whole or not at all.

The engine speaks only the verb model; requests to the app and the reading of its answers
belong to the session's dialect.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import bindparam, case, false, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from verbal.dialects.types import Dialect
from verbal.dispatch.queue import ClaimedJob, JobQueue
from verbal.engine import records
from verbal.engine.fetch import AppFetcher, FetchFailed
from verbal.engine.interpreter import (
    Action,
    AppFacts,
    Fetch,
    NextStep,
    Send,
    SessionState,
    Sleep,
    Step,
)
from verbal.messaging.errors import MessageRefused
from verbal.messaging.ledger import INSERT_JOB
from verbal.messaging.machine import MessageRecord
from verbal.messaging.service import Messaging
from verbal.store.directory import Directory
from verbal.store.first_row import FirstRow
from verbal.store.journal import Journal, Params, Statement
from verbal.store.models import (
    Account,
    Application,
    MessagingService,
    MessagingServiceNumber,
    PhoneNumber,
    SessionEvent,
)
from verbal.store.models import Message as MessageRow
from verbal.store.models import Session as SessionRow
from verbal.webhooks.cookies import conversation

log = logging.getLogger("verbal.engine")

STEP_JOB = "session.step"
# Message ids reserved before a step runs (a verb sending to more reserves more).
STEP_MESSAGES = 16
# Test hook, not a setting: `VERBAL_TEST_CRASH_AT=<boundary>[:<n>]` ends the process with
# os._exit the n-th time (default: first) a step reaches that boundary, so that tests can
# kill the server at an exact instant. Boundaries: before-fetch, after-fetch, before-commit,
# after-commit.
CRASH_HOOK_VARIABLE = "VERBAL_TEST_CRASH_AT"
BOUNDARIES = ("before-fetch", "after-fetch", "before-commit", "after-commit")

_SESSIONS = SessionRow.__table__
_APPS = Application.__table__
_MESSAGES = MessageRow.__table__
_NUMBERS = PhoneNumber.__table__
_POOLS = MessagingServiceNumber.__table__
_SERVICES = MessagingService.__table__
_APP_COLUMNS = (
    _APPS.c.sms_url,
    _APPS.c.sms_method,
    _APPS.c.sms_fallback_url,
    _APPS.c.sms_fallback_method,
    _APPS.c.voice_url,
    _APPS.c.voice_method,
    _APPS.c.voice_fallback_url,
    _APPS.c.voice_fallback_method,
)

# The statements a step reads with, built once (SQLAlchemy caches their compiled form).
# The inbound text, its number's app and the newest session of this number and sender that
# waits for an answer, if any: one query.
_WAITING = _SESSIONS.alias("waiting")
_INBOUND = (
    select(
        _MESSAGES.c.body,
        _MESSAGES.c.from_number,
        _MESSAGES.c.to_number,
        _MESSAGES.c.media_urls,
        _MESSAGES.c.num_segments,
        _MESSAGES.c.messaging_service_sid,
        _APPS.c.id,
        _APPS.c.account_id,
        _APPS.c.dialect,
        *_APP_COLUMNS,
        _WAITING.c.sid.label("waiting_sid"),
        _WAITING.c.waiting.label("waiting"),
    )
    .select_from(_MESSAGES)
    .join(_NUMBERS, _NUMBERS.c.number == _MESSAGES.c.to_number)
    # A number in a Messaging Service is answered by the service's inbound request URL
    # (none without one), unless the service defers to the number's own app, as Twilio's
    # UseInboundWebhookOnNumber does.
    .outerjoin(_POOLS, _POOLS.c.phone_number_id == _NUMBERS.c.id)
    .outerjoin(_SERVICES, _SERVICES.c.id == _POOLS.c.service_id)
    .join(
        _APPS,
        _APPS.c.id
        == case(
            (
                _SERVICES.c.id.is_not(None)
                & (_SERVICES.c.use_inbound_webhook_on_number == false()),
                _SERVICES.c.application_id,
            ),
            else_=func.coalesce(_NUMBERS.c.application_id, _NUMBERS.c.own_application_id),
        ),
    )
    .outerjoin(
        _WAITING,
        (_WAITING.c.state == "waiting")
        & (_WAITING.c.local_number == _MESSAGES.c.to_number)
        & (_WAITING.c.remote_number == _MESSAGES.c.from_number),
    )
    .where(_MESSAGES.c.sid == bindparam("sid"))
    .order_by(_WAITING.c.id.desc())
    .limit(1)
)
_SESSION = (
    select(
        _SESSIONS,
        *_APP_COLUMNS,
        _MESSAGES.c.media_urls.label("inbound_media"),
        _MESSAGES.c.num_segments.label("inbound_segments"),
        _MESSAGES.c.messaging_service_sid.label("inbound_service_sid"),
    )
    .join(_APPS, _APPS.c.id == _SESSIONS.c.application_id)
    .outerjoin(_MESSAGES, _MESSAGES.c.sid == _SESSIONS.c.inbound_message_sid)
    .where(_SESSIONS.c.sid == bindparam("sid"))
)
_APP_NUMBER = (
    select(_NUMBERS.c.number)
    .where(
        (_NUMBERS.c.application_id == bindparam("app"))
        | (_NUMBERS.c.own_application_id == bindparam("app"))
    )
    .order_by(_NUMBERS.c.id)
    .limit(1)
)


class CallActions(Protocol):
    """What the engine asks of the calls of its process (`verbal/engine/calls.py`)."""

    async def perform(self, action: Action, state: SessionState, account: Account) -> Any:
        """Do a call action of the interpreter (Speak, Silence, EndCall, Dial) for the
        session `state`; return what the interpreter expects back."""
        ...

    async def session_ended(self, call_sid: str, reason: str | None) -> None:
        """The session on call `call_sid` ended: hang the call up if it is still up."""
        ...


@dataclass(slots=True)
class _Loaded:
    state: SessionState
    new: bool  # not in the database yet: the step's batch inserts it
    account: Account
    app: AppFacts


class Engine:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        reads: async_sessionmaker[AsyncSession],
        engine: AsyncEngine,
        journal: Journal,
        queue: JobQueue,
        messaging: Messaging,
        directory: Directory,
        fetcher: AppFetcher,
        dialects: Mapping[str, Dialect],
        detect: Callable[[bytes, str], str | None],
    ) -> None:
        self._sessions = sessions
        # A step's reads, which on SQLite then leave the write lock to the writers
        # (`read_sessions`): BEGIN IMMEDIATE for each of them held it in turn with every
        # journal tick and claim, in this process and the other.
        self._reads = reads
        # The two reads every step starts with, on SQLite straight on the connection
        # (`store/first_row.py` says why).
        self._inbound = FirstRow(_INBOUND, engine, reads)
        self._session = FirstRow(_SESSION, engine, reads)
        self._journal = journal
        self._queue = queue
        self._messaging = messaging
        self._directory = directory
        self._fetcher = fetcher
        self._dialects = dialects
        self._detect = detect
        self._crash = _CrashHook.from_environment()
        # The calls of this process (`verbal/engine/calls.py`), which perform the
        # interpreter's call actions; set once both exist.
        self.calls: CallActions | None = None

    # -- starting sessions ----------------------------------------------------------------

    async def handle_inbound(self, job: ClaimedJob) -> None:
        """An inbound message arrived: answer a waiting ask, or start the number's app and
        run the session's first step in this job."""
        sid = job.payload["message_sid"]
        found = await self._inbound(sid=sid)
        if found is None:  # no such message, or its number runs no app
            await self._write([records.finish_intent(job, self._queue.owner)])
            return
        if found.waiting_sid is not None:
            token = (found.waiting or {}).get("token")
            detail = {"message_sid": sid, "text": found.body}
            await self._write(
                [
                    *records.event_intents(found.waiting_sid, [("input", detail)], _now()),
                    self._step_intent(found.waiting_sid, {"answer": found.body, "token": token}),
                    records.finish_intent(job, self._queue.owner),
                ]
            )
            return
        account = await self._directory.account_by_id(found.account_id)
        if account is None:
            raise LookupError(f"the account of message {sid}'s app is gone")
        state = SessionState(
            sid=secrets.token_hex(16),  # Tropo session ids are 32 hex digits
            account_id=found.account_id,
            application_id=found.id,
            dialect=found.dialect,
            channel="text",
            launch="inbound",
            started_at=_now(),
            local_number=found.to_number,
            remote_number=found.from_number,
            inbound_message_sid=sid,
            initial_text=found.body,
        )
        app = AppFacts(
            account_sid=account.sid,
            auth_token=account.auth_token,
            sms_url=found.sms_url,
            sms_method=found.sms_method,
            sms_fallback_url=found.sms_fallback_url,
            sms_fallback_method=found.sms_fallback_method,
            app_number=None,
            inbound_media=tuple(found.media_urls or ()),
            num_segments=found.num_segments,
            messaging_service_sid=found.messaging_service_sid,
        )
        loaded = _Loaded(state, True, account, app)
        started = ("started", {"trigger": "inbound message", "message_sid": sid})
        await self._messaging.prepare(STEP_MESSAGES)
        await self._drive(loaded, job, [started])

    async def launch(
        self, application: Application, parameters: dict[str, str], channel: str = "text"
    ) -> str:
        """Start a session for an app without a party (Tropo's Sessions API); a voice
        session (the voice token's) starts at the voice URL and places calls."""
        async with self._sessions.begin() as session:
            row = SessionRow(
                sid=secrets.token_hex(16),
                account_id=application.account_id,
                application_id=application.id,
                dialect=application.dialect,
                channel=channel,
                launch="token",
                state="running",
                parameters=parameters,
            )
            session.add(row)
            await session.flush()
            session.add(
                SessionEvent(
                    session_id=row.id,
                    kind="started",
                    detail={"trigger": "token launch", "parameters": sorted(parameters)},
                )
            )
            await self._queue.enqueue(
                session, STEP_JOB, {"session_sid": row.sid}, ordering_key=row.sid
            )
        return row.sid

    # -- running a step -------------------------------------------------------------------

    async def handle_step(self, job: ClaimedJob) -> None:
        sid = job.payload["session_sid"]
        # Texts a step sends are accepted in its batch: their ids come first.
        await self._messaging.prepare(STEP_MESSAGES)
        loaded = await self._load(sid)
        if loaded is None or not await self._may_run(loaded, job):
            await self._write([records.finish_intent(job, self._queue.owner)])
            return
        await self._drive(loaded, job, [])

    async def _may_run(self, loaded: _Loaded, job: ClaimedJob) -> bool:
        """Whether this step has something to do; an answer or a timeout first takes the
        session's wait (see `_resolve`)."""
        state = loaded.state
        payload = job.payload
        if "answer" not in payload and "timeout" not in payload:
            return state.state == "running" and "resolved" not in state.waiting
        resolved = state.waiting.get("resolved")
        if state.state == "running" and resolved is not None:
            # This job took the wait, then died before its step committed: go on.
            return bool(resolved.get("by") == job.id)
        return await self._resolve(loaded, job)

    async def _resolve(self, loaded: _Loaded, job: ClaimedJob) -> bool:
        """Take the session's wait for this answer or timeout, in a transaction of its own.

        An answer and the ask's timeout may race (the timeout's job has no ordering key): the
        one that finds the session still waiting with its token wins, and records in the row
        what resolved the wait and by which job; the other finds nothing to do. A crash
        after this commit leaves the row saying so, and the winner's retried job goes on.
        """
        payload = job.payload
        async with self._sessions.begin() as session:
            row = await session.scalar(
                select(SessionRow).where(SessionRow.sid == loaded.state.sid).with_for_update()
            )
            if row is None or row.state != "waiting":
                return False
            token = row.waiting.get("token")
            if payload.get("token", token) != token or payload.get("timeout", token) != token:
                return False
            resolved = {
                "by": job.id,
                "attempt": int(row.waiting.get("attempt", 1)),
                "answer": payload.get("answer"),
            }
            row.state = "running"
            row.waiting = {"resolved": resolved}
        loaded.state.state = "running"
        loaded.state.waiting = {"resolved": resolved}
        return True

    async def run_call(
        self,
        state: SessionState,
        account: Account,
        app: AppFacts,
        events: list[tuple[str, dict[str, Any]]],
    ) -> None:
        """Run a session on a call to its end, in memory: a call lives in this process, so
        its steps follow one another here rather than as jobs. Each step is still written
        as one journal batch (the session row, its log, the texts it sent)."""
        loaded = _Loaded(state, True, account, app)
        while True:
            await self._messaging.prepare(STEP_MESSAGES)
            outcome = await self._drive(loaded, None, events)
            loaded.new, events = False, []
            if outcome is None or state.state != "running":
                return
            if outcome.delay:
                await asyncio.sleep(outcome.delay)

    async def _drive(
        self, loaded: _Loaded, job: ClaimedJob | None, events: list[tuple[str, dict[str, Any]]]
    ) -> NextStep | None:
        """Run the interpreter to the end of the step, then write the step as one batch.

        A step of a job finishes the job and queues the next step; a step of a call
        (`run_call`, no job) returns what follows to its caller."""
        step = Step(loaded.state, loaded.app, self._dialects, self._detect, _now)
        step.events.extend(events)
        run = step.run()
        staged: list[tuple[MessageRecord, list[tuple[Statement, Any]]]] = []
        answer: Any = None
        try:
            while True:
                action = run.send(answer)
                answer = await self._perform(action, loaded, staged)
        except StopIteration as stop:
            outcome: NextStep | None = stop.value
        state = loaded.state
        if state.state == "ended" and state.call_sid is not None and self.calls is not None:
            # The session is over: so is its call, if the app has not hung up itself.
            await self.calls.session_ended(state.call_sid, state.end_reason)
        intents = [records.session_intent(state, new=loaded.new)]
        intents += records.event_intents(state.sid, step.events, _now())
        for _, message in staged:
            intents += message
        if job is not None:
            intents.append(records.finish_intent(job, self._queue.owner))
            if outcome is not None:
                intents.append(self._step_intent(state.sid, outcome.payload, outcome))
        self._crash.at("before-commit")
        await self._write(intents)
        self._crash.at("after-commit")
        self._messaging.admit([record for record, _ in staged])
        return outcome

    async def _perform(
        self,
        action: Action,
        loaded: _Loaded,
        staged: list[tuple[MessageRecord, list[tuple[Statement, Any]]]],
    ) -> Any:
        """Do what the interpreter asked and return what it gave; the session's conversation
        (account, numbers) is at hand in `loaded` for I/O that depends on it."""
        if isinstance(action, Fetch):
            self._crash.at("before-fetch")
            state = loaded.state
            talk = None
            if state.local_number and state.remote_number:
                talk = conversation(loaded.account.id, state.local_number, state.remote_number)
            try:
                fetched: Any = await self._fetcher.fetch(action.request, talk)
            except FetchFailed as failed:
                fetched = failed
            self._crash.at("after-fetch")
            return fetched
        if isinstance(action, Send):
            await self._messaging.prepare(len(action.requests))
            batch = []
            try:
                for request in action.requests:
                    batch.append(
                        await self._messaging.stage(
                            loaded.account, request, direction=action.direction
                        )
                    )
            except MessageRefused as refused:
                return refused  # none of the verb's texts is sent
            staged.extend(batch)
            return [record.sid for record, _ in batch]
        if isinstance(action, Sleep):
            await asyncio.sleep(action.seconds)
            return None
        # What remains acts on calls.
        if self.calls is None:
            raise RuntimeError("this process places no calls")
        return await self.calls.perform(action, loaded.state, loaded.account)

    def _step_intent(
        self, sid: str, payload: dict[str, Any], outcome: NextStep | None = None
    ) -> tuple[Statement, Params]:
        ordered = outcome is None or outcome.ordered
        delay = outcome.delay if outcome is not None else 0.0
        return records.step_job_intent(
            STEP_JOB, {"session_sid": sid, **payload}, sid if ordered else None, delay
        )

    async def _write(self, intents: list[tuple[Statement, Params]]) -> None:
        """Write intents as one journal batch (no await in between: one tick), and wake the
        workers if it queued a job."""
        await self._journal.write_many(intents)
        if any(statement is INSERT_JOB for statement, _ in intents):
            self._queue.wake()

    async def _load(self, sid: str) -> _Loaded | None:
        """The session with what a step needs of its app and inbound message: one query."""
        row = await self._session(sid=sid)
        if row is None:
            return None
        app_number = None
        if row.local_number is None:  # a token launch: the app's first number is its own
            async with self._reads() as session:
                app_number = await session.scalar(_APP_NUMBER, {"app": row.application_id})
        account = await self._directory.account_by_id(row.account_id)
        if account is None:
            raise LookupError(f"session {sid} lost its account")
        if row.dialect not in self._dialects:
            raise LookupError(f"session {sid} has an unknown dialect {row.dialect!r}")
        state = SessionState(**{name: getattr(row, name) for name in SessionState.__slots__})
        state.started_at = _aware(state.started_at)
        app = AppFacts(
            account_sid=account.sid,
            auth_token=account.auth_token,
            sms_url=row.sms_url,
            sms_method=row.sms_method,
            sms_fallback_url=row.sms_fallback_url,
            sms_fallback_method=row.sms_fallback_method,
            app_number=app_number,
            inbound_media=tuple(row.inbound_media or ()),
            num_segments=row.inbound_segments or 1,
            # A Tropo app launched by its voice token without a voice URL of its own is
            # fetched at its one URL, as Tropo apps usually have.
            voice_url=row.voice_url or row.sms_url,
            voice_method=row.voice_method,
            voice_fallback_url=row.voice_fallback_url,
            voice_fallback_method=row.voice_fallback_method,
            messaging_service_sid=row.inbound_service_sid,
        )
        return _Loaded(state, False, account, app)


class _CrashHook:
    """The test hook of `CRASH_HOOK_VARIABLE`; does nothing when the variable is unset."""

    def __init__(self, boundary: str | None, count: int) -> None:
        self._boundary = boundary
        self._left = count

    @classmethod
    def from_environment(cls) -> _CrashHook:
        value = os.environ.get(CRASH_HOOK_VARIABLE, "")
        boundary, _, count = value.partition(":")
        if not boundary:
            return cls(None, 0)
        if boundary not in BOUNDARIES:
            raise ValueError(f"{CRASH_HOOK_VARIABLE}: no boundary {boundary!r} ({BOUNDARIES})")
        return cls(boundary, int(count or 1))

    def at(self, boundary: str) -> None:
        if boundary != self._boundary:
            return
        self._left -= 1
        if self._left == 0:
            log.warning("%s: exiting at %s", CRASH_HOOK_VARIABLE, boundary)
            os._exit(137)  # as if killed: no clean-up, no journal flush


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
