"""What every console page shares: templates, the page route class, errors as pages.

Console routes never answer with the API's JSON errors: a signed-out visitor is sent to the
login form, and every failure is a page that says in words what went wrong. `ConsoleRoute`
does this for each route, since exception handlers can only be installed on the whole app.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode
from xml.parsers.expat import ExpatError

from defusedxml import minidom
from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute

from verbal.runtime import Runtime
from verbal.store.models import Account

if TYPE_CHECKING:
    from starlette.templating import Jinja2Templates

HERE = Path(__file__).parent
PREFIX = "/console"

# Pages hold an account's messages: never cached, never framed, scripts only from here.
# Media are shown from wherever their URLs point, so images may come from anywhere.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' http: https: data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}


@dataclass(frozen=True, slots=True)
class ConsoleUser:
    """The signed-in account and the CSRF token its forms must carry."""

    account: Account
    csrf_token: str


class LoginRequired(Exception):
    """No valid console session: the visitor must sign in first."""


class PageError(Exception):
    """A request the console refuses, with the words to show for it."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def render(
    request: Request,
    template: str,
    user: ConsoleUser | None,
    *,
    status: int = 200,
    **context: Any,
) -> Response:
    """A page (or, for a template named `_*.html`, a fragment htmx swaps into one)."""
    context.update(
        status=status,
        base=PREFIX,
        user=user,
        csrf_token=user.csrf_token if user else context.get("csrf_token", ""),
    )
    return _templates().TemplateResponse(
        request, template, context, status_code=status, headers=PAGE_HEADERS
    )


@functools.cache
def _templates() -> Jinja2Templates:
    """The pages' templates, made for the first page served: jinja2 adds about 1.7 MiB to
    the memory of a server, which one whose console nobody opens need not hold."""
    from starlette.templating import Jinja2Templates

    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.filters["when"] = when
    templates.env.filters["pretty_document"] = pretty_document
    templates.env.filters["pretty_json"] = pretty_json
    templates.env.filters["without"] = without
    templates.env.tests["http_link"] = is_http_link
    templates.env.globals["query_string"] = query_string
    return templates


def redirect(path: str) -> RedirectResponse:
    """Post/redirect/get: a form's answer sends the browser to the page to see next."""
    return RedirectResponse(PREFIX + path, status_code=303, headers=PAGE_HEADERS)


def _login_redirect(request: Request) -> Response:
    login = PREFIX + "/login"
    if is_htmx(request) or request.url.path.endswith("/live"):
        # A fragment or the live stream cannot show a form: htmx sends the whole page there.
        return Response(status_code=401, headers={"HX-Redirect": login, **PAGE_HEADERS})
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    target = here if request.method == "GET" else PREFIX
    return RedirectResponse(f"{login}?next={quote(target, safe='')}", status_code=303)


def _validation_words(exc: RequestValidationError) -> str:
    first = exc.errors()[0] if exc.errors() else {}
    name = ".".join(str(part) for part in first.get("loc", ())[1:]) or "the request"
    return f"{name}: {first.get('msg', 'is not valid')}"


class ConsoleRoute(APIRoute):
    """A console route: sign-in redirects and errors become pages, not JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except LoginRequired:
                return _login_redirect(request)
            except PageError as error:
                return error_page(request, error)
            except RequestValidationError as exc:
                return error_page(request, PageError(400, _validation_words(exc)))

        return handle


def console_router() -> APIRouter:
    """A router for console pages (under /console, kept out of the OpenAPI document)."""
    return APIRouter(prefix=PREFIX, route_class=ConsoleRoute, include_in_schema=False)


def error_page(request: Request, error: PageError) -> Response:
    template = "_error.html" if is_htmx(request) else "error.html"
    return render(
        request,
        template,
        None,
        status=error.status,
        message=error.message,
    )


# -- what templates use -----------------------------------------------------------------------


def when(value: datetime | None) -> str:
    """A UTC time people read, to the millisecond: status changes are often that close."""
    if value is None:
        return ""
    return value.strftime("%Y-%m-%d %H:%M:%S.") + f"{value.microsecond // 1000:03d} UTC"


_XML_START = re.compile(rb"^\s*(<\?xml|<)")


def pretty_document(body: str, content_type: str = "") -> str:
    """An app's document as a developer wants to read it: XML and JSON indented.

    Anything that does not parse is shown as it came, since seeing the broken document is
    the point when an app answers with one. So is a document nested deeper than Python's
    recursion limit: both json and minidom recurse once per level, and the engine stored
    such an answer to show why it refused it (7004 and its kin).
    """
    text = body.strip()
    if "json" in content_type or text.startswith(("{", "[")):
        try:
            return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except (ValueError, RecursionError):
            return body
    if "xml" in content_type or _XML_START.match(text.encode()):
        try:
            pretty = minidom.parseString(text).toprettyxml(indent="  ")
        # ValueError: defusedxml refused a DTD or entity.
        except (ExpatError, ValueError, RecursionError):
            return body
        return "\n".join(line for line in pretty.splitlines() if line.strip())
    return body


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def without(detail: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    """An event's details less the ones a page already put in words."""
    return {key: value for key, value in detail.items() if key not in keys}


def is_http_link(url: Any) -> bool:
    """Only http(s) URLs become links or images, whatever a message or app stored."""
    return isinstance(url, str) and url.lower().startswith(("http://", "https://"))


def query_string(values: Mapping[str, Any]) -> str:
    """Filters as a query string, leaving out the empty ones."""
    return urlencode({k: v for k, v in values.items() if v not in (None, "")})
