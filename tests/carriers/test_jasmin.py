"""Verbal's SMPP carrier (the ESME) against Jasmin 0.11.0, an independent SMPP server.

Two Verbals run here. The *sender* has one SMPP carrier bound to Jasmin's SMPP server as
esme1; Jasmin's default MT route sends everything through its smppc connector to the
*network* Verbal's sandbox SMSC, whose handsets receive the texts and whose receipts Jasmin
relays back to the sender. A handset's text to +15557700001 takes the way back: SMSC ->
Jasmin's connector -> MO route -> the sender's bind -> the number's app.

Skipped when Jasmin 0.11.0 is not installed (tests/peers/install_jasmin.sh), or RabbitMQ or
Redis is not running on its standard loopback port.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.carriers.test_sandbox_smsc import add_rule, inbox, text_from_handset, wait_inbox
from tests.conftest import AppHit, AppServer, LiveVerbal, wait_until
from tests.peers.jasmin import Jasmin, free_port, jasmin_missing

# Every Jasmin shares the machine's RabbitMQ and Redis: one worker runs them, one at a time.
pytestmark = [pytest.mark.peers, pytest.mark.xdist_group("jasmin")]

HANDSET = "+15550002000"
# The sender's number; the network's SMSC hands handsets' texts to it to Jasmin's connector.
NUMBER = "+15557700001"


@dataclass
class Chain:
    sender: LiveVerbal
    network: LiveVerbal
    jasmin: Jasmin


@pytest.fixture
def chain(make_verbal: Callable[..., LiveVerbal], tmp_path: Path) -> Iterator[Chain]:
    missing = jasmin_missing()
    if missing is not None:
        pytest.skip(missing)
    network = make_verbal(
        smsc_enabled=True,
        smsc_port=free_port(),
        smsc_esmes=[{"system_id": "jasminup", "password": "pwd", "numbers": ["+155577*"]}],
    )
    # Jasmin only matches a receipt once it has stored the submit_sm_resp; one sent in the
    # same instant waits for its 10 s retry (smpp.md §2a), so receipts come a little later.
    add_rule(network, pattern="*", outcome="deliver", delay_seconds=0.3)
    jasmin = Jasmin(tmp_path / "jasmin")
    try:
        jasmin.start()  # waits for any other run's Jasmin to stop first
        said = jasmin.jcli(
            "smppccm -a",
            "cid upstream",
            "host 127.0.0.1",
            f"port {network.settings.smsc_port}",
            "username jasminup",
            "password pwd",
            "submit_throughput 0",  # the default is 1 message a second
            "con_loss_delay 1",
            "con_fail_delay 1",
            "ok",
            "smppccm -1 upstream",
            "group -a",
            "gid g1",
            "ok",
            "user -a",
            "username esme1",
            "password pwd1",
            "gid g1",
            "uid u1",
            "ok",
            "mtrouter -a",
            "type defaultroute",
            "connector smppc(upstream)",
            "rate 0.00",
            "ok",
            "morouter -a",
            "type defaultroute",
            "connector smpps(esme1)",
            "ok",
        )
        assert said.count("Successfully") >= 6, said
        wait_until(
            lambda: "BOUND_TRX" in jasmin.jcli("smppccm --list"),
            timeout=15,
            what="Jasmin's connector binding to the sandbox SMSC",
        )
        sender = make_verbal(
            f"sqlite+aiosqlite:///{tmp_path / 'sender.db'}",
            carriers=[
                {
                    "name": "jasmin",
                    "host": "127.0.0.1",
                    "port": jasmin.smpp_port,
                    "system_id": "esme1",
                    "password": "pwd1",
                    "prefixes": ["+1555"],
                    "reconnect_min_seconds": 0.05,
                    "reconnect_max_seconds": 0.5,
                    "throttle_pause_seconds": 0.2,
                }
            ],
            # The sender's own sandbox must not take +1555: those go to the carrier.
            sandbox_prefixes=["+1999"],
            carrier_status_seconds=0.2,
        )
        sender.add_number(NUMBER)
        yield Chain(sender, network, jasmin)
    except BaseException:
        print(jasmin.logs())
        raise
    finally:
        jasmin.stop()


def send(chain: Chain, body: str, to: str = HANDSET) -> Any:
    return chain.sender.twilio().messages.create(to=to, from_=NUMBER, body=body)


def final_status(chain: Chain, sid: str, timeout: float = 20.0) -> Any:
    def settled() -> Any:
        fetched = chain.sender.twilio().messages(sid).fetch()
        return fetched if fetched.status in ("delivered", "undelivered", "failed") else None

    return wait_until(settled, timeout=timeout, what=f"{sid}'s receipt through Jasmin")


def test_submit_through_jasmin_reaches_the_handset_and_the_receipt_comes_back(
    chain: Chain,
) -> None:
    message = send(chain, "hello through Jasmin")
    [got] = wait_inbox(chain.network, 1, HANDSET)
    assert (got["body"], got["from"]) == ("hello through Jasmin", NUMBER)
    fetched = final_status(chain, message.sid)
    assert fetched.status == "delivered", chain.jasmin.logs()
    assert fetched.error_code is None


def test_ucs2_through_jasmin_arrives_intact(chain: Chain) -> None:
    message = send(chain, "Привет 😀 世界")
    assert wait_inbox(chain.network, 1, HANDSET)[0]["body"] == "Привет 😀 世界"
    assert final_status(chain, message.sid).status == "delivered"


def test_a_long_message_goes_through_jasmin_as_udh_parts(chain: Chain) -> None:
    # Jasmin forwards UDH parts intact (it drops message_payload), so the default UDH it is.
    text = "Long through Jasmin, part of a test. " * 12
    message = send(chain, text)
    assert wait_inbox(chain.network, 1, HANDSET)[0]["body"] == text
    fetched = final_status(chain, message.sid)
    assert fetched.status == "delivered"
    assert fetched.num_segments == "3"  # 444 GSM-7 characters, 153 a part


def test_a_handset_text_comes_back_through_jasmin_to_the_numbers_app(
    chain: Chain, app_server: AppServer
) -> None:
    def no_reply(hit: AppHit) -> tuple[int, str, str]:
        return 200, "text/xml", "<Response/>"

    app_server.routes["/sms"] = no_reply
    chain.sender.add_app("rcml", app_server.url("/sms"), NUMBER)
    # The sender's bind must be up, or Jasmin has nobody to route the MO to.
    send(chain, "warm up")
    wait_inbox(chain.network, 1, HANDSET)
    answer = text_from_handset(chain.network, NUMBER, "ping ✓ via Jasmin", handset=HANDSET)
    assert answer.status_code in (200, 201), answer.text
    hit = wait_until(lambda: app_server.hits_for("/sms"), timeout=20, what="the MO")[0]
    assert (hit.form["From"], hit.form["To"], hit.form["Body"]) == (
        HANDSET,
        NUMBER,
        "ping ✓ via Jasmin",
    )


def test_jasmins_throttling_is_absorbed_and_nothing_is_lost(chain: Chain) -> None:
    # A quota of 5 submits a second: Jasmin answers ESME_RTHROTTLED to any submit closer
    # than 0.2 s to the last, and the carrier must back off and retry until every message is
    # through, each exactly once. The carrier's pause doubles while refusals go on and a full
    # window goes out after each pause: 6 messages take ~4 s here, 10 took ~30 s.
    said = chain.jasmin.jcli(
        "user -u u1", "mt_messaging_cred quota smpps_throughput 5", "ok", "user -s u1"
    )
    assert "Successfully" in said, said
    bodies = [f"throttled {i}" for i in range(6)]
    sids = [send(chain, body).sid for body in bodies]
    got = wait_until(
        lambda: len(m := inbox(chain.network, HANDSET)) >= len(bodies) and m, timeout=45
    )
    assert sorted(m["body"] for m in got) == sorted(bodies)
    for sid in sids:
        assert final_status(chain, sid, timeout=10).status == "delivered"
    # Jasmin really did refuse some: this is its log line for an ESME_RTHROTTLED answer.
    smpps_log = (chain.jasmin.workdir / "log" / "default-smpps_01.log").read_text()
    assert "than fixed throughput" in smpps_log
