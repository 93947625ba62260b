"""Helpers the Twilio API tests share: a second account, and the SDK pointed at Verbal as it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client

from tests.conftest import LiveVerbal


def other_account(verbal: LiveVerbal, *numbers: str) -> Client:
    """A second account owning `numbers`, and the SDK authenticated as it."""

    async def create(runtime: Any) -> tuple[str, str]:
        account = await runtime.directory.create_account("Other account")
        for number in numbers:
            await runtime.directory.add_number(account, number)
        return account.sid, account.auth_token

    sid, token = verbal.call(create)
    client = Client(sid, token)
    client.api.base_url = verbal.base_url
    return client


def twilio_error(call: Any, *args: Any, **kwargs: Any) -> tuple[int, int]:
    """The (HTTP status, Twilio code) that an SDK call raises.

    Lists raise the bare TwilioException with the response, the other calls a
    TwilioRestException with the code.
    """
    with pytest.raises(TwilioException) as raised:
        call(*args, **kwargs)
    if isinstance(raised.value, TwilioRestException):
        return raised.value.status, raised.value.code
    response = raised.value.args[1]
    return response.status_code, json.loads(response.text)["code"]
