"""App sessions: the latest ones, and one session's timeline, to see why an app did what it did."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response

from verbal.console.auth import User
from verbal.console.live import current_cursor
from verbal.console.queries import application_by_id
from verbal.console.web import ConsoleUser, PageError, console_router, render, runtime
from verbal.engine.log import load_session_log, recent_sessions

router = console_router()

LIST_LENGTH = 50


@router.get("/sessions")
async def list_sessions(request: Request, user: User) -> Response:
    sessions = runtime(request).sessions
    return render(
        request,
        "sessions.html",
        user,
        sessions=await recent_sessions(sessions, user.account.id, LIST_LENGTH),
        cursor=await current_cursor(sessions),
    )


@router.get("/sessions/rows")
async def session_rows(request: Request, user: User) -> Response:
    """The list's rows alone, which the page swaps in when sessions change."""
    rows = await recent_sessions(runtime(request).sessions, user.account.id, LIST_LENGTH)
    return render(request, "_session_rows.html", user, sessions=rows)


async def _session_story(request: Request, user: ConsoleUser, sid: str) -> dict[str, Any]:
    sessions = runtime(request).sessions
    log = await load_session_log(sessions, user.account.id, sid)
    if log is None:
        raise PageError(404, f"This account has no session {sid}.")
    return {
        "session": log.session,
        "events": log.events,
        "application": await application_by_id(sessions, log.session.application_id),
    }


@router.get("/sessions/{sid}")
async def show_session(request: Request, user: User, sid: str) -> Response:
    return render(
        request,
        "session.html",
        user,
        cursor=await current_cursor(runtime(request).sessions),
        **await _session_story(request, user, sid),
    )


@router.get("/sessions/{sid}/story")
async def session_story(request: Request, user: User, sid: str) -> Response:
    """The session's state and events alone, which the page swaps in as it runs."""
    return render(request, "_session_story.html", user, **await _session_story(request, user, sid))
