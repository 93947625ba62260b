"""Dialects: translation between each platform's documents and payloads and Verbal's model.

`DIALECTS` maps an application's dialect to its module's translator, and `CALLBACK_FORMATS`
maps a message's `callback_format` (a dialect's name, or `twilio`) to what renders its status
callbacks, so the layers below never branch on the platform.
"""

from __future__ import annotations

from verbal.dialects import auto, plivo, rcml, tropo, twilio
from verbal.dialects.types import CallbackFormat, Dialect

DIALECTS: dict[str, Dialect] = {
    "tropo": tropo.DIALECT,
    "rcml": rcml.DIALECT,
    "plivo": plivo.DIALECT,
    "auto": auto.DIALECT,
}

# A message sent by an app renders its callbacks the way its dialect does; one sent through
# Twilio's REST API, the Twilio way.
CALLBACK_FORMATS: dict[str, CallbackFormat] = {
    "twilio": twilio.STATUS_CALLBACKS,
    **{name: dialect.status_callbacks for name, dialect in DIALECTS.items()},
}
