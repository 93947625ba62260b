"""Phone numbers as users write them, turned into E.164 once, at the edge."""

from __future__ import annotations

import functools

import phonenumbers

# Twilio's rule: a number without a country code is read in this region.
DEFAULT_REGION = "US"


class InvalidNumber(ValueError):
    pass


# Parsing costs about 0.1 ms, a tenth of a message's whole budget, and the same senders and
# recipients come back again and again.
@functools.lru_cache(maxsize=8192)
def to_e164(raw: str, region: str = DEFAULT_REGION) -> str:
    """Parse a phone number (`+1 555 0100 123`, `tel:+1...`, `(555) 010-0123`) to E.164.

    The number must be possible (right length for its country); it need not be assigned,
    since sandbox numbers such as +1555… are fictional by design.
    """
    text = raw.strip()
    for scheme in ("tel:", "sms:", "mms:"):
        if text.lower().startswith(scheme):
            text = text[len(scheme) :]
    if not text:
        raise InvalidNumber("empty number")
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidNumber(f"{raw!r} is not a phone number") from exc
    if not phonenumbers.is_possible_number(parsed):
        raise InvalidNumber(f"{raw!r} is not a possible phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
