"""HTTP Basic authentication with an account's SID (or Plivo auth id) and auth token."""

from __future__ import annotations

import base64
import binascii

from fastapi import Request
from fastapi.openapi.models import HTTPBase
from fastapi.security.base import SecurityBase

from verbal.api.errors import unauthorized
from verbal.runtime import Runtime
from verbal.store.models import Account


def runtime(request: Request) -> Runtime:
    return request.app.state.runtime


class AccountBasicAuth(SecurityBase):
    """The account a request's Basic credentials belong to; 401 (code 20003) otherwise.

    A security scheme rather than a plain dependency, so that FastAPI declares it in the
    OpenAPI document on every route that depends on it.
    """

    def __init__(self) -> None:
        self.model = HTTPBase(
            scheme="basic",
            description="The account SID (AC…) or Plivo auth id (MA…) as user name, "
            "the auth token as password.",
        )
        self.scheme_name = "basicAuth"

    async def __call__(self, request: Request) -> Account:
        header = request.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic" or not encoded:
            raise unauthorized()
        try:
            username, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise unauthorized() from None
        account = await runtime(request).directory.authenticate(username, password)
        if account is None:
            raise unauthorized()
        return account


authenticated_account = AccountBasicAuth()
