"""Twilio's conventions for what Verbal sends apps: status callbacks and their signature.

The signature is the one `twilio.request_validator.RequestValidator` checks: base64 of
HMAC-SHA1, keyed with the account's auth token, over the full URL followed by every POST
parameter name and value, names sorted, values sorted per name. GET requests sign the URL
alone (its query string already carries the parameters).
"""

from __future__ import annotations

from verbal.dialects.signing import signed
from verbal.dialects.types import MessageFacts

API_VERSION = "2010-04-01"
SIGNATURE_HEADER = "X-Twilio-Signature"


def signature(url: str, params: list[tuple[str, str]], auth_token: str) -> str:
    # Names sorted, each name's values sorted, a repeated (name, value) pair counted once:
    # exactly the order of the distinct pairs, sorted.
    payload = url + "".join(name + value for name, value in sorted(set(params)))
    return signed(auth_token, payload, "sha1")


class _StatusCallbacks:
    def params(self, message: MessageFacts) -> list[tuple[str, str]]:
        params = [
            ("AccountSid", message.account_sid),
            ("ApiVersion", API_VERSION),
            ("From", message.from_number),
            ("To", message.to_number),
            ("MessageSid", message.sid),
            ("SmsSid", message.sid),
            ("MessageStatus", message.status),
            ("SmsStatus", message.status),
            ("NumSegments", str(message.num_segments)),
            ("NumMedia", str(len(message.media_urls))),
        ]
        if message.messaging_service_sid is not None:
            params.append(("MessagingServiceSid", message.messaging_service_sid))
        if message.error_code is not None:
            params.append(("ErrorCode", str(message.error_code)))
            if message.error_message:
                params.append(("ErrorMessage", message.error_message))
        return params

    def signature_headers(
        self, url: str, params: list[tuple[str, str]], auth_token: str
    ) -> dict[str, str]:
        return {SIGNATURE_HEADER: signature(url, params, auth_token)}


STATUS_CALLBACKS = _StatusCallbacks()
