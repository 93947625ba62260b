"""Tropo WebAPI: its JSON documents as verbs, and the JSON Tropo POSTs to apps.

A Tropo app answers every POST with `{"tropo": [{verb: value}, ...]}`. The official helper
libraries disagree about details (`{"hangup": null}` vs `{}` vs `"null"`, `say` as an object or
an array, `"true"` for `true`), so the parser accepts everything they emit and ignores keys it
does not know (old library versions still emit retired ones). What it cannot understand becomes
a `DocumentError` that names the verb and its position: the app's author reads it in the log.

Requests go the other way: the Session JSON that starts a session and the Result JSON posted to
an `on` handler's `next` URL carry exactly the keys Tropo sent for each kind of launch, since the
Python library turns every key into an attribute and apps crash on one that is missing. Tropo
never signed its requests, so neither do we.

Choices made where Tropo is silent or where Verbal differs from it on purpose:

* A `message` or `call` that names neither `channel` nor `network` is marked
  `channel_default`: a text in a text session (Tropo would have placed a call, but a text
  session's apps are messaging apps), a call in a voice one (the voice token, or on a call).
* Several `say` items in one `message` become one text, their values joined by newlines: the
  shared `Message` verb has one body, and one message cannot arrive out of order.
* `say.media` items that are http(s) URLs are attachments; other items (the SDK samples put
  captions there) are text and join the body.
* A prompt with no text and no media is dropped: Tropo's own recipe for swallowing an inbound
  text is an `ask` with an empty prompt, and a text channel cannot send an empty message.
* `call` opens a conversation: a text one on the SMS network, a call on a voice network.
* A `say` value that is an http(s) URL is a sound file to play on a call (Tropo's own rule);
  on text it stays the text it is. A voice `message`'s say values that are URLs are played.
* `redirect` deflects a ringing call to another address (`Deflect`); it loads no document.
"""

from __future__ import annotations

import codecs
import difflib
import hashlib
import json
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit
from xml.sax.saxutils import escape

from verbal.dialects.types import (
    AppRequest,
    CallbackFormat,
    CallFacts,
    ErrorCodes,
    MessageFacts,
    Progress,
    SessionFacts,
    VerbResult,
)
from verbal.dialects.verbs import (
    Ask,
    Call,
    Channel,
    Choices,
    Deflect,
    Document,
    DocumentError,
    Handler,
    Hangup,
    Message,
    Reject,
    Say,
    Target,
    Verb,
    VoiceVerb,
    Wait,
)
from verbal.forms import encode_form

# Tropo reported problems as text only. These numbers are Verbal's own, in a block (7001-7099)
# that no platform Verbal imitates uses: Twilio's codes have five digits, Restcomm's reason codes
# sit in 1000-4999 and Plivo's below 1000. The session log shows them beside the message.
ERRORS = ErrorCodes(
    fetch_failed=7001,  # the document URL could not be reached (connection, timeout)
    bad_status=7002,  # the app answered with a non-2xx status
    bad_content_type=7003,  # the answer is not JSON and says so (XML, HTML)
    parse_failed=7004,  # the answer is not a Tropo document
    voice_verb_on_text=7005,  # a verb that needs a call ran in a text session
)

# A real document is a few hundred bytes; the caps only stop hostile or broken answers before
# they cost memory or recursion. The deepest real nesting (transfer > on > ask > say) is ~10.
MAX_DOCUMENT_BYTES = 1 << 20
MAX_NESTING = 32
# Tropo ended every session after 4 hours, so no wait or timeout can usefully be longer.
MAX_SESSION_SECONDS = 4 * 60 * 60

CONTENT_TYPE = "application/json; charset=UTF-8"

_VOICE_NETWORKS = {"PSTN", "SIP", "VOIP", "INUM"}
_EVENTS = {"continue", "incomplete", "error", "hangup", "ring", "connect"}
_NUMERIC = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


class _NoStatusCallbacks:
    """Tropo's `message` verb has no status callback, so no Tropo message ever asks for one.

    Messages created by Tropo documents carry no callback URL; `params` is therefore never
    reached, and raising makes a wiring mistake loud instead of sending Twilio-shaped posts.
    """

    def params(self, message: MessageFacts) -> list[tuple[str, str]]:
        raise NotImplementedError(
            f"Tropo has no message status callbacks (message {message.sid} asked for one)"
        )

    def signature_headers(
        self, url: str, params: list[tuple[str, str]], auth_token: str
    ) -> dict[str, str]:
        return {}  # Tropo signs nothing (its docs suggest allow-listing its IP addresses)


class _TropoDialect:
    """The `Dialect` for Tropo WebAPI apps; the module's `DIALECT` is its one instance."""

    name = "tropo"
    errors = ERRORS
    status_callbacks: CallbackFormat = _NoStatusCallbacks()

    def parse(self, body: bytes, content_type: str, base_url: str) -> Document:
        data = _load(body, content_type)
        if not isinstance(data, dict):
            raise _error("the document", f'must be an object {{"tropo": [...]}}, got {_kind(data)}')
        if "tropo" not in data:
            keys = ", ".join(repr(key) for key in list(data)[:5]) or "none"
            raise _error("the document", f"has no 'tropo' key (keys: {keys})")
        entries = data["tropo"]
        if not isinstance(entries, list):
            raise _field_error("the document", "'tropo'", f"must be an array, got {_kind(entries)}")
        verbs: list[Verb] = []
        handlers: list[Handler] = []
        for position, entry in enumerate(entries, 1):
            for item in _entry(entry, position, base_url):
                # `on` is not run in sequence: it registers a handler for the whole document.
                if isinstance(item, Handler):
                    handlers.append(item)
                else:
                    verbs.append(item)
        return Document(verbs=tuple(verbs), handlers=tuple(handlers))

    def start_request(self, facts: SessionFacts, target: Target, auth_token: str) -> AppRequest:
        session: dict[str, Any] = {
            "id": facts.session_id,
            "accountId": facts.account_sid,
            "timestamp": _timestamp(facts.started_at),
        }
        if facts.launch == "token":
            # Sessions API launch: nobody called, so no caller IDs, call id or headers.
            session |= {
                "userType": "NONE",
                "initialText": None,
                "callId": None,
                "parameters": _parameters(facts.parameters),
            }
        elif facts.launch == "inbound":
            session |= _inbound(facts)
        else:
            raise ValueError(f"unknown launch {facts.launch!r}")
        return _post(target, {"session": session})

    def continue_request(
        self, facts: SessionFacts, target: Target, progress: Progress, auth_token: str
    ) -> AppRequest:
        result: dict[str, Any] = {
            "sessionId": facts.session_id,
            "callId": _call_id(facts),
            "state": "DISCONNECTED" if progress.event == "hangup" else "ANSWERED",
            "sessionDuration": progress.duration_seconds,
            "sequence": progress.sequence,
            "complete": True,
            "error": progress.error,
        }
        if facts.local_number:
            result["calledid"] = _ids(facts.local_number, facts.channel)[0]
        actions = [_action(verb_result) for verb_result in progress.results]
        # One action is an object, several an array, none no key at all: apps index into it.
        if len(actions) == 1:
            result["actions"] = actions[0]
        elif actions:
            result["actions"] = actions
        return _post(target, {"result": result})

    def call_status_request(
        self,
        call: CallFacts,
        event: str,
        sequence: int,
        target: Target,
        auth_token: str,
        now: datetime,
    ) -> AppRequest | None:
        return None  # Tropo reports a call's end to the app's `on` handlers only


DIALECT = _TropoDialect()


def sessions_api_reply(
    fmt: str, success: bool, token: str, session_id: str | None, reason: str | None
) -> tuple[bytes, str]:
    """The Sessions API's answer as `(body, content_type)`: "json", "form", else XML.

    XML is the default because a plain GET without an `Accept` header got XML from Tropo (the
    PHP library parses it so). A failure carries `reason` in place of `id`.
    """
    fields = [("success", "true" if success else "false"), ("token", token)]
    if session_id is not None:
        fields.append(("id", session_id))
    if reason is not None:
        fields.append(("reason", reason))
    kind = fmt.strip().lower()
    if kind == "json":
        data: dict[str, Any] = dict(fields)
        data["success"] = success
        return json.dumps(data).encode(), "application/json"
    if kind == "form":
        return encode_form(fields).encode(), "application/x-www-form-urlencoded"
    xml = "".join(f"<{name}>{escape(value)}</{name}>" for name, value in fields)
    return f"<session>{xml}</session>".encode(), "text/xml; charset=UTF-8"


# --- reading a document ------------------------------------------------------------------

_Parsed = list[Verb | Handler]
_VerbParser = Callable[[Any, str, str], _Parsed]


def _load(body: bytes, content_type: str) -> Any:
    if len(body) > MAX_DOCUMENT_BYTES:
        raise _error("the document", f"is {len(body):,} bytes; at most {MAX_DOCUMENT_BYTES:,}")
    media_type, charset = _media_type(content_type)
    text = _decode(body, charset)
    if not text.strip():
        raise _error("the document", "is empty")
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except DocumentError:
        raise
    except RecursionError:
        raise _error("the document", f"is nested more than {MAX_NESTING} levels deep") from None
    except ValueError as exc:  # JSONDecodeError, or an integer too long to convert
        # Many apps never set a content type (the Tropo blog's Sinatra example answers
        # text/html), so it only explains a body that is not even trying to be JSON.
        looks_like_json = text.lstrip("\ufeff \t\r\n")[:1] in ("{", "[")
        if media_type and "json" not in media_type and not looks_like_json:
            raise DocumentError(
                ERRORS.bad_content_type, f"the document is {media_type}, not Tropo JSON"
            ) from None
        raise _error("the document", f"is not valid JSON: {exc}") from None
    _check_nesting(data)
    return data


def _media_type(content_type: str) -> tuple[str, str | None]:
    media_type, _, params = content_type.partition(";")
    charset = None
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"') or None
    return media_type.strip().lower(), charset


def _decode(body: bytes, charset: str | None) -> str:
    # Honour a declared charset, as Tropo did (its docs blame garbled accents on servers that
    # declare ISO-8859-1); JSON's own default is UTF-8, with or without a byte-order mark.
    try:
        codec = codecs.lookup(charset or "utf-8").name
    except LookupError:
        codec = "utf-8"  # a charset nobody knows: fall back to JSON's own
    try:
        return body.decode("utf-8-sig" if codec == "utf-8" else codec)
    except UnicodeDecodeError as exc:
        raise _error("the document", f"is not valid {codec.upper()} (byte {exc.start})") from None


def _reject_constant(name: str) -> Any:
    raise _error("the document", f"is not valid JSON: {name} is not a JSON number")


def _check_nesting(data: Any) -> None:
    # Iterative, so that checking depth cannot itself exhaust the stack.
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_NESTING:
            raise _error("the document", f"is nested more than {MAX_NESTING} levels deep")
        if isinstance(value, dict):
            stack.extend((child, depth + 1) for child in value.values())
        elif isinstance(value, list):
            stack.extend((child, depth + 1) for child in value)


def _entry(entry: Any, position: int, base_url: str) -> _Parsed:
    if not isinstance(entry, dict) or len(entry) != 1:
        shape = f"{len(entry)} keys" if isinstance(entry, dict) else _kind(entry)
        raise _error(
            f"verb #{position}", f"must be an object with one key, the verb's name; got {shape}"
        )
    ((name, value),) = entry.items()
    parser = _VERBS.get(name)
    if parser is None:
        raise _error(f"verb #{position} ({name!r})", f"is not a Tropo verb{_suggestion(name)}")
    return parser(value, f"verb #{position} ({name!r})", base_url)


def _suggestion(name: str) -> str:
    lowered = {verb.lower(): verb for verb in _VERBS}
    match = lowered.get(name.lower()) or next(
        iter(difflib.get_close_matches(name, list(_VERBS), n=1, cutoff=0.6)), None
    )
    return f" (did you mean {match!r}?)" if match else ""


def _message(value: Any, where: str, base_url: str) -> _Parsed:
    obj = _object(value, where)
    to = _addresses(obj, "to", where)
    if obj.get("say") is None:
        raise _error(where, "has no 'say': a message needs something to send")
    prompts = [say for _, say in _say_items(obj["say"], where, voice=None)]
    channel = _channel(obj, where)
    if channel is Channel.VOICE:
        # Sound files are played, the rest is spoken: the call hears both, in order.
        body = "\n".join(say.text for say in prompts if say.text and not say.audio)
        media = tuple(url for say in prompts for url in (*say.audio, *say.media))
    else:
        body = "\n".join(say.text for say in prompts if say.text)
        media = tuple(url for say in prompts for url in say.media)
    if not body and not media:
        raise _error(where, "has nothing to send: every 'say' value is empty")
    return [
        Message(
            to=to,
            sender=_sender(obj, where),
            body=body,
            media=media,
            channel=channel,
            # Tropo sends a text to a list of numbers to the first one only; voice rings them all.
            first_only=channel is Channel.TEXT and isinstance(obj["to"], list),
            name=_name(obj, where),
            required=_flag(obj, "required", where, default=True),
            timeout_seconds=_timeout(obj, where) if channel is Channel.VOICE else None,
            channel_default=not _channel_named(obj),
        )
    ]


def _timeout(obj: dict[str, Any], where: str) -> float | None:
    """A voice `message` or `call`'s ring timeout (seconds), None when not given."""
    return _seconds(obj, "timeout", where, default=0.0) or None


def _say(value: Any, where: str, base_url: str) -> _Parsed:
    return [say for _, say in _say_items(value, where, voice=None) if _says_something(say)]


def _ask(value: Any, where: str, base_url: str) -> _Parsed:
    obj = _object(value, where)
    if obj.get("choices") is None:
        raise _error(where, "has no 'choices': an ask needs a grammar to match the answer to")
    voice = _lower(obj, "voice", where)
    prompts: list[Say] = []
    event_prompts: list[tuple[str, Say]] = []
    for event, say in _say_items(obj.get("say"), where, voice=voice):
        if not _says_something(say):
            continue
        if event is None:
            prompts.append(say)
        else:
            # `"nomatch:1 nomatch:2"` names several events for one prompt.
            event_prompts.extend((name, say) for name in event.split())
    attempts = _integer(obj, "attempts", where, default=1)
    if attempts < 1:
        raise _field_error(where, "'attempts'", f"must be at least 1, got {attempts}")
    return [
        Ask(
            choices=_choices(obj["choices"], where),
            prompts=tuple(prompts),
            attempts=attempts,
            timeout_seconds=_seconds(obj, "timeout", where, default=30.0),
            name=_name(obj, where),
            required=_flag(obj, "required", where, default=True),
            event_prompts=tuple(event_prompts),
            bargein=_flag(obj, "bargein", where, default=True),
        )
    ]


def _on(value: Any, where: str, base_url: str) -> _Parsed:
    obj = _object(value, where)
    if obj.get("event") is None:
        raise _error(where, "has no 'event': say which event this handler is for")
    event = _text(obj["event"], where, "'event'").strip()
    if not event:
        raise _field_error(where, "'event'", "is empty")
    # Tropo's own events are lower-case words; other names are signals, matched as sent.
    if event.lower() in _EVENTS:
        event = event.lower()
    next_url = _optional_text(obj, "next", where)
    return [
        Handler(
            event=event,
            next=Target(_resolve(next_url, base_url, where), "POST") if next_url else None,
            say=tuple(
                say
                for _, say in _say_items(obj.get("say"), where, voice=None)
                if _says_something(say)
            ),
        )
    ]


def _wait(value: Any, where: str, base_url: str) -> _Parsed:
    obj = _object(value, where)
    milliseconds = _number(obj, "milliseconds", where, default=0.0)
    return [Wait(seconds=min(milliseconds / 1000, MAX_SESSION_SECONDS))]


def _hangup(value: Any, where: str, base_url: str) -> _Parsed:
    _object(value, where, empty_ok=True)
    return [Hangup()]


def _reject(value: Any, where: str, base_url: str) -> _Parsed:
    _object(value, where, empty_ok=True)
    return [Reject()]


def _ignored(value: Any, where: str, base_url: str) -> _Parsed:
    return []  # generalLogSecurity: logging policy, which changes nothing a party sees


def _voice_verb(kind: str, required: str | None = None, empty_ok: bool = False) -> _VerbParser:
    """A verb that needs a call: kept with its attributes so the engine can name it."""

    def parse(value: Any, where: str, base_url: str) -> _Parsed:
        attributes = dict(_object(value, where, empty_ok=empty_ok))
        if required and attributes.get(required) is None:
            raise _error(where, f"has no {required!r}")
        if kind == "redirect":
            return [Deflect(_address(attributes["to"], where, "'to'"))]
        if "to" in attributes:  # call, transfer: one destination or several
            attributes["to"] = list(_addresses(attributes, "to", where))
            if attributes.get("from") is not None:
                attributes["from"] = _sender(attributes, where)
        if kind == "call":
            # On the text channel a call opens a conversation (later `say`s are texts); on
            # the voice channel it places a call.
            channel = _channel(attributes, where)
            voice = channel is Channel.VOICE
            return [
                Call(
                    to=tuple(attributes["to"]),
                    sender=attributes.get("from"),
                    channel=channel,
                    name=_name(attributes, where),
                    required=_flag(attributes, "required", where, True),
                    timeout_seconds=_timeout(attributes, where) if voice else None,
                    channel_default=not _channel_named(attributes),
                )
            ]
        return [VoiceVerb(kind, attributes)]

    return parse


_VERBS: dict[str, _VerbParser] = {
    "message": _message,
    "say": _say,
    "ask": _ask,
    "on": _on,
    "wait": _wait,
    "hangup": _hangup,
    "reject": _reject,
    "generalLogSecurity": _ignored,
    # Tropo's redirect deflects a ringing call to a SIP address; it never loads a document.
    "redirect": _voice_verb("redirect", required="to"),
    "call": _voice_verb("call", required="to"),
    "transfer": _voice_verb("transfer", required="to"),
    "conference": _voice_verb("conference", required="id"),
    "record": _voice_verb("record", required="url"),
    "startRecording": _voice_verb("startRecording", required="url"),
    "stopRecording": _voice_verb("stopRecording", empty_ok=True),
    "answer": _voice_verb("answer", empty_ok=True),
}


# --- the parts verbs share ------------------------------------------------------------------


def _say_items(value: Any, where: str, voice: str | None) -> list[tuple[str | None, Say]]:
    """Each say item as `(event, Say)`; `value` may be one item, an array of them, or absent."""
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    parsed = []
    for number, item in enumerate(items, 1):
        at = f"{where}: 'say' item #{number}" if isinstance(value, list) else f"{where}: 'say'"
        if isinstance(item, str):  # a bare string is what the helpers turn into {"value": ...}
            item = {"value": item}
        obj = _object(item, at)
        urls, captions = _media(obj.get("media"), at)
        if obj.get("value") is None and not (urls or captions):
            raise _error(at, "has no 'value'")
        text = "" if obj.get("value") is None else _text(obj["value"], at, "'value'")
        event = _optional_text(obj, "event", at)
        audio = (text,) if urlsplit(text).scheme.lower() in ("http", "https") else ()
        say = Say(
            text="\n".join(part for part in (text, *captions) if part),
            media=urls,
            audio=audio,
            voice=_lower(obj, "voice", at) or voice,
            name=_name(obj, at),
            required=_flag(obj, "required", at, default=True),
        )
        parsed.append((event.strip().lower() if event else None, say))
    return parsed


def _says_something(say: Say) -> bool:
    return bool(say.text or say.media)


def _media(value: Any, where: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """`say.media` split into attachment URLs and text parts."""
    if value is None:
        return (), ()
    items = value if isinstance(value, list) else [value]
    urls: list[str] = []
    captions: list[str] = []
    for number, item in enumerate(items, 1):
        text = _text(item, where, f"'media' item #{number}").strip()
        if urlsplit(text).scheme.lower() in ("http", "https"):
            urls.append(text)
        elif text:
            captions.append(text)
    return tuple(urls), tuple(captions)


def _choices(value: Any, where: str) -> Choices:
    if isinstance(value, str):
        value = {"value": value}
    obj = _object(value, f"{where}: 'choices'")
    grammar = _optional_text(obj, "value", f"{where}: 'choices'")
    if not grammar or not grammar.strip():
        raise _error(where, "has no 'choices.value': an ask needs a grammar to match the answer to")
    mode = _lower(obj, "mode", f"{where}: 'choices'")
    return Choices(
        grammar=grammar,
        # Old Tropo docs called DTMF input "keypad".
        mode="dtmf" if mode == "keypad" else mode,
        terminator=_optional_text(obj, "terminator", f"{where}: 'choices'"),
    )


def _channel(obj: dict[str, Any], where: str) -> Channel:
    channel = _upper(obj, "channel", where)
    if channel == "VOICE":
        return Channel.VOICE
    if channel == "TEXT":
        return Channel.TEXT
    if channel is not None:
        raise _field_error(where, "'channel'", f'must be "VOICE" or "TEXT", got {channel!r}')
    network = _upper(obj, "network", where)
    return Channel.VOICE if network in _VOICE_NETWORKS else Channel.TEXT


def _channel_named(obj: dict[str, Any]) -> bool:
    return obj.get("channel") is not None or obj.get("network") is not None


def _addresses(obj: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = obj.get(key)
    if value is None:
        raise _error(where, f"has no {key!r}: say who receives it")
    if not isinstance(value, list):
        return (_address(value, where, repr(key)),)
    if not value:
        raise _field_error(where, repr(key), "is an empty array")
    return tuple(
        _address(item, where, f"{key!r} item #{number}") for number, item in enumerate(value, 1)
    )


def _address(value: Any, where: str, label: str) -> str:
    # PHP and JavaScript apps sometimes build a number as an integer; its meaning is plain.
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise _field_error(where, label, f"must be a string, got {_kind(value)}")
    address = value.strip()
    if not address:
        raise _field_error(where, label, "is empty")
    _check_text(address, where, label)
    return address


def _sender(obj: dict[str, Any], where: str) -> str | None:
    value = obj.get("from")
    if isinstance(value, dict):  # the old C# library sent a caller ID object
        value = value.get("id")
    if value is None or value == "":
        return None
    return _address(value, where, "'from'")


def _resolve(url: str, base_url: str, where: str) -> str:
    resolved = urljoin(base_url, url.strip())
    if urlsplit(resolved).scheme.lower() not in ("http", "https"):
        raise _field_error(where, "'next'", f"must lead to an http(s) URL, got {_short(resolved)}")
    return resolved


# --- scalar fields, leniently -------------------------------------------------------------


def _object(value: Any, where: str, empty_ok: bool = False) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    # `null`, and the PHP library's string "null", mean "no options" for option-less verbs.
    if empty_ok and value in (None, "null", ""):
        return {}
    raise _error(where, f"must be an object, got {_kind(value)}")


def _text(value: Any, where: str, label: str) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        value = str(value)
    if not isinstance(value, str):
        raise _field_error(where, label, f"must be a string, got {_kind(value)}")
    _check_text(value, where, label)
    return value


def _check_text(value: str, where: str, label: str) -> None:
    # JSON can carry half of a surrogate pair; no carrier or database can store one.
    if _SURROGATE.search(value):
        raise _field_error(where, label, "contains an unpaired UTF-16 surrogate")


def _optional_text(obj: dict[str, Any], key: str, where: str) -> str | None:
    value = obj.get(key)
    return None if value is None else _text(value, where, repr(key))


def _name(obj: dict[str, Any], where: str) -> str | None:
    return _optional_text(obj, "name", where) or None


def _lower(obj: dict[str, Any], key: str, where: str) -> str | None:
    # Enum-like values came in any case from the helper libraries ("Kate", "kate", "DTMF").
    value = (_optional_text(obj, key, where) or "").strip()
    return value.lower() or None


def _upper(obj: dict[str, Any], key: str, where: str) -> str | None:
    value = (_optional_text(obj, key, where) or "").strip()
    return value.upper() or None


def _flag(obj: dict[str, Any], key: str, where: str, default: bool) -> bool:
    value = obj.get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise _field_error(where, repr(key), f"must be true or false, got {_kind(value)}")


def _number(obj: dict[str, Any], key: str, where: str, default: float) -> float:
    value = obj.get(key)
    if value is None:
        return float(default)
    if isinstance(value, str) and _NUMERIC.fullmatch(value.strip()):
        value = float(value)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise _field_error(where, repr(key), f"must be a number, got {_kind(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise _field_error(where, repr(key), "is too large") from None
    if not math.isfinite(number):
        raise _field_error(where, repr(key), "is too large")
    if number < 0:
        raise _field_error(where, repr(key), f"must not be negative, got {_short(str(value))}")
    return number


def _integer(obj: dict[str, Any], key: str, where: str, default: int) -> int:
    number = _number(obj, key, where, default=default)
    if not number.is_integer():
        raise _field_error(where, repr(key), f"must be a whole number, got {number}")
    return int(number)


def _seconds(obj: dict[str, Any], key: str, where: str, default: float) -> float:
    return min(_number(obj, key, where, default=default), MAX_SESSION_SECONDS)


def _error(where: str, problem: str) -> DocumentError:
    return DocumentError(ERRORS.parse_failed, f"{where} {problem}")


def _field_error(where: str, label: str, problem: str) -> DocumentError:
    return _error(f"{where}: {label}", problem)


def _kind(value: Any) -> str:
    """A value as an error message names it: `an array`, `the string "abc"`, `null`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return f"the string {_short(json.dumps(value))}"
    if isinstance(value, float):
        return f"the number {value:g}"
    digits = str(value)
    return f"the number {digits}" if len(digits) <= 20 else f"a {len(digits)}-digit number"


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- writing the Session and Result JSON -------------------------------------------------------


def _post(target: Target, body: dict[str, Any]) -> AppRequest:
    # Tropo always POSTs JSON, whatever method a URL was configured with.
    return AppRequest(
        method="POST", url=target.url, json=body, headers={"Content-Type": CONTENT_TYPE}
    )


def _timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a `Z`, like `2010-05-05T01:59:19.402Z`."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def _parameters(custom: dict[str, str]) -> dict[str, str]:
    # `token` and `action` lead, as in Tropo's payloads; `action` was always "create".
    parameters = dict(custom)
    ordered = {"token": parameters.pop("token")} if "token" in parameters else {}
    ordered["action"] = parameters.pop("action", "create")
    return ordered | parameters


def _inbound(facts: SessionFacts) -> dict[str, Any]:
    if facts.local_number is None or facts.remote_number is None:
        raise ValueError("an inbound session needs both its local and its remote number")
    text = facts.channel == "text"
    network = ("MMS" if facts.inbound_media else "SMS") if text else "PSTN"
    fields: dict[str, Any] = {
        "userType": "HUMAN",
        "initialText": (facts.initial_text or "") if text else None,
        "callId": _call_id(facts),
        "to": _caller_id(facts.local_number, facts.channel, network),
        "from": _caller_id(facts.remote_number, facts.channel, network),
        # Tropo sent the SIP headers of the inbound leg; there are none, but apps read the key.
        "headers": {},
    }
    if network == "MMS":
        # Verbal does not keep an MMS subject; an empty string keeps the key a string.
        fields["subject"] = ""
        fields["initialMedia"] = [
            {"status": "success", "media": url} for url in facts.inbound_media
        ]
        if facts.initial_text:
            fields["initialMedia"].append({"status": "success", "text": facts.initial_text})
    return fields


def _caller_id(number: str, channel: str, network: str) -> dict[str, Any]:
    number_id, e164_id = _ids(number, channel)
    return {
        "id": number_id,
        "e164Id": e164_id,
        "name": None,
        "channel": "TEXT" if channel == "text" else "VOICE",
        "network": network,
    }


def _ids(number: str, channel: str) -> tuple[str, str]:
    """`(id, e164Id)`: digits without `+` or formatting; `e164Id` always has the country code.

    Tropo gave North American numbers on calls as 10 national digits, but text sessions kept
    the country code (observed SMS payloads). Short codes and names pass through unchanged.
    """
    if not number.startswith("+"):
        return number, number
    digits = "".join(char for char in number if char.isdigit())
    if channel == "voice" and len(digits) == 11 and digits.startswith("1"):
        return digits[1:], digits
    return digits, digits


def _call_id(facts: SessionFacts) -> str:
    # Tropo's call ids are 32 hex digits, stable for the session: a call's own SID holds
    # them; a text session derives some rather than store them, so the Session and every
    # later Result agree.
    if facts.call is not None:
        return facts.call.sid[2:].lower()
    return hashlib.sha256(f"tropo-call:{facts.session_id}".encode()).hexdigest()[:32]


def _action(result: VerbResult) -> dict[str, Any]:
    # Every key is present, null when unknown: the Python library reads `action['value']`
    # directly and would raise KeyError on a missing key.
    success = result.disposition == "SUCCESS"
    return {
        "name": result.name,
        "attempts": result.attempts,
        "disposition": result.disposition,
        "confidence": 100 if success else None,
        "interpretation": result.interpretation,
        "utterance": result.utterance,
        "value": result.value,
        "concept": result.concept,
    }
