"""Twilio's Accounts, IncomingPhoneNumbers and Applications, driven by the unmodified `twilio`
SDK against a live Verbal, and numbers configured through them answering real handsets."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from twilio.twiml.messaging_response import MessagingResponse

from tests.api.twilio_helpers import other_account, twilio_error
from tests.conftest import AppHit, AppServer, LiveVerbal
from tests.engine.helpers import header, text_app, wait_for_texts

APP_NUMBER = "+15550001000"


def account_path(verbal: LiveVerbal) -> str:
    return f"/2010-04-01/Accounts/{verbal.account_sid}"


# -- accounts ---------------------------------------------------------------------------------


def test_sdk_fetches_and_lists_only_its_own_account(verbal: LiveVerbal) -> None:
    client = verbal.twilio()
    account = client.api.accounts(verbal.account_sid).fetch()
    base = account_path(verbal)
    assert account.sid == account.owner_account_sid == verbal.account_sid
    assert account.auth_token == verbal.auth_token
    assert (account.status, account.type) == ("active", "Full")
    assert account.friendly_name
    assert account.date_created <= account.date_updated <= datetime.now(UTC)
    assert account.uri == base + ".json"
    assert account.subresource_uris == {
        "applications": base + "/Applications.json",
        "incoming_phone_numbers": base + "/IncomingPhoneNumbers.json",
        "messages": base + "/Messages.json",
    }
    assert client.api.account.fetch().sid == verbal.account_sid

    other = other_account(verbal)
    listed = client.api.accounts.list()
    assert [a.sid for a in listed] == [verbal.account_sid]
    assert [a.sid for a in client.api.accounts.stream(page_size=1)] == [verbal.account_sid]
    assert client.api.accounts.list(friendly_name=account.friendly_name)[0].sid == account.sid
    assert client.api.accounts.list(friendly_name="someone else") == []
    assert client.api.accounts.list(status="suspended") == []
    assert [a.sid for a in other.api.accounts.list()] == [other.username]
    # Another account's SID in the path is refused as the other APIs refuse it.
    assert twilio_error(client.api.accounts(other.username).fetch) == (401, 20003)

    wrong = Client(verbal.account_sid, "0" * 32)
    wrong.api.base_url = verbal.base_url
    assert twilio_error(wrong.api.accounts(verbal.account_sid).fetch) == (401, 20003)
    assert twilio_error(wrong.api.accounts.list) == (401, 20003)


# -- applications -----------------------------------------------------------------------------

APP_SETTINGS: dict[str, Any] = {
    "sms_url": "https://app.example.com/sms?tenant=1",
    "sms_method": "GET",
    "sms_fallback_url": "https://app.example.com/sms-fallback",
    "sms_fallback_method": "POST",
    "sms_status_callback": "https://app.example.com/sms-status",
    "voice_url": "https://app.example.com/voice",
    "voice_method": "GET",
    "voice_fallback_url": "https://app.example.com/voice-fallback",
    "voice_fallback_method": "GET",
    "status_callback": "https://app.example.com/call-status",
    "status_callback_method": "GET",
    "voice_caller_id_lookup": True,
    "public_application_connect_enabled": False,
}


def test_sdk_application_lifecycle_field_by_field(verbal: LiveVerbal) -> None:
    client = verbal.twilio()
    created = client.applications.create(friendly_name="Reception", **APP_SETTINGS)
    assert created.sid.startswith("AP") and len(created.sid) == 34
    assert created.account_sid == verbal.account_sid
    assert (created.friendly_name, created.api_version) == ("Reception", "2010-04-01")
    for name, value in APP_SETTINGS.items():
        assert getattr(created, name) == value, name
    assert created.message_status_callback == APP_SETTINGS["sms_status_callback"]
    assert created.uri == f"{account_path(verbal)}/Applications/{created.sid}.json"
    assert created.date_created is not None and created.date_updated is not None

    fetched = client.applications(created.sid).fetch()
    assert vars_of(fetched) == vars_of(created)

    # Apps made through Twilio's API answer in TwiML.
    async def dialect(runtime: Any) -> str:
        return str((await runtime.directory.application(created.sid)).dialect)

    assert verbal.call(dialect) == "rcml"

    updated = client.applications(created.sid).update(
        friendly_name="Front desk",
        sms_url="",
        sms_method="post",
        message_status_callback="https://app.example.com/message-status",
        voice_caller_id_lookup=False,
    )
    assert (updated.friendly_name, updated.sms_url, updated.sms_method) == (
        "Front desk",
        None,
        "POST",
    )
    assert updated.message_status_callback == "https://app.example.com/message-status"
    assert updated.sms_status_callback == "https://app.example.com/message-status"
    assert updated.voice_caller_id_lookup is False
    # What the update left out stays as it was.
    assert updated.voice_url == APP_SETTINGS["voice_url"]
    assert updated.public_application_connect_enabled is False

    bare = client.applications.create()
    assert (bare.friendly_name, bare.sms_url, bare.sms_method) == ("", None, "POST")
    assert (bare.voice_caller_id_lookup, bare.public_application_connect_enabled) == (False, True)

    assert client.applications(created.sid).delete() is True
    assert twilio_error(client.applications(created.sid).fetch) == (404, 20404)
    assert twilio_error(client.applications(created.sid).update, friendly_name="x") == (404, 20404)
    assert twilio_error(client.applications(created.sid).delete) == (404, 20404)
    assert [a.sid for a in client.applications.list()] == [bare.sid]


def vars_of(instance: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(instance).items() if not k.startswith("_")}


def test_sdk_pages_and_filters_applications(verbal: LiveVerbal) -> None:
    client = verbal.twilio()
    made = [
        client.applications.create(friendly_name="odd" if i % 2 else "even").sid for i in range(7)
    ]
    # Numbers' own URLs are applications too, but never listed.
    numbers = client.incoming_phone_numbers.list()
    client.incoming_phone_numbers(numbers[0].sid).update(sms_url="https://own.example.com/sms")
    assert [a.sid for a in client.applications.list(page_size=2)] == made
    assert [a.sid for a in client.applications.stream(page_size=3)] == made
    assert [a.sid for a in client.applications.list(friendly_name="odd", page_size=2)] == made[1::2]
    first = client.applications.page(page_size=3)
    second = first.next_page()
    assert [a.sid for a in second] == made[3:6]
    assert [a.sid for a in second.previous_page()] == made[:3]
    assert [a.sid for a in client.applications.list(limit=4)] == made[:4]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"SmsUrl": "ftp://app.example.com/sms"}, 21502),
        ({"VoiceUrl": "not a url"}, 21502),
        ({"SmsFallbackUrl": "http://["}, 21502),
        ({"StatusCallback": "https://app.example.com/" + "x" * 2048}, 21502),
        ({"SmsStatusCallback": "mailto:ops@example.com"}, 21502),
        ({"SmsMethod": "PUT"}, 20422),
        ({"VoiceCallerIdLookup": "maybe"}, 20422),
        ({"FriendlyName": "x" * 65}, 20422),
        ({"FriendlyName": "nul\x00byte"}, 20422),
    ],
)
def test_bad_application_settings_get_twilio_errors(
    verbal: LiveVerbal, params: dict[str, str], code: int
) -> None:
    path = f"{account_path(verbal)}/Applications.json"
    with verbal.http() as http:
        created = http.post(path, data=params)
        assert (created.status_code, created.json()["code"]) == (400, code), created.text
        assert http.get(path).json()["applications"] == []
        sid = http.post(path, data={"FriendlyName": "kept"}).json()["sid"]
        updated = http.post(f"{account_path(verbal)}/Applications/{sid}.json", data=params)
        assert (updated.status_code, updated.json()["code"]) == (400, code)
    kept = verbal.twilio().applications(sid).fetch()
    assert (kept.friendly_name, kept.sms_url, kept.sms_method) == ("kept", None, "POST")


# -- incoming phone numbers -------------------------------------------------------------------


def test_sdk_claims_a_number_field_by_field(verbal: LiveVerbal) -> None:
    client = verbal.twilio()
    number = client.incoming_phone_numbers.create(phone_number="+1 555 000 4000")
    assert number.sid.startswith("PN") and len(number.sid) == 34
    assert number.account_sid == verbal.account_sid
    assert (number.phone_number, number.friendly_name) == ("+15550004000", "(555) 000-4000")
    assert number.capabilities == {"voice": True, "sms": True, "mms": True, "fax": False}
    assert (number.status, number.origin, number.type, number.beta) == (
        "in-use",
        "twilio",
        "local",
        False,
    )
    assert (number.api_version, number.address_requirements) == ("2010-04-01", "none")
    assert (number.sms_application_sid, number.voice_application_sid) == ("", "")
    for name in ("sms_url", "sms_fallback_url", "voice_url", "voice_fallback_url"):
        assert getattr(number, name) == "", name
    assert number.status_callback == ""
    for name in ("sms", "sms_fallback", "voice", "voice_fallback", "status_callback"):
        assert getattr(number, f"{name}_method") == "POST", name
    assert number.voice_caller_id_lookup is False
    assert number.voice_receive_mode == "voice"
    assert (number.emergency_status, number.emergency_address_status) == (
        "Inactive",
        "unregistered",
    )
    for name in ("trunk_sid", "identity_sid", "address_sid", "bundle_sid", "emergency_address_sid"):
        assert getattr(number, name) is None, name
    assert number.uri == f"{account_path(verbal)}/IncomingPhoneNumbers/{number.sid}.json"
    assert vars_of(client.incoming_phone_numbers(number.sid).fetch()) == vars_of(number)

    # The claimed number is the account's: it can send from it at once.
    sent = client.messages.create(to="+15550002000", from_="+15550004000", body="from new")
    assert sent.from_ == "+15550004000"

    configured = client.incoming_phone_numbers.create(
        phone_number="5550004001",
        friendly_name="Support line",
        sms_url="https://app.example.com/sms",
        sms_method="GET",
        sms_fallback_url="https://app.example.com/fallback",
        voice_url="https://app.example.com/voice",
        status_callback="https://app.example.com/call-status",
        voice_caller_id_lookup=True,
    )
    assert (configured.phone_number, configured.friendly_name) == ("+15550004001", "Support line")
    assert (configured.sms_url, configured.sms_method) == ("https://app.example.com/sms", "GET")
    assert configured.sms_fallback_url == "https://app.example.com/fallback"
    assert configured.voice_url == "https://app.example.com/voice"
    assert configured.status_callback == "https://app.example.com/call-status"
    assert configured.voice_caller_id_lookup is True
    assert configured.sms_application_sid == ""

    # A number's own URLs answer in TwiML.
    async def own_dialect(runtime: Any) -> str:
        row = await runtime.directory.number("+15550004001")
        return str((await runtime.directory.own_application(row)).dialect)

    assert verbal.call(own_dialect) == "rcml"


def test_sdk_updates_attaches_detaches_and_releases_numbers(verbal: LiveVerbal) -> None:
    client = verbal.twilio()
    [number] = client.incoming_phone_numbers.list()
    assert number.phone_number == APP_NUMBER
    shared = client.applications.create(friendly_name="shared", sms_url="https://shared.example")
    voice = client.applications.create(friendly_name="calls", voice_url="https://calls.example")

    updated = client.incoming_phone_numbers(number.sid).update(
        friendly_name="Main line",
        sms_url="https://own.example/sms",
        sms_application_sid=shared.sid,
        voice_application_sid=voice.sid,
    )
    assert (updated.friendly_name, updated.sms_url) == ("Main line", "https://own.example/sms")
    assert (updated.sms_application_sid, updated.voice_application_sid) == (shared.sid, voice.sid)

    kept = client.incoming_phone_numbers(number.sid).update(sms_method="GET")
    assert (kept.sms_application_sid, kept.sms_url, kept.sms_method) == (
        shared.sid,
        "https://own.example/sms",
        "GET",
    )
    detached = client.incoming_phone_numbers(number.sid).update(sms_application_sid="", sms_url="")
    assert (detached.sms_application_sid, detached.sms_url) == ("", "")
    assert detached.voice_application_sid == voice.sid

    # Deleting an application detaches the numbers that used it.
    client.applications(voice.sid).delete()
    assert client.incoming_phone_numbers(number.sid).fetch().voice_application_sid == ""

    assert client.incoming_phone_numbers(number.sid).delete() is True
    assert twilio_error(client.incoming_phone_numbers(number.sid).fetch) == (404, 20404)
    assert twilio_error(client.incoming_phone_numbers(number.sid).delete) == (404, 20404)
    assert client.incoming_phone_numbers.list() == []
    assert twilio_error(
        client.messages.create, to="+15550002000", from_=APP_NUMBER, body="gone"
    ) == (400, 21606)
    # Released, it can be claimed again, with none of its old settings.
    again = client.incoming_phone_numbers.create(phone_number=APP_NUMBER)
    assert again.sid != number.sid
    assert (again.sms_url, again.sms_application_sid) == ("", "")


def test_sdk_pages_and_filters_numbers(verbal: LiveVerbal) -> None:
    client = verbal.twilio()
    claimed = [APP_NUMBER] + [f"+1555000{4000 + i}" for i in range(6)]
    for number in claimed[1:]:
        client.incoming_phone_numbers.create(phone_number=number, friendly_name=f"line {number}")
    listed = client.incoming_phone_numbers.list(page_size=2)
    assert [n.phone_number for n in listed] == claimed
    streamed = client.incoming_phone_numbers.stream(page_size=3)
    assert [n.phone_number for n in streamed] == claimed
    partial = client.incoming_phone_numbers.list(phone_number="555000400", page_size=2)
    assert [n.phone_number for n in partial] == claimed[1:]
    wildcard = client.incoming_phone_numbers.list(phone_number="+1555000400*")
    assert [n.phone_number for n in wildcard] == claimed[1:]
    assert [n.phone_number for n in client.incoming_phone_numbers.list(phone_number="4003")] == [
        "+15550004003"
    ]
    named = client.incoming_phone_numbers.list(friendly_name="line +15550004002")
    assert [n.phone_number for n in named] == ["+15550004002"]
    assert client.incoming_phone_numbers.list(phone_number="no digits") == []


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, 21421),
        ({"AreaCode": "555"}, 21421),
        ({"PhoneNumber": "not a number"}, 21421),
        ({"PhoneNumber": "+1555"}, 21421),
        ({"PhoneNumber": APP_NUMBER}, 21422),
        ({"PhoneNumber": "+15550004000", "SmsUrl": "ftp://x"}, 21502),
        ({"PhoneNumber": "+15550004000", "SmsMethod": "DELETE"}, 20422),
        ({"PhoneNumber": "+15550004000", "SmsApplicationSid": "AP" + "0" * 32}, 21218),
        ({"PhoneNumber": "+15550004000", "FriendlyName": "x" * 65}, 20422),
    ],
)
def test_bad_number_claims_get_twilio_errors_and_claim_nothing(
    verbal: LiveVerbal, params: dict[str, str], code: int
) -> None:
    path = f"{account_path(verbal)}/IncomingPhoneNumbers.json"
    with verbal.http() as http:
        response = http.post(path, data=params)
        assert (response.status_code, response.json()["code"]) == (400, code), response.text
        listed = http.get(path).json()["incoming_phone_numbers"]
    assert [n["phone_number"] for n in listed] == [APP_NUMBER]


def test_other_accounts_numbers_and_applications_stay_theirs(verbal: LiveVerbal) -> None:
    other = other_account(verbal, "+15550009000")
    [theirs] = other.incoming_phone_numbers.list()
    their_app = other.applications.create(friendly_name="theirs", sms_url="https://their.example")
    client = verbal.twilio()
    assert twilio_error(client.incoming_phone_numbers.create, phone_number="+15550009000") == (
        400,
        21422,
    )
    assert twilio_error(client.incoming_phone_numbers(theirs.sid).fetch) == (404, 20404)
    assert twilio_error(client.incoming_phone_numbers(theirs.sid).update, sms_url="") == (
        404,
        20404,
    )
    assert twilio_error(client.incoming_phone_numbers(theirs.sid).delete) == (404, 20404)
    assert twilio_error(client.applications(their_app.sid).fetch) == (404, 20404)
    assert twilio_error(client.applications(their_app.sid).delete) == (404, 20404)
    [mine] = client.incoming_phone_numbers.list()
    # Their application cannot be attached to my number, nor used for my messages.
    assert twilio_error(
        client.incoming_phone_numbers(mine.sid).update, sms_application_sid=their_app.sid
    ) == (400, 21218)
    assert twilio_error(
        client.messages.create,
        to="+15550002000",
        from_=APP_NUMBER,
        body="x",
        application_sid=their_app.sid,
    ) == (400, 21218)
    assert [n.phone_number for n in client.incoming_phone_numbers.list()] == [APP_NUMBER]
    assert client.applications.list() == []
    # Theirs are untouched.
    assert other.incoming_phone_numbers(theirs.sid).fetch().phone_number == "+15550009000"
    assert other.applications(their_app.sid).fetch().sms_url == "https://their.example"


def test_unauthenticated_and_garbled_requests(verbal: LiveVerbal) -> None:
    numbers = f"{account_path(verbal)}/IncomingPhoneNumbers.json"
    applications = f"{account_path(verbal)}/Applications.json"
    with httpx.Client(base_url=verbal.base_url, timeout=10) as anonymous:
        for path in (numbers, applications, "/2010-04-01/Accounts.json"):
            response = anonymous.get(path)
            assert (response.status_code, response.json()["code"]) == (401, 20003)
    with verbal.http() as http:
        assert http.get(f"{numbers}?PageToken=PX1").json()["code"] == 20422
        assert http.get(f"{applications}?PageSize=1001").status_code == 400
        garbled = http.post(
            applications,
            content=b"\xff\xfe\x00FriendlyName=%00&SmsUrl=http%3A%2F%2F%5B",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert (garbled.status_code, garbled.json()["code"]) == (400, 21502)
        multipart = http.post(applications, files={"SmsUrl": ("a.txt", b"http://x")})
        assert (multipart.status_code, multipart.json()["code"]) == (400, 20422)


# -- numbers answering handsets ---------------------------------------------------------------


def replies(text: str) -> Any:
    def route(hit: AppHit) -> tuple[int, str, str]:
        response = MessagingResponse()
        response.message(f"{text}: {hit.form['Body']}")
        return 200, "text/xml", response.to_xml()

    return route


def test_number_urls_and_attached_application_answer_handsets(
    verbal: LiveVerbal, app_server: AppServer
) -> None:
    app_server.routes["/own"] = replies("own URL")
    app_server.routes["/shared"] = replies("shared app")
    client = verbal.twilio()
    [number] = client.incoming_phone_numbers.list()

    client.incoming_phone_numbers(number.sid).update(sms_url=app_server.url("/own?n=1"))
    text_app(verbal, "+15550002001", "first")
    [reply] = wait_for_texts(verbal, "+15550002001", 1)
    assert (reply["body"], reply["from"]) == ("own URL: first", APP_NUMBER)
    [hit] = app_server.hits_for("/own")
    # The number's own URL is called the way Twilio calls it: signed, with Twilio's params.
    assert hit.method == "POST" and hit.url == app_server.url("/own?n=1")
    assert (hit.form["To"], hit.form["From"], hit.form["AccountSid"]) == (
        APP_NUMBER,
        "+15550002001",
        verbal.account_sid,
    )
    validator = RequestValidator(verbal.auth_token)
    assert validator.validate(hit.url, hit.form, header(hit.headers, "X-Twilio-Signature"))

    shared = client.applications.create(friendly_name="shared", sms_url=app_server.url("/shared"))
    client.incoming_phone_numbers(number.sid).update(sms_application_sid=shared.sid)
    text_app(verbal, "+15550002002", "second")
    [reply] = wait_for_texts(verbal, "+15550002002", 1)
    assert reply["body"] == "shared app: second"

    client.incoming_phone_numbers(number.sid).update(sms_application_sid="")
    text_app(verbal, "+15550002003", "third")
    [reply] = wait_for_texts(verbal, "+15550002003", 1)
    assert reply["body"] == "own URL: third"

    # A GET SmsMethod sends the parameters in the query, signed over the full URL.
    client.incoming_phone_numbers(number.sid).update(sms_method="GET")
    text_app(verbal, "+15550002004", "fourth")
    [reply] = wait_for_texts(verbal, "+15550002004", 1)
    assert reply["body"] == "own URL: fourth"
    last = app_server.hits_for("/own")[-1]
    assert last.method == "GET" and last.form["Body"] == "fourth"
    assert validator.validate(last.url, {}, header(last.headers, "X-Twilio-Signature"))


def test_resources_on_every_database(
    make_verbal: Callable[..., LiveVerbal], database_url: str
) -> None:
    verbal = make_verbal(database_url)
    client = verbal.twilio()
    application = client.applications.create(friendly_name="app", sms_url="https://a.example")
    numbers = [
        client.incoming_phone_numbers.create(
            phone_number=f"+1555000500{i}", sms_url="https://own.example", sms_application_sid=""
        )
        for i in range(5)
    ]
    client.incoming_phone_numbers(numbers[2].sid).update(sms_application_sid=application.sid)
    listed = client.incoming_phone_numbers.list(phone_number="55500050*", page_size=2)
    assert [n.sid for n in listed] == [n.sid for n in numbers]
    assert [n.sms_application_sid for n in listed] == ["", "", application.sid, "", ""]
    client.applications(application.sid).update(sms_url="")
    client.applications(application.sid).delete()
    assert client.incoming_phone_numbers(numbers[2].sid).fetch().sms_application_sid == ""
    client.incoming_phone_numbers(numbers[4].sid).delete()
    assert len(client.incoming_phone_numbers.list()) == 4

    # PostgreSQL refuses a NUL in any text: such values are refused before they get there.
    base = account_path(verbal)
    with verbal.http() as http:
        for path, params in (
            ("/Messages.json", {"To": "+1\x00"}),
            ("/Applications.json", {"FriendlyName": "\x00"}),
            ("/IncomingPhoneNumbers.json", {"FriendlyName": "\x00"}),
        ):
            response = http.get(base + path, params=params)
            assert (response.status_code, response.json()["code"]) == (400, 20422), path
        for path in (
            "/Messages/SM%00.json",
            "/Applications/AP%00.json",
            "/IncomingPhoneNumbers/P%00.json",
        ):
            assert http.get(base + path).json()["code"] == 20404, path
        for path, data in (
            ("/Messages.json", {"To": "+15550002000", "From": "+15550005000", "Body": "a\x00"}),
            ("/Applications.json", {"FriendlyName": "a\x00"}),
            ("/IncomingPhoneNumbers.json", {"PhoneNumber": "+15550006000", "FriendlyName": "\x00"}),
        ):
            response = http.post(base + path, data=data)
            assert (response.status_code, response.json()["code"]) == (400, 20422), path
