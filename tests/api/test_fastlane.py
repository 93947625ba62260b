"""The fast lane (verbal/api/fastlane.py) answers sends exactly as the FastAPI route does,
and leaves everything it does not fully understand to the route."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from tests.conftest import LiveVerbal, WebhookReceiver

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
