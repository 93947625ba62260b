"""What each dialect sends about a call, field by field: the app's request on a call, and
the status callbacks, signed as the platforms' SDKs validate them."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from plivo.utils import validate_v3_signature
from twilio.request_validator import RequestValidator

from verbal.dialects import DIALECTS, plivo, rcml, tropo
from verbal.dialects.types import CallFacts, SessionFacts
from verbal.dialects.verbs import Target

TOKEN = "0123456789abcdef0123456789abcdef"
NOW = datetime(2026, 12, 7, 17, 30, 5, tzinfo=UTC)
CALL = CallFacts(
    sid="CA0123456789abcdef0123456789abcdef",
    account_sid="AC" + "a" * 32,
    from_number="+15550001000",
    to_number="+15550002000",
    status="in-progress",
    direction="outbound-api",
    created_at=datetime(2026, 12, 7, 17, 30, tzinfo=UTC),
)
ENDED = replace(CALL, status="completed", duration_seconds=75)
TARGET = Target("https://app.example/status?x=1", "POST")


def facts(call: CallFacts) -> SessionFacts:
    return SessionFacts(
        session_id="f" * 32,
        account_sid=call.account_sid,
        started_at=NOW,
        channel="voice",
        launch="inbound" if call.direction == "inbound" else "call",
        local_number=call.to_number if call.direction == "inbound" else call.from_number,
        remote_number=call.from_number if call.direction == "inbound" else call.to_number,
        call=call,
    )


def test_twilio_voice_parameters() -> None:
    request = rcml.DIALECT.start_request(facts(CALL), Target("https://app.example/v"), TOKEN)
    assert request.form == (
        ("AccountSid", CALL.account_sid),
        ("ApiVersion", "2010-04-01"),
        ("CallSid", CALL.sid),
        ("CallStatus", "in-progress"),
        ("Called", "+15550002000"),
        ("Caller", "+15550001000"),
        ("Direction", "outbound-api"),
        ("From", "+15550001000"),
        ("To", "+15550002000"),
        ("FromCity", ""),
        ("FromState", ""),
        ("FromZip", ""),
        ("FromCountry", "US"),
        ("ToCity", ""),
        ("ToState", ""),
        ("ToZip", ""),
        ("ToCountry", "US"),
        ("CallerCity", ""),
        ("CallerState", ""),
        ("CallerZip", ""),
        ("CallerCountry", "US"),
        ("CalledCity", ""),
        ("CalledState", ""),
        ("CalledZip", ""),
        ("CalledCountry", "US"),
    )
    assert RequestValidator(TOKEN).validate(
        request.url, dict(request.form), request.headers["X-Twilio-Signature"]
    )
    child = replace(CALL, direction="outbound-dial", parent_sid="CA" + "9" * 32)
    form = dict(rcml.call_params(child))
    assert form["ParentCallSid"] == "CA" + "9" * 32 and form["Direction"] == "outbound-dial"


def test_twilio_status_callbacks() -> None:
    initiated = rcml.DIALECT.call_status_request(
        replace(CALL, status="queued"), "initiated", 0, TARGET, TOKEN, NOW
    )
    assert initiated is not None
    form = dict(initiated.form)
    assert form["CallStatus"] == "initiated"
    assert form["SequenceNumber"] == "0"
    assert form["CallbackSource"] == "call-progress-events"
    assert form["Timestamp"] == "Mon, 07 Dec 2026 17:30:05 +0000"
    assert "CallDuration" not in form and "SipResponseCode" not in form
    completed = rcml.DIALECT.call_status_request(ENDED, "completed", 3, TARGET, TOKEN, NOW)
    assert completed is not None
    form = dict(completed.form)
    assert (form["CallStatus"], form["CallDuration"], form["Duration"]) == ("completed", "75", "2")
    assert (form["SequenceNumber"], form["SipResponseCode"]) == ("3", "200")
    busy = dict(rcml.call_status_params(replace(ENDED, status="busy", duration_seconds=0), 1, NOW))
    assert (busy["CallDuration"], busy["Duration"], busy["SipResponseCode"]) == ("0", "0", "486")
    assert RequestValidator(TOKEN).validate(
        completed.url, dict(completed.form), completed.headers["X-Twilio-Signature"]
    )
    # GET: the parameters ride in the URL, which alone is signed.
    get = rcml.DIALECT.call_status_request(
        ENDED, "completed", 3, Target(TARGET.url, "GET"), TOKEN, NOW
    )
    assert get is not None and get.method == "GET"
    assert RequestValidator(TOKEN).validate(get.wire_url, {}, get.headers["X-Twilio-Signature"])
    # The auto dialect reports calls the Twilio way.
    auto = DIALECTS["auto"].call_status_request(ENDED, "completed", 3, TARGET, TOKEN, NOW)
    assert auto == completed


def test_plivo_call_parameters_and_hangup_url() -> None:
    inbound = replace(CALL, direction="inbound", status="ringing")
    request = plivo.DIALECT.start_request(facts(inbound), Target("https://app.example/a"), TOKEN)
    assert request.form == (
        ("CallUUID", "01234567-89ab-cdef-0123-456789abcdef"),
        ("From", "15550001000"),
        ("To", "15550002000"),
        ("CallStatus", "ringing"),
        ("Direction", "inbound"),
        ("CallerName", ""),
        ("Event", "StartApp"),
        ("BillRate", plivo.NO_CHARGE),
    )
    outbound = dict(plivo.call_params(CALL, "StartApp"))
    assert (outbound["Direction"], outbound["CallStatus"]) == ("outbound", "in-progress")
    assert outbound["ALegUUID"] == outbound["CallUUID"] == outbound["RequestUUID"]
    assert plivo.DIALECT.call_status_request(CALL, "answered", 1, TARGET, TOKEN, NOW) is None
    hangup = plivo.DIALECT.call_status_request(ENDED, "completed", 2, TARGET, TOKEN, NOW)
    assert hangup is not None
    form = dict(hangup.form)
    assert (form["Event"], form["CallStatus"], form["HangupCause"]) == (
        "Hangup",
        "completed",
        "NORMAL_CLEARING",
    )
    assert (form["Duration"], form["BillDuration"]) == ("75", "75")
    assert validate_v3_signature(
        "POST",
        hangup.url,
        hangup.headers["X-Plivo-Signature-V3-Nonce"],
        TOKEN,
        hangup.headers["X-Plivo-Signature-V3"],
        form,
    )
    causes = {
        status: dict(plivo.call_params(replace(ENDED, status=status), "Hangup"))["HangupCause"]
        for status in ("busy", "no-answer", "canceled", "failed")
    }
    assert causes == {
        "busy": "USER_BUSY",
        "no-answer": "NO_ANSWER",
        "canceled": "ORIGINATOR_CANCEL",
        "failed": "CALL_REJECTED",
    }


def test_tropo_session_on_a_call_and_no_status_callbacks() -> None:
    inbound = replace(CALL, direction="inbound", status="ringing")
    request = tropo.DIALECT.start_request(facts(inbound), Target("https://app.example/t"), TOKEN)
    assert request.json is not None
    session = request.json["session"]
    assert session["callId"] == CALL.sid[2:]
    assert session["initialText"] is None and session["userType"] == "HUMAN"
    assert session["from"] == {
        "id": "5550001000",
        "e164Id": "15550001000",
        "name": None,
        "channel": "VOICE",
        "network": "PSTN",
    }
    assert tropo.DIALECT.call_status_request(ENDED, "completed", 0, TARGET, TOKEN, NOW) is None
