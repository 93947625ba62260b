"""Every verb a text session cannot run leaves its coded, readable error in the session log.

One document per dialect holds every verb its parser knows that needs a call of its own
(Tropo's `call` and `message` on a voice network place one: `tests/voice/`); the session
skips each (as Restcomm did; a Tropo document without `on` handlers does the same), logs
each with the dialect's voice-verb-on-text code, its position and a message that says why,
and still sends the text at the end.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import AppServer, LiveVerbal, wait_until
from tests.engine.helpers import APP_NUMBER, text_app, wait_for_texts
from verbal.dialects.rcml import VOICE_VERBS

_RCML_VERBS = sorted(VOICE_VERBS)
_PLIVO_ELEMENTS = {
    "play": "<Play>http://example.invalid/a.mp3</Play>",
    "getdigits": '<GetDigits action="http://example.invalid/"><Speak>x</Speak></GetDigits>',
    "getinput": '<GetInput action="http://example.invalid/"><Speak>x</Speak></GetInput>',
    "record": '<Record action="http://example.invalid/"/>',
    "dial": "<Dial><Number>15550009999</Number></Dial>",
    "conference": "<Conference>room</Conference>",
    "dtmf": "<DTMF>12</DTMF>",
    "preanswer": "<PreAnswer><Speak>x</Speak></PreAnswer>",
    "stream": "<Stream>wss://example.invalid/s</Stream>",
    "multipartycall": '<MultiPartyCall role="agent">mpc</MultiPartyCall>',
}
_TROPO_VERBS: list[tuple[str, dict[str, Any]]] = [
    ("transfer", {"transfer": {"to": "+15550009999"}}),
    ("conference", {"conference": {"id": "1"}}),
    ("record", {"record": {"url": "http://example.invalid/r"}}),
    ("startRecording", {"startRecording": {"url": "http://example.invalid/r"}}),
    ("stopRecording", {"stopRecording": None}),
    ("answer", {"answer": None}),
    ("redirect", {"redirect": {"to": "sip:someone@example.invalid"}}),
]


def _document(dialect: str) -> tuple[str, bytes, list[str], int]:
    """(content type, body, the verbs expected to fail in order, the dialect's code)."""
    if dialect == "rcml":
        elements = "".join(f"<{verb}>+15550009999</{verb}>" for verb in _RCML_VERBS)
        body = f"<Response><Say>hi</Say>{elements}<Message>done</Message></Response>"
        return "text/xml", body.encode(), ["say", *(v.lower() for v in _RCML_VERBS)], 14110
    if dialect == "plivo":
        elements = "".join(_PLIVO_ELEMENTS.values())
        message = f'<Message src="{APP_NUMBER}" dst="+15550002000">done</Message>'
        body = f"<Response><Speak>hi</Speak>{elements}{message}</Response>"
        return "text/xml", body.encode(), ["speak", *_PLIVO_ELEMENTS], 99050
    verbs = [verb for _, verb in _TROPO_VERBS] + [{"say": {"value": "done"}}]
    body = json.dumps({"tropo": verbs}).encode()
    return "application/json", body, [name for name, _ in _TROPO_VERBS], 7005


@pytest.mark.parametrize("dialect", ["rcml", "plivo", "tropo"])
def test_each_voice_verb_is_a_coded_error_in_the_log(
    verbal: LiveVerbal, app_server: AppServer, dialect: str
) -> None:
    handset = "+15550002000"
    content_type, body, failing, code = _document(dialect)
    app_server.routes["/app"] = lambda hit: (200, content_type, body)
    verbal.add_app(dialect, app_server.url("/app"), APP_NUMBER)

    text_app(verbal, handset, "hello")
    [reply] = wait_for_texts(verbal, handset, 1)
    assert reply["body"] == "done"  # the verbs after them still ran

    def ended_log() -> dict[str, Any] | None:
        with verbal.http() as http:
            [listed] = http.get("/verbal/v1/sessions").json()["sessions"]
        log = verbal.session_log(listed["sid"])
        return log if log["state"] == "ended" else None

    log = wait_until(ended_log, what="the session to end")
    errors = [event for event in log["events"] if event["kind"] == "error"]
    assert [error["code"] for error in errors] == [code] * len(failing), errors
    assert [error["verb_index"] for error in errors] == list(range(len(failing)))
    for error, verb in zip(errors, failing, strict=True):
        message = error["message"]
        # Readable: it says what cannot be done here and, for a named verb, which one.
        assert "voice" in message or "speech" in message, message
        assert "text session" in message or "cannot" in message, message
        if verb not in ("say", "speak", "message"):
            assert f"'{verb.lower()}'" in message.lower(), message
