"""Whatever a client sends the public request parsers of each API family, the answer is a
client error or a success, never a 5xx, and it comes quickly.

Random forms, query strings and JSON bodies, over loopback to one live server per family:
field names the parsers know mixed with unknown ones, and values chosen to break parsing
(huge numbers, NUL, bad dates, nesting, wrong types) mixed with valid ones.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import LiveVerbal

# Per example, that is per request: generous for a loaded machine, yet a handler that
# parsed in superlinear time or waited on something would blow it.
DEADLINE_MS = 2_000
property_test = settings(
    max_examples=40,
    deadline=DEADLINE_MS,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

NUMBERS = ["+15550002000", "+15550001000", "15550002000", "+442079460000", "+1555000200?"]
HOSTILE = [
    "",
    " ",
    "-1",
    "0",
    "99999999999999999999999",
    "1e309",
    "NaN",
    "\x00",
    "%",
    "%00",
    "true",
    "2026-13-45",
    "2026-11-22T10:00:00Z",
    "2026-11-22",
    "http://127.0.0.1:9/none",
    "ftp://x",
    "SM" + "0" * 32,
    "PA1",
    "PB" + "9" * 30,
    "<xml>&amp;</xml>",
    "é" * 300,
    "x" * 5000,
]
values = st.one_of(st.sampled_from(NUMBERS + HOSTILE), st.text(max_size=30))


def form(fields: list[str]) -> st.SearchStrategy[dict[str, str]]:
    names = st.one_of(st.sampled_from(fields), st.text(min_size=1, max_size=12))
    return st.dictionaries(names, values, max_size=len(fields))


json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        values,
    ),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(values, children, max_size=4),
    max_leaves=12,
)


def json_body(fields: list[str]) -> st.SearchStrategy[Any]:
    names = st.one_of(st.sampled_from(fields), st.text(max_size=12))
    return st.one_of(st.dictionaries(names, json_values, max_size=len(fields)), json_values)


def answered(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.request.url, response.text[:500])


TWILIO_CREATE = [
    "To",
    "From",
    "Body",
    "MediaUrl",
    "StatusCallback",
    "StatusCallbackMethod",
    "ValidityPeriod",
    "SendAt",
    "ScheduleType",
    "MessagingServiceSid",
]
TWILIO_LIST = ["To", "From", "DateSent", "DateSent<", "DateSent>", "PageSize", "Page", "PageToken"]


@property_test
@given(fields=form(TWILIO_CREATE), query=form(TWILIO_LIST))
def test_twilio_messages(verbal: LiveVerbal, fields: dict[str, str], query: dict[str, str]) -> None:
    path = f"/2010-04-01/Accounts/{verbal.account_sid}/Messages.json"
    with verbal.http() as http:
        answered(http.post(path, data=fields))
        answered(http.get(path, params=query))


RESTCOMM_CREATE = ["To", "From", "Body", "StatusCallback", "Encoding"]
RESTCOMM_LIST = ["To", "From", "StartTime", "EndTime", "Page", "PageSize", "AfterSid", "Body"]


@property_test
@given(
    fields=form(RESTCOMM_CREATE), query=form(RESTCOMM_LIST), suffix=st.sampled_from(["", ".json"])
)
def test_restcomm_sms_messages(
    verbal: LiveVerbal, fields: dict[str, str], query: dict[str, str], suffix: str
) -> None:
    path = f"/restcomm/2012-04-24/Accounts/{verbal.account_sid}/SMS/Messages{suffix}"
    with verbal.http() as http:
        answered(http.post(path, data=fields))
        answered(http.get(path, params=query))


PLIVO_CREATE = ["src", "dst", "text", "type", "url", "method", "log", "media_urls"]
PLIVO_LIST = [
    "limit",
    "offset",
    "message_direction",
    "message_state",
    "message_type",
    "from_number",
    "to_number",
    "message_time__gt",
]


@property_test
@given(body=json_body(PLIVO_CREATE), fields=form(PLIVO_CREATE), query=form(PLIVO_LIST))
def test_plivo_message(
    verbal: LiveVerbal, auth_id: str, body: Any, fields: dict[str, str], query: dict[str, str]
) -> None:
    path = f"/v1/Account/{auth_id}/Message/"
    with httpx.Client(
        base_url=verbal.base_url, auth=(auth_id, verbal.auth_token), timeout=30
    ) as http:
        answered(http.post(path, json=body))
        answered(http.post(path, data=fields))
        answered(http.get(path, params=query))


TROPO_FIELDS = ["token", "action", "msg", "to", "from", "network", "channel"]


@pytest.fixture
def tropo_token(verbal: LiveVerbal) -> str:
    # An app at a port where nothing listens: sessions it launches end at once.
    application = verbal.add_app("tropo", "http://127.0.0.1:9/app", "+15550001000")
    return str(application.messaging_token)


@property_test
@given(body=json_body(TROPO_FIELDS), query=form(TROPO_FIELDS), real_token=st.booleans())
def test_tropo_sessions(
    verbal: LiveVerbal, tropo_token: str, body: Any, query: dict[str, str], real_token: bool
) -> None:
    if real_token:
        query["token"] = tropo_token
        if isinstance(body, dict):
            body["token"] = tropo_token
    with httpx.Client(base_url=verbal.base_url, timeout=30) as http:
        for path in ("/1.0/sessions", "/v1/sessions"):
            answered(http.get(path, params=query))
            answered(http.post(path, json=body))
            answered(http.post(path, data=query))
