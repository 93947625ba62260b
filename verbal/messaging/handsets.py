"""A sandbox handset texting one of an account's numbers, on that account's behalf.

The sandbox API and the web console both let an account script this; the checks live here
once, so a text typed in the console takes exactly the road a test's
`POST /sandbox/handsets/{number}/messages` takes, and both refuse the same things.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from verbal.carriers.sandbox import NotAHandset, NotServed, SandboxNetwork
from verbal.messaging.addresses import InvalidNumber, to_e164
from verbal.messaging.errors import NumberNotInService
from verbal.messaging.service import MAX_BODY_CHARS, MAX_MEDIA, is_http_url
from verbal.store.models import Account


class HandsetProblem(enum.StrEnum):
    NOT_A_HANDSET = "not_a_handset"
    TO_INVALID = "to_invalid"
    BODY_MISSING = "body_missing"
    BODY_TOO_LONG = "body_too_long"
    TOO_MANY_MEDIA = "too_many_media"
    MEDIA_URL_INVALID = "media_url_invalid"
    # The recipient is not one of the calling account's numbers (or no one's).
    NOT_OWNED = "not_owned"


class HandsetTextRefused(Exception):
    def __init__(self, problem: HandsetProblem, detail: str) -> None:
        super().__init__(detail)
        self.problem = problem
        self.detail = detail


@dataclass(frozen=True, slots=True)
class HandsetText:
    message_sid: str
    handset: str
    to: str


def handset_number(raw: str, carrier: SandboxNetwork) -> str:
    """`raw` as the E.164 number of a sandbox handset; HandsetTextRefused otherwise."""
    try:
        number = to_e164(raw)
        carrier.check_handset(number)
    except (InvalidNumber, NotAHandset) as exc:
        raise HandsetTextRefused(HandsetProblem.NOT_A_HANDSET, str(exc)) from None
    return number


async def text_from_handset(
    carrier: SandboxNetwork,
    account: Account,
    handset: str,
    to: str,
    body: str,
    media_urls: Sequence[str] = (),
) -> HandsetText:
    """Have `handset` text `to`, which must be one of `account`'s numbers, or a number of
    one of its ESMEs (the sandbox SMSC's `numbers`).

    The text arrives as an inbound message through the carrier, like any handset's, or
    goes to the ESME as a deliver_sm.
    """
    sender = handset_number(handset, carrier)
    try:
        recipient = to_e164(to)
    except InvalidNumber as exc:
        raise HandsetTextRefused(HandsetProblem.TO_INVALID, str(exc)) from None
    if not body and not media_urls:
        raise HandsetTextRefused(HandsetProblem.BODY_MISSING, "Message body is required.")
    if len(body) > MAX_BODY_CHARS:
        raise HandsetTextRefused(
            HandsetProblem.BODY_TOO_LONG,
            f"The message body exceeds the {MAX_BODY_CHARS} character limit.",
        )
    if len(media_urls) > MAX_MEDIA:
        raise HandsetTextRefused(
            HandsetProblem.TOO_MANY_MEDIA, f"A message can have at most {MAX_MEDIA} media URLs."
        )
    for url in media_urls:
        if not is_http_url(url):
            raise HandsetTextRefused(
                HandsetProblem.MEDIA_URL_INVALID, f"Media URL {url!r} is not an http(s) URL."
            )
    # A handset may text any number, but an account may only script texts to its own (or
    # to its ESMEs' numbers): the network refuses the rest.
    try:
        sid = await carrier.send_from_handset(
            sender, recipient, body, tuple(media_urls), account_sid=account.sid
        )
    except (NotServed, NumberNotInService) as exc:
        # NumberNotInService: released between the network's check and the text.
        raise HandsetTextRefused(HandsetProblem.NOT_OWNED, str(exc)) from None
    return HandsetText(sid, sender, recipient)
