"""Plivo's Call API (v1), as the `plivo` SDK calls it: make a call, get its record, hang up.

A call placed here is the same call as one placed through Twilio's API
(`verbal/engine/calls.py`), run in the Plivo dialect: its answer URL gets Plivo's parameters
and signatures, its hangup URL Plivo's hangup report. Call UUIDs are the call SIDs in UUID
form (`verbal.dialects.plivo.call_uuid`).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from sqlalchemy import select

from verbal.api.auth import runtime
from verbal.api.plivo import (
    PREFIX,
    OwnAccount,
    PlivoError,
    PlivoRoute,
    api_id,
    as_e164,
    plivo_number,
    plivo_time,
    request_params,
    text_param,
)
from verbal.dialects.plivo import HANGUP_CAUSES, NO_CHARGE, call_uuid
from verbal.engine.calls import MAX_TIMEOUT_SECONDS, CallRefused, CallRequest
from verbal.store.models import Account, Call
from verbal.voice.records import CallRecord

router = APIRouter(prefix=PREFIX, tags=["Plivo Calls"], route_class=PlivoRoute)

CallUuid = Annotated[str, Path(description="The call's UUID (request_uuid).")]
METHODS = ("GET", "POST")
MAX_DESTINATIONS = 100
# Plivo's default ring timeout; Verbal rings at most MAX_TIMEOUT_SECONDS.
DEFAULT_RING_TIMEOUT = 120


def _method(params: dict[str, Any], name: str) -> str:
    value = (text_param(params, name) or "POST").upper()
    if value not in METHODS:
        raise PlivoError(400, f"{name} must be GET or POST")
    return value


def _url(params: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = text_param(params, name)
    if not value:
        if required:
            raise PlivoError(400, f"Missing mandatory parameter: {name}")
        return None
    if not value.lower().startswith(("http://", "https://")) or len(value) > 2048:
        raise PlivoError(400, f"invalid {name}")
    return value


def _ring_timeout(params: dict[str, Any]) -> int:
    value = params.get("ring_timeout", DEFAULT_RING_TIMEOUT)
    try:
        seconds = int(value)
    except (TypeError, ValueError):
        raise PlivoError(400, "invalid ring_timeout") from None
    if seconds < 1:
        raise PlivoError(400, "invalid ring_timeout")
    return min(seconds, MAX_TIMEOUT_SECONDS)


@router.post("/{auth_id}/Call/", status_code=201, summary="Make a call")
async def make_call(request: Request, account: OwnAccount) -> dict[str, Any]:
    params = await request_params(request)
    from_ = text_param(params, "from")
    to = text_param(params, "to")
    if not from_:
        raise PlivoError(400, "Missing mandatory parameter: from")
    if not to:
        raise PlivoError(400, "Missing mandatory parameter: to")
    destinations = [d.strip() for d in to.split("<") if d.strip()]
    if len(destinations) > MAX_DESTINATIONS:
        raise PlivoError(400, f"to can hold at most {MAX_DESTINATIONS} numbers")
    hangup_url = _url(params, "hangup_url")
    calls = runtime(request).calls
    uuids = []
    for destination in dict.fromkeys(destinations):
        placed = CallRequest(
            to=as_e164(destination),
            from_=as_e164(from_),
            url=_url(params, "answer_url", required=True),
            method=_method(params, "answer_method"),
            fallback_url=_url(params, "fallback_url"),
            fallback_method=_method(params, "fallback_method"),
            status_callback=hangup_url,
            status_callback_method=_method(params, "hangup_method"),
            status_callback_events=("completed",),
            timeout_seconds=_ring_timeout(params),
            dialect="plivo",
        )
        try:
            record = await calls.place(account, placed)
        except CallRefused as refused:
            raise PlivoError(400, refused.message) from None
        uuids.append(call_uuid(record.sid))
    return {
        "api_id": api_id(),
        "message": "call fired",
        "request_uuid": uuids[0] if len(uuids) == 1 else uuids,
    }


async def _call(request: Request, account: Account, uuid_text: str) -> CallRecord | Call:
    try:
        sid = "CA" + uuid.UUID(uuid_text).hex
    except ValueError:
        raise PlivoError(404, "call not found") from None
    live = runtime(request).calls.live(sid)
    if live is not None and live.account_id == account.id:
        return live
    async with runtime(request).sessions() as session:
        row = await session.scalar(
            select(Call).where(Call.sid == sid, Call.account_id == account.id)
        )
    if row is None:
        raise PlivoError(404, "call not found")
    return row


def cdr_json(call: CallRecord | Call, auth_id: str) -> dict[str, Any]:
    """A call detail record, as Plivo's `GET …/Call/{uuid}/` gives it."""
    status = call.status if isinstance(call.status, str) else call.status.value
    duration = call.duration or 0
    uuid_ = call_uuid(call.sid)
    ended = call.ended_at is not None
    return {
        "answer_time": plivo_time(call.answered_at),
        "bill_duration": duration,
        "billed_duration": duration,
        "call_direction": "inbound" if call.direction == "inbound" else "outbound",
        "call_duration": duration,
        "call_status": status,
        "call_uuid": uuid_,
        "end_time": plivo_time(call.ended_at),
        "from_number": plivo_number(call.from_number),
        "hangup_cause_name": HANGUP_CAUSES.get(status) if ended else None,
        "initiation_time": plivo_time(call.date_created),
        "parent_call_uuid": call_uuid(call.parent_sid) if call.parent_sid else None,
        "resource_uri": f"{PREFIX}/{auth_id}/Call/{uuid_}/",
        "to_number": plivo_number(call.to_number),
        "total_amount": NO_CHARGE,
        "total_rate": NO_CHARGE,
    }


@router.get("/{auth_id}/Call/{call_uuid}/", summary="Get a call's record")
async def get_call(request: Request, account: OwnAccount, call_uuid: CallUuid) -> dict[str, Any]:
    call = await _call(request, account, call_uuid)
    return {"api_id": api_id(), **cdr_json(call, account.plivo_auth_id)}


@router.delete("/{auth_id}/Call/{call_uuid}/", status_code=204, summary="Hang up a call")
async def hang_up(request: Request, account: OwnAccount, call_uuid: CallUuid) -> Response:
    call = await _call(request, account, call_uuid)
    if not await runtime(request).calls.hang_up(call.sid, "completed"):
        raise PlivoError(404, "call not found")  # Plivo's answer for a call that is not live
    return Response(status_code=204)
