"""The sandbox network over SMPP: a live Verbal serving its SMSC, and node-smpp as the ESME.

Everything goes through public doors only: the ESME binds and submits over SMPP on
loopback, and the test reads handsets' inboxes, scripts outcomes and texts back from
handsets through the sandbox's HTTP API, as a user's own test suite would.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.carriers.conftest import Esmes
from tests.conftest import LiveVerbal, wait_until
from tests.peers.node import Event, NodeEsme
from tests.processes import VerbalProcess, free_port
from verbal.carriers.smpp.pdu import (
    BindTransmitter,
    CommandStatus,
    MessageState,
    PduReader,
    Request,
    Response,
    SubmitSm,
    Tag,
    Tlv,
    UnknownPdu,
)

HANDSET = "+15550002000"
# The ESME's own numbers: handsets' texts to these go to it over SMPP.
ESME_NUMBER = "+15557700001"
VERBAL_NUMBER = "+15550001000"
RECEIPT = re.compile(
    r"^id:(?P<id>\w+) sub:001 dlvrd:(?P<dlvrd>\d{3}) submit date:\d{10} done date:\d{10} "
    r"stat:(?P<stat>[A-Z]+) err:(?P<err>\d{3}) text:(?P<text>.*)$"
)


def smsc_settings(**overrides: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "smsc_enabled": True,
        "smsc_port": free_port(),
        "smsc_esmes": [
            {"system_id": "esme1", "password": "pwd1", "numbers": ["+155577*"]},
        ],
    }
    settings.update(overrides)
    return settings


@pytest.fixture
def verbal(make_verbal: Callable[..., LiveVerbal]) -> LiveVerbal:
    """A live Verbal serving its SMSC; its one account owns +15550001000 too."""
    server = make_verbal(**smsc_settings())
    server.add_number(VERBAL_NUMBER)
    return server


def smsc_port(verbal: LiveVerbal) -> int:
    return verbal.settings.smsc_port


def bound(esmes: Esmes, verbal: LiveVerbal, mode: str = "transceiver") -> NodeEsme:
    esme = esmes.connect(smsc_port(verbal))
    assert esme.bind("esme1", "pwd1", mode=mode) == CommandStatus.ESME_ROK
    return esme


def inbox(verbal: LiveVerbal, handset: str = HANDSET) -> list[dict[str, Any]]:
    with verbal.http() as http:
        answer = http.get(f"/sandbox/handsets/{handset}/inbox")
    assert answer.status_code == 200, answer.text
    return answer.json()["messages"]  # type: ignore[no-any-return]


def wait_inbox(verbal: LiveVerbal, count: int = 1, handset: str = HANDSET) -> list[dict[str, Any]]:
    return wait_until(lambda: len(got := inbox(verbal, handset)) >= count and got)  # type: ignore[no-any-return]


def add_rule(verbal: LiveVerbal, **rule: Any) -> None:
    with verbal.http() as http:
        assert http.post("/sandbox/rules", json=rule).status_code == 201


def text_from_handset(verbal: LiveVerbal, to: str, body: str, handset: str = HANDSET) -> Any:
    with verbal.http() as http:
        return http.post(f"/sandbox/handsets/{handset}/messages", json={"to": to, "body": body})


def all_parts_answered(events: list[Event], tag: str) -> list[Event] | None:
    """The submit_resp of every part of the long message sent as ``tag``, once all came."""
    answers = [e for e in events if e["event"] == "submit_resp" and e.get("tag") == tag]
    return answers if answers and len(answers) == answers[0]["parts"] else None


def receipts(esme: NodeEsme) -> list[Event]:
    return [e for e in esme.of("deliver_sm") if e["esm_class"] & 0x3C == 0x04]


def texts(esme: NodeEsme) -> list[Event]:
    return [e for e in esme.of("deliver_sm") if e["esm_class"] & 0x3C == 0]


# -- binds ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["transceiver", "transmitter", "receiver"])
def test_an_esme_binds_in_each_mode(verbal: LiveVerbal, esmes: Esmes, mode: str) -> None:
    esme = bound(esmes, verbal, mode)
    assert esme.request("enquire_link", "enquire_link_resp")["status"] == 0
    assert esme.request("unbind", "unbind_resp")["status"] == 0
    esme.wait_event("close")


@pytest.mark.parametrize(
    ("system_id", "password", "status"),
    [
        ("esme1", "wrong", CommandStatus.ESME_RINVPASWD),
        ("nobody", "pwd1", CommandStatus.ESME_RINVSYSID),
    ],
)
def test_wrong_credentials_are_refused(
    verbal: LiveVerbal, esmes: Esmes, system_id: str, password: str, status: int
) -> None:
    esme = esmes.connect(smsc_port(verbal))
    assert esme.bind(system_id, password) == status


def test_an_esme_of_an_account_that_does_not_exist_may_not_bind(
    make_verbal: Callable[..., LiveVerbal], esmes: Esmes
) -> None:
    esme_of_nobody = {"system_id": "ghost", "password": "pwd", "account_sid": "AC" + "0" * 32}
    verbal = make_verbal(**smsc_settings(smsc_esmes=[esme_of_nobody]))
    esme = esmes.connect(smsc_port(verbal))
    assert esme.bind("ghost", "pwd") == CommandStatus.ESME_RBINDFAIL


def raw_bind(port: int, system_id: str, password: str, source: str = "127.0.0.1") -> int:
    """A bind_transmitter on a new connection from `source`; its command_status."""
    with socket.create_connection(
        ("127.0.0.1", port), timeout=30, source_address=(source, 0)
    ) as sock:
        sock.sendall(
            BindTransmitter(sequence_number=1, system_id=system_id, password=password).encode()
        )
        reader = PduReader()
        while (answer := reader.next_pdu()) is None:
            data = sock.recv(65536)
            assert data, "the SMSC hung up without answering the bind"
            reader.feed(data)
    return answer.command_status


def timed_bind(
    port: int, system_id: str, password: str, source: str = "127.0.0.1"
) -> tuple[int, float]:
    started = time.monotonic()
    status = raw_bind(port, system_id, password, source)
    return status, time.monotonic() - started


def counters(verbal: LiveVerbal) -> dict[str, float]:
    with verbal.http() as http:
        text = http.get("/metrics").text
    found = re.findall(
        r'^(verbal_smsc_failed_binds_total\{reason="\w+"\}|verbal_smsc_binds_held_total) (\S+)$',
        text,
        re.MULTILINE,
    )
    return {name: float(value) for name, value in found}


def grew(before: dict[str, float], after: dict[str, float], name: str) -> float:
    return after.get(name, 0.0) - before.get(name, 0.0)


def test_password_guessing_is_slowed_counted_and_locked_out_per_source_and_system_id(
    make_verbal: Callable[..., LiveVerbal],
) -> None:
    delay = 0.5
    verbal = make_verbal(
        **smsc_settings(
            smsc_esmes=[
                {"system_id": "esme1", "password": "pwd1"},
                {"system_id": "esme2", "password": "pwd2"},
            ],
            smsc_failed_binds_allowed=2,
            smsc_failed_bind_delay_seconds=delay,
            smsc_failed_bind_max_delay_seconds=2 * delay,
        )
    )
    port = smsc_port(verbal)
    before = counters(verbal)
    # The failures allowed are answered at once (no bound: only being held back is timed).
    for _ in range(2):
        assert raw_bind(port, "esme1", "guess") == CommandStatus.ESME_RINVPASWD
    # Then each guess from this address waits first, longer each time.
    status, took = timed_bind(port, "esme1", "guess")
    assert (status, took >= delay) == (CommandStatus.ESME_RINVPASWD, True), took
    status, took = timed_bind(port, "esme2", "guess")
    assert (status, took >= 2 * delay) == (CommandStatus.ESME_RINVPASWD, True), took
    # Many connections at once buy nothing: one waits, the others are refused unexamined
    # (even with the right password, which is therefore not confirmed).
    with ThreadPoolExecutor(4) as pool:
        statuses = sorted(pool.map(lambda _: raw_bind(port, "esme2", "pwd2"), range(4)))
    assert statuses.count(CommandStatus.ESME_RBINDFAIL) >= 3, statuses
    # The real ESMEs, from another address: the one whose system_id was guessed at binds
    # after a wait, the other at once; a clean bind forgets the failures.
    status, took = timed_bind(port, "esme1", "pwd1", source="127.0.0.2")
    assert (status, took >= delay) == (CommandStatus.ESME_ROK, True), took
    assert raw_bind(port, "esme1", "pwd1", source="127.0.0.2") == CommandStatus.ESME_ROK
    after = counters(verbal)
    assert grew(before, after, 'verbal_smsc_failed_binds_total{reason="refused"}') == 4
    assert grew(before, after, 'verbal_smsc_failed_binds_total{reason="locked_out"}') >= 3
    assert grew(before, after, "verbal_smsc_binds_held_total") >= 4


# -- messages to handsets -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "data_coding"),
    [
        ("Hello from SMPP", 0),
        # GSM-7 with its extension table (each of {}[]~€ is an escape pair on the wire).
        ("Price: 5€ {x} [y] ~z^ @home £$¥", 0),
        ("café, naïve, Zürich", 3),
        ("Привет, мир! 👋 你好", 8),
    ],
)
def test_a_submitted_text_reaches_the_handset(
    verbal: LiveVerbal, esmes: Esmes, text: str, data_coding: int
) -> None:
    esme = bound(esmes, verbal, "transmitter")
    answer = esme.submit(
        source="15557700001", dest="15550002000", text=text, data_coding=data_coding
    )
    assert answer["status"] == CommandStatus.ESME_ROK
    [message] = wait_inbox(verbal)
    assert message["body"] == text
    assert message["from"] == ESME_NUMBER
    assert message["message_sid"] == answer["message_id"]


def test_an_alphanumeric_sender_is_kept(verbal: LiveVerbal, esmes: Esmes) -> None:
    esme = bound(esmes, verbal)
    assert esme.submit(source="Verbal", source_ton=5, dest="15550002000", text="hi")["status"] == 0
    assert wait_inbox(verbal)[0]["from"] == "Verbal"


@pytest.mark.parametrize(
    "text",
    [
        # 300 GSM-7 characters with escape pairs around the 153-septet part boundary.
        "a" * 150 + "€€€€" + "b" * 146,
        # UCS-2 with surrogate pairs (emoji) around the 67-unit part boundary.
        "д" * 66 + "😀😀" + "ж" * 70,
    ],
)
def test_a_long_message_in_udh_parts_reaches_the_handset_whole(
    verbal: LiveVerbal, esmes: Esmes, text: str
) -> None:
    esme = bound(esmes, verbal)
    data_coding = 0 if text.startswith("a") else 8
    esme.send(
        "long",
        tag="long",
        source="15557700001",
        dest="15550002000",
        text=text,
        data_coding=data_coding,
        ref=42,
        registered_delivery=1,
    )
    answers = esme.wait_for(lambda events: all_parts_answered(events, "long"))
    assert len(answers) >= 2
    assert all(a["status"] == 0 for a in answers)
    [message] = wait_inbox(verbal)
    assert message["body"] == text
    # Every part earns its own receipt, for its own id.
    esme.wait_for(lambda events: len(receipts(esme)) == len(answers))
    assert {r["receipted_message_id"] for r in receipts(esme)} == {a["message_id"] for a in answers}


def test_sar_parts_and_message_payload_reach_the_handset_whole(
    verbal: LiveVerbal, esmes: Esmes
) -> None:
    esme = bound(esmes, verbal)
    for seq, chunk in ((2, "second half."), (1, "First half, ")):
        sar = {"ref": 777, "total": 2, "seq": seq}
        answer = esme.submit(source="15557700001", dest="15550002000", text=chunk, sar=sar)
        assert answer["status"] == 0
    long_text = "payload " * 40
    answer = esme.submit(source="15557700001", dest="15550002001", text=long_text, payload=True)
    assert answer["status"] == 0
    assert wait_inbox(verbal)[0]["body"] == "First half, second half."
    assert wait_inbox(verbal, handset="+15550002001")[0]["body"] == long_text


def test_parts_of_a_long_message_survive_a_restart(
    make_verbal: Callable[..., LiveVerbal], esmes: Esmes
) -> None:
    settings = smsc_settings()
    first = make_verbal(**settings)
    esme = bound(esmes, first)
    sar = {"ref": 9, "total": 2, "seq": 1}
    assert (
        esme.submit(source="15557700001", dest="15550002000", text="Before ", sar=sar)["status"]
        == 0
    )
    first.stop()
    esme.wait_event("close")
    second = make_verbal(
        **settings,
        bootstrap_account_sid=first.account_sid,
        bootstrap_auth_token=first.auth_token,
    )
    esme = bound(esmes, second)
    sar = {"ref": 9, "total": 2, "seq": 2}
    assert (
        esme.submit(source="15557700001", dest="15550002000", text="and after.", sar=sar)["status"]
        == 0
    )
    assert wait_inbox(second)[0]["body"] == "Before and after."


def test_a_destination_that_is_no_handset_is_refused(verbal: LiveVerbal, esmes: Esmes) -> None:
    esme = bound(esmes, verbal)
    for dest in ("447700900123", "not-a-number", ""):
        answer = esme.submit(source="15557700001", dest=dest, text="x")
        assert answer["status"] == CommandStatus.ESME_RINVDSTADR


# -- receipts -------------------------------------------------------------------------------------


def test_a_delivered_message_earns_a_receipt_the_esme_can_read(
    verbal: LiveVerbal, esmes: Esmes
) -> None:
    esme = bound(esmes, verbal)
    answer = esme.submit(
        source="15557700001", dest="15550002000", text="Receipt please", registered_delivery=1
    )
    receipt = esme.wait_event("deliver_sm", esm_class=0x04)
    assert receipt["receipted_message_id"] == answer["message_id"]
    assert receipt["message_state"] == MessageState.DELIVERED
    # From the handset back to the sender, as the submit had them.
    assert (receipt["source"], receipt["dest"]) == ("15550002000", "15557700001")
    fields = RECEIPT.match(receipt["text"])
    assert fields is not None, receipt["text"]
    assert fields["id"] == answer["message_id"]
    assert (fields["dlvrd"], fields["stat"], fields["err"]) == ("001", "DELIVRD", "000")
    assert fields["text"] == "Receipt please"


def test_an_undeliverable_message_earns_an_undeliv_receipt(
    verbal: LiveVerbal, esmes: Esmes
) -> None:
    add_rule(verbal, pattern=HANDSET, outcome="undeliverable", error_code=30005)
    esme = bound(esmes, verbal)
    answer = esme.submit(source="15557700001", dest="15550002000", text="x", registered_delivery=1)
    assert answer["status"] == 0  # accepted: the handset is what can't be reached
    receipt = esme.wait_event("deliver_sm", esm_class=0x04)
    fields = RECEIPT.match(receipt["text"])
    assert fields is not None
    assert (fields["dlvrd"], fields["stat"], fields["err"]) == ("000", "UNDELIV", "005")
    assert receipt["message_state"] == MessageState.UNDELIVERABLE
    assert inbox(verbal) == []


def test_registered_delivery_decides_which_receipts_come(verbal: LiveVerbal, esmes: Esmes) -> None:
    add_rule(verbal, pattern="+15550009*", outcome="undeliverable")
    esme = bound(esmes, verbal)
    cases = {
        # (destination, registered_delivery): receipt expected?
        ("15550002000", 0): False,
        ("15550002000", 2): False,  # failure only, and it was delivered
        ("15550009000", 2): True,
        ("15550002000", 1): True,
    }
    ids = {}
    for (dest, wanted), _ in cases.items():
        answer = esme.submit(source="15557700001", dest=dest, text="x", registered_delivery=wanted)
        ids[(dest, wanted)] = answer["message_id"]
    # A last message asking for every receipt: once its receipt is in, any the others
    # earned (due at once, like it) has come too.
    last = esme.submit(source="15557700001", dest="15550002000", text="x", registered_delivery=1)
    expected = {ids[case] for case, receipt in cases.items() if receipt} | {last["message_id"]}
    esme.wait_event("deliver_sm", esm_class=0x04, receipted_message_id=last["message_id"])
    assert sorted(r["receipted_message_id"] for r in receipts(esme)) == sorted(expected)


def test_receipts_wait_for_a_receiver_bind(verbal: LiveVerbal, esmes: Esmes) -> None:
    transmitter = bound(esmes, verbal, "transmitter")
    answer = transmitter.submit(
        source="15557700001", dest="15550002000", text="x", registered_delivery=1
    )
    wait_inbox(verbal)
    receiver = bound(esmes, verbal, "receiver")
    receipt = receiver.wait_event("deliver_sm", esm_class=0x04)
    assert receipt["receipted_message_id"] == answer["message_id"]
    assert transmitter.of("deliver_sm") == []  # it waited for the receiver, not sent there


def test_a_receipt_the_esme_does_not_take_comes_again(verbal: LiveVerbal, esmes: Esmes) -> None:
    esme = esmes.connect(smsc_port(verbal))
    esme.send("answer", status=CommandStatus.ESME_RX_T_APPN)
    assert esme.bind("esme1", "pwd1") == 0
    esme.submit(source="15557700001", dest="15550002000", text="x", registered_delivery=1)
    esme.wait_event("deliver_sm", esm_class=0x04)
    esme.send("answer", status=0)
    # Refused once (temporarily), sent again about a second later.
    esme.wait_for(lambda events: len(receipts(esme)) == 2, timeout=10)


# -- outcomes -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "status"),
    [
        ({"outcome": "throttle"}, CommandStatus.ESME_RTHROTTLED),
        ({"outcome": "fail"}, CommandStatus.ESME_RSUBMITFAIL),
        ({"outcome": "fail", "error_code": 30005}, CommandStatus.ESME_RINVDSTADR),
    ],
)
def test_scripted_refusals_answer_the_submit(
    verbal: LiveVerbal, esmes: Esmes, rule: dict[str, Any], status: int
) -> None:
    add_rule(verbal, pattern=HANDSET, **rule)
    esme = bound(esmes, verbal)
    assert esme.submit(source="15557700001", dest="15550002000", text="x")["status"] == status
    assert inbox(verbal) == []


def test_throttling_lifts_when_the_rule_goes(verbal: LiveVerbal, esmes: Esmes) -> None:
    add_rule(verbal, pattern="+1555*", outcome="throttle")
    esme = bound(esmes, verbal)
    throttled = [esme.submit(source="15557700001", dest="15550002000", text="x") for _ in range(5)]
    assert {a["status"] for a in throttled} == {CommandStatus.ESME_RTHROTTLED}
    with verbal.http() as http:
        assert http.delete("/sandbox/rules").status_code == 204
    assert esme.submit(source="15557700001", dest="15550002000", text="now")["status"] == 0


def test_a_timeout_rule_leaves_the_submit_unanswered(verbal: LiveVerbal, esmes: Esmes) -> None:
    add_rule(verbal, pattern=HANDSET, outcome="timeout")
    esme = bound(esmes, verbal)
    esme.send("submit", tag="lost", source="15557700001", dest="15550002000", text="x")
    # A submit sent after it, to a handset no rule names, is answered: the first was decided.
    answered = esme.submit(source="15557700001", dest="15550002999", text="y")
    assert answered["status"] == 0
    assert [e["tag"] for e in esme.of("submit_resp")] == [answered["tag"]]
    assert esme.request("enquire_link", "enquire_link_resp")["status"] == 0


def test_delay_and_silence_shape_inbox_and_receipts(verbal: LiveVerbal, esmes: Esmes) -> None:
    add_rule(verbal, pattern=HANDSET, outcome="deliver", delay_seconds=1.0)
    add_rule(verbal, pattern="+15550002001", outcome="silent")
    esme = bound(esmes, verbal)
    started = time.monotonic()
    esme.submit(source="15557700001", dest="15550002000", text="late", registered_delivery=1)
    esme.submit(source="15557700001", dest="15550002001", text="hush", registered_delivery=1)
    esme.wait_event("deliver_sm", esm_class=0x04)
    assert time.monotonic() - started >= 0.9
    assert inbox(verbal)[0]["body"] == "late"
    assert wait_inbox(verbal, handset="+15550002001")[0]["body"] == "hush"
    # Silence: in the inbox, but never a receipt; a later message's receipt comes alone.
    later = esme.submit(source="15557700001", dest="15550002999", text="y", registered_delivery=1)
    esme.wait_event("deliver_sm", esm_class=0x04, receipted_message_id=later["message_id"])
    assert len(receipts(esme)) == 2


# -- handsets texting the ESME --------------------------------------------------------------------


def test_a_handset_texts_the_esme(verbal: LiveVerbal, esmes: Esmes) -> None:
    esme = bound(esmes, verbal, "receiver")
    answer = text_from_handset(verbal, ESME_NUMBER, "Hi ESME {€}")
    assert answer.status_code == 201, answer.text
    event = esme.wait_event("deliver_sm")
    assert event["esm_class"] == 0
    assert (event["source"], event["dest"], event["text"]) == (
        "15550002000",
        "15557700001",
        "Hi ESME {€}",
    )
    assert (event["source_ton"], event["dest_ton"]) == (1, 1)


def test_a_long_handset_text_goes_out_in_udh_parts(verbal: LiveVerbal, esmes: Esmes) -> None:
    esme = bound(esmes, verbal)
    body = "Ответ " * 30  # UCS-2, 180 characters: three parts
    assert text_from_handset(verbal, ESME_NUMBER, body).status_code == 201
    parts = esme.wait_for(lambda events: len(texts(esme)) == 3 and texts(esme))
    assert all(p["esm_class"] & 0x40 and p["data_coding"] == 8 for p in parts)
    # The UDH (05 00 03 ref total seq) orders them; node-smpp read each part's text.
    ordered = sorted(parts, key=lambda p: p["udh"][-2:])
    assert {p["udh"][:8] for p in parts} == {parts[0]["udh"][:8]}
    assert "".join(p["text"] for p in ordered) == body


def test_handset_texts_wait_for_the_esme_to_bind(verbal: LiveVerbal, esmes: Esmes) -> None:
    for n in range(3):
        assert text_from_handset(verbal, ESME_NUMBER, f"queued {n}").status_code == 201
    esme = bound(esmes, verbal)
    esme.wait_for(lambda events: len(texts(esme)) == 3)
    assert sorted(e["text"] for e in texts(esme)) == ["queued 0", "queued 1", "queued 2"]


def test_what_an_esme_left_unanswered_goes_to_its_next_bind(
    verbal: LiveVerbal, esmes: Esmes
) -> None:
    first = esmes.connect(smsc_port(verbal))
    first.send("silent", on=True)
    assert first.bind("esme1", "pwd1") == 0
    for n in range(3):
        assert text_from_handset(verbal, ESME_NUMBER, f"unanswered {n}").status_code == 201
    first.wait_for(lambda events: len(texts(first)) == 3)
    first.send("close")  # gone without answering, as a crashed ESME would be
    first.wait_event("close")
    second = bound(esmes, verbal)
    second.wait_for(lambda events: len(texts(second)) == 3)
    # Each once: answered ones are not sent again (a text sent after them arrives alone).
    assert text_from_handset(verbal, ESME_NUMBER, "after").status_code == 201
    second.wait_for(lambda events: any(e["text"] == "after" for e in texts(second)))
    assert sorted(e["text"] for e in texts(second)) == ["after"] + [
        f"unanswered {n}" for n in range(3)
    ]


def test_verbal_numbers_stay_with_verbal(verbal: LiveVerbal, esmes: Esmes) -> None:
    # +15550001000 is the account's Verbal number: a handset's text to it is Verbal's
    # inbound message, even with an ESME bound; a number nobody serves is refused.
    esme = bound(esmes, verbal)
    answer = text_from_handset(verbal, VERBAL_NUMBER, "for Verbal")
    assert answer.status_code == 201
    with verbal.http() as http:
        sid = answer.json()["message_sid"]
        message = http.get(f"/2010-04-01/Accounts/{verbal.account_sid}/Messages/{sid}.json").json()
    assert (message["direction"], message["status"]) == ("inbound", "received")
    refused = text_from_handset(verbal, "+15559990000", "nobody's")
    assert (refused.status_code, refused.json()["code"]) == (404, 21606)
    # Neither reached the ESME: a text to its own number, sent after them, arrives alone.
    assert text_from_handset(verbal, ESME_NUMBER, "for the ESME").status_code == 201
    esme.wait_event("deliver_sm")
    assert [e["text"] for e in esme.of("deliver_sm")] == ["for the ESME"]


def test_another_accounts_esme_numbers_are_not_ours(
    make_verbal: Callable[..., LiveVerbal], esmes: Esmes
) -> None:
    other_esme = {
        "system_id": "other",
        "password": "pwd",
        "account_sid": "AC" + "1" * 32,
        "numbers": ["+155588*"],
    }
    verbal = make_verbal(**smsc_settings(smsc_esmes=[*smsc_settings()["smsc_esmes"], other_esme]))
    ours = bound(esmes, verbal)
    refused = text_from_handset(verbal, "+15558800001", "not yours")
    assert (refused.status_code, refused.json()["code"]) == (404, 21606)
    # The same handset reaches this account's own ESME numbers.
    assert text_from_handset(verbal, ESME_NUMBER, "yours").status_code == 201
    assert ours.wait_event("deliver_sm")["text"] == "yours"


# -- verbal serve ---------------------------------------------------------------------------------


def test_verbal_serve_runs_the_smsc(
    tmp_path: Any, esmes: Esmes, spawned: list[VerbalProcess]
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "VERBAL_DATABASE_URL": f"sqlite:///{tmp_path / 'verbal.db'}",
        "VERBAL_SMSC_ENABLED": "true",
        "VERBAL_SMSC_PORT": str(port),
        "VERBAL_SMSC_ESMES": json.dumps([{"system_id": "kannel", "password": "pwd"}]),
        "VERBAL_BOOTSTRAP_ACCOUNT_SID": "AC" + "2" * 32,
        "VERBAL_BOOTSTRAP_AUTH_TOKEN": "3" * 32,
    }
    server = VerbalProcess("serve", env, tmp_path)
    spawned.append(server)
    server.wait_healthy()
    esme = esmes.connect(port)
    assert esme.bind("kannel", "pwd") == 0
    assert esme.submit(source="100", dest="15550002000", text="via verbal serve")["status"] == 0
    assert esme.request("unbind", "unbind_resp")["status"] == 0
    assert server.stop() == 0
    assert "SMSC listening on 127.0.0.1:" in server.tail(200)


def test_a_port_in_use_stops_verbal_serve_with_a_reason(
    tmp_path: Any, spawned: list[VerbalProcess]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = {
            **os.environ,
            "VERBAL_DATABASE_URL": f"sqlite:///{tmp_path / 'verbal.db'}",
            "VERBAL_SMSC_ENABLED": "true",
            "VERBAL_SMSC_PORT": str(taken.getsockname()[1]),
        }
        server = VerbalProcess("serve", env, tmp_path)
        spawned.append(server)
        assert server.process.wait(timeout=30) != 0
    assert "the sandbox SMSC cannot listen on 127.0.0.1:" in server.tail(50)


def test_the_whole_round_on_each_database(
    make_verbal: Callable[..., LiveVerbal], esmes: Esmes, database_url: str
) -> None:
    verbal = make_verbal(database_url, **smsc_settings())
    esme = bound(esmes, verbal)
    answer = esme.submit(source="15557700001", dest="15550002000", text="x", registered_delivery=1)
    receipt = esme.wait_event("deliver_sm", esm_class=0x04)
    assert receipt["receipted_message_id"] == answer["message_id"]
    assert text_from_handset(verbal, ESME_NUMBER, "y").status_code == 201
    assert esme.wait_event("deliver_sm", esm_class=0)["text"] == "y"
    assert wait_inbox(verbal)[0]["body"] == "x"


# -- hostile submits ------------------------------------------------------------------------------


@pytest.fixture
def fuzzed_verbal(make_verbal: Callable[..., LiveVerbal], database_url: str) -> LiveVerbal:
    """One live Verbal per database, for all of a fuzzing run's examples."""
    return make_verbal(database_url, **smsc_settings())


LATIN1_NO_NUL = st.characters(min_codepoint=1, max_codepoint=255)
TAGS = [Tag.SAR_MSG_REF_NUM, Tag.SAR_TOTAL_SEGMENTS, Tag.SAR_SEGMENT_SEQNUM, Tag.MESSAGE_PAYLOAD]
HOSTILE_SUBMITS = st.builds(
    SubmitSm,
    source_addr_ton=st.integers(0, 255),
    source_addr=st.text(LATIN1_NO_NUL, max_size=20),
    dest_addr_ton=st.sampled_from([0, 1, 2, 5]),
    destination_addr=st.sampled_from(["15550002000", "+15550002001"])
    | st.text(LATIN1_NO_NUL, max_size=20),
    esm_class=st.integers(0, 255),
    registered_delivery=st.integers(0, 255),
    data_coding=st.integers(0, 255),
    short_message=st.binary(max_size=254),
    tlvs=st.lists(
        st.builds(Tlv, st.sampled_from(TAGS) | st.integers(0, 0xFFFF), st.binary(max_size=400)),
        max_size=4,
    ).map(tuple),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(submits=st.lists(HOSTILE_SUBMITS, min_size=1, max_size=5))
def test_hostile_submits_are_answered_and_break_nothing(
    fuzzed_verbal: LiveVerbal, submits: list[SubmitSm], caplog: pytest.LogCaptureFixture
) -> None:
    with socket.create_connection(("127.0.0.1", smsc_port(fuzzed_verbal)), timeout=10) as sock:
        bind = BindTransmitter(sequence_number=1, system_id="esme1", password="pwd1")
        sock.sendall(bind.encode())
        reader = PduReader()
        reader.feed(sock.recv(65536))
        bound = reader.next_pdu()
        assert bound is not None and bound.command_status == 0
        responses: list[Request | Response | UnknownPdu] = []
        sock.sendall(
            b"".join(
                replace(submit, sequence_number=n).encode() for n, submit in enumerate(submits, 2)
            )
        )
        while len(responses) < len(submits):
            data = sock.recv(65536)
            assert data, f"the SMSC hung up after {responses}"
            reader.feed(data)
            while (pdu := reader.next_pdu()) is not None:
                responses.append(pdu)
    # Every submit was answered, with an id or a refusal; nothing went wrong inside.
    assert sorted(r.sequence_number for r in responses) == list(range(2, len(submits) + 2))
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []


# -- Verbal's own SMPP carrier, on the other end -----------------------------------------------


def test_verbal_as_the_esme_of_verbal(
    make_verbal: Callable[..., LiveVerbal], tmp_path: Any
) -> None:
    # Two Verbals: "network" serves the sandbox's SMSC; "app" has no sandbox and reaches
    # +1555 numbers through an SMPP carrier bound to that SMSC. Both halves of Verbal's SMPP
    # must agree on every PDU: submits, long texts, receipts and texts back.
    network = make_verbal(
        **smsc_settings(
            smsc_esmes=[{"system_id": "app", "password": "pw", "numbers": [ESME_NUMBER]}]
        )
    )
    carrier = {
        "name": "smsc",
        "host": "127.0.0.1",
        "port": smsc_port(network),
        "system_id": "app",
        "password": "pw",
        "prefixes": ["+1555"],
    }
    app = make_verbal(
        f"sqlite+aiosqlite:///{tmp_path / 'app.db'}", sandbox_enabled=False, carriers=[carrier]
    )
    app.add_number(ESME_NUMBER)
    add_rule(network, pattern="+15550009*", outcome="undeliverable", error_code=30005)
    client = app.twilio()
    long_text = "Ответ, который не влезает в одно сообщение. " * 3
    sent = {
        to: client.messages.create(to=to, from_=ESME_NUMBER, body=body).sid
        for to, body in (("+15550002000", long_text), ("+15550009000", "nobody home"))
    }

    def final(sid: str) -> Any:
        message = client.messages(sid).fetch()
        return message if message.status in ("delivered", "undelivered", "failed") else None

    delivered = wait_until(lambda: final(sent["+15550002000"]), what="the long text delivered")
    assert delivered.status == "delivered"
    assert [m["body"] for m in inbox(network)] == [long_text]
    undelivered = wait_until(lambda: final(sent["+15550009000"]), what="the receipt UNDELIV")
    assert undelivered.status == "undelivered"
    # err:005 in the receipt reads back as the error the rule scripted.
    assert undelivered.error_code == 30005

    assert text_from_handset(network, ESME_NUMBER, "And back to the app").status_code == 201
    inbound = wait_until(
        lambda: [m for m in client.messages.list(to=ESME_NUMBER) if m.direction == "inbound"]
    )
    assert (inbound[0].from_, inbound[0].body) == ("+15550002000", "And back to the app")


def test_a_long_message_missing_a_part_becomes_undeliverable(
    make_verbal: Callable[..., LiveVerbal], esmes: Esmes
) -> None:
    verbal = make_verbal(**smsc_settings(smsc_parts_timeout_seconds=0.5))
    esme = bound(esmes, verbal)
    sent = [
        esme.submit(
            source="15557700001",
            dest="15550002000",
            text=f"part {seq}",
            sar={"ref": 5, "total": 3, "seq": seq},
            registered_delivery=1,
        )
        for seq in (1, 3)
    ]
    esme.wait_for(lambda events: len(receipts(esme)) == 2, timeout=15)
    for receipt in receipts(esme):
        fields = RECEIPT.match(receipt["text"])
        assert fields is not None
        assert (fields["stat"], fields["err"]) == ("UNDELIV", "008")
    assert {r["receipted_message_id"] for r in receipts(esme)} == {s["message_id"] for s in sent}
    assert inbox(verbal) == []
