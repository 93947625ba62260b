"""The shapes of the API's JSON answers, for the OpenAPI document (see `verbal.api.openapi`).

Handlers build their answers as plain dicts, in each platform's exact shape; these models
only describe them and never filter or validate what a handler returns. The test suite
checks every answer against them (tests/api/test_openapi.py), which is what keeps the two
in step. Models forbid keys they do not list, so that a new key cannot go undocumented.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from verbal.carriers.encoding import Encoding
from verbal.carriers.sandbox import CallOutcome, Outcome
from verbal.messaging.states import Status

Direction = Literal["outbound-api", "outbound-reply", "inbound"]
CallStatus = Literal[
    "queued", "ringing", "in-progress", "completed", "busy", "failed", "no-answer", "canceled"
]
CallDirection = Literal["inbound", "outbound-api", "outbound-dial"]


class Shape(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- errors ---------------------------------------------------------------------------------------


class TwilioError(Shape):
    """Every error outside Plivo's API, also for Plivo's paths when the framework answers."""

    code: int = Field(description="Twilio's error code, or the HTTP status for other errors.")
    message: str
    more_info: str = Field(description="Twilio's page about `code`.")
    status: int = Field(description="The HTTP status again.")


class PlivoError(Shape):
    api_id: str
    error: str


# -- Twilio's Messages API ------------------------------------------------------------------------


class TwilioSubresourceUris(Shape):
    media: str
    feedback: str


class TwilioMessage(Shape):
    sid: str = Field(description="SM and 32 hex digits.")
    account_sid: str
    messaging_service_sid: str | None = Field(description="MG and 32 hex digits, or null.")
    from_: str = Field(alias="from", description="E.164.")
    to: str = Field(description="E.164.")
    body: str
    status: Status
    direction: Direction
    num_segments: str = Field(description="SMS parts, as a string.")
    num_media: str = Field(description="Media URLs, as a string.")
    error_code: int | None
    error_message: str | None
    price: None
    price_unit: Literal["USD"]
    api_version: Literal["2010-04-01"]
    date_created: str = Field(description="RFC 2822, UTC.")
    date_updated: str = Field(description="RFC 2822, UTC.")
    date_sent: str | None = Field(description="RFC 2822, UTC; null until a carrier took it.")
    uri: str
    subresource_uris: TwilioSubresourceUris


class TwilioPage(Shape):
    """Twilio's page envelope; each list adds its one records key."""

    first_page_uri: str
    next_page_uri: str | None
    previous_page_uri: str | None
    page: int
    page_size: int
    start: int
    end: int
    uri: str


class TwilioMessagePage(TwilioPage):
    messages: list[TwilioMessage]


class TwilioMedia(Shape):
    account_sid: str
    content_type: str
    date_created: str
    date_updated: str
    parent_sid: str
    sid: str
    uri: str


class TwilioMediaPage(TwilioPage):
    media_list: list[TwilioMedia]


# -- Twilio's Calls API ---------------------------------------------------------------------------


class TwilioCallUris(Shape):
    notifications: str
    recordings: str


class TwilioCall(Shape):
    sid: str = Field(description="CA and 32 hex digits.")
    account_sid: str
    parent_call_sid: str | None = Field(description="The call whose session placed this one.")
    to: str
    to_formatted: str
    from_: str = Field(alias="from")
    from_formatted: str
    phone_number_sid: None
    status: CallStatus
    direction: CallDirection
    start_time: str | None = Field(description="When it was answered, RFC 2822.")
    end_time: str | None = Field(description="RFC 2822.")
    duration: str | None = Field(description="Seconds, as a string, once it has ended.")
    price: None
    price_unit: Literal["USD"]
    answered_by: None
    forwarded_from: None
    caller_name: None
    group_sid: None
    queue_time: str
    stir_verstat: None
    trunk_sid: None
    api_version: Literal["2010-04-01"]
    date_created: str
    date_updated: str
    uri: str
    subresource_uris: TwilioCallUris


class TwilioCallPage(TwilioPage):
    calls: list[TwilioCall]


# -- Twilio's Accounts, Applications and IncomingPhoneNumbers -----------------------------------


class TwilioAccountUris(Shape):
    applications: str
    incoming_phone_numbers: str
    messages: str


class TwilioAccount(Shape):
    auth_token: str
    date_created: str
    date_updated: str
    friendly_name: str
    owner_account_sid: str
    sid: str
    status: str
    subresource_uris: TwilioAccountUris
    type: Literal["Full"]
    uri: str


class TwilioAccountPage(TwilioPage):
    accounts: list[TwilioAccount]


class TwilioApplication(Shape):
    account_sid: str
    api_version: Literal["2010-04-01"]
    date_created: str
    date_updated: str
    friendly_name: str
    message_status_callback: str | None
    sid: str
    sms_fallback_method: str
    sms_fallback_url: str | None
    sms_method: str
    sms_status_callback: str | None
    sms_url: str | None
    status_callback: str | None
    status_callback_method: str
    uri: str
    voice_caller_id_lookup: bool
    voice_fallback_method: str
    voice_fallback_url: str | None
    voice_method: str
    voice_url: str | None
    public_application_connect_enabled: bool


class TwilioApplicationPage(TwilioPage):
    applications: list[TwilioApplication]


class TwilioCapabilities(Shape):
    voice: bool
    sms: bool
    mms: bool
    fax: bool


class TwilioNumber(Shape):
    """URLs and methods are the number's own; "" when it has none."""

    account_sid: str
    address_sid: None
    address_requirements: str
    api_version: Literal["2010-04-01"]
    beta: bool
    capabilities: TwilioCapabilities
    date_created: str
    date_updated: str
    friendly_name: str
    identity_sid: None
    phone_number: str = Field(description="E.164.")
    origin: str
    sid: str
    sms_application_sid: str = Field(description='The attached application, or "".')
    sms_fallback_method: str
    sms_fallback_url: str
    sms_method: str
    sms_url: str
    status_callback: str
    status_callback_method: str
    trunk_sid: None
    uri: str
    voice_receive_mode: str
    voice_application_sid: str
    voice_caller_id_lookup: bool
    voice_fallback_method: str
    voice_fallback_url: str
    voice_method: str
    voice_url: str
    emergency_status: str
    emergency_address_sid: None
    emergency_address_status: str
    bundle_sid: None
    status: str
    type: str


class TwilioNumberPage(TwilioPage):
    incoming_phone_numbers: list[TwilioNumber]


# -- Twilio's Messaging Services (v1) -------------------------------------------------------------


class TwilioV1Meta(Shape):
    """The v1 page envelope's links (absolute URLs) and the name of its records key."""

    page: int
    page_size: int
    first_page_url: str
    previous_page_url: str | None
    url: str
    next_page_url: str | None
    key: str


class TwilioServiceLinks(Shape):
    phone_numbers: str


class TwilioService(Shape):
    sid: str = Field(description="MG and 32 hex digits.")
    account_sid: str
    friendly_name: str
    date_created: str = Field(description="ISO 8601, UTC.")
    date_updated: str = Field(description="ISO 8601, UTC.")
    inbound_request_url: str | None
    inbound_method: str
    fallback_url: str | None
    fallback_method: str
    status_callback: str | None
    sticky_sender: bool
    mms_converter: bool
    smart_encoding: bool
    scan_message_content: str
    fallback_to_long_code: bool
    area_code_geomatch: bool
    synchronous_validation: bool
    validity_period: int
    usecase: str
    us_app_to_person_registered: bool
    use_inbound_webhook_on_number: bool
    url: str
    links: TwilioServiceLinks


class TwilioServicePage(Shape):
    services: list[TwilioService]
    meta: TwilioV1Meta


class TwilioServiceNumber(Shape):
    sid: str = Field(description="The number's SID (PN…).")
    account_sid: str
    service_sid: str
    date_created: str = Field(description="When it joined the pool, ISO 8601.")
    date_updated: str
    phone_number: str
    country_code: str | None = Field(description="ISO 3166 alpha-2.")
    capabilities: list[str]
    url: str


class TwilioServiceNumberPage(Shape):
    phone_numbers: list[TwilioServiceNumber]
    meta: TwilioV1Meta


# -- Plivo's Message API --------------------------------------------------------------------------


class PlivoQueued(Shape):
    api_id: str
    message: str
    message_uuid: list[str] = Field(description="One per message, in the order of `dst`.")
    invalid_number: list[str] = Field(
        default_factory=list, description="Only when some destinations could not be used."
    )


class PlivoMessage(Shape):
    message_uuid: str
    from_number: str = Field(description="Digits with the country code, no +.")
    to_number: str = Field(description="Digits with the country code, no +.")
    message_state: str = Field(
        description="queued, sent, delivered, undelivered or failed; received when inbound."
    )
    message_direction: Literal["inbound", "outbound"]
    message_type: Literal["sms", "mms"]
    message_time: str = Field(description="`2017-05-22 21:36:14+00:00`, UTC.")
    message_sent_time: str | None
    message_updated_time: str
    text: str
    units: int
    total_amount: str
    total_rate: str
    error_code: str | None = Field(description="Plivo's code, when failed or undelivered.")
    error_message: str | None
    powerpack_id: str | None = Field(
        description="The Messaging Service it was sent through, in UUID form, or null."
    )
    resource_uri: str


class PlivoMessageFetched(PlivoMessage):
    api_id: str


class PlivoCallFired(Shape):
    api_id: str
    message: Literal["call fired"]
    request_uuid: str | list[str] = Field(description="The call's UUID; a list for several `to`.")


class PlivoCall(Shape):
    api_id: str
    answer_time: str | None
    bill_duration: int
    billed_duration: int
    call_direction: Literal["inbound", "outbound"]
    call_duration: int
    call_status: CallStatus
    call_uuid: str
    end_time: str | None
    from_number: str
    hangup_cause_name: str | None
    initiation_time: str
    parent_call_uuid: str | None
    resource_uri: str
    to_number: str
    total_amount: str
    total_rate: str


class PlivoPageMeta(Shape):
    limit: int
    offset: int
    next: str | None
    previous: str | None
    total_count: int


class PlivoMessagePage(Shape):
    api_id: str
    meta: PlivoPageMeta
    objects: list[PlivoMessage]


# -- Plivo's Application and Number resources -----------------------------------------------------


class PlivoCreated(Shape):
    api_id: str
    app_id: str
    message: Literal["created"]


class PlivoChanged(Shape):
    api_id: str
    message: Literal["changed"]


class PlivoApplication(Shape):
    answer_method: str
    answer_url: str | None
    app_id: str
    app_name: str
    application_type: Literal["XML"]
    default_app: bool
    default_endpoint_app: bool
    enabled: bool
    fallback_answer_url: str | None
    fallback_method: str
    hangup_method: str
    hangup_url: str | None
    log_incoming_message: bool
    message_method: str
    message_url: str | None
    public_uri: bool
    resource_uri: str
    sip_uri: None
    sub_account: str | None


class PlivoApplicationFetched(PlivoApplication):
    api_id: str


class PlivoApplicationPage(Shape):
    api_id: str
    meta: PlivoPageMeta
    objects: list[PlivoApplication]


class PlivoNumber(Shape):
    active: bool
    added_on: str = Field(description="YYYY-MM-DD.")
    alias: str | None
    application: str | None = Field(description="The attached application's resource URI.")
    carrier: str | None
    city: None
    cnam_lookup: str
    compliance_application_id: None
    compliance_status: None
    country: str | None
    mms_enabled: bool
    mms_rate: str
    monthly_rental_rate: str
    number: str = Field(description="Digits with the country code, no +.")
    number_type: str
    region: None
    renewal_date: None
    resource_uri: str
    sms_enabled: bool
    sms_rate: str
    sub_account: None
    tendlc_campaign_id: None
    tendlc_registration_status: None
    toll_free_sms_verification: None
    voice_enabled: bool
    voice_rate: str


class PlivoNumberFetched(PlivoNumber):
    api_id: str


class PlivoNumberPage(Shape):
    api_id: str
    meta: PlivoPageMeta
    objects: list[PlivoNumber]


# -- Restcomm's REST API (its JSON; the XML is the same fields in PascalCase) ---------------------


class RestcommSms(Shape):
    sid: str
    date_created: str
    date_updated: str
    date_sent: str | None = Field(description="ISO 8601.")
    account_sid: str
    from_: str = Field(alias="from")
    to: str
    body: str
    status: str
    direction: str
    error_code: int | None
    error_message: str | None
    price: str
    price_unit: str
    api_version: Literal["2012-04-24"]
    uri: str


class RestcommMessage(RestcommSms):
    media_urls: list[str]


class RestcommPage(Shape):
    """Restcomm's list envelope; absent links are the string "null", as Restcomm writes them."""

    page: int
    num_pages: int
    page_size: int
    total: int
    start: str
    end: str
    uri: str
    first_page_uri: str
    previous_page_uri: str
    next_page_uri: str
    last_page_uri: str


class RestcommSmsPage(RestcommPage):
    messages: list[RestcommSms]


class RestcommCall(Shape):
    sid: str
    instance_id: None
    date_created: str
    date_updated: str
    parent_call_sid: str | None
    account_sid: str
    to: str
    from_: str = Field(alias="from")
    phone_number_sid: None
    status: CallStatus
    start_time: str | None
    end_time: str | None
    duration: int | None
    price: str
    price_unit: str
    direction: CallDirection
    answered_by: None
    api_version: Literal["2012-04-24"]
    forwarded_from: None
    caller_name: None
    uri: str


class RestcommCallPage(RestcommPage):
    calls: list[RestcommCall]


class RestcommNumberSummary(Shape):
    sid: str
    friendly_name: str
    phone_number: str
    voice_application_sid: str | None
    sms_application_sid: str | None


class RestcommApplication(Shape):
    sid: str
    date_created: str
    date_updated: str
    friendly_name: str
    account_sid: str
    api_version: Literal["2012-04-24"]
    voice_caller_id_lookup: bool
    uri: str
    rcml_url: str | None
    kind: str | None
    numbers: list[RestcommNumberSummary] = Field(
        default_factory=list, description="Only when asked for."
    )


class RestcommApplicationPage(RestcommPage):
    applications: list[RestcommApplication]


class RestcommCapabilities(Shape):
    voice_capable: bool
    sms_capable: bool
    mms_capable: bool
    fax_capable: bool


class RestcommNumber(Shape):
    sid: str
    account_sid: str
    friendly_name: str
    phone_number: str
    voice_url: str | None
    voice_method: str
    voice_fallback_url: str | None
    voice_fallback_method: str
    status_callback: str | None
    status_callback_method: str
    voice_caller_id_lookup: bool
    voice_application_sid: str | None
    voice_application_name: str = Field(
        default_factory=str, description="Only with a voice application."
    )
    date_created: str
    date_updated: str
    sms_url: str | None
    sms_method: str
    sms_fallback_url: str | None
    sms_fallback_method: str
    sms_application_sid: str | None
    sms_application_name: str = Field(
        default_factory=str, description="Only with an SMS application."
    )
    capabilities: RestcommCapabilities
    api_version: Literal["2012-04-24"]
    uri: str


class RestcommNumberPage(RestcommPage):
    incoming_phone_numbers: list[RestcommNumber] = Field(alias="incomingPhoneNumbers")


# -- the sandbox network --------------------------------------------------------------------------


class HandsetDelivery(Shape):
    message_sid: str
    from_: str = Field(alias="from")
    to: str
    body: str
    media_urls: list[str]
    received_at: str = Field(description="ISO 8601.")


class HandsetInbox(Shape):
    handset: str
    messages: list[HandsetDelivery]


class HandsetSent(Shape):
    message_sid: str
    from_: str = Field(alias="from")
    to: str


class SandboxRule(Shape):
    id: int
    pattern: str
    outcome: Outcome | CallOutcome
    delay_seconds: float
    error_code: int | None
    channel: Literal["text", "voice"]


class HandsetHeard(Shape):
    kind: Literal["speech", "audio", "silence"]
    detail: str = Field(description="The text, the sound file's URL, or the seconds of silence.")
    seconds: float = Field(description="How long the handset heard it.")
    early: bool = Field(description="Heard before the call was answered (early media).")


class HandsetCall(Shape):
    call_sid: str
    handset: str
    other: str = Field(description="The account's number at the other end.")
    direction: Literal["incoming", "outgoing"]
    status: CallStatus
    cause: str | None = Field(description="Why the call ended.")
    started_at: str = Field(description="ISO 8601.")
    answered_at: str | None
    ended_at: str | None
    heard: list[HandsetHeard]
    recording_seconds: float
    recording_url: str


class HandsetCalls(Shape):
    handset: str
    calls: list[HandsetCall]


class HandsetDialed(Shape):
    call_sid: str
    from_: str = Field(alias="from")
    to: str


class SandboxRules(Shape):
    rules: list[SandboxRule]


# -- Verbal's own API -----------------------------------------------------------------------------


class TimelineEvent(Shape):
    status: Status
    at: str = Field(description="ISO 8601.")
    error_code: int | None


class CallbackAttempt(Shape):
    event: str
    url: str
    method: str
    attempt: int
    response_status: int | None
    latency_ms: float | None
    error: str | None
    delivered: bool
    at: str = Field(description="ISO 8601.")


class MessageTimeline(Shape):
    sid: str
    direction: Direction
    from_: str = Field(alias="from")
    to: str
    status: Status
    encoding: Encoding
    num_segments: int
    carrier: str | None
    carrier_message_id: str | None
    error_code: int | None
    error_message: str | None
    events: list[TimelineEvent]
    callbacks: list[CallbackAttempt]


class SessionSummary(Shape):
    sid: str
    dialect: str
    channel: str
    launch: str
    state: str
    local_number: str | None
    remote_number: str | None
    end_reason: str | None
    started_at: str = Field(description="ISO 8601.")
    ended_at: str | None


class Sessions(Shape):
    sessions: list[SessionSummary]


class SessionEvent(BaseModel):
    """Each kind of event has its own further keys; docs/apps.md lists them."""

    model_config = ConfigDict(extra="allow")

    kind: str
    at: str = Field(description="ISO 8601.")


class SessionLog(SessionSummary):
    events: list[SessionEvent]


class OptOutEntry(Shape):
    scope: str = Field(description="The number (E.164) or Messaging Service (MG…) opted out of.")
    scope_type: Literal["number", "messaging_service"]
    recipient: str
    date_created: str = Field(description="ISO 8601.")


class OptOuts(Shape):
    opt_outs: list[OptOutEntry]


class OptOutReply(Shape):
    mode: Literal["default", "custom", "off"]
    text: str | None = Field(description="What is sent; null when the reply is off.")


class OptOutReplies(Shape):
    opt_out: OptOutReply = Field(description="The reply to STOP and its synonyms.")
    opt_in: OptOutReply = Field(description="The reply to START and its synonyms.")
    help: OptOutReply = Field(description="The reply to HELP and INFO.")


# -- Tropo's Sessions API -------------------------------------------------------------------------


class TropoSessionReply(Shape):
    success: bool
    token: str
    id: str = Field(default_factory=str, description="The new session's SID; only on success.")
    reason: str = Field(default_factory=str, description="Why not; only on failure.")
