"""Contracts between the dialect modules and the rest of Verbal."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class MessageFacts:
    """What a status callback may tell about a message, independent of any platform."""

    sid: str
    account_sid: str
    from_number: str
    to_number: str
    body: str
    status: str
    error_code: int | None
    error_message: str | None
    media_urls: tuple[str, ...]
    num_segments: int
    date_updated: datetime


class CallbackFormat(Protocol):
    def params(self, message: MessageFacts) -> list[tuple[str, str]]:
        """The form parameters of a status callback for the message's current status."""
        ...

    def signature_headers(
        self, url: str, params: list[tuple[str, str]], auth_token: str
    ) -> dict[str, str]:
        """Headers that let the platform's SDK validate the request (for POST `url`)."""
        ...
