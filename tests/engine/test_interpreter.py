"""The interpreter alone: a step is driven by hand, action by action, with no I/O at all.

These tests play the driver's part (`sessions.py`): they read each action `Step.run` yields
and send back what performing it would give. They pin the rules the driver relies on: what
a step asks for, in which order, and where it must stop.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from datetime import UTC, datetime
from typing import Any

from verbal.dialects import DIALECTS
from verbal.dialects.detect import detect
from verbal.engine.fetch import Fetched, FetchFailed
from verbal.engine.interpreter import (
    AppFacts,
    Fetch,
    NextStep,
    Send,
    SessionState,
    Step,
)
from verbal.messaging.errors import MessageRefused, Refusal

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
APP = AppFacts(
    account_sid="AC" + "0" * 32,
    auth_token="secret",
    sms_url="http://app.example/start",
    sms_method="POST",
    sms_fallback_url=None,
    sms_fallback_method="POST",
    app_number=None,
)


def new_session(**fields: Any) -> SessionState:
    return SessionState(
        **{
            "sid": "a" * 32,
            "account_id": 1,
            "application_id": 1,
            "dialect": "tropo",
            "channel": "text",
            "launch": "inbound",
            "started_at": NOW,
            "local_number": "+15550001000",
            "remote_number": "+15550002000",
            "initial_text": "hi",
            **fields,
        }
    )


def step(state: SessionState) -> tuple[Step, Generator[Any, Any, NextStep | None]]:
    interpreter = Step(state, APP, DIALECTS, detect, lambda: NOW)
    return interpreter, interpreter.run()


def document(url: str, *verbs: dict[str, Any]) -> Fetched:
    body = json.dumps({"tropo": list(verbs)}).encode()
    return Fetched(url, 200, "application/json", body, 1.0)


def finish(run: Generator[Any, Any, NextStep | None], answer: Any) -> NextStep | None:
    try:
        run.send(answer)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    raise AssertionError("the step went on")


def test_a_handler_say_ends_the_step_before_its_next_is_requested() -> None:
    state = new_session()
    interpreter, run = step(state)
    start = next(run)
    assert isinstance(start, Fetch)
    assert start.request.url == APP.sms_url and start.request.json is not None
    assert start.request.json["session"]["initialText"] == "hi"

    said = run.send(
        document(
            APP.sms_url or "",
            {"say": {"value": "one"}},
            {"on": {"event": "continue", "say": {"value": "two"}, "next": "/next"}},
        )
    )
    assert isinstance(said, Send) and [r.body for r in said.requests] == ["one"]
    handler_say = run.send(["SM1"])
    assert isinstance(handler_say, Send) and [r.body for r in handler_say.requests] == ["two"]
    # Texts were sent: the request to `next` is owed, not made, and the step ends here.
    assert finish(run, ["SM2"]) == NextStep()
    assert state.state == "running"
    assert state.waiting["continue"]["url"] == "http://app.example/next"
    assert state.waiting["continue"]["event"] == "continue"
    kinds = [kind for kind, _ in interpreter.events]
    assert kinds == ["request", "document", "message", "verb", "message"]

    # The next step makes the request, and the Result carries this session's sequence.
    interpreter, run = step(state)
    request = next(run)
    assert isinstance(request, Fetch) and request.request.url == "http://app.example/next"
    assert request.request.json is not None
    assert request.request.json["result"]["sequence"] == 1
    last = run.send(document("http://app.example/next", {"say": {"value": "three"}}))
    assert isinstance(last, Send)
    assert finish(run, ["SM3"]) is None
    assert (state.state, state.end_reason) == ("ended", "the document ended")


def test_without_texts_a_continuation_is_requested_in_the_same_step() -> None:
    state = new_session()
    _, run = step(state)
    next(run)
    following = run.send(
        document(APP.sms_url or "", {"on": {"event": "continue", "next": "/next"}})
    )
    assert isinstance(following, Fetch)
    assert following.request.url == "http://app.example/next"


def test_an_ask_waits_with_an_unordered_timeout_step() -> None:
    state = new_session(initial_text_used=True)
    _, run = step(state)
    next(run)
    prompt = run.send(
        document(
            APP.sms_url or "",
            {"ask": {"say": {"value": "Color?"}, "choices": {"value": "red"}, "timeout": 12}},
        )
    )
    assert isinstance(prompt, Send) and prompt.requests[0].body == "Color?"
    waits = finish(run, ["SM1"])
    assert waits is not None and waits.delay == 12 and not waits.ordered
    assert waits.payload == {"timeout": state.waiting["token"]}
    assert state.state == "waiting" and state.waiting["attempt"] == 1


def test_a_refused_reply_is_logged_and_the_session_goes_on() -> None:
    state = new_session()
    interpreter, run = step(state)
    next(run)
    run.send(document(APP.sms_url or "", {"say": {"value": "x" * 2000}}))
    assert finish(run, MessageRefused(Refusal.BODY_TOO_LONG, "too long")) is None
    [error] = [detail for kind, detail in interpreter.events if kind == "error"]
    assert error["code"] == 7004 and "too long" in error["message"]
    assert state.end_reason == "the document ended"


def test_a_failed_fetch_ends_the_session_with_the_dialect_code() -> None:
    state = new_session()
    interpreter, run = step(state)
    next(run)
    assert finish(run, FetchFailed("the app answered HTTP 500", 500)) is None
    [error] = [detail for kind, detail in interpreter.events if kind == "error"]
    assert error["code"] == 7002
    assert (state.state, state.end_reason) == ("ended", "the app's document could not be fetched")
