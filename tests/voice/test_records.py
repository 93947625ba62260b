"""Call records through the journal on a real database: the final state is written once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from verbal.store import create_engine, migrate, session_factory
from verbal.store.journal import Journal, backend_for
from verbal.store.models import Account, Call
from verbal.voice.legs import LegStatus
from verbal.voice.records import CallRecord, insert_intent, recover, update_intent


async def test_a_final_state_is_never_overwritten_and_recovery_spares_finished_calls(
    database_url: str,
) -> None:
    engine = create_engine(database_url)
    await migrate(engine)
    sessions = session_factory(engine)
    journal = Journal(backend_for(engine))
    try:
        async with sessions.begin() as session:
            account = Account(
                sid="AC" + "1" * 32, auth_token="t", plivo_auth_id="MA1", friendly_name="a"
            )
            session.add(account)
        now = datetime.now(UTC)

        def record(sid: str, node: str) -> CallRecord:
            return CallRecord(
                sid=sid,
                account_id=account.id,
                account_sid=account.sid,
                direction="outbound-api",
                from_number="+15550001000",
                to_number="+15550002000",
                dialect="rcml",
                node=node,
            )

        over, live, elsewhere = (
            record("CA" + "a" * 32, "here"),
            record("CA" + "b" * 32, "here"),
            (record("CA" + "c" * 32, "there")),
        )
        for call in (over, live, elsewhere):
            await journal.write(*insert_intent(call))
        # `over` is answered, then ends busy... and a late "completed" for it changes nothing.
        over.advance(LegStatus.IN_PROGRESS, now, None, None)
        journal.write(*update_intent(over))
        over.advance(LegStatus.BUSY, now + timedelta(seconds=3), "busy", 3)
        await journal.write(*update_intent(over))
        stale = record(over.sid, "here")
        stale.status = LegStatus.IN_PROGRESS
        stale.advance(LegStatus.COMPLETED, now + timedelta(seconds=9), "app hung up", 9)
        await journal.write(*update_intent(stale))
        # The record itself refuses to leave a final state too.
        assert not over.advance(LegStatus.COMPLETED, now, "x", 1)
        live.advance(LegStatus.IN_PROGRESS, now - timedelta(seconds=5), None, None)
        await journal.write(*update_intent(live))

        assert await recover(sessions, "here") == 1
        assert await recover(sessions, "here") == 0
        async with sessions() as session:
            rows = {c.sid: c for c in await session.scalars(select(Call))}
        assert (rows[over.sid].status, rows[over.sid].end_cause, rows[over.sid].duration) == (
            "busy",
            "busy",
            3,
        )
        assert (rows[live.sid].status, rows[live.sid].end_cause) == (
            "completed",
            "server restarted",
        )
        assert rows[live.sid].duration >= 5
        assert rows[elsewhere.sid].status == "queued"  # another node's call is its own
        assert await recover(sessions, None) == 1
    finally:
        await journal.close()
        await engine.dispose()
