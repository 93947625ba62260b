"""HTTP Basic authentication with an account's SID (or Plivo auth id) and auth token."""

from __future__ import annotations

import base64
import binascii

from fastapi import Request

from verbal.api.errors import unauthorized
from verbal.runtime import Runtime
from verbal.store.models import Account


def runtime(request: Request) -> Runtime:
    return request.app.state.runtime


async def authenticated_account(request: Request) -> Account:
    """The account the request's credentials belong to; 401 (code 20003) otherwise."""
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
