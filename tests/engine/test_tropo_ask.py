"""Tropo's `ask` over text, option by option, and the Result JSON each outcome posts.

Every test runs a real Tropo app on a loopback server against a live Verbal (on SQLite, then
on PostgreSQL) and a sandbox handset. The Result JSON is checked field by field against
Tropo's (docs/apps.md, and the shared notes on Tropo's Result object): `sessionId`,
`callId`, `state`, `sessionDuration`, `sequence`, `complete`, `error`, `calledid`, and each
action's every key.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import AppServer, LiveVerbal, wait_until

APP_NUMBER = "+15550001000"
# Tropo's recipe for swallowing the text that started the session (its first ask takes it).
CAPTURE = {
    "ask": {"say": [{"value": ""}], "choices": {"value": "[ANY]"}, "name": "initial_text_capture"}
}
CAPTURED = {
    "name": "initial_text_capture",
    "attempts": 1,
    "disposition": "SUCCESS",
    "confidence": 100,
    "interpretation": "hi",
    "utterance": "hi",
    "value": "hi",
    "concept": "hi",
}
# What a handler's `next` URL answers: an empty document ends the session.
DONE = (200, "application/json", json.dumps({"tropo": []}))


@pytest.fixture
def verbal(make_verbal: Callable[..., LiveVerbal], database_url: str) -> LiveVerbal:
    """A live server, once on SQLite and once on PostgreSQL: a conversation rewrites its
    session row in every step, through the journal's statements on each database."""
    server = make_verbal(database_url)
    server.add_number(APP_NUMBER)
    return server


def tropo(*verbs: dict[str, Any]) -> tuple[int, str, str]:
    return 200, "application/json", json.dumps({"tropo": list(verbs)})


def bodies(verbal: LiveVerbal, handset: str) -> list[str]:
    with verbal.http() as http:
        messages = http.get(f"/sandbox/handsets/{handset}/inbox").json()["messages"]
    return [m["body"] for m in reversed(messages)]


def text(verbal: LiveVerbal, handset: str, body: str) -> None:
    with verbal.http() as http:
        sent = http.post(
            f"/sandbox/handsets/{handset}/messages", json={"to": APP_NUMBER, "body": body}
        )
    assert sent.status_code == 201, sent.text


def wait_for_bodies(verbal: LiveVerbal, handset: str, expected: list[str]) -> None:
    """Wait for as many texts as expected, then require exactly those."""
    got = wait_until(
        lambda: found if len(found := bodies(verbal, handset)) >= len(expected) else None,
        what=f"{len(expected)} texts on {handset}",
    )
    assert got == expected


def ended(verbal: LiveVerbal, session_id: str) -> dict[str, Any]:
    # The app hears of a session before its first step commits, which makes the session
    # visible to the API: until then its log is not found.
    return wait_until(
        lambda: (log := verbal.session_log(session_id)).get("state") == "ended" and log,
        what="the session to end",
    )


def one_result(app_server: AppServer, path: str) -> dict[str, Any]:
    [hit] = wait_until(lambda: app_server.hits_for(path), what=f"the Result posted to {path}")
    return dict(hit.json["result"])


def check_envelope(result: dict[str, Any], session_id: str, *, state: str, error: Any) -> None:
    """The top-level fields every Result carries, as Tropo's do."""
    assert result["sessionId"] == session_id
    assert len(result["callId"]) == 32 and int(result["callId"], 16) >= 0
    assert result["state"] == state
    assert isinstance(result["sessionDuration"], int) and result["sessionDuration"] >= 0
    assert result["sequence"] == 1
    assert result["complete"] is True
    assert result["error"] == error
    assert result["calledid"] == APP_NUMBER.lstrip("+")  # text sessions keep the country code


def session_id_of(app_server: AppServer, path: str = "/start") -> str:
    [start] = wait_until(lambda: app_server.hits_for(path), what="the session's start")
    return str(start.json["session"]["id"])


def test_nomatch_prompts_per_attempt_then_incomplete(
    verbal: LiveVerbal, app_server: AppServer
) -> None:
    handset = "+15550003001"
    app_server.routes["/start"] = lambda hit: tropo(
        {
            "ask": {
                "say": [
                    {"value": "Not a choice.", "event": "nomatch:1"},
                    {"value": "Still not.", "event": "nomatch"},
                    {"value": "Too slow.", "event": "timeout"},
                    {"value": "Pick 1 or 2"},
                ],
                "choices": {"value": "1, 2"},
                "attempts": 3,
                "name": "pick",
                "bargein": False,  # read, and meaningless on text
            }
        },
        {"on": {"event": "continue", "next": "/continue"}},
        {"on": {"event": "incomplete", "next": "/incomplete"}},
    )
    app_server.routes["/incomplete"] = lambda hit: DONE
    verbal.add_app("tropo", app_server.url("/start"), APP_NUMBER)

    # The text that starts the session is the first ask's first answer (Tropo's rule).
    text(verbal, handset, "hi")
    wait_for_bodies(verbal, handset, ["Not a choice.", "Pick 1 or 2"])
    text(verbal, handset, "3")
    wait_for_bodies(verbal, handset, ["Not a choice.", "Pick 1 or 2", "Still not.", "Pick 1 or 2"])
    text(verbal, handset, "three")
    session_id = session_id_of(app_server)
    log = ended(verbal, session_id)
    # The last no-match still gets its prompt, but the question is not asked again.
    assert bodies(verbal, handset) == [
        "Not a choice.",
        "Pick 1 or 2",
        "Still not.",
        "Pick 1 or 2",
        "Still not.",
    ]
    result = one_result(app_server, "/incomplete")
    check_envelope(result, session_id, state="ANSWERED", error=None)
    assert result["actions"] == {
        "name": "pick",
        "attempts": 3,
        "disposition": "NOMATCH",
        "confidence": None,
        "interpretation": None,
        "utterance": "three",
        "value": None,
        "concept": None,
    }
    assert not app_server.hits_for("/continue")
    assert [e["kind"] for e in log["events"]].count("waiting") == 2


def test_timeout_prompts_then_incomplete(verbal: LiveVerbal, app_server: AppServer) -> None:
    handset = "+15550003002"
    app_server.routes["/start"] = lambda hit: tropo(
        CAPTURE,
        {
            "ask": {
                "say": [{"value": "Quick?"}, {"value": "Too slow.", "event": "timeout"}],
                "choices": {"value": "[ANY]"},
                "attempts": 2,
                "timeout": 0.3,
                "name": "quick",
            }
        },
        {"on": {"event": "incomplete", "next": "/incomplete"}},
    )
    app_server.routes["/incomplete"] = lambda hit: DONE
    verbal.add_app("tropo", app_server.url("/start"), APP_NUMBER)

    text(verbal, handset, "hi")
    session_id = session_id_of(app_server)
    ended(verbal, session_id)
    assert bodies(verbal, handset) == ["Quick?", "Too slow.", "Quick?", "Too slow."]
    result = one_result(app_server, "/incomplete")
    check_envelope(result, session_id, state="ANSWERED", error=None)
    assert result["actions"] == [
        CAPTURED,
        {
            "name": "quick",
            "attempts": 2,
            "disposition": "TIMEOUT",
            "confidence": None,
            "interpretation": None,
            "utterance": None,
            "value": None,
            "concept": None,
        },
    ]


def test_dtmf_mode_and_terminator_on_a_later_attempt(
    verbal: LiveVerbal, app_server: AppServer
) -> None:
    handset = "+15550003003"
    app_server.routes["/start"] = lambda hit: tropo(
        CAPTURE,
        {
            "ask": {
                "say": [
                    {"value": "Your PIN, then #"},
                    {"value": "Digits only.", "event": "nomatch"},
                ],
                "choices": {"value": "[4 DIGITS]", "mode": "dtmf", "terminator": "#"},
                "attempts": 2,
                "name": "pin",
            }
        },
        {"on": {"event": "continue", "next": "/continue"}},
    )
    app_server.routes["/continue"] = lambda hit: DONE
    verbal.add_app("tropo", app_server.url("/start"), APP_NUMBER)

    text(verbal, handset, "hi")
    wait_for_bodies(verbal, handset, ["Your PIN, then #"])
    text(verbal, handset, "12ab")  # a keypad has no letters: no match
    wait_for_bodies(verbal, handset, ["Your PIN, then #", "Digits only.", "Your PIN, then #"])
    text(verbal, handset, "1234# and the rest")  # the terminator ends the answer
    session_id = session_id_of(app_server)
    ended(verbal, session_id)
    result = one_result(app_server, "/continue")
    check_envelope(result, session_id, state="ANSWERED", error=None)
    assert result["actions"] == [
        CAPTURED,
        {
            "name": "pin",
            "attempts": 2,
            "disposition": "SUCCESS",
            "confidence": 100,
            "interpretation": "1234",
            "utterance": "1234",
            "value": "1234",
            "concept": "1234",
        },
    ]


def test_speech_mode_concepts_answer_continue(verbal: LiveVerbal, app_server: AppServer) -> None:
    handset = "+15550003004"
    app_server.routes["/start"] = lambda hit: tropo(
        CAPTURE,
        {
            "ask": {
                "say": {"value": "Yes or no?"},
                "choices": {"value": "yes(yes, y, sure), no(no, n)", "mode": "speech"},
                "name": "agree",
            }
        },
        {"on": {"event": "continue", "say": {"value": "Thanks."}, "next": "/continue"}},
    )
    app_server.routes["/continue"] = lambda hit: tropo({"say": {"value": "Noted."}})
    verbal.add_app("tropo", app_server.url("/start"), APP_NUMBER)

    text(verbal, handset, "hi")
    wait_for_bodies(verbal, handset, ["Yes or no?"])
    text(verbal, handset, " Sure ")
    session_id = session_id_of(app_server)
    ended(verbal, session_id)
    # The handler's say goes out before its next is requested, and the next document runs.
    assert bodies(verbal, handset) == ["Yes or no?", "Thanks.", "Noted."]
    result = one_result(app_server, "/continue")
    check_envelope(result, session_id, state="ANSWERED", error=None)
    assert result["actions"][1] == {
        "name": "agree",
        "attempts": 1,
        "disposition": "SUCCESS",
        "confidence": 100,
        "interpretation": "Sure",
        "utterance": "Sure",
        "value": "yes",
        "concept": "yes",
    }


def test_an_ask_not_required_lets_the_document_go_on(
    verbal: LiveVerbal, app_server: AppServer
) -> None:
    handset = "+15550003005"
    app_server.routes["/start"] = lambda hit: tropo(
        {
            "ask": {
                "say": {"value": "Code?"},
                "choices": {"value": "[3 DIGITS]"},
                "name": "code",
                "required": False,
            }
        },
        {"say": {"value": "Moving on."}},
        {"on": {"event": "continue", "next": "/continue"}},
        {"on": {"event": "incomplete", "next": "/incomplete"}},
    )
    app_server.routes["/continue"] = lambda hit: DONE
    verbal.add_app("tropo", app_server.url("/start"), APP_NUMBER)

    text(verbal, handset, "nope")
    session_id = session_id_of(app_server)
    ended(verbal, session_id)
    assert bodies(verbal, handset) == ["Moving on."]
    result = one_result(app_server, "/continue")
    check_envelope(result, session_id, state="ANSWERED", error=None)
    assert result["actions"]["disposition"] == "NOMATCH"
    assert result["actions"]["utterance"] == "nope"
    assert not app_server.hits_for("/incomplete")


def test_incomplete_handler_with_only_say_falls_through_to_continue(
    verbal: LiveVerbal, app_server: AppServer
) -> None:
    handset = "+15550003006"
    app_server.routes["/start"] = lambda hit: tropo(
        {"ask": {"say": {"value": "Color?"}, "choices": {"value": "red, blue"}, "name": "color"}},
        {"on": {"event": "incomplete", "say": {"value": "Giving up."}}},
        {"on": {"event": "continue", "next": "/continue"}},
    )
    app_server.routes["/continue"] = lambda hit: DONE
    verbal.add_app("tropo", app_server.url("/start"), APP_NUMBER)

    text(verbal, handset, "green")
    session_id = session_id_of(app_server)
    ended(verbal, session_id)
    assert bodies(verbal, handset) == ["Giving up."]
    result = one_result(app_server, "/continue")
    check_envelope(result, session_id, state="ANSWERED", error=None)
    assert result["actions"]["disposition"] == "NOMATCH"


def test_hangup_posts_a_disconnected_result_and_runs_nothing_after(
    verbal: LiveVerbal, app_server: AppServer
) -> None:
    handset = "+15550003007"
    app_server.routes["/start"] = lambda hit: tropo(
        CAPTURE,
        {"say": {"value": "Bye."}},
        {"hangup": None},
        {"say": {"value": "never sent"}},
        {"on": {"event": "hangup", "next": "/hangup"}},
        {"on": {"event": "continue", "next": "/continue"}},
    )
    app_server.routes["/hangup"] = lambda hit: tropo({"say": {"value": "nobody hears this"}})
    verbal.add_app("tropo", app_server.url("/start"), APP_NUMBER)

    text(verbal, handset, "hi")
    session_id = session_id_of(app_server)
    log = ended(verbal, session_id)
    assert log["end_reason"] == "the app hung up"
    assert bodies(verbal, handset) == ["Bye."]
    result = one_result(app_server, "/hangup")
    check_envelope(result, session_id, state="DISCONNECTED", error=None)
    assert result["actions"] == CAPTURED
    assert not app_server.hits_for("/continue")


def test_error_event_carries_the_error_text(verbal: LiveVerbal, app_server: AppServer) -> None:
    handset = "+15550003008"
    app_server.routes["/start"] = lambda hit: tropo(
        CAPTURE,
        {"record": {"url": "http://example.invalid/recording", "name": "rec"}},
        {"on": {"event": "error", "next": "/error"}},
        {"on": {"event": "continue", "next": "/continue"}},
    )
    app_server.routes["/error"] = lambda hit: tropo({"say": {"value": "Sorry."}})
    verbal.add_app("tropo", app_server.url("/start"), APP_NUMBER)

    text(verbal, handset, "hi")
    session_id = session_id_of(app_server)
    log = ended(verbal, session_id)
    assert bodies(verbal, handset) == ["Sorry."]
    message = "'record' needs a voice call; this is a text session"
    result = one_result(app_server, "/error")
    check_envelope(result, session_id, state="ANSWERED", error=message)
    assert result["actions"] == CAPTURED
    [error] = [e for e in log["events"] if e["kind"] == "error"]
    assert (error["code"], error["message"], error["verb_index"]) == (7005, message, 1)
    assert not app_server.hits_for("/continue")
