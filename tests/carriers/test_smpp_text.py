"""Tests for verbal.carriers.smpp.text: texts to submit_sm fields and deliver_sm back to text.

The round trips go through real PDUs: each part becomes a SubmitSm, is encoded and decoded
by the codec, and is read back as the SMSC (or, as a DeliverSm, the ESME) would read it.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verbal.carriers.encoding import Alphabet, Concat, decode_text, pack_gsm7
from verbal.carriers.smpp.pdu import (
    DataSm,
    DeliverSm,
    SubmitSm,
    Tag,
    Tlv,
    decode,
)
from verbal.carriers.smpp.text import (
    DecodedMessage,
    LongMessages,
    MessagePart,
    TextCoding,
    decode_message,
    encode_message,
)

EMOJI = "😀"
WITH_LATIN1 = TextCoding(alphabets=(Alphabet.GSM7, Alphabet.LATIN1, Alphabet.UCS2))


def as_pdu(part: MessagePart, cls: type[SubmitSm] | type[DeliverSm] = SubmitSm) -> SubmitSm:
    """The part in a PDU that has been through the codec, as a peer would see it."""
    pdu = cls(
        sequence_number=1,
        source_addr="Verbal",
        destination_addr="15550002000",
        esm_class=0x03 | part.esm_class,  # store-and-forward mode, as Kannel sends
        data_coding=part.data_coding,
        short_message=part.short_message,
        tlvs=part.tlvs,
    )
    decoded = decode(pdu.encode())
    assert isinstance(decoded, cls)
    return decoded


def round_trip(text: str, coding: TextCoding, reference: int = 0) -> list[DecodedMessage]:
    return [
        decode_message(as_pdu(part), coding) for part in encode_message(text, coding, reference)
    ]


# --- one part -----------------------------------------------------------------------------


def test_short_gsm_text_is_one_plain_part() -> None:
    assert encode_message("Hello {world}") == [
        MessagePart(data_coding=0, esm_class=0, short_message=b"Hello \x1b(world\x1b)")
    ]


def test_data_coding_per_alphabet() -> None:
    assert encode_message("Привет")[0].data_coding == 8
    assert encode_message("Привет")[0].short_message == "Привет".encode("utf-16-be")
    assert encode_message("ça va", WITH_LATIN1)[0] == MessagePart(3, 0, b"\xe7a va")
    # A carrier whose data_coding 0 means Latin-1.
    latin1_default = TextCoding(
        alphabets=(Alphabet.LATIN1, Alphabet.UCS2), default_alphabet=Alphabet.LATIN1
    )
    assert encode_message("ça va", latin1_default)[0] == MessagePart(0, 0, b"\xe7a va")
    assert encode_message("€", latin1_default)[0].data_coding == 8
    forced_ucs2 = TextCoding(alphabets=(Alphabet.UCS2,))
    assert encode_message("plain", forced_ucs2)[0].data_coding == 8


def test_single_part_limits() -> None:
    assert len(encode_message("a" * 160)) == 1
    assert len(encode_message("a" * 161)) == 2
    assert len(encode_message("ç" * 140, WITH_LATIN1)) == 1
    assert len(encode_message("ç" * 141, WITH_LATIN1)) == 2
    assert len(encode_message(EMOJI * 35)) == 1
    assert len(encode_message(EMOJI * 36)) == 2


def test_empty_text_is_one_empty_part() -> None:
    assert encode_message("") == [MessagePart(0, 0, b"")]


def test_a_text_no_allowed_alphabet_carries_is_refused() -> None:
    with pytest.raises(ValueError, match="none of GSM-7"):
        encode_message(EMOJI, TextCoding(alphabets=(Alphabet.GSM7,)))


# --- long messages, each way ----------------------------------------------------------------


def test_udh_with_8bit_reference() -> None:
    parts = encode_message("a" * 161, reference=300)  # 300 % 256 = 0x2C
    assert [p.esm_class for p in parts] == [0x40, 0x40]
    assert parts[0].short_message == bytes.fromhex("05 00 03 2C 02 01") + b"a" * 153
    assert parts[1].short_message == bytes.fromhex("05 00 03 2C 02 02") + b"a" * 8
    assert all(p.data_coding == 0 and p.tlvs == () for p in parts)


def test_udh_with_16bit_reference() -> None:
    coding = TextCoding(long_messages=LongMessages.UDH16)
    parts = encode_message("a" * 161, coding, reference=0x12345)
    assert parts[0].short_message == bytes.fromhex("06 08 04 23 45 02 01") + b"a" * 152
    assert parts[1].short_message == bytes.fromhex("06 08 04 23 45 02 02") + b"a" * 9


def test_ucs2_udh_parts() -> None:
    parts = encode_message("ł" * 71)
    assert [len(p.short_message) for p in parts] == [6 + 134, 6 + 8]
    assert all(p.data_coding == 8 for p in parts)


def test_sar_tlvs() -> None:
    coding = TextCoding(long_messages=LongMessages.SAR)
    parts = encode_message("a" * 161, coding, reference=0x1ABCD)
    # Sized for a 16-bit reference UDH, which the SMSC may write.
    assert [p.short_message for p in parts] == [b"a" * 152, b"a" * 9]
    assert [p.esm_class for p in parts] == [0, 0]
    assert parts[1].tlvs == (
        Tlv(Tag.SAR_MSG_REF_NUM, b"\xab\xcd"),
        Tlv(Tag.SAR_TOTAL_SEGMENTS, b"\x02"),
        Tlv(Tag.SAR_SEGMENT_SEQNUM, b"\x02"),
    )


def test_message_payload() -> None:
    coding = TextCoding(long_messages=LongMessages.PAYLOAD)
    [part] = encode_message("a" * 161, coding)
    assert part == MessagePart(0, 0, b"", (Tlv(Tag.MESSAGE_PAYLOAD, b"a" * 161),))
    # Only when needed: a text that fits goes in short_message.
    assert encode_message("short", coding) == [MessagePart(0, 0, b"short")]
    # Beyond 255 parts' worth is fine in a payload...
    [big] = encode_message("a" * 40_000, coding)
    assert big.tlvs[0].value == b"a" * 40_000
    # ...but not beyond its 16-bit length.
    with pytest.raises(ValueError, match="message_payload holds 65535"):
        encode_message("a" * 65_536, coding)


def test_too_long_for_255_parts() -> None:
    with pytest.raises(ValueError, match="at most 255"):
        encode_message("a" * (153 * 255 + 1))


def test_escape_pair_never_splits_across_udh_parts() -> None:
    parts = encode_message("a" * 152 + "€" + "b" * 10)
    assert parts[0].short_message[6:] == b"a" * 152
    assert parts[1].short_message[6:] == b"\x1be" + b"b" * 10


def test_surrogate_pair_never_splits_across_udh_parts() -> None:
    parts = encode_message("ł" * 66 + EMOJI + "ł" * 5)
    assert parts[0].short_message[6:] == "ł".encode("utf-16-be") * 66
    assert parts[1].short_message[6:8] == bytes.fromhex("D83D")


# --- packed GSM-7 -------------------------------------------------------------------------


def test_packed_gsm7() -> None:
    coding = TextCoding(gsm7_packed=True)
    [single] = encode_message("a" * 160, coding)
    assert len(single.short_message) == 140
    first, second = encode_message("a" * 161, coding, reference=1)
    assert first.short_message[:6] == bytes.fromhex("05 00 03 01 02 01")
    assert len(first.short_message) == 140  # 6 + 134: a full SMS
    assert first.short_message[6:] == pack_gsm7(b"a" * 153, udh_octets=6)
    assert second.short_message[6:] == pack_gsm7(b"a" * 8, udh_octets=6)
    assert [m.text for m in round_trip("a" * 161, coding)] == ["a" * 153, "a" * 8]


# --- reading messages back --------------------------------------------------------------------

CODINGS = [
    TextCoding(),
    TextCoding(long_messages=LongMessages.UDH16),
    TextCoding(long_messages=LongMessages.SAR),
    TextCoding(gsm7_packed=True),
    TextCoding(gsm7_packed=True, long_messages=LongMessages.UDH16),
    WITH_LATIN1,
]


@pytest.mark.parametrize("coding", CODINGS, ids=lambda c: f"{c.long_messages.value}")
@pytest.mark.parametrize(
    "text", ["Hi", "a" * 400, "€" * 200, "ç" * 300, "ł" * 150 + EMOJI * 20, "x" * 153 * 3]
)
def test_round_trip_through_pdus(coding: TextCoding, text: str) -> None:
    decoded = round_trip(text, coding, reference=77)
    assert "".join(m.text or "" for m in decoded) == text
    if len(decoded) == 1:
        assert decoded[0].concat is None
    else:
        reference = 77
        assert [m.concat for m in decoded] == [
            Concat(reference, len(decoded), n) for n in range(1, len(decoded) + 1)
        ]


def test_payload_round_trip() -> None:
    coding = TextCoding(long_messages=LongMessages.PAYLOAD)
    [decoded] = round_trip("€" * 200, coding)
    assert decoded == DecodedMessage("€" * 200, Alphabet.GSM7, b"\x1be" * 200, None)


def test_decoding_a_deliver_sm_with_udh() -> None:
    pdu = DeliverSm(
        esm_class=0x40,
        data_coding=8,
        short_message=bytes.fromhex("05 00 03 09 02 01") + "Привет".encode("utf-16-be"),
    )
    assert decode_message(pdu) == DecodedMessage(
        "Привет", Alphabet.UCS2, "Привет".encode("utf-16-be"), Concat(9, 2, 1)
    )


def test_decoding_sar_tlvs() -> None:
    pdu = DeliverSm(
        short_message=b"part two",
        tlvs=(
            Tlv.integer(Tag.SAR_MSG_REF_NUM, 513, 2),
            Tlv.integer(Tag.SAR_TOTAL_SEGMENTS, 2, 1),
            Tlv.integer(Tag.SAR_SEGMENT_SEQNUM, 2, 1),
        ),
    )
    assert decode_message(pdu).concat == Concat(513, 2, 2)
    incomplete = DeliverSm(short_message=b"x", tlvs=pdu.tlvs[:2])
    assert decode_message(incomplete).concat is None
    bogus = DeliverSm(short_message=b"x", tlvs=(*pdu.tlvs[:2], Tlv(Tag.SAR_SEGMENT_SEQNUM, b"\3")))
    assert decode_message(bogus).concat is None
    # Sizes other than the spec's are not SAR: a 9-octet "total" could be any number.
    oversized = DeliverSm(
        short_message=b"x",
        tlvs=(
            Tlv(Tag.SAR_MSG_REF_NUM, b"\x01\x02\x03"),
            Tlv(Tag.SAR_TOTAL_SEGMENTS, b"\xff" * 9),
            Tlv(Tag.SAR_SEGMENT_SEQNUM, b"\x01"),
        ),
    )
    assert decode_message(oversized).concat is None


def test_decoding_a_data_sm_payload() -> None:
    pdu = DataSm(data_coding=3, tlvs=(Tlv(Tag.MESSAGE_PAYLOAD, b"caf\xe9"),))
    assert decode_message(pdu).text == "café"


@pytest.mark.parametrize(
    ("data_coding", "short_message", "text"),
    [
        (0x00, b"\x00@", "@¡"),  # septet 0x00 is "@", 0x40 is "¡"
        (0x01, b"IA5 text", "IA5 text"),
        (0x03, b"\xe7a", "ça"),
        (0x08, b"\x00A", "A"),
        (0xF1, b"\x00", "@"),  # GSM 7-bit, message class 1
        (0x02, b"\x01\x02", None),  # 8-bit binary
        (0x04, b"\x01\x02", None),
        (0xF5, b"\x01\x02", None),  # 8-bit data, class 1
        (0x06, b"\xb0", None),  # Cyrillic: not decoded
    ],
)
def test_decoding_each_data_coding(
    data_coding: int, short_message: bytes, text: str | None
) -> None:
    decoded = decode_message(DeliverSm(data_coding=data_coding, short_message=short_message))
    assert decoded.text == text
    assert decoded.user_data == short_message


def test_decoding_where_data_coding_0_is_latin1() -> None:
    coding = TextCoding(
        alphabets=(Alphabet.LATIN1, Alphabet.UCS2), default_alphabet=Alphabet.LATIN1
    )
    assert decode_message(DeliverSm(short_message=b"\xe7a"), coding).text == "ça"


def test_a_delivery_receipt_with_no_text() -> None:
    receipt = DeliverSm(esm_class=0x04, tlvs=(Tlv.cstring(Tag.RECEIPTED_MESSAGE_ID, "abc"),))
    assert decode_message(receipt) == DecodedMessage("", Alphabet.GSM7, b"", None)


def test_a_sender_that_splits_a_surrogate_pair_is_repaired_by_joining_user_data() -> None:
    data = (EMOJI + "ab").encode("utf-16-be")
    first = DeliverSm(esm_class=0x40, data_coding=8, short_message=b"\5\0\3\1\2\1" + data[:2])
    second = DeliverSm(esm_class=0x40, data_coding=8, short_message=b"\5\0\3\1\2\2" + data[2:])
    one, two = decode_message(first), decode_message(second)
    assert one.text == "\ufffd"  # each part alone can't show half a pair
    assert decode_text(one.user_data + two.user_data, Alphabet.UCS2) == EMOJI + "ab"


def test_a_udh_that_overruns_the_message_is_an_error() -> None:
    with pytest.raises(ValueError, match="overruns"):
        decode_message(DeliverSm(esm_class=0x40, short_message=b"\x09\x00\x03"))


def test_coding_is_validated() -> None:
    with pytest.raises(ValueError, match="at least one"):
        TextCoding(alphabets=())
    with pytest.raises(ValueError, match="not UCS-2"):
        TextCoding(default_alphabet=Alphabet.UCS2)
    with pytest.raises(ValueError, match="GSM-7 can only be sent"):
        TextCoding(default_alphabet=Alphabet.LATIN1)


# --- properties ---------------------------------------------------------------------------


def air_octets(part: MessagePart, coding: TextCoding) -> int:
    """What the part takes over the air: unpacked GSM-7 is packed by the SMSC."""
    udh = part.short_message[0] + 1 if part.esm_class & 0x40 else 0
    if coding.alphabet_of(part.data_coding) is Alphabet.GSM7 and not coding.gsm7_packed:
        return udh + len(pack_gsm7(part.short_message[udh:], udh))
    return len(part.short_message)


texts = st.one_of(
    st.text(max_size=500),
    st.text(alphabet=st.sampled_from("ab€[\n"), min_size=100, max_size=600),
    st.text(alphabet=st.sampled_from("abł" + EMOJI), min_size=50, max_size=400),
    st.text(alphabet=st.characters(max_codepoint=255), min_size=100, max_size=600),
)


@settings(max_examples=300)
@given(texts, st.sampled_from(CODINGS), st.integers(0, 0xFFFF))
def test_every_part_fits_and_the_parts_read_back_as_the_text(
    text: str, coding: TextCoding, reference: int
) -> None:
    if coding.gsm7_packed:
        # Packed GSM-7 may double a final CR (TS 23.038 §6.1.2.3.1; tested in
        # test_encoding.py), so leave CRs out of the exact comparison.
        text = text.replace("\r", "")
    parts = encode_message(text, coding, reference)
    assert all(air_octets(part, coding) <= 140 for part in parts)
    decoded = [decode_message(as_pdu(part, DeliverSm), coding) for part in parts]
    assert "".join(m.text or "" for m in decoded) == text
    if len(parts) > 1:
        assert {m.concat.reference for m in decoded if m.concat} == {
            reference % (0x100 if coding.long_messages is LongMessages.UDH else 0x10000)
        }
