"""Signing in to the console: the account's own credentials, then a signed session cookie.

The login form takes the account SID (or Plivo auth id) and auth token, checked exactly as
the APIs check HTTP Basic. The session is a cookie, `verbal_console`, holding the account SID
and a random CSRF token, signed with itsdangerous and timestamped (valid for 12 hours).

The signing key is derived from the account's auth token rather than from a server secret:
the token is already a secret every API node shares through the database, so sessions work
across nodes with nothing to generate, store or configure, and rotating the token ends every
console session of that account at once. The cookie is signed, not encrypted: it carries no
secret, only the SID and the CSRF token.

Every POST carries the CSRF token in a hidden field (`csrf_token`) or an `X-CSRF-Token`
header. Signed in, it must match the one in the session; on the login form, which has no
session yet, it must match a separate random cookie (`verbal_console_csrf`, double submit).
Both cookies are HttpOnly, SameSite=Lax and limited to /console.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from verbal.console.web import (
    PREFIX,
    ConsoleUser,
    LoginRequired,
    PageError,
    console_router,
    redirect,
    render,
    runtime,
)
from verbal.store.models import Account

SESSION_COOKIE = "verbal_console"
LOGIN_CSRF_COOKIE = "verbal_console_csrf"
SESSION_MAX_AGE_SECONDS = 12 * 3600
_SALT = "verbal.console.session"
_KEY_PURPOSE = b"verbal console session key"

router = console_router()


def _serializer(account: Account) -> URLSafeTimedSerializer:
    key = hmac.new(account.auth_token.encode(), _KEY_PURPOSE, hashlib.sha256).digest()
    return URLSafeTimedSerializer(key, salt=_SALT, signer_kwargs={"digest_method": hashlib.sha256})


def session_cookie_value(account: Account, csrf_token: str) -> str:
    # The SID rides in clear in front, to find the account whose key checks the rest.
    return f"{account.sid}.{_serializer(account).dumps({'csrf': csrf_token})}"


async def current_user(request: Request) -> ConsoleUser | None:
    """The account whose valid session cookie came with the request, if any."""
    sid, _, signed = request.cookies.get(SESSION_COOKIE, "").partition(".")
    if not sid or not signed:
        return None
    account = await runtime(request).directory.account(sid)
    if account is None or account.status != "active":
        return None
    try:
        data = _serializer(account).loads(signed, max_age=SESSION_MAX_AGE_SECONDS)
    except BadSignature:  # also an expired one (SignatureExpired)
        return None
    if not isinstance(data, dict) or not isinstance(data.get("csrf"), str):
        return None
    return ConsoleUser(account, data["csrf"])


async def signed_in(request: Request) -> ConsoleUser:
    """Dependency of every console page: the signed-in user, else off to the login form.

    A POST must also carry the session's CSRF token.
    """
    user = await current_user(request)
    if user is None:
        raise LoginRequired
    if request.method == "POST":
        await check_csrf(request, user.csrf_token)
    return user


User = Annotated[ConsoleUser, Depends(signed_in)]


async def check_csrf(request: Request, expected: str) -> None:
    sent = request.headers.get("x-csrf-token")
    if sent is None:
        value = (await request.form()).get("csrf_token")
        sent = value if isinstance(value, str) else ""
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise PageError(
            403,
            "This form could not be checked: it expired, or it was sent from another site. "
            "Go back, reload the page and try again.",
        )


def safe_next(target: str) -> str:
    """Where to go after signing in: only a console page, never another site."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or "\\" in target or target.startswith("//"):
        return ""
    if parts.path != PREFIX and not parts.path.startswith(PREFIX + "/"):
        return ""
    return target


def _set_cookie(request: Request, response: Response, name: str, value: str) -> None:
    response.set_cookie(
        name,
        value,
        path=PREFIX,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


def _login_form(
    request: Request, *, next_page: str, account_sid: str = "", error: str = "", status: int = 200
) -> Response:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = render(
        request,
        "login.html",
        None,
        status=status,
        csrf_token=token,
        next_page=next_page,
        account_sid=account_sid,
        error=error,
    )
    _set_cookie(request, response, LOGIN_CSRF_COOKIE, token)
    return response


@router.get("/login")
async def login_page(request: Request, next: str = "") -> Response:
    if await current_user(request) is not None:
        return redirect(safe_next(next).removeprefix(PREFIX) or "/handsets")
    return _login_form(request, next_page=safe_next(next))


@router.post("/login")
async def log_in(request: Request) -> Response:
    await check_csrf(request, request.cookies.get(LOGIN_CSRF_COOKIE, ""))
    form = await request.form()
    account_sid = str(form.get("account_sid", "")).strip()
    auth_token = str(form.get("auth_token", "")).strip()
    next_page = safe_next(str(form.get("next", "")))
    if not account_sid or not auth_token:
        return _login_form(
            request,
            next_page=next_page,
            account_sid=account_sid,
            error="Enter both the account SID and the auth token.",
            status=400,
        )
    account = await runtime(request).directory.authenticate(account_sid, auth_token)
    if account is None:
        # Which of the two was wrong is not said: that would help someone guessing.
        return _login_form(
            request,
            next_page=next_page,
            account_sid=account_sid,
            error="The account SID or the auth token is wrong, or the account is not active.",
            status=401,
        )
    response = redirect(next_page.removeprefix(PREFIX) or "/handsets")
    # A fresh CSRF token per session: one planted before sign-in is worth nothing after.
    value = session_cookie_value(account, secrets.token_urlsafe(32))
    _set_cookie(request, response, SESSION_COOKIE, value)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=PREFIX)
    return response


@router.post("/logout")
async def log_out(_: User) -> Response:
    response = redirect("/login")
    response.delete_cookie(SESSION_COOKIE, path=PREFIX)
    return response
