"""The session engine: fetch an app's document, run its verbs, follow where it continues.

A session advances in *steps*, each a durable job with the session SID as ordering key, so
one session never runs two steps at once and a crash resumes where it stopped. A step runs
verbs until the session must wait (an `ask` waiting for the party's answer, a long `wait`)
or ends. Each verb's effects (messages accepted, replies sent) commit in the same
transaction as the session's progress, so a retried step neither loses nor repeats them.

The engine speaks only the verb model; requests to the app and the reading of its answers
belong to the session's dialect.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from verbal.dialects.types import AppRequest, Dialect, Progress, SessionFacts, VerbResult
from verbal.dialects.verbs import (
    Ask,
    Call,
    Channel,
    Document,
    DocumentError,
    Hangup,
    Message,
    Redirect,
    Reject,
    Say,
    Target,
    VoiceVerb,
    Wait,
)
from verbal.dispatch.queue import ClaimedJob, JobQueue
from verbal.engine import grammar
from verbal.engine.fetch import AppFetcher, FetchFailed
from verbal.messaging.addresses import InvalidNumber, to_e164
from verbal.messaging.errors import MessageRefused
from verbal.messaging.service import Messaging, SendRequest
from verbal.store.models import Account, Application, PhoneNumber, SessionEvent
from verbal.store.models import Message as MessageRow
from verbal.store.models import Session as SessionRow
from verbal.webhooks.cookies import conversation

log = logging.getLogger("verbal.engine")

STEP_JOB = "session.step"
# A session may fetch this many documents in all: a guard against apps that redirect or
# `next` into themselves forever.
MAX_DOCUMENTS = 50
# Message ids reserved before a step runs (a verb sending to more reserves more).
STEP_MESSAGES = 16
# Waits up to this long happen inside the step; longer ones put the step back on the queue.
INLINE_WAIT_SECONDS = 2.0
# Which status a message reports to an RCML/TwiML `action`, once accepted.
ACCEPTED_STATUS = "queued"


class SessionEnded(Exception):
    """Raised inside a step when the session has ended; the step stops quietly."""


@dataclass
class _Loaded:
    row: SessionRow
    account: Account
    application: Application
    dialect: Dialect
    inbound: MessageRow | None  # the message that started the session, if one did


class Engine:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        queue: JobQueue,
        messaging: Messaging,
        fetcher: AppFetcher,
        dialects: Mapping[str, Dialect],
        detect: Any,
    ) -> None:
        self._sessions = sessions
        self._queue = queue
        self._messaging = messaging
        self._fetcher = fetcher
        self._dialects = dialects
        self._detect = detect

    # -- starting sessions ----------------------------------------------------------------

    async def handle_inbound(self, job: ClaimedJob) -> None:
        """An inbound message arrived: answer a waiting ask, or start the number's app."""
        async with self._sessions.begin() as session:
            message = await session.scalar(
                select(MessageRow).where(MessageRow.sid == job.payload["message_sid"])
            )
            number = None
            if message is not None:
                number = await session.scalar(
                    select(PhoneNumber).where(PhoneNumber.number == message.to_number)
                )
            if message is None or number is None or number.messaging_application_id is None:
                await self._queue.finish(session, job)
                return
            waiting = await session.scalar(
                select(SessionRow)
                .where(
                    SessionRow.state == "waiting",
                    SessionRow.local_number == message.to_number,
                    SessionRow.remote_number == message.from_number,
                )
                .order_by(SessionRow.id.desc())
                .limit(1)
            )
            if waiting is not None:
                self._event(
                    session, waiting, "input", {"message_sid": message.sid, "text": message.body}
                )
                await self._step(
                    session, waiting.sid, answer=message.body, token=waiting.waiting.get("token")
                )
            else:
                application = await session.get(Application, number.messaging_application_id)
                assert application is not None
                row = self._new_session(
                    application,
                    launch="inbound",
                    local_number=message.to_number,
                    remote_number=message.from_number,
                    initial_text=message.body,
                    inbound_message_sid=message.sid,
                )
                session.add(row)
                await session.flush()
                self._event(
                    session,
                    row,
                    "started",
                    {"trigger": "inbound message", "message_sid": message.sid},
                )
                await self._step(session, row.sid)
            await self._queue.finish(session, job)

    async def launch(self, application: Application, parameters: dict[str, str]) -> str:
        """Start a session for an app without a party (Tropo's Sessions API)."""
        async with self._sessions.begin() as session:
            row = self._new_session(application, launch="token", parameters=parameters)
            session.add(row)
            await session.flush()
            self._event(
                session,
                row,
                "started",
                {"trigger": "token launch", "parameters": sorted(parameters)},
            )
            await self._step(session, row.sid)
        return row.sid

    @staticmethod
    def _new_session(application: Application, **fields: Any) -> SessionRow:
        return SessionRow(
            sid=secrets.token_hex(16),  # Tropo session ids are 32 hex digits
            account_id=application.account_id,
            application_id=application.id,
            dialect=application.dialect,
            channel="text",
            state="running",
            **fields,
        )

    async def _step(
        self, session: AsyncSession, sid: str, *, delay: float = 0.0, **payload: Any
    ) -> None:
        # Steps of one session run in order, one at a time; a timeout is the exception: it
        # must not hold back an answer queued after it, and it checks its token instead.
        ordering_key = None if "timeout" in payload else sid
        await self._queue.enqueue(
            session,
            STEP_JOB,
            {"session_sid": sid, **payload},
            ordering_key=ordering_key,
            delay=delay,
        )

    # -- running a step -------------------------------------------------------------------

    async def handle_step(self, job: ClaimedJob) -> None:
        sid = job.payload["session_sid"]
        # Texts a step sends are accepted inside its transactions: their ids come first.
        await self._messaging.prepare(STEP_MESSAGES)
        try:
            loaded = await self._load(sid)
            if loaded is None or loaded.row.state == "ended":
                await self._finish(job)
                return
            if "answer" in job.payload or "timeout" in job.payload:
                if not await self._resolve_wait(loaded, job):
                    await self._finish(job)
                    return
            elif loaded.row.document_body is None:
                await self._fetch_start(loaded)
            await self._run(sid, job)
        except SessionEnded:
            await self._finish(job)

    async def _run(self, sid: str, job: ClaimedJob) -> None:
        """Run verbs until the session waits or ends; each verb commits with its effects."""
        while True:
            loaded = await self._load(sid)
            if loaded is None or loaded.row.state != "running":
                await self._finish(job)
                return
            pending = loaded.row.waiting.get("continue")
            if pending:
                await self._continue_to(
                    loaded,
                    Target(pending["url"], pending["method"]),
                    Progress(
                        event=pending["event"],
                        sequence=loaded.row.sequence + 1,
                        duration_seconds=self._duration(loaded.row),
                        message_sid=pending["message_sid"],
                        message_status=pending["message_status"],
                    ),
                )
                continue
            try:
                document = self._parse_current(loaded)
            except _BadDocument as bad:
                await self._end(
                    sid,
                    f"the app's document is not valid: {bad.error.message}",
                    error=bad.error.code,
                )
                await self._finish(job)
                return
            index = loaded.row.verb_index
            if index >= len(document.verbs):
                await self._document_done(loaded, document, "continue")
                continue
            verb = document.verbs[index]
            if await self._execute(loaded, document, verb, job):
                return  # the step handed over to a later one (waiting)

    async def _execute(
        self, loaded: _Loaded, document: Document, verb: Any, job: ClaimedJob
    ) -> bool:
        """Run one verb. Returns True when this step is over (the session now waits)."""
        row = loaded.row
        if isinstance(verb, Message):
            await self._message(loaded, document, verb)
        elif isinstance(verb, Call):
            await self._call(loaded, document, verb)
        elif isinstance(verb, Say):
            await self._say(loaded, document, verb)
        elif isinstance(verb, Ask):
            return await self._ask(loaded, verb, job)
        elif isinstance(verb, Redirect):
            await self._continue_to(
                loaded,
                verb.target,
                Progress(
                    event="redirect",
                    sequence=row.sequence + 1,
                    duration_seconds=self._duration(row),
                ),
            )
        elif isinstance(verb, Hangup | Reject):
            await self._document_done(loaded, document, "hangup")
        elif isinstance(verb, Wait):
            if verb.seconds > INLINE_WAIT_SECONDS:
                async with self._sessions.begin() as session:
                    await self._advance(
                        session, row.sid, {"event": "wait", "seconds": verb.seconds}
                    )
                    await self._step(session, row.sid, delay=verb.seconds)
                    await self._queue.finish(session, job)
                return True
            await asyncio.sleep(max(0.0, verb.seconds))
            async with self._sessions.begin() as session:
                await self._advance(session, row.sid, {"event": "wait", "seconds": verb.seconds})
        elif isinstance(verb, VoiceVerb):
            await self._verb_failed(
                loaded,
                document,
                loaded.dialect.errors.voice_verb_on_text,
                f"'{verb.kind}' needs a voice call; this is a text session",
                required=True,
            )
        return False

    # -- verbs ----------------------------------------------------------------------------

    async def _message(self, loaded: _Loaded, document: Document, verb: Message) -> None:
        row = loaded.row
        if verb.channel == Channel.VOICE:
            # A message on the voice channel is a call that speaks; calls come with voice.
            await self._verb_failed(
                loaded,
                document,
                loaded.dialect.errors.voice_verb_on_text,
                "a voice message places a call, which this server cannot do yet",
                required=verb.required,
            )
            return
        destinations = list(verb.to) or ([row.remote_number] if row.remote_number else [])
        if verb.first_only:
            destinations = destinations[:1]
        sender = await self._sender(loaded, verb.sender)
        if not destinations or sender is None:
            missing = "to" if not destinations else "from"
            await self._verb_failed(
                loaded,
                document,
                loaded.dialect.errors.parse_failed,
                f"the message has no '{missing}' and none can be implied",
                required=verb.required,
            )
            return
        body = verb.body
        if not body and not verb.media:
            # Twilio skips an empty <Message/> with a warning rather than failing the app.
            await self._verb_failed(
                loaded,
                document,
                loaded.dialect.errors.parse_failed,
                "the message has neither a body nor media",
                required=False,
            )
            return
        callback = verb.status_callback
        sids: list[str] = []
        await self._messaging.prepare(len(destinations))
        try:
            async with self._sessions.begin() as session:
                for destination in destinations:
                    message = await self._messaging.accept(
                        session,
                        loaded.account,
                        SendRequest(
                            to=_strip_scheme(destination),
                            from_=_strip_scheme(sender),
                            body=body,
                            media_urls=verb.media,
                            status_callback=callback.url if callback else None,
                            status_callback_method=callback.method if callback else "POST",
                            callback_format=loaded.dialect.name,
                        ),
                        direction="outbound-reply" if row.launch == "inbound" else "outbound-api",
                    )
                    sids.append(message.sid)
                    self._message_event(session, row, message)
                results = (
                    [VerbResult(name=verb.name, disposition="SUCCESS", value=sids[0])]
                    if verb.name
                    else []
                )
                await self._advance(
                    session, row.sid, {"event": "verb", "verb": "message"}, results=results
                )
                if verb.action is not None:
                    await self._pending_continuation(
                        session, row.sid, verb.action, "message", sids[0], ACCEPTED_STATUS
                    )
        except MessageRefused as refused:
            if verb.action is None:
                await self._verb_failed(
                    loaded,
                    document,
                    loaded.dialect.errors.parse_failed,
                    f"message refused: {refused.detail}",
                    required=verb.required,
                )
                return
            # With an action URL the app decides what follows: tell it the message failed.
            async with self._sessions.begin() as session:
                self._event(
                    session,
                    row,
                    "error",
                    {
                        "code": loaded.dialect.errors.parse_failed,
                        "message": f"message refused: {refused.detail}",
                        "verb_index": row.verb_index,
                    },
                )
                await self._pending_continuation(
                    session, row.sid, verb.action, "message", None, "failed"
                )

    async def _pending_continuation(
        self,
        session: AsyncSession,
        sid: str,
        target: Target,
        event: str,
        message_sid: str | None,
        message_status: str,
    ) -> None:
        """Record, with the verb's effects, that the session continues at `target`.

        The request itself happens after the commit (`_run` picks it up): a crash in between
        makes the next step request it, instead of running the verbs the action replaces.
        """
        fresh = await self._lock(session, sid)
        fresh.waiting = {
            "continue": {
                "url": target.url,
                "method": target.method,
                "event": event,
                "message_sid": message_sid,
                "message_status": message_status,
            }
        }

    async def _call(self, loaded: _Loaded, document: Document, verb: Call) -> None:
        """Open a conversation: the verbs after this one talk to `verb.to`."""
        row = loaded.row
        if verb.channel == Channel.VOICE:
            await self._verb_failed(
                loaded,
                document,
                loaded.dialect.errors.voice_verb_on_text,
                "a voice call cannot be placed by this server yet",
                required=verb.required,
            )
            return
        sender = await self._sender(loaded, verb.sender)
        try:
            # A text goes to one party: like Tropo, only the first of several is reached.
            party = to_e164(_strip_scheme(verb.to[0]))
            local = to_e164(_strip_scheme(sender)) if sender else None
        except InvalidNumber as bad:
            await self._verb_failed(
                loaded,
                document,
                loaded.dialect.errors.parse_failed,
                f"the call's number is not valid: {bad}",
                required=verb.required,
            )
            return
        if local is None:
            await self._verb_failed(
                loaded,
                document,
                loaded.dialect.errors.parse_failed,
                "the call has no 'from' and the app has no number",
                required=verb.required,
            )
            return
        async with self._sessions.begin() as session:
            fresh = await self._lock(session, row.sid)
            fresh.remote_number = party
            fresh.local_number = local
            await self._advance(session, row.sid, {"event": "verb", "verb": "call", "to": party})

    async def _say(self, loaded: _Loaded, document: Document, verb: Say) -> None:
        if verb.speech_only:
            await self._verb_failed(
                loaded,
                document,
                loaded.dialect.errors.voice_verb_on_text,
                "speech needs a voice call; this is a text session",
                required=verb.required,
            )
            return
        async with self._sessions.begin() as session:
            # The text and the step past this verb commit together: a crash repeats neither.
            await self._reply(loaded, [verb], session)
            await self._advance(session, loaded.row.sid, {"event": "verb", "verb": "say"})

    async def _reply(
        self, loaded: _Loaded, says: list[Say], session: AsyncSession | None = None
    ) -> None:
        """Send say items as texts to the session's party (Tropo's `say` on text)."""
        row = loaded.row
        if not says or row.remote_number is None or row.local_number is None:
            return
        if session is None:
            async with self._sessions.begin() as own:
                await self._reply(loaded, says, own)
            return
        for say in says:
            if not say.text and not say.media:
                continue
            message = await self._messaging.accept(
                session,
                loaded.account,
                SendRequest(
                    to=row.remote_number,
                    from_=row.local_number,
                    body=say.text,
                    media_urls=say.media,
                    callback_format="twilio",
                ),
                direction="outbound-reply",
            )
            self._message_event(session, row, message)

    async def _ask(self, loaded: _Loaded, verb: Ask, job: ClaimedJob) -> bool:
        row = loaded.row
        if row.initial_text is not None and not row.initial_text_used:
            # Tropo hands the text that started the session to the first ask; it is marked
            # used in the transaction that records what the ask made of it.
            await self._answer(loaded, verb, row.initial_text, attempt=1, consume_initial=True)
            return False
        async with self._sessions.begin() as session:
            await self._reply(loaded, list(verb.prompts), session)
            fresh = await self._lock(session, row.sid)
            token = secrets.token_hex(4)
            fresh.state = "waiting"
            fresh.waiting = {"verb_index": fresh.verb_index, "attempt": 1, "token": token}
            self._event(
                session,
                fresh,
                "waiting",
                {"for": "answer", "timeout_seconds": verb.timeout_seconds},
            )
            await self._step(session, row.sid, delay=verb.timeout_seconds, timeout=token)
            await self._queue.finish(session, job)
        return True

    async def _resolve_wait(self, loaded: _Loaded, job: ClaimedJob) -> bool:
        """Apply an answer or a timeout to a waiting ask; False if it no longer applies.

        An answer and the ask's timeout may race: whichever takes the session row first
        while it still waits with the same token wins, the other finds nothing to do.
        """
        try:
            document = self._parse_current(loaded)
        except _BadDocument:
            return False
        async with self._sessions.begin() as session:
            fresh = await self._lock(session, loaded.row.sid)
            token = fresh.waiting.get("token")
            if fresh.state != "waiting" or job.payload.get("token", token) != token:
                return False
            if "timeout" in job.payload and job.payload["timeout"] != token:
                return False
            index = fresh.verb_index
            verb = document.verbs[index] if index < len(document.verbs) else None
            if not isinstance(verb, Ask):
                return False
            attempt = int(fresh.waiting.get("attempt", 1))
            fresh.state = "running"
            fresh.waiting = {}
        if "answer" in job.payload:
            await self._answer(loaded, verb, job.payload["answer"], attempt)
        else:
            timed_out = VerbResult(name=verb.name, disposition="TIMEOUT", attempts=attempt)
            await self._retry_or_give_up(loaded, verb, attempt, timed_out)
        return True

    async def _answer(
        self,
        loaded: _Loaded,
        verb: Ask,
        text: str,
        attempt: int,
        *,
        consume_initial: bool = False,
    ) -> None:
        matched = grammar.match(verb.choices.grammar, text)
        if matched is not None:
            result = VerbResult(
                name=verb.name,
                disposition="SUCCESS",
                value=matched.value,
                interpretation=matched.interpretation,
                utterance=text,
                attempts=attempt,
                concept=matched.value,
            )
            async with self._sessions.begin() as session:
                if consume_initial:
                    (await self._lock(session, loaded.row.sid)).initial_text_used = True
                await self._advance(
                    session,
                    loaded.row.sid,
                    {"event": "answer", "value": matched.value},
                    results=[result],
                )
            return
        result = VerbResult(name=verb.name, disposition="NOMATCH", utterance=text, attempts=attempt)
        await self._retry_or_give_up(loaded, verb, attempt, result, consume_initial)

    async def _retry_or_give_up(
        self,
        loaded: _Loaded,
        verb: Ask,
        attempt: int,
        result: VerbResult,
        consume_initial: bool = False,
    ) -> None:
        row = loaded.row
        if attempt < verb.attempts:
            async with self._sessions.begin() as session:
                await self._reply(loaded, list(verb.prompts), session)
                fresh = await self._lock(session, row.sid)
                fresh.initial_text_used = fresh.initial_text_used or consume_initial
                token = secrets.token_hex(4)
                fresh.state = "waiting"
                fresh.waiting = {
                    "verb_index": fresh.verb_index,
                    "attempt": attempt + 1,
                    "token": token,
                }
                self._event(session, fresh, "waiting", {"for": "answer", "attempt": attempt + 1})
                await self._step(session, row.sid, delay=verb.timeout_seconds, timeout=token)
            return
        async with self._sessions.begin() as session:
            fresh = await self._lock(session, row.sid)
            fresh.initial_text_used = fresh.initial_text_used or consume_initial
            fresh.results = [*fresh.results, _result_json(result)]
            self._event(session, fresh, "incomplete", {"disposition": result.disposition})
        loaded = await self._load(row.sid) or loaded
        await self._document_done(loaded, self._parse_current(loaded), "incomplete")

    # -- documents and continuations ------------------------------------------------------

    async def _fetch_start(self, loaded: _Loaded) -> None:
        app, row = loaded.application, loaded.row
        if not app.sms_url:
            await self._end(row.sid, "the application has no messaging URL")
            raise SessionEnded
        targets = [Target(app.sms_url, app.sms_method)]
        if app.sms_fallback_url:
            targets.append(Target(app.sms_fallback_url, app.sms_fallback_method))
        for target in targets:
            try:
                request = loaded.dialect.start_request(
                    self._facts(loaded), target, loaded.account.auth_token
                )
            except ValueError as exc:  # the dialect cannot start this kind of session
                await self._end(row.sid, str(exc), error=loaded.dialect.errors.fetch_failed)
                raise SessionEnded from None
            if await self._load_document(loaded, request):
                return
        await self._end(row.sid, "the app's document could not be fetched")
        raise SessionEnded

    async def _continue_to(self, loaded: _Loaded, target: Target, progress: Progress) -> None:
        row = loaded.row
        if row.documents_fetched >= MAX_DOCUMENTS:
            await self._end(
                row.sid,
                f"more than {MAX_DOCUMENTS} documents: a redirect loop?",
                error=loaded.dialect.errors.fetch_failed,
            )
            raise SessionEnded
        facts = self._facts(loaded)
        results = tuple(_result_from_json(r) for r in row.results)
        progress = dataclasses.replace(progress, results=results)
        request = loaded.dialect.continue_request(
            facts, target, progress, loaded.account.auth_token
        )
        if not await self._load_document(loaded, request, sequence=progress.sequence):
            await self._end(row.sid, "the app's next document could not be fetched")
            raise SessionEnded

    async def _load_document(
        self, loaded: _Loaded, request: AppRequest, sequence: int | None = None
    ) -> bool:
        row = loaded.row
        async with self._sessions.begin() as session:
            self._event(
                session,
                row,
                "request",
                {
                    "method": request.method,
                    "url": request.wire_url,
                    "params": dict(request.form) if request.form else request.json,
                },
            )
        try:
            fetched = await self._fetcher.fetch(
                request, conversation(loaded.account.id, row.local_number, row.remote_number)
            )
        except FetchFailed as failed:
            code = failed.code or (
                loaded.dialect.errors.bad_status
                if failed.status
                else loaded.dialect.errors.fetch_failed
            )
            async with self._sessions.begin() as session:
                self._event(
                    session,
                    row,
                    "error",
                    {"code": code, "message": failed.reason, "url": request.url},
                )
            return False
        dialect = loaded.dialect
        if row.dialect == "auto":
            # Only RCML and Plivo can be told apart; anything else stays with "auto", whose
            # parser explains what is wrong (Tropo JSON needs a declared tropo app).
            detected = self._detect(fetched.body, fetched.content_type)
            if detected in ("rcml", "plivo"):
                dialect = self._dialects[detected]
        async with self._sessions.begin() as session:
            fresh = await self._lock(session, row.sid)
            self._event(
                session,
                fresh,
                "document",
                {
                    "url": fetched.url,
                    "status": fetched.status,
                    "content_type": fetched.content_type,
                    "latency_ms": fetched.latency_ms,
                    "body": fetched.body[:8192].decode("utf-8", "replace"),
                },
            )
            if row.dialect == "auto":
                fresh.dialect = dialect.name
            fresh.document_url = fetched.url
            fresh.document_type = fetched.content_type
            fresh.document_body = fetched.body
            fresh.verb_index = 0
            fresh.documents_fetched += 1
            fresh.results = []
            fresh.waiting = {}
            if sequence is not None:
                fresh.sequence = sequence
        return True

    async def _document_done(
        self,
        loaded: _Loaded,
        document: Document,
        event: str,
        *,
        error: str | None = None,
    ) -> None:
        """The document ran out or stopped with `event`: follow its handler, or end.

        Tropo's rules: the event's own handler, else `continue`'s, plays its `say` and
        posts the Result to its `next`; a handler without `next` falls through to
        `continue`'s; with no `next` anywhere the session ends.
        """
        row = loaded.row
        fallback = document.handler("continue")
        handler = document.handler(event) or fallback
        if handler is not None and handler.say:
            await self._reply(loaded, list(handler.say))
        target = handler.next if handler is not None else None
        if target is None and handler is not None and fallback is not None:
            target = fallback.next
        if target is not None:
            progress = Progress(
                event=event,
                sequence=row.sequence + 1,
                duration_seconds=self._duration(row),
                error=error,
            )
            await self._continue_to(loaded, target, progress)
            if event != "hangup":
                return
            # After a hang-up the app is told, but no one is left to run its answer for.
        reason = {
            "continue": "the document ended",
            "hangup": "the app hung up",
            "incomplete": "the ask got no valid answer",
        }.get(event, error or event)
        await self._end(row.sid, reason)
        raise SessionEnded

    async def _verb_failed(
        self, loaded: _Loaded, document: Document, code: int, message: str, *, required: bool
    ) -> None:
        row = loaded.row
        async with self._sessions.begin() as session:
            self._event(
                session,
                row,
                "error",
                {"code": code, "message": message, "verb_index": row.verb_index},
            )
            if not required:
                await self._advance(session, row.sid, {"event": "verb skipped"})
        if required:
            if document.handlers:  # Tropo: the error event decides what happens next
                await self._document_done(loaded, document, "error", error=message)
            else:  # RCML and Plivo skip what they cannot run, as Restcomm did
                async with self._sessions.begin() as session:
                    await self._advance(session, row.sid, {"event": "verb skipped"})

    def _parse_current(self, loaded: _Loaded) -> Document:
        row = loaded.row
        try:
            return loaded.dialect.parse(
                row.document_body or b"", row.document_type or "", row.document_url or ""
            )
        except DocumentError as error:
            raise _BadDocument(error) from None

    # -- bookkeeping ----------------------------------------------------------------------

    async def _advance(
        self,
        session: AsyncSession,
        sid: str,
        detail: dict[str, Any],
        results: list[VerbResult] | None = None,
    ) -> None:
        fresh = await self._lock(session, sid)
        self._event(session, fresh, "verb", {"index": fresh.verb_index, **detail})
        fresh.verb_index += 1
        if results:
            fresh.results = [*fresh.results, *(_result_json(r) for r in results)]

    async def _end(self, sid: str, reason: str, *, error: int | None = None) -> None:
        async with self._sessions.begin() as session:
            fresh = await self._lock(session, sid)
            if fresh.state == "ended":
                return
            fresh.state = "ended"
            fresh.end_reason = reason
            fresh.ended_at = datetime.now(UTC)
            self._event(session, fresh, "ended", {"reason": reason, "code": error})

    async def _finish(self, job: ClaimedJob) -> None:
        async with self._sessions.begin() as session:
            await self._queue.finish(session, job)

    async def _load(self, sid: str) -> _Loaded | None:
        async with self._sessions() as session:
            row = await session.scalar(select(SessionRow).where(SessionRow.sid == sid))
            if row is None:
                return None
            account = await session.get(Account, row.account_id)
            application = await session.get(Application, row.application_id)
            inbound = None
            if row.inbound_message_sid is not None:
                inbound = await session.scalar(
                    select(MessageRow).where(MessageRow.sid == row.inbound_message_sid)
                )
        if account is None or application is None:
            raise LookupError(f"session {sid} lost its account or application")
        dialect = self._dialects.get(row.dialect)
        if dialect is None:
            raise LookupError(f"session {sid} has an unknown dialect {row.dialect!r}")
        return _Loaded(row, account, application, dialect, inbound)

    @staticmethod
    async def _lock(session: AsyncSession, sid: str) -> SessionRow:
        row = await session.scalar(
            select(SessionRow).where(SessionRow.sid == sid).with_for_update()
        )
        if row is None:
            raise LookupError(f"no session {sid}")
        return row

    @staticmethod
    def _event(session: AsyncSession, row: SessionRow, kind: str, detail: dict[str, Any]) -> None:
        session.add(SessionEvent(session_id=row.id, kind=kind, detail=detail))

    def _message_event(self, session: AsyncSession, row: SessionRow, message: MessageRow) -> None:
        self._event(
            session,
            row,
            "message",
            {
                "sid": message.sid,
                "to": message.to_number,
                "from": message.from_number,
                "body": message.body[:160],
            },
        )

    async def _sender(self, loaded: _Loaded, named: str | None) -> str | None:
        """Who a verb sends from: as named, else the session's number, else the app's."""
        return named or loaded.row.local_number or await self._app_number(loaded.application)

    async def _app_number(self, application: Application) -> str | None:
        async with self._sessions() as session:
            return await session.scalar(
                select(PhoneNumber.number)
                .where(
                    (PhoneNumber.application_id == application.id)
                    | (PhoneNumber.own_application_id == application.id)
                )
                .order_by(PhoneNumber.id)
                .limit(1)
            )

    def _facts(self, loaded: _Loaded) -> SessionFacts:
        row = loaded.row
        return SessionFacts(
            session_id=row.sid,
            account_sid=loaded.account.sid,
            started_at=row.started_at,
            channel=row.channel,
            launch=row.launch,
            local_number=row.local_number,
            remote_number=row.remote_number,
            initial_text=row.initial_text,
            inbound_message_sid=row.inbound_message_sid,
            parameters={k: str(v) for k, v in (row.parameters or {}).items()},
            inbound_media=tuple(loaded.inbound.media_urls) if loaded.inbound else (),
            num_segments=loaded.inbound.num_segments if loaded.inbound else 1,
        )

    @staticmethod
    def _duration(row: SessionRow) -> int:
        return int((datetime.now(UTC) - row.started_at).total_seconds())


class _BadDocument(Exception):
    def __init__(self, error: DocumentError) -> None:
        super().__init__(error.message)
        self.error = error


def _strip_scheme(address: str) -> str:
    for scheme in ("tel:", "sms:", "mms:"):
        if address.lower().startswith(scheme):
            return address[len(scheme) :]
    return address


def _result_json(result: VerbResult) -> dict[str, Any]:
    return {k: getattr(result, k) for k in VerbResult.__slots__}


def _result_from_json(data: dict[str, Any]) -> VerbResult:
    return VerbResult(**data)
