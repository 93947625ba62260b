"""The Tropo dialect: documents the helper libraries really emit, and the JSON Tropo posted.

Parse vectors are the exact outputs recorded in the research notes (spec/tropo.md §4.7 and
§8.3, spec/sdks.md §3.2) and the Tropo blog's document from the seed, verbatim.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verbal.dialects.tropo import DIALECT, ERRORS, MAX_SESSION_SECONDS, sessions_api_reply
from verbal.dialects.types import Dialect, MessageFacts, Progress, SessionFacts, VerbResult
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
    VoiceVerb,
    Wait,
)

BASE = "http://app.example/tropo/start.json"
TEXT, VOICE = Channel.TEXT, Channel.VOICE


def parse(document: str | bytes, content_type: str = "application/json") -> Document:
    body = document.encode() if isinstance(document, str) else document
    return DIALECT.parse(body, content_type, BASE)


def parse_error(document: str | bytes, content_type: str = "application/json") -> DocumentError:
    with pytest.raises(DocumentError) as caught:
        parse(document, content_type)
    return caught.value


# --- documents the libraries emit ---------------------------------------------------------

BLOG = (
    '{"tropo":[{"message":{"channel":"TEXT","to":"tel:+14075551212",'
    '"say":[{"value":"my message to send"}],"network":"SMS"}}]}'
)


@pytest.mark.parametrize(
    ("document", "verbs"),
    [
        pytest.param(
            BLOG,
            [Message(to=("tel:+14075551212",), body="my message to send")],
            id="seed-blog-ruby",
        ),
        pytest.param(
            '{"tropo": [{"message": {"to": "+14155551212", "say": {"value": "Hello World"}, '
            '"network": "SMS", "channel": "TEXT"}}]}',
            [Message(to=("+14155551212",), body="Hello World")],
            id="python-sms",
        ),
        pytest.param(
            '{"tropo": [{"message": {"from": "+14075550100", "name": "m1", "answerOnMedia": false,'
            ' "required": true, "promptLogSecurity": "suppress", "to": ["+14155551212", '
            '"sip:a@b.com"], "say": {"value": "Hi"}, "timeout": 60, "voice": "kate", '
            '"channel": "VOICE", "network": "PSTN"}}]}',
            [
                Message(
                    to=("+14155551212", "sip:a@b.com"),
                    sender="+14075550100",
                    body="Hi",
                    channel=VOICE,
                    first_only=False,  # a voice message rings every destination
                    name="m1",
                    timeout_seconds=60.0,
                )
            ],
            id="python-voice-all-options",
        ),
        pytest.param(
            '{"tropo": [{"message": {"to": "+14155551212", '
            '"say": {"as": "DIGITS", "voice": "kate", "value": "Hello"}}}]}',
            # No channel or network: text, unless the session is a voice one.
            [Message(to=("+14155551212",), body="Hello", channel_default=True)],
            id="python-say-object-no-network",
        ),
        pytest.param(
            '{"tropo": [{"message": {"to": "+14155551212", '
            '"say": [{"value": "a"}, {"value": "b"}]}}]}',
            [Message(to=("+14155551212",), body="a\nb", channel_default=True)],
            id="python-say-array-joined-by-newline",
        ),
        pytest.param(
            '{"tropo": [{"message": {"to": "+1", "say": {"media": ["http://x/1.jpg"], '
            '"value": "Look"}, "network": "MMS"}}]}',
            [Message(to=("+1",), body="Look", media=("http://x/1.jpg",))],
            id="python-mms",
        ),
        pytest.param(
            '{"tropo": [{"message": {"to": "+1", "say": {"value": "x"}}}, '
            '{"say": {"voice": "dave", "value": "y"}}]}',
            [Message(to=("+1",), body="x", channel_default=True), Say("y", voice="dave")],
            id="python-setvoice",
        ),
        pytest.param(
            '{"tropo": [{"message": {"to": "6021234567", "say": {"value": "Hello World"}, '
            '"promptLogSecurity": "suppress", "network": "SMS", "timeout": 5, '
            '"channel": "TEXT"}}]}',
            [Message(to=("6021234567",), body="Hello World")],
            id="python-unit-test",
        ),
        pytest.param(
            '{"tropo":[{"message":{"say":[{"value":"This is an announcement"}],'
            '"to":"+13055551212","network":"SMS"}}]}',
            [Message(to=("+13055551212",), body="This is an announcement")],
            id="java",
        ),
        pytest.param(
            '{"tropo":[{"message":{"say":{"value":"This is an announcement"},"to":"3055195825",'
            '"answerOnMedia":false,"channel":"TEXT","from":"3055551212","network":"SMS",'
            '"timeout":10,"voice":"kate"}}]}',
            [Message(to=("3055195825",), sender="3055551212", body="This is an announcement")],
            id="node",
        ),
        pytest.param(
            '{"tropo":[{"message":{"to":"+14155550100","say":{"value":"Look",'
            '"media":["http://x/1.jpg"]},"network":"MMS"}}]}',
            [Message(to=("+14155550100",), body="Look", media=("http://x/1.jpg",))],
            id="mms-notes",
        ),
        pytest.param(
            '{"tropo": [{"message": {"say": {"voice": "Allison", "value": "Hi via Say obj"}, '
            '"to": ["+14155550100", "+14155550101"], "answerOnMedia": false, "channel": "TEXT",'
            ' "from": "+14155550199", "name": "sms1", "network": "SMS", "required": true, '
            '"timeout": 10}}]}',
            [
                Message(
                    to=("+14155550100", "+14155550101"),
                    sender="+14155550199",
                    body="Hi via Say obj",
                    first_only=True,  # Tropo texts only the first of a list
                    name="sms1",
                )
            ],
            id="python-0.1.3-sms-to-list",
        ),
        pytest.param(
            '{"tropo": [{"message": {"say": {"media": ["http://example.com/1.jpg"], '
            '"value": "Pic"}, "to": "+14155550100", "from": "+14155550199", "network": "MMS", '
            '"promptLogSecurity": "suppress"}}]}',
            [
                Message(
                    to=("+14155550100",),
                    sender="+14155550199",
                    body="Pic",
                    media=("http://example.com/1.jpg",),
                )
            ],
            id="python-15.13-mms",
        ),
    ],
)
def test_message_documents(document: str, verbs: list[Any]) -> None:
    assert parse(document) == Document(verbs=tuple(verbs))


def test_python_library_other_verbs() -> None:
    document = parse(
        '{"tropo": [{"hangup": null}, {"reject": null}, {"stopRecording": null}, '
        '{"generalLogSecurity": "suppress"}, {"wait": {"allowSignals": "x", "milliseconds": 3000}},'
        ' {"redirect": {"to": "sip:a@b", "name": "r1"}}, {"answer": {"headers": {"x-h": "v"}}}]}'
    )
    assert document.verbs == (
        Hangup(),
        Reject(),
        VoiceVerb("stopRecording", {}),
        Wait(3.0),
        Deflect("sip:a@b"),
        VoiceVerb("answer", {"headers": {"x-h": "v"}}),
    )
    assert document.handlers == ()


def test_python_library_ask_and_handlers() -> None:
    # spec/sdks.md T4, 15.13.0 output: `on` entries become handlers, not verbs.
    document = parse(
        '{"tropo": [{"ask": {"choices": {"value": "[4 DIGITS]", "terminator": "#", "mode": '
        '"dtmf"}, "attempts": 3, "bargein": true, "name": "pin", "required": true, "say": '
        '{"value": "Please enter your 4 digit PIN"}, "timeout": 5}}, {"on": {"next": '
        '"/continue.json", "event": "continue"}}, {"on": {"next": "/incomplete.json", "say": '
        '{"value": "Sorry, I did not get that"}, "event": "incomplete"}}, {"on": {"next": '
        '"/hangup.json", "event": "hangup"}}, {"hangup": null}]}'
    )
    assert document.verbs == (
        Ask(
            choices=Choices("[4 DIGITS]", mode="dtmf", terminator="#"),
            prompts=(Say("Please enter your 4 digit PIN"),),
            attempts=3,
            timeout_seconds=5.0,
            name="pin",
        ),
        Hangup(),
    )
    assert document.handlers == (
        Handler("continue", Target("http://app.example/continue.json")),
        Handler(
            "incomplete",
            Target("http://app.example/incomplete.json"),
            (Say("Sorry, I did not get that"),),
        ),
        Handler("hangup", Target("http://app.example/hangup.json")),
    )
    assert document.handler("incomplete") is document.handlers[1]


def test_python_library_on_ask_say() -> None:
    document = parse(
        '{"tropo": [{"on": {"say": {"value": "Please hold"}, "event": "continue", '
        '"next": "/next"}}, {"ask": {"say": {"value": "Enter"}, '
        '"choices": {"value": "[4 DIGITS]"}}}, {"say": [{"as": "DIGITS", "value": "a"}, '
        '{"as": "DIGITS", "value": "b"}]}]}'
    )
    assert document.handlers == (
        Handler("continue", Target("http://app.example/next"), (Say("Please hold"),)),
    )
    assert document.verbs == (
        Ask(Choices("[4 DIGITS]"), prompts=(Say("Enter"),)),
        Say("a"),
        Say("b"),
    )


def test_python_library_voice_verbs_keep_their_attributes() -> None:
    document = parse(
        '{"tropo": ['
        '{"record": {"url": "http://x/rec", "transcription": {"url": "mailto:a@b", "id": "1"}, '
        '"maxTime": 60, "say": {"value": "Speak"}, "choices": {"terminator": "#", "value": ""}}},'
        '{"transfer": {"to": ["+1", "+2"], "on": {"say": {"value": "http://x/ring.mp3"}, '
        '"event": "ring"}, "from": "+3", "ringRepeat": 2, "choices": {"terminator": "*"}}},'
        '{"call": {"to": "+14155551212", "machineDetection": {"introduction": "hello", '
        '"voice": "kate"}}},'
        '{"conference": {"joinPrompt": {"value": "hi"}, "id": "1234", "terminator": "#"}},'
        '{"startRecording": {"url": "http://x/r", "method": "POST", "format": "audio/mp3"}}]}'
    )
    record, transfer, call, conference, start_recording = document.verbs
    assert record == VoiceVerb(
        "record",
        {
            "url": "http://x/rec",
            "transcription": {"url": "mailto:a@b", "id": "1"},
            "maxTime": 60,
            "say": {"value": "Speak"},
            "choices": {"terminator": "#", "value": ""},
        },
    )
    assert transfer == VoiceVerb(
        "transfer",
        {
            "to": ["+1", "+2"],
            "on": {"say": {"value": "http://x/ring.mp3"}, "event": "ring"},
            "from": "+3",
            "ringRepeat": 2,
            "choices": {"terminator": "*"},
        },
    )
    # Names no network: Verbal reads it as text, like `message`, so it opens a conversation.
    assert call == Call(to=("+14155551212",), channel_default=True)
    assert conference.kind == "conference" and conference.attributes["id"] == "1234"
    assert start_recording == VoiceVerb(
        "startRecording", {"url": "http://x/r", "method": "POST", "format": "audio/mp3"}
    )


def test_call_on_the_sms_network_is_a_text_conversation() -> None:
    # spec/sdks.md T6 and T9: the outbound-SMS pattern `call` + `say`.
    document = parse(
        '{"tropo": [{"call": {"to": "+14155550100", "channel": "TEXT", "from": "+14155550199", '
        '"network": "SMS"}}, {"say": {"value": "Sent via call+say"}}]}'
    )
    assert document.verbs == (
        Call(to=("+14155550100",), sender="+14155550199"),
        Say("Sent via call+say"),
    )
    mms = parse(
        '{"tropo": [{"call": {"to": "+14155550100", "from": "+14155550199", "network": "MMS", '
        '"label": "mms1"}}, {"say": {"media": ["http://example.com/1.jpg", "caption text"], '
        '"value": "Look at this"}}, {"wait": {"milliseconds": 500}}, {"hangup": null}]}'
    )
    call, say, wait, hangup = mms.verbs
    assert call == Call(to=("+14155550100",), sender="+14155550199")
    # A media item that is not a URL is a text part of the message.
    assert say == Say("Look at this\ncaption text", media=("http://example.com/1.jpg",))
    assert (wait, hangup) == (Wait(0.5), Hangup())
    voice_call = parse('{"tropo": [{"call": {"to": "+1415", "network": "SIP"}}]}').verbs[0]
    assert voice_call == Call(to=("+1415",), channel=VOICE)


def test_voice_call_and_message_keep_their_ring_timeout() -> None:
    document = parse(
        '{"tropo": [{"call": {"to": ["+1", "+2"], "from": "+3", "timeout": 20, "channel": '
        '"VOICE", "name": "c"}}, {"message": {"to": "+4", "say": [{"value": "Hi"}, {"value": '
        '"http://x/a.wav"}], "channel": "VOICE", "timeout": 15}}]}'
    )
    assert document.verbs == (
        Call(to=("+1", "+2"), sender="+3", channel=VOICE, name="c", timeout_seconds=20.0),
        # On a call a URL is played, not spoken.
        Message(
            to=("+4",), body="Hi", media=("http://x/a.wav",), channel=VOICE, timeout_seconds=15.0
        ),
    )


def test_a_say_value_that_is_a_url_is_audio_on_a_call_and_text_on_text() -> None:
    (say,) = parse('{"tropo": [{"say": {"value": "https://x/hello.mp3"}}]}').verbs
    assert say == Say("https://x/hello.mp3", audio=("https://x/hello.mp3",))


def test_empty_document_is_valid() -> None:
    assert parse('{"tropo": []}') == Document(verbs=())
    assert parse('{"tropo":[]}', "text/html") == Document(verbs=())


# --- leniency -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["null", "{}", '"null"', '{"headers": {"x-a": "b"}}'])
@pytest.mark.parametrize(
    ("verb", "expected"),
    [("hangup", Hangup()), ("reject", Reject()), ("stopRecording", VoiceVerb("stopRecording"))],
)
def test_option_less_verbs_accept_every_library_spelling(
    verb: str, expected: Any, value: str
) -> None:
    verbs = parse(f'{{"tropo": [{{"{verb}": {value}}}]}}').verbs
    assert len(verbs) == 1 and type(verbs[0]) is type(expected)
    if verb != "stopRecording":
        assert verbs[0] == expected


def message_of(fields: str) -> Message:
    (verb,) = parse(f'{{"tropo": [{{"message": {{{fields}}}}}]}}').verbs
    assert isinstance(verb, Message)
    return verb


@pytest.mark.parametrize(
    ("fields", "check"),
    [
        ('"to": "+1", "say": "bare string"', lambda m: m.body == "bare string"),
        ('"to": ["+1"], "say": {"value": "x"}', lambda m: m.to == ("+1",) and m.first_only),
        ('"to": 14155550100, "say": {"value": "x"}', lambda m: m.to == ("14155550100",)),
        ('"to": " +1 ", "say": {"value": "x"}', lambda m: m.to == ("+1",)),
        ('"to": "+1", "from": {"id": "+2"}, "say": {"value": "x"}', lambda m: m.sender == "+2"),
        ('"to": "+1", "from": "", "say": {"value": "x"}', lambda m: m.sender is None),
        ('"to": "+1", "say": {"value": "x"}, "required": "false"', lambda m: not m.required),
        ('"to": "+1", "say": {"value": "x"}, "required": "TRUE"', lambda m: m.required),
        ('"to": "+1", "say": {"value": 42}', lambda m: m.body == "42"),
        ('"to": "+1", "say": {"value": "x"}, "channel": "voice"', lambda m: m.channel is VOICE),
        ('"to": "+1", "say": {"value": "x"}, "network": "pstn"', lambda m: m.channel is VOICE),
        ('"to": "+1", "say": {"value": "x"}, "network": "sip"', lambda m: m.channel is VOICE),
        ('"to": "+1", "say": {"value": "x"}, "network": "sms"', lambda m: m.channel is TEXT),
        ('"to": "+1", "say": {"value": "x"}, "network": "TWITTER"', lambda m: m.channel is TEXT),
        ('"to": "+1", "say": {"value": "x"}, "channel": "Text"', lambda m: m.channel is TEXT),
        ('"to": "+1", "say": {"value": "x"}, "label": "L", "x-y": [1]', lambda m: m.body == "x"),
        ('"to": "+1", "say": [{"value": ""}, {"value": "x"}]', lambda m: m.body == "x"),
        (
            '"to": "+1", "say": {"media": "http://x/a.png"}',
            lambda m: m.media == ("http://x/a.png",),
        ),
        ('"to": "+1", "say": {"value": "x"}, "name": ""', lambda m: m.name is None),
    ],
)
def test_message_leniency(fields: str, check: Any) -> None:
    assert check(message_of(fields))


@pytest.mark.parametrize(
    ("fields", "attempts", "timeout"),
    [
        ('"attempts": 3, "timeout": 10.5', 3, 10.5),
        ('"attempts": "3", "timeout": "10.5"', 3, 10.5),
        ('"attempts": 3.0, "timeout": "7"', 3, 7.0),
        ("", 1, 30.0),
        ('"timeout": 1e9', 1, float(MAX_SESSION_SECONDS)),
    ],
)
def test_ask_numbers(fields: str, attempts: int, timeout: float) -> None:
    separator = ", " if fields else ""
    (ask,) = parse(
        f'{{"tropo": [{{"ask": {{"choices": {{"value": "1,2"}}{separator}{fields}}}}}]}}'
    ).verbs
    assert isinstance(ask, Ask)
    assert (ask.attempts, ask.timeout_seconds) == (attempts, timeout)


def test_ask_details() -> None:
    (ask,) = parse(
        '{"tropo": [{"ask": {"choices": {"value": "yes(yes,y,1), no(no,n,2)", "mode": "DTMF"}, '
        '"voice": "Kate", "required": "false", "bargein": false, "say": [{"event": "nomatch:1", '
        '"value": "Again?"}, {"event": "timeout", "value": "Still there?"}, '
        '{"value": "Yes or no?"}, {"value": "", "name": "swallowed"}, '
        '{"event": "nomatch:2 nomatch:3", "value": "Last"}]}}]}'
    ).verbs
    assert ask == Ask(
        choices=Choices("yes(yes,y,1), no(no,n,2)", mode="dtmf"),
        # The ask's voice reaches its prompts, event prompts included.
        prompts=(Say("Yes or no?", voice="kate"),),
        required=False,
        event_prompts=(
            ("nomatch:1", Say("Again?", voice="kate")),
            ("timeout", Say("Still there?", voice="kate")),
            ("nomatch:2", Say("Last", voice="kate")),
            ("nomatch:3", Say("Last", voice="kate")),
        ),
        bargein=False,
    )
    assert ask.prompts_for("nomatch", 1) == (Say("Again?", voice="kate"),)
    assert ask.prompts_for("nomatch", 4) == ()  # no `nomatch` for every attempt
    assert ask.prompts_for("timeout", 2) == (Say("Still there?", voice="kate"),)
    (legacy,) = parse('{"tropo": [{"ask": {"choices": "[ANY]", "say": "Hi"}}]}').verbs
    assert legacy == Ask(Choices("[ANY]"), prompts=(Say("Hi"),))
    (keypad,) = parse('{"tropo": [{"ask": {"choices": {"value": "1", "mode": "keypad"}}}]}').verbs
    assert isinstance(keypad, Ask) and keypad.choices.mode == "dtmf"


def test_initial_text_capture_recipe_sends_nothing() -> None:
    # Tropo's documented way to swallow an inbound text: an ask whose prompt is empty.
    (ask,) = parse(
        '{"tropo":[{"ask":{"say":[{"value":""}],"choices":{"value":"[ANY]"},'
        '"name":"initial_text_capture"}}]}'
    ).verbs
    assert ask == Ask(Choices("[ANY]"), name="initial_text_capture")
    assert parse('{"tropo": [{"say": {"value": ""}}]}').verbs == ()


def test_say_verb_items() -> None:
    document = parse(
        '{"tropo": [{"say": {"value": "one", "voice": "VICTOR", "name": "s", "required": false}},'
        ' {"say": ["bare", {"value": "pic", "media": ["https://x/1.jpg", "  "]}]}]}'
    )
    assert document.verbs == (
        Say("one", voice="victor", name="s", required=False),
        Say("bare"),
        Say("pic", media=("https://x/1.jpg",)),
    )
    assert all(isinstance(say, Say) and not say.speech_only for say in document.verbs)


@pytest.mark.parametrize(
    ("next_url", "resolved"),
    [
        ("/continue.json", "http://app.example/continue.json"),
        ("testapp.php?uri=choice", "http://app.example/tropo/testapp.php?uri=choice"),
        ("https://other.example/x", "https://other.example/x"),
    ],
)
def test_next_resolves_against_the_document_url(next_url: str, resolved: str) -> None:
    (handler,) = parse(
        f'{{"tropo": [{{"on": {{"event": "continue", "next": "{next_url}"}}}}]}}'
    ).handlers
    assert handler.next == Target(resolved, "POST")


def test_on_events() -> None:
    handlers = parse(
        '{"tropo": [{"on": {"event": "Incomplete", "name": "n", "required": true}}, '
        '{"on": {"event": "exitSignal", "say": "bye", "next": ""}}]}'
    ).handlers
    assert handlers == (Handler("incomplete"), Handler("exitSignal", None, (Say("bye"),)))


def test_wait_and_numbers() -> None:
    assert parse('{"tropo": [{"wait": {"milliseconds": "1500"}}]}').verbs == (Wait(1.5),)
    assert parse('{"tropo": [{"wait": {}}]}').verbs == (Wait(0.0),)
    # No wait outlasts a Tropo session.
    huge = parse('{"tropo": [{"wait": {"milliseconds": 1e300}}]}').verbs
    assert huge == (Wait(float(MAX_SESSION_SECONDS)),)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (BLOG.encode(), "text/html;charset=utf-8"),  # the blog's Sinatra app never set one
        (BLOG.encode(), ""),
        (b"\xef\xbb\xbf" + BLOG.encode(), "application/json"),
        (BLOG.encode(), "application/json; charset=no-such-charset"),
    ],
)
def test_content_type_does_not_matter_for_json(body: bytes, content_type: str) -> None:
    assert parse(body, content_type).verbs == (
        Message(to=("tel:+14075551212",), body="my message to send"),
    )


def test_declared_charset_is_honoured() -> None:
    body = '{"tropo": [{"say": {"value": "Café"}}]}'.encode("iso-8859-1")
    assert parse(body, "application/json; charset=ISO-8859-1").verbs == (Say("Café"),)
    assert parse('{"tropo": [{"say": {"value": "Café"}}]}'.encode()).verbs == (Say("Café"),)


def test_unknown_top_level_keys_are_ignored() -> None:
    assert parse('{"tropo": [{"hangup": null}], "version": 2}').verbs == (Hangup(),)


# --- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "words"),
    [
        ('{"tropo": [', ["not valid JSON"]),
        ("", ["empty"]),
        ("[]", ["must be an object", "array"]),
        ('"tropo"', ["must be an object", "string"]),
        ('{"session": {}}', ["no 'tropo' key", "'session'"]),
        ('{"tropo": {"say": {"value": "x"}}}', ["'tropo' must be an array", "object"]),
        ('{"tropo": null}', ["'tropo' must be an array", "null"]),
        ('{"tropo": ["say"]}', ["verb #1", "one key", "string"]),
        ('{"tropo": [{}]}', ["verb #1", "one key", "0 keys"]),
        ('{"tropo": [{"say": "a", "hangup": null}]}', ["verb #1", "2 keys"]),
        (
            '{"tropo": [{"hangup": null}, {"mesage": {}}]}',
            ["verb #2 ('mesage') is not a Tropo verb", "did you mean 'message'"],
        ),
        ('{"tropo": [{"Say": {"value": "x"}}]}', ["verb #1 ('Say') is not a Tropo verb", "'say'"]),
        ('{"tropo": [{"log": {"value": "x"}}]}', ["verb #1 ('log') is not a Tropo verb"]),
        ('{"tropo": [{"message": {"say": {"value": "x"}}}]}', ["verb #1 ('message')", "no 'to'"]),
        ('{"tropo": [{"message": {"to": "+1"}}]}', ["verb #1 ('message')", "no 'say'"]),
        ('{"tropo": [{"message": {"to": [], "say": "x"}}]}', ["'to' is an empty array"]),
        ('{"tropo": [{"message": {"to": "  ", "say": "x"}}]}', ["'to' is empty"]),
        ('{"tropo": [{"message": {"to": true, "say": "x"}}]}', ["'to' must be a string", "true"]),
        ('{"tropo": [{"message": {"to": ["+1", {}], "say": "x"}}]}', ["'to' item #2", "object"]),
        ('{"tropo": [{"message": {"to": "+1", "from": [], "say": "x"}}]}', ["'from'", "array"]),
        ('{"tropo": [{"message": {"to": "+1", "say": {"value": ""}}}]}', ["nothing to send"]),
        (
            '{"tropo": [{"message": {"to": "+1", "say": [{"value": "a"}, {"as": "x"}]}}]}',
            ["'say' item #2 has no 'value'"],
        ),
        (
            '{"tropo": [{"message": {"to": "+1", "say": {"value": ["a"]}}}]}',
            ["'value' must be a string", "array"],
        ),
        (
            '{"tropo": [{"message": {"to": "+1", "say": "x", "channel": "FAX"}}]}',
            ["'channel' must be", "'FAX'"],
        ),
        (
            '{"tropo": [{"message": {"to": "+1", "say": "x", "required": "maybe"}}]}',
            ["'required' must be true or false", '"maybe"'],
        ),
        (
            '{"tropo": [{"message": {"to": "+1", "say": "x", "required": 1}}]}',
            ["'required' must be true or false"],
        ),
        (
            '{"tropo": [{"message": {"to": "+1", "say": {"value": "x", "media": [1.5, {}]}}}]}',
            ["'media' item #2", "object"],
        ),
        ('{"tropo": [{"message": []}]}', ["verb #1 ('message') must be an object", "array"]),
        ('{"tropo": [{"ask": {"say": "x"}}]}', ["verb #1 ('ask')", "no 'choices'"]),
        ('{"tropo": [{"ask": {"choices": {"mode": "dtmf"}}}]}', ["no 'choices.value'"]),
        (
            '{"tropo": [{"ask": {"choices": {"value": "1"}, "timeout": "soon"}}]}',
            ["'timeout' must be a number", '"soon"'],
        ),
        (
            '{"tropo": [{"ask": {"choices": {"value": "1"}, "timeout": -1}}]}',
            ["'timeout' must not be negative"],
        ),
        (
            '{"tropo": [{"ask": {"choices": {"value": "1"}, "attempts": 0}}]}',
            ["'attempts' must be at least 1"],
        ),
        (
            '{"tropo": [{"ask": {"choices": {"value": "1"}, "attempts": 2.5}}]}',
            ["'attempts' must be a whole number"],
        ),
        (
            '{"tropo": [{"ask": {"choices": {"value": "1"}, "attempts": true}}]}',
            ["'attempts' must be a number", "true"],
        ),
        ('{"tropo": [{"on": {"next": "/x"}}]}', ["verb #1 ('on')", "no 'event'"]),
        ('{"tropo": [{"on": {"event": " "}}]}', ["'event' is empty"]),
        (
            '{"tropo": [{"on": {"event": "continue", "next": "javascript:alert(1)"}}]}',
            ["'next' must lead to an http(s) URL"],
        ),
        (
            '{"tropo": [{"on": {"event": "continue", "next": "file:///etc/passwd"}}]}',
            ["'next' must lead to an http(s) URL"],
        ),
        ('{"tropo": [{"wait": {"milliseconds": -5}}]}', ["'milliseconds' must not be negative"]),
        ('{"tropo": [{"wait": 3000}]}', ["verb #1 ('wait') must be an object", "number 3000"]),
        ('{"tropo": [{"hangup": "now"}]}', ["verb #1 ('hangup') must be an object"]),
        ('{"tropo": [{"call": {"network": "SMS"}}]}', ["verb #1 ('call') has no 'to'"]),
        ('{"tropo": [{"redirect": {"name": "r"}}]}', ["verb #1 ('redirect') has no 'to'"]),
        ('{"tropo": [{"conference": {}}]}', ["verb #1 ('conference') has no 'id'"]),
        ('{"tropo": [{"record": null}]}', ["verb #1 ('record') must be an object"]),
        ('{"tropo": [{"wait": {"milliseconds": NaN}}]}', ["not valid JSON", "NaN"]),
        ('{"tropo": [{"wait": {"milliseconds": Infinity}}]}', ["not valid JSON", "Infinity"]),
        ('{"tropo": [{"say": {"value": "\\ud800"}}]}', ["unpaired", "surrogate"]),
    ],
)
def test_errors_name_the_problem_and_its_position(document: str, words: list[str]) -> None:
    error = parse_error(document)
    assert error.code == ERRORS.parse_failed
    assert error.message == str(error)
    for word in words:
        assert word in error.message, error.message


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            '{"tropo": [{"hangup": null}, {"mesage": {}}]}',
            "verb #2 ('mesage') is not a Tropo verb (did you mean 'message'?)",
        ),
        (
            '{"tropo": [{"message": {"say": "x"}}]}',
            "verb #1 ('message') has no 'to': say who receives it",
        ),
        (
            '{"tropo": [{"say": "hi"}, {"ask": {"choices": {"value": "1"}, "timeout": "soon"}}]}',
            "verb #2 ('ask'): 'timeout' must be a number, got the string \"soon\"",
        ),
        (
            '{"tropo": [{"message": {"to": "+1", "say": [{"value": "a"}, {"as": "x"}]}}]}',
            "verb #1 ('message'): 'say' item #2 has no 'value'",
        ),
        ('{"tropo": {}}', "the document: 'tropo' must be an array, got an object"),
    ],
)
def test_error_messages_read_well(document: str, message: str) -> None:
    assert parse_error(document).message == message


def test_relative_next_without_a_base_is_an_error() -> None:
    with pytest.raises(DocumentError, match="http\\(s\\) URL"):
        DIALECT.parse(b'{"tropo": [{"on": {"event": "continue", "next": "/x"}}]}', "", "")


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("<Response><Message>Hi</Message></Response>", "text/xml"),
        ("<html><body>Oops</body></html>", "text/html; charset=utf-8"),
    ],
)
def test_a_non_json_answer_is_a_content_type_error(body: str, content_type: str) -> None:
    error = parse_error(body, content_type)
    assert error.code == ERRORS.bad_content_type
    assert content_type.split(";")[0] in error.message and "not Tropo JSON" in error.message


def test_broken_json_sent_as_html_is_still_a_parse_error() -> None:
    # The app meant JSON (it starts like JSON) but never set a content type.
    error = parse_error('{"tropo": [}', "text/html")
    assert error.code == ERRORS.parse_failed and "not valid JSON" in error.message


# --- hostile input ------------------------------------------------------------------------


def test_ten_megabytes_of_nesting_is_refused_not_a_recursion_error() -> None:
    error = parse_error(b"[" * (10 * 1024 * 1024))
    assert error.code == ERRORS.parse_failed and "bytes" in error.message


@pytest.mark.parametrize("depth", [100, 2_000, 200_000])
def test_deep_nesting_within_the_size_limit_is_refused(depth: int) -> None:
    closed = "[" * depth + "]" * depth
    for body in (closed, '{"tropo": [{"call": {"to": "+1", "x": ' + closed + "}}]}"):
        error = parse_error(body)
        assert error.code == ERRORS.parse_failed
        assert "nested more than" in error.message


def test_unterminated_deep_nesting_is_refused() -> None:
    error = parse_error("[" * 500_000)
    assert error.code == ERRORS.parse_failed


@pytest.mark.parametrize(
    ("document", "words"),
    [
        ('{"tropo": [{"wait": {"milliseconds": 1e400}}]}', ["'milliseconds' is too large"]),
        ('{"tropo": [{"wait": {"milliseconds": "1e400"}}]}', ["'milliseconds' is too large"]),
        ('{"tropo": [{"wait": {"milliseconds": ' + "9" * 4000 + "}}]}", ["too large"]),
        ('{"tropo": [{"wait": {"milliseconds": ' + "9" * 5000 + "}}]}", ["not valid JSON"]),
        ('{"tropo": [{"ask": {"choices": "1", "attempts": ' + "9" * 400 + "}}]}", ["too large"]),
    ],
)
def test_huge_numbers(document: str, words: list[str]) -> None:
    error = parse_error(document)
    assert error.code == ERRORS.parse_failed
    for word in words:
        assert word in error.message


@pytest.mark.parametrize(
    "body",
    [b'{"tropo": [{"say": {"value": "\xff\xfe"}}]}', b"\x80\x81\x82", b"\xc3("],
)
def test_bytes_that_are_not_utf8(body: bytes) -> None:
    error = parse_error(body)
    assert error.code == ERRORS.parse_failed
    assert "not valid UTF-8" in error.message and "byte" in error.message


def test_a_long_bad_string_is_shortened_in_the_message() -> None:
    error = parse_error(
        '{"tropo": [{"message": {"to": "+1", "say": "x", "required": "' + "y" * 500 + '"}}]}'
    )
    assert len(error.message) < 200


VERB_NAMES = ["message", "say", "ask", "on", "wait", "hangup", "call", "redirect", "mesage"]
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["to", "say", "value", "choices", "event", "next", "media", "x"]),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(VERB_NAMES), JSON_VALUES, max_size=2)))
def test_any_json_either_parses_or_is_a_document_error(entries: list[Any]) -> None:
    body = json.dumps({"tropo": entries}, allow_nan=True).encode()
    try:
        parse(body)
    except DocumentError as error:
        assert error.code == ERRORS.parse_failed and error.message


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64), st.sampled_from(["", "application/json", "text/xml"]))
def test_any_bytes_either_parse_or_are_a_document_error(body: bytes, content_type: str) -> None:
    try:
        parse(body, content_type)
    except DocumentError as error:
        assert error.code in (ERRORS.parse_failed, ERRORS.bad_content_type)


# --- the Session JSON ---------------------------------------------------------------------

STARTED = datetime(2010, 5, 5, 1, 59, 19, 402_123, tzinfo=UTC)
TARGET = Target("https://app.example/tropo/start.json", "GET")


def facts(**changes: Any) -> SessionFacts:
    fields: dict[str, Any] = {
        "session_id": "76b05a0b25127dbf59a4627f6dcd38a7",
        "account_sid": "AC0123456789abcdef0123456789abcdef",
        "started_at": STARTED,
        "channel": "text",
        "launch": "inbound",
        "local_number": "+14075550100",
        "remote_number": "+14155551212",
        "initial_text": "hello there",
        "inbound_message_sid": "SM0123456789abcdef0123456789abcdef",
    }
    return SessionFacts(**(fields | changes))


def session_of(session_facts: SessionFacts) -> dict[str, Any]:
    request = DIALECT.start_request(session_facts, TARGET, "")
    assert request.json is not None
    return request.json["session"]


def test_token_launch_session() -> None:
    launch = facts(
        launch="token",
        local_number=None,
        remote_number=None,
        initial_text=None,
        inbound_message_sid=None,
        parameters={"msg": "my message to send", "to": "4075551212", "token": "tok"},
    )
    request = DIALECT.start_request(launch, TARGET, "secret")
    assert request.method == "POST"  # Tropo POSTs, whatever the URL was configured with
    assert request.url == TARGET.url
    assert request.headers == {"Content-Type": "application/json; charset=UTF-8"}
    assert request.form == ()
    assert request.json == {
        "session": {
            "id": "76b05a0b25127dbf59a4627f6dcd38a7",
            "accountId": "AC0123456789abcdef0123456789abcdef",
            "timestamp": "2010-05-05T01:59:19.402Z",
            "userType": "NONE",
            "initialText": None,
            "callId": None,
            "parameters": {
                "token": "tok",
                "action": "create",
                "msg": "my message to send",
                "to": "4075551212",
            },
        }
    }
    assert list(request.json["session"]["parameters"])[:2] == ["token", "action"]


def test_inbound_sms_session() -> None:
    request = DIALECT.start_request(facts(), TARGET, "secret")
    assert request.method == "POST"
    assert request.headers == {"Content-Type": "application/json; charset=UTF-8"}
    assert request.json is not None
    session = request.json["session"]
    assert set(session) == {
        "id",
        "accountId",
        "timestamp",
        "userType",
        "initialText",
        "callId",
        "to",
        "from",
        "headers",
    }
    assert session["userType"] == "HUMAN"
    assert session["initialText"] == "hello there"
    assert session["headers"] == {}
    assert len(session["callId"]) == 32 and int(session["callId"], 16) >= 0
    # Text sessions keep the country code in `id` (observed SMS payloads); never a `+`.
    assert session["to"] == {
        "id": "14075550100",
        "e164Id": "14075550100",
        "name": None,
        "channel": "TEXT",
        "network": "SMS",
    }
    assert session["from"] == {
        "id": "14155551212",
        "e164Id": "14155551212",
        "name": None,
        "channel": "TEXT",
        "network": "SMS",
    }


def test_inbound_mms_session() -> None:
    mms = facts(inbound_media=("https://media.example/1.jpg", "https://media.example/2.png"))
    session = session_of(mms)
    assert session["to"]["network"] == session["from"]["network"] == "MMS"
    assert session["subject"] == ""
    assert session["initialMedia"] == [
        {"status": "success", "media": "https://media.example/1.jpg"},
        {"status": "success", "media": "https://media.example/2.png"},
        {"status": "success", "text": "hello there"},
    ]
    assert "subject" not in session_of(facts())


@pytest.mark.parametrize(
    ("remote", "channel", "expected_id", "expected_e164"),
    [
        ("+447700900123", "text", "447700900123", "447700900123"),
        ("+14155551212", "voice", "4155551212", "14155551212"),  # NANP calls: 10 digits
        ("+447700900123", "voice", "447700900123", "447700900123"),
        ("72345", "text", "72345", "72345"),  # a short code has no country code to add
        ("VERBAL", "text", "VERBAL", "VERBAL"),
    ],
)
def test_caller_id_formatting(
    remote: str, channel: str, expected_id: str, expected_e164: str
) -> None:
    session = session_of(facts(remote_number=remote, channel=channel))
    assert (session["from"]["id"], session["from"]["e164Id"]) == (expected_id, expected_e164)


def test_inbound_voice_session_has_no_initial_text() -> None:
    session = session_of(facts(channel="voice"))
    assert session["initialText"] is None
    assert session["to"]["channel"] == "VOICE"


def test_empty_inbound_text_is_an_empty_string() -> None:
    session = session_of(facts(initial_text=None))
    assert session["initialText"] == ""


@pytest.mark.parametrize(
    ("started", "stamp"),
    [
        (datetime(2011, 10, 27, 18, 54, 49, 697_000, tzinfo=UTC), "2011-10-27T18:54:49.697Z"),
        (datetime(2011, 10, 27, 18, 54, 49), "2011-10-27T18:54:49.000Z"),  # naive means UTC
        (
            datetime(2011, 10, 27, 20, 54, 49, 5_000, tzinfo=timezone(timedelta(hours=2))),
            "2011-10-27T18:54:49.005Z",
        ),
    ],
)
def test_timestamps_are_utc_with_milliseconds(started: datetime, stamp: str) -> None:
    request = DIALECT.start_request(facts(started_at=started), TARGET, "")
    assert request.json is not None and request.json["session"]["timestamp"] == stamp


def test_tropo_sends_no_signature() -> None:
    for launch in (facts(), facts(launch="token")):
        request = DIALECT.start_request(launch, TARGET, "the-auth-token")
        assert "the-auth-token" not in json.dumps(request.json)
        assert set(request.headers) == {"Content-Type"}


def test_unknown_launch_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="launch"):
        DIALECT.start_request(facts(launch="carrier-pigeon"), TARGET, "")
    with pytest.raises(ValueError, match="number"):
        DIALECT.start_request(facts(local_number=None), TARGET, "")


# --- the Result JSON ----------------------------------------------------------------------

NEXT = Target("https://app.example/tropo/continue.json")
PIN = VerbResult(
    name="pin", disposition="SUCCESS", value="1234", interpretation="1234", utterance="1 2 3 4"
)
COLOR = VerbResult(
    name="color",
    disposition="SUCCESS",
    value="blue",
    interpretation="2",
    utterance="2",
    attempts=3,
    concept="blue",
)


def result_of(progress: Progress, session: SessionFacts | None = None) -> dict[str, Any]:
    session = session or facts()
    request = DIALECT.continue_request(session, NEXT, progress, "secret")
    assert request.method == "POST" and request.url == NEXT.url
    assert request.headers == {"Content-Type": "application/json; charset=UTF-8"}
    assert request.json is not None and set(request.json) == {"result"}
    return request.json["result"]


def test_result_with_one_action_is_an_object() -> None:
    result = result_of(Progress(event="continue", sequence=1, duration_seconds=5, results=(PIN,)))
    start = DIALECT.start_request(facts(), TARGET, "").json
    assert start is not None
    assert result == {
        "sessionId": "76b05a0b25127dbf59a4627f6dcd38a7",
        "callId": start["session"]["callId"],  # the same call id as the Session JSON
        "state": "ANSWERED",
        "sessionDuration": 5,
        "sequence": 1,
        "complete": True,
        "error": None,
        "calledid": "14075550100",
        "actions": {
            "name": "pin",
            "attempts": 1,
            "disposition": "SUCCESS",
            "confidence": 100,
            "interpretation": "1234",
            "utterance": "1 2 3 4",
            "value": "1234",
            "concept": None,
        },
    }


def test_result_with_several_actions_is_an_array() -> None:
    result = result_of(Progress("continue", sequence=2, duration_seconds=36, results=(PIN, COLOR)))
    assert isinstance(result["actions"], list)
    assert [action["name"] for action in result["actions"]] == ["pin", "color"]
    assert result["actions"][1] == {
        "name": "color",
        "attempts": 3,
        "disposition": "SUCCESS",
        "confidence": 100,
        "interpretation": "2",
        "utterance": "2",
        "value": "blue",
        "concept": "blue",
    }
    assert result["sequence"] == 2


def test_result_without_actions_has_no_actions_key() -> None:
    result = result_of(Progress("continue", sequence=1, duration_seconds=3))
    assert "actions" not in result
    assert set(result) == {
        "sessionId",
        "callId",
        "state",
        "sessionDuration",
        "sequence",
        "complete",
        "error",
        "calledid",
    }


def test_failed_actions_have_no_confidence() -> None:
    timeout = VerbResult(name="pin", disposition="TIMEOUT", attempts=3)
    result = result_of(Progress("incomplete", sequence=1, duration_seconds=90, results=(timeout,)))
    assert result["actions"] == {
        "name": "pin",
        "attempts": 3,
        "disposition": "TIMEOUT",
        "confidence": None,
        "interpretation": None,
        "utterance": None,
        "value": None,
        "concept": None,
    }


def test_result_state_and_error() -> None:
    hangup = result_of(Progress("hangup", sequence=3, duration_seconds=68))
    assert hangup["state"] == "DISCONNECTED"
    error = result_of(Progress("error", sequence=1, duration_seconds=1, error="bad document"))
    assert (error["state"], error["error"]) == ("ANSWERED", "bad document")


def test_token_session_result_has_no_calledid_without_a_number() -> None:
    token = facts(launch="token", local_number=None, remote_number=None)
    result = result_of(Progress("continue", sequence=1, duration_seconds=2), token)
    assert "calledid" not in result
    assert len(result["callId"]) == 32


# --- the Sessions API's answer, status callbacks, the protocol ------------------------------


def test_sessions_api_reply_xml_is_the_default() -> None:
    for fmt in ("xml", "XML", "", "whatever"):
        body, content_type = sessions_api_reply(fmt, True, "TOKEN", "ID", None)
        assert body == b"<session><success>true</success><token>TOKEN</token><id>ID</id></session>"
        assert content_type.startswith("text/xml")


def test_sessions_api_reply_json_and_form() -> None:
    body, content_type = sessions_api_reply("json", True, "TOKEN", "ID", None)
    assert json.loads(body) == {"success": True, "token": "TOKEN", "id": "ID"}
    assert content_type == "application/json"
    body, content_type = sessions_api_reply("form", True, "TOKEN", "ID", None)
    assert parse_qsl(body.decode()) == [("success", "true"), ("token", "TOKEN"), ("id", "ID")]
    assert content_type == "application/x-www-form-urlencoded"


def test_sessions_api_reply_failure_carries_a_reason() -> None:
    body, _ = sessions_api_reply("xml", False, "a<b&c", None, "No such token: a<b&c")
    assert body == (
        b"<session><success>false</success><token>a&lt;b&amp;c</token>"
        b"<reason>No such token: a&lt;b&amp;c</reason></session>"
    )
    body, _ = sessions_api_reply("json", False, "T", None, "disabled")
    assert json.loads(body) == {"success": False, "token": "T", "reason": "disabled"}
    body, _ = sessions_api_reply("form", False, "T", None, "no such token")
    assert parse_qsl(body.decode()) == [
        ("success", "false"),
        ("token", "T"),
        ("reason", "no such token"),
    ]


def test_status_callbacks_are_never_rendered() -> None:
    message = MessageFacts(
        sid="SM1",
        account_sid="AC1",
        from_number="+1",
        to_number="+2",
        body="x",
        status="sent",
        error_code=None,
        error_message=None,
        media_urls=(),
        num_segments=1,
        date_updated=STARTED,
    )
    with pytest.raises(NotImplementedError, match="Tropo has no message status callbacks"):
        DIALECT.status_callbacks.params(message)
    assert DIALECT.status_callbacks.signature_headers("https://x", [], "token") == {}


def test_the_dialect_object() -> None:
    dialect: Dialect = DIALECT
    assert dialect.name == "tropo"
    assert dialect.errors == ERRORS
    codes = [
        ERRORS.fetch_failed,
        ERRORS.bad_status,
        ERRORS.bad_content_type,
        ERRORS.parse_failed,
        ERRORS.voice_verb_on_text,
    ]
    assert len(set(codes)) == 5 and all(7000 < code < 7100 for code in codes)
