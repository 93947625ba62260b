"""The opt-out keywords, and the opt-out list on a real SQLite file with its cache."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from verbal.messaging.optouts import Keyword, OptOuts, keyword
from verbal.store import create_engine, session_factory
from verbal.store.directory import Directory
from verbal.store.services import Services

NUMBER = "+15550001000"
HANDSET = "+15550002000"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("STOP", Keyword.OPT_OUT),
        ("stop", Keyword.OPT_OUT),
        ("  Stop\n", Keyword.OPT_OUT),
        ("STOPALL", Keyword.OPT_OUT),
        ("stop  all", Keyword.OPT_OUT),
        ("Unsub", Keyword.OPT_OUT),
        ("resume", None),
        ("unsubscribe", Keyword.OPT_OUT),
        ("Cancel", Keyword.OPT_OUT),
        ("END", Keyword.OPT_OUT),
        ("quit", Keyword.OPT_OUT),
        ("START", Keyword.OPT_IN),
        ("yes", Keyword.OPT_IN),
        ("\tUnstop ", Keyword.OPT_IN),
        ("HELP", Keyword.HELP),
        ("info", Keyword.HELP),
        ("stop it", None),
        ("please stop", None),
        ("STOPP", None),
        ("", None),
        ("S TOP", None),
    ],
)
def test_a_keyword_is_the_whole_text_in_any_case(body: str, expected: Keyword | None) -> None:
    assert keyword(body) == expected


async def test_a_change_applies_to_the_next_check_although_the_list_is_cached(
    tmp_path: Path, migrated_sqlite: Path
) -> None:
    path = tmp_path / "verbal.db"
    shutil.copyfile(migrated_sqlite, path)
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        sessions = session_factory(engine)
        directory = Directory(sessions)
        account = await directory.create_account()
        other = await directory.create_account()
        optouts = OptOuts(sessions, Services(sessions))

        assert await optouts.blocked(account.id, NUMBER, HANDSET) is None  # cached: empty
        assert await optouts.set(account.id, NUMBER, HANDSET, opted_out=True) == NUMBER
        assert await optouts.blocked(account.id, NUMBER, HANDSET) == NUMBER
        # Another sender, another recipient, another account: not opted out.
        assert not await optouts.blocked(account.id, "+15550001001", HANDSET)
        assert not await optouts.blocked(account.id, NUMBER, "+15550003000")
        assert not await optouts.blocked(other.id, NUMBER, HANDSET)
        # Twice is once.
        await optouts.set(account.id, NUMBER, HANDSET, opted_out=True)
        [entry] = await optouts.entries(account.id)
        assert (entry.sender, entry.recipient) == (NUMBER, HANDSET)
        assert entry.date_created.tzinfo is not None
        assert await optouts.entries(account.id, "+15550001001") == []
        # A second process's view (a fresh cache) reads the same from the file.
        fresh = OptOuts(sessions, Services(sessions))
        assert await fresh.blocked(account.id, NUMBER, HANDSET) == NUMBER

        await optouts.set(account.id, NUMBER, HANDSET, opted_out=False)
        assert not await optouts.blocked(account.id, NUMBER, HANDSET)
        assert await optouts.entries(account.id) == []
    finally:
        await engine.dispose()


async def test_an_opt_out_through_a_pool_number_is_the_whole_services(
    tmp_path: Path, migrated_sqlite: Path
) -> None:
    path = tmp_path / "verbal.db"
    shutil.copyfile(migrated_sqlite, path)
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    first, second, outside, joins_later = (f"+1555000100{n}" for n in range(4))
    try:
        sessions = session_factory(engine)
        directory = Directory(sessions)
        services = Services(sessions)
        optouts = OptOuts(sessions, services)
        account = await directory.create_account()
        rows = {n: await directory.add_number(account, n) for n in (first, second, outside)}
        rows[joins_later] = await directory.add_number(account, joins_later)
        service = await services.create(account.id, "Pool", {})
        for number in (first, second):
            await services.add_number(service, rows[number])
        # Before it joins the pool, a number keeps its own opt-out.
        assert await optouts.set(account.id, joins_later, HANDSET, opted_out=True) == joins_later

        # STOP to one pool number: the service's scope, every number of it refused.
        assert await optouts.set(account.id, first, HANDSET, opted_out=True) == service.sid
        assert [(e.sender, e.recipient) for e in await optouts.entries(account.id)] == [
            (joins_later, HANDSET),
            (service.sid, HANDSET),
        ]
        assert await optouts.blocked(account.id, first, HANDSET) == service.sid
        assert await optouts.blocked(account.id, second, HANDSET) == service.sid
        # A number out of the pool may still text the handset, unless the send names the
        # service; other handsets are not concerned.
        assert await optouts.blocked(account.id, outside, HANDSET) is None
        assert (
            await optouts.blocked(account.id, outside, HANDSET, service_sid=service.sid)
            == service.sid
        )
        assert await optouts.blocked(account.id, second, "+15550003000") is None

        # Joining the pool puts a number under the service's opt-out at once (cached
        # memberships are forgotten), and its own opt-out still holds.
        await services.add_number(service, rows[joins_later])
        assert await optouts.blocked(account.id, joins_later, HANDSET) == joins_later
        await services.remove_number(service, rows[second].sid)
        assert await optouts.blocked(account.id, second, HANDSET) is None

        # START to another pool number lifts the service's opt-out and the ones its numbers
        # kept from before they joined.
        assert await optouts.set(account.id, joins_later, HANDSET, opted_out=False) == service.sid
        assert await optouts.entries(account.id) == []
        assert await optouts.blocked(account.id, first, HANDSET) is None

        # The CLI and the console may name the service itself.
        assert await optouts.set(account.id, service.sid, HANDSET, opted_out=True) == service.sid
        assert await optouts.blocked(account.id, first, HANDSET) == service.sid
        await optouts.set(account.id, service.sid, HANDSET, opted_out=False)
        assert await optouts.blocked(account.id, first, HANDSET) is None

        # A deleted service's opt-outs go with it; its numbers keep their own.
        await optouts.set(account.id, first, HANDSET, opted_out=True)
        await optouts.set(account.id, outside, HANDSET, opted_out=True)
        await services.delete(service)
        assert [e.sender for e in await optouts.entries(account.id)] == [outside]
        assert await optouts.blocked(account.id, first, HANDSET) is None
    finally:
        await engine.dispose()
