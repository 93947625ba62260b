"""Dialects: translation between each platform's documents and payloads and Verbal's model.

`CALLBACK_FORMATS` maps a message's `callback_format` to the module that renders its
status callbacks, so the layers below never branch on the platform.
"""

from __future__ import annotations

from verbal.dialects import twilio
from verbal.dialects.types import CallbackFormat

CALLBACK_FORMATS: dict[str, CallbackFormat] = {"twilio": twilio.STATUS_CALLBACKS}
