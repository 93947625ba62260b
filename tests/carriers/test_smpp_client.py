"""One SMPP bind (verbal/carriers/smpp/client.py) against node-smpp as the SMSC, on loopback.

node-smpp is an SMPP implementation of its own, so these tests exercise our bytes against
someone else's reading of the spec: binds in every mode, refusals and their diagnosis,
keepalive, unbind, reconnects, throttling, the throughput cap and response timeouts.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from tests.carriers.conftest import Smscs, eventually
from tests.peers.node import NodeSmsc
from verbal.carriers.smpp.client import (
    Bind,
    BindConfig,
    BindMode,
    BindState,
    LinkError,
    Pulse,
)
from verbal.carriers.smpp.pdu import CommandStatus, DataSm, DeliverSm, SubmitSm, SubmitSmResp
from verbal.carriers.smpp.session import SessionConfig

PASSWORD = "s3cr3t!"


def config(smsc: NodeSmsc | int, **overrides: Any) -> BindConfig:
    port = smsc if isinstance(smsc, int) else smsc.port
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "system_id": "verbal",
        "password": PASSWORD,
        "reconnect_min": 0.05,
        "reconnect_max": 0.3,
        "throttle_pause": 0.1,
        "unbind_timeout": 2.0,
    }
    values.update(overrides)
    return BindConfig(**values)


@asynccontextmanager
async def running(
    cfg: BindConfig, on_deliver: Callable[[DeliverSm | DataSm], Awaitable[int]] | None = None
) -> AsyncIterator[Bind]:
    bind = Bind(cfg, name="test#1", carrier="test", on_deliver=on_deliver)
    await bind.start()
    try:
        yield bind
    finally:
        await bind.stop()


def submit_sm(text: str, **fields: Any) -> SubmitSm:
    return SubmitSm(
        source_addr="15550001000",
        destination_addr="15550002000",
        short_message=text.encode(),
        **fields,
    )


@pytest.mark.parametrize(
    ("mode", "seen"),
    [
        (BindMode.TRANSCEIVER, "transceiver"),
        (BindMode.TRANSMITTER, "transmitter"),
        (BindMode.RECEIVER, "receiver"),
    ],
)
async def test_binds_in_each_mode_and_unbinds_on_stop(
    smscs: Smscs, mode: BindMode, seen: str
) -> None:
    smsc = smscs.start(password=PASSWORD)
    async with running(config(smsc, mode=mode, system_type="VMA")) as bind:
        assert await bind.wait_bound(5)
        assert bind.status().state is BindState.BOUND
        assert bind.status().bound_since is not None
    event = await smsc.event("bind")
    assert (event["mode"], event["system_id"], event["system_type"], event["status"]) == (
        seen,
        "verbal",
        "VMA",
        0,
    )
    await smsc.event("unbind")
    assert bind.status().state is BindState.STOPPED


async def test_a_transceiver_submits_and_takes_the_receipts(smscs: Smscs) -> None:
    smsc = smscs.start(password=PASSWORD)
    delivered: list[DeliverSm | DataSm] = []

    async def on_deliver(pdu: DeliverSm | DataSm) -> int:
        delivered.append(pdu)
        return CommandStatus.ESME_ROK

    async with running(config(smsc), on_deliver) as bind:
        assert await bind.wait_bound(5)
        response = await bind.submit(submit_sm("hello", registered_delivery=1))
        assert isinstance(response, SubmitSmResp)
        assert response.command_status == CommandStatus.ESME_ROK
        assert response.message_id == (await smsc.event("submit"))["message_id"]
        await eventually(lambda: delivered)
        assert delivered[0].esm_class & 0x04
        await smsc.event("deliver_resp", kind="receipt", status=0)
        assert bind.status().submitted == 1


@pytest.mark.parametrize(
    ("peer", "ours", "diagnosis"),
    [
        ({}, {"password": "wrong"}, "wrong password for system_id 'verbal' (ESME_RINVPASWD)"),
        ({}, {"system_id": "nobody"}, "does not know system_id 'nobody' (ESME_RINVSYSID)"),
        (
            {"system_type": "VMA"},
            {"system_type": "OTHER"},
            "wrong system_type 'OTHER' for system_id 'verbal' (ESME_RINVSYSTYP)",
        ),
    ],
)
async def test_a_refused_bind_is_diagnosed_without_the_password(
    smscs: Smscs,
    caplog: pytest.LogCaptureFixture,
    peer: dict[str, str],
    ours: dict[str, str],
    diagnosis: str,
) -> None:
    smsc = smscs.start(password=PASSWORD, **peer)
    caplog.set_level(logging.DEBUG)
    async with running(config(smsc, **ours)) as bind:
        status = await eventually(lambda: bind.status().last_error and bind.status())
        assert diagnosis in status.last_error
        # It keeps trying, with growing delays, and says so.
        await eventually(lambda: len(smsc.of("bind")) >= 3)
        assert not bind.bound
        everything = caplog.text + repr(bind.status()) + repr(bind.config) + repr(status)
    assert diagnosis in caplog.text
    assert PASSWORD not in everything
    assert "wrong" not in repr(bind.config)  # the wrong password is a password too


async def test_a_refused_connection_is_diagnosed() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens: it is only bound, not listening
        async with running(config(port)) as bind:
            status = await eventually(lambda: bind.status().last_error and bind.status())
    assert status.last_error == f"connection refused by 127.0.0.1:{port}: nothing listens there"


async def test_an_smsc_that_never_answers_the_bind_is_diagnosed() -> None:
    # A listener that accepts connections and says nothing.
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        cfg = config(port, session=SessionConfig(response_timeout=0.3))
        async with running(cfg) as bind:
            status = await eventually(lambda: bind.status().last_error and bind.status())
    assert status.last_error == "no answer to bind_transceiver within 0.3s"


async def test_enquire_link_keeps_a_quiet_link_checked(smscs: Smscs) -> None:
    smsc = smscs.start(password=PASSWORD)
    cfg = config(smsc, session=SessionConfig(enquire_link_interval=0.2))
    async with running(cfg) as bind:
        assert await bind.wait_bound(5)
        await smsc.until(lambda events: len(smsc.of("enquire_link")) >= 3, 5, "3 enquire_links")
        assert bind.bound


async def test_the_bind_comes_back_after_the_smsc_restarts(smscs: Smscs) -> None:
    smsc = smscs.start(password=PASSWORD)
    async with running(config(smsc)) as bind:
        assert await bind.wait_bound(5)
        smsc.kill()
        await eventually(lambda: not bind.bound)
        assert "closed the connection" in (bind.status().last_error or "")
        with pytest.raises(LinkError) as raised:
            await bind.submit(submit_sm("while down"))
        assert raised.value.sent is False
        again = smscs.restart(smsc)
        assert await bind.wait_bound(5)
        response = await bind.submit(submit_sm("after"))
        assert response.command_status == CommandStatus.ESME_ROK
        await again.event("submit", text="after")


async def test_throttling_pauses_the_bind_and_hands_back_the_status(smscs: Smscs) -> None:
    smsc = smscs.start(password=PASSWORD)
    async with running(config(smsc, throttle_pause=0.3)) as bind:
        assert await bind.wait_bound(5)
        smsc.send("throttle", count=1)
        await smsc.event("ack", cmd="throttle")
        first = await bind.submit(submit_sm("one"))
        assert first.command_status == CommandStatus.ESME_RTHROTTLED
        assert not bind.has_room()  # pausing
        started = time.monotonic()
        second = await bind.submit(submit_sm("two"))
        assert time.monotonic() - started >= 0.25
        assert second.command_status == CommandStatus.ESME_ROK
        assert bind.status().throttled == 1


async def test_the_throughput_cap_paces_submits(smscs: Smscs) -> None:
    smsc = smscs.start(password=PASSWORD)
    async with running(config(smsc, throughput=50)) as bind:
        assert await bind.wait_bound(5)
        started = time.monotonic()
        await asyncio.gather(*(bind.submit(submit_sm(f"m{i}")) for i in range(100)))
        elapsed = time.monotonic() - started
    # A burst of 50, then 50 more at 50 a second (a busy machine only adds to it).
    assert elapsed >= 0.9


async def test_the_window_is_never_exceeded(smscs: Smscs) -> None:
    smsc = smscs.start(password=PASSWORD, resp_delay_ms=5)
    async with running(config(smsc, session=SessionConfig(window=7))) as bind:
        assert await bind.wait_bound(5)
        await asyncio.gather(*(bind.submit(submit_sm(f"m{i}")) for i in range(300)))
    smsc.send("stats")
    stats = await smsc.event("stats")
    assert max(stats["max_outstanding"].values()) == 7


async def test_thousands_of_queued_submits_go_in_order_without_a_stampede(
    smscs: Smscs,
) -> None:
    # Each response frees one slot of a window of 1 and must wake one waiting submit, not
    # all of them: waking all made 10,000 queued submits take minutes instead of seconds.
    smsc = smscs.start(password=PASSWORD)
    async with running(config(smsc, session=SessionConfig(window=1))) as bind:
        assert await bind.wait_bound(5)
        started = time.monotonic()
        await asyncio.gather(*(bind.submit(submit_sm(f"m{i}")) for i in range(5000)))
        elapsed = time.monotonic() - started
    assert elapsed < 60, f"{elapsed:.1f}s"  # seconds on an idle machine, minutes with a stampede
    texts = [e["text"] for e in await smsc.accepted(5000)]
    assert texts == [f"m{i}" for i in range(5000)]


async def test_an_unanswered_submit_times_out_as_sent(smscs: Smscs) -> None:
    smsc = smscs.start(password=PASSWORD, resp_delay_ms=2000)
    cfg = config(smsc, session=SessionConfig(response_timeout=0.3))
    async with running(cfg) as bind:
        assert await bind.wait_bound(5)
        with pytest.raises(LinkError) as raised:
            await bind.submit(submit_sm("slow"))
        assert raised.value.sent is True
        assert "no response within 0.3s" in str(raised.value)
        assert bind.bound  # one slow answer is no reason to drop the link


async def test_a_failing_handler_is_answered_so_the_smsc_retries(smscs: Smscs) -> None:
    smsc = smscs.start(password=PASSWORD)

    async def broken(pdu: DeliverSm | DataSm) -> int:
        raise RuntimeError("database down")

    async with running(config(smsc), broken) as bind:
        assert await bind.wait_bound(5)
        smsc.send("mo", source="15550002000", dest="15550001000", text="hi", tag="mo1")
        event = await smsc.event("deliver_resp", tag="mo1")
        assert event["status"] == CommandStatus.ESME_RX_T_APPN
        assert bind.bound


# -- regressions ----------------------------------------------------------------------------


async def test_a_pulse_waiter_cancelled_as_it_fires_is_cancelled() -> None:
    # With asyncio.wait_for (Python 3.11) the cancellation was lost when the pulse fired in the
    # same turn of the loop: the carrier's upkeep loop went on waiting and its stop() hung
    # (seen twice in test_a_part_that_fails_makes_the_message_undelivered[postgres]).
    pulse = Pulse()
    waiter = asyncio.create_task(pulse.wait(10))
    await asyncio.sleep(0)  # waiting now
    pulse.fire()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter


async def test_a_pulse_wait_ends_at_its_fire_or_its_time() -> None:
    pulse = Pulse()
    started = time.monotonic()
    await pulse.wait(0.05)
    assert time.monotonic() - started >= 0.04
    waiter = asyncio.create_task(pulse.wait(None))
    await asyncio.sleep(0)
    pulse.fire()
    await asyncio.wait_for(waiter, 1)
