"""Tests for verbal.carriers.sip.dialog (route sets, CSeq, target refresh) and the pure Via
rules of verbal.carriers.sip.transport (received, rport)."""

import pytest

from verbal.carriers.sip.dialog import Dialog, DialogError, Side
from verbal.carriers.sip.message import Headers, Request, response_to
from verbal.carriers.sip.transport import response_address, stamp_via


def invite(*record_route: str) -> Request:
    return Request(
        "INVITE",
        "sip:bob@example.net",
        Headers.of(
            [
                ("Via", "SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKa;rport"),
                *(("Record-Route", value) for value in record_route),
                ("From", '"Alice" <sip:alice@example.org>;tag=atag'),
                ("To", "<sip:bob@example.net>"),
                ("Call-ID", "call-1"),
                ("CSeq", "7 INVITE"),
                ("Contact", "<sip:alice@10.0.0.1:5070>"),
            ]
        ),
    )


def test_the_callers_dialog_reverses_record_route_and_loose_routes() -> None:
    request = invite()
    ok = response_to(
        request,
        200,
        to_tag="btag",
        headers=[
            ("Record-Route", "<sip:p2.example.net;lr>, <sip:p1.example.org;lr>"),
            ("Contact", "<sip:bob@192.0.2.4:5080>"),
        ],
    )
    dialog = Dialog.for_uac(request, ok)
    assert dialog.side is Side.UAC
    assert dialog.key == ("call-1", "atag", "btag")
    assert dialog.route_set == ["<sip:p1.example.org;lr>", "<sip:p2.example.net;lr>"]
    bye = dialog.request("BYE", via="SIP/2.0/UDP me;branch=z9hG4bKb", contact="<sip:me>")
    assert bye.uri == "sip:bob@192.0.2.4:5080"
    assert bye.headers.values("Route") == dialog.route_set
    assert bye.cseq == (8, "BYE")
    assert bye.to.tag == "btag" and bye.from_.tag == "atag"
    assert dialog.next_hop().host == "p1.example.org"
    ack = dialog.request("ACK", via="v", contact="c", cseq=7)
    assert ack.cseq == (7, "ACK")
    assert dialog.request("BYE", via="v", contact="c").cseq == (9, "BYE")


def test_the_callees_dialog_keeps_record_route_in_order() -> None:
    request = invite("<sip:p1;lr>", "<sip:p2;lr>")
    dialog = Dialog.for_uas(request, "btag")
    assert dialog.route_set == ["<sip:p1;lr>", "<sip:p2;lr>"]
    assert dialog.remote_target == "sip:alice@10.0.0.1:5070"
    bye = dialog.request("BYE", via="v", contact="c")
    assert bye.uri == "sip:alice@10.0.0.1:5070"
    assert bye.from_.tag == "btag" and bye.to.tag == "atag"
    assert bye.to.display == "Alice"


def test_a_strict_router_gets_the_request_uri_and_the_target_goes_last() -> None:
    dialog = Dialog.for_uas(invite("<sip:strict.example.com>", "<sip:p2;lr>"), "btag")
    bye = dialog.request("BYE", via="v", contact="c")
    assert bye.uri == "sip:strict.example.com"
    assert bye.headers.values("Route") == ["<sip:p2;lr>", "<sip:alice@10.0.0.1:5070>"]


def test_remote_cseq_must_grow_and_a_reinvite_refreshes_the_target() -> None:
    dialog = Dialog.for_uas(invite(), "btag")
    reinvite = Request(
        "INVITE",
        "sip:x",
        invite().headers.with_("CSeq", "8 INVITE").with_("Contact", "<sip:alice@10.0.0.2:6000>"),
    )
    dialog.receive(reinvite)
    assert dialog.remote_target == "sip:alice@10.0.0.2:6000"
    old = Request("BYE", "sip:x", invite().headers.with_("CSeq", "3 BYE"))
    with pytest.raises(DialogError) as raised:
        dialog.receive(old)
    assert raised.value.code == 500


def test_received_and_rport_are_stamped_and_used() -> None:
    request = stamp_via(invite(), ("203.0.113.9", 40000))
    via = request.top_via
    assert via.params["received"] == "203.0.113.9" and via.params["rport"] == "40000"
    assert response_address(via, ("203.0.113.9", 40000), "udp") == ("203.0.113.9", 40000)


def test_without_rport_the_response_goes_to_the_sent_by_port() -> None:
    plain = Request(
        "OPTIONS",
        "sip:x",
        invite().headers.with_("Via", "SIP/2.0/UDP 10.0.0.1:5070;branch=z9hG4bKa"),
    )
    same = stamp_via(plain, ("10.0.0.1", 5070))
    assert same == plain  # nothing to add
    moved = stamp_via(plain, ("10.0.0.8", 1234)).top_via
    assert moved.params["received"] == "10.0.0.8"
    assert response_address(moved, ("10.0.0.8", 1234), "udp") == ("10.0.0.8", 5070)
    assert response_address(moved, ("10.0.0.8", 1234), "tcp") == ("10.0.0.8", 1234)
