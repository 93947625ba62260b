"""The SMPP carrier (verbal/carriers/smpp/carrier.py) against node-smpp as the SMSC.

The carrier runs on a real SQLite database; what Verbal's pipeline would do with its
receipts and texts is recorded by `Recorder`, and the pipeline's "try again later" by
`submit_as_pipeline`. What arrived is counted at the peer, which decodes our PDUs with
its own GSM-7 and UCS-2 code.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.carriers.conftest import Smscs, eventually
from tests.peers.node import Event, NodeSmsc
from verbal.carriers import smpp_status as bind_status
from verbal.carriers.base import (
    CarrierRejected,
    CarrierTemporaryError,
    CarrierUnavailable,
    InboundSms,
    OutboundSms,
    Receipt,
    SubmitResult,
)
from verbal.carriers.smpp.client import BindConfig
from verbal.carriers.smpp.session import SessionConfig
from verbal.carriers.smpp.text import LongMessages, TextCoding, encode_message
from verbal.carriers.smpp_carrier import SmppCarrier, SmppCarrierConfig
from verbal.metrics import SMPP_SUBMITS
from verbal.store import create_engine, migrate, session_factory
from verbal.store.journal import Journal, backend_for

PASSWORD = "pw123"
OURS = "+15550001000"
HANDSET = "+15550002000"
GSM_LONG = "Grüße {tomorrow} at 10€ [sharp]. " * 12  # escapes throughout, 3 parts
UCS2_LONG = "Привет, как дела? 👋🏽 " * 9  # surrogate pairs throughout, 3+ parts


class Recorder:
    """What the pipeline would be told: receipts, and texts for the numbers it owns."""

    def __init__(self, numbers: tuple[str, ...] = (OURS,)) -> None:
        self.numbers = set(numbers)
        self.receipts: list[Receipt] = []
        self.texts: list[InboundSms] = []

    async def on_receipt(self, receipt: Receipt) -> None:
        self.receipts.append(receipt)

    async def on_inbound(self, sms: InboundSms) -> str:
        if sms.recipient not in self.numbers:
            raise LookupError(sms.recipient)
        self.texts.append(sms)
        return f"SM{len(self.texts)}"


@asynccontextmanager
async def database(url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(url)
    await migrate(engine)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


@pytest.fixture
async def store(sqlite_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    async with database(sqlite_url) as sessions:
        yield sessions


@pytest.fixture
async def each_store(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """The store on SQLite, then on PostgreSQL (row locks, other isolation)."""
    async with database(database_url) as sessions:
        yield sessions


def carrier_config(smsc: NodeSmsc | int, **overrides: Any) -> SmppCarrierConfig:
    port = smsc if isinstance(smsc, int) else smsc.port
    bind_values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "system_id": "verbal",
        "password": PASSWORD,
        "reconnect_min": 0.05,
        "reconnect_max": 0.3,
        "throttle_pause": 0.05,
        "throttle_pause_max": 0.2,
        "unbind_timeout": 2.0,
    }
    bind = BindConfig(**{**bind_values, **overrides.pop("bind", {})})
    values: dict[str, Any] = {
        "name": "acme",
        "bind": bind,
        "bind_wait": 2.0,
        "submit_patience": 5.0,
        "mo_timeout": 5.0,
        "status_interval": 0.2,
    }
    values.update(overrides)
    return SmppCarrierConfig(**values)


@asynccontextmanager
async def running(
    store: async_sessionmaker[AsyncSession], config: SmppCarrierConfig, events: Recorder
) -> AsyncIterator[SmppCarrier]:
    journal = Journal(backend_for(store.kw["bind"]))
    carrier = SmppCarrier(config, store, journal, owner="test:1")
    await carrier.start(events)
    try:
        yield carrier
    finally:
        await carrier.stop()
        await journal.close()


async def bound(carrier: SmppCarrier) -> None:
    for bind in carrier.binds:
        assert await bind.wait_bound(5), bind.status()


def sms(body: str, to: str = HANDSET, sender: str = OURS) -> OutboundSms:
    return OutboundSms(
        message_sid="SM" + uuid.uuid4().hex,
        account_sid="AC1",
        sender=sender,
        recipient=to,
        body=body,
    )


async def submit_as_pipeline(carrier: SmppCarrier, message: OutboundSms) -> SubmitResult:
    """Submit as the pipeline does: a timeout per attempt, and temporary errors retried,
    each retry marked as a resubmission."""
    for _ in range(200):
        try:
            return await asyncio.wait_for(carrier.submit(message), 2.0)
        except (CarrierTemporaryError, TimeoutError):
            await asyncio.sleep(0.05)
            message = replace(message, resubmission=True)
    raise AssertionError(f"{message.body!r} was never accepted")


def joined_texts(submits: list[Event]) -> list[str]:
    """The texts of long messages as the peer decoded them, parts joined in order."""
    messages: dict[Any, dict[int, str]] = {}
    for event in submits:
        if event["sar"]:
            key, sequence = ("sar", event["sar"]["ref"]), event["sar"]["seq"]
        elif event["udh"]:
            udh = bytes.fromhex(event["udh"])
            assert udh[0] in (0x00, 0x08)  # the concatenation IE, 8- or 16-bit reference
            key, sequence = ("udh", udh[2 : 2 + udh[1] - 2]), udh[-1]
        else:
            key, sequence = ("one", event["message_id"]), 1
        messages.setdefault(key, {})[sequence] = event["text"]
    return ["".join(parts[i] for i in sorted(parts)) for parts in messages.values()]


# --- sending ---------------------------------------------------------------------------------


async def test_under_load_the_window_of_10_stays_full_and_every_message_is_delivered(
    smscs: Smscs, store: async_sessionmaker[AsyncSession]
) -> None:
    # The SMSC holds its responses until 10 submits of the bind await theirs (hold_for_window),
    # so the window is seen full whenever Verbal fills it, however slow the machine (a bind
    # that stopped short of 10 would be answered after 2 s, and counted). All 1,000 queue for
    # the one bind at once, so the last waits for the 999 before it, beyond the 5 s of
    # patience carrier_config gives on a busy machine: the patience is no part of the test.
    smsc = smscs.start(password=PASSWORD, hold_for_window=10, receipt_delay_ms=5)
    events = Recorder()
    count = 1000
    async with running(store, carrier_config(smsc, submit_patience=60.0), events) as carrier:
        await bound(carrier)
        messages = [sms(f"load {i}") for i in range(count)]
        started = time.perf_counter()
        results = await asyncio.gather(*(carrier.submit(m) for m in messages))
        accepted = time.perf_counter() - started
        await eventually(lambda: len(events.receipts) == count, 30)
        receipted = time.perf_counter() - started
    submits = await smsc.accepted(count)
    assert Counter(e["text"] for e in submits) == Counter(m.body for m in messages)
    assert [r.carrier_message_id for r in results] == [
        next(e["message_id"] for e in submits if e["text"] == m.body) for m in messages
    ]
    smsc.send("stats")
    stats = await smsc.event("stats")
    assert max(stats["max_outstanding"].values()) == 10
    assert {r.status for r in events.receipts} == {"delivered"}
    assert {r.message_sid for r in events.receipts} == {m.message_sid for m in messages}
    print(
        f"\n{count} submits on one bind, window 10: accepted in {accepted:.2f}s "
        f"({count / accepted:.0f}/s), all receipts matched in {receipted:.2f}s"
    )


async def test_receipts_that_beat_the_response_or_come_on_another_bind_still_match(
    smscs: Smscs, each_store: async_sessionmaker[AsyncSession]
) -> None:
    smsc = smscs.start(password=PASSWORD, receipt_first=True, receipts_on="other")
    events = Recorder()
    async with running(each_store, carrier_config(smsc, binds=2), events) as carrier:
        await bound(carrier)
        messages = [sms(f"race {i}") for i in range(50)]
        results = await asyncio.gather(*(carrier.submit(m) for m in messages))
        await eventually(lambda: len(events.receipts) == len(messages))
    by_sid = {r.message_sid: r for r in events.receipts}
    for message, result in zip(messages, results, strict=True):
        assert by_sid[message.message_sid].carrier_message_id == result.carrier_message_id
        assert by_sid[message.message_sid].status == "delivered"
    # Each receipt really came first, and on the other session.
    receipts = {e["message_id"]: e for e in smsc.of("receipt")}
    for event in await smsc.accepted(len(messages)):
        assert receipts[event["message_id"]]["session"] != event["session"]


async def test_a_receipt_set_aside_is_taken_back_by_the_next_start(
    smscs: Smscs, each_store: async_sessionmaker[AsyncSession]
) -> None:
    # The receipt beats a submit_sm_resp that never comes before the carrier stops; the
    # next carrier on the same database matches it to the resubmission, which the SMSC
    # answers as a duplicate with the first id and no second receipt.
    smsc = smscs.start(password=PASSWORD, receipt_first=True, resp_delay_ms=600_000, dedupe=True)
    message = sms("answered before its id was known")
    async with running(each_store, carrier_config(smsc), Recorder()) as carrier:
        await bound(carrier)
        sending = asyncio.create_task(carrier.submit(message))
        assert (await smsc.event("deliver_resp", kind="receipt"))["status"] == 0
    await asyncio.gather(sending, return_exceptions=True)
    smsc.send("set", resp_delay_ms=0)
    events = Recorder()
    async with running(each_store, carrier_config(smsc), events) as carrier:
        await bound(carrier)
        result = await submit_as_pipeline(carrier, replace(message, resubmission=True))
        await eventually(lambda: events.receipts)
    assert [(r.status, r.message_sid, r.carrier_message_id) for r in events.receipts] == [
        ("delivered", message.message_sid, result.carrier_message_id)
    ]
    assert (len(smsc.of("receipt")), len(smsc.of("submit_repeated"))) == (1, 1)


async def test_receipts_that_spell_the_id_in_decimal_match_a_hex_id(
    smscs: Smscs, store: async_sessionmaker[AsyncSession]
) -> None:
    smsc = smscs.start(password=PASSWORD, receipt_id_format="dec", receipt_tlvs=False)
    events = Recorder()
    async with running(store, carrier_config(smsc), events) as carrier:
        await bound(carrier)
        message = sms("hex and decimal")
        result = await carrier.submit(message)
        await eventually(lambda: events.receipts)
    receipt = (await smsc.event("receipt"))["text"]
    assert f"id:{int(result.carrier_message_id, 16)} " in receipt
    assert events.receipts[0].message_sid == message.message_sid


@pytest.mark.parametrize("method", list(LongMessages))
@pytest.mark.parametrize("text", [GSM_LONG, UCS2_LONG], ids=["gsm7", "ucs2"])
async def test_long_messages_arrive_intact(
    smscs: Smscs, store: async_sessionmaker[AsyncSession], method: LongMessages, text: str
) -> None:
    smsc = smscs.start(password=PASSWORD)
    events = Recorder()
    config = carrier_config(smsc, coding=TextCoding(long_messages=method))
    async with running(store, config, events) as carrier:
        await bound(carrier)
        message = sms(text)
        result = await carrier.submit(message)
        submits = await smsc.accepted(len(encode_message(text, config.coding)))
        parts = 1 if method is LongMessages.PAYLOAD else len(submits)
        await eventually(lambda: events.receipts)
        # No second receipt for the other parts: theirs came before a later message's.
        later = sms("later")
        await carrier.submit(later)
        await eventually(lambda: any(r.message_sid == later.message_sid for r in events.receipts))
    assert joined_texts(submits) == [text]
    assert submits[0]["data_coding"] == (8 if text is UCS2_LONG else 0)
    assert parts >= 3 or method is LongMessages.PAYLOAD
    assert all(e["registered_delivery"] == 1 for e in submits)
    assert result.carrier_message_id == submits[0]["message_id"]
    # One receipt for the message, once every part is delivered.
    assert [(r.status, r.message_sid) for r in events.receipts] == [
        ("delivered", message.message_sid),
        ("delivered", later.message_sid),
    ]


async def test_long_message_references_roll_per_destination(
    smscs: Smscs, store: async_sessionmaker[AsyncSession]
) -> None:
    smsc = smscs.start(password=PASSWORD)
    async with running(store, carrier_config(smsc), Recorder()) as carrier:
        await bound(carrier)
        for to in (HANDSET, HANDSET, "+15550003000", HANDSET):
            await carrier.submit(sms(GSM_LONG, to=to))
    references: dict[str, list[int]] = {}
    for event in await smsc.accepted(12):
        if bytes.fromhex(event["udh"])[-1] == 1:
            references.setdefault(event["dest"], []).append(bytes.fromhex(event["udh"])[2])
    mine = references[HANDSET.removeprefix("+")]
    assert [(b - a) % 256 for a, b in itertools.pairwise(mine)] == [1, 1]


async def test_receipts_for_the_parts_of_many_long_messages_at_once(
    smscs: Smscs, each_store: async_sessionmaker[AsyncSession]
) -> None:
    # Parts' receipts arrive together on two binds and are recorded concurrently; each
    # message is reported delivered once, when its last part is (row locks on PostgreSQL).
    smsc = smscs.start(password=PASSWORD, receipt_delay_ms=0)
    events = Recorder()
    async with running(each_store, carrier_config(smsc, binds=2), events) as carrier:
        await bound(carrier)
        messages = [sms(f"{i}: {GSM_LONG}") for i in range(20)]
        await asyncio.gather(*(carrier.submit(m) for m in messages))
        await eventually(lambda: len(events.receipts) == len(messages))
        # A message sent after them: once its receipt is in, a second report of any of the
        # others (their parts' receipts came before it) would be too.
        last = sms("last")
        await carrier.submit(last)
        await eventually(lambda: any(r.message_sid == last.message_sid for r in events.receipts))
    assert Counter(r.message_sid for r in events.receipts) == Counter(
        m.message_sid for m in [*messages, last]
    )
    assert {r.status for r in events.receipts} == {"delivered"}


async def test_a_part_that_fails_makes_the_message_undelivered(
    smscs: Smscs, each_store: async_sessionmaker[AsyncSession]
) -> None:
    smsc = smscs.start(password=PASSWORD, receipt_stat="UNDELIV", receipt_err="001")
    events = Recorder()
    async with running(each_store, carrier_config(smsc), events) as carrier:
        await bound(carrier)
        message = sms(GSM_LONG)
        await carrier.submit(message)
        await eventually(lambda: events.receipts)
    receipt = events.receipts[0]
    assert (receipt.status, receipt.error_code, receipt.message_sid) == (
        "undelivered",
        30003,
        message.message_sid,
    )
    assert receipt.error_message is not None
    # Every part fails; whichever receipt is taken first names its part.
    assert re.match(r"part [123] of 3: ", receipt.error_message), receipt.error_message
    assert "stat:UNDELIV" in receipt.error_message
    assert "err:001" in receipt.error_message


async def test_transmitter_and_receiver_pairs(
    smscs: Smscs, store: async_sessionmaker[AsyncSession]
) -> None:
    smsc = smscs.start(password=PASSWORD)
    events = Recorder()
    async with running(store, carrier_config(smsc, pairs=True), events) as carrier:
        await bound(carrier)
        assert [b.config.mode.value for b in carrier.binds] == ["tx", "rx"]
        message = sms("over a pair")
        await carrier.submit(message)
        await eventually(lambda: events.receipts)
    assert sorted(e["mode"] for e in smsc.of("bind")) == ["receiver", "transmitter"]
    receipt = await smsc.event("receipt")
    receiver = next(e["session"] for e in smsc.of("bind") if e["mode"] == "receiver")
    assert receipt["session"] == receiver
    assert events.receipts[0].message_sid == message.message_sid


@pytest.mark.parametrize(
    ("status", "error", "code"),
    [
        (0x0B, CarrierRejected, 30005),  # ESME_RINVDSTADR
        (0x0A, CarrierRejected, 30007),  # ESME_RINVSRCADR
        (0x45, CarrierTemporaryError, 30008),  # ESME_RSUBMITFAIL
        (0x08, CarrierTemporaryError, 30008),  # ESME_RSYSERR
    ],
)
async def test_refusals_are_permanent_or_temporary(
    smscs: Smscs,
    store: async_sessionmaker[AsyncSession],
    status: int,
    error: type[Exception],
    code: int,
) -> None:
    smsc = smscs.start(password=PASSWORD, submit_status=status)
    async with running(store, carrier_config(smsc), Recorder()) as carrier:
        await bound(carrier)
        with pytest.raises(error) as raised:
            await carrier.submit(sms("refused"))
    assert raised.type is error
    assert raised.value.code == code  # type: ignore[attr-defined]
    assert "acme" in str(raised.value)


async def test_no_bind_up_makes_the_carrier_unavailable_with_the_diagnosis(
    store: async_sessionmaker[AsyncSession],
) -> None:
    config = carrier_config(1, bind_wait=0.5)  # nothing listens on port 1
    async with running(store, config, Recorder()) as carrier:
        started = time.monotonic()
        with pytest.raises(CarrierUnavailable) as raised:
            await carrier.submit(sms("nowhere"))
    assert time.monotonic() - started < 4  # bind_wait (0.5 s), not submit_patience (5 s)
    assert "no bind of acme is up: connection refused by 127.0.0.1:1" in str(raised.value)


async def test_throttling_loses_nothing_and_sends_nothing_twice(
    smscs: Smscs, store: async_sessionmaker[AsyncSession]
) -> None:
    smsc = smscs.start(password=PASSWORD)
    async with running(store, carrier_config(smsc, binds=2), Recorder()) as carrier:
        await bound(carrier)
        smsc.send("throttle", count=40)
        await smsc.event("ack", cmd="throttle")
        messages = [sms(f"throttled {i}") for i in range(60)]
        await asyncio.gather(*(submit_as_pipeline(carrier, m) for m in messages))
        assert sum(s.throttled for s in carrier.statuses()) == 40
    assert len(smsc.of("submit_refused")) == 40
    submits = await smsc.accepted(len(messages))
    assert Counter(e["text"] for e in submits) == Counter(m.body for m in messages)


async def test_a_retry_sends_only_the_parts_not_yet_accepted(
    smscs: Smscs, store: async_sessionmaker[AsyncSession]
) -> None:
    smsc = smscs.start(password=PASSWORD)
    config = carrier_config(
        smsc, submit_patience=0.2, bind={"throttle_pause": 0.5, "throttle_pause_max": 0.5}
    )
    async with running(store, config, Recorder()) as carrier:
        await bound(carrier)
        message = sms(GSM_LONG)

        async def throttle_after_first() -> None:
            # Part 1 goes through; part 2 meets a throttle whose pause outlasts the patience.
            await smsc.until(lambda events: smsc.submits(), 5)
            smsc.send("throttle", count=1)

        smsc.send("set", resp_delay_ms=100)
        watcher = asyncio.create_task(throttle_after_first())
        with pytest.raises(CarrierTemporaryError, match="acme is throttling"):
            await carrier.submit(message)
        await watcher
        smsc.send("set", resp_delay_ms=0)
        result = await submit_as_pipeline(carrier, message)
    submits = await smsc.accepted(3)
    await smsc.event("unbind")  # the carrier stopped: it sent all it would before this
    assert len(smsc.submits()) == 3  # each part once: part 1 was not sent again
    assert joined_texts(submits) == [GSM_LONG]
    assert result.carrier_message_id == submits[0]["message_id"]


async def test_the_same_message_submitted_twice_at_once_goes_out_once(
    smscs: Smscs, store: async_sessionmaker[AsyncSession]
) -> None:
    smsc = smscs.start(password=PASSWORD, resp_delay_ms=200)
    async with running(store, carrier_config(smsc), Recorder()) as carrier:
        await bound(carrier)
        message = sms("only once")
        first, second = await asyncio.gather(carrier.submit(message), carrier.submit(message))
        # Later, as the pipeline resubmits after a timeout: found among the recorded parts.
        third = await carrier.submit(replace(message, resubmission=True))
    assert first == second == third
    await smsc.accepted(1)
    await smsc.event("unbind")  # the carrier stopped: it sent all it would before this
    assert len(smsc.submits()) == 1


@pytest.mark.parametrize("crash", [False, True], ids=["restart", "kill-9"])
async def test_the_smsc_restarting_mid_stream_loses_nothing(
    smscs: Smscs, store: async_sessionmaker[AsyncSession], crash: bool
) -> None:
    smsc = smscs.start(password=PASSWORD, resp_delay_ms=1)
    unanswered = SMPP_SUBMITS.labels("acme", "unanswered")
    unanswered_before = unanswered._value.get()
    async with running(store, carrier_config(smsc, binds=2), Recorder()) as carrier:
        await bound(carrier)
        messages = [sms(f"restart {i}") for i in range(600)]
        sending = asyncio.gather(*(submit_as_pipeline(carrier, m) for m in messages))
        await smsc.until(lambda events: len(smsc.submits()) >= 150, 20, "150 submits")
        if crash:
            smsc.kill()
        else:
            await asyncio.to_thread(smsc.stop)
        await eventually(lambda: not any(b.bound for b in carrier.binds))
        again = smscs.restart(smsc)
        await asyncio.wait_for(sending, 60)
        assert all(b.bound for b in carrier.binds)
    bodies = {m.body for m in messages}
    await eventually(lambda: {e["text"] for e in smsc.submits() + again.submits()} >= bodies)
    counts = Counter(e["text"] for e in smsc.submits() + again.submits())
    assert set(counts) == bodies  # nothing lost
    twice = [text for text, n in counts.items() if n > 1]
    if crash:
        # A crash can swallow responses already written: those messages went out again,
        # and only those (at most the ones the SMSC never answered).
        assert len(twice) <= unanswered._value.get() - unanswered_before
        print(f"\nkill -9 mid-stream: {len(twice)} of {len(messages)} sent twice")
    else:
        assert twice == []


# --- status ----------------------------------------------------------------------------------


async def test_binds_report_their_state_for_the_cli(
    smscs: Smscs, store: async_sessionmaker[AsyncSession]
) -> None:
    smsc = smscs.start(password=PASSWORD)
    wrong = carrier_config(smsc, name="other", bind={"password": "nope"})
    async with (
        running(store, carrier_config(smsc, binds=2), Recorder()) as carrier,
        running(store, wrong, Recorder()),
    ):
        await bound(carrier)
        await carrier.submit(sms("counted"))

        async def reported() -> list[bind_status.ReportedBind]:
            rows = await bind_status.read(store, 0.2)
            ok = [r for r in rows if r.carrier == "acme" and r.submitted]
            return rows if ok and any(r.last_error for r in rows) else []

        rows: list[bind_status.ReportedBind] = []
        deadline = time.monotonic() + 5
        while not rows and time.monotonic() < deadline:
            rows = await reported()
            await asyncio.sleep(0.05)
    by_bind = {r.bind: r for r in rows}
    assert set(by_bind) == {"acme#1", "acme#2", "other#1"}
    assert by_bind["acme#1"].state == "bound"
    assert by_bind["acme#1"].window == 10
    assert sum(by_bind[b].submitted for b in ("acme#1", "acme#2")) == 1
    assert by_bind["other#1"].state != "bound"
    assert "wrong password" in (by_bind["other#1"].last_error or "")
    assert not any(r.stale for r in rows)
    # Stopping withdraws them.
    assert await bind_status.read(store, 0.2) == []


# --- inbound texts ---------------------------------------------------------------------------


async def mo(smsc: NodeSmsc, tag: str, **fields: Any) -> Event:
    smsc.send("mo", tag=tag, **fields)
    return await smsc.event("deliver_resp", tag=tag)


@pytest.mark.parametrize(
    ("text", "data_coding"),
    [("Hello @ £ {€}", 0), ("Привет 👋🏽", 8), ("café", 3)],
    ids=["gsm7", "ucs2", "latin1"],
)
async def test_a_text_reaches_the_number(
    smscs: Smscs, store: async_sessionmaker[AsyncSession], text: str, data_coding: int
) -> None:
    smsc = smscs.start(password=PASSWORD)
    events = Recorder()
    async with running(store, carrier_config(smsc), events) as carrier:
        await bound(carrier)
        answer = await mo(
            smsc, "t", source="15550002000", dest="15550001000", text=text, data_coding=data_coding
        )
    assert answer["status"] == 0
    assert [(t.carrier, t.sender, t.recipient, t.body) for t in events.texts] == [
        ("acme", HANDSET, OURS, text)
    ]


def split(text: str, parts: int) -> list[str]:
    size = -(-len(text) // parts)
    return [text[i : i + size] for i in range(0, len(text), size)]


@pytest.mark.parametrize("method", ["udh8", "udh16", "sar"])
@pytest.mark.parametrize(("text", "data_coding"), [(GSM_LONG, 0), (UCS2_LONG, 8)])
async def test_a_long_text_is_joined_whatever_the_order_of_its_parts(
    smscs: Smscs,
    store: async_sessionmaker[AsyncSession],
    method: str,
    text: str,
    data_coding: int,
) -> None:
    smsc = smscs.start(password=PASSWORD)
    events = Recorder()
    pieces = split(text.replace("👋🏽", "!"), 3)  # node encodes each piece on its own
    whole = "".join(pieces)
    async with running(store, carrier_config(smsc, binds=2), events) as carrier:
        await bound(carrier)
        for sequence in (2, 3, 1):
            fields: dict[str, Any] = {}
            if method == "udh8":
                fields["udh"] = f"05000342{3:02x}{sequence:02x}"
            elif method == "udh16":
                fields["udh"] = f"0608041234{3:02x}{sequence:02x}"
            else:
                fields["sar"] = {"ref": 0x1234, "total": 3, "seq": sequence}
            answer = await mo(
                smsc,
                f"p{sequence}",
                source="15550002000",
                dest="15550001000",
                text=pieces[sequence - 1],
                data_coding=data_coding,
                **fields,
            )
            assert answer["status"] == 0
    assert [t.body for t in events.texts] == [whole]


async def test_a_long_text_missing_a_part_is_handed_over_marked_after_the_timeout(
    smscs: Smscs, store: async_sessionmaker[AsyncSession]
) -> None:
    smsc = smscs.start(password=PASSWORD)
    events = Recorder()
    async with running(store, carrier_config(smsc, mo_timeout=0.5), events) as carrier:
        await bound(carrier)
        for sequence, piece in ((1, "first "), (3, " third")):
            await mo(
                smsc,
                f"p{sequence}",
                source="15550002000",
                dest="15550001000",
                text=piece,
                data_coding=0,
                udh=f"0500037703{sequence:02x}",
            )
        assert events.texts == []
        await eventually(lambda: events.texts, 5)
    assert events.texts[0].body == "first [part 2/3 missing] third"


async def test_a_stored_part_another_worker_took_back_is_not_handed_over_twice(
    smscs: Smscs, each_store: async_sessionmaker[AsyncSession], caplog: pytest.LogCaptureFixture
) -> None:
    # A worker starting takes back every stored part of the carrier, also those of a text a
    # live worker is joining: when that one completes it, the other must not hand over its
    # copy of part 1 as an incomplete text once its timeout has passed.
    smsc = smscs.start(password=PASSWORD)
    here, there = Recorder(), Recorder()
    caplog.set_level("INFO", logger="verbal.carriers.smpp")

    async def part(sequence: int, piece: str) -> None:
        answer = await mo(
            smsc,
            f"p{sequence}",
            source="15550002000",
            dest="15550001000",
            text=piece,
            data_coding=0,
            udh=f"0500037802{sequence:02x}",
        )
        assert answer["status"] == 0

    async with running(each_store, carrier_config(smsc), here) as first:
        await bound(first)  # the SMSC sends texts to the first bind
        await part(1, "one half, ")
        config = carrier_config(smsc, mo_timeout=0.5)
        async with running(each_store, config, there) as second:  # takes back part 1
            await bound(second)
            await part(2, "the other")
            await eventually(lambda: here.texts)
            # The second's timeout has passed once it either drops its copy or hands it over.
            await eventually(lambda: "was joined elsewhere" in caplog.text or there.texts, 5)
    assert [t.body for t in here.texts] == ["one half, the other"]
    assert there.texts == []


async def test_a_text_for_a_number_nobody_owns_is_refused(
    smscs: Smscs, store: async_sessionmaker[AsyncSession]
) -> None:
    smsc = smscs.start(password=PASSWORD)
    events = Recorder()
    async with running(store, carrier_config(smsc), events) as carrier:
        await bound(carrier)
        answer = await mo(smsc, "x", source="15550002000", dest="15559999999", text="anyone?")
    assert answer["status"] == 0x0B  # ESME_RINVDSTADR: the SMSC drops it
    assert events.texts == []


async def test_a_full_international_number_without_its_ton_is_still_e164(
    smscs: Smscs, store: async_sessionmaker[AsyncSession]
) -> None:
    smsc = smscs.start(password=PASSWORD)
    events = Recorder(numbers=(OURS, "12345"))
    async with running(store, carrier_config(smsc), events) as carrier:
        await bound(carrier)
        await mo(smsc, "a", source="15550002000", source_ton=0, dest="15550001000", text="a")
        await mo(smsc, "b", source="15550002000", dest="12345", dest_ton=3, text="b")
    assert [(t.sender, t.recipient) for t in events.texts] == [
        (HANDSET, OURS),
        (HANDSET, "12345"),
    ]


async def test_unreadable_texts_and_receipts_are_answered_and_the_binds_stay_up(
    smscs: Smscs, store: async_sessionmaker[AsyncSession]
) -> None:
    smsc = smscs.start(password=PASSWORD)
    events = Recorder()
    async with running(store, carrier_config(smsc), events) as carrier:
        await bound(carrier)
        # A UDH claiming 9 octets where there is 1: the SMSC should not send it again.
        overrun = await mo(smsc, "u", source="1555", dest="15550001000", text="x", udh="0900")
        smsc.send("receipt", tag="r1", text="id: stat:DELIVRD")  # names no message
        smsc.send("receipt", tag="r2", text="id:424242 stat:DELIVRD", receipted_message_id="1")
        unread = [await smsc.event("deliver_resp", tag=tag) for tag in ("r1", "r2")]
        assert all(bind.bound for bind in carrier.binds)
        # And the next message goes through as ever.
        await carrier.submit(sms("still fine"))
        await eventually(lambda: events.receipts)
    assert overrun["status"] == 0x65  # ESME_RX_P_APPN
    assert [event["status"] for event in unread] == [0, 0]
    assert events.texts == []


def test_the_config_hides_the_password() -> None:
    config = carrier_config(2775)
    assert PASSWORD not in repr(config)
    assert PASSWORD not in repr(replace(config, binds=3))
    assert "SessionConfig" in repr(config.bind) and isinstance(config.bind.session, SessionConfig)


async def test_an_id_the_smsc_reuses_belongs_to_the_newest_part_without_its_receipt(
    each_store: async_sessionmaker[AsyncSession],
) -> None:
    # SMSCs reuse ids once their counters wrap: the part recorded last owns the id, and the
    # receipt of the older part does not carry over to it (one upsert per part).
    from sqlalchemy import text

    from verbal.carriers.smpp_carrier import RECEIPT_ON_PART, RECORD_PART

    journal = Journal(backend_for(each_store.kw["bind"]))

    def part(message_sid: str) -> dict[str, Any]:
        return {
            "carrier": "acme",
            "message_sid": message_sid,
            "part_id": "ab12",
            "id_decimal": str(0xAB12),
            "id_hex": "ab12",
            "sequence": 1,
            "total": 1,
            "reference": 7,
            "created_at": datetime.now(UTC),
        }

    try:
        await journal.write(RECORD_PART, part("SMold"))
        receipt = {"carrier": "acme", "part_id": "ab12", "state": "DELIVRD"}
        await journal.write(
            RECEIPT_ON_PART,
            {**receipt, "outcome": "delivered", "error_code": None, "error_message": None},
        )
        await journal.write(RECORD_PART, part("SMnew"))
    finally:
        await journal.close()
    async with each_store() as session:
        rows = (
            await session.execute(
                text("SELECT message_sid, state, outcome FROM smpp_parts WHERE part_id = 'ab12'")
            )
        ).all()
    assert [tuple(row) for row in rows] == [("SMnew", None, None)]
