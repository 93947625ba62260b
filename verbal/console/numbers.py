"""Numbers and apps: which app answers each number, the apps' URLs and dialects, who opted out
of texts from each number or Messaging Service and what the keywords are answered, a test
text."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response
from starlette.datastructures import FormData

from verbal.console.auth import User
from verbal.console.web import ConsoleUser, PageError, console_router, redirect, render, runtime
from verbal.messaging.addresses import InvalidNumber, to_e164
from verbal.messaging.errors import MessageRefused
from verbal.messaging.optouts import MAX_REPLY_CHARS, REPLY_COLUMNS, Keyword, is_service, reply
from verbal.messaging.service import SendRequest, is_http_url
from verbal.store.directory import AlreadyExists
from verbal.store.models import Application

router = console_router()

DIALECTS = {
    "auto": "Detect: RCML/TwiML or Plivo XML, from the first answer",
    "rcml": "RCML / TwiML (Restcomm, Twilio)",
    "plivo": "Plivo XML",
    "tropo": "Tropo WebAPI (JSON)",
}
METHODS = ("POST", "GET")
# Column sizes in the store.
MAX_NAME = 64
MAX_URL = 2048
NOTICES = {
    "number-added": "The number was added.",
    "number-routed": "The number's app was changed.",
    "app-created": "The app was created.",
    "app-saved": "The app's settings were saved.",
    "optout-added": (
        "The recipient was opted out: that number (all of its Messaging Service's, when it is "
        "in one) will not text them."
    ),
    "optout-removed": "The number (or service) may text the recipient again.",
    "replies-saved": "The replies to STOP, START and HELP were saved.",
}
# The reply forms' fields, by keyword: (field name prefix, what the keyword does).
REPLY_FIELDS = {
    Keyword.OPT_OUT: ("opt_out", "STOP (opting out)"),
    Keyword.OPT_IN: ("opt_in", "START (opting back in)"),
    Keyword.HELP: ("help", "HELP"),
}
REPLY_MODES = {"default": "the default reply", "custom": "this reply", "off": "no reply"}


class FormProblem(Exception):
    """A form's input the console refuses; `form` says which form gets the words."""

    def __init__(self, form: str, message: str) -> None:
        super().__init__(message)
        self.form = form
        self.message = message


async def _page(
    request: Request,
    user: ConsoleUser,
    *,
    notice: str = "",
    problem: FormProblem | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    directory = runtime(request).directory
    apps = await directory.applications(user.account)
    optouts = await runtime(request).optouts.entries(user.account.id)
    replies = []
    for kind, (name, label) in REPLY_FIELDS.items():
        own = getattr(user.account, REPLY_COLUMNS[kind])
        mode = "default" if own is None else "custom" if own else "off"
        replies.append((name, label, mode, reply(user.account, kind) or ""))
    return render(
        request,
        "numbers.html",
        user,
        status=400 if problem else 200,
        numbers=await directory.numbers(user.account),
        apps=apps,
        app_by_id={app.id: app for app in apps},
        optouts=optouts,
        replies=replies,
        reply_modes=REPLY_MODES,
        dialects=DIALECTS,
        methods=METHODS,
        notice=NOTICES.get(notice, ""),
        problem=problem,
        values=values or {},
    )


@router.get("/numbers")
async def numbers_page(request: Request, user: User, notice: str = "") -> Response:
    return await _page(request, user, notice=notice)


def _text(form: FormData, name: str) -> str:
    value = form.get(name, "")
    return value.strip() if isinstance(value, str) else ""


async def _refusing(
    request: Request, user: ConsoleUser, form: FormData, problem: FormProblem
) -> Response:
    values = {key: value for key, value in form.items() if isinstance(value, str)}
    values.pop("csrf_token", None)
    return await _page(request, user, problem=problem, values=values)


@router.post("/numbers")
async def add_number(request: Request, user: User) -> Response:
    form = await request.form()
    raw = _text(form, "number")
    try:
        if not raw:
            raise FormProblem("add-number", "Enter the number to add.")
        try:
            number = to_e164(raw)
        except InvalidNumber:
            raise FormProblem("add-number", f"{raw!r} is not a phone number.") from None
        try:
            await runtime(request).directory.add_number(user.account, number)
        except AlreadyExists:
            raise FormProblem("add-number", f"{number} already belongs to an account.") from None
    except FormProblem as problem:
        return await _refusing(request, user, form, problem)
    return redirect("/numbers?notice=number-added")


async def _own_app(request: Request, user: ConsoleUser, sid: str, form: str) -> Application:
    application = await runtime(request).directory.application(sid)
    if application is None or application.account_id != user.account.id:
        raise FormProblem(form, f"This account has no app {sid}.")
    return application


@router.post("/numbers/{sid}/app")
async def route_number(request: Request, user: User, sid: str) -> Response:
    directory = runtime(request).directory
    number = await directory.number_by_sid(user.account, sid)
    if number is None:
        raise PageError(404, f"This account has no number {sid}.")
    form = await request.form()
    app_sid = _text(form, "application")
    try:
        application = await _own_app(request, user, app_sid, f"number-{sid}") if app_sid else None
    except FormProblem as problem:
        return await _refusing(request, user, form, problem)
    await directory.configure_number(number, application=application)
    return redirect("/numbers?notice=number-routed")


def app_settings(form: FormData, form_name: str) -> dict[str, Any]:
    """An app form's fields as application settings, or FormProblem in words."""
    name = _text(form, "friendly_name")
    dialect = _text(form, "dialect")
    sms_url = _text(form, "sms_url")
    sms_method = _text(form, "sms_method") or "POST"
    fallback = _text(form, "sms_fallback_url")
    voice_url = _text(form, "voice_url")
    voice_method = _text(form, "voice_method") or "POST"
    if len(name) > MAX_NAME:
        raise FormProblem(form_name, f"The name is longer than {MAX_NAME} characters.")
    if dialect not in DIALECTS:
        raise FormProblem(form_name, "Choose one of the listed dialects.")
    for label, url in (("SMS URL", sms_url), ("fallback URL", fallback), ("voice URL", voice_url)):
        if url and (len(url) > MAX_URL or not is_http_url(url)):
            raise FormProblem(
                form_name, f"The {label} {url!r} is not an http:// or https:// address."
            )
    if not sms_url:
        raise FormProblem(form_name, "Enter the SMS URL: where Verbal asks the app what to do.")
    if sms_method not in METHODS:
        raise FormProblem(form_name, "The SMS URL's method must be POST or GET.")
    if voice_method not in METHODS:
        raise FormProblem(form_name, "The voice URL's method must be POST or GET.")
    return {
        "friendly_name": name or "Console app",
        "dialect": dialect,
        "sms_url": sms_url,
        "sms_method": sms_method,
        "sms_fallback_url": fallback or None,
        # Calls to the app's numbers fetch this; empty: the numbers refuse calls.
        "voice_url": voice_url or None,
        "voice_method": voice_method,
    }


@router.post("/apps")
async def create_app(request: Request, user: User) -> Response:
    form = await request.form()
    try:
        settings = app_settings(form, "app-new")
    except FormProblem as problem:
        return await _refusing(request, user, form, problem)
    name = settings.pop("friendly_name")
    await runtime(request).directory.create_application(user.account, name, **settings)
    return redirect("/numbers?notice=app-created")


@router.post("/apps/{sid}")
async def update_app(request: Request, user: User, sid: str) -> Response:
    form = await request.form()
    try:
        application = await _own_app(request, user, sid, f"app-{sid}")
        settings = app_settings(form, f"app-{sid}")
    except FormProblem as problem:
        return await _refusing(request, user, form, problem)
    await runtime(request).directory.update_application(application, settings)
    return redirect("/numbers?notice=app-saved")


async def _opt_out_pair(request: Request, user: ConsoleUser, form: FormData) -> tuple[str, str]:
    """The (number or service SID, recipient) an opt-out form names, or FormProblem in
    words."""
    sender = _text(form, "number")
    try:
        recipient = to_e164(_text(form, "recipient"))
        if not is_service(sender):
            sender = to_e164(sender)
    except InvalidNumber as exc:
        raise FormProblem("optout", f"{exc}.") from None
    served = runtime(request)
    if is_service(sender):
        pool = await served.services.pool(sender)
        if pool is None or pool.account_id != user.account.id:
            raise FormProblem("optout", f"{sender} is not one of this account's services.")
    elif await served.directory.number_owner(sender) != user.account.id:
        raise FormProblem("optout", f"{sender} is not one of this account's numbers.")
    return sender, recipient


@router.post("/numbers/optouts")
async def add_opt_out(request: Request, user: User) -> Response:
    """Opt a recipient out of texts from a number, as their STOP would (no reply is sent)."""
    return await _change_opt_out(request, user, opted_out=True, notice="optout-added")


@router.post("/numbers/optouts/remove")
async def remove_opt_out(request: Request, user: User) -> Response:
    return await _change_opt_out(request, user, opted_out=False, notice="optout-removed")


async def _change_opt_out(
    request: Request, user: User, *, opted_out: bool, notice: str
) -> Response:
    form = await request.form()
    try:
        number, recipient = await _opt_out_pair(request, user, form)
    except FormProblem as problem:
        return await _refusing(request, user, form, problem)
    await runtime(request).optouts.set(user.account.id, number, recipient, opted_out=opted_out)
    return redirect(f"/numbers?notice={notice}")


@router.post("/numbers/optouts/replies")
async def save_replies(request: Request, user: User) -> Response:
    """The account's replies to the opt-out, opt-in and help keywords: the default, its own
    text, or none."""
    form = await request.form()
    settings: dict[str, str | None] = {}
    try:
        for kind, (name, label) in REPLY_FIELDS.items():
            mode, text = _text(form, f"{name}-mode"), _text(form, f"{name}-text")
            if mode not in REPLY_MODES:
                raise FormProblem("replies", f"Choose what {label} is answered.")
            if mode == "custom" and not text:
                raise FormProblem("replies", f"Write the reply to {label}, or choose no reply.")
            if "\x00" in text:
                raise FormProblem("replies", f"The reply to {label} holds a NUL character.")
            if len(text) > MAX_REPLY_CHARS:
                raise FormProblem(
                    "replies", f"The reply to {label} is over {MAX_REPLY_CHARS} characters."
                )
            settings[REPLY_COLUMNS[kind]] = {"default": None, "off": ""}.get(mode, text)
    except FormProblem as problem:
        return await _refusing(request, user, form, problem)
    await runtime(request).directory.update_account(user.account, settings)
    return redirect("/numbers?notice=replies-saved")


@router.post("/test-message")
async def send_test_message(request: Request, user: User) -> Response:
    """Send a text from one of the account's numbers, as the Messages API would."""
    form = await request.form()
    send = SendRequest(to=_text(form, "to"), from_=_text(form, "from"), body=_text(form, "body"))
    try:
        message = await runtime(request).messaging.send(user.account, send)
    except MessageRefused as refused:
        return await _refusing(request, user, form, FormProblem("test", refused.detail))
    return redirect(f"/messages/{message.sid}")
