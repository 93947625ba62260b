"""Tests for verbal.carriers.sip.sdp (offer/answer, hold) and verbal.carriers.sip.auth."""

import hashlib

import pytest

from verbal.carriers.sip import sdp
from verbal.carriers.sip.auth import AuthError, Challenge, Credentials, authorization
from verbal.carriers.sip.sdp import PCMA, PCMU, Direction, SdpError

# What a softphone offers: Opus first, then G.711 both laws, telephone-event on 101,
# and a video stream we do not take.
OFFER = (
    b"v=0\r\no=alice 2890844526 2890844526 IN IP4 198.51.100.1\r\ns=-\r\n"
    b"c=IN IP4 198.51.100.1\r\nt=0 0\r\n"
    b"m=audio 49170 RTP/AVP 111 8 0 101\r\n"
    b"a=rtpmap:111 opus/48000/2\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\n"
    b"m=video 51372 RTP/AVP 31\r\na=rtpmap:31 H261/90000\r\n"
)


def test_an_offer_is_read_for_its_audio_stream() -> None:
    offer = sdp.parse(OFFER)
    assert (offer.address, offer.port) == ("198.51.100.1", 49170)
    assert offer.codecs == (PCMA, PCMU)
    assert offer.telephone_event == 101
    assert offer.direction is Direction.SENDRECV
    assert offer.rejected == (("video", "RTP/AVP", "31"),)


def test_the_answer_takes_the_offers_preferred_common_codec_and_rejects_video() -> None:
    answer = sdp.make_answer(sdp.parse(OFFER), "127.0.0.1", 4000)
    assert answer.codecs == (PCMA,)
    assert answer.telephone_event == 101
    text = bytes(answer).decode()
    assert "m=audio 4000 RTP/AVP 8 101\r\n" in text
    assert "a=rtpmap:101 telephone-event/8000" in text
    assert text.endswith("m=video 0 RTP/AVP 31\r\n")
    again = sdp.parse(bytes(answer))
    assert (again.codec, again.port, again.telephone_event) == (PCMA, 4000, 101)


def test_the_answer_honours_our_codec_list() -> None:
    answer = sdp.make_answer(sdp.parse(OFFER), "127.0.0.1", 4000, codecs=(PCMU,))
    assert answer.codec == PCMU


@pytest.mark.parametrize(
    ("offered", "answered"),
    [
        ("sendonly", Direction.RECVONLY),
        ("inactive", Direction.INACTIVE),
        ("recvonly", Direction.SENDONLY),
        ("sendrecv", Direction.SENDRECV),
    ],
)
def test_hold_is_answered_with_the_mirrored_direction(offered: str, answered: Direction) -> None:
    offer = sdp.parse(OFFER.replace(b"a=ptime:20", f"a={offered}".encode()))
    assert offer.on_hold is (offered in ("sendonly", "inactive"))
    assert sdp.make_answer(offer, "127.0.0.1", 4000).direction is answered


def test_a_session_level_direction_applies_to_the_stream() -> None:
    offer = sdp.parse(OFFER.replace(b"t=0 0\r\n", b"t=0 0\r\na=sendonly\r\n"))
    assert offer.direction is Direction.SENDONLY


def test_no_common_codec_is_a_488() -> None:
    offer = sdp.parse(OFFER.replace(b"111 8 0 101", b"111 101"))
    with pytest.raises(SdpError) as raised:
        sdp.make_answer(offer, "127.0.0.1", 4000)
    assert raised.value.code == 488


@pytest.mark.parametrize(
    "body",
    [
        b"\xff\xfe",
        b"v=0\r\nnot sdp\r\n",
        b"v=0\r\nm=audio x RTP/AVP 0\r\n",
        b"v=0\r\nm=audio 4 RTP/AVP 0\r\n",
    ],
)
def test_broken_sdp_is_a_400(body: bytes) -> None:
    with pytest.raises(SdpError) as raised:
        sdp.parse(body)
    assert raised.value.code == 400


def test_an_offer_without_audio_is_a_488() -> None:
    with pytest.raises(SdpError) as raised:
        sdp.parse(b"v=0\r\nc=IN IP4 1.2.3.4\r\nm=video 5 RTP/AVP 31\r\n")
    assert raised.value.code == 488


def test_our_offer_lists_both_laws_and_telephone_event() -> None:
    offer = sdp.make_offer("127.0.0.1", 4000, session_id=7, version=3)
    text = bytes(offer).decode()
    assert "m=audio 4000 RTP/AVP 0 8 101\r\n" in text
    assert "o=verbal 7 3 IN IP4 127.0.0.1" in text
    assert sdp.parse(bytes(offer)) == offer
    with pytest.raises(ValueError, match="codecs"):
        sdp.make_offer("127.0.0.1", 4000, codecs=(18,))


def test_digest_with_qop_auth_matches_rfc_2617s_worked_example() -> None:
    challenge = Challenge.parse(
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    value = authorization(
        challenge,
        Credentials("Mufasa", "Circle Of Life"),
        "GET",
        "/dir/index.html",
        cnonce="0a4f113b",
    )
    assert 'response="6629fae49393a05397450978507c4ef1"' in value
    assert "nc=00000001" in value and 'opaque="5ccc069c403ebaf9f0171e9517f40e41"' in value


def test_digest_without_qop_uses_the_rfc_2069_form() -> None:
    challenge = Challenge.parse('Digest realm="r", nonce="n"')
    value = authorization(challenge, Credentials("u", "p"), "REGISTER", "sip:h")

    # MD5(MD5("u:r:p") ":" "n" ":" MD5("REGISTER:sip:h")), computed independently.
    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    expected = md5(f"{md5('u:r:p')}:n:{md5('REGISTER:sip:h')}")
    assert f'response="{expected}"' in value
    assert "qop" not in value


def test_unsupported_challenges_are_refused() -> None:
    with pytest.raises(AuthError):
        Challenge.parse('Basic realm="r"')
    with pytest.raises(AuthError):
        authorization(
            Challenge.parse('Digest realm="r", nonce="n", algorithm=SHA-256'),
            Credentials("u", "p"),
            "INVITE",
            "sip:h",
        )
    with pytest.raises(AuthError):
        authorization(
            Challenge.parse('Digest realm="r", nonce="n"'),
            Credentials("u", "p", realm="other"),
            "INVITE",
            "sip:h",
        )


def test_the_password_is_not_in_the_credentials_repr() -> None:
    assert "hunter2" not in repr(Credentials("u", "hunter2"))
