"""The message log, one message's full story, and redelivering a status callback."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from fastapi import Request, Response

from verbal.console.auth import User
from verbal.console.live import current_cursor
from verbal.console.queries import (
    MessageFilter,
    find_messages,
    sandbox_delivery,
    session_started_by,
)
from verbal.console.web import ConsoleUser, PageError, console_router, redirect, render, runtime
from verbal.messaging.addresses import InvalidNumber, to_e164
from verbal.messaging.errors import CallbackNotFound
from verbal.messaging.states import Status
from verbal.messaging.timeline import load_timeline

router = console_router()

PAGE_SIZE = 50
STATUSES = [status.value for status in Status if status not in (Status.ACCEPTED, Status.RECEIVING)]
DIRECTIONS = {
    "inbound": "inbound (a handset texted you)",
    "outbound-api": "outbound, sent through an API",
    "outbound-reply": "outbound, an app's reply",
}
# The only texts a redirect may ask a page to show: nothing from the URL reaches the page.
NOTICES = {"redelivery": "The callback is queued for delivery again; its attempt appears below."}


@dataclass(frozen=True, slots=True)
class Filters:
    """The log's filter form as typed, and what it means."""

    values: dict[str, str]
    where: MessageFilter
    errors: dict[str, str]


def _day(raw: str, field: str, errors: dict[str, str]) -> datetime | None:
    if not raw:
        return None
    try:
        return datetime.combine(date.fromisoformat(raw), time(), UTC)
    except ValueError:
        errors[field] = f"{raw!r} is not a date; write it as YYYY-MM-DD, for example 2026-11-22."
        return None


def parse_filters(request: Request) -> Filters:
    names = ("number", "status", "direction", "since", "until", "before")
    values = {name: request.query_params.get(name, "").strip() for name in names}
    errors: dict[str, str] = {}
    number = None
    if values["number"]:
        try:
            number = to_e164(values["number"])
        except InvalidNumber:
            errors["number"] = f"{values['number']!r} is not a phone number."
    if values["status"] and values["status"] not in STATUSES:
        errors["status"] = f"There is no status {values['status']!r}."
    if values["direction"] and values["direction"] not in DIRECTIONS:
        errors["direction"] = f"There is no direction {values['direction']!r}."
    since = _day(values["since"], "since", errors)
    until = _day(values["until"], "until", errors)
    if since and until and until < since:
        errors["until"] = "The end date is before the start date."
    before = values["before"]
    if before and not (before.isdigit() and len(before) <= 10):
        raise PageError(400, "The page to show (before=…) is not a message position.")
    where = MessageFilter(
        number=number,
        status=values["status"] or None,
        direction=values["direction"] or None,
        since=since,
        # The end date is inclusive, as people read "until 22 November".
        until=until + timedelta(days=1) if until else None,
        before_id=int(before) if before else None,
    )
    return Filters(values, where, errors)


async def _log_rows(request: Request, user: ConsoleUser, filters: Filters) -> dict[str, Any]:
    if filters.errors:
        return {"messages": [], "older": None}
    rows = await find_messages(
        runtime(request).sessions, user.account.id, filters.where, PAGE_SIZE + 1
    )
    older = rows[PAGE_SIZE - 1].id if len(rows) > PAGE_SIZE else None
    return {"messages": rows[:PAGE_SIZE], "older": older}


@router.get("/messages")
async def message_log(request: Request, user: User) -> Response:
    filters = parse_filters(request)
    filter_values = {k: v for k, v in filters.values.items() if k != "before"}
    return render(
        request,
        "messages.html",
        user,
        status=400 if filters.errors else 200,
        filters=filter_values,
        errors=filters.errors,
        paged=bool(filters.values["before"]),
        statuses=STATUSES,
        directions=DIRECTIONS,
        cursor=await current_cursor(runtime(request).sessions),
        **await _log_rows(request, user, filters),
    )


@router.get("/messages/rows")
async def message_log_rows(request: Request, user: User) -> Response:
    """The log's rows alone, which the page swaps in when messages change."""
    filters = parse_filters(request)
    filter_values = {k: v for k, v in filters.values.items() if k != "before"}
    return render(
        request,
        "_message_rows.html",
        user,
        filters=filter_values,
        **await _log_rows(request, user, filters),
    )


async def _message_story(request: Request, user: ConsoleUser, sid: str) -> dict[str, Any]:
    sessions = runtime(request).sessions
    timeline = await load_timeline(sessions, user.account.id, sid)
    if timeline is None:
        raise PageError(404, f"This account has no message {sid}.")
    return {
        "message": timeline.message,
        "events": timeline.events,
        "attempts": timeline.attempts,
        "delivery": await sandbox_delivery(sessions, sid),
        "started": await session_started_by(sessions, user.account.id, sid),
    }


@router.get("/messages/{sid}")
async def show_message(request: Request, user: User, sid: str, notice: str = "") -> Response:
    return render(
        request,
        "message.html",
        user,
        cursor=await current_cursor(runtime(request).sessions),
        notice=NOTICES.get(notice, ""),
        **await _message_story(request, user, sid),
    )


@router.get("/messages/{sid}/story")
async def message_story(request: Request, user: User, sid: str) -> Response:
    """The parts of the message page that change, which the page swaps in."""
    return render(request, "_message_story.html", user, **await _message_story(request, user, sid))


@router.post("/messages/{sid}/callbacks/{attempt_id}/redeliver")
async def redeliver(request: Request, user: User, sid: str, attempt_id: str) -> Response:
    if not (attempt_id.isdigit() and len(attempt_id) <= 10):
        raise PageError(404, f"There is no callback attempt {attempt_id}.")
    story = await _message_story(request, user, sid)
    if not any(attempt.id == int(attempt_id) for attempt in story["attempts"]):
        raise PageError(404, f"Message {sid} has no callback attempt {attempt_id}.")
    try:
        await runtime(request).messaging.redeliver_callback(user.account, int(attempt_id))
    except CallbackNotFound as exc:
        raise PageError(404, str(exc)) from None
    return redirect(f"/messages/{sid}?notice=redelivery")
