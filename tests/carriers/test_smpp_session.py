"""Tests for verbal.carriers.smpp.session: the sans-I/O SMPP session, both roles.

`Pair` joins an ESME and an SMSC session in memory: what one sends, the other receives,
with a fake clock the test moves by hand. Nothing here opens a socket or sleeps.
"""

import ast
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import verbal.carriers.smpp as smpp_package
from verbal.carriers.smpp.pdu import (
    BindReceiver,
    BindRequest,
    BindTransceiver,
    BindTransmitter,
    CommandStatus,
    DataSm,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Outbind,
    PduError,
    Request,
    Response,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
    UnknownPdu,
)
from verbal.carriers.smpp.session import (
    BindRequested,
    Bound,
    ConnectionClosed,
    EnquireLinkDue,
    Event,
    InactivityTimedOut,
    LocalProtocolError,
    ProtocolError,
    RequestReceived,
    RequestTimedOut,
    ResponseReceived,
    Role,
    Session,
    SessionConfig,
    State,
    UnbindRequested,
    Unbound,
    UnmatchedResponse,
)

SUBMIT = SubmitSm(source_addr="Verbal", destination_addr="15550002000", short_message=b"hi")
DELIVER = DeliverSm(source_addr="15550002000", destination_addr="Verbal", short_message=b"yo")


@dataclass
class Pair:
    """An ESME and an SMSC session wired back to back, on a clock the test sets."""

    config: SessionConfig = field(default_factory=SessionConfig)
    now: float = 0.0

    def __post_init__(self) -> None:
        self.esme = Session(Role.ESME, self.config, now=self.now)
        self.smsc = Session(Role.SMSC, self.config, now=self.now)

    def esme_sends(self, pdu: Request | Response) -> list[Event]:
        return self.smsc.receive_data(self.esme.send(pdu, now=self.now), now=self.now)

    def smsc_sends(self, pdu: Request | Response) -> list[Event]:
        return self.esme.receive_data(self.smsc.send(pdu, now=self.now), now=self.now)

    def bind(self, bind: BindRequest | None = None) -> None:
        [requested] = self.esme_sends(bind or BindTransceiver(system_id="esme", password="pw"))
        assert isinstance(requested, BindRequested)
        [bound] = self.smsc_sends(requested.request.response(system_id="SMSC"))
        assert isinstance(bound, Bound)

    def submit(self, pdu: SubmitSm = SUBMIT) -> Request:
        [received] = self.esme_sends(pdu)
        assert isinstance(received, RequestReceived)
        return received.request


def bound_pair(**config: float | int | None) -> Pair:
    pair = Pair(SessionConfig(**config))  # type: ignore[arg-type]
    pair.bind()
    return pair


def only(events: list[Event]) -> Event:
    assert len(events) == 1, events
    return events[0]


# --- binding ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bind", "state"),
    [
        (BindTransmitter(system_id="esme"), State.BOUND_TX),
        (BindReceiver(system_id="esme"), State.BOUND_RX),
        (BindTransceiver(system_id="esme"), State.BOUND_TRX),
    ],
)
def test_bind_handshake(bind: BindRequest, state: State) -> None:
    pair = Pair()
    assert pair.esme.state is pair.smsc.state is State.OPEN
    event = only(pair.esme_sends(bind))
    assert isinstance(event, BindRequested)
    assert event.request.system_id == "esme"
    assert event.request.sequence_number == 1
    assert pair.esme.state is pair.smsc.state is State.OPEN  # until the response

    bound = only(pair.smsc_sends(event.request.response(system_id="SMSC")))
    assert isinstance(bound, Bound)
    assert bound.request.sequence_number == 1
    assert bound.response.command_status == CommandStatus.ESME_ROK
    assert pair.esme.state is pair.smsc.state is state


def test_refused_bind_leaves_both_open_and_may_be_retried() -> None:
    pair = Pair()
    requested = only(pair.esme_sends(BindTransceiver(system_id="esme", password="wrong")))
    assert isinstance(requested, BindRequested)
    refusal = requested.request.response(CommandStatus.ESME_RINVPASWD)
    event = only(pair.smsc_sends(refusal))
    assert isinstance(event, ResponseReceived)
    assert event.response.command_status == CommandStatus.ESME_RINVPASWD
    assert pair.esme.state is pair.smsc.state is State.OPEN
    pair.bind()
    assert pair.esme.state is State.BOUND_TRX


def test_binding_twice_is_refused() -> None:
    pair = bound_pair()
    with pytest.raises(LocalProtocolError, match="bind_transceiver is not allowed while BOUND"):
        pair.esme.send(BindTransceiver(), now=0)
    # A peer that binds again anyway is told it is already bound.
    again = BindTransmitter(sequence_number=50).encode()
    error = only(pair.smsc.receive_data(again, now=0))
    assert isinstance(error, ProtocolError)
    assert error.reply == BindTransmitter(sequence_number=50).response(CommandStatus.ESME_RALYBND)
    assert error.reply is not None
    pair.smsc.send(error.reply, now=0)
    assert pair.smsc.state is State.BOUND_TRX  # the refusal changes nothing


def test_one_bind_at_a_time() -> None:
    pair = Pair()
    pair.esme.send(BindTransceiver(), now=0)
    with pytest.raises(LocalProtocolError, match="already waiting"):
        pair.esme.send(BindTransmitter(), now=0)
    smsc = Session(Role.SMSC, now=0)
    first = only(smsc.receive_data(BindTransceiver(sequence_number=1).encode(), now=0))
    assert isinstance(first, BindRequested)
    second = only(smsc.receive_data(BindTransmitter(sequence_number=2).encode(), now=0))
    assert isinstance(second, ProtocolError)
    assert second.reply is not None
    assert second.reply.command_status == CommandStatus.ESME_RINVBNDSTS
    smsc.send(second.reply, now=0)
    smsc.send(first.request.response(), now=0)  # the first bind still completes
    assert smsc.state is State.BOUND_TRX


def test_outbind_then_bind_receiver() -> None:
    pair = Pair()
    event = only(pair.smsc_sends(Outbind(system_id="smsc", password="pw")))
    assert isinstance(event, RequestReceived)
    assert isinstance(event.request, Outbind)
    assert pair.smsc.next_deadline() == pair.config.inactivity_timeout  # outbind awaits nothing
    pair.bind(BindReceiver(system_id="esme"))
    assert pair.esme.state is State.BOUND_RX


# --- legality -----------------------------------------------------------------------------


def test_messages_flow_both_ways_on_a_transceiver() -> None:
    pair = bound_pair()
    submitted = pair.submit()
    response = only(pair.smsc_sends(submitted.response(message_id="m1")))
    assert isinstance(response, ResponseReceived)
    assert response.request == submitted
    assert response.response == SubmitSmResp(
        sequence_number=submitted.sequence_number, message_id="m1"
    )

    delivered = only(pair.smsc_sends(DELIVER))
    assert isinstance(delivered, RequestReceived)
    acked = only(pair.esme_sends(delivered.request.response()))
    assert isinstance(acked, ResponseReceived)
    assert isinstance(acked.response, DeliverSmResp)

    data = only(pair.esme_sends(DataSm(destination_addr="1")))
    assert isinstance(data, RequestReceived)


@pytest.mark.parametrize(
    ("bind", "role", "pdu", "match"),
    [
        (None, Role.ESME, SUBMIT, "submit_sm is not allowed while OPEN"),
        (BindReceiver(), Role.ESME, SUBMIT, "submit_sm is not allowed while BOUND_RX"),
        (BindTransmitter(), Role.SMSC, DELIVER, "deliver_sm is not allowed while BOUND_TX"),
        (None, Role.ESME, Unbind(), "unbind is not allowed while OPEN"),
        (None, Role.ESME, Outbind(), "an ESME never sends outbind"),
        (None, Role.SMSC, BindTransceiver(), "an SMSC never sends bind_transceiver"),
        (BindTransceiver(), Role.SMSC, SUBMIT, "an SMSC never sends submit_sm"),
        (BindTransceiver(), Role.ESME, DELIVER, "an ESME never sends deliver_sm"),
    ],
)
def test_illegal_sends_raise(
    bind: BindRequest | None, role: Role, pdu: Request, match: str
) -> None:
    pair = Pair()
    if bind is not None:
        pair.bind(bind)
    session = pair.esme if role is Role.ESME else pair.smsc
    with pytest.raises(LocalProtocolError, match=match):
        session.send(pdu, now=0)


@pytest.mark.parametrize(
    ("bind", "receiver", "pdu", "expected_reply"),
    [
        # A request the peer may send, in the wrong state: its own response, RINVBNDSTS.
        (None, Role.SMSC, SUBMIT, SubmitSmResp(command_status=0x04, sequence_number=9)),
        (
            BindReceiver(),
            Role.SMSC,
            SUBMIT,
            SubmitSmResp(command_status=0x04, sequence_number=9),
        ),
        (
            BindTransmitter(),
            Role.ESME,
            DELIVER,
            DeliverSmResp(command_status=0x04, sequence_number=9),
        ),
        (None, Role.SMSC, Unbind(), UnbindResp(command_status=0x04, sequence_number=9)),
        # Outbind has no response type, so the refusal is a generic_nack.
        (BindTransceiver(), Role.ESME, Outbind(), GenericNack(command_status=4, sequence_number=9)),
        # A request the peer's role never sends: generic_nack, ESME_RINVCMDID.
        (BindTransceiver(), Role.ESME, SUBMIT, GenericNack(command_status=3, sequence_number=9)),
        (BindTransceiver(), Role.SMSC, DELIVER, GenericNack(command_status=3, sequence_number=9)),
        (None, Role.ESME, BindTransmitter(), GenericNack(command_status=3, sequence_number=9)),
    ],
)
def test_illegal_requests_get_the_right_refusal(
    bind: BindRequest | None, receiver: Role, pdu: Request, expected_reply: Response
) -> None:
    pair = Pair()
    if bind is not None:
        pair.bind(bind)
    session = pair.esme if receiver is Role.ESME else pair.smsc
    state = session.state
    error = only(session.receive_data(type(pdu)(sequence_number=9).encode(), now=0))
    assert isinstance(error, ProtocolError)
    assert not error.fatal
    assert error.reply == expected_reply
    assert error.command_status == expected_reply.command_status
    session.send(error.reply, now=0)  # the session accepts its own refusal
    assert session.state is state


def test_enquire_link_is_answered_in_open_and_bound_states() -> None:
    pair = Pair()
    link = only(pair.esme_sends(EnquireLink()))
    assert isinstance(link, RequestReceived)
    answer = only(pair.smsc_sends(link.request.response()))
    assert isinstance(answer, ResponseReceived)
    assert isinstance(answer.response, EnquireLinkResp)
    pair.bind()
    from_smsc = only(pair.smsc_sends(EnquireLink()))
    assert isinstance(from_smsc, RequestReceived)
    assert isinstance(only(pair.esme_sends(from_smsc.request.response())), ResponseReceived)


# --- responses ----------------------------------------------------------------------------


def test_responses_match_requests_in_any_order() -> None:
    pair = bound_pair()
    requests = [pair.submit(SubmitSm(short_message=bytes([n]))) for n in range(5)]
    for request in reversed(requests):
        event = only(pair.smsc_sends(request.response(message_id=f"id{request.sequence_number}")))
        assert isinstance(event, ResponseReceived)
        assert event.request == request
        assert isinstance(event.response, SubmitSmResp)
        assert event.response.message_id == f"id{request.sequence_number}"


def test_generic_nack_answers_the_request_it_names() -> None:
    pair = bound_pair(window=1)
    request = pair.submit()
    assert not pair.esme.can_send()
    nack = GenericNack(
        command_status=CommandStatus.ESME_RINVCMDLEN, sequence_number=request.sequence_number
    )
    event = only(pair.smsc_sends(nack))
    assert event == ResponseReceived(request, nack)
    assert pair.esme.can_send()


def test_responses_nobody_waits_for() -> None:
    pair = bound_pair()
    stray = SubmitSmResp(sequence_number=999, message_id="late")
    assert only(pair.esme.receive_data(stray.encode(), now=0)) == UnmatchedResponse(stray)
    unknown = UnknownPdu(0x80000003, 0, 5, b"")  # a query_sm_resp we never asked for
    assert only(pair.esme.receive_data(unknown.encode(), now=0)) == UnmatchedResponse(unknown)


def test_a_response_of_the_wrong_type_does_not_consume_the_request() -> None:
    pair = bound_pair()
    request = pair.submit()
    wrong = DeliverSmResp(sequence_number=request.sequence_number)
    error = only(pair.esme.receive_data(wrong.encode(), now=0))
    assert isinstance(error, ProtocolError)
    assert "deliver_sm_resp" in error.description and error.reply is None
    event = only(pair.smsc_sends(request.response(message_id="ok")))
    assert isinstance(event, ResponseReceived)


def test_sending_responses_is_checked() -> None:
    pair = bound_pair()
    with pytest.raises(LocalProtocolError, match="no request with sequence_number 77"):
        pair.smsc.send(SubmitSmResp(sequence_number=77), now=0)
    request = pair.submit()
    with pytest.raises(LocalProtocolError, match="deliver_sm_resp does not answer submit_sm"):
        pair.smsc.send(DeliverSmResp(sequence_number=request.sequence_number), now=0)
    pair.smsc.send(request.response(message_id="1"), now=0)
    with pytest.raises(LocalProtocolError, match="no request"):
        pair.smsc.send(request.response(message_id="1"), now=0)  # answered already


# --- sequence numbers and the window --------------------------------------------------------


def test_sequence_numbers_count_up_from_one() -> None:
    pair = Pair()
    pair.bind()  # 1
    assert [pair.submit().sequence_number for _ in range(3)] == [2, 3, 4]
    assert pair.esme.next_sequence_number() == 5
    assert pair.submit().sequence_number == 6  # 5 was reserved by the caller
    assert pair.submit(SubmitSm(sequence_number=5)).sequence_number == 5


def test_sequence_numbers_wrap_and_skip_numbers_in_use() -> None:
    pair = bound_pair()
    pair.esme._next_sequence_number = 0x7FFFFFFE  # as if two billion requests had gone by
    held = [pair.submit() for _ in range(2)]
    assert [r.sequence_number for r in held] == [0x7FFFFFFE, 0x7FFFFFFF]
    assert pair.submit().sequence_number == 1  # wraps past 0x7FFFFFFF, never 0
    pair.esme._next_sequence_number = 0x7FFFFFFE
    assert pair.submit().sequence_number == 2  # numbers still outstanding are skipped


def test_explicit_sequence_numbers_are_checked() -> None:
    pair = bound_pair()
    request = pair.submit()
    for bad in (request.sequence_number, 0x80000000, -1):
        with pytest.raises(LocalProtocolError, match="out of range or in use"):
            pair.esme.send(SubmitSm(sequence_number=bad), now=0)


def test_window_limits_outstanding_requests() -> None:
    pair = bound_pair()  # default window 10
    requests = [pair.submit() for _ in range(10)]
    assert not pair.esme.can_send()
    with pytest.raises(LocalProtocolError, match="window of 10 requests is full"):
        pair.esme.send(SUBMIT, now=0)
    # Control PDUs still get through a full window.
    pair.esme_sends(EnquireLink())
    pair.smsc_sends(requests[3].response(message_id="x"))
    assert pair.esme.can_send()
    pair.submit()
    assert not pair.esme.can_send()


def test_a_pdu_that_fails_to_encode_uses_no_window() -> None:
    pair = bound_pair(window=1)
    with pytest.raises(PduError):
        pair.esme.send(SubmitSm(source_addr="x" * 30), now=0)
    assert pair.esme.can_send()


def test_can_send_needs_a_bound_session() -> None:
    pair = Pair()
    assert not pair.esme.can_send()
    pair.bind()
    assert pair.esme.can_send()


# --- unbinding ------------------------------------------------------------------------------


def test_unbind_handshake_esme_first() -> None:
    pair = bound_pair()
    requested = only(pair.esme_sends(Unbind()))
    assert isinstance(requested, UnbindRequested)
    assert not pair.esme.can_send()
    with pytest.raises(LocalProtocolError, match="while unbinding"):
        pair.esme.send(SUBMIT, now=0)
    with pytest.raises(LocalProtocolError, match="while unbinding"):
        pair.smsc.send(DELIVER, now=0)

    unbound = only(pair.smsc_sends(requested.request.response()))
    assert isinstance(unbound, Unbound)
    assert pair.esme.state is pair.smsc.state is State.UNBOUND
    # Anything after that is refused.
    error = only(pair.smsc.receive_data(SubmitSm(sequence_number=40).encode(), now=0))
    assert isinstance(error, ProtocolError)
    assert error.reply == SubmitSmResp(command_status=4, sequence_number=40)


def test_unbind_from_the_smsc_with_requests_in_flight() -> None:
    pair = bound_pair()
    request = pair.submit()
    requested = only(pair.smsc_sends(Unbind()))
    assert isinstance(requested, UnbindRequested)
    # Requests already in flight are still answered and matched.
    event = only(pair.smsc_sends(request.response(message_id="m")))
    assert isinstance(event, ResponseReceived)
    assert isinstance(only(pair.esme_sends(requested.request.response())), Unbound)
    assert pair.esme.state is pair.smsc.state is State.UNBOUND


def test_refused_unbind_carries_on_bound() -> None:
    pair = bound_pair()
    requested = only(pair.esme_sends(Unbind()))
    assert isinstance(requested, UnbindRequested)
    refusal = requested.request.response(CommandStatus.ESME_RSYSERR)
    event = only(pair.smsc_sends(refusal))
    assert isinstance(event, ResponseReceived)
    assert pair.esme.state is State.BOUND_TRX
    pair.submit()


# --- timers -------------------------------------------------------------------------------


def test_response_timeout() -> None:
    pair = bound_pair(response_timeout=10, enquire_link_interval=None, inactivity_timeout=None)
    assert pair.esme.next_deadline() is None
    pair.now = 5
    first = pair.submit()
    pair.now = 7
    second = pair.submit()
    assert pair.esme.next_deadline() == 15
    assert pair.esme.handle_timeout(14.9) == []
    assert pair.esme.handle_timeout(15) == [RequestTimedOut(first)]
    assert pair.esme.next_deadline() == 17
    assert pair.esme.handle_timeout(100) == [RequestTimedOut(second)]
    assert pair.esme.next_deadline() is None
    # A late answer is reported, not matched.
    late = only(pair.smsc_sends(first.response(message_id="late")))
    assert isinstance(late, UnmatchedResponse)


def test_a_timed_out_request_frees_its_window_slot() -> None:
    pair = bound_pair(window=1, response_timeout=10)
    pair.submit()
    assert not pair.esme.can_send()
    pair.esme.handle_timeout(10)
    assert pair.esme.can_send()


def test_a_timed_out_bind_can_be_retried() -> None:
    pair = Pair(SessionConfig(response_timeout=10))
    bind = BindTransceiver(system_id="esme")
    pair.esme.send(bind, now=0)
    [timed_out] = pair.esme.handle_timeout(10)
    assert isinstance(timed_out, RequestTimedOut)
    assert isinstance(timed_out.request, BindTransceiver)
    pair.esme.send(bind, now=10)


def test_enquire_link_is_due_after_a_quiet_interval() -> None:
    pair = bound_pair(enquire_link_interval=30, response_timeout=10, inactivity_timeout=None)
    # Due one interval after the last PDU from the peer (here the bind_resp, at 0).
    assert pair.esme.next_deadline() == 30
    pair.now = 20
    pair.smsc_sends(DELIVER)  # anything from the peer restarts the interval
    assert pair.esme.next_deadline() == 50
    assert pair.esme.handle_timeout(49) == []
    assert pair.esme.handle_timeout(50) == [EnquireLinkDue()]
    # Ignored, it comes round again an interval later rather than at once.
    assert pair.esme.next_deadline() == 80
    pair.now = 80
    assert pair.esme.handle_timeout(80) == [EnquireLinkDue()]
    # With an enquire_link out, its response timeout is the deadline, not another keepalive.
    link = only(pair.esme_sends(EnquireLink()))
    assert isinstance(link, RequestReceived)
    assert pair.esme.next_deadline() == 90
    assert pair.esme.handle_timeout(90) == [RequestTimedOut(link.request)]


def test_answered_enquire_link_restarts_the_interval() -> None:
    pair = bound_pair(enquire_link_interval=30, inactivity_timeout=None)
    pair.now = 30
    assert pair.esme.handle_timeout(30) == [EnquireLinkDue()]
    [link] = pair.esme_sends(EnquireLink())
    assert isinstance(link, RequestReceived)
    pair.now = 31
    assert isinstance(only(pair.smsc_sends(link.request.response())), ResponseReceived)
    assert pair.esme.next_deadline() == 61


def test_no_keepalive_outside_the_bound_states() -> None:
    pair = Pair(SessionConfig(enquire_link_interval=30, inactivity_timeout=None))
    assert pair.esme.next_deadline() is None
    assert pair.esme.handle_timeout(1000) == []


def test_inactivity_timeout() -> None:
    pair = Pair(SessionConfig(inactivity_timeout=60, enquire_link_interval=None))
    # An SMSC waiting for a bind that never comes.
    assert pair.smsc.next_deadline() == 60
    assert pair.smsc.handle_timeout(60) == [InactivityTimedOut()]
    assert pair.smsc.handle_timeout(60) == []  # reported once per period, no busy loop
    assert pair.smsc.next_deadline() == 120
    pair.now = 100
    pair.bind()
    assert pair.smsc.next_deadline() == 160


def test_timers_can_be_switched_off() -> None:
    pair = bound_pair(response_timeout=None, enquire_link_interval=None, inactivity_timeout=None)
    pair.submit()
    assert pair.esme.next_deadline() is None
    assert pair.esme.handle_timeout(10**9) == []


@settings(max_examples=200)
@given(st.lists(st.tuples(st.sampled_from("sra"), st.floats(0, 50)), max_size=30))
def test_after_handle_timeout_the_next_deadline_is_in_the_future(
    steps: list[tuple[str, float]],
) -> None:
    # Otherwise a shell that sleeps until next_deadline() would spin.
    pair = bound_pair(window=5, response_timeout=20, enquire_link_interval=15)
    outstanding: list[Request] = []
    for action, delay in steps:
        pair.now += delay
        if action == "s" and pair.esme.can_send():
            outstanding.append(pair.submit())
        elif action == "r" and outstanding:
            pair.smsc_sends(outstanding.pop(0).response(message_id="x"))
        for session in (pair.esme, pair.smsc):
            session.handle_timeout(pair.now)
            deadline = session.next_deadline()
            assert deadline is None or deadline > pair.now


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="window"):
        SessionConfig(window=0)
    with pytest.raises(ValueError, match="response_timeout"):
        SessionConfig(response_timeout=0)
    with pytest.raises(ValueError, match="inactivity_timeout"):
        SessionConfig(inactivity_timeout=-1)


# --- bad input and closing ------------------------------------------------------------------


def test_bad_command_length_is_fatal() -> None:
    pair = bound_pair()
    request = pair.submit()
    unread = EnquireLink(sequence_number=3).encode()
    garbage = (7).to_bytes(4, "big") + bytes.fromhex("00000004 00000000 0000002A")
    error = only(pair.esme.receive_data(garbage + unread, now=0))
    assert isinstance(error, ProtocolError)
    assert error.fatal
    assert error.reply == GenericNack(command_status=2, sequence_number=42)
    assert pair.esme.state is State.CLOSED
    assert pair.esme.next_deadline() is None
    pair.esme.send(error.reply, now=0)  # the farewell nack may still be written
    with pytest.raises(LocalProtocolError, match="not allowed while CLOSED"):
        pair.esme.send(SUBMIT, now=0)
    with pytest.raises(LocalProtocolError, match="closed"):
        pair.esme.receive_data(unread, now=0)
    # Our request that will now never be answered is handed back for the shell to fail.
    assert pair.esme.close() == [request]


def test_unknown_commands_are_nacked_and_the_session_goes_on() -> None:
    pair = bound_pair()
    query_sm = UnknownPdu(0x00000003, 0, 12, b"id\0\0\0\0")
    error = only(pair.smsc.receive_data(query_sm.encode(), now=0))
    assert isinstance(error, ProtocolError)
    assert error.reply == GenericNack(
        command_status=CommandStatus.ESME_RINVCMDID, sequence_number=12
    )
    assert not error.fatal
    pair.smsc.send(error.reply, now=0)
    pair.submit()


def test_a_request_with_a_bad_field_is_refused_with_its_own_response() -> None:
    pair = bound_pair()
    body = bytes.fromhex("00 01 01") + b"1" * 25 + b"\0"  # source_addr too long
    frame = (16 + len(body)).to_bytes(4, "big") + bytes.fromhex("00000004 00000000 00000021")
    error = only(pair.smsc.receive_data(frame + body, now=0))
    assert isinstance(error, ProtocolError)
    assert error.reply == SubmitSmResp(
        command_status=CommandStatus.ESME_RINVSRCADR, sequence_number=0x21
    )
    pair.smsc.send(error.reply, now=0)
    assert pair.smsc.state is State.BOUND_TRX


def test_a_malformed_response_fails_its_request() -> None:
    pair = bound_pair(window=1)
    request = pair.submit()
    body = b"m" * 70 + b"\0"  # message_id too long
    header = (16 + len(body)).to_bytes(4, "big") + bytes.fromhex("80000004 00000000")
    error = only(pair.esme.receive_data(header + (2).to_bytes(4, "big") + body, now=0))
    assert isinstance(error, ProtocolError)
    assert error.request == request
    assert error.reply is None
    assert error.command_status == CommandStatus.ESME_RINVMSGID
    assert pair.esme.can_send()


def test_peer_closing_reports_unanswered_requests() -> None:
    pair = bound_pair()
    first, second = pair.submit(), pair.submit()
    pair.smsc_sends(first.response(message_id="1"))
    assert pair.esme.receive_data(b"", now=0) == [ConnectionClosed((second,))]
    assert pair.esme.state is State.CLOSED
    with pytest.raises(LocalProtocolError):
        pair.esme.receive_data(b"x", now=0)


def test_events_do_not_depend_on_how_bytes_arrive() -> None:
    def conversation(chunk: int) -> list[Event]:
        esme = Session(Role.ESME, now=0)
        smsc = Session(Role.SMSC, now=0)
        smsc.receive_data(esme.send(BindTransceiver(), now=0), now=0)
        wire = b"".join(
            [
                smsc.send(BindTransceiver(sequence_number=1).response(), now=0),
                smsc.send(DELIVER, now=0),
                smsc.send(EnquireLink(), now=0),
                UnknownPdu(0x00000102, 0, 9, b"").encode(),  # alert_notification
                smsc.send(DeliverSm(short_message=b"x" * 200), now=0),
            ]
        )
        events: list[Event] = []
        for i in range(0, len(wire), chunk):
            events += esme.receive_data(wire[i : i + chunk], now=0)
        return events

    whole = conversation(10_000)
    assert [type(event) for event in whole] == [
        Bound,
        RequestReceived,
        RequestReceived,
        ProtocolError,
        RequestReceived,
    ]
    for chunk in (1, 2, 3, 7, 16, 17, 100):
        assert conversation(chunk) == whole


# The asyncio shells that drive the core (the ESME's binds, the SMSC's server): the only
# modules of the package that do I/O.
IO_SHELLS = {"client.py", "server.py"}


def test_the_smpp_package_has_no_io() -> None:
    # The rule for sans-I/O modules: no sockets, no event loop, no clock.
    forbidden = {"asyncio", "socket", "time", "selectors", "threading"}
    for path in Path(smpp_package.__file__).parent.glob("*.py"):
        if path.name in IO_SHELLS:
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in forbidden, f"{path.name} imports {name}"


def test_a_long_run_keeps_flowing_through_the_window() -> None:
    # 5,000 submits and their responses through both sessions, a window at a time, with
    # the session's bookkeeping back to empty at the end.
    pair = bound_pair(window=50)
    sent = 0
    while sent < 5000:
        batch = []
        while pair.esme.can_send():
            batch.append(pair.esme.send(SUBMIT, now=0))
            sent += 1
        events = pair.smsc.receive_data(b"".join(batch), now=0)
        answers = b"".join(
            pair.smsc.send(event.request.response(message_id="m"), now=0)  # type: ignore[union-attr]
            for event in events
        )
        assert len(pair.esme.receive_data(answers, now=0)) == len(batch)
    assert pair.esme.can_send()
