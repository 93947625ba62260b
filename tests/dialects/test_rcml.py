"""RCML/TwiML: documents from the real `twilio` SDK and Restcomm's docs, hostile XML, and
requests that Twilio's own `RequestValidator` accepts."""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import Message as TwimlMessage
from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import VoiceResponse

from verbal.dialects import rcml, twilio
from verbal.dialects.types import AppRequest, Dialect, MessageFacts, Progress, SessionFacts
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
    VoiceVerb,
    Wait,
)

BASE = "http://127.0.0.1:8080/app/sms.xml"
TOKEN = "12345"
APP = "+15017122661"
HANDSET = "+15558675310"
SPEC_HOST = "http://127.0.0.1:8080"


def parse(document: str | bytes, content_type: str = "text/xml") -> Document:
    body = document.encode() if isinstance(document, str) else document
    return rcml.DIALECT.parse(body, content_type, BASE)


def parse_error(document: str | bytes, content_type: str = "text/xml") -> DocumentError:
    with pytest.raises(DocumentError) as caught:
        parse(document, content_type)
    return caught.value


def test_the_module_is_a_dialect() -> None:
    dialect: Dialect = rcml.DIALECT
    assert dialect.name == "rcml"
    assert dialect.errors.parse_failed == 12100
    assert dialect.errors.bad_content_type == 12300
    assert dialect.errors.voice_verb_on_text == 14110
    assert (dialect.errors.fetch_failed, dialect.errors.bad_status) == (11205, 11200)


# -- documents the twilio SDK generates (sdks.md §1.1) ----------------------------------------


def test_m1_minimal_message() -> None:
    response = MessagingResponse()
    response.message("Hello World")
    assert parse(str(response)).verbs == (Message(body="Hello World"),)


def test_m2_message_with_every_attribute() -> None:
    response = MessagingResponse()
    response.message(
        "Hi there",
        to=HANDSET,
        from_=APP,
        action=f"{SPEC_HOST}/sms-status",
        method="POST",
        status_callback=f"{SPEC_HOST}/legacy-status",
    )
    (message,) = parse(str(response)).verbs
    assert isinstance(message, Message)
    assert message.to == (HANDSET,)
    assert message.sender == APP
    assert message.body == "Hi there"
    assert message.media == ()
    assert message.channel is Channel.TEXT
    assert message.action == Target(f"{SPEC_HOST}/sms-status", "POST")
    assert message.status_callback == Target(f"{SPEC_HOST}/legacy-status", "POST")


def test_m3_body_and_media_nouns() -> None:
    response = MessagingResponse()
    message = TwimlMessage(to=HANDSET, from_=APP)
    message.body("Store Location: 123 Easy St.")
    message.media("https://demo.twilio.com/owl.png")
    message.media("https://example.com/b.jpg")
    response.append(message)
    assert parse(str(response)).verbs == (
        Message(
            to=(HANDSET,),
            sender=APP,
            body="Store Location: 123 Easy St.",
            media=("https://demo.twilio.com/owl.png", "https://example.com/b.jpg"),
        ),
    )


def test_m4_nested_body_then_redirect() -> None:
    response = MessagingResponse()
    response.message(to=HANDSET).body("Body via nested element")
    response.redirect(f"{SPEC_HOST}/next", method="GET")
    assert parse(str(response)).verbs == (
        Message(to=(HANDSET,), body="Body via nested element"),
        Redirect(Target(f"{SPEC_HOST}/next", "GET")),
    )


def test_m5_escaped_text_and_two_messages() -> None:
    response = MessagingResponse()
    response.message("a & b < c > d \"quoted\" 'apos' ünïcode ✓")
    response.message("second")
    assert parse(str(response)).verbs == (
        Message(body="a & b < c > d \"quoted\" 'apos' ünïcode ✓"),
        Message(body="second"),
    )


def test_m6_empty_response_has_no_verbs() -> None:
    assert str(MessagingResponse()).endswith("<Response />")
    assert parse(str(MessagingResponse())) == Document(verbs=())


def test_m7_empty_message_is_kept_for_the_engine_to_judge() -> None:
    # Twilio skips it with warning 14103; the model has no warnings, so the verb stays.
    response = MessagingResponse()
    response.message("")
    assert str(response).endswith("<Response><Message /></Response>")
    assert parse(str(response)).verbs == (Message(),)


def test_m8_without_xml_declaration() -> None:
    response = MessagingResponse()
    response.message("x")
    assert parse(response.to_xml(xml_declaration=False)).verbs == (Message(body="x"),)


def test_m9_extra_attributes_and_status_callback_method() -> None:
    response = MessagingResponse()
    response.message("hi", to="+1", status_callback_method="GET", provide_feedback=True)
    (message,) = parse(str(response)).verbs
    # Without statusCallback there is nothing for statusCallbackMethod to apply to.
    assert message == Message(to=("+1",), body="hi")


def test_body_written_after_media_still_counts() -> None:
    # The SDK lets the app add nouns in any order, and Twilio accepts it; RCML's "Body first"
    # rule is not enforced.
    response = MessagingResponse()
    message = TwimlMessage()
    message.media("https://example.com/a.png")
    message.body("caption")
    response.append(message)
    assert parse(str(response)).verbs == (
        Message(body="caption", media=("https://example.com/a.png",)),
    )


def test_body_noun_wins_over_text_beside_it() -> None:
    response = MessagingResponse()
    response.message("loose text").body("the body")
    assert parse(str(response)).verbs == (Message(body="the body"),)


def test_v1_say_sms_hangup() -> None:
    response = VoiceResponse()
    response.say("Sending you a text", voice="alice", language="en-US")
    response.sms(
        "Voice-leg SMS",
        to=HANDSET,
        from_=APP,
        action=f"{SPEC_HOST}/sms-action",
        method="POST",
        status_callback=f"{SPEC_HOST}/sms-status",
    )
    response.hangup()
    assert parse(str(response)).verbs == (
        Say("Sending you a text", speech_only=True, voice="alice"),
        Message(
            to=(HANDSET,),
            sender=APP,
            body="Voice-leg SMS",
            action=Target(f"{SPEC_HOST}/sms-action", "POST"),
            status_callback=Target(f"{SPEC_HOST}/sms-status", "POST"),
        ),
        Hangup(),
    )


def test_v2_gather_with_say_then_sms_and_redirect() -> None:
    response = VoiceResponse()
    gather = response.gather(
        action=f"{SPEC_HOST}/gather", input="dtmf", method="POST", num_digits=1, timeout=5
    )
    gather.say("Press 1 to get an SMS")
    response.sms("fallback", to=HANDSET)
    response.redirect(f"{SPEC_HOST}/voice")
    assert parse(str(response)).verbs == (
        VoiceVerb(
            "gather",
            {
                "action": f"{SPEC_HOST}/gather",
                "input": "dtmf",
                "method": "POST",
                "numDigits": "1",
                "timeout": "5",
                "nouns": (VoiceVerb("say", {"text": "Press 1 to get an SMS"}),),
            },
        ),
        Message(to=(HANDSET,), body="fallback"),
        Redirect(Target(f"{SPEC_HOST}/voice", "POST")),
    )


def test_v3_play_pause_reject() -> None:
    response = VoiceResponse()
    response.play("http://example.com/a.mp3", loop=2)
    response.pause(length=3)
    response.reject(reason="busy")
    assert parse(str(response)).verbs == (
        Say("", speech_only=True, audio=("http://example.com/a.mp3",), loop=2),
        Wait(3),
        Reject("busy"),
    )


def test_v4_dial_number_and_record() -> None:
    response = VoiceResponse()
    dial = response.dial(action=f"{SPEC_HOST}/dial-done", caller_id=APP, timeout=20)
    dial.number(HANDSET)
    response.record(finish_on_key="#", max_length=30, play_beep=True)
    assert parse(str(response)).verbs == (
        VoiceVerb(
            "dial",
            {
                "action": f"{SPEC_HOST}/dial-done",
                "callerId": APP,
                "timeout": "20",
                "nouns": (VoiceVerb("number", {"text": HANDSET}),),
            },
        ),
        VoiceVerb("record", {"finishOnKey": "#", "maxLength": "30", "playBeep": "true"}),
    )


def test_v5_voice_response_has_no_message_method() -> None:
    # Why <Sms> and add_child("Message") matter: the SDK offers no other voice-leg text.
    assert not hasattr(VoiceResponse(), "message")


def test_v6_message_added_to_a_voice_response() -> None:
    response = VoiceResponse()
    response.add_child("Message", "generic child via add_child", to=HANDSET)
    assert parse(str(response)).verbs == (
        Message(to=(HANDSET,), body="generic child via add_child"),
    )


# -- RCML's own form (seed 003) ---------------------------------------------------------------

SEED_BODY_AND_MEDIA = """<Response>
    <Message>
        <Body>Hello World!</Body>
        <Media contentType="image/jpeg">http://company.com/pic.jpg</Media>
    </Message>
</Response>"""

SEED_FROM_TO_STATUS = """<Response>
    <Message from="sms:+19876XXXXXX" to="sms:+13216XXXXXX" statusCallback="http://status.callback.url" statusCallbackMethod="POST">
        <Body>Hello World !!!</Body>
    </Message>
</Response>"""  # noqa: E501 (verbatim)


def test_seed_body_and_media_with_content_type() -> None:
    assert parse(SEED_BODY_AND_MEDIA).verbs == (
        Message(body="Hello World!", media=("http://company.com/pic.jpg",)),
    )


def test_seed_channel_uris_and_status_callback() -> None:
    assert parse(SEED_FROM_TO_STATUS).verbs == (
        Message(
            to=("+13216XXXXXX",),
            sender="+19876XXXXXX",
            body="Hello World !!!",
            status_callback=Target("http://status.callback.url", "POST"),
        ),
    )


def test_seed_text_content_without_nouns_is_the_body() -> None:
    assert parse("<Response><Message>\n  Plain old text\n</Message></Response>").verbs == (
        Message(body="Plain old text"),
    )


@pytest.mark.parametrize(
    ("to", "expected"),
    [
        ("sms:+15558675310", "+15558675310"),
        ("mms:+15558675310", "+15558675310"),
        ("SMS:+15558675310", "+15558675310"),
        ("+15558675310", "+15558675310"),
        ("client:alice", "client:alice"),  # not a channel URI: routing decides
    ],
)
def test_channel_uri_schemes_are_stripped(to: str, expected: str) -> None:
    (message,) = parse(
        f'<Response><Message to="{to}" from="mms:{APP}">x</Message></Response>'
    ).verbs
    assert isinstance(message, Message)
    assert message.to == (expected,)
    assert message.sender == APP


def test_mms_uri_with_media_is_a_media_message() -> None:
    document = (
        f'<Response><Message to="mms:{HANDSET}"><Body>look</Body>'
        '<Media contentType="image/png">https://example.com/a.png</Media></Message></Response>'
    )
    assert parse(document).verbs == (
        Message(to=(HANDSET,), body="look", media=("https://example.com/a.png",)),
    )


def test_empty_to_and_from_mean_the_defaults() -> None:
    (message,) = parse('<Response><Message to="" from=" ">x</Message></Response>').verbs
    assert isinstance(message, Message)
    assert (message.to, message.sender) == ((), None)


def test_message_action_with_get() -> None:
    (message,) = parse(
        '<Response><Message action="https://app.example/after" method="GET">x</Message></Response>'
    ).verbs
    assert isinstance(message, Message)
    assert message.action == Target("https://app.example/after", "GET")


def test_status_callback_method_get() -> None:
    (message,) = parse(
        '<Response><Message statusCallback="/status" statusCallbackMethod="get">x</Message>'
        "</Response>"
    ).verbs
    assert isinstance(message, Message)
    assert message.status_callback == Target("http://127.0.0.1:8080/status", "GET")


# -- relative URLs, attribute trimming, stray ampersands --------------------------------------


def test_relative_urls_resolve_against_the_document() -> None:
    document = (
        '<Response><Message action="after" statusCallback="/status">'
        "<Body>x</Body><Media>img/a.png</Media></Message>"
        '<Redirect method="GET">../next?step=2</Redirect></Response>'
    )
    message, redirect = parse(document).verbs
    assert isinstance(message, Message)
    assert message.action == Target("http://127.0.0.1:8080/app/after", "POST")
    assert message.status_callback == Target("http://127.0.0.1:8080/status", "POST")
    assert message.media == ("http://127.0.0.1:8080/app/img/a.png",)
    assert redirect == Redirect(Target("http://127.0.0.1:8080/next?step=2", "GET"))


def test_voice_url_attributes_resolve_too() -> None:
    response = VoiceResponse()
    response.dial(action="done").conference("Room", wait_url="hold.xml")
    response.record(transcribe_callback="/transcribed")
    dial, record = parse(str(response)).verbs
    assert dial == VoiceVerb(
        "dial",
        {
            "action": "http://127.0.0.1:8080/app/done",
            "nouns": (
                VoiceVerb(
                    "conference",
                    {"waitUrl": "http://127.0.0.1:8080/app/hold.xml", "text": "Room"},
                ),
            ),
        },
    )
    assert record == VoiceVerb(
        "record", {"transcribeCallback": "http://127.0.0.1:8080/transcribed"}
    )


def test_attribute_values_are_trimmed() -> None:
    document = (
        f'<Response><Message to="  sms:{HANDSET} " action=" /after " method=" get ">x'
        '</Message><Pause length=" 2 "/><Reject reason=" busy "/></Response>'
    )
    message, pause, reject = parse(document).verbs
    assert isinstance(message, Message)
    assert message.to == (HANDSET,)
    assert message.action == Target("http://127.0.0.1:8080/after", "GET")
    assert (pause, reject) == (Wait(2), Reject("busy"))


def test_stray_ampersands_are_tolerated() -> None:
    document = (
        "<Response><Message>Fish & chips &amp; peas &#38; &#x26;</Message>"
        "<Redirect>/next?a=1&b=2</Redirect></Response>"
    )
    message, redirect = parse(document).verbs
    assert message == Message(body="Fish & chips & peas & &")
    assert redirect == Redirect(Target("http://127.0.0.1:8080/next?a=1&b=2"))


def test_ampersands_in_cdata_and_comments_are_left_alone() -> None:
    document = "<Response><!-- a & b --><Message><![CDATA[x &amp; y & z]]></Message></Response>"
    assert parse(document).verbs == (Message(body="x &amp; y & z"),)


# -- the other verbs --------------------------------------------------------------------------


def test_pause_defaults_to_one_second_and_survives_bad_lengths() -> None:
    document = (
        '<Response><Pause/><Pause length="0"/><Pause length="soon"/><Pause length="-4"/></Response>'
    )
    assert parse(document).verbs == (Wait(1), Wait(0), Wait(1), Wait(1))


def test_reject_reasons() -> None:
    document = '<Response><Reject/><Reject reason="rejected"/><Reject reason="later"/></Response>'
    assert parse(document).verbs == (Reject(None), Reject("rejected"), Reject(None))


def test_say_is_speech_only_and_keeps_its_voice() -> None:
    document = '<Response><Say voice="woman" language="fr" loop="2">Bonjour</Say><Say/></Response>'
    assert parse(document).verbs == (
        Say("Bonjour", speech_only=True, voice="woman", loop=2),
        Say("", speech_only=True),
    )


def test_play_resolves_its_url_and_loops() -> None:
    document = '<Response><Play loop="0">/hold.wav</Play><Play loop="x">a.mp3</Play></Response>'
    assert parse(document).verbs == (
        Say("", speech_only=True, audio=("http://127.0.0.1:8080/hold.wav",), loop=0),
        Say("", speech_only=True, audio=("http://127.0.0.1:8080/app/a.mp3",), loop=1),
    )


def test_play_of_digits_alone_stays_a_voice_verb() -> None:
    (verb,) = parse('<Response><Play digits="ww12"/></Response>').verbs
    assert verb == VoiceVerb("play", {"digits": "ww12"})


def test_method_other_than_get_or_post_falls_back_to_post() -> None:
    (redirect,) = parse('<Response><Redirect method="PUT">/x</Redirect></Response>').verbs
    assert redirect == Redirect(Target("http://127.0.0.1:8080/x", "POST"))


def test_dial_nouns_and_gather_prompts_are_data() -> None:
    response = VoiceResponse()
    dial = response.dial(caller_id=APP)
    dial.number(HANDSET, send_digits="1w2")
    dial.client("alice")
    dial.sip("sip:bob@example.com", username="bob")
    dial.conference("Room 1234", beep=False)
    gather = response.gather(num_digits=1)
    gather.say("Press one")
    gather.play("https://example.com/menu.mp3")
    dial_verb, gather_verb = parse(str(response)).verbs
    assert dial_verb == VoiceVerb(
        "dial",
        {
            "callerId": APP,
            "nouns": (
                VoiceVerb("number", {"sendDigits": "1w2", "text": HANDSET}),
                VoiceVerb("client", {"text": "alice"}),
                VoiceVerb("sip", {"username": "bob", "text": "sip:bob@example.com"}),
                VoiceVerb("conference", {"beep": "false", "text": "Room 1234"}),
            ),
        },
    )
    assert gather_verb == VoiceVerb(
        "gather",
        {
            "numDigits": "1",
            "nouns": (
                VoiceVerb("say", {"text": "Press one"}),
                VoiceVerb("play", {"text": "https://example.com/menu.mp3"}),
            ),
        },
    )


@pytest.mark.parametrize(
    "tag",
    [
        "Dial",
        "Gather",
        "Play",
        "Record",
        "Enqueue",
        "Leave",
        "Hold",
        "Resume",
        "Refer",
        "Email",
        "Fax",
        "Conference",
    ],
)
def test_voice_only_verbs_are_understood(tag: str) -> None:
    (verb,) = parse(f"<Response><{tag}/></Response>").verbs
    assert verb == VoiceVerb(tag.lower(), {})


def test_email_keeps_its_addresses_and_body() -> None:
    response = VoiceResponse()
    response.add_child("Email", "hello", to="a@example.com", subject="Hi", **{"from": "b@x.y"})
    assert parse(str(response)).verbs == (
        VoiceVerb(
            "email",
            {"from": "b@x.y", "subject": "Hi", "to": "a@example.com", "text": "hello"},
        ),
    )


# -- content types ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    ["text/xml", "application/xml", "text/html", "text/xml; charset=utf-8", "Application/XML"],
)
def test_xml_content_types(content_type: str) -> None:
    assert parse("<Response><Message>x</Message></Response>", content_type).verbs == (
        Message(body="x"),
    )


def test_plain_text_is_a_reply() -> None:
    assert parse(b"Thanks, got it!\n", "text/plain").verbs == (Say("Thanks, got it!"),)
    assert parse("Grüße".encode("latin-1"), "text/plain; charset=ISO-8859-1").verbs == (
        Say("Grüße"),
    )
    assert parse(b"  \n", "text/plain").verbs == ()


def test_undecodable_plain_text() -> None:
    error = parse_error(b"\xff\xfe\xfa", "text/plain")
    assert error.code == 12100
    assert "cannot be decoded" in error.message


@pytest.mark.parametrize(
    ("content_type", "shown"),
    [
        ("application/json", "application/json"),
        ("audio/mpeg", "audio/mpeg"),
        ("", "no Content-Type"),
    ],
)
def test_other_content_types_are_refused(content_type: str, shown: str) -> None:
    error = parse_error("<Response/>", content_type)
    assert error.code == 12300
    assert error.message.startswith(f"the app answered with {shown};")
    assert "text/xml" in error.message


# -- documents that are wrong -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "code", "message"),
    [
        ("", 12100, "the document is empty"),
        ("<Response><Message>x</Response>", 12100, "malformed XML: mismatched tag"),
        ("<Response>", 12100, "malformed XML: no element found"),
        ("<Response a=1/>", 12100, "malformed XML: not well-formed"),
        ("<Response>&nbsp;</Response>", 12100, "malformed XML: undefined entity"),
        ("<Reply><Message>x</Message></Reply>", 12102, "the root element must be <Response>"),
        ("<Response><Foo/></Response>", 12200, "<Foo> is not an RCML/TwiML verb"),
        ("<Response><Body>x</Body></Response>", 12200, "<Body> is not an RCML/TwiML verb"),
        ("<Response><Redirect/></Response>", 12200, "<Redirect> needs a URL"),
        (
            "<Response><Message><Body>a</Body><Body>b</Body></Message></Response>",
            12200,
            "a <Message> takes one <Body> at most",
        ),
        (
            "<Response><Message><Say>x</Say></Message></Response>",
            12200,
            "<Message> cannot contain <Say>",
        ),
        ("<Response><Sms><Body>x</Body></Sms></Response>", 12200, "<Sms> cannot contain <Body>"),
    ],
)
def test_readable_errors(document: str, code: int, message: str) -> None:
    error = parse_error(document)
    assert error.code == code
    assert error.message.startswith(message), error.message
    assert str(error) == error.message


@pytest.mark.parametrize("encoding", ["shift_jis", "utf-7", "no-such-codec"])
def test_unsupported_declared_encodings(encoding: str) -> None:
    error = parse_error(f'<?xml version="1.0" encoding="{encoding}"?><Response/>')
    assert error.code == 12100
    assert error.message.startswith("the document's declared encoding is not supported")


def test_declared_encodings_expat_knows() -> None:
    latin = '<?xml version="1.0" encoding="ISO-8859-1"?><Response><Message>Grüße</Message>'
    assert parse((latin + "</Response>").encode("latin-1")).verbs == (Message(body="Grüße"),)
    wide = '<?xml version="1.0" encoding="UTF-16"?><Response><Message>é &amp; ✓</Message>'
    assert parse((wide + "</Response>").encode("utf-16")).verbs == (Message(body="é & ✓"),)


def test_verb_names_are_case_sensitive_with_a_hint() -> None:
    error = parse_error("<Response><message>x</message></Response>")
    assert error.code == 12200
    assert error.message == (
        "<message> is not an RCML/TwiML verb (verb names are case-sensitive: "
        "did you mean <Message>?)"
    )


def test_attack_billion_laughs() -> None:
    # Ten-fold nesting nine times over: a kilobyte that expands to a gigabyte.
    entities = ['<!ENTITY lol0 "lol">']
    entities += [f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, 10)]
    document = (
        f'<?xml version="1.0"?><!DOCTYPE lolz [{"".join(entities)}]>'
        "<Response><Message>&lol9;</Message></Response>"
    )
    error = parse_error(document)
    assert error.code == 12100
    assert error.message == "entity declarations are not allowed (they enable entity expansion)"


def test_attack_external_entity() -> None:
    document = (
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        "<Response><Message>&xxe;</Message></Response>"
    )
    error = parse_error(document)
    assert error.code == 12100
    assert error.message == (
        "external entities are not allowed (entity 'xxe' refers to 'file:///etc/passwd')"
    )


def test_attack_external_parameter_entity() -> None:
    document = '<!DOCTYPE r [<!ENTITY % p SYSTEM "http://evil.example/p.dtd"> %p;]><Response/>'
    error = parse_error(document)
    assert error.code == 12100
    assert error.message.startswith("external entities are not allowed (entity 'p'")


@pytest.mark.parametrize(
    "doctype",
    [
        "<!DOCTYPE Response>",
        '<!DOCTYPE Response SYSTEM "http://evil.example/twiml.dtd">',
        "<!DOCTYPE Response [<!ELEMENT Response ANY>]>",
    ],
)
def test_attack_dtd(doctype: str) -> None:
    error = parse_error(f"{doctype}<Response/>")
    assert error.code == 12100
    assert error.message == "document type declarations (DTDs) are not allowed"


def test_attack_oversized_document() -> None:
    filler = "<Pause/>" * (rcml.MAX_DOCUMENT_BYTES // 8)
    error = parse_error(f"<Response>{filler}</Response>")
    assert error.code == 11750
    assert error.message == (
        f"the document is {rcml.MAX_DOCUMENT_BYTES + 21} bytes; "
        f"the limit is {rcml.MAX_DOCUMENT_BYTES}"
    )


def test_attack_deep_nesting() -> None:
    # Within the size limit, deep enough to overflow any recursive walk.
    depth = 9000
    error = parse_error("<Response>" + "<a>" * depth + "</a>" * depth + "</Response>")
    assert error.code == 12100
    assert error.message == f"elements nest deeper than {rcml.MAX_DEPTH} levels"


@pytest.mark.parametrize("opening", ["<![CDATA[", "<!--", "&"])
def test_attack_unterminated_sections_stay_linear(opening: str) -> None:
    # Rescanning to the end for every unterminated opening would take seconds on 64 kB.
    body = "<Response>" + opening * (60_000 // len(opening))
    started = time.perf_counter()
    assert parse_error(body).code == 12100
    assert time.perf_counter() - started < 1.0


def test_nesting_up_to_the_limit_is_fine() -> None:
    depth = rcml.MAX_DEPTH - 1  # below <Response>
    document = "<Response>" + "<Gather>" * depth + "</Gather>" * depth + "</Response>"
    (verb,) = parse(document).verbs
    assert isinstance(verb, VoiceVerb)


@given(st.binary(max_size=300))
def test_any_bytes_parse_or_fail_cleanly(body: bytes) -> None:
    with contextlib.suppress(DocumentError):
        rcml.DIALECT.parse(body, "text/xml", BASE)


_fragments = st.sampled_from(
    [
        "<Response>",
        "</Response>",
        "<Message>",
        "</Message>",
        "<Body>",
        "</Body>",
        "<Media>",
        "</Media>",
        "<Sms>",
        "</Sms>",
        "<Redirect>",
        "</Redirect>",
        "<Dial>",
        "</Dial>",
        '<Message to="sms:+1" action="a b">',
        "<Pause length='x'/>",
        "&",
        "&amp;",
        "&#0;",
        "<![CDATA[",
        "]]>",
        "<!--",
        "-->",
        "<!DOCTYPE r [",
        "]>",
        '<!ENTITY e "x">',
        "&e;",
        "text",
        "\x00",
        "é",
        '<?xml version="1.0" encoding="big5"?>',
        '<?xml version="1.0" encoding="utf-16"?>',
        '<?xml version="1.0" encoding="nope"?>',
    ]
)


@given(st.lists(_fragments, max_size=40), st.sampled_from(["utf-8", "utf-16", "latin-1"]))
def test_any_tag_soup_parses_or_fails_cleanly(fragments: list[str], encoding: str) -> None:
    body = "".join(fragments).encode(encoding, "replace")
    try:
        document = rcml.DIALECT.parse(body, "text/xml", BASE)
    except DocumentError:
        return
    assert isinstance(document, Document)


# -- requests to the app ----------------------------------------------------------------------

INBOUND_SID = "SM" + "1" * 32
ACCOUNT_SID = "AC" + "a" * 32


def facts(**changes: Any) -> SessionFacts:
    values: dict[str, Any] = {
        "session_id": "session-1",
        "account_sid": ACCOUNT_SID,
        "started_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "channel": "text",
        "launch": "inbound",
        "local_number": APP,
        "remote_number": "+447700900123",
        "initial_text": "Hello & goodbye",
        "inbound_message_sid": INBOUND_SID,
    }
    values.update(changes)
    return SessionFacts(**values)


def validated_post(request: AppRequest) -> dict[str, str]:
    """What a Twilio-SDK app checks and reads on a POST webhook."""
    assert request.method == "POST"
    params = dict(request.form)
    assert len(params) == len(request.form), "a parameter name repeats"
    signature = request.headers["X-Twilio-Signature"]
    assert RequestValidator(TOKEN).validate(request.url, params, signature)
    assert not RequestValidator("another token").validate(request.url, params, signature)
    assert not RequestValidator(TOKEN).validate(request.url, params | {"Body": "x"}, signature)
    return params


def validated_get(request: AppRequest) -> dict[str, str]:
    """What a Twilio-SDK app checks and reads on a GET webhook: the URL it was requested at."""
    assert request.method == "GET"
    url = request.wire_url
    signature = request.headers["X-Twilio-Signature"]
    assert RequestValidator(TOKEN).validate(url, {}, signature)
    assert not RequestValidator(TOKEN).validate(url.replace("Hello", "Hullo"), {}, signature)
    # The app's own query parameters come first, then everything Verbal sends.
    own = parse_qsl(urlsplit(request.url).query)
    query = parse_qsl(urlsplit(url).query, keep_blank_values=True)
    assert query[: len(own)] == own
    assert tuple(query[len(own) :]) == request.form
    return dict(request.form)


EXPECTED_INBOUND = {
    "MessageSid": INBOUND_SID,
    "SmsSid": INBOUND_SID,
    "SmsMessageSid": INBOUND_SID,
    "AccountSid": ACCOUNT_SID,
    "From": "+447700900123",
    "To": APP,
    "Body": "Hello & goodbye",
    "NumMedia": "0",
    "NumSegments": "1",
    "SmsStatus": "received",
    "ApiVersion": "2010-04-01",
    "FromCity": "",
    "FromState": "",
    "FromZip": "",
    "FromCountry": "GB",
    "ToCity": "",
    "ToState": "",
    "ToZip": "",
    "ToCountry": "US",
}


def test_inbound_message_post() -> None:
    request = rcml.DIALECT.start_request(facts(), Target("https://app.example/sms"), TOKEN)
    assert request.url == "https://app.example/sms"
    assert request.json is None
    assert validated_post(request) == EXPECTED_INBOUND


def test_inbound_message_post_to_a_url_with_a_query() -> None:
    target = Target("https://app.example/sms?tenant=7&lang=en#top")
    request = rcml.DIALECT.start_request(facts(), target, TOKEN)
    assert request.url == "https://app.example/sms?tenant=7&lang=en"
    assert validated_post(request) == EXPECTED_INBOUND


def test_inbound_message_get() -> None:
    target = Target("https://app.example/sms?tenant=7", "GET")
    request = rcml.DIALECT.start_request(facts(), target, TOKEN)
    assert request.url == "https://app.example/sms?tenant=7"
    url = request.wire_url
    assert url.startswith("https://app.example/sms?tenant=7&MessageSid=SM")
    assert "Body=Hello+%26+goodbye" in url
    assert validated_get(request) == EXPECTED_INBOUND
    assert dict(parse_qsl(urlsplit(url).query))["tenant"] == "7"


def test_inbound_mms_lists_every_medium() -> None:
    media = ("https://media.example/a.JPG", "https://media.example/clip.mp4?x=1", "https://m/x")
    request = rcml.DIALECT.start_request(facts(inbound_media=media), Target(BASE), TOKEN)
    params = validated_post(request)
    assert params["NumMedia"] == "3"
    assert [params[f"MediaUrl{i}"] for i in range(3)] == list(media)
    assert [params[f"MediaContentType{i}"] for i in range(3)] == [
        "image/jpeg",
        "video/mp4",
        "application/octet-stream",
    ]


def test_country_is_empty_for_what_is_not_a_phone_number() -> None:
    request = rcml.DIALECT.start_request(
        facts(remote_number="ACME", local_number="12345"), Target(BASE), TOKEN
    )
    params = validated_post(request)
    assert (params["FromCountry"], params["ToCountry"]) == ("", "")


def test_a_session_without_an_inbound_message_sends_what_it_knows() -> None:
    # A token launch whose app turned out to be RCML: no message, maybe no numbers.
    request = rcml.DIALECT.start_request(
        facts(launch="token", inbound_message_sid=None, remote_number=None, initial_text=None),
        Target(BASE),
        TOKEN,
    )
    assert validated_post(request) == {
        "AccountSid": ACCOUNT_SID,
        "To": APP,
        "ApiVersion": "2010-04-01",
        "ToCity": "",
        "ToState": "",
        "ToZip": "",
        "ToCountry": "US",
    }


REPLY_SID = "SM" + "2" * 32


def progress(event: str, **changes: Any) -> Progress:
    return Progress(event=event, sequence=1, duration_seconds=2, **changes)


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_message_action_reports_the_reply(method: str) -> None:
    request = rcml.DIALECT.continue_request(
        facts(),
        Target("https://app.example/after", method),
        progress("message", message_sid=REPLY_SID, message_status="sent"),
        TOKEN,
    )
    params = validated_post(request) if method == "POST" else validated_get(request)
    assert params == EXPECTED_INBOUND | {
        "MessageSid": REPLY_SID,
        "SmsSid": REPLY_SID,
        "SmsMessageSid": REPLY_SID,
        "MessageStatus": "sent",
        "SmsStatus": "sent",
    }


def test_message_action_needs_the_message_status() -> None:
    with pytest.raises(ValueError, match="status"):
        rcml.DIALECT.continue_request(facts(), Target(BASE), progress("message"), TOKEN)


def test_message_action_for_a_refused_message_reports_failed_without_a_sid() -> None:
    refused = Progress(event="message", sequence=1, duration_seconds=0, message_status="failed")
    params = validated_post(rcml.DIALECT.continue_request(facts(), Target(BASE), refused, TOKEN))
    assert params["MessageStatus"] == params["SmsStatus"] == "failed"
    # Not the inbound message's SID passing for the reply's: no SID at all.
    assert not {"MessageSid", "SmsSid", "SmsMessageSid"} & set(params)


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_redirect_sends_the_inbound_parameters(method: str) -> None:
    request = rcml.DIALECT.continue_request(
        facts(), Target("https://app.example/next", method), progress("redirect"), TOKEN
    )
    params = validated_post(request) if method == "POST" else validated_get(request)
    assert params == EXPECTED_INBOUND


def test_tropo_events_have_no_rcml_request() -> None:
    with pytest.raises(ValueError, match="no continuation request for 'continue'"):
        rcml.DIALECT.continue_request(facts(), Target(BASE), progress("continue"), TOKEN)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://a.example/x", "https://a.example/x?A=1&B=a+b"),
        ("https://a.example/x?k=v", "https://a.example/x?k=v&A=1&B=a+b"),
        ("https://a.example/x?", "https://a.example/x?&A=1&B=a+b"),
    ],
)
def test_request_url_puts_a_get_form_in_the_query(url: str, expected: str) -> None:
    form = (("A", "1"), ("B", "a b"))
    assert AppRequest("GET", url, form).wire_url == expected
    assert AppRequest("POST", url, form).wire_url == url
    assert AppRequest("GET", url).wire_url == url


# -- status callbacks -------------------------------------------------------------------------


class _MultiDict(dict[str, list[str]]):
    """Just enough of Flask's MultiDict for `RequestValidator` to see repeated names."""

    def getall(self, name: str) -> list[str]:
        return self[name]


def test_status_callback_adds_body_and_media_to_twilios() -> None:
    message = MessageFacts(
        sid=REPLY_SID,
        account_sid=ACCOUNT_SID,
        from_number=APP,
        to_number=HANDSET,
        body="Hi there",
        status="delivered",
        error_code=None,
        error_message=None,
        media_urls=("https://m.example/a.png", "https://m.example/b.png"),
        num_segments=1,
        date_updated=datetime(2026, 1, 2, tzinfo=UTC),
    )
    callbacks = rcml.DIALECT.status_callbacks
    params = callbacks.params(message)
    assert params == [
        *twilio.STATUS_CALLBACKS.params(message),
        ("Body", "Hi there"),
        ("MediaUrl", "https://m.example/a.png"),
        ("MediaUrl", "https://m.example/b.png"),
    ]
    url = "https://app.example/status"
    signature = callbacks.signature_headers(url, params, TOKEN)["X-Twilio-Signature"]
    received = _MultiDict()
    for name, value in params:
        received.setdefault(name, []).append(value)
    assert RequestValidator(TOKEN).validate(url, received, signature)
