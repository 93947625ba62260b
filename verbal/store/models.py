"""The database schema: one SQLAlchemy model per table.

The schema is changed only through Alembic migrations (`verbal/store/migrations`); a test
checks that the models and the migrations agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, stored naive: SQLite has no time zones."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    sid: Mapped[str] = mapped_column(String(34), unique=True)
    auth_token: Mapped[str] = mapped_column(String(64))
    plivo_auth_id: Mapped[str] = mapped_column(String(20), unique=True)
    friendly_name: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="active")
    # The replies to opt-out, opt-in and help keywords (verbal/messaging/optouts.py): NULL
    # for the default reply, an empty text for none.
    opt_out_reply: Mapped[str | None] = mapped_column(String(1600))
    opt_in_reply: Mapped[str | None] = mapped_column(String(1600))
    help_reply: Mapped[str | None] = mapped_column(String(1600))
    date_created: Mapped[datetime] = mapped_column(default=utcnow)
    date_updated: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Application(Base):
    """An app: where its documents come from and which dialect they are written in."""

    __tablename__ = "applications"

    id: Mapped[int] = mapped_column(primary_key=True)
    sid: Mapped[str] = mapped_column(String(34), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    friendly_name: Mapped[str] = mapped_column(String(64))
    # "tropo", "rcml" or "plivo"; "auto" tells RCML and Plivo apart by their first answer.
    dialect: Mapped[str] = mapped_column(String(8), default="auto")
    sms_url: Mapped[str | None] = mapped_column(String(2048))
    sms_method: Mapped[str] = mapped_column(String(8), default="POST")
    sms_fallback_url: Mapped[str | None] = mapped_column(String(2048))
    sms_fallback_method: Mapped[str] = mapped_column(String(8), default="POST")
    voice_url: Mapped[str | None] = mapped_column(String(2048))
    voice_method: Mapped[str] = mapped_column(String(8), default="POST")
    voice_fallback_url: Mapped[str | None] = mapped_column(String(2048))
    voice_fallback_method: Mapped[str] = mapped_column(String(8), default="POST")
    # Call status reports (voice); stored for the voice side of the engine.
    status_callback: Mapped[str | None] = mapped_column(String(2048))
    status_callback_method: Mapped[str] = mapped_column(String(8), default="POST")
    # Where status callbacks go for messages sent on behalf of this app without their own.
    sms_status_callback: Mapped[str | None] = mapped_column(String(2048))
    # Platform settings that Verbal keeps and shows back but does not act on (Plivo's
    # hangup_url, Restcomm's VoiceCallerIdLookup, ...), so an SDK round trip is faithful.
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # A number's own URLs (Twilio's IncomingPhoneNumber SmsUrl, ...) live in an application
    # the number owns: it is routed like any other but not listed among the applications.
    number_owned: Mapped[bool] = mapped_column(Boolean, default=False)
    # Deleted applications stay for the sessions that ran them, but route nothing.
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    # Tropo launches a session by token (Sessions API): one token per channel.
    messaging_token: Mapped[str | None] = mapped_column(String(96), unique=True)
    voice_token: Mapped[str | None] = mapped_column(String(96), unique=True)
    date_created: Mapped[datetime] = mapped_column(default=utcnow)
    date_updated: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class PhoneNumber(Base):
    __tablename__ = "phone_numbers"

    id: Mapped[int] = mapped_column(primary_key=True)
    sid: Mapped[str] = mapped_column(String(34), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    friendly_name: Mapped[str] = mapped_column(String(64))
    # The application the number's messages go to (Twilio's SmsApplicationSid, Plivo's
    # app_id); without one, its own URLs (`own_application_id`) answer.
    application_id: Mapped[int | None] = mapped_column(ForeignKey("applications.id"))
    own_application_id: Mapped[int | None] = mapped_column(ForeignKey("applications.id"))
    voice_application_id: Mapped[int | None] = mapped_column(ForeignKey("applications.id"))
    date_created: Mapped[datetime] = mapped_column(default=utcnow)
    date_updated: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @property
    def messaging_application_id(self) -> int | None:
        """The application that answers this number's messages, if any."""
        return self.application_id or self.own_application_id


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_account_created", "account_id", "date_created", "id"),
        Index("ix_messages_carrier_ref", "carrier", "carrier_message_id"),
        Index("ix_messages_work", "work_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sid: Mapped[str] = mapped_column(String(34), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    direction: Mapped[str] = mapped_column(String(16))
    from_number: Mapped[str] = mapped_column(String(64))
    to_number: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text, default="")
    media_urls: Mapped[list[Any]] = mapped_column(default=list)
    encoding: Mapped[str] = mapped_column(String(8))
    num_segments: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    status_callback: Mapped[str | None] = mapped_column(String(2048))
    status_callback_method: Mapped[str] = mapped_column(String(8), default="POST")
    # Which platform's parameter set and signature the status callbacks use.
    callback_format: Mapped[str] = mapped_column(String(16), default="twilio")
    carrier: Mapped[str | None] = mapped_column(String(64))
    carrier_message_id: Mapped[str | None] = mapped_column(String(128))
    error_code: Mapped[int | None] = mapped_column(Integer)
    error_message: Mapped[str | None] = mapped_column(String(512))
    expires_at: Mapped[datetime | None] = mapped_column()
    # A scheduled message is held until then (Twilio's SendAt).
    send_at: Mapped[datetime | None] = mapped_column()
    date_created: Mapped[datetime] = mapped_column(default=utcnow)
    date_updated: Mapped[datetime] = mapped_column(default=utcnow)
    date_sent: Mapped[datetime | None] = mapped_column()
    # The outbox (verbal/messaging/ledger.py): how far the message is (`rank`, so that no
    # writer moves it backwards), its newest timeline entry, the newest one owing a status
    # callback and the last callback settled; when work is due, who holds it, and the
    # singleton carrier whose holder alone may take it.
    rank: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    event_seq: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    callback_seq: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    callback_cursor: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    work_at: Mapped[float | None] = mapped_column(Float)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires: Mapped[float | None] = mapped_column(Float)
    lane: Mapped[str | None] = mapped_column(String(64))
    # The Messaging Service the message was sent through (Twilio's MessagingServiceSid).
    messaging_service_sid: Mapped[str | None] = mapped_column(String(34))


class MessagingService(Base):
    """A Twilio Messaging Service: a pool of the account's numbers that sends pick a sender
    from, with the status callback its messages use when they name none."""

    __tablename__ = "messaging_services"

    id: Mapped[int] = mapped_column(primary_key=True)
    sid: Mapped[str] = mapped_column(String(34), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    friendly_name: Mapped[str] = mapped_column(String(64))
    inbound_request_url: Mapped[str | None] = mapped_column(String(2048))
    inbound_method: Mapped[str] = mapped_column(String(8))
    fallback_url: Mapped[str | None] = mapped_column(String(2048))
    fallback_method: Mapped[str] = mapped_column(String(8))
    status_callback: Mapped[str | None] = mapped_column(String(2048))
    sticky_sender: Mapped[bool] = mapped_column(Boolean)
    # Texts to its numbers go to their own apps rather than to its inbound request URL.
    use_inbound_webhook_on_number: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    # The hidden application holding its inbound request URL, which answers the texts to
    # its numbers (unless they answer themselves: `use_inbound_webhook_on_number`).
    application_id: Mapped[int | None] = mapped_column(ForeignKey("applications.id"))
    date_created: Mapped[datetime] = mapped_column(default=utcnow)
    date_updated: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class MessagingServiceNumber(Base):
    """A number in a Messaging Service's sender pool: a number is in one service at most."""

    __tablename__ = "messaging_service_numbers"

    phone_number_id: Mapped[int] = mapped_column(ForeignKey("phone_numbers.id"), primary_key=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("messaging_services.id"), index=True)
    date_created: Mapped[datetime] = mapped_column(default=utcnow)


class Session(Base):
    """One conversation between an app and a party, and how far its document has run."""

    __tablename__ = "sessions"
    __table_args__ = (Index("ix_sessions_waiting", "state", "local_number", "remote_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sid: Mapped[str] = mapped_column(String(34), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    # None for a call placed through a Calls API from a number that runs no app.
    application_id: Mapped[int | None] = mapped_column(ForeignKey("applications.id"), index=True)
    dialect: Mapped[str] = mapped_column(String(8))
    channel: Mapped[str] = mapped_column(String(8))
    launch: Mapped[str] = mapped_column(String(8))
    local_number: Mapped[str | None] = mapped_column(String(64))
    remote_number: Mapped[str | None] = mapped_column(String(64))
    inbound_message_sid: Mapped[str | None] = mapped_column(String(34))
    initial_text: Mapped[str | None] = mapped_column(Text)
    initial_text_used: Mapped[bool] = mapped_column(Boolean, default=False)
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # running, waiting (for the party's answer to an ask) or ended
    state: Mapped[str] = mapped_column(String(8))
    # The current document as fetched, re-parsed to resume after a wait or a crash.
    document_url: Mapped[str | None] = mapped_column(Text)
    document_type: Mapped[str | None] = mapped_column(Text)
    # Raw bytes: the document's own declared encoding must survive until it is parsed.
    document_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    verb_index: Mapped[int] = mapped_column(Integer, default=0)
    documents_fetched: Mapped[int] = mapped_column(Integer, default=0)
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    results: Mapped[list[Any]] = mapped_column(default=list)
    waiting: Mapped[dict[str, Any]] = mapped_column(default=dict)
    end_reason: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column()
    # The call the session talks on, once it has one (an inbound call, or a `call` it placed).
    call_sid: Mapped[str | None] = mapped_column(String(34))


class Call(Base):
    """One call: its parties, direction, state and how it ended (`verbal/voice/records.py`).

    `status` follows Twilio's names (queued, ringing, in-progress, then completed, busy,
    failed, no-answer or canceled); a final status is written once. `node` is the process
    that runs the call: a call lives in that process's memory, so when it dies its live
    calls end (`verbal/voice/records.py`, `recover`).
    """

    __tablename__ = "calls"
    __table_args__ = (
        Index("ix_calls_account", "account_id", "id"),
        Index("ix_calls_live", "status", "node"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sid: Mapped[str] = mapped_column(String(34), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    application_id: Mapped[int | None] = mapped_column(ForeignKey("applications.id"))
    session_sid: Mapped[str | None] = mapped_column(String(34))
    parent_sid: Mapped[str | None] = mapped_column(String(34), index=True)
    # inbound, outbound-api or outbound-dial
    direction: Mapped[str] = mapped_column(String(16))
    from_number: Mapped[str] = mapped_column(String(64))
    to_number: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    # Whose conventions its requests and status callbacks follow (tropo, rcml, plivo).
    dialect: Mapped[str] = mapped_column(String(8))
    url: Mapped[str | None] = mapped_column(String(2048))
    method: Mapped[str] = mapped_column(String(8), default="POST")
    status_callback: Mapped[str | None] = mapped_column(String(2048))
    status_callback_method: Mapped[str] = mapped_column(String(8), default="POST")
    status_callback_events: Mapped[list[Any]] = mapped_column(default=list)
    timeout_seconds: Mapped[int] = mapped_column(Integer, default=60)
    end_cause: Mapped[str | None] = mapped_column(String(64))
    duration: Mapped[int | None] = mapped_column(Integer)
    node: Mapped[str] = mapped_column(String(128))
    date_created: Mapped[datetime] = mapped_column(default=utcnow)
    date_updated: Mapped[datetime] = mapped_column(default=utcnow)
    answered_at: Mapped[datetime | None] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()


class ConversationCookies(Base):
    """The cookies apps set in one conversation (account, app number, handset), sent back
    with its next requests (verbal/webhooks/conversations.py): a JSON list of cookies, and
    when the last of them expires (epoch seconds)."""

    __tablename__ = "conversation_cookies"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    app_number: Mapped[str] = mapped_column(String(64), primary_key=True)
    handset: Mapped[str] = mapped_column(String(64), primary_key=True)
    cookies: Mapped[str] = mapped_column(Text)
    expires: Mapped[float] = mapped_column(Float, index=True)


class OptOut(Base):
    """A recipient who asked a sender to stop (STOP and its synonyms, or the CLI): sends
    from `sender` to `recipient` are refused until they opt back in. The sender is the
    scope of the opt-out: one of the account's numbers, or a Messaging Service's SID (MG…)
    for all the numbers of its pool."""

    __tablename__ = "opt_outs"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    sender: Mapped[str] = mapped_column(String(64), primary_key=True)
    recipient: Mapped[str] = mapped_column(String(64), primary_key=True)
    date_created: Mapped[datetime] = mapped_column(default=utcnow)


class SessionEvent(Base):
    """The session's log: documents fetched, verbs run, messages sent, errors."""

    __tablename__ = "session_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)


class MessageEvent(Base):
    """One row per status transition, so every message has its own timeline."""

    __tablename__ = "message_events"
    __table_args__ = (Index("ix_message_events_seq", "message_id", "seq", unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), index=True)
    # The entry's place in its message's timeline, from 1.
    seq: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    status: Mapped[str] = mapped_column(String(16))
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    error_code: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[str | None] = mapped_column(String(512))
    # Whether a status callback is owed for this entry.
    callback: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")


class IdBlock(Base):
    """The next id not yet reserved, per table whose ids processes reserve in blocks."""

    __tablename__ = "id_blocks"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    next_id: Mapped[int] = mapped_column(BigInteger)


class Job(Base):
    """The durable work queue (transactional outbox).

    Times are epoch seconds in floats: the claim query compares them on every poll and
    floats compare the same way on every database.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_due", "run_at"),
        Index("ix_jobs_ordering", "ordering_key", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    # Jobs sharing an ordering key run one at a time, in id order (status callbacks of one
    # message); NULL means unordered.
    ordering_key: Mapped[str | None] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    run_at: Mapped[float] = mapped_column(Float)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires: Mapped[float | None] = mapped_column(Float)
    last_error: Mapped[str | None] = mapped_column(String(512))
    created_at: Mapped[float] = mapped_column(Float)


class WebhookAttempt(Base):
    """Every outbound webhook request we made, with what came back."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), index=True)
    event: Mapped[str] = mapped_column(String(32))
    url: Mapped[str] = mapped_column(String(2048))
    method: Mapped[str] = mapped_column(String(8))
    request_params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    attempt: Mapped[int] = mapped_column(Integer)
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_excerpt: Mapped[str | None] = mapped_column(Text)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(String(512))
    delivered: Mapped[bool] = mapped_column(Boolean, default=False)
    attempted_at: Mapped[datetime] = mapped_column(default=utcnow)


class SandboxRule(Base):
    """A scripted outcome for messages sent to matching sandbox handsets."""

    __tablename__ = "sandbox_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Rules script the network for one account's messages only.
    account_sid: Mapped[str] = mapped_column(String(34), index=True)
    pattern: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    delay_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    error_code: Mapped[int | None] = mapped_column(Integer)
    # "text" rules script messages to a handset, "voice" rules what it does when called.
    channel: Mapped[str] = mapped_column(String(8), default="text", server_default="text")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SandboxDelivery(Base):
    """A message the sandbox network accepted, and the receipt it owes.

    Pending receipts live here rather than in memory so that a restart still delivers them.
    """

    __tablename__ = "sandbox_deliveries"
    __table_args__ = (
        Index("ix_sandbox_handset", "account_sid", "handset", "id"),
        Index("ix_sandbox_receipt_due", "receipt_reported", "receipt_due"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    message_sid: Mapped[str] = mapped_column(String(34), unique=True)
    carrier_message_id: Mapped[str] = mapped_column(String(64), unique=True)
    account_sid: Mapped[str] = mapped_column(String(34))
    handset: Mapped[str] = mapped_column(String(32))
    sender: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    media_urls: Mapped[list[Any]] = mapped_column(default=list)
    outcome: Mapped[str] = mapped_column(String(16))
    in_inbox: Mapped[bool] = mapped_column(Boolean)
    visible_at: Mapped[float] = mapped_column(Float)
    receipt_status: Mapped[str | None] = mapped_column(String(16))
    receipt_error_code: Mapped[int | None] = mapped_column(Integer)
    receipt_due: Mapped[float | None] = mapped_column(Float)
    receipt_reported: Mapped[bool] = mapped_column(Boolean, default=False)
    submitted_at: Mapped[datetime] = mapped_column(default=utcnow)


class RateBucket(Base):
    """A token bucket shared by every worker node (a rate limit that spans processes)."""

    __tablename__ = "rate_buckets"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    # Epoch seconds of the last refill.
    updated: Mapped[float] = mapped_column(Float)


class SmscPart(Base):
    """One part of a long message an ESME is submitting to the sandbox SMSC, kept until
    the rest arrive (or they stop coming), so a restart loses no acknowledged part."""

    __tablename__ = "smsc_parts"
    __table_args__ = (
        Index("ix_smsc_parts_group", "system_id", "source_addr", "destination_addr", "reference"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    system_id: Mapped[str] = mapped_column(String(16))
    source_addr: Mapped[str] = mapped_column(String(65))
    destination_addr: Mapped[str] = mapped_column(String(65))
    reference: Mapped[int] = mapped_column(Integer)
    total: Mapped[int] = mapped_column(Integer)
    sequence: Mapped[int] = mapped_column(Integer)
    message_id: Mapped[str] = mapped_column(String(65), unique=True)
    # The submit_sm (or data_sm) as it arrived on the wire.
    pdu: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[float] = mapped_column(Float)


class SmscOutbox(Base):
    """A deliver_sm the sandbox SMSC owes an ESME (a receipt, or a handset's text), kept
    until the ESME acknowledges it, however long it stays unbound."""

    __tablename__ = "smsc_outbox"
    __table_args__ = (Index("ix_smsc_outbox_due", "system_id", "not_before"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    system_id: Mapped[str] = mapped_column(String(16))
    # The encoded deliver_sm; its sequence number is assigned when it is sent.
    pdu: Mapped[bytes] = mapped_column(LargeBinary)
    # Epoch seconds: not sent before (a receipt's delay, a retry's backoff), and reserved
    # for the sender that claimed it until `leased_until`.
    not_before: Mapped[float] = mapped_column(Float)
    leased_until: Mapped[float] = mapped_column(Float, default=0.0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[float] = mapped_column(Float)


class SmppPart(Base):
    """One part of a message an SMPP carrier accepted: its id there, and its receipt.

    A long message goes out as several submit_sm, each with an id of its own, and each
    earns a receipt; these rows tie the ids to the message (a receipt may come days later,
    to another worker) and hold each part's outcome until the message's is known. A
    resubmission after a crash or timeout skips the parts recorded here.
    """

    __tablename__ = "smpp_parts"
    __table_args__ = (
        Index("ix_smpp_parts_id", "carrier", "part_id", unique=True),
        Index("ix_smpp_parts_message", "message_sid"),
        # The id read as a number, decimal and hex: for receipts that spell it otherwise.
        Index("ix_smpp_parts_decimal", "carrier", "id_decimal"),
        Index("ix_smpp_parts_hex", "carrier", "id_hex"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    carrier: Mapped[str] = mapped_column(String(64))
    message_sid: Mapped[str] = mapped_column(String(34))
    part_id: Mapped[str] = mapped_column(String(65))
    id_decimal: Mapped[str | None] = mapped_column(String(80))
    id_hex: Mapped[str | None] = mapped_column(String(80))
    sequence: Mapped[int] = mapped_column(Integer)
    total: Mapped[int] = mapped_column(Integer)
    reference: Mapped[int] = mapped_column(Integer)
    # From its receipt: the carrier's state (DELIVRD ...) and what it means for Verbal.
    state: Mapped[str | None] = mapped_column(String(16))
    outcome: Mapped[str | None] = mapped_column(String(16))
    error_code: Mapped[int | None] = mapped_column(Integer)
    error_message: Mapped[str | None] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SmppWaitingReceipt(Base):
    """A receipt an SMPP carrier answered but could not match to a part yet.

    A receipt may beat its part's submit_sm_resp, or reach a worker before the one that sent
    the part has recorded it. The SMSC is told ESME_ROK only once this row has committed,
    so a crash before the match loses nothing: the carrier reloads these rows when it
    starts, and deletes one once its receipt is matched or given up on.
    """

    __tablename__ = "smpp_waiting_receipts"
    __table_args__ = (Index("ix_smpp_waiting_receipts_id", "carrier", "receipt_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    carrier: Mapped[str] = mapped_column(String(64))
    receipt_id: Mapped[str] = mapped_column(String(65))
    # What the receipt says (`ParsedReceipt`).
    state: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(16))
    error_code: Mapped[int | None] = mapped_column(Integer)
    error_message: Mapped[str | None] = mapped_column(String(512))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class SmppInboundPart(Base):
    """One part of a long inbound text whose other parts have not all arrived yet.

    Answered ESME_ROK only once stored; the carrier reloads the parts when it starts, and
    deletes a message's parts once the message is recorded.
    """

    __tablename__ = "smpp_inbound_parts"
    __table_args__ = (
        Index(
            "ix_smpp_inbound_parts_key",
            "carrier",
            "sender",
            "recipient",
            "reference",
            "total",
            "sequence",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    carrier: Mapped[str] = mapped_column(String(64))
    sender: Mapped[str] = mapped_column(String(64))
    recipient: Mapped[str] = mapped_column(String(64))
    reference: Mapped[int] = mapped_column(Integer)
    total: Mapped[int] = mapped_column(Integer)
    sequence: Mapped[int] = mapped_column(Integer)
    # `Alphabet` value; None for binary user data.
    alphabet: Mapped[str | None] = mapped_column(String(16))
    user_data: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class CarrierBindStatus(Base):
    """How one SMPP bind of one worker process is doing, as that worker last reported it.

    Workers hold the binds; `verbal carriers list` runs elsewhere and reads these rows.
    Each worker rewrites its own rows every few seconds and deletes them when it stops,
    so a row not updated for a while belongs to a worker that died.
    """

    __tablename__ = "carrier_binds"
    __table_args__ = (Index("ix_carrier_binds_owner", "owner", "bind", unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    carrier: Mapped[str] = mapped_column(String(64))
    bind: Mapped[str] = mapped_column(String(80))
    owner: Mapped[str] = mapped_column(String(128))
    mode: Mapped[str] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(16))
    window: Mapped[int] = mapped_column(Integer)
    in_flight: Mapped[int] = mapped_column(Integer)
    submitted: Mapped[int] = mapped_column(Integer)
    throttled: Mapped[int] = mapped_column(Integer)
    # submit_sm accepted per second over the last reporting interval.
    rate: Mapped[float] = mapped_column(Float)
    bound_since: Mapped[float | None] = mapped_column(Float)
    last_error: Mapped[str | None] = mapped_column(String(512))
    last_error_at: Mapped[float | None] = mapped_column(Float)
    # Epoch seconds of the worker's last report.
    updated_at: Mapped[float] = mapped_column(Float)


class Lease(Base):
    """A named singleton held by one worker process at a time (e.g. a carrier's binds).

    The holder renews it well before `expires`; a holder that dies stops renewing, and once
    the lease has run out another worker may take it.
    """

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    owner: Mapped[str] = mapped_column(String(128))
    # Epoch seconds.
    expires: Mapped[float] = mapped_column(Float)
