"""The web console: handsets, the message log, sessions, numbers and apps, updated live.

Server-rendered pages (Jinja2), enhanced with htmx and server-sent events where a browser runs
scripts, and usable without them. It sits beside `verbal.api` and is mounted by the app factory
as `router`; nothing else imports it. docs/console.md describes the pages.
"""

from __future__ import annotations

from fastapi import APIRouter

from verbal.console import auth, handsets, live, messages, numbers, sessions, site

router = APIRouter()
# `site` last: its catch-all answers only what no other console page does.
for _module in (auth, live, handsets, messages, sessions, numbers, site):
    router.include_router(_module.router)

__all__ = ["router"]
