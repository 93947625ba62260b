"""Tropo's Sessions API: launch an app's session with its token, as Tropo apps and SDKs do.

`GET /1.0/sessions?action=create&token=…&name=value…` or a POST with the same fields as
JSON, XML (`<session><token>…</token><var name= value=/></session>`) or a form. The token
is the credential, as it was on Tropo. The answer comes in the format the client accepts
(JSON, form) and in XML otherwise.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from defusedxml import ElementTree
from fastapi import APIRouter, Request, Response

from verbal.api.auth import runtime
from verbal.dialects.tropo import sessions_api_reply

router = APIRouter(tags=["Tropo Sessions API"])

RESERVED = ("token", "action")


async def _fields(request: Request) -> dict[str, str]:
    """Every launch field from the query string and the body, whatever its encoding."""
    fields = dict(request.query_params)
    if request.method != "POST":
        return fields
    body = await request.body()
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not body.strip():
        return fields
    if content_type == "application/json":
        data = json.loads(body)
        if not isinstance(data, dict):
            raise ValueError("the JSON body must be an object")
        # Tropo sent every value to the app as a string.
        fields.update({str(k): v if isinstance(v, str) else json.dumps(v) for k, v in data.items()})
    elif content_type in ("text/xml", "application/xml"):
        root = ElementTree.fromstring(body)
        for child in root:
            if child.tag == "var":
                fields[child.get("name", "")] = child.get("value", "")
            else:
                fields[child.tag] = (child.text or "").strip()
    else:
        fields.update(dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)))
    return fields


def _format(request: Request) -> str:
    accept = request.headers.get("accept", "")
    if "json" in accept:
        return "json"
    if "x-www-form-urlencoded" in accept:
        return "form"
    return "xml"


async def create_session(request: Request) -> Response:
    fmt = _format(request)
    try:
        fields = await _fields(request)
    except Exception as exc:  # any unreadable body: malformed JSON or XML, hostile XML
        body, media_type = sessions_api_reply(
            fmt, False, "", None, f"the request body could not be read: {exc}"
        )
        return Response(body, status_code=400, media_type=media_type)
    token = fields.get("token", "")
    action = fields.get("action", "create")
    if action != "create":
        body, media_type = sessions_api_reply(fmt, False, token, None, f"unknown action {action!r}")
        return Response(body, status_code=400, media_type=media_type)
    application = await runtime(request).directory.application_by_token(token)
    if application is None:
        body, media_type = sessions_api_reply(fmt, False, token, None, "invalid token")
        return Response(body, status_code=401, media_type=media_type)
    if application.dialect != "tropo":
        reason = (
            f"application {application.sid} is a {application.dialect} app; only "
            "Tropo WebAPI apps are launched with a token"
        )
        body, media_type = sessions_api_reply(fmt, False, token, None, reason)
        return Response(body, status_code=400, media_type=media_type)
    parameters: dict[str, Any] = {"token": token, "action": "create"}
    parameters.update({k: v for k, v in fields.items() if k not in RESERVED})
    channel = "voice" if token == application.voice_token else "text"
    session_id = await runtime(request).interpreter.launch(application, parameters, channel)
    body, media_type = sessions_api_reply(fmt, True, token, session_id, None)
    return Response(body, status_code=200, media_type=media_type)


# One route per method: a route serving both would give both operations one operationId,
# which OpenAPI forbids.
for path in ("/1.0/sessions", "/v1/sessions"):
    for method in ("GET", "POST"):
        router.add_api_route(
            path,
            create_session,
            methods=[method],
            summary="Launch a session with an application's token",
        )
