"""Verbal's own API, for what the platforms' APIs cannot show or set: timelines, session
logs, opt-outs and the account's replies to opt-out keywords."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from verbal.api.auth import authenticated_account, runtime
from verbal.api.errors import not_found
from verbal.engine.log import load_session_log, recent_sessions
from verbal.messaging.optouts import MAX_REPLY_CHARS, REPLY_COLUMNS, is_service, reply
from verbal.messaging.timeline import load_timeline
from verbal.store.models import Account, Session

router = APIRouter(prefix="/verbal/v1", tags=["Verbal"])


@router.get("/messages/{sid}/timeline", summary="A message's status history and callbacks")
async def message_timeline(
    sid: str, request: Request, account: Annotated[Account, Depends(authenticated_account)]
) -> dict[str, Any]:
    timeline = await load_timeline(runtime(request).sessions, account.id, sid)
    if timeline is None:
        raise not_found(f"message {sid}")
    message = timeline.message
    return {
        "sid": message.sid,
        "direction": message.direction,
        "from": message.from_number,
        "to": message.to_number,
        "status": message.status,
        "encoding": message.encoding,
        "num_segments": message.num_segments,
        "carrier": message.carrier,
        "carrier_message_id": message.carrier_message_id,
        "error_code": message.error_code,
        "error_message": message.error_message,
        "events": [
            {"status": e.status, "at": e.occurred_at.isoformat(), "error_code": e.error_code}
            for e in timeline.events
        ],
        "callbacks": [
            {
                "event": a.event,
                "url": a.url,
                "method": a.method,
                "attempt": a.attempt,
                "response_status": a.response_status,
                "latency_ms": a.latency_ms,
                "error": a.error,
                "delivered": a.delivered,
                "at": a.attempted_at.isoformat(),
            }
            for a in timeline.attempts
        ],
    }


def _session_summary(row: Session) -> dict[str, Any]:
    return {
        "sid": row.sid,
        "dialect": row.dialect,
        "channel": row.channel,
        "launch": row.launch,
        "state": row.state,
        "local_number": row.local_number,
        "remote_number": row.remote_number,
        "end_reason": row.end_reason,
        "started_at": row.started_at.isoformat(),
        "ended_at": row.ended_at.isoformat() if row.ended_at else None,
    }


@router.get("/sessions", summary="The account's sessions, newest first")
async def list_sessions(
    request: Request,
    account: Annotated[Account, Depends(authenticated_account)],
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> dict[str, Any]:
    rows = await recent_sessions(runtime(request).sessions, account.id, limit)
    return {"sessions": [_session_summary(row) for row in rows]}


@router.get("/sessions/{sid}", summary="A session's state and its full event log")
async def session_log(
    sid: str, request: Request, account: Annotated[Account, Depends(authenticated_account)]
) -> dict[str, Any]:
    log = await load_session_log(runtime(request).sessions, account.id, sid)
    if log is None:
        raise not_found(f"session {sid}")
    return {
        **_session_summary(log.session),
        "events": [
            {"kind": e.kind, "at": e.occurred_at.isoformat(), **e.detail} for e in log.events
        ],
    }


# -- opt-outs ---------------------------------------------------------------------------------


@router.get("/opt-outs", summary="The recipients who opted out, oldest first")
async def list_opt_outs(
    request: Request,
    account: Annotated[Account, Depends(authenticated_account)],
    scope: Annotated[
        str | None, Query(max_length=64, description="Only this number's or service's (MG…).")
    ] = None,
) -> dict[str, Any]:
    entries = await runtime(request).optouts.entries(account.id, scope)
    return {
        "opt_outs": [
            {
                "scope": entry.sender,
                "scope_type": "messaging_service" if is_service(entry.sender) else "number",
                "recipient": entry.recipient,
                "date_created": entry.date_created.isoformat(),
            }
            for entry in entries
        ]
    }


_REPLY = Field(
    None,
    max_length=MAX_REPLY_CHARS,
    pattern=r"^[^\x00]*$",  # PostgreSQL's text refuses NUL
    description='The reply\'s text; "" for no reply; null for the default reply.',
)


class RepliesIn(BaseModel):
    """The replies to change; a keyword left out keeps its reply."""

    model_config = ConfigDict(extra="forbid")

    opt_out: str | None = _REPLY
    opt_in: str | None = _REPLY
    help: str | None = _REPLY


def _reply_key(column: str) -> str:
    return column.removesuffix("_reply")


def _replies_json(account: Account) -> dict[str, Any]:
    answer = {}
    for kind, column in REPLY_COLUMNS.items():
        own = getattr(account, column)
        mode = "default" if own is None else "custom" if own else "off"
        answer[_reply_key(column)] = {"mode": mode, "text": reply(account, kind)}
    return answer


@router.get("/opt-outs/replies", summary="The account's replies to STOP, START and HELP")
async def opt_out_replies(
    account: Annotated[Account, Depends(authenticated_account)],
) -> dict[str, Any]:
    return _replies_json(account)


@router.post(
    "/opt-outs/replies", summary="Change the replies to STOP, START and HELP, or switch them off"
)
async def change_opt_out_replies(
    request: Request,
    account: Annotated[Account, Depends(authenticated_account)],
    replies: RepliesIn,
) -> dict[str, Any]:
    given = replies.model_dump(include=replies.model_fields_set)
    settings = {}
    for column in REPLY_COLUMNS.values():
        if _reply_key(column) in given:
            text = given[_reply_key(column)]
            # Blanks would be an empty text message: they switch the reply off.
            settings[column] = text if text is None or text.strip() else ""
    updated = await runtime(request).directory.update_account(account, settings)
    return _replies_json(updated)
