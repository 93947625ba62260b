"""The RTP core with no sockets: packets, our stream's numbering, RFC 4733 events."""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.media.conftest import sipp_capture
from verbal.media.rtp import (
    DigitReceiver,
    RtpError,
    RtpPacket,
    RtpSender,
    TelephoneEvent,
    parse,
)


def test_a_packet_header_is_what_rfc_3550_draws() -> None:
    # V=2, no padding, extension or CSRC; marker set, PT 8, seq 0x1234, ts 0x01020304, SSRC.
    wire = RtpPacket(8, 0x1234, 0x01020304, 0xCAFEBABE, b"\xd5", marker=True).encode()
    assert wire == bytes.fromhex("80 88 1234 01020304 cafebabe d5")
    assert parse(wire) == RtpPacket(8, 0x1234, 0x01020304, 0xCAFEBABE, b"\xd5", marker=True)


def test_csrcs_extension_and_padding_are_skipped() -> None:
    header = struct.pack("!BBHII", 0x80 | 0x20 | 0x10 | 2, 0, 1, 2, 3)
    csrcs = struct.pack("!II", 10, 11)
    extension = struct.pack("!HH", 0xBEDE, 1) + b"\x01\x02\x03\x04"
    packet = parse(header + csrcs + extension + b"payload" + b"\x00\x00\x03")
    assert packet.payload == b"payload"
    assert (packet.sequence, packet.timestamp, packet.ssrc) == (1, 2, 3)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x80\x00\x00",  # shorter than a header
        bytes(12),  # version 0
        b"\x40" + bytes(11),  # version 1
        b"\x8f" + bytes(11),  # 15 CSRCs announced, none there
        b"\x90" + bytes(11) + b"\x00\x00",  # extension header cut short
        b"\x90" + bytes(11) + b"\x00\x00\x00\x09",  # extension longer than the packet
        b"\xa0" + bytes(11),  # padding flag, no padding octet
        b"\xa0" + bytes(11) + b"ab\x00",  # a zero padding count
        b"\xa0" + bytes(11) + b"ab\x09",  # more padding than payload
    ],
)
def test_what_is_not_rtp_is_an_rtp_error(data: bytes) -> None:
    with pytest.raises(RtpError):
        parse(data)


@given(st.binary(max_size=80))
def test_any_bytes_parse_or_raise_rtp_error(data: bytes) -> None:
    try:
        packet = parse(data)
    except RtpError:
        return
    assert len(packet.payload) <= len(data) - 12


def test_our_stream_numbers_every_packet_and_keeps_time_when_silent() -> None:
    sender = RtpSender(0, 101, rng=random.Random(1))
    first = parse(sender.audio(b"\xff" * 160))
    assert first.marker and first.ssrc == sender.ssrc
    second = parse(sender.audio(b"\xff" * 160))
    assert not second.marker
    assert (second.sequence - first.sequence) % 65536 == 1
    assert (second.timestamp - first.timestamp) % 2**32 == 160
    sender.skip()  # a tick with nothing sent
    third = parse(sender.audio(b"\xff" * 160))
    assert third.marker  # a new talkspurt
    assert (third.sequence - second.sequence) % 65536 == 1
    assert (third.timestamp - second.timestamp) % 2**32 == 320


def test_sequence_and_timestamp_wrap() -> None:
    sender = RtpSender(8)
    sender.sequence, sender.timestamp = 0xFFFF, 0xFFFFFF60
    parse(sender.audio(b"x"))
    packet = parse(sender.audio(b"x"))
    assert (packet.sequence, packet.timestamp) == (0, 0)


def test_a_digit_is_a_start_updates_and_three_ends() -> None:
    sender = RtpSender(0, 101)
    parse(sender.audio(b"\xff" * 160))
    sender.queue_digits("5", duration=800, gap=320)
    packets = []
    while sender.sending_digits:
        packets.append(parse(sender.digit_tick(b"\xff" * 160)))
    events = [p for p in packets if p.payload_type == 101]
    assert [TelephoneEvent.parse(p.payload) for p in events] == [
        TelephoneEvent(5, False, 10, 160),
        TelephoneEvent(5, False, 10, 320),
        TelephoneEvent(5, False, 10, 480),
        TelephoneEvent(5, False, 10, 640),
        TelephoneEvent(5, True, 10, 800),
        TelephoneEvent(5, True, 10, 800),
        TelephoneEvent(5, True, 10, 800),
    ]
    assert {p.timestamp for p in events} == {events[0].timestamp}  # the event's start
    assert [p.marker for p in events] == [True] + [False] * 6
    sequences = [p.sequence for p in packets]
    assert sequences == list(range(sequences[0], sequences[0] + len(packets)))
    gap = packets[len(events) :]
    assert [p.payload_type for p in gap] == [0, 0]  # 320 samples of audio after it
    assert gap[0].marker  # audio after an event starts a talkspurt
    after = parse(sender.audio(b"\xff" * 160))
    # Time went on during the event: 7 event ticks and 2 gap ticks after the start.
    assert (after.timestamp - events[0].timestamp) % 2**32 == 9 * 160


def test_digits_need_a_negotiated_event_type_and_real_keys() -> None:
    with pytest.raises(ValueError, match="telephone-event"):
        RtpSender(0).queue_digits("1")
    with pytest.raises(ValueError, match="DTMF key"):
        RtpSender(0, 101).queue_digits("1x")
    with pytest.raises(ValueError):
        RtpSender(0, 101).queue_digits("1", duration=10)


def test_what_we_send_is_read_back_once_per_digit() -> None:
    sender, receiver = RtpSender(0, 101), DigitReceiver()
    sender.queue_digits("1*#Ad0", duration=400, gap=160)
    keys = []
    while sender.sending_digits:
        packet = parse(sender.digit_tick(b"\xff" * 160))
        if packet.payload_type == 101 and (key := receiver.receive(packet)):
            keys.append(key)
    assert "".join(keys) == "1*#AD0"


def test_sipps_captured_digits_repeat_by_their_end_bits() -> None:
    # sipp replays these byte for byte: "4", "4", "#" arrive with one SSRC, and both 4s
    # with the same timestamp. Only the end bits tell the two 4s apart.
    four, pound = sipp_capture("dtmf_2833_4.pcap"), sipp_capture("dtmf_2833_pound.pcap")
    receiver = DigitReceiver()
    keys = [key for data in four + four + pound if (key := receiver.receive(parse(data)))]
    assert keys == ["4", "4", "#"]


def test_an_event_whose_ends_were_lost_is_reported_when_the_next_begins() -> None:
    four, pound = sipp_capture("dtmf_2833_4.pcap"), sipp_capture("dtmf_2833_pound.pcap")
    receiver = DigitReceiver()
    keys = [key for data in four[:7] + pound if (key := receiver.receive(parse(data)))]
    assert keys == ["4", "#"]


def test_events_beyond_the_keypad_are_ignored() -> None:
    flash = RtpPacket(101, 1, 1, 1, TelephoneEvent(16, True, 10, 800).encode())
    assert DigitReceiver().receive(flash) is None
    with pytest.raises(RtpError):
        DigitReceiver().receive(RtpPacket(101, 1, 1, 1, b"\x01"))
