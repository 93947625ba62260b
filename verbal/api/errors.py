"""API errors as values, rendered as Twilio-style JSON: `code`, `message`, `more_info`, `status`.

Every route answers failure with an ApiError. Framework errors (unknown path, wrong method,
unparseable body) and unexpected exceptions are turned into the same shape here, so a
client never sees a traceback or an HTML page.
"""

from __future__ import annotations

import logging
import secrets

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from verbal.messaging.service import Overloaded

log = logging.getLogger("verbal.api")

MORE_INFO = "https://www.twilio.com/docs/errors/{code}"


class ApiError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, object]:
        return {
            "code": self.code,
            "message": self.message,
            "more_info": MORE_INFO.format(code=self.code),
            "status": self.status,
        }


def unauthorized() -> ApiError:
    return ApiError(401, 20003, "Authenticate")


def not_found(what: str) -> ApiError:
    return ApiError(404, 20404, f"The requested resource {what} was not found")


def overloaded(exc: Overloaded) -> ApiError:
    """Admission control's refusal: Twilio's 20429, which each API renders in its shape."""
    return ApiError(
        429,
        20429,
        f"Too Many Requests: {exc.backlog} messages are in progress (limit {exc.limit}); "
        "retry shortly",
    )


def render(error: ApiError) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Basic realm="Verbal"'} if error.status == 401 else None
    return JSONResponse(error.body(), status_code=error.status, headers=headers)


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return render(exc)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        return render(not_found(request.url.path))
    if exc.status_code == 405:
        return render(ApiError(405, 20004, f"Method {request.method} not allowed"))
    return render(ApiError(exc.status_code, exc.status_code, str(exc.detail)))


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    if first.get("type") == "json_invalid":
        return render(ApiError(400, 20422, "The request body is not valid JSON"))
    location = [str(part) for part in first.get("loc", ())]
    # ("body", "To") or ("query", "PageSize") or ("path", "rule_id"): name the parameter.
    name = ".".join(location[1:]) if len(location) > 1 else "".join(location)
    text = first.get("msg", "is invalid")
    return render(ApiError(400, 20422, f"Invalid parameter {name}: {text}"))


async def _overloaded(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Overloaded)
    return render(overloaded(exc))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    incident = secrets.token_hex(6)
    log.exception("incident %s on %s %s", incident, request.method, request.url.path)
    return render(ApiError(500, 20500, f"Internal server error (incident {incident})"))


def install(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(Overloaded, _overloaded)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
