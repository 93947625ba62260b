"""Delivery receipts as SMSCs really write them (verbal/carriers/smpp/receipts.py).

The texts come from SMPP 3.4 Appendix B, from Jasmin 0.11.0 as recorded in
shared/spec/smpp.md §2a, and from the variants listed in its §4.6.
"""

from __future__ import annotations

import pytest

from verbal.carriers.smpp.pdu import DataSm, DeliverSm, Tag, Tlv
from verbal.carriers.smpp.receipts import (
    IdKeys,
    ReceiptOutcome,
    id_keys,
    is_receipt,
    parse_receipt,
)

RECEIPT = 0x04


def deliver(
    text: str | bytes, esm_class: int = RECEIPT, *tlvs: Tlv, data_coding: int = 0
) -> DeliverSm:
    data = text.encode("latin-1") if isinstance(text, str) else text
    return DeliverSm(esm_class=esm_class, short_message=data, tlvs=tlvs, data_coding=data_coding)


@pytest.mark.parametrize(
    ("text", "message_id", "state"),
    [
        # Appendix B, every field.
        (
            "id:1234567890 sub:001 dlvrd:001 submit date:0610191018 done date:0610191018 "
            "stat:DELIVRD err:000 text:Hello there",
            "1234567890",
            "DELIVRD",
        ),
        # Jasmin 0.11.0: no sub, dlvrd or text; a UUID id.
        (
            "id:0ebe53b6-fd23-42a2-87c6-baac0dabc3f1 submit date:2611220233 "
            "done date:2611220233 stat:DELIVRD err:000",
            "0ebe53b6-fd23-42a2-87c6-baac0dabc3f1",
            "DELIVRD",
        ),
        # Dates with seconds, "Text:" capitalised, "text:none".
        (
            "id:7F3A sub:001 dlvrd:001 submit date:261122023301 done date:261122023305 "
            "stat:DELIVRD err:000 Text:none",
            "7F3A",
            "DELIVRD",
        ),
        # Lower case throughout, and the state spelled out.
        ("id:42 submit date:2611220233 done date:2611220233 stat:delivered err:0", "42", "DELIVRD"),
        # Upper-case keys, fields in another order, extra spaces.
        ("ID:abc  STAT:UNDELIV  ERR:001  DONE DATE:2611220233", "abc", "UNDELIV"),
        # The text field holds something that looks like a key.
        ("id:9 stat:EXPIRED err:000 text:meet at 10:30 stat", "9", "EXPIRED"),
    ],
)
def test_receipt_text_variants(text: str, message_id: str, state: str) -> None:
    pdu = deliver(text)
    assert is_receipt(pdu)
    parsed = parse_receipt(pdu)
    assert parsed is not None
    assert (parsed.message_id, parsed.state) == (message_id, state)


def test_tlvs_come_before_the_text() -> None:
    # Jasmin sends both; the TLVs are typed and win where they disagree with the text.
    pdu = deliver(
        "id:should-not-win submit date:2611220233 done date:2611220233 stat:UNDELIV err:000",
        RECEIPT,
        Tlv.cstring(Tag.RECEIPTED_MESSAGE_ID, "0ebe53b6-fd23"),
        Tlv(Tag.MESSAGE_STATE, b"\x02"),
    )
    parsed = parse_receipt(pdu)
    assert parsed is not None
    assert (parsed.message_id, parsed.state, parsed.outcome) == (
        "0ebe53b6-fd23",
        "DELIVRD",
        ReceiptOutcome.DELIVERED,
    )
    assert parsed.error_code is None


def test_a_receipt_with_tlvs_only_and_a_data_sm() -> None:
    pdu = DataSm(
        esm_class=RECEIPT,
        tlvs=(Tlv(Tag.RECEIPTED_MESSAGE_ID, b"00A1"), Tlv(Tag.MESSAGE_STATE, b"\x05")),
    )
    assert is_receipt(pdu)
    parsed = parse_receipt(pdu)
    assert parsed is not None
    # receipted_message_id without its NUL, as some SMSCs send it.
    assert parsed.message_id == "00A1"
    assert parsed.outcome is ReceiptOutcome.UNDELIVERED
    assert parsed.error_code == 30003


@pytest.mark.parametrize(
    ("state", "outcome", "code"),
    [
        ("DELIVRD", ReceiptOutcome.DELIVERED, None),
        ("UNDELIV", ReceiptOutcome.UNDELIVERED, 30003),
        ("EXPIRED", ReceiptOutcome.UNDELIVERED, 30003),
        ("DELETED", ReceiptOutcome.UNDELIVERED, 30008),
        ("REJECTD", ReceiptOutcome.FAILED, 30007),
        ("REJECTED", ReceiptOutcome.FAILED, 30007),
        ("FAILED", ReceiptOutcome.FAILED, 30008),
        ("ENROUTE", ReceiptOutcome.PENDING, None),
        ("ACCEPTD", ReceiptOutcome.PENDING, None),
        ("UNKNOWN", ReceiptOutcome.PENDING, None),
    ],
)
def test_states_map_to_outcomes(state: str, outcome: ReceiptOutcome, code: int | None) -> None:
    parsed = parse_receipt(deliver(f"id:1 done date:2611220233 stat:{state} err:000"))
    assert parsed is not None
    assert parsed.outcome is outcome
    assert parsed.error_code == code


def test_the_carriers_error_flows_into_the_message() -> None:
    pdu = deliver(
        "id:1 sub:001 dlvrd:000 submit date:2611220233 done date:2611220233 stat:UNDELIV err:001",
        RECEIPT,
        # network_error_code: type 3 (GSM), MAP error 1, unknown subscriber.
        Tlv(Tag.NETWORK_ERROR_CODE, b"\x03\x00\x01"),
    )
    parsed = parse_receipt(pdu)
    assert parsed is not None
    assert parsed.error_code == 30005
    assert parsed.error_message is not None
    assert "err:001" in parsed.error_message
    assert "network error 1 (type 3)" in parsed.error_message
    assert "stat:UNDELIV" in parsed.error_message


def test_an_intermediate_notification_is_a_receipt_that_changes_nothing() -> None:
    pdu = deliver("id:5 done date:2611220233 stat:ENROUTE err:000", 0x20)
    assert is_receipt(pdu)
    parsed = parse_receipt(pdu)
    assert parsed is not None
    assert parsed.outcome is ReceiptOutcome.PENDING


def test_a_receipt_sent_as_a_plain_message_is_still_a_receipt() -> None:
    # jookies/jasmin#1050: receipts with esm_class 0 were taken for MO messages.
    pdu = deliver("id:77 submit date:2611220233 done date:2611220233 stat:DELIVRD err:000", 0)
    assert is_receipt(pdu)


@pytest.mark.parametrize(
    "text",
    ["id: call me", "Your id: 42, stat: ok", "stat:DELIVRD id:1", "hello", ""],
)
def test_a_message_is_not_a_receipt(text: str) -> None:
    assert not is_receipt(deliver(text, 0))


def test_a_ucs2_receipt_text() -> None:
    text = "id:88 submit date:2611220233 done date:2611220233 stat:DELIVRD err:000"
    parsed = parse_receipt(deliver(text.encode("utf-16-be"), RECEIPT, data_coding=8))
    assert parsed is not None
    assert parsed.message_id == "88"


@pytest.mark.parametrize(
    "pdu",
    [
        deliver("stat:DELIVRD"),  # no id at all
        deliver("id:1 stat:"),  # no state
        deliver("id:1 stat:SHRUGGED"),  # a state nobody defined
        deliver(b"\xff\xfe\x00\x01garbage", RECEIPT, data_coding=4),  # binary
        deliver(b"\x09\x00\x03", RECEIPT | 0x40),  # a UDH that overruns the message
        deliver("", RECEIPT, Tlv(Tag.MESSAGE_STATE, b"\x09")),  # an undefined message_state
        deliver("", RECEIPT, Tlv(Tag.MESSAGE_STATE, b"\x02\x02")),  # the wrong length
    ],
)
def test_unreadable_receipts_are_none_not_errors(pdu: DeliverSm) -> None:
    assert parse_receipt(pdu) is None


def test_an_enormous_id_is_kept_but_never_read_as_a_number() -> None:
    huge = "9" * 5000
    parsed = parse_receipt(deliver(b"", RECEIPT, message_payload_tlv(f"id:{huge} stat:DELIVRD")))
    assert parsed is not None
    assert parsed.message_id == huge
    assert id_keys(huge) == IdKeys(None, None)


def message_payload_tlv(text: str) -> Tlv:
    return Tlv(Tag.MESSAGE_PAYLOAD, text.encode("latin-1"))


@pytest.mark.parametrize(
    ("submitted", "receipted"),
    [
        ("0A1B", "2587"),  # hex in submit_sm_resp, decimal in the receipt
        ("2587", "a1b"),  # and the other way round, in lower case
        ("0000123", "123"),  # leading zeros dropped
        ("00ff", "FF"),  # case and zeros
    ],
)
def test_id_keys_meet_across_spellings(submitted: str, receipted: str) -> None:
    ours, theirs = id_keys(submitted), id_keys(receipted)
    readings = {ours.decimal, ours.hexadecimal} - {None}
    assert readings & ({theirs.decimal, theirs.hexadecimal} - {None})


def test_id_keys_of_ids_that_are_not_numbers() -> None:
    assert id_keys("0ebe53b6-fd23") == IdKeys(None, None)
    assert id_keys("12") == IdKeys("12", "18")
    assert id_keys("ff") == IdKeys(None, "255")
