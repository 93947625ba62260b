"""Call records: a call's row, written through the journal, and the end of calls a dead
process left behind.

A call's row is inserted when the call is made and updated at each change of state, as
intents on the journal (`verbal/store/journal.py`), so a busy server writes many calls'
changes in one transaction. The update is guarded: it applies only while the row is not in
a final state, so a call has exactly one final state whatever order writes land in.

A call lives in the memory of the process that runs it (`node`): when that process dies,
its calls are gone with it. `recover` ends them on the next start: `completed` if they had
been answered, `failed` if not, with the cause "server restarted".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from verbal.dialects.types import CallFacts
from verbal.store.journal import Params, Statement, json_text
from verbal.store.models import Call
from verbal.voice.legs import FINAL, LegStatus

_FINAL_SQL = ", ".join(f"'{status.value}'" for status in sorted(FINAL))
_COLUMNS = (
    "sid",
    "account_id",
    "application_id",
    "session_sid",
    "parent_sid",
    "direction",
    "from_number",
    "to_number",
    "status",
    "dialect",
    "url",
    "method",
    "status_callback",
    "status_callback_method",
    "status_callback_events",
    "timeout_seconds",
    "end_cause",
    "duration",
    "node",
    "date_created",
    "date_updated",
    "answered_at",
    "ended_at",
)
_TIMES = ("date_created", "date_updated", "answered_at", "ended_at")
_CHANGING = ("session_sid", "status", "end_cause", "duration", "date_updated", "answered_at")
INSERT_CALL = Statement(
    f"INSERT INTO calls ({', '.join(_COLUMNS)}) VALUES ({', '.join(':' + c for c in _COLUMNS)})",
    order=15,
    times=_TIMES,
)
UPDATE_CALL = Statement(
    f"UPDATE calls SET {', '.join(f'{c} = :{c}' for c in (*_CHANGING, 'ended_at'))} "
    f"WHERE sid = :sid AND status NOT IN ({_FINAL_SQL})",
    order=16,
    key="sid",
    times=("date_updated", "answered_at", "ended_at"),
)
RECOVERED_CAUSE = "server restarted"


@dataclass(slots=True)
class CallRecord:
    """A call's row, in memory while the call lasts."""

    sid: str
    account_id: int
    account_sid: str
    direction: str  # inbound, outbound-api, outbound-dial
    from_number: str
    to_number: str
    dialect: str
    node: str
    status: LegStatus = LegStatus.QUEUED
    application_id: int | None = None
    session_sid: str | None = None
    parent_sid: str | None = None
    url: str | None = None
    method: str = "POST"
    status_callback: str | None = None
    status_callback_method: str = "POST"
    status_callback_events: tuple[str, ...] = ("completed",)
    timeout_seconds: int = 60
    end_cause: str | None = None
    duration: int | None = None
    date_created: datetime = field(default_factory=lambda: datetime.now(UTC))
    date_updated: datetime = field(default_factory=lambda: datetime.now(UTC))
    answered_at: datetime | None = None
    ended_at: datetime | None = None

    def facts(self) -> CallFacts:
        return CallFacts(
            sid=self.sid,
            account_sid=self.account_sid,
            from_number=self.from_number,
            to_number=self.to_number,
            status=self.status.value,
            direction=self.direction,
            created_at=self.date_created,
            parent_sid=self.parent_sid,
            duration_seconds=self.duration,
        )

    def advance(
        self, status: LegStatus, now: datetime, cause: str | None, duration: int | None
    ) -> bool:
        """Move to `status`; False (nothing changes) once the call is final."""
        if self.status.final or status == self.status:
            return False
        self.status = status
        self.date_updated = now
        if status == LegStatus.IN_PROGRESS:
            self.answered_at = now
        if status.final:
            self.ended_at = now
            self.end_cause = cause
            self.duration = duration or 0
        return True


def insert_intent(call: CallRecord) -> tuple[Statement, Params]:
    params = {name: getattr(call, name) for name in _COLUMNS}
    params["status"] = call.status.value
    params["status_callback_events"] = json_text(list(call.status_callback_events))
    return INSERT_CALL, params


def update_intent(call: CallRecord) -> tuple[Statement, Params]:
    params = {name: getattr(call, name) for name in (*_CHANGING, "ended_at")}
    params["status"] = call.status.value
    params["sid"] = call.sid
    return UPDATE_CALL, params


async def recover(sessions: async_sessionmaker[AsyncSession], node: str | None) -> int:
    """End the calls a dead process left unfinished (`node`'s, or everyone's when None:
    one process owns a SQLite file); returns how many."""
    now = datetime.now(UTC)
    async with sessions.begin() as session:
        query = select(Call).where(Call.status.not_in([s.value for s in FINAL]))
        if node is not None:
            query = query.where(Call.node == node)
        calls = list(await session.scalars(query))
        for call in calls:
            answered = call.answered_at is not None
            call.status = (LegStatus.COMPLETED if answered else LegStatus.FAILED).value
            call.end_cause = RECOVERED_CAUSE
            call.ended_at = now
            call.date_updated = now
            call.duration = int((now - call.answered_at).total_seconds()) if answered else 0
    return len(calls)
