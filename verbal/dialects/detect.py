"""Telling dialects apart by the first document an app returns ("auto" applications).

Tropo documents are JSON; RCML/TwiML and Plivo are both XML with a <Response> root and
differ in their element and attribute names. A cheap scan decides; the dialect's own parser
then reads the document properly (and rejects it properly if it is neither).
"""

from __future__ import annotations

import re

# Elements only Plivo has, and Plivo's <Message src=… dst=…> attributes.
_PLIVO = re.compile(
    rb"<(Speak|GetDigits|GetInput|PreAnswer|Wait|DTMF|MultiPartyCall|Stream)\b"
    rb"|<Message\b[^>]*\b(src|dst)\s*="
)
_XML_RESPONSE = re.compile(rb"<Response\b")


def detect(body: bytes, content_type: str) -> str | None:
    """ "tropo", "plivo" or "rcml" for a document that looks like one; None otherwise."""
    head = body.lstrip()[:1]
    if head in (b"{", b"[") or "json" in content_type.lower():
        return "tropo"
    if _PLIVO.search(body):
        return "plivo"
    if _XML_RESPONSE.search(body):
        return "rcml"
    return None
