"""Tests for verbal.carriers.sip.message: strict parsing, compact forms, limits, building."""

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verbal.carriers.sip.message import (
    Headers,
    MessageLimits,
    NameAddr,
    ParseError,
    Request,
    Response,
    SipUri,
    StreamFramer,
    Via,
    parse,
    response_to,
)

INVITE = (
    b"INVITE sip:bob@127.0.0.1:5060 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bK776asdhds;rport\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKfirst\r\n"
    b"Max-Forwards: 70\r\n"
    b'From: "Alice A" <sip:alice@example.org>;tag=1928301774\r\n'
    b"To: <sip:bob@example.net>\r\n"
    b"Call-ID: a84b4c76e66710@pc33\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@10.0.0.1:5070>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n"
    b"\r\n"
    b"v=0\n"
)


def test_a_request_is_parsed_into_its_parts() -> None:
    request = parse(INVITE)
    assert isinstance(request, Request)
    assert (request.method, request.uri) == ("INVITE", "sip:bob@127.0.0.1:5060")
    assert request.cseq == (314159, "INVITE")
    assert request.call_id == "a84b4c76e66710@pc33"
    assert request.from_.display == "Alice A"
    assert request.from_.tag == "1928301774"
    assert request.to.tag is None
    assert request.body == b"v=0\n"
    assert [via.branch for via in request.vias] == ["z9hG4bK776asdhds", "z9hG4bKfirst"]
    assert request.top_via.sent_by == ("10.0.0.1", 5070)
    assert request.vias[1].sent_by == ("10.0.0.9", 5060)
    assert "rport" in request.top_via.params


def test_serialising_and_parsing_again_gives_the_same_message() -> None:
    request = parse(INVITE)
    assert parse(bytes(request)) == request


def test_compact_header_forms_are_expanded() -> None:
    compact = (
        b"OPTIONS sip:bob@h SIP/2.0\r\n"
        b"v: SIP/2.0/UDP h:1;branch=z9hG4bKx\r\n"
        b"f: <sip:a@h>;tag=1\r\nt: <sip:b@h>\r\ni: cid\r\nCSeq: 1 OPTIONS\r\n"
        b"m: <sip:a@h>\r\nl: 0\r\n\r\n"
    )
    request = parse(compact)
    assert request.call_id == "cid"
    assert request.headers.get("Contact") == "<sip:a@h>"
    assert request.headers.get("content-length") == "0"
    assert request.top_via.branch == "z9hG4bKx"


def test_multi_value_headers_split_at_commas_outside_quotes_and_brackets() -> None:
    headers = Headers.of(
        [
            ("Record-Route", "<sip:p1;lr>, <sip:p2;lr>"),
            ("Record-Route", "<sip:p3;lr>"),
            ("Contact", '"Doe, John" <sip:j@h;x=a,b>, <sip:k@h>'),
        ]
    )
    assert headers.values("Record-Route") == ["<sip:p1;lr>", "<sip:p2;lr>", "<sip:p3;lr>"]
    assert headers.values("Contact") == ['"Doe, John" <sip:j@h;x=a,b>', "<sip:k@h>"]


def test_a_response_is_parsed() -> None:
    response = parse(
        b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKa\r\n"
        b"From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    assert isinstance(response, Response)
    assert (response.status, response.reason, response.to.tag) == (180, "Ringing", "2")


@pytest.mark.parametrize(
    ("start", "why"),
    [
        (b"ACK  SIP/2.0", "empty Request-URI"),
        (b"INVITE sip:b@h SIP/3.0", "wrong version"),
        (b"INVITE sip:b@h", "no version"),
        (b"INV@TE sip:b@h SIP/2.0", "method not a token"),
        (b"INVITE bob SIP/2.0", "URI without a scheme"),
    ],
)
def test_a_bad_request_line_is_refused_with_400_and_can_be_answered(start: bytes, why: str) -> None:
    data = start + INVITE[INVITE.index(b"\r\n") :]
    with pytest.raises(ParseError) as raised:
        parse(data)
    assert raised.value.status == 400, why
    reply = raised.value.reply()
    assert reply is not None
    assert reply.status == 400
    assert reply.call_id == "a84b4c76e66710@pc33"
    assert reply.headers.values("Via") == parse(INVITE).headers.values("Via")


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"CSeq: 314159 INVITE", b"CSeq: many INVITE"),
        (b"CSeq: 314159 INVITE", b"CSeq: 314159 BYE"),
        (b"Content-Length: 4", b"Content-Length: 40"),
        (b"Content-Length: 4", b"Content-Length: -4"),
        (b"To: <sip:bob@example.net>", b"To: bob"),
        (b"Via: SIP/2.0/UDP 10.0.0.1:5070", b"Via: SIP/1.0/UDP 10.0.0.1:5070"),
        (b"Via: SIP/2.0/UDP 10.0.0.1:5070", b"Via: SIP/2.0/UDP 10.0.0.1:99999"),
        (b"Max-Forwards: 70", b"Max Forwards 70"),
        (b"Call-ID: a84b4c76e66710@pc33\r\n", b""),
        (b"Call-ID: a84b4c76e66710@pc33", b"Call-ID: one\r\nCall-ID: two"),
    ],
)
def test_broken_headers_are_refused_with_400(old: bytes, new: bytes) -> None:
    with pytest.raises(ParseError) as raised:
        parse(INVITE.replace(old, new))
    assert raised.value.status == 400


def test_a_message_over_the_size_limit_gets_513() -> None:
    big = INVITE.replace(b"Content-Length: 4", b"Content-Length: 3004") + b"x" * 3000
    with pytest.raises(ParseError) as raised:
        parse(big, MessageLimits(max_size=2000))
    assert raised.value.status == 513
    assert raised.value.reply() is not None


def test_too_many_headers_get_400() -> None:
    many = INVITE.replace(b"Max-Forwards: 70\r\n", b"X-A: 1\r\n" * 200)
    with pytest.raises(ParseError, match="header lines"):
        parse(many)


def test_a_response_that_does_not_parse_is_never_answered() -> None:
    with pytest.raises(ParseError) as raised:
        parse(b"SIP/2.0 2000 OK\r\nCall-ID: x\r\n\r\n")
    assert raised.value.reply() is None


def test_garbage_without_headers_cannot_be_answered() -> None:
    with pytest.raises(ParseError) as raised:
        parse(b"\x00\xff garbage\r\n\r\n")
    assert raised.value.reply() is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_any_bytes_parse_or_raise_a_parse_error(data: bytes) -> None:
    try:
        parse(data)
    except ParseError as exc:
        assert exc.status in (400, 513)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=len(INVITE)), st.binary(max_size=20))
def test_mangled_invites_parse_or_raise_a_parse_error(cut: int, noise: bytes) -> None:
    with contextlib.suppress(ParseError):
        parse(INVITE[:cut] + noise + INVITE[cut:])


def test_uris_name_addrs_and_vias_round_trip() -> None:
    uri = SipUri.parse("sip:bob:secret@[::1]:5062;transport=tcp;lr?subject=x")
    assert (uri.user, uri.host, uri.port, uri.transport) == ("bob", "::1", 5062, "tcp")
    assert SipUri.parse(str(uri)) == uri
    address = NameAddr.parse('"Bob" <sip:bob@h;transport=udp>;tag=abc;expires=60')
    assert address.uri == "sip:bob@h;transport=udp"
    assert address.params == {"tag": "abc", "expires": "60"}
    assert NameAddr.parse(str(address)) == address
    bare = NameAddr.parse("sip:bob@h;tag=1")
    assert (bare.uri, bare.tag) == ("sip:bob@h", "1")
    via = Via.parse("SIP/2.0/TCP h:5;branch=z9hG4bKa;received=1.2.3.4;rport=9")
    assert Via.parse(str(via)) == via


def test_a_response_copies_what_rfc_3261_says_and_adds_the_to_tag() -> None:
    request = parse(INVITE)
    assert isinstance(request, Request)
    ringing = response_to(request, 180, to_tag="xyz")
    assert ringing.to.tag == "xyz"
    assert ringing.headers.values("Via") == request.headers.values("Via")
    assert ringing.cseq == request.cseq
    assert response_to(request, 100, to_tag="xyz").to.tag is None


def test_the_stream_framer_cuts_tcp_bytes_at_content_length() -> None:
    framer = StreamFramer()
    stream = b"\r\n" + INVITE + INVITE
    messages = []
    for i in range(0, len(stream), 7):  # fed in small pieces
        messages += framer.feed(stream[i : i + 7])
    assert messages == [INVITE, INVITE]


def test_the_stream_framer_refuses_a_head_that_never_ends() -> None:
    framer = StreamFramer(MessageLimits(max_size=1000))
    with pytest.raises(ParseError) as raised:
        framer.feed(b"INVITE sip:x SIP/2.0\r\n" + b"X-A: b\r\n" * 200)
    assert raised.value.status == 513
