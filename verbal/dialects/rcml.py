"""RCML (Restcomm) and TwiML (Twilio): one XML dialect, translated to Verbal's verbs.

Restcomm built RCML as a copy of TwiML, so one parser serves both: `<Message>` in its Twilio
form (plain numbers, `<Body>`/`<Media>` nouns) and its RCML form (`sms:`/`mms:` channel URIs,
`<Media contentType>`), the older `<Sms>`, `<Redirect>`, and the voice verbs, which are parsed
so a document using them is understood but run only on a call.

The requests Verbal makes are Twilio's (the superset: Restcomm sends a subset of the same
names) and carry `X-Twilio-Signature`, so apps validating with Twilio's SDK accept them.

App documents are hostile input. The parser refuses DTDs and entity declarations (entity
expansion, external entities), caps size and depth, and reports anything it cannot use as a
`DocumentError` with a Twilio error number, never as a crash.
"""

from __future__ import annotations

import functools
import re
from dataclasses import replace
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urldefrag, urljoin
from xml.etree.ElementTree import Element, ParseError, TreeBuilder

import phonenumbers
from defusedxml import DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import DefusedXMLParser

from verbal.dialects import twilio
from verbal.dialects.types import (
    AppRequest,
    CallFacts,
    ErrorCodes,
    MessageFacts,
    Progress,
    SessionFacts,
)
from verbal.dialects.verbs import (
    Channel,
    Document,
    DocumentError,
    Hangup,
    Message,
    Redirect,
    Reject,
    Say,
    Target,
    Verb,
    VoiceVerb,
    Wait,
)

# Twilio's error numbers, which Restcomm's interpreters reuse.
HTTP_CONNECTION_FAILED = 11205
HTTP_RETRIEVAL_FAILED = 11200
DOCUMENT_TOO_LARGE = 11750
DOCUMENT_PARSE_FAILED = 12100
ROOT_NOT_RESPONSE = 12102
SCHEMA_INVALID = 12200
INVALID_CONTENT_TYPE = 12300
INVALID_VERB_FOR_MESSAGE = 14110

ERRORS = ErrorCodes(
    fetch_failed=HTTP_CONNECTION_FAILED,
    bad_status=HTTP_RETRIEVAL_FAILED,
    bad_content_type=INVALID_CONTENT_TYPE,
    parse_failed=DOCUMENT_PARSE_FAILED,
    voice_verb_on_text=INVALID_VERB_FOR_MESSAGE,
)

# Twilio refuses documents over 64 kB (11750). Real TwiML nests a handful of levels deep
# (Response > Gather > Say > SSML tags); the depth cap keeps the tree walks below far from
# Python's recursion limit whatever the document.
MAX_DOCUMENT_BYTES = 64 * 1024
MAX_DEPTH = 12

XML_CONTENT_TYPES = frozenset({"text/xml", "application/xml", "text/html"})
# Twilio sends a text/plain answer back to the sender as it is (Restcomm answers 12300).
PLAIN_TEXT = "text/plain"

VOICE_VERBS = frozenset(
    {
        "Conference",
        "Connect",
        "Dial",
        "Echo",
        "Email",
        "Enqueue",
        "Fax",
        "Gather",
        "Hold",
        "Leave",
        "Pay",
        "Record",
        "Refer",
        "Resume",
        "Start",
        "Stop",
    }
)
# The verbs the shared model has; those that need a call (Say, Play) run only on one.
TEXT_VERBS = frozenset({"Hangup", "Message", "Pause", "Play", "Redirect", "Reject", "Say", "Sms"})
_VERBS_BY_LOWER_NAME = {name.lower(): name for name in VOICE_VERBS | TEXT_VERBS}

METHODS = frozenset({"GET", "POST"})
REJECT_REASONS = frozenset({"rejected", "busy"})
# RCML channel URIs; any other scheme (`client:`, `whatsapp:`) is left for routing to judge.
_CHANNEL_SCHEME = re.compile(r"^(sms|mms):", re.IGNORECASE)


# -- documents --------------------------------------------------------------------------------


def parse(body: bytes, content_type: str, base_url: str) -> Document:
    media_type, charset = _media_type(content_type)
    if media_type not in XML_CONTENT_TYPES and media_type != PLAIN_TEXT:
        shown = media_type or "no Content-Type"
        raise DocumentError(
            INVALID_CONTENT_TYPE,
            f"the app answered with {shown}; RCML/TwiML must be text/xml, application/xml or "
            "text/html (or text/plain for a text reply)",
        )
    if len(body) > MAX_DOCUMENT_BYTES:
        raise DocumentError(
            DOCUMENT_TOO_LARGE,
            f"the document is {len(body)} bytes; the limit is {MAX_DOCUMENT_BYTES}",
        )
    if media_type == PLAIN_TEXT:
        return _plain_text(body, charset)
    # The XML declaration, not the HTTP charset, decides how XML is decoded: web frameworks
    # label responses with their default charset, while the SDKs always declare theirs.
    root = _parse_xml(body)
    if root.tag != "Response":
        raise DocumentError(
            ROOT_NOT_RESPONSE, f"the root element must be <Response>, not <{root.tag}>"
        )
    return Document(verbs=tuple(_verb(element, base_url) for element in root))


def _media_type(content_type: str) -> tuple[str, str | None]:
    media_type, *parameters = content_type.split(";")
    charset = None
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"') or None
    return media_type.strip().lower(), charset


def _plain_text(body: bytes, charset: str | None) -> Document:
    try:
        text = body.decode(charset or "utf-8")
    except (LookupError, UnicodeDecodeError) as error:
        raise DocumentError(
            DOCUMENT_PARSE_FAILED, f"the text/plain answer cannot be decoded: {error}"
        ) from None
    text = text.strip()
    return Document(verbs=(Say(text),) if text else ())


# -- XML, defended ----------------------------------------------------------------------------


class _TooDeep(Exception):
    pass


class _DepthLimitedTreeBuilder(TreeBuilder):
    """Stops the parse as soon as elements nest deeper than MAX_DEPTH."""

    def __init__(self) -> None:
        super().__init__()
        self._depth = 0

    def start(self, tag: Any, attrs: Any) -> Element:
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _TooDeep
        return super().start(tag, attrs)

    def end(self, tag: Any) -> Element:
        self._depth -= 1
        return super().end(tag)


class _DefendedParser(DefusedXMLParser):
    def __init__(self) -> None:
        super().__init__(
            target=_DepthLimitedTreeBuilder(),
            forbid_dtd=False,
            forbid_entities=True,
            forbid_external=True,
        )
        # Entity declarations sit inside the DTD. Refusing the DTD where it starts would
        # report a billion-laughs or XXE payload as a mere DTD; refusing it where it ends lets
        # the entity checks name the attack first.
        self.parser.EndDoctypeDeclHandler = self._refuse_dtd

    def _refuse_dtd(self) -> None:
        raise DTDForbidden(None, None, None)


def _parse_xml(body: bytes) -> Element:
    if not body.strip():
        raise DocumentError(DOCUMENT_PARSE_FAILED, "the document is empty")
    parser = _DefendedParser()
    try:
        parser.feed(_escape_stray_ampersands(body))
        root: Element = parser.close()
    except EntitiesForbidden as error:
        if error.sysid:
            message = (
                f"external entities are not allowed (entity {error.name!r} "
                f"refers to {error.sysid!r})"
            )
        else:
            message = "entity declarations are not allowed (they enable entity expansion)"
        raise DocumentError(DOCUMENT_PARSE_FAILED, message) from None
    except ExternalReferenceForbidden as error:
        raise DocumentError(
            DOCUMENT_PARSE_FAILED, f"external references are not allowed ({error.sysid!r})"
        ) from None
    except DTDForbidden:
        raise DocumentError(
            DOCUMENT_PARSE_FAILED, "document type declarations (DTDs) are not allowed"
        ) from None
    except _TooDeep:
        raise DocumentError(
            DOCUMENT_PARSE_FAILED, f"elements nest deeper than {MAX_DEPTH} levels"
        ) from None
    except ParseError as error:
        raise DocumentError(DOCUMENT_PARSE_FAILED, f"malformed XML: {error}") from None
    except (LookupError, ValueError) as error:
        # Python's codecs back expat for encodings it lacks, and refuse multi-byte ones.
        raise DocumentError(
            DOCUMENT_PARSE_FAILED, f"the document's declared encoding is not supported: {error}"
        ) from None
    return root


# Restcomm escapes a `&` that starts no entity or character reference before parsing, so
# `<Redirect>/next?a=1&b=2</Redirect>` works. CDATA sections and comments are matched first
# and kept as they are; an unterminated one runs to the end, which keeps the scan linear.
_STRAY_AMPERSAND = re.compile(
    rb"<!\[CDATA\[.*?(?:\]\]>|\Z)"
    rb"|<!--.*?(?:-->|\Z)"
    rb"|&(?!#[0-9]+;|#x[0-9A-Fa-f]+;|[A-Za-z_:][A-Za-z0-9_:.-]*;)",
    re.DOTALL,
)


def _escape_stray_ampersands(body: bytes) -> bytes:
    # NUL never occurs in XML encoded in an ASCII superset, so NULs mean UTF-16 or UTF-32,
    # where these byte patterns do not apply.
    if b"\x00" in body:
        return body
    return _STRAY_AMPERSAND.sub(lambda m: b"&amp;" if m[0] == b"&" else m[0], body)


# -- verbs ------------------------------------------------------------------------------------


def _verb(element: Element, base_url: str) -> Verb:
    attributes = _attributes(element)
    match element.tag:
        case "Message" | "Sms":
            return _message(element, attributes, base_url)
        case "Redirect":
            url = _text(element)
            if not url:
                raise DocumentError(SCHEMA_INVALID, "<Redirect> needs a URL")
            return Redirect(Target(urljoin(base_url, url), _method(attributes.get("method"))))
        case "Hangup":
            return Hangup()
        case "Reject":
            reason = attributes.get("reason")
            return Reject(reason if reason in REJECT_REASONS else None)
        case "Pause":
            return Wait(_seconds(attributes.get("length"), default=1))
        case "Say":
            return Say(
                _text(element),
                speech_only=True,
                voice=attributes.get("voice") or None,
                loop=_seconds(attributes.get("loop"), default=1),
            )
        case "Play":
            url = _text(element)
            if not url:
                # `<Play digits="...">` sends tones, which this part of voice cannot yet.
                return _voice_verb(element, base_url)
            return Say(
                "",
                speech_only=True,
                audio=(urljoin(base_url, url),),
                loop=_seconds(attributes.get("loop"), default=1),
            )
        case tag if tag in VOICE_VERBS:
            return _voice_verb(element, base_url)
    raise DocumentError(SCHEMA_INVALID, _unknown_verb(element.tag))


def _unknown_verb(tag: str) -> str:
    known = _VERBS_BY_LOWER_NAME.get(tag.lower())
    hint = f" (verb names are case-sensitive: did you mean <{known}>?)" if known else ""
    return f"<{tag}> is not an RCML/TwiML verb{hint}"


def _message(element: Element, attributes: dict[str, str], base_url: str) -> Message:
    """`<Message>` (Twilio and RCML forms) and `<Sms>`, whose attributes are the same.

    Whitespace around the text is dropped: it is the document's indentation, not the message.
    """
    bodies = element.findall("Body")
    media = element.findall("Media")
    nouns = ("Body", "Media") if element.tag == "Message" else ()
    for child in element:
        if child.tag not in nouns:
            raise DocumentError(SCHEMA_INVALID, f"<{element.tag}> cannot contain <{child.tag}>")
    if len(bodies) > 1:
        raise DocumentError(SCHEMA_INVALID, "a <Message> takes one <Body> at most")
    # A <Body> noun wins over text written directly inside <Message>.
    body = _text(bodies[0]) if bodies else _own_text(element)
    urls = tuple(urljoin(base_url, url) for url in map(_text, media) if url)
    to = _channel_address(attributes.get("to", ""))
    sender = _channel_address(attributes.get("from", ""))
    return Message(
        to=(to,) if to else (),
        sender=sender or None,
        body=body,
        media=urls,
        channel=Channel.TEXT,
        action=_target(attributes.get("action"), attributes.get("method"), base_url),
        status_callback=_target(
            attributes.get("statusCallback"), attributes.get("statusCallbackMethod"), base_url
        ),
    )


def _channel_address(value: str) -> str:
    # The model tells MMS from SMS by the media it carries, so `mms:` needs no trace here.
    return _CHANNEL_SCHEME.sub("", value, count=1).strip()


def _voice_verb(element: Element, base_url: str) -> VoiceVerb:
    """A voice verb or noun as data: its attributes, plus `text` and `nouns` when present.

    URL attributes are resolved like every other URL in the document, so whoever runs the
    verb later needs no base URL.
    """
    data: dict[str, Any] = {
        name: urljoin(base_url, value) if value and _is_url_attribute(name) else value
        for name, value in _attributes(element).items()
    }
    text = _own_text(element)
    if text:
        data["text"] = text
    nouns = tuple(_voice_verb(child, base_url) for child in element)
    if nouns:
        data["nouns"] = nouns
    return VoiceVerb(kind=element.tag.lower(), attributes=data)


def _is_url_attribute(name: str) -> bool:
    return name in ("action", "url") or name.endswith(("Url", "Callback"))


def _attributes(element: Element) -> dict[str, str]:
    # Restcomm trims every attribute value; ` POST ` is POST.
    return {name: value.strip() for name, value in element.attrib.items()}


def _text(element: Element) -> str:
    return "".join(element.itertext()).strip()


def _own_text(element: Element) -> str:
    """The element's text outside its children (text around nouns, not inside them)."""
    parts = [element.text or ""] + [child.tail or "" for child in element]
    return "".join(parts).strip()


def _target(url: str | None, method: str | None, base_url: str) -> Target | None:
    return Target(urljoin(base_url, url), _method(method)) if url else None


def _method(value: str | None) -> str:
    # Restcomm answers a method other than GET or POST with a warning (13710, 14104) and
    # uses POST; the model has no warnings, so the fallback is silent.
    method = (value or "").upper()
    return method if method in METHODS else "POST"


def _seconds(value: str | None, *, default: int) -> int:
    # An unusable length (or loop count) falls back to the default, as an unusable method
    # does.
    try:
        seconds = int(value) if value else default
    except ValueError:
        return default
    return seconds if seconds >= 0 else default


# -- requests to the app ----------------------------------------------------------------------


def start_request(facts: SessionFacts, target: Target, auth_token: str) -> AppRequest:
    """The webhook for a message that arrived on the app's number."""
    return _signed_request(target, _session_params(facts), auth_token)


def continue_request(
    facts: SessionFacts, target: Target, progress: Progress, auth_token: str
) -> AppRequest:
    """The request to a `<Message action>`/`<Sms action>` or `<Redirect>` URL.

    Both carry the session's parameters; an `action` also reports the message just sent,
    under every name Twilio and Restcomm use for its SID and status.
    """
    params = _session_params(facts)
    if progress.event == "message":
        if progress.message_status is None:
            raise ValueError("an RCML action request needs the message's status")
        # A message refused before it was queued has no SID: the action hears "failed"
        # without one rather than the inbound message's SID passing for the reply's.
        sid = progress.message_sid or ""
        reported = {
            "MessageSid": sid,
            "SmsSid": sid,
            "SmsMessageSid": sid,
            "MessageStatus": progress.message_status,
            "SmsStatus": progress.message_status,
        }
        params = [(name, value) for name, value in params if name not in reported]
        params += [(name, value) for name, value in reported.items() if value]
    elif progress.event != "redirect":
        raise ValueError(f"RCML makes no continuation request for {progress.event!r}")
    return _signed_request(target, params, auth_token)


# The SIP final response Twilio reports (`SipResponseCode`) for how a call ended.
SIP_CODES = {
    "completed": "200",
    "busy": "486",
    "no-answer": "487",
    "canceled": "487",
    "failed": "500",
}


def call_params(call: CallFacts) -> list[tuple[str, str]]:
    """Twilio's voice request parameters (a superset of Restcomm's), for the call as it is
    now: what the voice URL, an action or `<Redirect>` and a status callback all carry."""
    params = [
        ("AccountSid", call.account_sid),
        ("ApiVersion", twilio.API_VERSION),
        ("CallSid", call.sid),
        ("CallStatus", call.status),
        ("Called", call.to_number),
        ("Caller", call.from_number),
        ("Direction", call.direction),
        ("From", call.from_number),
        ("To", call.to_number),
    ]
    if call.parent_sid:
        params.append(("ParentCallSid", call.parent_sid))
    if call.forwarded_from:
        params.append(("ForwardedFrom", call.forwarded_from))
    for prefix, number in (
        ("From", call.from_number),
        ("To", call.to_number),
        ("Caller", call.from_number),
        ("Called", call.to_number),
    ):
        params += [
            (f"{prefix}City", ""),
            (f"{prefix}State", ""),
            (f"{prefix}Zip", ""),
            (f"{prefix}Country", _country(number)),
        ]
    return params


def call_status_params(call: CallFacts, sequence: int, now: datetime) -> list[tuple[str, str]]:
    """A call progress callback (`StatusCallback`): the call's parameters, where the event
    came from, its order, when, and once the call ended how long it lasted."""
    params = call_params(call)
    params += [
        ("CallbackSource", "call-progress-events"),
        ("SequenceNumber", str(sequence)),
        ("Timestamp", format_datetime(now.astimezone(UTC))),
    ]
    if call.duration_seconds is not None:
        # CallDuration in seconds; Duration is billed minutes, rounded up.
        params += [
            ("CallDuration", str(call.duration_seconds)),
            ("Duration", str(-(-call.duration_seconds // 60))),
        ]
    if call.status in SIP_CODES:
        params.append(("SipResponseCode", SIP_CODES[call.status]))
    return params


def call_status_request(
    call: CallFacts, event: str, sequence: int, target: Target, auth_token: str, now: datetime
) -> AppRequest:
    """The status callback of `event` (initiated, ringing, answered, completed).

    The call's status says which, except for `initiated`: the call is still queued in the
    records then, and Twilio reports it as `initiated`."""
    if event == "initiated":
        call = replace(call, status="initiated")
    return _signed_request(target, call_status_params(call, sequence, now), auth_token)


def _session_params(facts: SessionFacts) -> list[tuple[str, str]]:
    """Twilio's inbound-message parameters, which include all of Restcomm's; on a call, its
    voice parameters.

    A session that did not start with a message (a token launch that found an RCML app)
    gets the ones its facts support.
    """
    if facts.call is not None:
        return call_params(facts.call)
    sid = facts.inbound_message_sid
    params = [("MessageSid", sid), ("SmsSid", sid), ("SmsMessageSid", sid)] if sid else []
    params.append(("AccountSid", facts.account_sid))
    if facts.remote_number:
        params.append(("From", facts.remote_number))
    if facts.local_number:
        params.append(("To", facts.local_number))
    if facts.launch == "inbound":
        params += [
            ("Body", facts.initial_text or ""),
            ("NumMedia", str(len(facts.inbound_media))),
            ("NumSegments", str(facts.num_segments)),
        ]
        for index, url in enumerate(facts.inbound_media):
            params.append((f"MediaUrl{index}", url))
            params.append((f"MediaContentType{index}", _guess_media_type(url)))
        params.append(("SmsStatus", "received"))
        if facts.messaging_service_sid is not None:
            params.append(("MessagingServiceSid", facts.messaging_service_sid))
        if facts.opt_out_type is not None:
            params.append(("OptOutType", facts.opt_out_type))
    params.append(("ApiVersion", twilio.API_VERSION))
    # Twilio's geographic fields. Only the country follows from the number alone; Twilio
    # sends the others empty when it does not know them, and apps read them unchecked.
    for prefix, number in (("From", facts.remote_number), ("To", facts.local_number)):
        if number:
            params += [
                (f"{prefix}City", ""),
                (f"{prefix}State", ""),
                (f"{prefix}Zip", ""),
                (f"{prefix}Country", _country(number)),
            ]
    return params


def _signed_request(target: Target, params: list[tuple[str, str]], auth_token: str) -> AppRequest:
    # A fragment never reaches the app's server, so it must not be signed either.
    url = urldefrag(target.url).url
    method = "GET" if target.method.upper() == "GET" else "POST"
    request = AppRequest(method=method, url=url, form=tuple(params))
    if method == "GET":
        # The parameters travel in the query string, so the URL alone is signed.
        signature = twilio.signature(request.wire_url, [], auth_token)
    else:
        signature = twilio.signature(url, params, auth_token)
    return replace(request, headers={twilio.SIGNATURE_HEADER: signature})


# Cached: finding a +1 number's country validates it against each NANP region in turn, a
# third of an RCML session's request (profiled); a conversation's numbers repeat.
@functools.lru_cache(maxsize=4096)
def _country(number: str) -> str:
    """The number's ISO country, "" for short codes and alphanumeric senders."""
    try:
        parsed = phonenumbers.parse(number)
    except phonenumbers.NumberParseException:
        return ""
    # A valid number names its own country (+1 may be CA); otherwise the calling code's
    # main country is the best guess.
    region = phonenumbers.region_code_for_number(parsed) or (
        phonenumbers.region_code_for_country_code(parsed.country_code)
    )
    return "" if region in (None, "ZZ") else region


# Carriers hand Verbal the media URLs only; apps branch on MediaContentType{N}, so it is
# guessed from the file extension. A table of the usual MMS types keeps the guess independent
# of the host's /etc/mime.types.
_MEDIA_TYPES = {
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "bmp": "image/bmp",
    "webp": "image/webp",
    "mp4": "video/mp4",
    "3gp": "video/3gpp",
    "mp3": "audio/mpeg",
    "amr": "audio/amr",
    "ogg": "audio/ogg",
    "wav": "audio/wav",
    "vcf": "text/vcard",
    "txt": "text/plain",
    "pdf": "application/pdf",
}


def _guess_media_type(url: str) -> str:
    path = urldefrag(url).url.split("?", 1)[0]
    name = path.rsplit("/", 1)[-1]
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return _MEDIA_TYPES.get(extension, "application/octet-stream")


# -- status callbacks -------------------------------------------------------------------------


class _StatusCallbacks:
    """Twilio's status callback, plus `Body` and one `MediaUrl` per medium.

    RCML's `<Message statusCallback>` documents those two and Restcomm sends `Body`; Twilio
    apps ignore parameters they do not read. (RCML's `MediaType` is left out: Verbal does not
    know the media's types.)
    """

    def params(self, message: MessageFacts) -> list[tuple[str, str]]:
        params = twilio.STATUS_CALLBACKS.params(message)
        params.append(("Body", message.body))
        params += [("MediaUrl", url) for url in message.media_urls]
        return params

    def signature_headers(
        self, url: str, params: list[tuple[str, str]], auth_token: str
    ) -> dict[str, str]:
        return twilio.STATUS_CALLBACKS.signature_headers(url, params, auth_token)


STATUS_CALLBACKS = _StatusCallbacks()


class _Rcml:
    name = "rcml"
    errors = ERRORS
    status_callbacks = STATUS_CALLBACKS

    def parse(self, body: bytes, content_type: str, base_url: str) -> Document:
        return parse(body, content_type, base_url)

    def start_request(self, facts: SessionFacts, target: Target, auth_token: str) -> AppRequest:
        return start_request(facts, target, auth_token)

    def continue_request(
        self, facts: SessionFacts, target: Target, progress: Progress, auth_token: str
    ) -> AppRequest:
        return continue_request(facts, target, progress, auth_token)

    def call_status_request(
        self,
        call: CallFacts,
        event: str,
        sequence: int,
        target: Target,
        auth_token: str,
        now: datetime,
    ) -> AppRequest | None:
        return call_status_request(call, event, sequence, target, auth_token, now)


DIALECT = _Rcml()
