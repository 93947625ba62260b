"""The opt-out keywords, and the opt-out list on a real SQLite file with its cache."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from verbal.messaging.optouts import Keyword, OptOuts, keyword
from verbal.store import create_engine, session_factory
from verbal.store.directory import Directory

NUMBER = "+15550001000"
HANDSET = "+15550002000"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("STOP", Keyword.OPT_OUT),
        ("stop", Keyword.OPT_OUT),
        ("  Stop\n", Keyword.OPT_OUT),
        ("STOPALL", Keyword.OPT_OUT),
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
        optouts = OptOuts(sessions)

        assert not await optouts.blocked(account.id, NUMBER, HANDSET)  # cached: empty
        await optouts.set(account.id, NUMBER, HANDSET, opted_out=True)
        assert await optouts.blocked(account.id, NUMBER, HANDSET)
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
        assert await OptOuts(sessions).blocked(account.id, NUMBER, HANDSET)

        await optouts.set(account.id, NUMBER, HANDSET, opted_out=False)
        assert not await optouts.blocked(account.id, NUMBER, HANDSET)
        assert await optouts.entries(account.id) == []
    finally:
        await engine.dispose()
