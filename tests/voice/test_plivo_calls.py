"""Plivo's Call API driven by the unmodified `plivo` SDK: a call to a sandbox handset runs
its Plivo XML, and the answer and hangup URLs validate with the SDK's own check."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import plivo
import plivo.rest.client as plivo_rest
import pytest
from plivo import exceptions
from plivo.utils import validate_v3_signature

from tests.api.conftest import BASE_URI_NAMES
from tests.conftest import AppHit, AppServer, LiveVerbal, wait_until
from tests.engine.helpers import header
from tests.voice.helpers import APP_NUMBER, HANDSET, ended_call
from verbal.dialects.plivo import call_uuid


@pytest.fixture
def client(verbal: LiveVerbal) -> Iterator[Any]:
    async def lookup(runtime: Any) -> str:
        return str((await runtime.directory.account(verbal.account_sid)).plivo_auth_id)

    auth_id = verbal.call(lookup)
    with pytest.MonkeyPatch.context() as patch:
        for name in BASE_URI_NAMES:
            patch.setattr(plivo_rest, name, verbal.base_url + "/v1/Account")
        yield plivo.RestClient(auth_id, verbal.auth_token)


def valid(verbal: LiveVerbal, hit: AppHit) -> bool:
    return bool(
        validate_v3_signature(
            hit.method,
            hit.url,
            header(hit.headers, "X-Plivo-Signature-V3-Nonce"),
            verbal.auth_token,
            header(hit.headers, "X-Plivo-Signature-V3"),
            hit.form,
        )
    )


def test_a_call_made_with_the_sdk_runs_plivo_xml_and_reports_its_hangup(
    verbal: LiveVerbal, app_server: AppServer, client: Any
) -> None:
    app_server.routes["/answer"] = lambda hit: (
        200,
        "application/xml",
        "<Response><Speak>Your table is ready</Speak></Response>",
    )
    app_server.routes["/hangup"] = lambda hit: (200, "text/plain", "")
    response = client.calls.create(
        from_=APP_NUMBER.lstrip("+"),
        to_=HANDSET.lstrip("+"),
        answer_url=app_server.url("/answer"),
        answer_method="GET",
        hangup_url=app_server.url("/hangup"),
    )
    assert response.message == "call fired"
    uuid = response.request_uuid
    sid = "CA" + uuid.replace("-", "")
    assert call_uuid(sid) == uuid

    heard = ended_call(verbal, HANDSET, sid)
    assert [(h["kind"], h["detail"]) for h in heard["heard"]] == [("speech", "Your table is ready")]
    assert heard["cause"] == "the document ended"

    [answer] = app_server.hits_for("/answer")
    assert answer.method == "GET"
    form = answer.form
    assert (form["CallUUID"], form["Direction"], form["CallStatus"], form["Event"]) == (
        uuid,
        "outbound",
        "in-progress",
        "StartApp",
    )
    assert (form["From"], form["To"]) == (APP_NUMBER.lstrip("+"), HANDSET.lstrip("+"))
    assert form["ALegUUID"] == uuid
    assert valid(verbal, answer)

    [hangup] = wait_until(lambda: app_server.hits_for("/hangup"), what="the hangup URL")
    assert (hangup.form["Event"], hangup.form["HangupCause"]) == ("Hangup", "NORMAL_CLEARING")
    assert int(hangup.form["Duration"]) >= 1
    assert valid(verbal, hangup)

    record = wait_until(lambda: (r := client.calls.get(uuid)).end_time and r)
    assert (record.call_uuid, record.call_direction, record.call_status) == (
        uuid,
        "outbound",
        "completed",
    )
    assert (record.from_number, record.to_number) == (APP_NUMBER[1:], HANDSET[1:])
    assert record.hangup_cause_name == "NORMAL_CLEARING"
    assert record.bill_duration == int(hangup.form["Duration"])


def test_a_live_call_is_hung_up_and_bad_requests_are_refused(
    verbal: LiveVerbal, app_server: AppServer, client: Any
) -> None:
    app_server.routes["/answer"] = lambda hit: (
        200,
        "application/xml",
        '<Response><Wait length="30"/></Response>',
    )
    uuid = client.calls.create(
        from_=APP_NUMBER, to_=HANDSET, answer_url=app_server.url("/answer")
    ).request_uuid
    sid = "CA" + uuid.replace("-", "")
    wait_until(lambda: client.calls.get(uuid).call_status == "in-progress")
    client.calls.delete(uuid)
    assert ended_call(verbal, HANDSET, sid)["cause"] == "hung up through the API"
    with pytest.raises(exceptions.ResourceNotFoundError):
        client.calls.delete(uuid)  # not live any more
    with pytest.raises(exceptions.ResourceNotFoundError):
        client.calls.get("00000000-0000-0000-0000-000000000000")
    with pytest.raises(exceptions.ValidationError):
        client.calls.create(from_="15550009999", to_=HANDSET, answer_url=app_server.url("/a"))
