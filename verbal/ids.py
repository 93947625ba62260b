"""Identifiers in the shapes the platforms use, so SDKs that check them are satisfied."""

from __future__ import annotations

import secrets
import string

_PLIVO_ALPHABET = string.ascii_uppercase + string.digits


def sid(prefix: str) -> str:
    """A Twilio-style SID: a two-letter prefix and 32 lowercase hex digits (`SM…`, `AC…`)."""
    return prefix + secrets.token_hex(16)


def plivo_auth_id() -> str:
    """A Plivo-style auth id: `MA` and 18 upper-case letters or digits (the SDK checks this)."""
    return "MA" + "".join(secrets.choice(_PLIVO_ALPHABET) for _ in range(18))


def auth_token() -> str:
    return secrets.token_hex(16)


def tropo_token() -> str:
    """A launch token for Tropo's Sessions API: 88 hex characters, like Tropo's were."""
    return secrets.token_hex(44)
