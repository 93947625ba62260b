"""Verbal's sandbox SMSC against Kannel's bearerbox, an independent ESME written in C.

The chain: Kannel's HTTP sendsms -> smsbox -> bearerbox -> SMPP -> Verbal's SMSC -> a sandbox
handset's inbox; Verbal's receipts -> bearerbox (which must parse them) -> smsbox -> the DLR
URL; a handset's text -> deliver_sm -> bearerbox -> smsbox's sms-service get-url. The DLR URL
and get-url point at a small HTTP receiver in the test. Everything, Verbal included, runs in a
network namespace that has only loopback (tests/peers/kannel.py says how).

Skipped when Kannel is not installed or the namespace cannot be made (not root).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.carriers.test_sandbox_smsc import add_rule, text_from_handset, wait_inbox
from tests.conftest import LiveVerbal
from tests.peers.kannel import (
    Kannel,
    NamespaceUnavailable,
    Receiver,
    free_port,
    kannel_missing,
    loopback_namespace,
)

pytestmark = pytest.mark.peers

HANDSET = "+15550002000"
ESME_NUMBER = "+15557700001"

# Kannel's DLR types (the %d of a dlr-url).
DLR_DELIVERED = "1"
DLR_FAILED = "2"
DLR_SMSC_REJECT = "16"


@dataclass
class Peers:
    verbal: LiveVerbal
    kannel: Kannel
    receiver: Receiver


@pytest.fixture
def peers(make_verbal: Callable[..., LiveVerbal], tmp_path: Path) -> Iterator[Peers]:
    missing = kannel_missing()
    if missing is not None:
        pytest.skip(missing)
    namespace = loopback_namespace()
    try:
        namespace.__enter__()
    except NamespaceUnavailable as error:
        pytest.skip(f"Kannel needs a loopback-only network namespace: {error}")
    kannel: Kannel | None = None
    receiver: Receiver | None = None
    try:
        verbal = make_verbal(
            smsc_enabled=True,
            smsc_port=free_port(),
            port=free_port(),
            smsc_esmes=[{"system_id": "kannel", "password": "secret", "numbers": ["+155577*"]}],
        )
        receiver = Receiver()
        kannel = Kannel(
            workdir=tmp_path,
            smsc_port=verbal.settings.smsc_port,
            system_id="kannel",
            password="secret",
            mo_url=receiver.url("/mo"),
        )
        try:
            kannel.start()
        except AssertionError:
            kannel.stop()
            raise
        yield Peers(verbal, kannel, receiver)
    finally:
        if kannel is not None:
            kannel.stop()
        if receiver is not None:
            receiver.stop()
        # Verbal's server thread stays in the namespace until make_verbal stops it; only this
        # thread goes home.
        namespace.__exit__(None, None, None)


def sendsms(
    peers: Peers, text: str, tag: str, to: str = HANDSET, dlr_mask: str = "3", **params: str
) -> None:
    """Submit through Kannel's sendsms; Kannel calls the receiver's /dlr?tag=``tag`` back."""
    dlr_url = peers.receiver.url(f"/dlr?tag={tag}&type=%d&answer=%A")
    status, body = peers.kannel.sendsms(
        to=to,
        text=text,
        **{"from": ESME_NUMBER, "dlr-mask": dlr_mask, "dlr-url": dlr_url},
        **params,
    )
    assert status == 202, f"{status} {body}\n{peers.kannel.logs()}"


def inbox_bodies(verbal: LiveVerbal, count: int) -> list[str]:
    return [m["body"] for m in wait_inbox(verbal, count, HANDSET)]


def test_kannel_runs_where_there_is_only_loopback(peers: Peers) -> None:
    # The test thread (and so Kannel and Verbal, started from it) sees no interface but lo.
    assert [name for _, name in socket.if_nameindex()] == ["lo"]


def test_kannel_submits_and_the_handset_gets_it(peers: Peers) -> None:
    sendsms(peers, "hello from Kannel", "plain")
    [message] = wait_inbox(peers.verbal, 1, HANDSET)
    assert message["body"] == "hello from Kannel"
    assert message["from"] == ESME_NUMBER


def test_kannel_parses_the_delivered_receipt(peers: Peers) -> None:
    sendsms(peers, "receipt please", "ok")
    hit = peers.receiver.wait(lambda h: h.path == "/dlr" and h.query.get("tag") == "ok")
    assert hit.query["type"] == DLR_DELIVERED, hit
    # %A is the receipt text Kannel received, so this shows it saw Verbal's receipt as such.
    assert "stat:DELIVRD" in hit.query["answer"], hit


def test_kannel_parses_a_failed_receipt(peers: Peers) -> None:
    add_rule(peers.verbal, pattern="+15550002001", outcome="undeliverable")
    sendsms(peers, "will not arrive", "bad", to="+15550002001")
    hit = peers.receiver.wait(lambda h: h.path == "/dlr" and h.query.get("tag") == "bad")
    assert hit.query["type"] == DLR_FAILED, hit
    assert "stat:UNDELIV" in hit.query["answer"], hit


def test_kannel_reports_a_refused_submit(peers: Peers) -> None:
    # A permanent submit_sm_resp error: Kannel's "SMSC reject" report, no retry loop.
    add_rule(peers.verbal, pattern="+15550002002", outcome="fail")
    sendsms(peers, "refused", "refused", to="+15550002002", dlr_mask="19")
    hit = peers.receiver.wait(lambda h: h.path == "/dlr" and h.query.get("tag") == "refused")
    assert hit.query["type"] == DLR_SMSC_REJECT, hit


def test_kannel_gsm7_extension_and_ucs2_text_arrive_intact(peers: Peers) -> None:
    # Kannel puts GSM-7 on the wire unpacked, escapes included, and coding=2 as UCS-2 (dc=8).
    sendsms(peers, "price {5} €, [ok] ~é", "gsm")
    assert inbox_bodies(peers.verbal, 1)[0] == "price {5} €, [ok] ~é"
    sendsms(peers, "Привет 😀 世界", "ucs2", coding="2", charset="UTF-8")
    assert inbox_bodies(peers.verbal, 2)[0] == "Привет 😀 世界"


def test_kannel_long_message_is_reassembled(peers: Peers) -> None:
    # Kannel splits it into UDH parts (concatenation = true); the handset sees one text.
    text = " ".join(f"word{i}" for i in range(60))
    assert len(text) > 160
    sendsms(peers, text, "long")
    assert inbox_bodies(peers.verbal, 1) == [text]


def test_a_handset_text_reaches_kannels_sms_service(peers: Peers) -> None:
    answer = text_from_handset(peers.verbal, ESME_NUMBER, "hi Kannel", handset=HANDSET)
    assert answer.status_code in (200, 201), answer.text
    hit = peers.receiver.wait(lambda h: h.path == "/mo")
    assert hit.query["text"] == "hi Kannel", hit
    assert hit.query["from"].lstrip("+") == HANDSET.lstrip("+"), hit
    assert hit.query["to"].lstrip("+") == ESME_NUMBER.lstrip("+"), hit
