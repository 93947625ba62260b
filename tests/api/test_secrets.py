"""Auth tokens never reach the logs, whatever the requests and callbacks do."""

from __future__ import annotations

import base64
import logging

import httpx
import pytest

from tests.conftest import LiveVerbal, WebhookReceiver


def test_tokens_stay_out_of_logs(
    verbal: LiveVerbal, receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    receiver.respond = lambda path, params: 500 if params.get("MessageStatus") == "queued" else 200
    client = verbal.twilio()
    client.messages.create(
        to="+15550002000", from_="+15550001000", body="secret?", status_callback=receiver.url()
    )
    receiver.wait_for(lambda rs: any(r.params["MessageStatus"] == "delivered" for r in rs))
    wrong_token = "f" * 32
    with httpx.Client(base_url=verbal.base_url) as http:
        http.get(
            f"/2010-04-01/Accounts/{verbal.account_sid}/Messages.json",
            auth=(verbal.account_sid, wrong_token),
        )
        http.get(
            "/sandbox/rules",
            headers={
                "Authorization": "Basic "
                + base64.b64encode(f"{verbal.account_sid}:{verbal.auth_token}x".encode()).decode()
            },
        )

    assert caplog.records, "nothing was logged, so this test would prove nothing"
    assert verbal.auth_token not in caplog.text
    assert wrong_token not in caplog.text
