"""Conversation cookies on disk and in memory: one row per conversation, written through the
journal, read from memory where this process is the only writer.

Writes: an answer that changed a conversation's cookies is one upsert on the journal
(`conversation_cookies`, keyed by account, app number and handset), awaited before the
fetch returns, so the next request of the conversation (here or, on PostgreSQL, in another
worker) and a restart find it. Expired rows are deleted by the journal every
`PURGE_SECONDS`, so the table holds at most the conversations of the last four hours that
set cookies.

Reads: on SQLite a single process runs every session, so what it wrote is what the table
holds: the jars live in a bounded LRU cache, loaded from the table once at first use, and a
request costs no query. While the cache holds every live row (`_complete`), a conversation
not in it has no cookies; after an eviction, a miss reads its one row. Workers sharing
PostgreSQL each write the table, so there a request reads its conversation's row (one
primary-key lookup); a cache there would send stale cookies.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from verbal.store.journal import Journal, Statement
from verbal.webhooks.cookies import Conversation, Jar

# Conversations whose jars stay in memory: at most MAX_CACHED * MAX_BYTES (16 MiB) of
# names and values (plus Python's overhead per cookie), typically a few hundred bytes each.
MAX_CACHED = 4096
PURGE_SECONDS = 600.0

UPSERT = Statement(
    "INSERT INTO conversation_cookies (account_id, app_number, handset, cookies, expires) "
    "VALUES (:account_id, :app_number, :handset, :cookies, :expires) "
    "ON CONFLICT (account_id, app_number, handset) "
    "DO UPDATE SET cookies = excluded.cookies, expires = excluded.expires",
    order=80,
)
PURGE = Statement("DELETE FROM conversation_cookies WHERE expires <= :now", order=81)
_ONE = text(
    "SELECT cookies FROM conversation_cookies WHERE account_id = :account_id "
    "AND app_number = :app_number AND handset = :handset AND expires > :now"
)
_LIVE = text(
    "SELECT account_id, app_number, handset, cookies FROM conversation_cookies "
    "WHERE expires > :now ORDER BY expires DESC LIMIT :limit"
)


class ConversationCookies:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        journal: Journal,
        *,
        shared_database: bool,
        max_cached: int = MAX_CACHED,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sessions = sessions
        self._journal = journal
        self._shared = shared_database
        self._max_cached = max_cached
        self._clock = clock
        self._cache: collections.OrderedDict[Conversation, Jar] = collections.OrderedDict()
        self._loaded = False
        self._loading = asyncio.Lock()
        self._complete = False
        self._purged = 0.0

    async def jar(self, conversation: Conversation) -> Jar:
        """The conversation's live cookies."""
        now = self._clock()
        if self._shared:
            return (await self._read(conversation, now)).live(now)
        if not self._loaded:
            await self._load_live(now)
        jar = self._cache.get(conversation)
        if jar is None and not self._complete:
            read = await self._read(conversation, now)
            # A jar kept while the row was being read is newer than the row.
            jar = self._cache.get(conversation, read)
        if jar is None:
            return Jar()
        self._remember(conversation, jar)
        return jar.live(now)

    async def keep(self, conversation: Conversation, jar: Jar) -> None:
        """Store the conversation's cookies; returns once they are committed."""
        now = self._clock()
        if not self._shared:
            self._remember(conversation, jar)
        written = self._journal.write(
            UPSERT,
            {
                "account_id": conversation.account_id,
                "app_number": conversation.app_number,
                "handset": conversation.handset,
                "cookies": jar.dumps(),
                "expires": jar.expires,
            },
        )
        if now - self._purged >= PURGE_SECONDS:
            self._purged = now
            self._journal.write(PURGE, {"now": now})
        await written

    def _remember(self, conversation: Conversation, jar: Jar) -> None:
        self._cache[conversation] = jar
        self._cache.move_to_end(conversation)
        if len(self._cache) > self._max_cached:
            self._cache.popitem(last=False)
            self._complete = False  # what was evicted is only on disk now

    async def _read(self, conversation: Conversation, now: float) -> Jar:
        async with self._sessions() as session:
            stored = await session.scalar(
                _ONE,
                {
                    "account_id": conversation.account_id,
                    "app_number": conversation.app_number,
                    "handset": conversation.handset,
                    "now": now,
                },
            )
        return Jar.loads(stored) if stored else Jar()

    async def _load_live(self, now: float) -> None:
        async with self._loading:
            if self._loaded:
                return
            async with self._sessions() as session:
                rows = (
                    await session.execute(_LIVE, {"now": now, "limit": self._max_cached + 1})
                ).all()
            self._complete = len(rows) <= self._max_cached
            # Oldest first, so that the freshest are the last to be evicted; a jar kept
            # meanwhile is newer than its row.
            for account_id, app_number, handset, stored in reversed(rows[: self._max_cached]):
                key = Conversation(account_id, app_number, handset)
                self._cache.setdefault(key, Jar.loads(stored))
            self._loaded = True
