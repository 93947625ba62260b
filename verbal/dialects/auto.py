"""The "auto" dialect: an app that is RCML/TwiML or Plivo, told apart by its first answer.

Before the app has answered, nothing says which it is, so the first request carries both
platforms' parameters (they share only `From` and `To`, with equal values) and both
platforms' signatures, each computed over that whole request. Either kind of app then
finds what it reads and validates. From its first document on, the session runs in the
dialect detected there. Tropo apps must be declared: their first request is JSON.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from verbal.dialects import plivo, rcml, twilio
from verbal.dialects.detect import detect
from verbal.dialects.types import AppRequest, CallFacts, Progress, SessionFacts
from verbal.dialects.verbs import Document, DocumentError, Target


class _Auto:
    name = "auto"
    errors = rcml.ERRORS
    status_callbacks = rcml.STATUS_CALLBACKS

    def start_request(self, facts: SessionFacts, target: Target, auth_token: str) -> AppRequest:
        twilio_side = rcml.DIALECT.start_request(facts, target, auth_token)
        plivo_side = plivo.DIALECT.start_request(facts, target, auth_token)
        names = {name for name, _ in twilio_side.form}
        form = twilio_side.form + tuple(p for p in plivo_side.form if p[0] not in names)
        request = replace(twilio_side, form=form)
        if request.method == "GET":
            twilio_signature = twilio.signature(request.wire_url, [], auth_token)
        else:
            twilio_signature = twilio.signature(request.url, list(form), auth_token)
        headers = {
            twilio.SIGNATURE_HEADER: twilio_signature,
            **plivo.signature_headers(request.method, request.url, form, auth_token),
        }
        return replace(request, headers=headers)

    def continue_request(
        self, facts: SessionFacts, target: Target, progress: Progress, auth_token: str
    ) -> AppRequest:
        # Only reachable if the first document could not be classified; speak RCML.
        return rcml.DIALECT.continue_request(facts, target, progress, auth_token)

    def call_status_request(
        self,
        call: CallFacts,
        event: str,
        sequence: int,
        target: Target,
        auth_token: str,
        now: datetime,
    ) -> AppRequest | None:
        # A call's status callbacks are set where the call is made: Twilio's are the default.
        return rcml.DIALECT.call_status_request(call, event, sequence, target, auth_token, now)

    def parse(self, body: bytes, content_type: str, base_url: str) -> Document:
        detected = detect(body, content_type)
        if detected == "plivo":
            return plivo.DIALECT.parse(body, content_type, base_url)
        if detected == "tropo":
            raise DocumentError(
                rcml.ERRORS.parse_failed,
                "the app answered with Tropo JSON; set the application's dialect to tropo",
            )
        return rcml.DIALECT.parse(body, content_type, base_url)


DIALECT = _Auto()
