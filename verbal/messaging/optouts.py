"""Opt-outs: who asked which of an account's senders to stop texting them.

A handset that texts an opt-out keyword (STOP and its synonyms) to a number is not sent to
from that number again until it texts an opt-in keyword (START...); HELP is answered. Each
keyword gets a reply, Twilio's default unless the account changed it or switched it off,
and still reaches the number's app.

The scope of an opt-out is the sender as Twilio has it: a number in a Messaging Service's
pool opts the handset out of the whole service (every number of the pool, and every send
naming the service), a number in none only of itself. The `opt_outs.sender` column holds
the scope: the service's SID or the number. An opt-in lifts what its scope holds: the
service's opt-out and those its numbers kept from before they joined it.

Sends check `blocked` on the hot path, so the opt-outs of an account are read once into a
cache (one query per account per `CACHE_TTL_SECONDS`, none per message); which service a
number is in comes from `Services`' cache likewise. A change made here clears the
account's entry once it has committed; one made by another process (the CLI, another node
on PostgreSQL) is seen within the cache's lifetime.

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
from verbal.store.models import Account, OptOut
from verbal.store.services import Services


class Keyword(enum.StrEnum):
    OPT_OUT = "opt-out"
    OPT_IN = "opt-in"
    HELP = "help"


# Twilio's default English keywords for long codes: the opt-out ones its Advanced Opt-Out
# documentation lists, and the standard opt-in and help words; with Plivo's further opt-out
# words (`UNSUB`, `STOP ALL`), since honouring a stop more widely is always safe. Plivo's
# further opt-in words (`RESUME`, `GO`) are left out: common words, they would opt Twilio
# users' handsets back in by surprise.
KEYWORDS: dict[str, Keyword] = {
    **dict.fromkeys(
        (
            *("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"),
            *("UNSUB", "STOP ALL"),
        ),
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


# The account's columns that replace the default replies.
REPLY_COLUMNS: dict[Keyword, str] = {
    Keyword.OPT_OUT: "opt_out_reply",
    Keyword.OPT_IN: "opt_in_reply",
    Keyword.HELP: "help_reply",
}
MAX_REPLY_CHARS = 1600  # one message's limit


def keyword(body: str) -> Keyword | None:
    """The keyword a whole message is, in any case and with any spacing around it."""
    return KEYWORDS.get(" ".join(body.split()).upper())


def reply(account: Account, kind: Keyword) -> str | None:
    """The account's reply to a keyword: its own text, the default when it set none, None
    when it switched the reply off (an empty text)."""
    own: str | None = getattr(account, REPLY_COLUMNS[kind])
    if own is None:
        return DEFAULT_REPLIES[kind]
    return own or None


def is_service(scope: str) -> bool:
    """Whether an opt-out's scope is a Messaging Service (else it is a number)."""
    return scope.startswith("MG")


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
    def __init__(self, sessions: async_sessionmaker[AsyncSession], services: Services) -> None:
        self._sessions = sessions
        self._services = services
        # Per account, the (scope, recipient) pairs opted out.
        self._pairs: TtlCache[frozenset[tuple[str, str]]] = TtlCache(CACHE_TTL_SECONDS)

    async def blocked(
        self,
        account_id: int,
        sender: str,
        recipient: str,
        session: AsyncSession | None = None,
        *,
        service_sid: str | None = None,
    ) -> str | None:
        """The scope `recipient` opted out of that a send from the number `sender` (through
        the service `service_sid`, if any) falls in, else None (cached). A caller inside a
        transaction passes its session, which reads on a miss."""

        async def load() -> frozenset[tuple[str, str]]:
            query = select(OptOut.sender, OptOut.recipient).where(OptOut.account_id == account_id)
            if session is not None:
                return frozenset((s, r) for s, r in await session.execute(query))
            async with self._sessions() as own:
                return frozenset((s, r) for s, r in await own.execute(query))

        pairs = await self._pairs.get(account_id, load, shared=session is None)
        if not pairs:
            return None  # most accounts, most of the time: no look-up of the service
        if (sender, recipient) in pairs:
            return sender
        member_of = await self._services.service_of(account_id, sender, session)
        for scope in (service_sid, member_of):
            if scope is not None and (scope, recipient) in pairs:
                return scope
        return None

    async def scope(self, account_id: int, sender: str) -> str:
        """Where an opt-out through `sender` (a number or a service's SID) applies: the
        service of the number's pool, else the number itself."""
        if is_service(sender):
            return sender
        return await self._services.service_of(account_id, sender) or sender

    async def set(self, account_id: int, sender: str, recipient: str, *, opted_out: bool) -> str:
        """Record that `recipient` opted out of (or back in to) texts through `sender`, a
        number or a service's SID, at its scope; returns the scope."""
        scope = await self.scope(account_id, sender)
        params = {"account_id": account_id, "recipient": recipient}
        if opted_out:
            changes = [{**params, "sender": scope, "date_created": datetime.now(UTC)}]
        else:
            lifted = {scope, sender}
            if is_service(scope):
                pool = await self._services.pool(scope)
                lifted.update(pool.numbers if pool is not None else ())
            changes = [{**params, "sender": s} for s in sorted(lifted)]
        async with self._sessions.begin() as session:
            await execute_in(session, _ADD if opted_out else _REMOVE, changes)
        self._pairs.forget(account_id)
        return scope

    async def entries(self, account_id: int, sender: str | None = None) -> list[OptOutEntry]:
        """The account's opt-outs (of one scope's), oldest first."""
        query = select(OptOut).where(OptOut.account_id == account_id)
        if sender is not None:
            query = query.where(OptOut.sender == sender)
        query = query.order_by(OptOut.date_created, OptOut.sender, OptOut.recipient)
        async with self._sessions() as session:
            return [
                OptOutEntry(row.sender, row.recipient, row.date_created)
                for row in await session.scalars(query)
            ]
