"""Why a message was refused at the door, as values each API renders in its own convention."""

from __future__ import annotations

import enum


class Refusal(enum.StrEnum):
    TO_MISSING = "to_missing"
    FROM_MISSING = "from_missing"
    BODY_MISSING = "body_missing"
    TO_INVALID = "to_invalid"
    FROM_INVALID = "from_invalid"
    FROM_NOT_OWNED = "from_not_owned"
    BODY_TOO_LONG = "body_too_long"
    TOO_MANY_MEDIA = "too_many_media"
    MEDIA_URL_INVALID = "media_url_invalid"
    CALLBACK_URL_INVALID = "callback_url_invalid"
    CALLBACK_METHOD_INVALID = "callback_method_invalid"
    UNREACHABLE = "unreachable"
    VALIDITY_INVALID = "validity_invalid"
    SEND_AT_OUT_OF_RANGE = "send_at_out_of_range"
    OPTED_OUT = "opted_out"
    SERVICE_NOT_FOUND = "service_not_found"
    SERVICE_EMPTY = "service_empty"
    # Refusals of a change to a message that exists.
    NOT_CANCELABLE = "not_cancelable"
    IN_PROGRESS = "in_progress"


class MessageRefused(Exception):
    def __init__(self, reason: Refusal, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class MessageNotFound(LookupError):
    """No message with that SID belongs to the account."""


class CallbackNotFound(LookupError):
    """No status callback attempt with that id belongs to the account's messages."""


class NumberNotInService(LookupError):
    """An inbound message was addressed to a number no account owns."""
