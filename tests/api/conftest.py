"""Fixtures the Plivo API tests share: the account's auth id and the SDK pointed at Verbal."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import plivo
import plivo.rest.client as plivo_rest
import pytest

from tests.conftest import LiveVerbal

BASE_URI_NAMES = (
    "PLIVO_API_BASE_URI",
    "API_VOICE_BASE_URI",
    "API_VOICE_BASE_URI_FALLBACK_1",
    "API_VOICE_BASE_URI_FALLBACK_2",
)


@pytest.fixture
def auth_id(verbal: LiveVerbal) -> str:
    """The Plivo auth id (`MA…`) of the live server's account."""

    async def lookup(runtime: Any) -> str:
        account = await runtime.directory.account(verbal.account_sid)
        return account.plivo_auth_id

    return str(verbal.call(lookup))


@pytest.fixture
def client(verbal: LiveVerbal, auth_id: str) -> Iterator[Any]:
    """The `plivo` SDK pointed at the live server (sdks.md §2.2); the module is restored
    afterwards."""
    with pytest.MonkeyPatch.context() as patch:
        for name in BASE_URI_NAMES:
            patch.setattr(plivo_rest, name, verbal.base_url + "/v1/Account")
        yield plivo.RestClient(auth_id, verbal.auth_token)
