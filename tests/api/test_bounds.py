"""Ids, pages and offsets beyond any row: they used to reach the database driver, which
refused them with a 500 (found by the schemathesis run); they are a 400 now."""

from __future__ import annotations

import pytest

from tests.conftest import LiveVerbal


@pytest.mark.parametrize("value", [str(2**31), "1" + "0" * 30])
def test_ids_pages_and_offsets_beyond_any_row_are_refused(
    verbal: LiveVerbal, auth_id: str, value: str
) -> None:
    twilio = f"/2010-04-01/Accounts/{verbal.account_sid}/Messages.json"
    plivo = f"/v1/Account/{auth_id}/Message/"
    with verbal.http() as http:
        answers = [
            http.delete(f"/sandbox/rules/{value}"),
            http.get(twilio, params={"Page": value}),
            http.get(twilio, params={"PageToken": f"PA{value}"}),
            http.get(twilio, params={"PageToken": f"PB{value}"}),
            http.get(plivo, params={"offset": value}),
        ]
    assert [answer.status_code for answer in answers] == [400] * len(answers)


@pytest.mark.parametrize("limit", ["0", "1001", "-1", "99999999999999999999", "ten"])
def test_an_inbox_limit_out_of_range_is_refused_like_other_parameters(
    verbal: LiveVerbal, limit: str
) -> None:
    inbox = "/sandbox/handsets/+15550002000/inbox"
    with verbal.http() as http:
        assert http.get(inbox, params={"limit": "1000"}).status_code == 200
        answer = http.get(inbox, params={"limit": limit})
    assert answer.status_code == 400
    assert {"code", "message", "more_info", "status"} <= answer.json().keys()
    assert "limit" in answer.json()["message"]
