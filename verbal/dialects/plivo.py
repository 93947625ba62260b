"""Plivo's conventions: Plivo XML documents in, and the requests Plivo makes of an app out.

A Plivo messaging app is told about an inbound SMS by a form request to its `message_url`,
and answers with `<Response>` holding `<Message>` elements; a `<Redirect>` fetches the next
document with the same parameters. Delivery reports go to `<Message callbackUrl>`.

Every request carries the V2 and V3 signatures, as `plivo.utils.validate_signature` and
`plivo.utils.validate_v3_signature` check them: base64 of HMAC-SHA256 keyed with the auth
token, each with its own random nonce. V2 covers the URL without its query; V3 also covers
the method and every parameter (see `signature_v3`).
"""

from __future__ import annotations

import math
import secrets
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlparse, urlsplit, urlunparse
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import DefusedXMLParser

from verbal.dialects.signing import signed
from verbal.dialects.types import (
    AppRequest,
    CallFacts,
    Dialect,
    ErrorCodes,
    MessageFacts,
    Progress,
    SessionFacts,
)
from verbal.dialects.verbs import (
    Document,
    DocumentError,
    Hangup,
    Message,
    PreAnswer,
    Redirect,
    Say,
    Target,
    Verb,
    VoiceVerb,
    Wait,
)

# Plivo publishes no numbers for a bad app document (its hangup causes and message error
# codes say nothing about fetching or parsing XML), so these are Verbal's own, in a 99xxx
# block no Plivo table uses, spaced by ten like Plivo's message error codes.
ERRORS = ErrorCodes(
    fetch_failed=99010,
    bad_status=99020,
    bad_content_type=99030,
    parse_failed=99040,
    voice_verb_on_text=99050,
)

# Plivo refuses answers of other types and answers over 100 KB.
CONTENT_TYPES = frozenset({"text/xml", "application/xml"})
MAX_DOCUMENT_BYTES = 100 * 1024
# The deepest real document is Response > PreAnswer > GetDigits > Speak > a few SSML tags;
# anything far deeper is an attack on recursion, not an app.
MAX_DEPTH = 32

_SSML = frozenset(
    {"break", "cont", "emphasis", "lang", "p", "phoneme", "prosody", "s", "say-as", "sub", "w"}
)
_PROMPTS = frozenset({"Speak", "Play", "Wait"})
# Which elements may hold which; an element not listed here holds none.
_CHILDREN: dict[str, frozenset[str]] = {
    "Response": frozenset(
        {
            "Conference",
            "Dial",
            "DTMF",
            "GetDigits",
            "GetInput",
            "Hangup",
            "Message",
            "MultiPartyCall",
            "Play",
            "PreAnswer",
            "Record",
            "Redirect",
            "Speak",
            "Stream",
            "Wait",
        }
    ),
    "GetDigits": _PROMPTS,
    "GetInput": _PROMPTS,
    "Dial": frozenset({"Number", "User"}),
    "PreAnswer": _PROMPTS | {"GetDigits", "Redirect", "Message", "DTMF"},
    "Speak": _SSML,
    **{tag: _SSML for tag in _SSML},
}
_KNOWN = frozenset(_CHILDREN) | frozenset().union(*_CHILDREN.values())

# Verbal's outbound statuses as Plivo names them. Plivo has no intermediate "accepted" or
# "sending", and no "canceled": a canceled message never reached a carrier, which is what
# Plivo's "failed" means. Plivo's "rejected" (a carrier's regulatory refusal) has no Verbal
# counterpart, so it is never sent.
STATUSES = {
    "accepted": "queued",
    "queued": "queued",
    "sending": "queued",
    "sent": "sent",
    "delivered": "delivered",
    "undelivered": "undelivered",
    "failed": "failed",
    "canceled": "failed",
}
_FAILURES = frozenset({"failed", "undelivered"})
# Callbacks of one message go out in this order; Plivo's `Sequence` lets an app sort them.
_SEQUENCE = {"queued": 1, "sent": 2, "delivered": 3, "undelivered": 3, "failed": 3}

# Verbal records Twilio/Restcomm 300xx errors; Plivo reports its own codes (plivo.md §4.3).
UNKNOWN_ERROR = 1000
ERROR_CODES = {
    30001: 20,  # queue overflow: temporary, like Plivo's network error
    30003: 80,  # unreachable handset: destination temporarily unavailable
    30004: 100,  # message blocked: prohibited by carrier
    30005: 70,  # unknown handset: destination permanently unavailable
    30006: 50,  # landline or unreachable carrier: invalid destination number
    30007: 30,  # carrier violation / filtered: spam detected
    30008: UNKNOWN_ERROR,
    30009: 20,  # missing segment: network error
    30036: 420,  # validity period expired: message expired
}

# Verbal does not bill; Plivo writes amounts with five decimals.
NO_CHARGE = "0.00000"

# Whole-message keywords that make Plivo set MessageIntent (current and older lists).
_INTENTS = {
    **dict.fromkeys(
        ("STOP", "STOP ALL", "END", "QUIT", "CANCEL", "UNSUBSCRIBE", "UNSUB"), "optout"
    ),
    **dict.fromkeys(("START", "YES", "RESUME", "UNSTOP", "GO"), "optin"),
    **dict.fromkeys(("HELP", "INFO"), "help"),
}


def message_uuid(sid: str) -> str:
    """The MessageUUID Plivo apps see for a Verbal message SID.

    Verbal SIDs are Twilio-shaped (`SM` and 32 hex digits); Plivo uses 36-character UUIDs.
    The hex digits already are 128 bits, so they are shown in UUID form: the mapping is
    deterministic and the SID can be found again from the UUID.
    """
    digits = sid[2:]
    if len(digits) == 32:
        try:
            return str(uuid.UUID(hex=digits))
        except ValueError:
            pass
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "verbal:message:" + sid))


def powerpack_uuid(service_sid: str | None) -> str:
    """The PowerpackUUID Plivo apps see for a Messaging Service (its SID in UUID form, as
    `message_uuid` shows a message's, and as `powerpack_uuid` names it on a send); empty
    for none, as Plivo sends it."""
    return "" if service_sid is None else message_uuid(service_sid)


# --- Signatures --------------------------------------------------------------------------


def _hmac(auth_token: str, payload: str) -> str:
    return signed(auth_token, payload, "sha256")


def _base(url: str) -> str:
    # urlparse, not urlsplit: the SDK drops a last segment's `;params` along with the query.
    parts = urlparse(url)
    return urlunparse((parts.scheme, parts.netloc, parts.path, "", "", ""))


def _query(pairs: Sequence[tuple[str, str]]) -> str:
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def signature_v2(url: str, nonce: str, auth_token: str) -> str:
    """`X-Plivo-Signature-V2`: the URL without query, then the nonce, with no separator."""
    return _hmac(auth_token, _base(url) + nonce)


def signature_v3(
    method: str, url: str, params: Sequence[tuple[str, str]], nonce: str, auth_token: str
) -> str:
    """`X-Plivo-Signature-V3` of a request with these form parameters.

    GET folds `params` into the URL's own query (that is where they travel) and signs
    `base?k=v&...` sorted by name, then value. POST signs `base?query.` followed by the
    parameters as bare `namevalue` runs, sorted; the `.` only when there was a query, the `?`
    even when there was not. Values are compared decoded, as `parse_qs` gives them.
    """
    query = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    if method.upper() == "GET":
        query += params
        params = ()
    signed = _base(url)
    if params:
        separator = "." if query else ""
        posted = "".join(name + value for name, value in sorted(params))
        signed += "?" + _query(query) + separator + posted
    elif query:
        signed += "?" + _query(query)
    return _hmac(auth_token, f"{signed}.{nonce}")


def _nonce() -> str:
    # Plivo's nonces are 20 decimal digits.
    return f"{secrets.randbelow(10**20):020d}"


def signature_headers(
    method: str, url: str, params: Sequence[tuple[str, str]], auth_token: str
) -> dict[str, str]:
    """Both signature families, each with a fresh nonce.

    The `Ma-` variants are keyed with the main account's token. Every Verbal account is a
    main account (`MA…` auth id), so they equal the plain ones; apps that only look for
    `Ma-V3`, as some validate live Plivo traffic, find it.
    """
    v2_nonce, v3_nonce = _nonce(), _nonce()
    v2 = signature_v2(url, v2_nonce, auth_token)
    v3 = signature_v3(method, url, params, v3_nonce, auth_token)
    return {
        "X-Plivo-Signature-V2": v2,
        "X-Plivo-Signature-V2-Nonce": v2_nonce,
        "X-Plivo-Signature-Ma-V2": v2,
        "X-Plivo-Signature-V3": v3,
        "X-Plivo-Signature-V3-Nonce": v3_nonce,
        "X-Plivo-Signature-Ma-V3": v3,
    }


# --- Status callbacks --------------------------------------------------------------------


class _StatusCallbacks:
    """Delivery reports, sent to `<Message callbackUrl>` (or the REST `url`)."""

    def params(self, message: MessageFacts) -> list[tuple[str, str]]:
        status = STATUSES.get(message.status, message.status)
        uuid_ = message_uuid(message.sid)
        params = [
            ("MessageUUID", uuid_),
            ("To", message.to_number),
            ("From", message.from_number),
            ("Type", "mms" if message.media_urls else "sms"),
            ("Status", status),
            ("Units", str(message.num_segments)),
            ("TotalRate", NO_CHARGE),
            ("TotalAmount", NO_CHARGE),
        ]
        # Plivo defines ErrorCode only for these two, and always has one for them.
        if status in _FAILURES:
            code = ERROR_CODES.get(message.error_code or 0, UNKNOWN_ERROR)
            params.append(("ErrorCode", str(code)))
        params += [
            ("ParentMessageUUID", uuid_),  # Plivo: reserved, equal to MessageUUID
            ("Sequence", str(_SEQUENCE.get(status, 0))),
            ("PowerpackUUID", powerpack_uuid(message.messaging_service_sid)),
        ]
        return params

    def signature_headers(
        self, url: str, params: list[tuple[str, str]], auth_token: str
    ) -> dict[str, str]:
        return signature_headers("POST", url, params, auth_token)


STATUS_CALLBACKS = _StatusCallbacks()


# --- Requests to the app -----------------------------------------------------------------


def _intent(text: str) -> str:
    return _INTENTS.get(" ".join(text.split()).upper(), "")


def inbound_params(facts: SessionFacts) -> list[tuple[str, str]]:
    """The form a `message_url` receives for an inbound SMS or MMS (plivo.md §3.1)."""
    text = facts.initial_text or ""
    mms = bool(facts.inbound_media)
    params = [
        ("From", facts.remote_number or ""),
        ("To", facts.local_number or ""),
        ("Type", "mms" if mms else "sms"),
        ("Text", text),
    ]
    if mms:
        params.append(("Body", text))  # Plivo's name for an MMS's text part
    params += [
        # An inbound session always has its message; the session id only keeps a bad
        # caller from producing a malformed UUID.
        ("MessageUUID", message_uuid(facts.inbound_message_sid or facts.session_id)),
        ("Units", str(facts.num_segments)),
        ("TotalRate", NO_CHARGE),
        ("TotalAmount", NO_CHARGE),
    ]
    if not mms:
        params.append(("MessageIntent", _intent(text)))
    params.append(("PowerpackUUID", powerpack_uuid(facts.messaging_service_sid)))
    if mms:
        params.append(("MediaCount", str(len(facts.inbound_media))))
        params += [(f"Media{n}", url) for n, url in enumerate(facts.inbound_media, start=1)]
    return params


# Plivo's hangup causes (the FreeSWITCH names its hangup_url reports) for how a call ended.
HANGUP_CAUSES = {
    "completed": "NORMAL_CLEARING",
    "busy": "USER_BUSY",
    "no-answer": "NO_ANSWER",
    "canceled": "ORIGINATOR_CANCEL",
    "failed": "CALL_REJECTED",
}
# Plivo's call statuses; it has no "canceled" (a cancelled call never answered: no-answer)
# and calls Twilio's "no-answer" "no-answer" too, and "queued" does not reach apps.
CALL_STATUSES = {"canceled": "no-answer", "queued": "ringing"}


def call_uuid(sid: str) -> str:
    """The CallUUID Plivo apps see for a Verbal call SID (shown in UUID form, as messages)."""
    return message_uuid(sid)


def _plivo_number(number: str) -> str:
    # Plivo writes numbers without the `+` in its call requests.
    return number.removeprefix("+")


def call_params(call: CallFacts, event: str) -> list[tuple[str, str]]:
    """The form an answer URL, a `<Redirect>` or a hangup URL receives (plivo.md §3.4)."""
    params = [
        ("CallUUID", call_uuid(call.sid)),
        ("From", _plivo_number(call.from_number)),
        ("To", _plivo_number(call.to_number)),
        ("CallStatus", CALL_STATUSES.get(call.status, call.status)),
        ("Direction", "inbound" if call.direction == "inbound" else "outbound"),
        ("CallerName", ""),
        ("Event", event),
        ("BillRate", NO_CHARGE),
    ]
    if call.direction != "inbound":
        # An API call is its own A leg; a call a session placed has its parent as A leg.
        a_leg = call_uuid(call.parent_sid or call.sid)
        params += [("ALegUUID", a_leg), ("ALegRequestUUID", a_leg), ("RequestUUID", a_leg)]
    if call.forwarded_from:
        params.append(("ForwardedFrom", _plivo_number(call.forwarded_from)))
    if call.status in HANGUP_CAUSES:  # the call has ended
        duration = str(call.duration_seconds or 0)
        params += [
            ("HangupCause", HANGUP_CAUSES[call.status]),
            ("Duration", duration),
            ("BillDuration", duration),
            ("TotalCost", NO_CHARGE),
        ]
    return params


def _signed(target: Target, params: list[tuple[str, str]], auth_token: str) -> AppRequest:
    # For GET the engine appends `form` to the URL; signature_v3 signs it as it will arrive.
    return AppRequest(
        method=target.method,
        url=target.url,
        form=tuple(params),
        headers=signature_headers(target.method, target.url, params, auth_token),
    )


# --- Documents ---------------------------------------------------------------------------


def _fail(message: str) -> DocumentError:
    return DocumentError(ERRORS.parse_failed, message)


def _parse_xml(body: bytes) -> Element:
    parser = DefusedXMLParser(forbid_dtd=False, forbid_entities=True, forbid_external=True)
    # DTDs are refused after parsing rather than at `<!DOCTYPE`, so that the entity
    # declarations inside one are seen first and the error names the actual attack.
    doctypes: list[str] = []
    parser.parser.StartDoctypeDeclHandler = lambda name, *_: doctypes.append(name)
    try:
        parser.feed(body)
        root = parser.close()
    except EntitiesForbidden as exc:
        if exc.sysid or exc.pubid:
            raise _fail(f"external entity {exc.name!r} refused (XXE)") from None
        raise _fail(f"entity declaration {exc.name!r} refused (entity expansion)") from None
    except ExternalReferenceForbidden:
        raise _fail("external reference refused (XXE)") from None
    except DefusedXmlException as exc:
        raise _fail(f"unsafe XML refused: {exc}") from None
    except ParseError as exc:
        raise _fail(f"not well-formed XML: {exc}") from None
    except (LookupError, ValueError) as exc:
        # The declared encoding is one expat cannot read (multi-byte, or not text at all).
        raise _fail(f"unreadable XML encoding: {exc}") from None
    if doctypes:
        raise _fail("DTD refused: a DOCTYPE can inject attributes and entities")
    return root


def _check_structure(root: Element) -> None:
    """Names, nesting and depth, without recursion: hostile depth must not crash us."""
    if root.tag != "Response":
        raise _fail(f"the root element must be <Response>, not <{root.tag}>")
    stack = [(root, 1)]
    while stack:
        element, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _fail(f"elements nested deeper than {MAX_DEPTH}")
        allowed = _CHILDREN.get(element.tag, frozenset())
        for child in element:
            if child.tag not in _KNOWN:
                raise _fail(f"unknown element <{child.tag}>")
            if child.tag not in allowed:
                raise _fail(f"<{child.tag}> is not allowed in <{element.tag}>")
            stack.append((child, depth + 1))


# XML's own whitespace: what indentation is made of. Other spaces (U+3000...) are content.
_LAYOUT = " \t\r\n"


def _text(element: Element) -> str:
    # Surrounding whitespace is layout (other SDKs indent bodies); inner whitespace is not.
    return (element.text or "").strip(_LAYOUT)


def _spoken(element: Element) -> str:
    # SSML children are flattened to their text: the shared Say carries plain text.
    return "".join(element.itertext()).strip(_LAYOUT)


def _method(element: Element, attribute: str) -> str:
    method = element.get(attribute, "POST").upper()
    if method not in ("GET", "POST"):
        raise _fail(f"<{element.tag} {attribute}> must be GET or POST, not {method!r}")
    return method


def _target(url: str, method: str, base_url: str, what: str) -> Target:
    resolved = urljoin(base_url, url)
    parts = urlsplit(resolved)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _fail(f"{what} must be an http(s) URL, not {url!r}")
    return Target(resolved, method)


def _message(element: Element, base_url: str) -> Message:
    kind = element.get("type", "sms").lower()
    # Plivo XML documents only `sms`. `mms` is accepted as a plain text: <Message> has no
    # media attribute. Verbal has no WhatsApp, and sending one as SMS would mislead.
    if kind not in ("sms", "mms"):
        raise _fail(f"<Message type> {kind!r} is not supported (sms or mms)")
    callback = element.get("callbackUrl")
    status_callback = None
    if callback:
        method = _method(element, "callbackMethod")
        status_callback = _target(callback, method, base_url, "<Message callbackUrl>")
    # Bulk: every destination gets the message (unlike Tropo's first-only). Duplicates are
    # dropped, as Plivo's REST API drops them.
    destinations = (part.strip() for part in element.get("dst", "").split("<"))
    return Message(
        to=tuple(dict.fromkeys(d for d in destinations if d)),
        sender=element.get("src") or None,
        body=_text(element),
        status_callback=status_callback,
    )


def _redirect(element: Element, base_url: str) -> Redirect:
    url = _text(element)
    if not url:
        raise _fail("<Redirect> needs a URL")
    return Redirect(_target(url, _method(element, "method"), base_url, "<Redirect>"))


def _wait(element: Element, base_url: str) -> Wait:
    # silence, minSilence and beep listen to a call; they mean nothing without one.
    raw = element.get("length", "1")
    try:
        seconds = float(raw)
    except ValueError:
        raise _fail(f"<Wait length> must be a number of seconds, not {raw!r}") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise _fail(f"<Wait length> must be a number of seconds, not {raw!r}")
    return Wait(seconds)


# Plivo's <Hangup reason>: how the refusal of a call that was never answered reads.
HANGUP_REASONS = frozenset({"rejected", "busy"})


def _hangup(element: Element, base_url: str) -> Hangup:
    reason = element.get("reason")
    if reason is not None and reason not in HANGUP_REASONS:
        raise _fail(f"<Hangup reason> must be rejected or busy, not {reason!r}")
    schedule = element.get("schedule")
    seconds = None
    if schedule is not None:
        if not schedule.isdigit() or int(schedule) < 1:
            raise _fail(f"<Hangup schedule> must be a whole number of seconds, not {schedule!r}")
        seconds = float(schedule)
    return Hangup(reason=reason, schedule_seconds=seconds)


def _loop(element: Element) -> int:
    raw = element.get("loop", "1")
    if not raw.isdigit():
        raise _fail(f"<{element.tag} loop> must be a whole number, not {raw!r}")
    return int(raw)


def _speak(element: Element, base_url: str) -> Say:
    # language only matters to a TTS engine that has it; the voice is kept for the player.
    return Say(
        text=_spoken(element),
        speech_only=True,
        voice=element.get("voice"),
        loop=_loop(element),
    )


def _play(element: Element, base_url: str) -> Say:
    url = _text(element)
    if not url:
        raise _fail("<Play> needs the URL of a sound file")
    target = _target(url, "GET", base_url, "<Play>")
    return Say(text="", speech_only=True, audio=(target.url,), loop=_loop(element))


def _pre_answer(element: Element, base_url: str) -> PreAnswer | VoiceVerb:
    """Early media: what a ringing caller hears before the call is answered.

    Speak, Play and Wait are played and a Message sent; a PreAnswer holding anything else
    (GetDigits, Redirect, DTMF) is kept whole as a voice verb, which this part of voice
    cannot run.
    """
    parsers: dict[str, Callable[[Element, str], Say | Wait | Message]] = {
        "Speak": _speak,
        "Play": _play,
        "Wait": _wait,
        "Message": _message,
    }
    if any(child.tag not in parsers for child in element):
        return _voice(element, base_url)
    return PreAnswer(tuple(parsers[child.tag](child, base_url) for child in element))


def _voice_data(element: Element) -> dict[str, Any]:
    """A voice element as plain data: its attributes, `body` and nested `children`."""
    data: dict[str, Any] = dict(element.attrib)
    if element.tag == "Speak":
        body = _spoken(element)
        children: list[dict[str, Any]] = []
    else:
        body = _text(element)
        children = [{**_voice_data(child), "kind": child.tag.lower()} for child in element]
    if body:
        data["body"] = body
    if children:
        data["children"] = children
    return data


def _voice(element: Element, base_url: str) -> VoiceVerb:
    if element.tag == "Dial" and len(element) == 0:
        raise _fail("<Dial> needs at least one <Number> or <User>")
    return VoiceVerb(element.tag.lower(), _voice_data(element))


_VERBS: dict[str, Callable[[Element, str], Verb]] = {
    "Message": _message,
    "Redirect": _redirect,
    "Wait": _wait,
    "Hangup": _hangup,
    "Speak": _speak,
    "Play": _play,
    "PreAnswer": _pre_answer,
}


def parse_document(body: bytes, content_type: str, base_url: str) -> Document:
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime not in CONTENT_TYPES:
        raise DocumentError(
            ERRORS.bad_content_type, f"Plivo XML must be text/xml or application/xml, not {mime!r}"
        )
    if len(body) > MAX_DOCUMENT_BYTES:
        raise _fail(f"document is {len(body)} bytes; Plivo's limit is {MAX_DOCUMENT_BYTES}")
    root = _parse_xml(body)
    _check_structure(root)
    return Document(tuple(_VERBS.get(element.tag, _voice)(element, base_url) for element in root))


# --- The dialect -------------------------------------------------------------------------


class _Plivo:
    name = "plivo"
    errors = ERRORS
    status_callbacks = STATUS_CALLBACKS

    def start_request(self, facts: SessionFacts, target: Target, auth_token: str) -> AppRequest:
        # Plivo has no token launch: a session starts from an SMS/MMS or a call.
        if facts.call is not None:
            return _signed(target, call_params(facts.call, "StartApp"), auth_token)
        if facts.launch != "inbound" or facts.channel != "text":
            raise ValueError(
                f"Plivo apps start from an inbound message or call, not {facts.launch}"
            )
        return _signed(target, inbound_params(facts), auth_token)

    def continue_request(
        self, facts: SessionFacts, target: Target, progress: Progress, auth_token: str
    ) -> AppRequest:
        # <Message> has no action URL; only <Redirect> continues, with the same parameters.
        if progress.event != "redirect":
            raise ValueError(f"Plivo documents only continue by <Redirect>, not {progress.event}")
        if facts.call is not None:
            return _signed(target, call_params(facts.call, "Redirect"), auth_token)
        return _signed(target, inbound_params(facts), auth_token)

    def call_status_request(
        self,
        call: CallFacts,
        event: str,
        sequence: int,
        target: Target,
        auth_token: str,
        now: datetime,
    ) -> AppRequest | None:
        # Plivo reports the ring (ring_url) and the hang-up (hangup_url), nothing between.
        names = {"ringing": "Ring", "completed": "Hangup"}
        if event not in names:
            return None
        return _signed(target, call_params(call, names[event]), auth_token)

    def parse(self, body: bytes, content_type: str, base_url: str) -> Document:
        return parse_document(body, content_type, base_url)


DIALECT: Dialect = _Plivo()
