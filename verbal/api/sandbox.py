"""The sandbox network's HTTP API: read a handset's inbox, text from a handset, script outcomes.

JSON in and out, authenticated like every other call. Users' own test suites drive the
simulated network with it; so do Verbal's tests and the console.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field

from verbal.api.auth import authenticated_account, runtime
from verbal.api.errors import ApiError
from verbal.api.limits import MAX_ROW_ID
from verbal.carriers.globs import MAX_PATTERN_LENGTH
from verbal.carriers.sandbox import CallOutcome, NotServed, Outcome, Rule, SandboxNetwork
from verbal.ids import sid as new_sid
from verbal.messaging import handsets
from verbal.messaging.addresses import InvalidNumber, to_e164
from verbal.messaging.handsets import HandsetProblem, HandsetTextRefused
from verbal.runtime import Runtime
from verbal.store.models import Account
from verbal.voice.audio import BYTES_PER_SECOND
from verbal.voice.sandbox import HandsetCall, SandboxPhones

router = APIRouter(prefix="/sandbox", tags=["Sandbox network"])
Caller = Annotated[Account, Depends(authenticated_account)]
RuleId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]
Handset = Annotated[
    str, Path(description="A sandbox handset's number (+1555…).", examples=["+15550002000"])
]


# The fast lane (`fastlane.py`) checks a text against these limits too.
MAX_HANDSET_BODY = 1600
MAX_HANDSET_MEDIA = 10


class HandsetText(BaseModel):
    to: str = Field(description="The number the handset texts (one of an account's numbers).")
    body: str = Field("", max_length=MAX_HANDSET_BODY)
    media_urls: list[str] = Field(default_factory=list, max_length=MAX_HANDSET_MEDIA)


class RuleIn(BaseModel):
    pattern: str = Field(
        min_length=1,
        max_length=MAX_PATTERN_LENGTH,
        description="A handset number, or a glob such as +1555*: which messages the rule takes.",
    )
    outcome: str = Field(
        description="For text: deliver, undeliverable, fail, silent, timeout, throttle. "
        "For voice: answer, no-answer, busy, decline, fail."
    )
    delay_seconds: float = Field(
        0.0, ge=0, le=86400, description="Text: until delivery. Voice: how long it rings."
    )
    error_code: int | None = Field(
        None, ge=30001, le=30999, description="The 300xx error for undeliverable or fail."
    )
    channel: Literal["text", "voice"] = Field(
        "text", description="text rules script messages; voice rules what a called handset does."
    )

    def parsed_outcome(self) -> Outcome | CallOutcome:
        kind = CallOutcome if self.channel == "voice" else Outcome
        try:
            return kind(self.outcome)
        except ValueError:
            names = ", ".join(o.value for o in kind)
            raise ApiError(
                400, 20422, f"{self.outcome!r} is not a {self.channel} outcome ({names})"
            ) from None


def network(served: Runtime) -> SandboxNetwork:
    """The server's sandbox network; ApiError 404 when it is disabled."""
    if served.sandbox is None:
        raise ApiError(404, 20404, "The sandbox network is disabled on this server")
    return served.sandbox


async def sandbox(request: Request) -> SandboxNetwork:
    # async: FastAPI runs a plain `def` dependency in a worker thread, which cost more CPU
    # than the rest of the request (bench/app_round_trip.py, profiled).
    return network(runtime(request))


Sandbox = Annotated[SandboxNetwork, Depends(sandbox)]


# Twilio's status and code for each reason a handset's text is refused.
HANDSET_ERRORS: dict[HandsetProblem, tuple[int, int]] = {
    HandsetProblem.NOT_A_HANDSET: (400, 21211),
    HandsetProblem.TO_INVALID: (400, 21211),
    HandsetProblem.BODY_MISSING: (400, 21602),
    HandsetProblem.BODY_TOO_LONG: (400, 21617),
    HandsetProblem.TOO_MANY_MEDIA: (400, 21623),
    HandsetProblem.MEDIA_URL_INVALID: (400, 21620),
    HandsetProblem.NOT_OWNED: (404, 21606),
}


def _refused(refused: HandsetTextRefused) -> ApiError:
    return ApiError(*HANDSET_ERRORS[refused.problem], refused.detail)


def handset_number(raw: str, carrier: SandboxNetwork) -> str:
    try:
        return handsets.handset_number(raw, carrier)
    except HandsetTextRefused as refused:
        raise _refused(refused) from None


def rule_json(rule: Rule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "pattern": rule.pattern,
        "outcome": rule.outcome.value,
        "delay_seconds": rule.delay_seconds,
        "error_code": rule.error_code,
        "channel": rule.channel,
    }


@router.get("/handsets/{number}/inbox", summary="Messages a handset received, newest first")
async def read_inbox(
    number: Handset,
    carrier: Sandbox,
    caller: Caller,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    handset = handset_number(number, carrier)
    deliveries = await carrier.inbox(caller.sid, handset, limit=limit)
    return {
        "handset": handset,
        "messages": [
            {
                "message_sid": d.message_sid,
                "from": d.sender,
                "to": d.handset,
                "body": d.body,
                "media_urls": d.media_urls,
                "received_at": datetime.fromtimestamp(d.visible_at, UTC).isoformat(),
            }
            for d in deliveries
        ],
    }


@router.post("/handsets/{number}/messages", status_code=201, summary="Text from a handset")
async def send_from_handset(
    number: Handset, text: HandsetText, carrier: Sandbox, caller: Caller
) -> dict[str, Any]:
    return await accept_handset_text(carrier, caller, number, text)


async def accept_handset_text(
    carrier: SandboxNetwork, account: Account, number: str, text: HandsetText
) -> dict[str, Any]:
    """Have handset `number` send `text` and answer; this route and the fast lane
    (`fastlane.py`) both end here. Raises ApiError."""
    try:
        sent = await handsets.text_from_handset(
            carrier, account, number, text.to, text.body, text.media_urls
        )
    except HandsetTextRefused as refused:
        raise _refused(refused) from None
    return {"message_sid": sent.message_sid, "from": sent.handset, "to": sent.to}


@router.get("/rules", summary="Outcome rules, in the order they are tried")
async def list_rules(carrier: Sandbox, caller: Caller) -> dict[str, Any]:
    return {"rules": [rule_json(rule) for rule in await carrier.rules(caller.sid)]}


@router.post("/rules", status_code=201, summary="Add an outcome rule")
async def add_rule(rule: RuleIn, carrier: Sandbox, caller: Caller) -> dict[str, Any]:
    created = await carrier.add_rule(
        caller.sid,
        rule.pattern,
        rule.parsed_outcome(),
        rule.delay_seconds,
        rule.error_code,
        rule.channel,
    )
    return rule_json(created)


@router.delete("/rules/{rule_id}", status_code=204, summary="Delete one outcome rule")
async def delete_rule(rule_id: RuleId, carrier: Sandbox, caller: Caller) -> None:
    if not await carrier.delete_rule(caller.sid, rule_id):
        raise ApiError(404, 20404, f"No sandbox rule {rule_id}")


@router.delete("/rules", status_code=204, summary="Delete every outcome rule")
async def clear_rules(carrier: Sandbox, caller: Caller) -> None:
    await carrier.delete_rule(caller.sid, None)


# -- calls ------------------------------------------------------------------------------------


class HandsetDial(BaseModel):
    to: str = Field(description="The number the handset calls (one of an account's numbers).")
    hangup_after_seconds: float | None = Field(
        None, gt=0, le=3600, description="Hang up this long after the call is answered."
    )


def phones(served: Runtime) -> SandboxPhones:
    if served.phones is None:
        raise ApiError(404, 20404, "The sandbox network is disabled on this server")
    return served.phones


def handset_call_json(call: HandsetCall) -> dict[str, Any]:
    def instant(value: float | None) -> str | None:
        return None if value is None else datetime.fromtimestamp(value, UTC).isoformat()

    return {
        "call_sid": call.sid,
        "handset": call.handset,
        "other": call.other,
        "direction": call.direction,
        "status": call.status,
        "cause": call.cause,
        "started_at": instant(call.started_at),
        "answered_at": instant(call.answered_at),
        "ended_at": instant(call.ended_at),
        "heard": [
            {"kind": h.kind, "detail": h.detail, "seconds": h.seconds, "early": h.early}
            for h in call.heard
        ],
        "recording_seconds": round(len(call.pcm) / BYTES_PER_SECOND, 3),
        "recording_url": f"/sandbox/calls/{call.sid}/recording.wav",
    }


@router.post("/handsets/{number}/calls", status_code=201, summary="Call from a handset")
async def call_from_handset(
    number: Handset, dial: HandsetDial, request: Request, carrier: Sandbox, caller: Caller
) -> dict[str, Any]:
    handset = handset_number(number, carrier)
    try:
        to = to_e164(dial.to)
    except InvalidNumber:
        raise ApiError(400, 21211, f"{dial.to!r} is not a phone number") from None
    try:
        leg = await phones(runtime(request)).call_from_handset(
            caller.sid, handset, to, new_sid("CA"), dial.hangup_after_seconds
        )
    except NotServed as refused:
        raise ApiError(404, 21606, str(refused)) from None
    return {"call_sid": leg.sid, "from": handset, "to": to}


@router.get("/handsets/{number}/calls", summary="A handset's recent calls and what it heard")
async def handset_calls(
    number: Handset, request: Request, carrier: Sandbox, caller: Caller
) -> dict[str, Any]:
    handset = handset_number(number, carrier)
    calls = phones(runtime(request)).calls(caller.sid, handset)
    return {"handset": handset, "calls": [handset_call_json(call) for call in calls]}


def _handset_call(request: Request, caller: Account, sid: str) -> HandsetCall:
    found = phones(runtime(request)).call(caller.sid, sid)
    if found is None:
        raise ApiError(404, 20404, f"No recent sandbox call {sid}")
    return found


@router.get(
    "/calls/{sid}/recording.wav",
    summary="What the handset heard, as WAV",
    response_class=Response,
)
async def call_recording(sid: str, request: Request, caller: Caller) -> Response:
    call = _handset_call(request, caller, sid)
    return Response(call.wav(), media_type="audio/wav")


@router.post("/calls/{sid}/hangup", summary="The handset hangs up")
async def handset_hangs_up(sid: str, request: Request, caller: Caller) -> dict[str, Any]:
    call = _handset_call(request, caller, sid)
    phones(runtime(request)).hang_up(sid)
    return handset_call_json(call)
