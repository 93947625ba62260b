"""/openapi.json against a live Verbal: every operation, probed by schemathesis.

Schemathesis reads the document over HTTP and sends each operation requests that fit it and
requests that do not (a bounded, seeded number), and checks every answer: no 5xx, a status
the document lists, its media type, its body's schema, its documented headers. Known
numbers, SIDs and tokens are mixed into the generated values, so that requests get past
"not found" and reach the handlers' other answers too.

Run alone with `python -m pytest tests/api/test_openapi.py -q`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import settings

from tests.conftest import LiveVerbal
from verbal.api.openapi import OPERATIONS

ACCOUNT_NUMBER = "+15550001000"
TROPO_NUMBER = "+15550001001"
HANDSET = "+15550002000"
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "ignored_auth",
)
# Two runs. With the account's credentials: 10 generated requests per operation, plus the
# coverage phase (boundary values, missing parameters, other methods: some 25 requests per
# operation), and `ignored_auth`, which repeats a request that succeeded with no and with
# wrong credentials. Then with credentials schemathesis makes up itself, which nearly every
# operation answers with the same 401, so a few requests suffice.
RUNS = {"account": (10, True), "made-up credentials": (3, False)}
SEED = 20261122
# As LiveVerbal.http(): a loaded machine (the suite runs on every core) can take seconds over
# httpx's default 5 s for what takes milliseconds here.
TIMEOUT = 30


def known_values(verbal: LiveVerbal, auth_id: str) -> dict[str, list[str]]:
    """Create a message, an inbound text and a Tropo session; values that name them, mixed
    into the generated ones, get requests past "not found"."""
    tropo = verbal.add_app("tropo", "http://127.0.0.1:9/unreachable", TROPO_NUMBER)
    with verbal.http() as http:
        sent = http.post(
            f"/2010-04-01/Accounts/{verbal.account_sid}/Messages.json",
            data={"To": HANDSET, "From": ACCOUNT_NUMBER, "Body": "seed"},
        )
        sent.raise_for_status()
        http.post(
            f"/sandbox/handsets/{HANDSET}/messages", json={"to": ACCOUNT_NUMBER, "body": "hi"}
        ).raise_for_status()
        launched = http.get(
            "/1.0/sessions", params={"token": tropo.messaging_token}, headers={"Accept": "json"}
        )
        launched.raise_for_status()
        plivo = http.get(f"/v1/Account/{auth_id}/Message/").json()
    return {
        "account_numbers": [ACCOUNT_NUMBER, TROPO_NUMBER],
        "handsets": [HANDSET],
        "numbers": [ACCOUNT_NUMBER, TROPO_NUMBER, HANDSET],
        "message_sids": [sent.json()["sid"]],
        "sids": [sent.json()["sid"], launched.json()["id"]],
        "message_uuids": [message["message_uuid"] for message in plivo["objects"]],
        "tokens": [tropo.messaging_token],
    }


def config(verbal: LiveVerbal, auth_id: str, run: str) -> schemathesis.Config:
    known = known_values(verbal, auth_id)
    examples, coverage = RUNS[run]

    def often(dictionary: str, probability: float = 0.5) -> dict[str, Any]:
        return {"dictionary": dictionary, "probability": probability}

    settings_: dict[str, Any] = {
        "seed": SEED,
        # No crash cache between runs: a run depends on the seed and the code alone.
        "cache": {"enabled": False},
        "generation": {"mode": "all", "max-examples": examples, "database": "none"},
        "phases": {"coverage": {"enabled": coverage}},
        "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        # The account's own SID and auth id: any other is answered 401 before anything else.
        "parameters": {
            "path.AccountSid": verbal.account_sid,
            "path.auth_id": auth_id,
            "path.MessageSid": often("message_sids"),
            "path.sid": often("sids", 0.8),
            "path.message_uuid": often("message_uuids"),
            "path.number": often("numbers"),
            "body.From": often("account_numbers"),
            "body.src": often("account_numbers"),
            "body.to": often("account_numbers"),
            "body.To": often("handsets"),
            "body.dst": often("handsets"),
            "query.token": often("tokens"),
            "body.token": often("tokens"),
        },
        "dictionaries": {name: {"values": values} for name, values in known.items()},
    }
    if run == "account":
        settings_["auth"] = {
            "basic": {"username": verbal.account_sid, "password": verbal.auth_token}
        }
    return schemathesis.Config.from_dict(settings_)


@pytest.fixture(params=list(RUNS))
def api_schema(request: pytest.FixtureRequest, verbal: LiveVerbal, auth_id: str) -> Any:
    return schemathesis.openapi.from_url(
        verbal.base_url + "/openapi.json", config=config(verbal, auth_id, request.param)
    )


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture
def http() -> Iterator[requests.Session]:
    """One keep-alive connection for the whole run, and no look-ups of proxy settings."""
    with requests.Session() as session:
        session.trust_env = False
        yield session


@pytest.mark.slow  # a minute and more: started first (tests/conftest.py)
@schema.parametrize()
@settings(deadline=None, derandomize=True)
def test_every_operation_answers_as_documented(
    case: schemathesis.Case, http: requests.Session
) -> None:
    case.call_and_validate(session=http)


def test_every_json_answer_has_a_documented_shape(verbal: LiveVerbal) -> None:
    """FastAPI documents a handler's plain dict as "any object": a new route's answers need
    a model, in `OPERATIONS` or in the route's own `responses`, for this run to check them."""
    document = httpx.get(verbal.base_url + "/openapi.json", timeout=TIMEOUT).json()
    shapeless = [
        f"{method.upper()} {path} {status}"
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        for status, answer in operation["responses"].items()
        for media_type, content in answer.get("content", {}).items()
        if media_type.endswith("json") and not {"$ref", "properties"} & content["schema"].keys()
    ]
    assert shapeless == []


def test_every_entry_of_operations_names_an_operation(verbal: LiveVerbal) -> None:
    """An entry left behind by a renamed or removed route would document nothing."""
    document = httpx.get(verbal.base_url + "/openapi.json", timeout=TIMEOUT).json()
    documented = {(method, path) for path, ops in document["paths"].items() for method in ops}
    assert set(OPERATIONS) - documented == set()


def test_docs_pages_load_everything_from_this_server(verbal: LiveVerbal) -> None:
    with httpx.Client(base_url=verbal.base_url, timeout=TIMEOUT) as http:
        for page in ("/docs", "/redoc"):
            html = http.get(page).text
            assets = re.findall(r'(?:src|href|spec-url)="([^"]+)"', html)
            assert assets, html
            assert "://" not in html
            for asset in assets:
                assert asset.startswith("/") and not asset.startswith("//"), asset
                assert http.get(asset).status_code == 200, asset
