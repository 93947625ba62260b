"""Admission control: past `admission_limit` messages in progress, sends are refused with
429 in each API's own shape, and accepted again once the backlog drains."""

from __future__ import annotations

from typing import Any

from tests.conftest import LiveVerbal, wait_until

FROM = "+15550001000"


def test_sends_over_the_limit_are_refused_in_each_apis_shape(make_verbal: Any) -> None:
    verbal: LiveVerbal = make_verbal(admission_limit=1, submit_timeout_seconds=2.0)
    verbal.add_number(FROM)

    async def plivo_auth_id(runtime: Any) -> str:
        account = await runtime.directory.account(verbal.account_sid)
        return str(account.plivo_auth_id)

    auth_id = verbal.call(plivo_auth_id)
    twilio = f"/2010-04-01/Accounts/{verbal.account_sid}/Messages.json"
    restcomm = f"/restcomm/2012-04-24/Accounts/{verbal.account_sid}/SMS/Messages.json"
    plivo = f"/v1/Account/{auth_id}/Message/"
    with verbal.http() as http:
        # The sandbox never answers this one: it stays in progress until its submit times out.
        rule = http.post("/sandbox/rules", json={"pattern": "+15550009*", "outcome": "timeout"})
        assert rule.status_code == 201
        held = http.post(twilio, data={"To": "+15550009000", "From": FROM, "Body": "held"})
        assert held.status_code == 201, held.text

        refused = http.post(twilio, data={"To": "+15550002000", "From": FROM, "Body": "one more"})
        assert refused.status_code == 429
        body = refused.json()
        assert (body["code"], body["status"]) == (20429, 429)
        assert body["more_info"].endswith("/20429") and "retry" in body["message"]

        restcomm_refused = http.post(
            restcomm, data={"To": "+15550002000", "From": FROM, "Body": "one more"}
        )
        assert restcomm_refused.status_code == 429
        assert restcomm_refused.json()["error"] == 20429

        plivo_refused = http.post(
            plivo, json={"src": FROM, "dst": "+15550002000", "text": "one more"}
        )
        assert plivo_refused.status_code == 429
        assert set(plivo_refused.json()) == {"api_id", "error"}

        # Reads go on meanwhile, and once the held message is done with, sends do too.
        assert http.get(twilio).status_code == 200
        http.delete("/sandbox/rules")
        wait_until(
            lambda: (
                http.post(
                    twilio, data={"To": "+15550002000", "From": FROM, "Body": "later"}
                ).status_code
                == 201
            ),
            timeout=30,
            what="the backlog to drain",
        )
