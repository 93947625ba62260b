"""Delivery receipts: recognising them and reading them, however the SMSC writes them.

A receipt is a deliver_sm (or data_sm) about a message we submitted. SMPP 3.4 gives it
two channels, and SMSCs use either or both:

* the TLVs ``receipted_message_id`` (0x001E) and ``message_state`` (0x0427), with
  ``network_error_code`` (0x0423) on failure: typed, so read first;
* the receipt text of Appendix B, which the spec itself calls vendor specific:
  ``id:IIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DDDDDDD
  err:E text:...``. Seen in the wild, and all read here: any letter case, dates with
  seconds, ``sub``/``dlvrd``/``text`` missing, the fields in another order, spelled-out
  states (``DELIVERED``), ids in hex in one PDU and decimal in the other or with their
  leading zeros dropped (see `id_keys`).

A deliver_sm is taken for a receipt when its esm_class says so (message type 0x04,
SMSC delivery receipt, or 0x20, intermediate notification), when it carries
receipted_message_id, or, for SMSCs that send receipts as plain messages (esm_class 0),
when its text starts with ``id:`` and has both ``stat:`` and ``done date:``.

States map onto Verbal's statuses: DELIVRD is delivered; UNDELIV, EXPIRED and DELETED
are undelivered (the network took the message and could not hand it over); REJECTD and
FAILED are failed (it never went out). ENROUTE, ACCEPTD (the SMSC has it) and UNKNOWN
are not final, and change nothing.
"""

import enum
import re
from dataclasses import dataclass

from verbal.carriers.smpp.pdu import DataSm, DeliverSm, MessageState, Tag
from verbal.carriers.smpp.text import TextCoding, decode_message

__all__ = [
    "IdKeys",
    "ParsedReceipt",
    "ReceiptOutcome",
    "id_keys",
    "is_receipt",
    "parse_receipt",
]

# esm_class bits 5-2, the message type (SMPP 3.4 §5.2.12).
_MESSAGE_TYPE_MASK = 0x3C
_SMSC_DELIVERY_RECEIPT = 0x04
_INTERMEDIATE_NOTIFICATION = 0x20


class ReceiptOutcome(enum.Enum):
    """What a receipt says about a message; PENDING changes nothing."""

    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    PENDING = "pending"


# Every spelling seen of each state, to the 7-letter form of Appendix B.
_STATE_NAMES = {
    "DELIVRD": "DELIVRD",
    "DELIVERED": "DELIVRD",
    "UNDELIV": "UNDELIV",
    "UNDELIVERABLE": "UNDELIV",
    "UNDELIVERED": "UNDELIV",
    "EXPIRED": "EXPIRED",
    "DELETED": "DELETED",
    "REJECTD": "REJECTD",
    "REJECTED": "REJECTD",
    "ACCEPTD": "ACCEPTD",
    "ACCEPTED": "ACCEPTD",
    "ENROUTE": "ENROUTE",
    "UNKNOWN": "UNKNOWN",
    "FAILED": "FAILED",
    "FAILD": "FAILED",
}
_STATE_OF_TLV: dict[int, str] = {
    MessageState.ENROUTE: "ENROUTE",
    MessageState.DELIVERED: "DELIVRD",
    MessageState.EXPIRED: "EXPIRED",
    MessageState.DELETED: "DELETED",
    MessageState.UNDELIVERABLE: "UNDELIV",
    MessageState.ACCEPTED: "ACCEPTD",
    MessageState.UNKNOWN: "UNKNOWN",
    MessageState.REJECTED: "REJECTD",
}
_OUTCOMES = {
    "DELIVRD": ReceiptOutcome.DELIVERED,
    "UNDELIV": ReceiptOutcome.UNDELIVERED,
    "EXPIRED": ReceiptOutcome.UNDELIVERED,
    "DELETED": ReceiptOutcome.UNDELIVERED,
    "REJECTD": ReceiptOutcome.FAILED,
    "FAILED": ReceiptOutcome.FAILED,
}
_STATE_TEXT = {
    "UNDELIV": "undeliverable",
    "EXPIRED": "expired before it could be delivered",
    "DELETED": "deleted by the carrier",
    "REJECTD": "rejected by the carrier",
    "FAILED": "failed at the carrier",
}

# Twilio's codes for a message the network could not deliver or refused.
_UNREACHABLE = 30003
_BLOCKED = 30004
_UNKNOWN_HANDSET = 30005
_LANDLINE = 30006
_FILTERED = 30007
_UNKNOWN_ERROR = 30008
_DEFAULT_CODE = {
    "UNDELIV": _UNREACHABLE,
    "EXPIRED": _UNREACHABLE,
    "DELETED": _UNKNOWN_ERROR,
    "REJECTD": _FILTERED,
    "FAILED": _UNKNOWN_ERROR,
}
# network_error_code type 3 is GSM: its code is a MAP error (3GPP TS 29.002 §17.6.6),
# the ones that say more than "undeliverable".
_GSM = 3
_GSM_MAP_CODES = {
    1: _UNKNOWN_HANDSET,  # unknownSubscriber
    5: _UNKNOWN_HANDSET,  # unidentifiedSubscriber
    9: _UNKNOWN_HANDSET,  # illegalSubscriber
    11: _LANDLINE,  # teleserviceNotProvisioned
    13: _BLOCKED,  # callBarred
    27: _UNREACHABLE,  # absentSubscriber
    31: _UNREACHABLE,  # subscriberBusyForMT-SMS
    32: _UNREACHABLE,  # sm-DeliveryFailure
    34: _UNKNOWN_ERROR,  # systemFailure
}

# Keys of the receipt text. "submit date" and "done date" hold a space, so keys are found
# by name rather than by splitting on spaces; a value runs to the next key.
_KEY = re.compile(r"\b(id|sub|dlvrd|submit date|done date|stat|err|text)\s*:", re.IGNORECASE)
_RECEIPT_TEXT = re.compile(r"^\s*id\s*:", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ParsedReceipt:
    """What a receipt says, in Verbal's terms and in the carrier's own.

    ``state`` is the carrier's state in Appendix B's spelling (DELIVRD, UNDELIV ...);
    ``error_code`` is the Twilio code for an undelivered or failed message and
    ``error_message`` tells it in words with the carrier's own codes, for the message's
    error_message and its status callback.
    """

    message_id: str
    state: str
    outcome: ReceiptOutcome
    error_code: int | None = None
    error_message: str | None = None


def _text(pdu: DeliverSm | DataSm, coding: TextCoding | None) -> str:
    try:
        decoded = decode_message(pdu, coding)
    except ValueError:  # a UDH that overruns the message: read the octets as they are
        return pdu.short_message.decode("latin-1") if isinstance(pdu, DeliverSm) else ""
    if decoded.text is not None:
        return decoded.text
    return decoded.user_data.decode("latin-1")


def _fields(text: str) -> dict[str, str]:
    """The key:value fields of a receipt text, keys lower-cased; the first of each wins."""
    fields: dict[str, str] = {}
    matches = list(_KEY.finditer(text))
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        key = " ".join(match.group(1).lower().split())
        fields.setdefault(key, text[match.end() : end].strip())
    return fields


def _looks_like_receipt_text(text: str) -> bool:
    lowered = text.lower()
    return bool(_RECEIPT_TEXT.match(text)) and "stat:" in lowered and "done date:" in lowered


def is_receipt(pdu: DeliverSm | DataSm, coding: TextCoding | None = None) -> bool:
    """Whether ``pdu`` is a delivery receipt rather than a message (see the module doc)."""
    message_type = pdu.esm_class & _MESSAGE_TYPE_MASK
    if message_type in (_SMSC_DELIVERY_RECEIPT, _INTERMEDIATE_NOTIFICATION):
        return True
    if pdu.tlv(Tag.RECEIPTED_MESSAGE_ID) is not None:
        return True
    return message_type == 0 and _looks_like_receipt_text(_text(pdu, coding))


def _network_error(pdu: DeliverSm | DataSm) -> tuple[int, int] | None:
    tlv = pdu.tlv(Tag.NETWORK_ERROR_CODE)
    if tlv is None or len(tlv.value) != 3:
        return None
    return tlv.value[0], int.from_bytes(tlv.value[1:], "big")


def _error(state: str, err: str | None, network: tuple[int, int] | None) -> tuple[int, str]:
    code = _DEFAULT_CODE.get(state, _UNKNOWN_ERROR)
    if network is not None and network[0] == _GSM:
        code = _GSM_MAP_CODES.get(network[1], code)
    details = [f"stat:{state}"]
    if err and err.strip("0"):
        details.append(f"err:{err}")
    if network is not None:
        details.append(f"network error {network[1]} (type {network[0]})")
    return code, f"Carrier reports the message {_STATE_TEXT[state]} ({', '.join(details)})"


def parse_receipt(
    pdu: DeliverSm | DataSm, coding: TextCoding | None = None
) -> ParsedReceipt | None:
    """Read a receipt; None when it names no message or no state Verbal can read.

    TLVs come first: receipted_message_id over the text's ``id``, message_state over its
    ``stat``. Call only for PDUs `is_receipt` accepted.
    """
    fields = _fields(_text(pdu, coding))
    id_tlv = pdu.tlv(Tag.RECEIPTED_MESSAGE_ID)
    message_id = id_tlv.as_cstring().strip() if id_tlv is not None else ""
    if not message_id:
        words = fields.get("id", "").split()
        message_id = words[0] if words else ""
    state_tlv = pdu.tlv(Tag.MESSAGE_STATE)
    state: str | None = None
    if state_tlv is not None and len(state_tlv.value) == 1:
        state = _STATE_OF_TLV.get(state_tlv.value[0])
    if state is None:
        words = fields.get("stat", "").split()
        state = _STATE_NAMES.get(words[0].upper()) if words else None
    if not message_id or state is None:
        return None
    outcome = _OUTCOMES.get(state, ReceiptOutcome.PENDING)
    if outcome in (ReceiptOutcome.DELIVERED, ReceiptOutcome.PENDING):
        return ParsedReceipt(message_id, state, outcome)
    err_words = fields.get("err", "").split()
    code, text = _error(state, err_words[0] if err_words else None, _network_error(pdu))
    return ParsedReceipt(message_id, state, outcome, code, text)


@dataclass(frozen=True, slots=True)
class IdKeys:
    """The number a message id spells when read as decimal and as hex, if it does.

    Some SMSCs answer submit_sm with an id in hex and write it in decimal in the receipt
    (or the other way round), or drop its leading zeros there (Kannel's msg-id-type,
    Jasmin's dlr_msgid, jookies/jasmin#643). Comparing these numbers, as decimal strings
    without leading zeros, matches a receipt to its message whichever way it was spelled.
    """

    decimal: str | None
    hexadecimal: str | None


# Message ids are at most 64 characters (a C-Octet String of 65); longer is not an id.
_MAX_ID = 64
_DECIMAL = re.compile(r"[0-9]+")
_HEXADECIMAL = re.compile(r"[0-9a-fA-F]+")


def id_keys(message_id: str) -> IdKeys:
    """The numeric readings of ``message_id`` (None where it is not such a number)."""
    if len(message_id) > _MAX_ID:
        return IdKeys(None, None)
    decimal = str(int(message_id, 10)) if _DECIMAL.fullmatch(message_id) else None
    hexadecimal = str(int(message_id, 16)) if _HEXADECIMAL.fullmatch(message_id) else None
    return IdKeys(decimal, hexadecimal)
