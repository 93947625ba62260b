"""The demo's sample app: a TwiML echo bot, served only by `verbal demo`.

It is an ordinary app that happens to live on the same server: Verbal's engine fetches it
over HTTP like any other, and it checks `X-Twilio-Signature` the way a Twilio app would.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

from fastapi import APIRouter, Request, Response

from verbal.api.auth import runtime
from verbal.dialects.twilio import signature

router = APIRouter(prefix="/demo", include_in_schema=False)


@router.post("/echo")
async def echo(request: Request) -> Response:
    form = await request.form()
    params = [(key, str(value)) for key, value in form.multi_items()]
    account = await runtime(request).directory.account(str(form.get("AccountSid", "")))
    expected = signature(str(request.url), params, account.auth_token) if account else None
    if expected is None or request.headers.get("X-Twilio-Signature") != expected:
        return Response("signature mismatch", status_code=403, media_type="text/plain")
    reply = f"You said: {form.get('Body', '')}"
    document = f"<Response><Message>{escape(reply)}</Message></Response>"
    return Response(document, media_type="text/xml")
