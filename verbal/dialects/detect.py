"""Telling dialects apart by the first document an app returns ("auto" applications).

Tropo documents are JSON; RCML/TwiML and Plivo are both XML with a <Response> root and
differ in their element and attribute names. A cheap scan decides; the dialect's own parser
then reads the document properly (and rejects it properly if it is neither).
"""

from __future__ import annotations

import re

# One start tag at a time; `[^<>]` keeps every match inside one tag, so the scan stays
# linear however hostile the document (a pattern free to run to the next `>` would not).
_TAG = re.compile(rb"<([A-Za-z][\w.-]*)([^<>]*)")
# Elements only Plivo has; its <Message> also has src=/dst= attributes.
_PLIVO_ELEMENTS = frozenset(
    {
        b"Speak",
        b"GetDigits",
        b"GetInput",
        b"PreAnswer",
        b"Wait",
        b"DTMF",
        b"MultiPartyCall",
        b"Stream",
    }
)
_PLIVO_MESSAGE = re.compile(rb"\b(src|dst)\s*=")


def detect(body: bytes, content_type: str) -> str | None:
    """ "tropo", "plivo" or "rcml" for a document that looks like one; None otherwise."""
    head = body.lstrip()[:1]
    if head in (b"{", b"[") or "json" in content_type.lower():
        return "tropo"
    response = False
    for tag in _TAG.finditer(body):
        name, attributes = tag.group(1), tag.group(2)
        if name in _PLIVO_ELEMENTS or (name == b"Message" and _PLIVO_MESSAGE.search(attributes)):
            return "plivo"
        response = response or name == b"Response"
    return "rcml" if response else None
