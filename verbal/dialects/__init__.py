"""Dialects: translation between each platform's documents and payloads and Verbal's model.

`DIALECTS` maps an application's dialect to its module's translator and `CALLBACK_FORMATS`
maps a message's `callback_format` to the module that renders its status callbacks, so
the layers below never branch on the platform.
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

CALLBACK_FORMATS: dict[str, CallbackFormat] = {
    "twilio": twilio.STATUS_CALLBACKS,
    "rcml": rcml.STATUS_CALLBACKS,
    "plivo": plivo.STATUS_CALLBACKS,
}
