"""Virtual handsets: sandbox phones on screen, their conversations, and texting from them."""

from __future__ import annotations

import secrets

from fastapi import Request, Response

from verbal.carriers.sandbox import SandboxNetwork
from verbal.console.auth import User
from verbal.console.live import current_cursor
from verbal.console.queries import MessageFilter, find_messages, handsets
from verbal.console.web import ConsoleUser, PageError, console_router, redirect, render, runtime
from verbal.messaging.addresses import InvalidNumber, to_e164
from verbal.messaging.handsets import HandsetTextRefused, handset_number, text_from_handset
from verbal.messaging.service import MAX_BODY_CHARS
from verbal.store.models import Message

router = console_router()

# The conversation shows this many of the latest messages.
THREAD_LENGTH = 100
LONGEST_E164 = 15


def sandbox(request: Request) -> SandboxNetwork:
    carrier = runtime(request).sandbox
    if carrier is None:
        raise PageError(
            404,
            "The sandbox network is switched off on this server, so there are "
            "no virtual handsets (VERBAL_SANDBOX_ENABLED=false).",
        )
    return carrier


def random_handset(carrier: SandboxNetwork) -> str:
    """A random number in the first sandbox range that is a possible phone number."""
    prefix = carrier.prefixes[0]
    digits = len(prefix.lstrip("+"))
    # The length of a number depends on its country: try each, longest first, since shorter
    # ones may pass as local numbers (+1 555 0100, with no area code).
    for length in range(LONGEST_E164, digits, -1):
        candidate = prefix + "".join(secrets.choice("0123456789") for _ in range(length - digits))
        try:
            number = to_e164(candidate)
        except InvalidNumber:
            continue
        if carrier.reaches(number):
            return number
    raise PageError(500, f"No possible phone number starts with {prefix}; check sandbox_prefixes.")


@router.get("/handsets")
async def list_handsets(request: Request, user: User) -> Response:
    carrier = sandbox(request)
    return await _handsets_page(request, user, carrier)


async def _handsets_page(
    request: Request,
    user: ConsoleUser,
    carrier: SandboxNetwork,
    *,
    number: str = "",
    error: str = "",
    status: int = 200,
) -> Response:
    found = await handsets(runtime(request).sessions, user.account.id, carrier.prefixes)
    return render(
        request,
        "handsets.html",
        user,
        status=status,
        handsets=found,
        prefixes=carrier.prefixes,
        number=number,
        error=error,
    )


@router.post("/handsets")
async def create_handset(request: Request, user: User) -> Response:
    """Open a handset: one typed in, or a new random one. Nothing is stored until it texts
    or is texted: a handset exists as soon as it is used."""
    carrier = sandbox(request)
    raw = str((await request.form()).get("number", "")).strip()
    if not raw:
        return redirect(f"/handsets/{random_handset(carrier)}")
    try:
        number = handset_number(raw, carrier)
    except HandsetTextRefused as refused:
        return await _handsets_page(
            request, user, carrier, number=raw, error=refused.detail, status=400
        )
    return redirect(f"/handsets/{number}")


async def _thread(request: Request, user: ConsoleUser, number: str) -> list[Message]:
    latest = await find_messages(
        runtime(request).sessions, user.account.id, MessageFilter(number=number), THREAD_LENGTH
    )
    return list(reversed(latest))


def _handset(request: Request, number: str) -> tuple[SandboxNetwork, str]:
    carrier = sandbox(request)
    try:
        return carrier, handset_number(number, carrier)
    except HandsetTextRefused as refused:
        raise PageError(404, refused.detail) from None


@router.get("/handsets/{number}")
async def show_handset(request: Request, user: User, number: str) -> Response:
    _, handset = _handset(request, number)
    return await _handset_page(request, user, handset)


async def _handset_page(
    request: Request,
    user: ConsoleUser,
    handset: str,
    *,
    to: str = "",
    body: str = "",
    media: str = "",
    error: str = "",
    status: int = 200,
) -> Response:
    runtime_ = runtime(request)
    cursor = await current_cursor(runtime_.sessions)
    thread = await _thread(request, user, handset)
    numbers = await runtime_.directory.numbers(user.account)
    if not to and thread:
        # Reply to whichever of the account's numbers this handset talked with last.
        last = thread[-1]
        to = last.to_number if last.direction == "inbound" else last.from_number
    return render(
        request,
        "handset.html",
        user,
        status=status,
        handset=handset,
        thread=thread,
        numbers=numbers,
        cursor=cursor,
        to=to,
        body=body,
        media=media,
        error=error,
        max_body=MAX_BODY_CHARS,
    )


@router.get("/handsets/{number}/thread")
async def handset_thread(request: Request, user: User, number: str) -> Response:
    """The conversation alone, which the page swaps in when something changes."""
    _, handset = _handset(request, number)
    return render(
        request, "_thread.html", user, handset=handset, thread=await _thread(request, user, handset)
    )


@router.post("/handsets/{number}/messages")
async def text_from_console(request: Request, user: User, number: str) -> Response:
    """The handset texts one of the account's numbers, exactly as through the sandbox API."""
    carrier, handset = _handset(request, number)
    form = await request.form()
    to = str(form.get("to", "")).strip()
    body = str(form.get("body", ""))
    media_text = str(form.get("media_urls", ""))
    media = [line.strip() for line in media_text.splitlines() if line.strip()]
    try:
        await text_from_handset(carrier, user.account, handset, to, body, media)
    except HandsetTextRefused as refused:
        return await _handset_page(
            request,
            user,
            handset,
            to=to,
            body=body,
            media=media_text,
            error=refused.detail,
            status=400,
        )
    return redirect(f"/handsets/{handset}")
