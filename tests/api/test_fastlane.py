"""The fast lane (verbal/api/fastlane.py) answers sends and handsets' texts exactly as the
FastAPI routes do, and leaves everything it does not fully understand to the routes."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from tests.conftest import LiveVerbal, WebhookReceiver
from verbal.api.fastlane import _plain_handset_text
from verbal.api.sandbox import MAX_HANDSET_BODY, MAX_HANDSET_MEDIA, HandsetText

FROM = "+15550001000"


def path(verbal: LiveVerbal) -> str:
    return f"/2010-04-01/Accounts/{verbal.account_sid}/Messages.json"


def comparable(answer: dict[str, Any]) -> dict[str, Any]:
    varying = {"sid", "uri", "date_created", "date_updated", "subresource_uris"}
    return {key: value for key, value in answer.items() if key not in varying}


def test_a_plain_send_and_one_the_route_takes_are_answered_alike(
    verbal: LiveVerbal, receiver: WebhookReceiver
) -> None:
    form = {"To": "+15550002000", "From": FROM, "Body": "héllo ✓", "StatusCallback": receiver.url()}
    application = verbal.add_app("rcml", "http://127.0.0.1:9/app")
    with verbal.http() as http:
        fast = http.post(path(verbal), data=form)
        # ApplicationSid is not among the fast lane's fields: the FastAPI route answers.
        routed = http.post(path(verbal), data={**form, "ApplicationSid": application.sid})
    assert (fast.status_code, routed.status_code) == (201, 201)
    assert fast.headers["content-type"] == routed.headers["content-type"]
    assert comparable(fast.json()) == comparable(routed.json())
    assert list(fast.json()) == list(routed.json())  # the same keys, in the same order


def test_what_the_route_must_judge_is_judged_by_it(verbal: LiveVerbal) -> None:
    with verbal.http() as http:
        not_a_number = http.post(
            path(verbal),
            data={"To": "+15550002000", "From": FROM, "Body": "x", "ValidityPeriod": "soon"},
        )
        twice = http.post(
            path(verbal),
            content=urlencode(
                [("To", "+15550002000"), ("To", "+15550003000"), ("From", FROM), ("Body", "x")]
            ),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        refused = http.post(path(verbal), data={"To": "+15550002000", "From": FROM})
    assert not_a_number.status_code == 400 and not_a_number.json()["code"] == 20422
    assert twice.status_code == 201  # the route takes the last value, as it always did
    assert refused.status_code == 400 and refused.json()["code"] == 21602


def test_wrong_credentials_or_another_account_are_refused(verbal: LiveVerbal) -> None:
    import httpx

    form = {"To": "+15550002000", "From": FROM, "Body": "x"}
    with httpx.Client(base_url=verbal.base_url, auth=(verbal.account_sid, "wrong")) as http:
        wrong = http.post(path(verbal), data=form)
    other = "AC" + "0" * 32
    with verbal.http() as http:
        elsewhere = http.post(f"/2010-04-01/Accounts/{other}/Messages.json", data=form)
    for answer in (wrong, elsewhere):
        assert answer.status_code == 401 and answer.json()["code"] == 20003
        assert answer.headers["www-authenticate"] == 'Basic realm="Verbal"'


def test_a_body_over_the_limit_is_refused_before_parsing(make_verbal: Any) -> None:
    verbal = make_verbal(max_request_bytes=1000)
    verbal.add_number(FROM)
    with verbal.http() as http:
        answer = http.post(
            path(verbal), data={"To": "+15550002000", "From": FROM, "Body": "x" * 2000}
        )
    assert answer.status_code == 413 and answer.json()["code"] == 20413


# -- POST /sandbox/handsets/{number}/messages ----------------------------------------------

HANDSET = "+15550002000"
TEXT_PATH = f"/sandbox/handsets/{HANDSET}/messages"


def test_a_plain_handset_text_is_parsed_here_and_anything_else_left_to_the_route() -> None:
    plain = _plain_handset_text(
        json.dumps(
            {"to": FROM, "body": "héllo", "media_urls": ["https://example.com/a.png"]}
        ).encode("utf-16")  # any UTF encoding, as the route reads JSON
    )
    assert plain is not None
    assert (plain.to, plain.body, plain.media_urls) == (
        FROM,
        "héllo",
        ["https://example.com/a.png"],
    )
    assert _plain_handset_text(json.dumps({"to": FROM}).encode()) == HandsetText(to=FROM)
    for judged_by_the_route in (
        {"to": FROM, "body": "x", "note": "another key"},
        {"to": 15550001000, "body": "x"},
        {"body": "no recipient"},
        {"to": FROM, "body": None},
        {"to": FROM, "body": "x" * (MAX_HANDSET_BODY + 1)},
        {"to": FROM, "media_urls": "https://example.com/a.png"},
        {"to": FROM, "media_urls": ["https://example.com/a.png"] * (MAX_HANDSET_MEDIA + 1)},
        {"to": FROM, "media_urls": [1]},
        [FROM, "x"],
    ):
        assert _plain_handset_text(json.dumps(judged_by_the_route).encode()) is None
    assert _plain_handset_text(b'{"to": ') is None
    assert _plain_handset_text(b"[" * 100_000) is None


def test_a_plain_handset_text_and_one_the_route_takes_are_answered_alike(
    verbal: LiveVerbal,
) -> None:
    text = {"to": FROM, "body": "héllo ✓"}
    with verbal.http() as http:
        fast = http.post(TEXT_PATH, json=text)
        # A key HandsetText ignores: the FastAPI route answers.
        routed = http.post(TEXT_PATH, json={**text, "note": "for the route"})
        listed = http.get(f"/2010-04-01/Accounts/{verbal.account_sid}/Messages.json").json()
    assert (fast.status_code, routed.status_code) == (201, 201)
    assert fast.headers["content-type"] == routed.headers["content-type"]
    assert list(fast.json()) == list(routed.json()) == ["message_sid", "from", "to"]
    assert {key: fast.json()[key] for key in ("from", "to")} == {"from": HANDSET, "to": FROM}
    assert {key: routed.json()[key] for key in ("from", "to")} == {"from": HANDSET, "to": FROM}
    received = {m["sid"]: m for m in listed["messages"] if m["direction"] == "inbound"}
    for answer in (fast, routed):
        message = received[answer.json()["message_sid"]]
        assert (message["from"], message["to"], message["body"]) == (HANDSET, FROM, "héllo ✓")


def test_a_refused_handset_text_is_refused_alike_either_way(verbal: LiveVerbal) -> None:
    with verbal.http() as http:
        for text, status, code in (
            ({"to": "+15550009999", "body": "x"}, 404, 21606),  # not the account's number
            ({"to": FROM, "body": ""}, 400, 21602),
            ({"to": "not a number", "body": "x"}, 400, 21211),
        ):
            fast = http.post(TEXT_PATH, json=text)
            routed = http.post(TEXT_PATH, json={**text, "note": "for the route"})
            assert fast.json() == routed.json()
            assert (fast.status_code, fast.json()["code"]) == (status, code)
        not_a_handset = http.post("/sandbox/handsets/+442071234567/messages", json={"to": FROM})
    assert (not_a_handset.status_code, not_a_handset.json()["code"]) == (400, 21211)


def test_what_the_handset_route_must_judge_is_judged_by_it(verbal: LiveVerbal) -> None:
    with verbal.http() as http:
        too_long = http.post(TEXT_PATH, json={"to": FROM, "body": "x" * 1601})
        not_json = http.post(
            TEXT_PATH, content=b'{"to": ', headers={"Content-Type": "application/json"}
        )
        not_a_string = http.post(TEXT_PATH, json={"to": 15550001000, "body": "x"})
    for answer in (too_long, not_json, not_a_string):
        assert answer.status_code == 400 and answer.json()["code"] == 20422
    assert not_json.json()["message"] == "The request body is not valid JSON"
    assert too_long.json()["message"].startswith("Invalid parameter body:")


def test_a_handset_text_with_wrong_credentials_is_refused(verbal: LiveVerbal) -> None:
    import httpx

    with httpx.Client(base_url=verbal.base_url, auth=(verbal.account_sid, "wrong")) as http:
        wrong = http.post(TEXT_PATH, json={"to": FROM, "body": "x"})
    assert wrong.status_code == 401 and wrong.json()["code"] == 20003
    assert wrong.headers["www-authenticate"] == 'Basic realm="Verbal"'


def test_a_handset_text_without_the_sandbox_is_not_found(make_verbal: Any) -> None:
    verbal = make_verbal(sandbox_enabled=False)
    verbal.add_number(FROM)
    with verbal.http() as http:
        answer = http.post(TEXT_PATH, json={"to": FROM, "body": "x"})
    assert answer.status_code == 404 and answer.json()["code"] == 20404
