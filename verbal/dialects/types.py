"""Contracts between the dialect modules and the rest of Verbal.

A dialect is pure translation: documents in, verbs out; session facts in, the exact HTTP
requests its platform would make out (with their signatures). It does no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from verbal.dialects.verbs import Document, Target
from verbal.forms import encode_form


@dataclass(frozen=True, slots=True)
class MessageFacts:
    """What a status callback may tell about a message, independent of any platform."""

    sid: str
    account_sid: str
    from_number: str
    to_number: str
    body: str
    status: str
    error_code: int | None
    error_message: str | None
    media_urls: tuple[str, ...]
    num_segments: int
    date_updated: datetime
    messaging_service_sid: str | None = None  # the service it was sent through


@dataclass(frozen=True, slots=True)
class CallFacts:
    """What a request about a call may tell, independent of any platform.

    `status` uses Twilio's names (queued, ringing, in-progress, completed, busy, failed,
    no-answer, canceled); `direction` is inbound, outbound-api or outbound-dial.
    """

    sid: str
    account_sid: str
    from_number: str
    to_number: str
    status: str
    direction: str
    created_at: datetime
    parent_sid: str | None = None
    duration_seconds: int | None = None  # once the call has ended
    forwarded_from: str | None = None


@dataclass(frozen=True, slots=True)
class SessionFacts:
    """What the engine knows about a session, for the dialect to put into requests."""

    session_id: str
    account_sid: str
    started_at: datetime
    channel: str  # "text" or "voice"
    launch: str  # "inbound" (a message or call arrived) or "token" (Tropo Sessions API)
    local_number: str | None = None  # the app's number
    remote_number: str | None = None  # the other party
    initial_text: str | None = None
    inbound_message_sid: str | None = None
    inbound_media: tuple[str, ...] = ()
    parameters: dict[str, str] = field(default_factory=dict)  # Tropo token-launch parameters
    num_segments: int = 1
    call: CallFacts | None = None  # the session's call, when it talks on one
    # The Messaging Service whose pool holds the number the inbound text went to.
    messaging_service_sid: str | None = None
    # The inbound text is an opt-out keyword (STOP, START or HELP, Twilio's OptOutType).
    opt_out_type: str | None = None


@dataclass(frozen=True, slots=True)
class VerbResult:
    """The outcome of a verb the app asked to hear about (Tropo `actions`, RCML `action`)."""

    name: str | None
    disposition: str  # SUCCESS, TIMEOUT, NOMATCH, FAILED, HANGUP
    value: str | None = None
    interpretation: str | None = None
    utterance: str | None = None
    attempts: int = 1
    concept: str | None = None


@dataclass(frozen=True, slots=True)
class Progress:
    """Why the engine requests a continuation URL, and what happened before it."""

    event: str  # continue, incomplete, error, hangup, message, redirect
    sequence: int  # how many continuation requests this session made, this one included
    duration_seconds: int
    results: tuple[VerbResult, ...] = ()
    error: str | None = None
    message_sid: str | None = None  # the message an RCML/TwiML `action` reports on
    message_status: str | None = None


@dataclass(frozen=True, slots=True)
class AppRequest:
    """One HTTP request to the app, exactly as it goes on the wire."""

    method: str
    url: str
    form: tuple[tuple[str, str], ...] = ()  # form parameters (query string for GET)
    json: dict[str, Any] | None = None  # a JSON body instead of a form
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def wire_url(self) -> str:
        """The URL as requested: a GET carries its form in the query string.

        Signatures of GET requests cover exactly this URL, so signer and sender share it.
        """
        if self.method.upper() != "GET" or not self.form:
            return self.url
        separator = "&" if "?" in self.url else "?"
        return self.url + separator + encode_form(self.form)


@dataclass(frozen=True, slots=True)
class ErrorCodes:
    """The dialect's own numbers for what goes wrong with an app, for the session log."""

    fetch_failed: int
    bad_status: int
    bad_content_type: int
    parse_failed: int
    voice_verb_on_text: int


class CallbackFormat(Protocol):
    def params(self, message: MessageFacts) -> list[tuple[str, str]]:
        """The form parameters of a status callback for the message's current status."""
        ...

    def signature_headers(
        self, url: str, params: list[tuple[str, str]], auth_token: str
    ) -> dict[str, str]:
        """Headers that let the platform's SDK validate the request (for POST `url`)."""
        ...


class Dialect(Protocol):
    name: str
    errors: ErrorCodes
    status_callbacks: CallbackFormat

    def start_request(self, facts: SessionFacts, target: Target, auth_token: str) -> AppRequest:
        """The request that starts a session: an inbound message or a token launch."""
        ...

    def continue_request(
        self, facts: SessionFacts, target: Target, progress: Progress, auth_token: str
    ) -> AppRequest:
        """The request to a continuation URL (Tropo `next`, RCML `action`, `<Redirect>`)."""
        ...

    def parse(self, body: bytes, content_type: str, base_url: str) -> Document:
        """The app's answer as verbs; raises DocumentError. Relative URLs resolve on base_url."""
        ...

    def call_status_request(
        self,
        call: CallFacts,
        event: str,
        sequence: int,
        target: Target,
        auth_token: str,
        now: datetime,
    ) -> AppRequest | None:
        """The request that reports a call's `event` (initiated, ringing, answered,
        completed) to `target`, signed; None where the platform reports no such event.
        `sequence` counts the call's reports from 0."""
        ...
