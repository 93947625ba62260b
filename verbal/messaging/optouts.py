"""Opt-outs: who asked which of an account's numbers to stop texting them.

A handset that texts an opt-out keyword (STOP and its synonyms) to a number is not sent to
from that number again until it texts an opt-in keyword (START...); HELP is answered. Each
keyword gets a confirmation, as Twilio sends by default, and still reaches the number's
app. The sender number is the scope of an opt-out.

Sends check `blocked` on the hot path, so the opt-outs of an account are read once into a
cache (one query per account per `CACHE_TTL_SECONDS`, none per message). A change made
here clears the account's entry once it has committed; one made by another process (the
CLI, another node on PostgreSQL) is seen within the cache's lifetime.

Writes go through a short transaction of their own rather than the journal: they are rare,
and a STOP and a START that arrive together must end in the order they committed, which
the journal's per-shape ordering within a tick would not keep.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from verbal.store.cache import TtlCache
from verbal.store.directory import CACHE_TTL_SECONDS
from verbal.store.journal import Statement, execute_in
from verbal.store.models import OptOut


class Keyword(enum.StrEnum):
    OPT_OUT = "opt-out"
    OPT_IN = "opt-in"
    HELP = "help"


# Twilio's default English keywords for long codes: the opt-out ones its Advanced Opt-Out
# documentation lists, and the standard opt-in and help words.
KEYWORDS: dict[str, Keyword] = {
    **dict.fromkeys(
        ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"),
        Keyword.OPT_OUT,
    ),
    **dict.fromkeys(("START", "YES", "UNSTOP"), Keyword.OPT_IN),
    **dict.fromkeys(("HELP", "INFO"), Keyword.HELP),
}

# The confirmations, in our own words, saying what Twilio's default replies say.
DEFAULT_REPLIES: dict[Keyword, str] = {
    Keyword.OPT_OUT: (
        "You are now unsubscribed and will get no more messages from this number. "
        "Reply START to subscribe again."
    ),
    Keyword.OPT_IN: (
        "You are subscribed again to messages from this number. Reply HELP for help, "
        "STOP to unsubscribe. Message and data rates may apply."
    ),
    Keyword.HELP: "Reply STOP to unsubscribe. Message and data rates may apply.",
}


def keyword(body: str) -> Keyword | None:
    """The keyword a whole message is, in any case and with any spacing around it."""
    return KEYWORDS.get(" ".join(body.split()).upper())


@dataclass(frozen=True, slots=True)
class OptOutEntry:
    sender: str
    recipient: str
    date_created: datetime


_ADD = Statement(
    "INSERT INTO opt_outs (account_id, sender, recipient, date_created) "
    "VALUES (:account_id, :sender, :recipient, :date_created) "
    "ON CONFLICT (account_id, sender, recipient) DO NOTHING",
    order=0,
    times=("date_created",),
)
_REMOVE = Statement(
    "DELETE FROM opt_outs WHERE account_id = :account_id AND sender = :sender "
    "AND recipient = :recipient",
    order=0,
)


class OptOuts:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        # Per account, the (sender, recipient) pairs opted out.
        self._pairs: TtlCache[frozenset[tuple[str, str]]] = TtlCache(CACHE_TTL_SECONDS)

    async def blocked(
        self, account_id: int, sender: str, recipient: str, session: AsyncSession | None = None
    ) -> bool:
        """Whether `recipient` opted out of texts from `sender` (cached). A caller inside a
        transaction passes its session, which reads on a miss."""

        async def load() -> frozenset[tuple[str, str]]:
            query = select(OptOut.sender, OptOut.recipient).where(OptOut.account_id == account_id)
            if session is not None:
                return frozenset((s, r) for s, r in await session.execute(query))
            async with self._sessions() as own:
                return frozenset((s, r) for s, r in await own.execute(query))

        pairs = await self._pairs.get(account_id, load, shared=session is None)
        return pairs is not None and (sender, recipient) in pairs

    async def set(self, account_id: int, sender: str, recipient: str, *, opted_out: bool) -> None:
        """Record that `recipient` opted out of (or back in to) texts from `sender`."""
        params = {"account_id": account_id, "sender": sender, "recipient": recipient}
        async with self._sessions.begin() as session:
            if opted_out:
                await execute_in(session, _ADD, [{**params, "date_created": datetime.now(UTC)}])
            else:
                await execute_in(session, _REMOVE, [params])
        self._pairs.forget(account_id)

    async def entries(self, account_id: int, sender: str | None = None) -> list[OptOutEntry]:
        """The account's opt-outs (of one sender's), oldest first."""
        query = select(OptOut).where(OptOut.account_id == account_id)
        if sender is not None:
            query = query.where(OptOut.sender == sender)
        query = query.order_by(OptOut.date_created, OptOut.sender, OptOut.recipient)
        async with self._sessions() as session:
            return [
                OptOutEntry(row.sender, row.recipient, row.date_created)
                for row in await session.scalars(query)
            ]
