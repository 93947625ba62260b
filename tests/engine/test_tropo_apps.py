"""Tropo WebAPI apps on Verbal: the seed blog's token launch and ask over text."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx

from tests.conftest import AppHit, AppServer, LiveVerbal, wait_until

APP_NUMBER = "+15550001000"


def inbox(verbal: LiveVerbal, handset: str) -> list[dict]:
    with verbal.http() as http:
        return http.get(f"/sandbox/handsets/{handset}/inbox").json()["messages"]


def tropo(*verbs: dict) -> tuple[int, str, str]:
    return 200, "application/json", json.dumps({"tropo": list(verbs)})


def test_the_seed_blog_flow_runs_verbatim(
    make_verbal: Callable[..., LiveVerbal], app_server: AppServer
) -> None:
    # The blog dials 4075551212; make that range sandbox handsets so the text lands there.
    verbal = make_verbal(sandbox_prefixes=["+1555", "+1407555"])

    def catcher(hit: AppHit) -> tuple[int, str, str]:
        parameters = hit.json["session"]["parameters"]
        return tropo(
            {
                "message": {
                    "channel": "TEXT",
                    "to": "tel:+1" + parameters["to"],
                    "say": [{"value": parameters["msg"]}],
                    "network": "SMS",
                }
            }
        )

    app_server.routes["/"] = catcher
    application = verbal.add_app("tropo", app_server.url("/"), APP_NUMBER)

    # curl "http://HOST/1.0/sessions?action=create&token=TOKEN&msg=my+message+to+send&to=4075551212"
    response = httpx.get(
        f"{verbal.base_url}/1.0/sessions?action=create&token={application.messaging_token}"
        "&msg=my+message+to+send&to=4075551212"
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/xml")
    assert "<success>true</success>" in response.text

    [message] = wait_until(lambda: inbox(verbal, "+14075551212"), what="the text on the handset")
    assert message["body"] == "my message to send"
    assert message["from"] == APP_NUMBER

    [hit] = app_server.hits_for("/")
    session = hit.json["session"]
    assert hit.headers["Content-Type"].startswith("application/json")
    assert session["userType"] == "NONE"
    assert session["initialText"] is None and session["callId"] is None
    assert session["parameters"] == {
        "token": application.messaging_token,
        "action": "create",
        "msg": "my message to send",
        "to": "4075551212",
    }
    assert not {"to", "from", "headers"} & set(session)


def test_sessions_api_answers_json_and_refuses_bad_tokens(
    verbal: LiveVerbal, app_server: AppServer
) -> None:
    app_server.routes["/"] = lambda hit: tropo()
    application = verbal.add_app("tropo", app_server.url("/"), APP_NUMBER)
    ok = httpx.post(
        f"{verbal.base_url}/1.0/sessions",
        json={"token": application.messaging_token, "customerName": "John"},
        headers={"Accept": "application/json"},
    )
    assert ok.status_code == 200
    assert ok.json()["success"] is True and len(ok.json()["id"]) == 32
    log = wait_until(
        lambda: (s := verbal.session_log(ok.json()["id"]))["state"] == "ended" and s,
        what="the session to end",
    )
    assert [e["kind"] for e in log["events"]][:3] == ["started", "request", "document"]
    with verbal.http() as http:
        listed = http.get("/verbal/v1/sessions").json()["sessions"]
    assert [s["sid"] for s in listed] == [ok.json()["id"]]
    assert listed[0]["launch"] == "token" and listed[0]["state"] == "ended"

    async def stranger(runtime):  # type: ignore[no-untyped-def]
        account = await runtime.directory.create_account("Stranger")
        return account.sid, account.auth_token

    with httpx.Client(base_url=verbal.base_url, auth=verbal.call(stranger)) as other:
        assert other.get("/verbal/v1/sessions").json() == {"sessions": []}
        assert other.get(f"/verbal/v1/sessions/{ok.json()['id']}").status_code == 404

    bad = httpx.get(f"{verbal.base_url}/v1/sessions?action=create&token=nope")
    assert bad.status_code == 401 and "<success>false</success>" in bad.text
    garbage = httpx.post(
        f"{verbal.base_url}/1.0/sessions",
        content=b"{not json",
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    assert garbage.status_code == 400 and garbage.json()["success"] is False


def test_ask_over_text_collects_the_handset_answer(
    verbal: LiveVerbal, app_server: AppServer
) -> None:
    handset = "+15550002000"
    app_server.routes["/start"] = lambda hit: tropo(
        # Tropo gives the session's first text to the first ask: swallow it, as its docs say.
        {
            "ask": {
                "say": [{"value": ""}],
                "choices": {"value": "[ANY]"},
                "name": "initial_text_capture",
            }
        },
        {
            "ask": {
                "say": {"value": "Red or blue?"},
                "choices": {"value": "red, blue(blue, b)"},
                "name": "color",
                "timeout": 30,
            }
        },
        {"on": {"event": "continue", "next": "/answer"}},
    )

    def answer(hit: AppHit) -> tuple[int, str, str]:
        actions = hit.json["result"]["actions"]
        color = next(a for a in actions if a["name"] == "color")
        return tropo({"say": {"value": f"You picked {color['value']}"}})

    app_server.routes["/answer"] = answer
    verbal.add_app("tropo", app_server.url("/start"), APP_NUMBER)
    with verbal.http() as http:
        http.post(f"/sandbox/handsets/{handset}/messages", json={"to": APP_NUMBER, "body": "hi"})
    wait_until(
        lambda: any(m["body"] == "Red or blue?" for m in inbox(verbal, handset)), what="the prompt"
    )
    [start] = app_server.hits_for("/start")
    assert start.json["session"]["initialText"] == "hi"
    assert start.json["session"]["from"]["channel"] == "TEXT"

    with verbal.http() as http:
        http.post(f"/sandbox/handsets/{handset}/messages", json={"to": APP_NUMBER, "body": "b"})
    session_id = start.json["session"]["id"]
    try:
        wait_until(
            lambda: any(m["body"] == "You picked blue" for m in inbox(verbal, handset)),
            what="the app's answer",
        )
    except AssertionError:
        raise AssertionError(json.dumps(verbal.session_log(session_id), indent=1)) from None
    [result_hit] = app_server.hits_for("/answer")
    result = result_hit.json["result"]
    assert result["sequence"] == 1 and result["complete"] is True and result["error"] is None
    captured, color = result["actions"]
    assert (captured["name"], captured["value"], captured["disposition"]) == (
        "initial_text_capture",
        "hi",
        "SUCCESS",
    )
    assert (color["name"], color["value"], color["utterance"]) == ("color", "blue", "b")


def test_call_on_sms_opens_a_text_conversation(verbal: LiveVerbal, app_server: AppServer) -> None:
    """Tropo's outbound pattern: a token launch `call`s a number on SMS, then talks to it."""
    handset = "+15550002001"
    app_server.routes["/launch"] = lambda hit: tropo(
        {"call": {"to": hit.json["session"]["parameters"]["to"], "network": "SMS"}},
        {
            "ask": {
                "say": {"value": "What's your name?"},
                "choices": {"value": "[ANY]"},
                "name": "name",
            }
        },
        {"on": {"event": "continue", "next": "/hello"}},
    )
    app_server.routes["/hello"] = lambda hit: tropo(
        {"say": {"value": "Hello " + hit.json["result"]["actions"]["value"]}}
    )
    application = verbal.add_app("tropo", app_server.url("/launch"), APP_NUMBER)
    launched = httpx.get(
        f"{verbal.base_url}/1.0/sessions",
        params={"action": "create", "token": application.messaging_token, "to": handset},
    )
    assert "<success>true</success>" in launched.text

    [prompt] = wait_until(lambda: inbox(verbal, handset), what="the prompt")
    assert (prompt["body"], prompt["from"]) == ("What's your name?", APP_NUMBER)
    with verbal.http() as http:
        http.post(f"/sandbox/handsets/{handset}/messages", json={"to": APP_NUMBER, "body": "Ada"})
    wait_until(
        lambda: any(m["body"] == "Hello Ada" for m in inbox(verbal, handset)), what="the greeting"
    )
    [hello] = app_server.hits_for("/hello")
    assert hello.json["result"]["calledid"] == APP_NUMBER.lstrip("+")
