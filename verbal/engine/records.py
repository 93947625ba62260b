"""A session step's outcome as journal intents: its row, its log events, its jobs.

The engine writes a step as one batch on the journal (`verbal/store/journal.py`), beside the
messages the step accepted (`ledger.intents`): written without yielding to the event loop in
between, they land in one tick, so they commit together or not at all.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from verbal.dispatch.queue import ClaimedJob
from verbal.engine.interpreter import SessionState
from verbal.messaging import ledger
from verbal.store.journal import Params, Statement, json_text

_FIXED = (
    "sid",
    "account_id",
    "application_id",
    "channel",
    "launch",
    "inbound_message_sid",
    "initial_text",
    "parameters",
    "started_at",
)
# What a step may change.
_MUTABLE = (
    "dialect",
    "local_number",
    "remote_number",
    "initial_text_used",
    "state",
    "document_url",
    "document_type",
    "document_body",
    "verb_index",
    "documents_fetched",
    "sequence",
    "results",
    "waiting",
    "end_reason",
    "ended_at",
    "call_sid",
)
_JSON = ("parameters", "results", "waiting")

INSERT_SESSION = Statement(
    f"INSERT INTO sessions ({', '.join(_FIXED + _MUTABLE)}) "
    f"VALUES ({', '.join(':' + c for c in _FIXED + _MUTABLE)})",
    order=12,
    times=("started_at", "ended_at"),
)
UPDATE_SESSION = Statement(
    f"UPDATE sessions SET {', '.join(f'{c} = :{c}' for c in _MUTABLE)} WHERE sid = :sid",
    order=13,
    key="sid",
    times=("ended_at",),
)
# The session's id is not known before its row is inserted (in the same batch): look it up.
INSERT_EVENT = Statement(
    "INSERT INTO session_events (session_id, kind, detail, occurred_at) "
    "VALUES ((SELECT id FROM sessions WHERE sid = :sid), :kind, :detail, :occurred_at)",
    order=14,
    times=("occurred_at",),
)
# `JobQueue.finish` as an intent: only while the job is still this claim's.
FINISH_JOB = Statement(
    "DELETE FROM jobs WHERE id = :id AND lease_owner = :owner AND attempts = :attempts",
    order=75,
)


def session_intent(state: SessionState, *, new: bool) -> tuple[Statement, Params]:
    names = _FIXED + _MUTABLE if new else ("sid", *_MUTABLE)
    params = {name: getattr(state, name) for name in names}
    for name in _JSON:
        if name in params:
            params[name] = json_text(params[name])
    return (INSERT_SESSION if new else UPDATE_SESSION), params


def event_intents(
    sid: str, events: list[tuple[str, dict[str, Any]]], at: datetime
) -> list[tuple[Statement, Params]]:
    return [
        (INSERT_EVENT, {"sid": sid, "kind": kind, "detail": json_text(detail), "occurred_at": at})
        for kind, detail in events
    ]


def finish_intent(job: ClaimedJob, owner: str) -> tuple[Statement, Params]:
    return FINISH_JOB, {"id": job.id, "owner": owner, "attempts": job.attempts}


def step_job_intent(
    kind: str, payload: dict[str, Any], ordering_key: str | None, delay: float
) -> tuple[Statement, Params]:
    params = dict(ledger.job_params(kind, payload, ordering_key))
    params["run_at"] = time.time() + delay
    return ledger.INSERT_JOB, params
