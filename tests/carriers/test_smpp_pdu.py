"""Tests for verbal.carriers.smpp.pdu: the SMPP 3.4 PDU codec and the frame reader.

The golden vectors are written out field by field from the layouts in SMPP 3.4 §4 (header
§3.2), not produced by this codec or copied from another implementation.
"""

from dataclasses import fields

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verbal.carriers.smpp.pdu import (
    BindReceiver,
    BindReceiverResp,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    BindTransmitterResp,
    CommandId,
    CommandStatus,
    DataSm,
    DataSmResp,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    MessageState,
    Outbind,
    Pdu,
    PduError,
    PduReader,
    SubmitSm,
    SubmitSmResp,
    Tag,
    Tlv,
    Unbind,
    UnbindResp,
    UnknownPdu,
    decode,
    pdu_class,
)


def h(text: str) -> bytes:
    """Hex with spaces and comments stripped, so vectors can be laid out per field."""
    return bytes.fromhex("".join(line.split("#")[0] for line in text.splitlines()))


# --- golden vectors -----------------------------------------------------------------------

ENQUIRE_LINK = h("""
    00000010  # command_length 16: a header and nothing else
    00000015  # command_id enquire_link
    00000000  # command_status
    00000001  # sequence_number
""")

BIND_TRANSMITTER = h("""
    0000002F                # command_length 47
    00000002                # bind_transmitter
    00000000
    00000001
    534D505033544553 5400   # system_id "SMPP3TEST\\0"
    7365637265743038 00     # password "secret08\\0"
    5355424D49543100        # system_type "SUBMIT1\\0"
    34                      # interface_version 3.4
    01 01                   # addr_ton international, addr_npi ISDN
    00                      # address_range ""
""")

SUBMIT_SM = h("""
    0000003D                  # command_length 61
    00000004                  # submit_sm
    00000000
    00000002
    00                        # service_type ""
    05 00 56657262616C00      # source: TON alphanumeric, NPI unknown, "Verbal\\0"
    01 01 313535353030303230303000  # destination: international, ISDN, "15550002000\\0"
    00 00 00                  # esm_class, protocol_id, priority_flag
    00                        # schedule_delivery_time ""
    00                        # validity_period ""
    01                        # registered_delivery: receipt on success and failure
    00 00 00                  # replace_if_present_flag, data_coding, sm_default_msg_id
    05 48656C6C6F             # sm_length 5, "Hello"
    0204 0002 0007            # TLV user_message_reference = 7
""")

SUBMIT_SM_RESP = h("""
    00000017  # command_length 23
    80000004  # submit_sm_resp
    00000000
    00000002
    61626331323300  # message_id "abc123\\0"
""")

SUBMIT_SM_RESP_THROTTLED = h("""
    00000010  # no body: SMPP 3.4 §4.4.2 leaves it out of an error response
    80000004
    00000058  # ESME_RTHROTTLED
    00000009
""")

DELIVERY_RECEIPT = h("""
    00000042                   # command_length 66
    00000005                   # deliver_sm
    00000000
    0000002A                   # sequence_number 42
    00                         # service_type
    01 01 313535353030303230303000  # source "15550002000"
    05 00 56657262616C00       # destination "Verbal"
    04 00 00                   # esm_class 0x04: SMSC delivery receipt
    00 00 00 00 00 00          # schedule, validity, registered_delivery .. sm_default_msg_id
    00                         # sm_length 0: the receipt is all in the TLVs
    001E 0007 61626331323300   # receipted_message_id "abc123\\0"
    0427 0001 02               # message_state DELIVERED
""")

GENERIC_NACK = h("""
    00000010
    80000000  # generic_nack
    00000003  # ESME_RINVCMDID
    00000005
""")


def test_enquire_link_golden() -> None:
    assert EnquireLink(sequence_number=1).encode() == ENQUIRE_LINK
    assert decode(ENQUIRE_LINK) == EnquireLink(sequence_number=1)


def test_bind_transmitter_golden() -> None:
    pdu = BindTransmitter(
        sequence_number=1,
        system_id="SMPP3TEST",
        password="secret08",
        system_type="SUBMIT1",
        addr_ton=1,
        addr_npi=1,
    )
    assert pdu.encode() == BIND_TRANSMITTER
    assert decode(BIND_TRANSMITTER) == pdu


def test_submit_sm_golden() -> None:
    pdu = SubmitSm(
        sequence_number=2,
        source_addr_ton=5,
        source_addr="Verbal",
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr="15550002000",
        registered_delivery=1,
        short_message=b"Hello",
        tlvs=(Tlv.integer(Tag.USER_MESSAGE_REFERENCE, 7, 2),),
    )
    assert pdu.encode() == SUBMIT_SM
    assert decode(SUBMIT_SM) == pdu


def test_submit_sm_resp_golden() -> None:
    assert SubmitSmResp(sequence_number=2, message_id="abc123").encode() == SUBMIT_SM_RESP
    assert decode(SUBMIT_SM_RESP) == SubmitSmResp(sequence_number=2, message_id="abc123")


def test_error_submit_sm_resp_has_no_body() -> None:
    pdu = SubmitSmResp(command_status=CommandStatus.ESME_RTHROTTLED, sequence_number=9)
    assert pdu.encode() == SUBMIT_SM_RESP_THROTTLED
    assert decode(SUBMIT_SM_RESP_THROTTLED) == pdu


def test_delivery_receipt_golden() -> None:
    pdu = DeliverSm(
        sequence_number=42,
        source_addr_ton=1,
        source_addr_npi=1,
        source_addr="15550002000",
        dest_addr_ton=5,
        destination_addr="Verbal",
        esm_class=0x04,
        tlvs=(
            Tlv.cstring(Tag.RECEIPTED_MESSAGE_ID, "abc123"),
            Tlv.integer(Tag.MESSAGE_STATE, MessageState.DELIVERED, 1),
        ),
    )
    assert pdu.encode() == DELIVERY_RECEIPT
    decoded = decode(DELIVERY_RECEIPT)
    assert decoded == pdu
    receipted = decoded.tlv(Tag.RECEIPTED_MESSAGE_ID)
    state = decoded.tlv(Tag.MESSAGE_STATE)
    assert receipted is not None and receipted.as_cstring() == "abc123"
    assert state is not None and state.as_integer() == MessageState.DELIVERED
    assert decoded.tlv(Tag.NETWORK_ERROR_CODE) is None


def test_generic_nack_golden() -> None:
    pdu = GenericNack(command_status=CommandStatus.ESME_RINVCMDID, sequence_number=5)
    assert pdu.encode() == GENERIC_NACK
    assert decode(GENERIC_NACK) == pdu


# --- every PDU round-trips ----------------------------------------------------------------

ALL_PDUS: list[Pdu] = [
    BindTransmitter(sequence_number=1, system_id="esme", password="pw", system_type="VMA"),
    BindReceiver(sequence_number=2, system_id="e" * 15, password="p" * 8, address_range="^1555"),
    BindTransceiver(sequence_number=3, system_id="esme1", password="pwd1", addr_ton=1, addr_npi=1),
    BindTransmitterResp(sequence_number=1, system_id="SMSC"),
    BindReceiverResp(
        sequence_number=2, system_id="SMSC", tlvs=(Tlv.integer(Tag.SC_INTERFACE_VERSION, 0x34, 1),)
    ),
    BindTransceiverResp(sequence_number=3, command_status=CommandStatus.ESME_RINVPASWD),
    Outbind(sequence_number=4, system_id="smsc", password="secret"),
    Unbind(sequence_number=5),
    UnbindResp(sequence_number=5),
    EnquireLink(sequence_number=0x7FFFFFFF),
    EnquireLinkResp(sequence_number=0x7FFFFFFF),
    GenericNack(sequence_number=0, command_status=CommandStatus.ESME_RINVCMDLEN),
    SubmitSm(
        sequence_number=6,
        service_type="CMT",
        source_addr_ton=1,
        source_addr_npi=1,
        source_addr="4" * 20,
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr="15550002000",
        esm_class=0x43,
        protocol_id=0x7F,
        priority_flag=3,
        schedule_delivery_time="261122031810000+",
        validity_period="000001000000000R",
        registered_delivery=1,
        replace_if_present_flag=1,
        data_coding=8,
        sm_default_msg_id=255,
        short_message=bytes(range(254)),
        tlvs=(
            Tlv.integer(Tag.SAR_MSG_REF_NUM, 0xBEEF, 2),
            Tlv.integer(Tag.SAR_TOTAL_SEGMENTS, 3, 1),
            Tlv.integer(Tag.SAR_SEGMENT_SEQNUM, 1, 1),
            Tlv(0x1400, b"vendor-specific"),
        ),
    ),
    SubmitSm(sequence_number=7, tlvs=(Tlv(Tag.MESSAGE_PAYLOAD, b"x" * 65535),)),
    SubmitSmResp(sequence_number=6, message_id="m" * 64),
    DeliverSm(sequence_number=8, source_addr="15550002000", short_message=b"MO text"),
    DeliverSmResp(sequence_number=8),
    DataSm(
        sequence_number=9,
        source_addr="s" * 64,
        destination_addr="d" * 64,
        data_coding=3,
        tlvs=(Tlv(Tag.MESSAGE_PAYLOAD, "café".encode("latin-1")),),
    ),
    DataSmResp(sequence_number=9, message_id="data-1"),
]


@pytest.mark.parametrize("pdu", ALL_PDUS, ids=lambda pdu: type(pdu).__name__)
def test_every_pdu_round_trips(pdu: Pdu) -> None:
    frame = pdu.encode()
    assert int.from_bytes(frame[:4], "big") == len(frame)
    assert int.from_bytes(frame[4:8], "big") == pdu.command_id
    assert decode(frame) == pdu


def test_every_implemented_command_is_covered() -> None:
    covered = {pdu.command_id for pdu in ALL_PDUS}
    implemented = {command for command in CommandId if pdu_class(command) is not None}
    assert covered == implemented
    assert pdu_class(CommandId.SUBMIT_SM) is SubmitSm
    assert pdu_class(CommandId.QUERY_SM) is None


def test_response_answers_its_request() -> None:
    request = SubmitSm(sequence_number=77, short_message=b"x")
    response = request.response(message_id="id-1")
    assert response == SubmitSmResp(sequence_number=77, message_id="id-1")
    refusal = BindTransceiver(sequence_number=3).response(CommandStatus.ESME_RBINDFAIL)
    assert refusal == BindTransceiverResp(
        sequence_number=3, command_status=CommandStatus.ESME_RBINDFAIL
    )
    assert EnquireLink(sequence_number=4).response() == EnquireLinkResp(sequence_number=4)
    with pytest.raises(TypeError, match="Outbind has no response"):
        Outbind().response()


def test_passwords_stay_out_of_reprs() -> None:
    for pdu in (
        BindTransmitter(password="hunter2"),
        BindReceiver(password="hunter2"),
        BindTransceiver(password="hunter2"),
        Outbind(password="hunter2"),
    ):
        assert "hunter2" not in repr(pdu)
        assert "password='***'" in repr(pdu)


def test_status_names() -> None:
    assert CommandStatus.name_of(0x58) == "ESME_RTHROTTLED"
    assert CommandStatus.name_of(0x14) == "ESME_RMSGQFUL"
    assert CommandStatus.name_of(0x0400) == "0x00000400"  # vendor-specific range


def test_tlv_helpers() -> None:
    assert Tlv.integer(Tag.SAR_MSG_REF_NUM, 0x1234, 2).value == b"\x12\x34"
    assert Tlv.integer(Tag.NETWORK_ERROR_CODE, 0x030001, 3).as_integer() == 0x030001
    assert Tlv.cstring(Tag.RECEIPTED_MESSAGE_ID, "A1").value == b"A1\0"
    # Some SMSCs leave the NUL off receipted_message_id.
    assert Tlv(Tag.RECEIPTED_MESSAGE_ID, b"A1").as_cstring() == "A1"


def test_c_strings_carry_any_octet_via_latin1() -> None:
    pdu = BindTransmitter(sequence_number=1, system_id="ésme", system_type="ÿ")
    assert decode(pdu.encode()) == pdu


def test_error_response_with_a_body_still_decodes() -> None:
    # Not every SMSC leaves the body out of an error response.
    frame = h("00000011 80000004 00000045 00000003 00")
    assert decode(frame) == SubmitSmResp(
        command_status=CommandStatus.ESME_RSUBMITFAIL, sequence_number=3
    )


def test_a_response_with_no_body_decodes_to_defaults() -> None:
    frame = h("00000010 80000009 00000000 00000001")
    assert decode(frame) == BindTransceiverResp(sequence_number=1, system_id="")


# --- refusing to encode -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pdu", "status", "match"),
    [
        (SubmitSm(source_addr="1" * 21), CommandStatus.ESME_RINVSRCADR, "source_addr"),
        (SubmitSm(destination_addr="1" * 21), CommandStatus.ESME_RINVDSTADR, "destination_addr"),
        (DataSm(source_addr="1" * 65), CommandStatus.ESME_RINVSRCADR, "source_addr"),
        (BindTransmitter(system_id="s" * 16), CommandStatus.ESME_RINVSYSID, "system_id"),
        (BindTransmitter(password="p" * 9), CommandStatus.ESME_RINVPASWD, "password"),
        (BindTransmitter(system_type="t" * 13), CommandStatus.ESME_RINVSYSTYP, "system_type"),
        (SubmitSm(service_type="CMTCMT"), CommandStatus.ESME_RINVSERTYP, "service_type"),
        (SubmitSmResp(message_id="m" * 65), CommandStatus.ESME_RINVMSGID, "message_id"),
        (DeliverSmResp(message_id="x"), CommandStatus.ESME_RINVMSGID, "message_id"),
        (SubmitSm(source_addr="a\0b"), CommandStatus.ESME_RINVSRCADR, "NUL"),
        (SubmitSm(source_addr="€"), CommandStatus.ESME_RINVSRCADR, "Latin-1"),
        (SubmitSm(short_message=b"x" * 255), CommandStatus.ESME_RINVMSGLEN, "at most 254"),
        (SubmitSm(short_message="text"), CommandStatus.ESME_RINVMSGLEN, "must be bytes"),  # type: ignore[arg-type]
        (SubmitSm(esm_class=256), CommandStatus.ESME_RSYSERR, "esm_class"),
        (SubmitSm(data_coding=-1), CommandStatus.ESME_RSYSERR, "data_coding"),
        (BindTransmitter(addr_npi=None), CommandStatus.ESME_RSYSERR, "addr_npi"),  # type: ignore[arg-type]
        (EnquireLink(sequence_number=-1), CommandStatus.ESME_RSYSERR, "sequence_number"),
        (EnquireLink(sequence_number=2**32), CommandStatus.ESME_RSYSERR, "sequence_number"),
        (SubmitSm(tlvs=(Tlv(0x10000, b""),)), CommandStatus.ESME_RSYSERR, "TLV"),
        (SubmitSm(tlvs=(Tlv(0x0424, b"x" * 65536),)), CommandStatus.ESME_RSYSERR, "TLV"),
    ],
)
def test_encode_refuses_what_cannot_be_sent(pdu: Pdu, status: int, match: str) -> None:
    with pytest.raises(PduError, match=match) as caught:
        pdu.encode()
    assert caught.value.command_status == status
    assert caught.value.command_id == pdu.command_id


def test_longest_fields_that_fit() -> None:
    pdu = SubmitSm(
        service_type="CMTAB",
        source_addr="1" * 20,
        destination_addr="2" * 20,
        schedule_delivery_time="1" * 16,
        short_message=b"x" * 254,
    )
    assert decode(pdu.encode()) == pdu


# --- malformed input ----------------------------------------------------------------------


def frame_of(command_id: int, body: bytes, sequence_number: int = 1, status: int = 0) -> bytes:
    header = (16 + len(body)).to_bytes(4, "big") + command_id.to_bytes(4, "big")
    return header + status.to_bytes(4, "big") + sequence_number.to_bytes(4, "big") + body


def bind_body(system_id: bytes = b"id\0", password: bytes = b"pw\0") -> bytes:
    return system_id + password + b"\0" + b"\x34\x00\x00" + b"\0"


@pytest.mark.parametrize(
    ("frame", "status", "match"),
    [
        # A C-string that runs to the end of the body without its NUL.
        (frame_of(0x02, b"esme"), CommandStatus.ESME_RINVCMDLEN, "system_id"),
        (
            frame_of(0x02, bind_body(system_id=b"s" * 16 + b"\0")),
            CommandStatus.ESME_RINVSYSID,
            "system_id",
        ),
        (
            frame_of(0x02, bind_body(password=b"p" * 9 + b"\0")),
            CommandStatus.ESME_RINVPASWD,
            "password",
        ),
        (frame_of(0x02, b"id\0pw\0\0"), CommandStatus.ESME_RINVCMDLEN, "interface_version"),
        (frame_of(0x80000004, b"m" * 65 + b"\0"), CommandStatus.ESME_RINVMSGID, "message_id"),
        (
            frame_of(0x04, b"\0\x01\x01" + b"1" * 21 + b"\0"),
            CommandStatus.ESME_RINVSRCADR,
            "source_addr",
        ),
        (
            frame_of(0x04, SUBMIT_SM[16:-12] + b"\x09abc"),
            CommandStatus.ESME_RINVMSGLEN,
            "sm_length",
        ),
        (
            frame_of(0x04, SUBMIT_SM[16:-12] + b"\xff" + b"x" * 255),
            CommandStatus.ESME_RINVMSGLEN,
            "sm_length",
        ),
        (frame_of(0x04, SUBMIT_SM[16:-12]), CommandStatus.ESME_RINVCMDLEN, "sm_length"),
        (frame_of(0x04, SUBMIT_SM[16:-3]), CommandStatus.ESME_RINVOPTPARSTREAM, "stray"),
        (
            frame_of(0x04, SUBMIT_SM[16:-6] + b"\x02\x04\x00\x05abc"),
            CommandStatus.ESME_RINVOPTPARSTREAM,
            "claims 5",
        ),
        (frame_of(0x15, b"\x00"), CommandStatus.ESME_RINVOPTPARSTREAM, "stray"),
    ],
    ids=[
        "c-string-without-nul",
        "system_id-too-long",
        "password-too-long",
        "bind-cut-short",
        "message_id-too-long",
        "source_addr-too-long",
        "sm_length-overruns-body",
        "sm_length-255",
        "no-sm_length",
        "stray-octets-after-tlvs",
        "tlv-overruns-body",
        "enquire_link-with-a-body",
    ],
)
def test_malformed_bodies_are_refused_with_the_right_status(
    frame: bytes, status: int, match: str
) -> None:
    with pytest.raises(PduError, match=match) as caught:
        decode(frame)
    error = caught.value
    assert error.command_status == status
    assert not error.fatal
    assert error.command_id == int.from_bytes(frame[4:8], "big")
    assert error.sequence_number == 1


def test_decode_checks_the_frame_length() -> None:
    with pytest.raises(PduError, match="not even a PDU header") as short:
        decode(ENQUIRE_LINK[:15])
    assert short.value.command_status == CommandStatus.ESME_RINVCMDLEN
    with pytest.raises(PduError, match="does not match") as long:
        decode(ENQUIRE_LINK + b"\0")
    assert long.value.fatal


def test_unknown_commands_decode_raw() -> None:
    query_sm = frame_of(CommandId.QUERY_SM, b"id\0\0\0\0", sequence_number=12)
    pdu = decode(query_sm)
    assert pdu == UnknownPdu(CommandId.QUERY_SM, 0, 12, b"id\0\0\0\0")
    assert pdu.encode() == query_sm
    vendor = frame_of(0x00010200, b"")
    assert decode(vendor) == UnknownPdu(0x00010200, 0, 1, b"")


# --- the frame reader ---------------------------------------------------------------------

STREAM = [
    ENQUIRE_LINK,
    BIND_TRANSMITTER,
    SUBMIT_SM,
    SUBMIT_SM_RESP,
    SUBMIT_SM_RESP_THROTTLED,
    DELIVERY_RECEIPT,
    GENERIC_NACK,
]


def read_all(reader: PduReader) -> list[object]:
    out: list[object] = []
    while (pdu := reader.next_pdu()) is not None:
        out.append(pdu)
    return out


def test_reader_handles_whole_split_and_joined_frames() -> None:
    expected = [decode(frame) for frame in STREAM]
    joined = b"".join(STREAM)

    whole = PduReader()
    whole.feed(joined)
    assert read_all(whole) == expected

    byte_by_byte = PduReader()
    got: list[object] = []
    for i in range(len(joined)):
        byte_by_byte.feed(joined[i : i + 1])
        got += read_all(byte_by_byte)
    assert got == expected

    for frame in STREAM:  # each frame followed by part of the next
        reader = PduReader()
        reader.feed(frame + ENQUIRE_LINK[:7])
        assert read_all(reader) == [decode(frame)]
        reader.feed(ENQUIRE_LINK[7:])
        assert read_all(reader) == [decode(ENQUIRE_LINK)]


@pytest.mark.parametrize("length", [0, 1, 15])
def test_command_length_below_the_header_is_fatal(length: int) -> None:
    reader = PduReader()
    reader.feed(length.to_bytes(4, "big") + h("00000015 00000000 0000000B"))
    with pytest.raises(PduError, match=f"command_length {length} ") as caught:
        reader.next_pdu()
    assert caught.value.fatal
    assert caught.value.command_status == CommandStatus.ESME_RINVCMDLEN
    assert caught.value.sequence_number == 11  # readable, so a generic_nack can carry it
    # The stream can't be followed any more: the reader stays failed.
    reader.feed(ENQUIRE_LINK)
    with pytest.raises(PduError):
        reader.next_pdu()


def test_oversized_command_length_is_refused_before_the_body_arrives() -> None:
    # A 4 GiB claim: refused from the header alone, nothing of it buffered.
    reader = PduReader()
    reader.feed(h("FFFFFFFF 00000004 00000000 00000001"))
    with pytest.raises(PduError, match=r"outside 16\.\.") as caught:
        reader.next_pdu()
    assert caught.value.fatal


def test_max_pdu_size_is_configurable() -> None:
    reader = PduReader(max_pdu_size=60)
    reader.feed(SUBMIT_SM)  # 61 octets
    with pytest.raises(PduError, match=r"outside 16\.\.60"):
        reader.next_pdu()
    exact = PduReader(max_pdu_size=61)
    exact.feed(SUBMIT_SM)
    assert read_all(exact) == [decode(SUBMIT_SM)]
    with pytest.raises(ValueError, match="at least 16"):
        PduReader(max_pdu_size=15)


def test_the_largest_message_payload_fits_the_default_limit() -> None:
    pdu = SubmitSm(
        source_addr="1" * 20,
        destination_addr="2" * 20,
        tlvs=(Tlv(Tag.MESSAGE_PAYLOAD, b"x" * 65535),),
    )
    reader = PduReader()
    reader.feed(pdu.encode())
    assert read_all(reader) == [pdu]


def test_reader_reads_on_after_a_malformed_body() -> None:
    bad = frame_of(0x04, b"\0\x01\x01" + b"1" * 21 + b"\0", sequence_number=3)
    reader = PduReader()
    reader.feed(ENQUIRE_LINK + bad + SUBMIT_SM_RESP)
    assert reader.next_pdu() == decode(ENQUIRE_LINK)
    with pytest.raises(PduError) as caught:
        reader.next_pdu()
    assert not caught.value.fatal
    assert caught.value.sequence_number == 3
    assert reader.next_pdu() == decode(SUBMIT_SM_RESP)
    assert reader.next_pdu() is None


# --- properties -----------------------------------------------------------------------------

cstrings = st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=255), max_size=20)
octets = st.integers(min_value=0, max_value=255)
tlvs = st.lists(st.builds(Tlv, st.integers(0, 0xFFFF), st.binary(max_size=40)), max_size=4).map(
    tuple
)
submit_sms = st.builds(
    SubmitSm,
    sequence_number=st.integers(1, 0x7FFFFFFF),
    service_type=st.text(alphabet="ABCXYZ", max_size=5),
    source_addr_ton=octets,
    source_addr=cstrings,
    destination_addr=cstrings,
    esm_class=octets,
    data_coding=octets,
    short_message=st.binary(max_size=254),
    tlvs=tlvs,
)


@settings(max_examples=300)
@given(submit_sms)
def test_submit_sm_round_trips(pdu: SubmitSm) -> None:
    assert decode(pdu.encode()) == pdu


@settings(max_examples=300)
@given(st.lists(st.binary(max_size=80), max_size=6))
def test_any_bytes_parse_or_raise_pdu_error(chunks: list[bytes]) -> None:
    # h11's fuzzing invariant: hostile input may only ever raise the protocol's error.
    reader = PduReader(max_pdu_size=256)
    for chunk in chunks:
        reader.feed(chunk)
        try:
            while reader.next_pdu() is not None:
                pass
        except PduError as error:
            if error.fatal:
                return


@settings(max_examples=300)
@given(st.sampled_from(STREAM), st.integers(16, 200), st.binary(min_size=1, max_size=4))
def test_corrupted_frames_parse_or_raise_pdu_error(frame: bytes, at: int, junk: bytes) -> None:
    at = min(at, len(frame))
    corrupted = frame[:at] + junk + frame[at + len(junk) :]
    length = len(corrupted).to_bytes(4, "big")
    try:
        decode(length + corrupted[4:])
    except PduError as error:
        assert error.command_status in CommandStatus.__members__.values()


def test_dataclass_fields_are_the_wire_fields_in_spec_order() -> None:
    # A guard on the declarative layout: field order is wire order.
    names = [f.name for f in fields(SubmitSm)][3:]
    assert names == [
        "service_type",
        "source_addr_ton",
        "source_addr_npi",
        "source_addr",
        "dest_addr_ton",
        "dest_addr_npi",
        "destination_addr",
        "esm_class",
        "protocol_id",
        "priority_flag",
        "schedule_delivery_time",
        "validity_period",
        "registered_delivery",
        "replace_if_present_flag",
        "data_coding",
        "sm_default_msg_id",
        "short_message",
    ]
