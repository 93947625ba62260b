"""The interpreter: one step of a session as a pure generator of actions.

Why: a step used to reload the session and re-parse its document before every verb, and
commit each verb on its own (`bench/results.md`). Here, as in h11's state machine or httpx's
`auth_flow`, the verbs run in memory and the I/O stays outside: `Step.run` yields an action
(`Fetch` a document, `Send` texts, `Sleep` a moment), the driver (`sessions.py`) performs it
and sends back what it gave, and when the generator returns, everything the step did (the
session's new state, its log events, the messages it sends, the next step) is written as one
batch.

Crash safety follows from that one batch: a message exists only once the batch holding the
session's progress past it has committed, so a step killed at any instant either happened
whole or not at all, and is run again from the state before it. A step that has sent
something and then needs the app (an `on` handler's `say` then its `next`, RCML's
`<Message action>`) records the request it owes in that state and ends; the next step makes
the request. The app may see a request twice after a crash; the party never sees a text
twice.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from verbal.dialects.types import (
    AppRequest,
    CallFacts,
    Dialect,
    Progress,
    SessionFacts,
    VerbResult,
)
from verbal.dialects.verbs import (
    Ask,
    Call,
    Channel,
    Deflect,
    Document,
    DocumentError,
    Hangup,
    Message,
    PreAnswer,
    Redirect,
    Reject,
    Say,
    Target,
    VoiceVerb,
    Wait,
)
from verbal.engine import grammar
from verbal.engine.fetch import Fetched, FetchFailed
from verbal.messaging.addresses import InvalidNumber, to_e164
from verbal.messaging.errors import MessageRefused
from verbal.messaging.optouts import Keyword, keyword
from verbal.messaging.service import SendRequest

# A session may fetch this many documents in all: a guard against apps that redirect or
# `next` into themselves forever.
MAX_DOCUMENTS = 50
# Waits up to this long happen inside the step; longer ones end it and a later step goes on.
INLINE_WAIT_SECONDS = 2.0
# Which status a message reports to an RCML/TwiML `action`, once accepted.
ACCEPTED_STATUS = "queued"
# How long a call placed by a voice `message` or `call` rings when the app names no timeout
# (Tropo's default).
DEFAULT_RING_SECONDS = 30.0
# A call the app placed that nobody answered. No platform numbers this (Tropo reported
# errors as text), so the code is Verbal's, next to its 7006, in every dialect.
CALL_NOT_ANSWERED = 7007


@dataclass(slots=True)
class SessionState:
    """The `sessions` row, in memory for the length of a step."""

    sid: str
    account_id: int
    application_id: int | None  # None: a call placed through an API from a number with no app
    dialect: str
    channel: str
    launch: str
    started_at: datetime
    state: str = "running"  # running, waiting (for an answer) or ended
    local_number: str | None = None
    remote_number: str | None = None
    inbound_message_sid: str | None = None
    initial_text: str | None = None
    initial_text_used: bool = False
    parameters: dict[str, Any] = field(default_factory=dict)
    document_url: str | None = None
    document_type: str | None = None
    document_body: bytes | None = None
    verb_index: int = 0
    documents_fetched: int = 0
    sequence: int = 0
    results: list[dict[str, Any]] = field(default_factory=list)
    # While waiting: {verb_index, attempt, token}. While running, what the next step owes:
    # {"continue": request} or {"resolved": answer or timeout} (see `sessions.py`).
    waiting: dict[str, Any] = field(default_factory=dict)
    end_reason: str | None = None
    ended_at: datetime | None = None
    # The call the session talks on: verbs that speak, wait and hang up act on it.
    call_sid: str | None = None


@dataclass(frozen=True, slots=True)
class AppFacts:
    """What a step needs of the session's account, application and inbound message."""

    account_sid: str
    auth_token: str
    sms_url: str | None
    sms_method: str
    sms_fallback_url: str | None
    sms_fallback_method: str
    app_number: str | None  # the app's first number, for sessions without one (launches)
    inbound_media: tuple[str, ...] = ()
    num_segments: int = 1
    # A session on a call starts at the app's voice URL (or the URL the call was placed
    # with), not its messaging URL.
    voice_url: str | None = None
    voice_method: str = "POST"
    voice_fallback_url: str | None = None
    voice_fallback_method: str = "POST"
    # The session's call as it is now, for the dialect's requests.
    call: Callable[[], CallFacts] | None = None
    messaging_service_sid: str | None = None  # the inbound message's service


# -- actions: what the step asks of the driver ---------------------------------------------


@dataclass(frozen=True, slots=True)
class Fetch:
    """Request the app; the driver answers with a `Fetched` or a `FetchFailed`."""

    request: AppRequest


@dataclass(frozen=True, slots=True)
class Send:
    """Accept these texts with the step's batch, all or none; the driver answers with their
    SIDs, or the `MessageRefused` that refused one."""

    requests: tuple[SendRequest, ...]
    direction: str


@dataclass(frozen=True, slots=True)
class Sleep:
    seconds: float


# Actions on the session's call; the driver answers `Speak` and `Silence` with whether the
# call is still up (False: the far end hung up), the others with None.


@dataclass(frozen=True, slots=True)
class Speak:
    """Speak or play these on the call; `early` before answering (early media)."""

    says: tuple[Say, ...]
    early: bool = False


@dataclass(frozen=True, slots=True)
class Silence:
    seconds: float
    early: bool = False


@dataclass(frozen=True, slots=True)
class EndCall:
    """Hang up (`after_seconds` later, the document going on), reject or deflect the call."""

    how: str  # hangup, reject or deflect
    reason: str | None = None
    to: str | None = None
    after_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class Dial:
    """Call every number in `to` at once; the first to answer wins, the others are
    cancelled. The driver answers with a `Dialed`.

    With `keep` the answered call becomes the session's own (Tropo `call`); otherwise it
    hears `says` and is hung up (a voice `message`).
    """

    to: tuple[str, ...]
    sender: str
    says: tuple[Say, ...] = ()
    keep: bool = False
    timeout_seconds: float = DEFAULT_RING_SECONDS


@dataclass(frozen=True, slots=True)
class Dialed:
    status: str  # answered, busy, no-answer, failed, canceled
    call_sid: str | None = None
    number: str | None = None


Action = Fetch | Send | Sleep | Speak | Silence | EndCall | Dial


@dataclass(frozen=True, slots=True)
class NextStep:
    """The step ended with more to do later: the driver queues a step with this payload.

    `ordered` steps run after the session's earlier ones; an ask's timeout is not ordered,
    so that it does not hold back the answer queued after it (its token decides).
    """

    delay: float = 0.0
    payload: dict[str, Any] = field(default_factory=dict)
    ordered: bool = True


Event = tuple[str, dict[str, Any]]


class Step:
    """One step of one session. Not reusable: make one per step."""

    def __init__(
        self,
        state: SessionState,
        app: AppFacts,
        dialects: Mapping[str, Dialect],
        detect: Callable[[bytes, str], str | None],
        clock: Callable[[], datetime],
    ) -> None:
        self.state = state
        self.app = app
        self.events: list[Event] = []
        self.sent = 0  # texts this step sends: after one, a request to the app ends the step
        self._dialects = dialects
        self._detect = detect
        self._clock = clock
        self._parsed: tuple[int, Document] | None = None
        # What `_document_done` decided, for `run` to carry out: the handler's says, and
        # why the session ends (None: it continues at the request it now owes).
        self._handled: tuple[tuple[Say, ...], str | None] | None = None
        # Running a verb inside another (a Message in a PreAnswer): failures only log.
        self._nested = False

    @property
    def dialect(self) -> Dialect:
        return self._dialects[self.state.dialect]

    def log(self, kind: str, detail: dict[str, Any]) -> None:
        self.events.append((kind, detail))

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> Generator[Action, Any, NextStep | None]:
        """Run verbs until the session waits, ends, or owes the app a request after sending."""
        while True:
            state = self.state
            if self._handled is not None:
                # A handler's `say` goes out in this step, before its `next` is requested.
                (says, end), self._handled = self._handled, None
                if state.call_sid is None:
                    yield from self._reply(says)
                elif says:
                    # Spoken if the call is still up; after a hang-up no one hears them.
                    yield Speak(tuple(says))
                if end is not None:
                    self._end(end)
            if state.state != "running":
                return None
            pending = state.waiting.get("continue")
            if pending is not None:
                if self.sent:
                    return NextStep()  # what was sent commits before the app is asked
                yield from self._continue(pending)
                continue
            if state.document_body is None:
                yield from self._fetch_start()
                continue
            document = self._document()
            if document is None:
                continue  # not valid: the session has ended
            resolved = state.waiting.get("resolved")
            if resolved is not None:
                outcome = yield from self._resolved(document, resolved)
            elif state.verb_index >= len(document.verbs):
                self._document_done(document, "continue")
                continue
            else:
                outcome = yield from self._execute(document, document.verbs[state.verb_index])
            if outcome is not None:
                return outcome

    def _execute(self, document: Document, verb: Any) -> Generator[Action, Any, NextStep | None]:
        on_call = self.state.call_sid is not None
        if isinstance(verb, Message):
            if self._voice_channel(verb):
                yield from self._voice_message(document, verb)
            else:
                yield from self._message(document, verb)
        elif isinstance(verb, Call):
            if self._voice_channel(verb):
                yield from self._voice_call(document, verb)
            else:
                self._call(document, verb)
        elif isinstance(verb, Say):
            if on_call:
                if (yield from self._speak((verb,))):
                    self._advance({"event": "verb", "verb": "say"})
            elif verb.speech_only:
                what = "'play'" if verb.audio else "speech"
                self._needs_call(document, what, required=verb.required)
            else:
                yield from self._reply([verb])
                self._advance({"event": "verb", "verb": "say"})
        elif isinstance(verb, Ask):
            if on_call:
                # Listening (speech, DTMF) comes with the media layer's input.
                self._verb_failed(
                    document,
                    self.dialect.errors.voice_verb_on_text,
                    "an ask on a call needs spoken or keyed input, which is not supported yet",
                    required=verb.required,
                )
                return None
            return (yield from self._ask(document, verb))
        elif isinstance(verb, Redirect):
            self._owe_request(verb.target, "redirect")
        elif isinstance(verb, Hangup) and on_call:
            yield from self._hangup(document, verb)
        elif isinstance(verb, Reject) and on_call:
            yield EndCall("reject", reason=verb.reason or "rejected")
            self._document_done(document, "hangup")
        elif isinstance(verb, Hangup | Reject):
            self._document_done(document, "hangup")
        elif isinstance(verb, Deflect):
            if on_call:
                yield EndCall("deflect", to=verb.to)
                self._advance({"event": "verb", "verb": "redirect", "to": verb.to})
                self._end(f"the call was redirected to {verb.to}")
            else:
                self._needs_call(document, "'redirect'", required=True)
        elif isinstance(verb, Wait):
            if on_call:
                # A call lives in this process: its waits happen here, however long.
                if (yield Silence(max(0.0, verb.seconds))):
                    self._advance({"event": "wait", "seconds": verb.seconds})
                else:
                    self._caller_hung_up(document)
                return None
            if verb.seconds > INLINE_WAIT_SECONDS:
                self._advance({"event": "wait", "seconds": verb.seconds})
                return NextStep(delay=verb.seconds)
            yield Sleep(max(0.0, verb.seconds))
            self._advance({"event": "wait", "seconds": verb.seconds})
        elif isinstance(verb, PreAnswer):
            yield from self._pre_answer(document, verb)
        elif isinstance(verb, VoiceVerb):
            if on_call:
                self._verb_failed(
                    document,
                    self.dialect.errors.voice_verb_on_text,
                    f"'{verb.kind}' is not supported on calls yet",
                    required=True,
                )
            else:
                self._needs_call(document, f"'{verb.kind}'", required=True)
        return None

    def _voice_channel(self, verb: Message | Call) -> bool:
        """Whether a message or call goes on the voice channel: as the app said, or when it
        said nothing, as the session's channel (a voice-token launch, a call)."""
        if verb.channel_default:
            return self.state.channel == Channel.VOICE
        return verb.channel == Channel.VOICE

    def _needs_call(self, document: Document, what: str, *, required: bool) -> None:
        self._verb_failed(
            document,
            self.dialect.errors.voice_verb_on_text,
            f"{what} needs a voice call; this is a text session",
            required=required,
        )

    # -- verbs on a call --------------------------------------------------------------------

    def _speak(self, says: tuple[Say, ...], early: bool = False) -> Generator[Action, Any, bool]:
        """Play `says` on the call; False (and the document done) if the caller hung up."""
        if (yield Speak(says, early)):
            return True
        document = self._document()
        if document is not None:
            self._caller_hung_up(document)
        return False

    def _caller_hung_up(self, document: Document) -> None:
        self.log("hangup", {"by": "caller", "verb_index": self.state.verb_index})
        self._document_done(document, "hangup", reason="the caller hung up")

    def _hangup(self, document: Document, verb: Hangup) -> Generator[Action, Any, None]:
        if verb.schedule_seconds:
            # Plivo's scheduled hang-up: the call ends then, the document goes on now.
            yield EndCall("hangup", reason=verb.reason, after_seconds=verb.schedule_seconds)
            self._advance({"event": "verb", "verb": "hangup", "after": verb.schedule_seconds})
            return
        yield EndCall("hangup", reason=verb.reason)
        self._document_done(document, "hangup")

    def _pre_answer(self, document: Document, verb: PreAnswer) -> Generator[Action, Any, None]:
        if self.state.call_sid is None:
            self._needs_call(document, "'preanswer'", required=True)
            return
        for inner in verb.verbs:
            if isinstance(inner, Say):
                if not (yield from self._speak((inner,), early=True)):
                    return
            elif isinstance(inner, Wait):
                if not (yield Silence(inner.seconds, early=True)):
                    self._caller_hung_up(document)
                    return
            else:
                # A text inside the PreAnswer: its failure is logged, the PreAnswer goes on.
                self._nested = True
                try:
                    yield from self._message(document, inner, advance=False)
                finally:
                    self._nested = False
        self._advance({"event": "verb", "verb": "preanswer"})

    def _voice_message(self, document: Document, verb: Message) -> Generator[Action, Any, None]:
        """Tropo's `message` on the voice channel: call every destination, say the text to
        the first that answers, hang up."""
        dial = self._dial_of(document, verb.to, verb.sender, verb.timeout_seconds, verb.required)
        if dial is None:
            return
        say = Say(verb.body, audio=verb.media)
        dialed = yield Dial(dial[0], dial[1], says=(say,), timeout_seconds=dial[2])
        self._dialed(document, dialed, verb.name, verb.required, "message")

    def _voice_call(self, document: Document, verb: Call) -> Generator[Action, Any, None]:
        """A call that becomes the session's: the verbs after it speak to whoever answered."""
        dial = self._dial_of(document, verb.to, verb.sender, verb.timeout_seconds, verb.required)
        if dial is None:
            return
        dialed = yield Dial(dial[0], dial[1], keep=True, timeout_seconds=dial[2])
        if dialed.status == "answered":
            state = self.state
            state.call_sid = dialed.call_sid
            state.remote_number = dialed.number
            state.local_number = dial[1]
        self._dialed(document, dialed, verb.name, verb.required, "call")

    def _dial_of(
        self,
        document: Document,
        to: tuple[str, ...],
        sender: str | None,
        timeout: float | None,
        required: bool,
    ) -> tuple[tuple[str, ...], str, float] | None:
        destinations = tuple(_strip_scheme(d) for d in to) or (
            (self.state.remote_number,) if self.state.remote_number else ()
        )
        caller = sender or self._own_number()
        if not destinations or caller is None:
            missing = "to" if not destinations else "from"
            self._verb_failed(
                document,
                self.dialect.errors.parse_failed,
                f"the call has no '{missing}' and none can be implied",
                required=required,
            )
            return None
        return destinations, _strip_scheme(caller), timeout or DEFAULT_RING_SECONDS

    def _dialed(
        self, document: Document, dialed: Dialed, name: str | None, required: bool, verb: str
    ) -> None:
        self.log(
            "call",
            {"status": dialed.status, "call_sid": dialed.call_sid, "to": dialed.number},
        )
        if dialed.status != "answered":
            self._verb_failed(
                document,
                CALL_NOT_ANSWERED,
                f"the call was not answered ({dialed.status})",
                required=required,
            )
            return
        results = [VerbResult(name, "SUCCESS", value=dialed.call_sid)] if name else []
        self._advance({"event": "verb", "verb": verb, "to": dialed.number}, results)

    # -- verbs ------------------------------------------------------------------------------

    def _message(
        self, document: Document, verb: Message, *, advance: bool = True
    ) -> Generator[Action, Any, None]:
        """A text; `advance` False for one inside another verb (Plivo's PreAnswer), which
        moves on itself."""
        state = self.state
        destinations = list(verb.to) or ([state.remote_number] if state.remote_number else [])
        if verb.first_only:
            destinations = destinations[:1]
        sender = verb.sender or self._own_number()
        if not destinations or sender is None:
            missing = "to" if not destinations else "from"
            self._verb_failed(
                document,
                self.dialect.errors.parse_failed,
                f"the message has no '{missing}' and none can be implied",
                required=verb.required,
            )
            return
        if not verb.body and not verb.media:
            # Twilio skips an empty <Message/> with a warning rather than failing the app.
            self._verb_failed(
                document,
                self.dialect.errors.parse_failed,
                "the message has neither a body nor media",
                required=False,
            )
            return
        callback = verb.status_callback
        requests = tuple(
            SendRequest(
                to=_strip_scheme(destination),
                from_=_strip_scheme(sender),
                body=verb.body,
                media_urls=verb.media,
                status_callback=callback.url if callback else None,
                status_callback_method=callback.method if callback else "POST",
                callback_format=self.dialect.name,
            )
            for destination in destinations
        )
        direction = "outbound-reply" if state.launch == "inbound" else "outbound-api"
        sent = yield Send(requests, direction)
        if isinstance(sent, MessageRefused):
            message = f"message refused: {sent.detail}"
            if verb.action is None:
                self._verb_failed(
                    document, self.dialect.errors.parse_failed, message, required=verb.required
                )
                return
            # With an action URL the app decides what follows: tell it the message failed.
            self._error(self.dialect.errors.parse_failed, message)
            self._owe_request(verb.action, "message", message_status="failed")
            return
        self._sent(sent, requests)
        if not advance:
            return
        results = [VerbResult(verb.name, "SUCCESS", value=sent[0])] if verb.name else []
        self._advance({"event": "verb", "verb": "message"}, results)
        if verb.action is not None:
            self._owe_request(verb.action, "message", sent[0], ACCEPTED_STATUS)

    def _call(self, document: Document, verb: Call) -> None:
        """Open a text conversation: the verbs after this one talk to `verb.to`."""
        sender = verb.sender or self._own_number()
        try:
            # A text goes to one party: like Tropo, only the first of several is reached.
            party = to_e164(_strip_scheme(verb.to[0]))
            local = to_e164(_strip_scheme(sender)) if sender else None
        except InvalidNumber as bad:
            self._verb_failed(
                document,
                self.dialect.errors.parse_failed,
                f"the call's number is not valid: {bad}",
                required=verb.required,
            )
            return
        if local is None:
            self._verb_failed(
                document,
                self.dialect.errors.parse_failed,
                "the call has no 'from' and the app has no number",
                required=verb.required,
            )
            return
        self.state.remote_number = party
        self.state.local_number = local
        self._advance({"event": "verb", "verb": "call", "to": party})

    def _reply(self, says: list[Say] | tuple[Say, ...]) -> Generator[Action, Any, None]:
        """Send say items as texts to the session's party (Tropo's `say` on text)."""
        state = self.state
        if state.remote_number is None or state.local_number is None:
            return
        requests = tuple(
            SendRequest(
                to=state.remote_number,
                from_=state.local_number,
                body=say.text,
                media_urls=say.media,
                callback_format="twilio",
            )
            for say in says
            if say.text or say.media
        )
        if not requests:
            return
        sent = yield Send(requests, "outbound-reply")
        if isinstance(sent, MessageRefused):
            self._error(self.dialect.errors.parse_failed, f"reply refused: {sent.detail}")
            return
        self._sent(sent, requests)

    def _ask(self, document: Document, verb: Ask) -> Generator[Action, Any, NextStep | None]:
        state = self.state
        if state.initial_text is not None and not state.initial_text_used:
            # Tropo hands the text that started the session to the first ask.
            state.initial_text_used = True
            return (yield from self._answer(document, verb, state.initial_text, attempt=1))
        yield from self._reply(verb.prompts)
        return self._wait_for_answer(verb, attempt=1)

    def _wait_for_answer(self, verb: Ask, attempt: int) -> NextStep:
        state = self.state
        token = secrets.token_hex(4)
        state.state = "waiting"
        state.waiting = {"verb_index": state.verb_index, "attempt": attempt, "token": token}
        self.log(
            "waiting",
            {"for": "answer", "attempt": attempt, "timeout_seconds": verb.timeout_seconds},
        )
        return NextStep(delay=verb.timeout_seconds, payload={"timeout": token}, ordered=False)

    def _resolved(
        self, document: Document, resolved: dict[str, Any]
    ) -> Generator[Action, Any, NextStep | None]:
        """Apply the answer (or the timeout) that ended the session's wait."""
        state = self.state
        state.waiting = {}
        verb = document.verbs[state.verb_index] if state.verb_index < len(document.verbs) else None
        if not isinstance(verb, Ask):
            return None
        attempt = int(resolved.get("attempt", 1))
        if resolved.get("answer") is not None:
            return (yield from self._answer(document, verb, resolved["answer"], attempt))
        self.log("timeout", {"attempt": attempt})
        timed_out = VerbResult(verb.name, "TIMEOUT", attempts=attempt)
        return (yield from self._retry_or_give_up(document, verb, attempt, timed_out, "timeout"))

    def _answer(
        self, document: Document, verb: Ask, text: str, attempt: int
    ) -> Generator[Action, Any, NextStep | None]:
        choices = verb.choices
        heard = grammar.answer_text(text, choices.mode, choices.terminator)
        matched = grammar.match(choices.grammar, heard) if heard is not None else None
        if matched is None:
            result = VerbResult(verb.name, "NOMATCH", utterance=text, attempts=attempt)
            return (yield from self._retry_or_give_up(document, verb, attempt, result, "nomatch"))
        result = VerbResult(
            name=verb.name,
            disposition="SUCCESS",
            value=matched.value,
            interpretation=matched.interpretation,
            utterance=heard,
            attempts=attempt,
            concept=matched.value,
        )
        self._advance({"event": "answer", "value": matched.value}, [result])
        return None

    def _retry_or_give_up(
        self, document: Document, verb: Ask, attempt: int, result: VerbResult, event: str
    ) -> Generator[Action, Any, NextStep | None]:
        # As VoiceXML (and so Tropo) does: the event's prompt, then the question again.
        yield from self._reply(verb.prompts_for(event, attempt))
        if attempt < verb.attempts:
            yield from self._reply(verb.prompts)
            return self._wait_for_answer(verb, attempt + 1)
        if not verb.required:
            # An ask that is not required lets the document go on without an answer.
            self._advance({"event": "answer", "disposition": result.disposition}, [result])
            return None
        self.state.results = [*self.state.results, _result_json(result)]
        self.log("incomplete", {"disposition": result.disposition})
        self._document_done(document, "incomplete")
        return None

    # -- documents and requests --------------------------------------------------------------

    def _fetch_start(self) -> Generator[Action, Any, None]:
        app = self.app
        if self.state.channel == Channel.VOICE:
            url, method = app.voice_url, app.voice_method
            fallback, fallback_method = app.voice_fallback_url, app.voice_fallback_method
        else:
            url, method = app.sms_url, app.sms_method
            fallback, fallback_method = app.sms_fallback_url, app.sms_fallback_method
        if not url:
            kind = "voice" if self.state.channel == Channel.VOICE else "messaging"
            self._end(f"the application has no {kind} URL")
            return
        targets = [Target(url, method)]
        if fallback:
            targets.append(Target(fallback, fallback_method))
        for target in targets:
            try:
                request = self.dialect.start_request(self._facts(), target, app.auth_token)
            except ValueError as exc:  # the dialect cannot start this kind of session
                self._end(str(exc), error=self.dialect.errors.fetch_failed)
                return
            if (yield from self._load_document(request)):
                return
        self._end("the app's document could not be fetched")

    def _owe_request(
        self,
        target: Target,
        event: str,
        message_sid: str | None = None,
        message_status: str | None = None,
        error: str | None = None,
    ) -> None:
        """Record that the session continues at `target`: `run` makes the request, now or,
        after texts this step sent, in the next step (the crash-safe order)."""
        self.state.waiting = {
            "continue": {
                "url": target.url,
                "method": target.method,
                "event": event,
                "message_sid": message_sid,
                "message_status": message_status,
                "error": error,
            }
        }

    def _continue(self, pending: dict[str, Any]) -> Generator[Action, Any, None]:
        state = self.state
        if state.documents_fetched >= MAX_DOCUMENTS:
            self._end(
                f"more than {MAX_DOCUMENTS} documents: a redirect loop?",
                error=self.dialect.errors.fetch_failed,
            )
            return
        event = pending["event"]
        progress = Progress(
            event=event,
            sequence=state.sequence + 1,
            duration_seconds=int((self._clock() - state.started_at).total_seconds()),
            results=tuple(VerbResult(**r) for r in state.results),
            error=pending.get("error"),
            message_sid=pending.get("message_sid"),
            message_status=pending.get("message_status"),
        )
        request = self.dialect.continue_request(
            self._facts(), Target(pending["url"], pending["method"]), progress, self.app.auth_token
        )
        if not (yield from self._load_document(request, sequence=progress.sequence)):
            self._end("the app's next document could not be fetched")
        elif event == "hangup":
            # After a hang-up the app is told, but no one is left to run its answer for.
            self._end("the app hung up")

    def _load_document(
        self, request: AppRequest, sequence: int | None = None
    ) -> Generator[Action, Any, bool]:
        self.log(
            "request",
            {
                "method": request.method,
                "url": request.wire_url,
                "params": dict(request.form) if request.form else request.json,
            },
        )
        fetched = yield Fetch(request)
        if isinstance(fetched, FetchFailed):
            errors = self.dialect.errors
            code = fetched.code or (errors.bad_status if fetched.status else errors.fetch_failed)
            self._error(code, fetched.reason, url=request.url)
            return False
        assert isinstance(fetched, Fetched)
        state = self.state
        if state.dialect == "auto":
            # Only RCML and Plivo can be told apart; anything else stays with "auto", whose
            # parser explains what is wrong (Tropo JSON needs a declared tropo app).
            detected = self._detect(fetched.body, fetched.content_type)
            if detected in ("rcml", "plivo"):
                state.dialect = detected
        self.log(
            "document",
            {
                "url": fetched.url,
                "status": fetched.status,
                "content_type": fetched.content_type,
                "latency_ms": fetched.latency_ms,
                "body": fetched.body[:8192].decode("utf-8", "replace"),
            },
        )
        state.document_url = fetched.url
        state.document_type = fetched.content_type
        state.document_body = fetched.body
        state.verb_index = 0
        state.documents_fetched += 1
        state.results = []
        state.waiting = {}
        if sequence is not None:
            state.sequence = sequence
        return True

    def _document(self) -> Document | None:
        """The current document, parsed once per step; None (and the session ended) if it
        is not valid."""
        state = self.state
        if self._parsed is not None and self._parsed[0] == state.documents_fetched:
            return self._parsed[1]
        try:
            document = self.dialect.parse(
                state.document_body or b"", state.document_type or "", state.document_url or ""
            )
        except DocumentError as error:
            self._end(f"the app's document is not valid: {error.message}", error=error.code)
            return None
        self._parsed = (state.documents_fetched, document)
        return document

    def _document_done(
        self,
        document: Document,
        event: str,
        *,
        error: str | None = None,
        reason: str | None = None,
    ) -> None:
        """The document ran out or stopped with `event`: follow its handler, or end.

        Tropo's rules: the event's own handler, else `continue`'s; a handler without `next`
        falls through to `continue`'s; with no `next` anywhere the session ends. The
        handler's `say` is sent in this step, its `next` requested in the next one.
        """
        fallback = document.handler("continue")
        handler = document.handler(event) or fallback
        says = handler.say if handler is not None else ()
        target = handler.next if handler is not None else None
        if target is None and handler is not None and fallback is not None:
            target = fallback.next
        if target is not None:
            self._owe_request(target, event, error=error)
            self._handled = (says, None)
        else:
            reason = reason or {
                "continue": "the document ended",
                "hangup": "the app hung up",
                "incomplete": "the ask got no valid answer",
            }.get(event, error or event)
            self._handled = (says, reason)

    def _verb_failed(self, document: Document, code: int, message: str, *, required: bool) -> None:
        self._error(code, message, verb_index=self.state.verb_index)
        if self._nested:
            return
        if not required:
            self._advance({"event": "verb skipped"})
        elif document.handlers:  # Tropo: the error event decides what happens next
            self._document_done(document, "error", error=message)
        else:  # RCML and Plivo skip what they cannot run, as Restcomm did
            self._advance({"event": "verb skipped"})

    # -- bookkeeping ------------------------------------------------------------------------

    def _advance(self, detail: dict[str, Any], results: list[VerbResult] | None = None) -> None:
        state = self.state
        self.log("verb", {"index": state.verb_index, **detail})
        state.verb_index += 1
        if results:
            state.results = [*state.results, *(_result_json(r) for r in results)]

    def _sent(self, sids: list[str], requests: tuple[SendRequest, ...]) -> None:
        self.sent += len(sids)
        for sid, request in zip(sids, requests, strict=True):
            self.log(
                "message",
                {
                    "sid": sid,
                    "to": request.to,
                    "from": request.from_,
                    "body": (request.body or "")[:160],
                },
            )

    def _error(self, code: int, message: str, **more: Any) -> None:
        self.log("error", {"code": code, "message": message, **more})

    def _end(self, reason: str, *, error: int | None = None) -> None:
        state = self.state
        if state.state == "ended":
            return
        state.state = "ended"
        state.end_reason = reason
        state.ended_at = self._clock()
        self.log("ended", {"reason": reason, "code": error})

    def _own_number(self) -> str | None:
        """Who a verb sends from, unless it names a sender: the session's number, else the
        app's."""
        return self.state.local_number or self.app.app_number

    def _facts(self) -> SessionFacts:
        state = self.state
        return SessionFacts(
            session_id=state.sid,
            account_sid=self.app.account_sid,
            started_at=state.started_at,
            channel=state.channel,
            launch=state.launch,
            local_number=state.local_number,
            remote_number=state.remote_number,
            initial_text=state.initial_text,
            inbound_message_sid=state.inbound_message_sid,
            parameters={k: str(v) for k, v in (state.parameters or {}).items()},
            inbound_media=self.app.inbound_media,
            num_segments=self.app.num_segments,
            call=self.app.call() if self.app.call is not None else None,
            messaging_service_sid=self.app.messaging_service_sid,
            opt_out_type=_opt_out_type(state),
        )


# Twilio's OptOutType for each kind of keyword.
_OPT_OUT_TYPES = {Keyword.OPT_OUT: "STOP", Keyword.OPT_IN: "START", Keyword.HELP: "HELP"}


def _opt_out_type(state: SessionState) -> str | None:
    """Which keyword the text that started the session is, in Twilio's words, if any."""
    if state.launch != "inbound" or state.initial_text is None:
        return None
    kind = keyword(state.initial_text)
    return None if kind is None else _OPT_OUT_TYPES[kind]


def _strip_scheme(address: str) -> str:
    for scheme in ("tel:", "sms:", "mms:"):
        if address.lower().startswith(scheme):
            return address[len(scheme) :]
    return address


def _result_json(result: VerbResult) -> dict[str, Any]:
    return {k: getattr(result, k) for k in VerbResult.__slots__}
