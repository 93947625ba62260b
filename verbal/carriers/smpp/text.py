"""Texts to SMPP short messages and back: data_coding, UDHI, SAR and message_payload.

`verbal.carriers.encoding` knows alphabets, part sizes and the concatenation UDH; this
module knows how SMPP carries them (SMPP 3.4 §5.2.19 data_coding, §5.2.12 esm_class,
§5.3.2 the sar_* and message_payload TLVs). A carrier's quirks live in one
`TextCoding` value: which alphabets to use, what its data_coding 0 means, whether it wants
GSM-7 packed, and how it takes long messages:

* ``UDH``: one submit_sm per part, each short_message starting with a concatenation
  UDH with an 8-bit reference, esm_class UDHI set. What handsets and SMSCs support
  most widely, so the default.
* ``UDH16``: the same with a 16-bit reference, for fewer collisions on busy routes.
* ``SAR``: one submit_sm per part, no UDH; the sar_* TLVs say which part it is and the
  SMSC writes the UDH. Its sar_msg_ref_num is 16 bits, so parts are sized for a 16-bit
  reference UDH (152 septets), in case the SMSC writes one.
* ``PAYLOAD``: one submit_sm with the whole text in message_payload and sm_length 0;
  the SMSC splits it. Some gateways mishandle it, so it is only used when the text
  doesn't fit one SMS.
"""

import enum
from dataclasses import dataclass

from verbal.carriers.encoding import (
    UDH_CONCAT_8BIT_OCTETS,
    UDH_CONCAT_16BIT_OCTETS,
    Alphabet,
    Concat,
    choose_alphabet,
    concat_udh,
    decode_text,
    encode_text,
    pack_gsm7,
    parse_udh,
    part_capacity,
    split_text,
    text_length,
    unpack_gsm7,
)
from verbal.carriers.smpp.pdu import (
    ESM_CLASS_UDHI,
    DataSm,
    ShortMessageRequest,
    Tag,
    Tlv,
)

__all__ = [
    "DecodedMessage",
    "LongMessages",
    "MessagePart",
    "TextCoding",
    "decode_message",
    "encode_message",
]

# data_coding values (SMPP 3.4 §5.2.19).
_SMSC_DEFAULT = 0x00
_IA5 = 0x01
_LATIN1 = 0x03
_UCS2 = 0x08
# message_payload's length field is 16 bits.
_MAX_PAYLOAD = 0xFFFF


class LongMessages(enum.Enum):
    """How a text too long for one SMS goes out; see the module docstring."""

    UDH = "udh"
    UDH16 = "udh16"
    SAR = "sar"
    PAYLOAD = "payload"


@dataclass(frozen=True, slots=True)
class TextCoding:
    """How one carrier wants texts coded. The defaults suit nearly every SMSC."""

    # Tried in order; the first that can carry the whole text is used.
    alphabets: tuple[Alphabet, ...] = (Alphabet.GSM7, Alphabet.UCS2)
    # What data_coding 0, "SMSC default alphabet", means at this SMSC: GSM 03.38 almost
    # everywhere, Latin-1 at a few.
    default_alphabet: Alphabet = Alphabet.GSM7
    # GSM-7 packed 8 septets to 7 octets, by bilateral agreement; SMPP normally sends one
    # septet per octet and the SMSC packs.
    gsm7_packed: bool = False
    long_messages: LongMessages = LongMessages.UDH

    def __post_init__(self) -> None:
        if not self.alphabets:
            msg = "alphabets must name at least one alphabet"
            raise ValueError(msg)
        if self.default_alphabet is Alphabet.UCS2:
            msg = "data_coding 0 can mean GSM-7 or Latin-1, not UCS-2"
            raise ValueError(msg)
        if Alphabet.GSM7 in self.alphabets and self.default_alphabet is not Alphabet.GSM7:
            # GSM-7 has no data_coding of its own besides 0 (0xF0-0xF3 carry a message
            # class, which changes how handsets show the message).
            msg = "GSM-7 can only be sent where data_coding 0 means GSM-7"
            raise ValueError(msg)

    def data_coding_for(self, alphabet: Alphabet) -> int:
        """The data_coding value for a text in ``alphabet`` at this carrier."""
        if alphabet is self.default_alphabet:
            return _SMSC_DEFAULT
        return _UCS2 if alphabet is Alphabet.UCS2 else _LATIN1

    def alphabet_of(self, data_coding: int) -> Alphabet | None:
        """The alphabet of a received ``data_coding``, or None for binary and the rest."""
        if data_coding == _SMSC_DEFAULT:
            return self.default_alphabet
        if data_coding in (_IA5, _LATIN1):
            return Alphabet.LATIN1  # IA5 is ASCII, which Latin-1 contains
        if data_coding == _UCS2:
            return Alphabet.UCS2
        if data_coding & 0xFC == 0xF0:
            # Data coding/message class group with GSM 7-bit (TS 23.038 §4).
            return Alphabet.GSM7
        return None


@dataclass(frozen=True, slots=True)
class MessagePart:
    """The text-carrying fields of one submit_sm (or deliver_sm).

    OR ``esm_class`` into the PDU's own esm_class bits (messaging mode, receipts) and
    append ``tlvs`` to its TLVs.
    """

    data_coding: int
    esm_class: int
    short_message: bytes
    tlvs: tuple[Tlv, ...] = ()


def _octets(text: str, alphabet: Alphabet, coding: TextCoding, udh_octets: int = 0) -> bytes:
    data = encode_text(text, alphabet)
    if alphabet is Alphabet.GSM7 and coding.gsm7_packed:
        return pack_gsm7(data, udh_octets)
    return data


def encode_message(
    text: str, coding: TextCoding | None = None, reference: int = 0
) -> list[MessagePart]:
    """The submit_sm fields to send ``text`` with, one `MessagePart` per PDU.

    ``reference`` ties the parts of one long message together; pass a number that rolls
    per destination. It is taken modulo 256 or 65,536, as the method allows. Raises
    ``ValueError`` if no alphabet of ``coding`` can carry the text or it is too long.
    """
    coding = coding or TextCoding()
    alphabet = choose_alphabet(text, coding.alphabets)
    data_coding = coding.data_coding_for(alphabet)
    method = coding.long_messages
    if text_length(text, alphabet) <= part_capacity(alphabet):
        return [MessagePart(data_coding, 0, _octets(text, alphabet, coding))]

    if method is LongMessages.PAYLOAD:
        payload = _octets(text, alphabet, coding)
        if len(payload) > _MAX_PAYLOAD:
            msg = f"the text is {len(payload)} octets; message_payload holds {_MAX_PAYLOAD}"
            raise ValueError(msg)
        return [MessagePart(data_coding, 0, b"", (Tlv(Tag.MESSAGE_PAYLOAD, payload),))]

    wide = method is not LongMessages.UDH
    udh_octets = UDH_CONCAT_16BIT_OCTETS if wide else UDH_CONCAT_8BIT_OCTETS
    parts = split_text(text, alphabet, udh_octets)
    reference %= 0x10000 if wide else 0x100
    total = len(parts)
    if method is LongMessages.SAR:
        return [
            MessagePart(
                data_coding,
                0,
                _octets(part, alphabet, coding),
                (
                    Tlv.integer(Tag.SAR_MSG_REF_NUM, reference, 2),
                    Tlv.integer(Tag.SAR_TOTAL_SEGMENTS, total, 1),
                    Tlv.integer(Tag.SAR_SEGMENT_SEQNUM, sequence, 1),
                ),
            )
            for sequence, part in enumerate(parts, 1)
        ]
    return [
        MessagePart(
            data_coding,
            ESM_CLASS_UDHI,
            concat_udh(Concat(reference, total, sequence), wide_reference=wide)
            + _octets(part, alphabet, coding, udh_octets),
        )
        for sequence, part in enumerate(parts, 1)
    ]


@dataclass(frozen=True, slots=True)
class DecodedMessage:
    """What a received short message says.

    ``text`` is None when the data_coding is binary or one Verbal doesn't decode; the
    octets are still in ``user_data`` (the message less any UDH, septets unpacked). To
    join the parts of a UCS-2 message, join their ``user_data`` and decode once: a
    sender may have split a surrogate pair between parts.
    """

    text: str | None
    alphabet: Alphabet | None
    user_data: bytes
    concat: Concat | None


def _sar(pdu: ShortMessageRequest | DataSm) -> Concat | None:
    reference = pdu.tlv(Tag.SAR_MSG_REF_NUM)
    total = pdu.tlv(Tag.SAR_TOTAL_SEGMENTS)
    sequence = pdu.tlv(Tag.SAR_SEGMENT_SEQNUM)
    if reference is None or total is None or sequence is None:
        return None
    # Integer(2), Integer(1) and Integer(1) (SMPP 3.4 §5.3.2.22-24). Other sizes are no
    # SAR a sender meant, and could name references and totals no message can have.
    if (len(reference.value), len(total.value), len(sequence.value)) != (2, 1, 1):
        return None
    concat = Concat(reference.as_integer(), total.as_integer(), sequence.as_integer())
    return concat if 1 <= concat.sequence <= concat.total else None


def decode_message(
    pdu: ShortMessageRequest | DataSm, coding: TextCoding | None = None
) -> DecodedMessage:
    """Read the text and concatenation info of a deliver_sm, submit_sm or data_sm.

    The message is short_message, or message_payload when short_message is empty; the
    concatenation info comes from the UDH (when esm_class has UDHI) or the sar_* TLVs.
    Raises ``ValueError`` only for a UDH that overruns the message.
    """
    coding = coding or TextCoding()
    data = pdu.short_message if isinstance(pdu, ShortMessageRequest) else b""
    if not data:
        payload = pdu.tlv(Tag.MESSAGE_PAYLOAD)
        data = payload.value if payload is not None else b""
    concat, udh_octets = None, 0
    if pdu.esm_class & ESM_CLASS_UDHI:
        concat, udh_octets = parse_udh(data)
    user_data = data[udh_octets:]
    concat = concat or _sar(pdu)

    alphabet = coding.alphabet_of(pdu.data_coding)
    if alphabet is None:
        return DecodedMessage(None, None, user_data, concat)
    if alphabet is Alphabet.GSM7 and coding.gsm7_packed:
        user_data = unpack_gsm7(user_data, udh_octets)
    return DecodedMessage(decode_text(user_data, alphabet), alphabet, user_data, concat)
