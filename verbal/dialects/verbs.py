"""The shared verb model: what every dialect's document means, in one vocabulary.

A dialect module turns a Tropo JSON, RCML/TwiML or Plivo XML document into a `Document` of
these frozen values; the engine runs them without knowing where they came from. Verbs keep
only what changes behaviour; a dialect's cosmetic options (log security, voices)
are accepted by its parser and dropped here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Channel(enum.StrEnum):
    TEXT = "text"
    VOICE = "voice"


@dataclass(frozen=True, slots=True)
class Target:
    """A URL the engine requests, with its HTTP method (already resolved to absolute)."""

    url: str
    method: str = "POST"


@dataclass(frozen=True, slots=True)
class Message:
    """Send a text (or, on the voice channel, place a call and speak) to one or more parties.

    Empty `to` or `sender` mean the dialect's default: reply to the session's remote party,
    from the session's own number.
    """

    to: tuple[str, ...] = ()
    sender: str | None = None
    body: str = ""
    media: tuple[str, ...] = ()
    channel: Channel = Channel.TEXT
    # Tropo sends an SMS to a list of destinations to the first one only.
    first_only: bool = False
    # RCML/TwiML `action`: after submitting, request this and run the document it returns.
    action: Target | None = None
    status_callback: Target | None = None
    name: str | None = None
    required: bool = True
    # On the voice channel: how long the calls ring before giving up (None: the default).
    timeout_seconds: float | None = None
    # The app named no channel (Tropo): `channel` is the text default, and a session
    # launched for voice (Tropo's voice token) or on a call takes it as voice.
    channel_default: bool = False


@dataclass(frozen=True, slots=True)
class Call:
    """Start a conversation with a new party; the verbs after it talk to that party.

    On text this opens a text conversation (Tropo's `call` on network SMS, then `say`);
    on voice it places a call.
    """

    to: tuple[str, ...]
    sender: str | None = None
    channel: Channel = Channel.TEXT
    name: str | None = None
    required: bool = True
    timeout_seconds: float | None = None
    channel_default: bool = False  # as `Message.channel_default`


@dataclass(frozen=True, slots=True)
class Say:
    """Output on the session's channel: a text reply on text, speech on voice.

    `speech_only` marks verbs that only ever speak or play (RCML `<Say>` and `<Play>`, Plivo
    `<Speak>` and `<Play>`), which a text session cannot run. On a call, `audio` (URLs of
    sound files) is played instead of `text` being spoken, `loop` times (0: until the call
    ends, as RCML's `loop="0"`); `media` are a text's attachments and mean nothing to a call.
    """

    text: str
    media: tuple[str, ...] = ()
    speech_only: bool = False
    voice: str | None = None
    name: str | None = None
    required: bool = True
    audio: tuple[str, ...] = ()
    loop: int = 1


@dataclass(frozen=True, slots=True)
class Choices:
    grammar: str
    mode: str | None = None
    terminator: str | None = None


@dataclass(frozen=True, slots=True)
class Ask:
    """Prompt, then wait for the party's answer and match it against `choices`.

    `event_prompts` are sent instead of nothing when an attempt ends in that event: keys are
    `nomatch`, `timeout`, or one attempt's (`nomatch:2`), as Tropo's `say.event` names them.
    `bargein` is kept for the log only: on text the prompt is sent whole before any answer.
    """

    choices: Choices
    prompts: tuple[Say, ...] = ()
    attempts: int = 1
    timeout_seconds: float = 30.0
    name: str | None = None
    required: bool = True
    event_prompts: tuple[tuple[str, Say], ...] = ()
    bargein: bool = True

    def prompts_for(self, event: str, attempt: int) -> tuple[Say, ...]:
        """The prompts for `event` ending attempt number `attempt`: that attempt's own if the
        app gave some (`nomatch:2`), else the event's (`nomatch`)."""
        own = tuple(say for key, say in self.event_prompts if key == f"{event}:{attempt}")
        return own or tuple(say for key, say in self.event_prompts if key == event)


@dataclass(frozen=True, slots=True)
class Handler:
    """Tropo `on`: what to do when an event ends the document."""

    event: str
    next: Target | None = None
    say: tuple[Say, ...] = ()


@dataclass(frozen=True, slots=True)
class Redirect:
    """Stop this document and run the one at `target`."""

    target: Target


@dataclass(frozen=True, slots=True)
class Hangup:
    """End the call (on text: end the session).

    `reason` is what the platform reports as the hang-up cause (Plivo's `reason`:
    rejected, busy); `schedule_seconds` hangs up that much later while the document goes on
    (Plivo's `schedule`).
    """

    reason: str | None = None
    schedule_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class Reject:
    """Refuse a call that rings, without answering it (`rejected` or `busy`)."""

    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Deflect:
    """Send a ringing call elsewhere without answering it (Tropo's `redirect` to a SIP URI
    or number); the session ends."""

    to: str


@dataclass(frozen=True, slots=True)
class PreAnswer:
    """Plivo `<PreAnswer>`: play these to a ringing call as early media, before answering
    (a `Message` among them is sent as it comes)."""

    verbs: tuple[Say | Wait | Message, ...]


@dataclass(frozen=True, slots=True)
class Wait:
    seconds: float


@dataclass(frozen=True, slots=True)
class VoiceVerb:
    """A verb the engine cannot run yet (dial, record, conference, gather, ...).

    Parsed so that a document using it is understood; running it is a readable error in the
    dialect's convention (in a text session: it needs a call; on a call: not supported yet).
    """

    kind: str
    attributes: dict[str, Any] = field(default_factory=dict)


Verb = (
    Message | Call | Say | Ask | Redirect | Hangup | Reject | Wait | Deflect | PreAnswer | VoiceVerb
)


@dataclass(frozen=True, slots=True)
class Document:
    verbs: tuple[Verb, ...]
    handlers: tuple[Handler, ...] = ()

    def handler(self, event: str) -> Handler | None:
        return next((h for h in self.handlers if h.event == event), None)


class DocumentError(ValueError):
    """The app's document could not be understood; `code` is the dialect's error number."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
