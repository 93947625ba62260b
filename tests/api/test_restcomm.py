"""Restcomm's REST API (2012-04-24) against a live Verbal.

There is no working Restcomm SDK for Python (sdks.md §4), so every call goes through plain
HTTP (httpx) or the `twilio` SDK's generic `client.request`, which adds the credentials and
headers the SDK sends (sdks.md §1.5). XML answers are parsed with defusedxml and checked
element by element, JSON answers key by key, in Restcomm's order.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.etree.ElementTree import Element

import httpx
import pytest
from defusedxml.ElementTree import fromstring
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from tests.conftest import AppHit, AppServer, LiveVerbal, WebhookReceiver, wait_until
from tests.engine.helpers import inbox, text_app, wait_for_texts

FROM = "+15550001000"
HANDSET = "+15550002000"
OTHER_HANDSET = "+15550003000"
BASE = "/restcomm/2012-04-24/Accounts"
RESTCOMM_DATE = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [1-9]\d? "
    r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} \+0000$"
)
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
SID = re.compile(r"^[A-Z]{2}[0-9a-f]{32}$")
MESSAGE_KEYS = [
    "sid", "date_created", "date_updated", "date_sent", "account_sid", "from", "to", "body",
    "status", "direction", "error_code", "error_message", "price", "price_unit", "api_version",
    "uri",
]  # fmt: skip
MESSAGE_TAGS = [
    "Sid", "DateCreated", "DateUpdated", "DateSent", "AccountSid", "From", "To", "Body",
    "Status", "Direction", "Price", "PriceUnit", "ApiVersion", "Uri",
]  # fmt: skip
PAGE_KEYS = [
    "page", "num_pages", "page_size", "total", "start", "end", "uri", "first_page_uri",
    "previous_page_uri", "next_page_uri", "last_page_uri",
]  # fmt: skip
NUMBER_KEYS = [
    "sid", "account_sid", "friendly_name", "phone_number", "voice_url", "voice_method",
    "voice_fallback_url", "voice_fallback_method", "status_callback", "status_callback_method",
    "voice_caller_id_lookup", "voice_application_sid", "date_created", "date_updated", "sms_url",
    "sms_method", "sms_fallback_url", "sms_fallback_method", "sms_application_sid",
    "capabilities", "api_version", "uri",
]  # fmt: skip
APPLICATION_KEYS = [
    "sid", "date_created", "date_updated", "friendly_name", "account_sid", "api_version",
    "voice_caller_id_lookup", "uri", "rcml_url", "kind",
]  # fmt: skip


# -- helpers ----------------------------------------------------------------------------------


def path(verbal: LiveVerbal, resource: str) -> str:
    return f"{BASE}/{verbal.account_sid}/{resource}"


def xml(response: httpx.Response | Any, tag: str) -> Element:
    """The resource element under <RestcommResponse>, after checking the envelope."""
    assert response.headers["content-type"].startswith("application/xml"), response.text
    root = fromstring(response.text)
    assert root.tag == "RestcommResponse"
    [element] = list(root)
    assert element.tag == tag
    return element


def texts(element: Element) -> dict[str, str | None]:
    return {child.tag: child.text for child in element}


def send(verbal: LiveVerbal, body: str, to: str = HANDSET, **extra: str) -> dict[str, Any]:
    with verbal.http() as http:
        response = http.post(
            path(verbal, "SMS/Messages.json"), data={"From": FROM, "To": to, "Body": body, **extra}
        )
    assert response.status_code == 200, response.text
    return dict(response.json())


def restcomm_error(response: httpx.Response) -> tuple[int, str, int]:
    """(HTTP status, message, code) of a Restcomm error, XML or JSON."""
    if response.headers["content-type"].startswith("application/json"):
        body = response.json()
        assert list(body) == ["message", "error"]
        return response.status_code, body["message"], body["error"]
    root = fromstring(response.text)
    assert root.tag == "RestcommResponse" and [c.tag for c in root] == ["Message", "Error"]
    return response.status_code, root.findtext("Message") or "", int(root.findtext("Error") or 0)


def second_account(verbal: LiveVerbal, number: str) -> tuple[str, str]:
    """Another account owning `number`: its SID and token."""

    async def create(runtime: Any) -> tuple[str, str]:
        account = await runtime.directory.create_account("other")
        await runtime.directory.add_number(account, number)
        return account.sid, account.auth_token

    return verbal.call(create)  # type: ignore[no-any-return]


def stored_application(verbal: LiveVerbal, sid: str) -> Any:
    async def read(runtime: Any) -> Any:
        return await runtime.directory.application(sid)

    return verbal.call(read)


def follow(http: httpx.Client, first: str, key: str) -> list[dict[str, Any]]:
    """Every page from `first` on, following `next_page_uri` until Restcomm's "null"."""
    pages = []
    uri: str = first
    while uri != "null":
        response = http.get(uri)
        assert response.status_code == 200, response.text
        pages.append(response.json())
        assert list(pages[-1]) == [*PAGE_KEYS, key]
        uri = pages[-1]["next_page_uri"]
    return pages


# -- SMS/Messages -----------------------------------------------------------------------------


def test_an_sms_sent_as_restcomm_does_reaches_the_handset_and_reports_in_rcml_format(
    verbal: LiveVerbal, receiver: WebhookReceiver
) -> None:
    with verbal.http() as http:
        # No `.json` and no Accept: Restcomm answers XML.
        response = http.post(
            path(verbal, "SMS/Messages"),
            data={
                "From": FROM,
                "To": HANDSET,
                "Body": "Hello from Restcomm's API & <friends>",
                "StatusCallback": receiver.url("/sms-status"),
                "Encoding": "GSM",
                "X-Custom": "ignored",
            },
        )
    assert response.status_code == 200
    message = xml(response, "SMSMessage")
    assert [child.tag for child in message] == MESSAGE_TAGS
    fields = texts(message)
    sid = fields["Sid"] or ""
    assert SID.match(sid) and sid.startswith("SM")
    assert RESTCOMM_DATE.match(fields["DateCreated"] or "")
    assert RESTCOMM_DATE.match(fields["DateUpdated"] or "")
    assert fields["DateSent"] is None
    assert fields["AccountSid"] == verbal.account_sid
    assert (fields["From"], fields["To"]) == (FROM, HANDSET)
    assert fields["Body"] == "Hello from Restcomm's API & <friends>"
    assert fields["Status"] == "queued"
    assert fields["Direction"] == "outbound-api"
    assert (fields["Price"], fields["PriceUnit"]) == ("0", "USD")
    assert fields["ApiVersion"] == "2012-04-24"
    assert fields["Uri"] == f"/2012-04-24/Accounts/{verbal.account_sid}/SMS/Messages/{sid}"

    requests = receiver.wait_for(lambda rs: len(rs) >= 3)
    assert [r.params["MessageStatus"] for r in requests] == ["queued", "sent", "delivered"]
    validator = RequestValidator(verbal.auth_token)
    for request in requests:
        params = request.params
        assert request.method == "POST" and request.path == "/sms-status"
        assert params["MessageSid"] == params["SmsSid"] == sid
        assert params["AccountSid"] == verbal.account_sid
        assert (params["From"], params["To"]) == (FROM, HANDSET)
        assert params["Body"] == "Hello from Restcomm's API & <friends>"
        assert "ErrorCode" not in params
        assert validator.validate(request.url, params, request.headers["X-Twilio-Signature"])

    [received] = inbox(verbal, HANDSET)
    assert (received["message_sid"], received["from"]) == (sid, FROM)
    assert received["body"] == "Hello from Restcomm's API & <friends>"

    with verbal.http() as http:
        fetched = http.get(path(verbal, f"SMS/Messages/{sid}.json")).json()
    assert list(fetched) == MESSAGE_KEYS
    assert fetched["status"] == "delivered"
    assert ISO_DATE.match(fetched["date_sent"])
    assert fetched["uri"] == f"/2012-04-24/Accounts/{verbal.account_sid}/SMS/Messages/{sid}.json"
    assert (fetched["error_code"], fetched["error_message"]) == (None, None)


def test_the_twilio_sdk_reaches_restcomm_paths_through_its_generic_request(
    verbal: LiveVerbal,
) -> None:
    client = verbal.twilio()
    url = verbal.base_url + path(verbal, "SMS/Messages.json")
    created = client.request("POST", url, data={"From": FROM, "To": HANDSET, "Body": "via SDK"})
    assert created.status_code == 200, created.text
    body = httpx.Response(200, content=created.text).json()
    assert list(body) == MESSAGE_KEYS
    sid = body["sid"]
    assert SID.match(sid) and sid.startswith("SM")
    assert RESTCOMM_DATE.match(body["date_created"]) and RESTCOMM_DATE.match(body["date_updated"])
    assert body["date_sent"] is None
    assert body["account_sid"] == verbal.account_sid
    assert (body["from"], body["to"], body["body"]) == (FROM, HANDSET, "via SDK")
    assert (body["status"], body["direction"]) == ("queued", "outbound-api")
    assert (body["error_code"], body["error_message"]) == (None, None)
    assert (body["price"], body["price_unit"], body["api_version"]) == ("0", "USD", "2012-04-24")
    assert body["uri"] == f"/2012-04-24/Accounts/{verbal.account_sid}/SMS/Messages/{sid}.json"

    # The SDK asks for JSON (Accept) even without `.json`; asking for XML gets XML.
    one = verbal.base_url + path(verbal, f"SMS/Messages/{sid}")
    assert client.request("GET", one).headers["content-type"].startswith("application/json")
    fetched = xml(client.request("GET", one, headers={"Accept": "application/xml"}), "SMSMessage")
    assert texts(fetched)["Sid"] == sid and texts(fetched)["Body"] == "via SDK"
    wait_until(lambda: [m["message_sid"] for m in inbox(verbal, HANDSET)] == [sid])


def test_a_failed_message_carries_restcomm_error_fields(verbal: LiveVerbal) -> None:
    with verbal.http() as http:
        http.post(
            "/sandbox/rules", json={"pattern": OTHER_HANDSET, "outcome": "undeliverable"}
        ).raise_for_status()
    sid = send(verbal, "never arrives", to=OTHER_HANDSET)["sid"]
    with verbal.http() as http:
        one = path(verbal, f"SMS/Messages/{sid}")
        wait_until(lambda: http.get(one + ".json").json()["status"] == "undelivered")
        body = http.get(one + ".json").json()
        element = xml(http.get(one), "SMSMessage")
    assert (body["error_code"], body["error_message"]) == (30003, "Unreachable destination handset")
    # XML has Restcomm's <Error> group, right after Direction, only when there is an error.
    tags = [child.tag for child in element]
    assert tags == [*MESSAGE_TAGS[:10], "Error", *MESSAGE_TAGS[10:]]
    assert texts(element.find("Error")) == {  # type: ignore[arg-type]
        "ErrorCode": "30003",
        "ErrorMessage": "Unreachable destination handset",
    }


def test_sms_lists_page_with_restcomm_envelopes_and_filters(verbal: LiveVerbal) -> None:
    sent = [
        send(verbal, f"message {i}", to=HANDSET if i % 2 else OTHER_HANDSET)["sid"]
        for i in range(7)
    ]
    newest_first = list(reversed(sent))
    list_path = path(verbal, "SMS/Messages.json")
    with verbal.http() as http:
        pages = follow(http, f"{list_path}?PageSize=2", "messages")
        assert [m["sid"] for page in pages for m in page["messages"]] == newest_first
        assert len(pages) == 4
        first, last = pages[0], pages[-1]
        assert {k: first[k] for k in PAGE_KEYS} == {
            "page": 0,
            "num_pages": 4,
            "page_size": 2,
            "total": 7,
            "start": "0",
            "end": "1",
            "uri": list_path,
            "first_page_uri": f"{list_path}?Page=0&PageSize=2",
            "previous_page_uri": "null",
            "next_page_uri": f"{list_path}?Page=1&PageSize=2&AfterSid={newest_first[1]}",
            "last_page_uri": f"{list_path}?Page=3&PageSize=2",
        }
        assert (last["page"], last["start"], last["end"]) == (3, "6", "6")
        assert last["previous_page_uri"] == f"{list_path}?Page=2&PageSize=2"
        assert last["next_page_uri"] == "null"
        for message in first["messages"]:
            assert list(message) == MESSAGE_KEYS

        # A message sent while paging neither shifts nor repeats the pages that follow.
        second = http.get(first["next_page_uri"]).json()
        late = send(verbal, "arrived meanwhile")["sid"]
        third = http.get(second["next_page_uri"]).json()
        assert [m["sid"] for m in third["messages"]] == newest_first[4:6]
        # Page alone counts rows from the newest; beyond the last page is Restcomm's 400.
        by_offset = http.get(f"{list_path}?Page=1&PageSize=3").json()["messages"]
        assert [m["sid"] for m in by_offset] == newest_first[2:5]
        beyond = http.get(f"{list_path}?Page=9&PageSize=2")
        assert restcomm_error(beyond)[0::2] == (400, 20422)

        # XML: the same envelope as attributes of <SMSMessages>, names without underscores.
        root = fromstring(http.get(path(verbal, "SMS/Messages"), params={"PageSize": 3}).text)
        [listed] = list(root)
        assert listed.tag == "SMSMessages"
        assert listed.attrib["page"] == "0" and listed.attrib["numpages"] == "3"
        assert listed.attrib["pagesize"] == "3" and listed.attrib["total"] == "8"
        assert (listed.attrib["start"], listed.attrib["end"]) == ("0", "2")
        assert listed.attrib["previouspageuri"] == "null"
        assert listed.attrib["nextpageuri"].startswith(path(verbal, "SMS/Messages?Page=1&"))
        assert listed.attrib["lastpageuri"] == path(verbal, "SMS/Messages?Page=2&PageSize=3")
        assert [child.tag for child in listed] == ["SMSMessage"] * 3

        def sids(**filters: str) -> list[str]:
            response = http.get(list_path, params=filters)
            assert response.status_code == 200, response.text
            return [m["sid"] for m in response.json()["messages"]]

        # To and From match as suffixes, as Restcomm's LIKE '%…' does; the filters stay in links.
        to_handset = [late, sent[5], sent[3], sent[1]]
        assert sids(To=HANDSET) == to_handset
        assert sids(To="5550002000") == sids(To="555 000-2000") == to_handset
        assert len(sids(From=FROM)) == 8
        assert sids(Body="message 3") == [sent[3]]
        assert sids(Body="%") == []
        today = datetime.now(UTC).date()
        assert len(sids(StartTime=str(today), EndTime=str(today))) == 8
        assert sids(EndTime=str(today - timedelta(days=1))) == []
        assert sids(StartTime=str(today + timedelta(days=1))) == []
        assert sids(Status="no-such-status") == []
        paged = http.get(list_path, params={"To": HANDSET, "PageSize": 1}).json()
        assert paged["total"] == 4 and "To=%2B15550002000" in paged["next_page_uri"]
        bad_date = http.get(list_path, params={"StartTime": "yesterday"})
        assert restcomm_error(bad_date) == (400, "StartTime must be a date as YYYY-MM-DD", 20422)
        assert restcomm_error(http.get(list_path, params={"PageSize": 0}))[0] == 400
        assert restcomm_error(http.get(list_path, params={"AfterSid": "SMnope"}))[0] == 400


# -- the JSON Messages API --------------------------------------------------------------------


def test_the_messages_api_sends_over_channel_uris_with_media(
    verbal: LiveVerbal, receiver: WebhookReceiver
) -> None:
    media = ["https://example.com/cat.jpg", "https://example.com/clip.mp4"]
    with verbal.http() as http:
        # JSON in and out, whatever Accept says.
        response = http.post(
            path(verbal, "Messages"),
            json={
                "from": f"sms:{FROM}",
                "to": f"mms:{HANDSET}",
                "body": "look",
                "media_urls": media,
                "status_callback": receiver.url("/mms"),
            },
            headers={"Accept": "application/xml"},
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body) == [*MESSAGE_KEYS, "media_urls"]
    assert (body["from"], body["to"], body["body"]) == (FROM, HANDSET, "look")
    assert (body["status"], body["direction"]) == ("queued", "outbound-api")
    assert body["media_urls"] == media
    assert body["uri"].endswith(f"/SMS/Messages/{body['sid']}.json")

    [received] = wait_for_texts(verbal, HANDSET, 1)
    assert (received["message_sid"], received["media_urls"]) == (body["sid"], media)
    requests = receiver.wait_for(lambda rs: len(rs) >= 3)
    assert [r.params["MessageStatus"] for r in requests] == ["queued", "sent", "delivered"]
    assert [v for k, v in requests[-1].form if k == "MediaUrl"] == media
    assert requests[-1].params["Body"] == "look"

    # A bare sender works too; an SMS needs no media.
    with verbal.http() as http:
        plain = http.post(
            path(verbal, "Messages"),
            json={"from": FROM, "to": f"sms:{OTHER_HANDSET}", "body": "hi"},
        )
    assert plain.status_code == 200 and plain.json()["media_urls"] == []


@pytest.mark.parametrize(
    ("payload", "code", "says"),
    [
        ({"from": FROM, "to": f"whatsapp:{HANDSET}", "body": "x"}, 21211, "'whatsapp'"),
        ({"from": f"client:{FROM}", "to": f"sms:{HANDSET}", "body": "x"}, 21212, "'client'"),
        ({"from": FROM, "to": HANDSET, "body": "x"}, 20422, "channel URI"),
        ({"from": FROM, "body": "x"}, 21604, "'to'"),
        ({"to": f"sms:{HANDSET}", "body": "x"}, 21603, "'from'"),
        ({"from": FROM, "to": f"sms:{HANDSET}"}, 21602, "body"),
        ({"from": FROM, "to": f"sms:{HANDSET}", "media_urls": ["https://e.x/a.png"]}, 20422, "mms"),
        ({"from": FROM, "to": f"mms:{HANDSET}", "media_urls": [1]}, 20422, "list of URLs"),
        ({"from": FROM, "to": f"mms:{HANDSET}", "body": 5}, 20422, "'body'"),
        ({"from": "+15550009999", "to": f"sms:{HANDSET}", "body": "x"}, 21606, "+15550009999"),
        ([1, 2], 20422, "JSON object"),
    ],
)
def test_the_messages_api_refuses_clearly(
    verbal: LiveVerbal, payload: Any, code: int, says: str
) -> None:
    with verbal.http() as http:
        response = http.post(path(verbal, "Messages"), json=payload)
    status, message, error = restcomm_error(response)
    assert (status, error) == (400, code) and says in message, message
    assert inbox(verbal, HANDSET) == []


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "message", "code"),
    [
        ({"To": HANDSET, "Body": "x"}, "From can not be null.", 21603),
        ({"From": FROM, "Body": "x"}, "To can not be null.", 21604),
        ({"From": FROM, "To": HANDSET}, "Body can not be null.", 21602),
        ({"From": FROM, "To": HANDSET, "Body": ""}, "Body can not be null.", 21602),
        ({"From": "+15550009999", "To": HANDSET, "Body": "x"}, None, 21606),
        ({"From": FROM, "To": "client:alice", "Body": "x"}, None, 21211),
        ({"From": FROM, "To": "+442079460000", "Body": "x"}, None, 21612),
        ({"From": FROM, "To": HANDSET, "Body": "x", "StatusCallback": "ftp://x"}, None, 20422),
        ({"From": FROM, "To": HANDSET, "Body": "x", "StatusCallbackMethod": "PUT"}, None, 20422),
    ],
)
def test_refused_sms_get_restcomm_errors_in_both_formats(
    verbal: LiveVerbal, params: dict[str, str], message: str | None, code: int
) -> None:
    with verbal.http() as http:
        for resource in ("SMS/Messages", "SMS/Messages.json"):
            status, text, error = restcomm_error(http.post(path(verbal, resource), data=params))
            assert (status, error) == (400, code)
            assert text == message if message else text
    assert inbox(verbal, HANDSET) == []


def test_credentials_accounts_and_sids_are_checked_without_leaking_or_crashing(
    verbal: LiveVerbal,
) -> None:
    other_sid, other_token = second_account(verbal, "+15550004000")
    foreign = httpx.Client(base_url=verbal.base_url, auth=(other_sid, other_token), timeout=10)
    with foreign:
        theirs = foreign.post(
            f"{BASE}/{other_sid}/SMS/Messages.json",
            data={"From": "+15550004000", "To": HANDSET, "Body": "theirs"},
        ).json()["sid"]
        their_number = foreign.get(f"{BASE}/{other_sid}/IncomingPhoneNumbers.json").json()
        their_number_sid = their_number["incomingPhoneNumbers"][0]["sid"]
        their_app = foreign.post(
            f"{BASE}/{other_sid}/Applications.json", data={"FriendlyName": "theirs"}
        ).json()["sid"]

    messages = path(verbal, "SMS/Messages")
    with httpx.Client(base_url=verbal.base_url, timeout=10) as anonymous:
        denied = anonymous.get(messages)
        assert restcomm_error(denied)[0::2] == (401, 20003)
        assert denied.headers["www-authenticate"].startswith("Basic")
        wrong = anonymous.get(messages + ".json", auth=(verbal.account_sid, "0" * 32))
        assert restcomm_error(wrong)[0::2] == (401, 20003)
        garbled = anonymous.get(messages, headers={"Authorization": "Basic !!!"})
        assert garbled.status_code == 401

    with verbal.http() as http:
        # Another account's path, message, number and application: all simply not found.
        for response in (
            http.get(f"{BASE}/{other_sid}/SMS/Messages.json"),
            http.get(path(verbal, f"SMS/Messages/{theirs}.json")),
            http.get(path(verbal, f"IncomingPhoneNumbers/{their_number_sid}")),
            http.post(path(verbal, f"IncomingPhoneNumbers/{their_number_sid}"), data={}),
            http.delete(path(verbal, f"IncomingPhoneNumbers/{their_number_sid}")),
            http.get(path(verbal, f"Applications/{their_app}.json")),
            http.put(path(verbal, f"Applications/{their_app}"), data={"FriendlyName": "mine"}),
            http.delete(path(verbal, f"Applications/{their_app}")),
            http.get(path(verbal, "SMS/Messages/SM" + "0" * 32)),
        ):
            assert restcomm_error(response)[0::2] == (404, 20404), response.request.url
            assert "theirs" not in response.text
        assert http.get(path(verbal, "SMS/Messages.json")).json()["total"] == 0
        # Attaching another account's application is refused, not done.
        refused = http.post(
            path(verbal, "IncomingPhoneNumbers.json"),
            data={"PhoneNumber": "+15550001009", "SmsApplicationSid": their_app},
        )
        assert restcomm_error(refused)[0::2] == (400, 20422)
        # Garbage never gets a 500.
        weird = http.post(
            messages,
            content=b"\xff\xfe\x00garbage",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert weird.status_code == 400
        not_json = http.post(path(verbal, "Messages"), content=b"{nope")
        assert restcomm_error(not_json) == (400, "The request body is not valid JSON", 20422)
        too_deep = http.post(path(verbal, "Messages"), content=b"[" * 100_000)
        assert restcomm_error(too_deep) == (400, "The request body is not valid JSON", 20422)
        # What the database could not store is refused before it gets there.
        for response in (
            http.post(path(verbal, "Applications"), data={"FriendlyName": "a\x00b"}),
            http.post(path(verbal, "Applications"), data={"FriendlyName": "x" * 65}),
            http.post(
                path(verbal, "Applications"),
                data={"FriendlyName": "x", "RcmlUrl": "http://e.x/" + "a" * 2048},
            ),
            http.post(
                path(verbal, "Messages"),
                json={"from": FROM, "to": f"sms:{HANDSET}", "body": "a\x00b"},
            ),
        ):
            assert restcomm_error(response)[0::2] == (400, 20422)
        assert http.get(messages, params={"Page": "x"}).status_code == 400


# -- IncomingPhoneNumbers ---------------------------------------------------------------------


def test_numbers_are_created_read_updated_and_released_with_restcomm_fields(
    verbal: LiveVerbal,
) -> None:
    client = verbal.twilio()
    numbers_url = verbal.base_url + path(verbal, "IncomingPhoneNumbers.json")
    created = client.request(
        "POST",
        numbers_url,
        data={
            "PhoneNumber": "+1 555 000 1001",
            "FriendlyName": "Support line",
            "SmsUrl": "http://127.0.0.1:9/sms",
            "SmsMethod": "get",
            "SmsFallbackUrl": "http://127.0.0.1:9/fallback",
            "VoiceUrl": "http://127.0.0.1:9/voice",
            "StatusCallback": "http://127.0.0.1:9/call-status",
            "VoiceCallerIdLookup": "true",
            "isSIP": "true",
            "VoiceCapable": "true",
        },
    )
    assert created.status_code == 200, created.text
    number = httpx.Response(200, content=created.text).json()
    assert list(number) == NUMBER_KEYS
    sid = number["sid"]
    assert SID.match(sid) and sid.startswith("PN")
    assert number["account_sid"] == verbal.account_sid
    assert (number["friendly_name"], number["phone_number"]) == ("Support line", "+15550001001")
    assert (number["voice_url"], number["voice_method"]) == ("http://127.0.0.1:9/voice", "POST")
    assert (number["voice_fallback_url"], number["voice_fallback_method"]) == (None, "POST")
    assert number["status_callback"] == "http://127.0.0.1:9/call-status"
    assert number["status_callback_method"] == "POST"
    assert number["voice_caller_id_lookup"] is True
    assert number["voice_application_sid"] is None
    assert RESTCOMM_DATE.match(number["date_created"]) and RESTCOMM_DATE.match(
        number["date_updated"]
    )
    assert (number["sms_url"], number["sms_method"]) == ("http://127.0.0.1:9/sms", "GET")
    assert number["sms_fallback_url"] == "http://127.0.0.1:9/fallback"
    assert number["sms_fallback_method"] == "POST"
    assert number["sms_application_sid"] is None
    assert number["capabilities"] == {
        "voice_capable": True,
        "sms_capable": True,
        "mms_capable": True,
        "fax_capable": False,
    }
    assert number["api_version"] == "2012-04-24"
    assert (
        number["uri"]
        == f"/2012-04-24/Accounts/{verbal.account_sid}/IncomingPhoneNumbers/{sid}.json"
    )

    # The same number in XML, element by element.
    one = verbal.base_url + path(verbal, f"IncomingPhoneNumbers/{sid}")
    element = xml(client.request("GET", one, headers={"Accept": "text/xml"}), "IncomingPhoneNumber")
    assert [child.tag for child in element] == [
        "Sid", "AccountSid", "FriendlyName", "PhoneNumber", "VoiceUrl", "VoiceMethod",
        "VoiceFallbackUrl", "VoiceFallbackMethod", "StatusCallback", "StatusCallbackMethod",
        "VoiceCallerIdLookup", "VoiceApplicationSid", "DateCreated", "DateUpdated", "SmsUrl",
        "SmsMethod", "SmsFallbackUrl", "SmsFallbackMethod", "SmsApplicationSid", "Capabilities",
        "ApiVersion", "Uri",
    ]  # fmt: skip
    fields = texts(element)
    assert (fields["Sid"], fields["PhoneNumber"], fields["SmsMethod"]) == (
        sid,
        "+15550001001",
        "GET",
    )
    assert (fields["VoiceCallerIdLookup"], fields["VoiceFallbackUrl"]) == ("true", None)
    assert fields["Uri"] == f"/2012-04-24/Accounts/{verbal.account_sid}/IncomingPhoneNumbers/{sid}"
    assert texts(element.find("Capabilities")) == {  # type: ignore[arg-type]
        "Voice": "true",
        "Sms": "true",
        "Mms": "true",
        "Fax": "false",
    }

    # Attach an application (PUT), then change and clear own URLs (POST).
    with verbal.http() as http:
        app = http.post(
            path(verbal, "Applications.json"),
            data={"FriendlyName": "Router", "RcmlUrl": "http://127.0.0.1:9/app", "Kind": "sms"},
        ).json()
    updated = client.request(
        "PUT", one + ".json", data={"SmsApplicationSid": app["sid"], "FriendlyName": "Routed"}
    )
    changed = httpx.Response(200, content=updated.text).json()
    assert list(changed) == [*NUMBER_KEYS[:19], "sms_application_name", *NUMBER_KEYS[19:]]
    assert (changed["sms_application_sid"], changed["sms_application_name"]) == (
        app["sid"],
        "Router",
    )
    assert (changed["friendly_name"], changed["sms_url"]) == ("Routed", "http://127.0.0.1:9/sms")
    cleared = httpx.Response(
        200,
        content=client.request(
            "POST",
            one + ".json",
            data={"SmsUrl": "", "SmsApplicationSid": "", "VoiceCallerIdLookup": "false"},
        ).text,
    ).json()
    assert (cleared["sms_url"], cleared["sms_application_sid"]) == (None, None)
    assert cleared["voice_caller_id_lookup"] is False
    assert cleared["voice_url"] == "http://127.0.0.1:9/voice"  # untouched: not mentioned

    with verbal.http() as http:
        for data, code in (
            ({"PhoneNumber": "+15550001001"}, 21452),
            ({"PhoneNumber": FROM}, 21452),
            ({"PhoneNumber": "not a number"}, 21421),
            ({}, 20422),
            ({"PhoneNumber": "+15550001002", "SmsUrl": "mailto:x@y"}, 20422),
            ({"PhoneNumber": "+15550001002", "SmsMethod": "PATCH"}, 20422),
            ({"PhoneNumber": "+15550001002", "VoiceApplicationSid": "AP" + "0" * 32}, 20422),
        ):
            response = http.post(path(verbal, "IncomingPhoneNumbers"), data=data)
            assert restcomm_error(response)[0::2] == (400, code), data
        # Nothing half-made by the refusals above.
        listed = http.get(path(verbal, "IncomingPhoneNumbers.json")).json()
        assert [n["phone_number"] for n in listed["incomingPhoneNumbers"]] == [FROM, "+15550001001"]
        # Without a name, a number is called by itself, as in Restcomm.
        unnamed = http.post(
            path(verbal, "IncomingPhoneNumbers.json"),
            data={"PhoneNumber": "15550001002", "FriendlyName": ""},
        ).json()
        assert unnamed["friendly_name"] == unnamed["phone_number"] == "+15550001002"

    deleted = client.request("DELETE", one)
    assert (deleted.status_code, deleted.text) == (204, "")
    assert client.request("GET", one).status_code == 404


def test_a_number_configured_with_an_sms_url_answers_a_handset(
    verbal: LiveVerbal, app_server: AppServer
) -> None:
    def answer(text: str) -> Any:
        def route(hit: AppHit) -> tuple[int, str, str]:
            response = MessagingResponse()
            response.message(f"{text}: {hit.form['Body']}")
            return 200, "text/xml", response.to_xml()

        return route

    app_server.routes["/own"] = answer("Own URL")
    app_server.routes["/shared"] = answer("Shared app")
    with verbal.http() as http:
        listed = http.get(path(verbal, "IncomingPhoneNumbers.json"), params={"PhoneNumber": FROM})
        [number] = listed.json()["incomingPhoneNumbers"]
        one = path(verbal, f"IncomingPhoneNumbers/{number['sid']}.json")
        configured = http.post(one, data={"SmsUrl": app_server.url("/own")}).json()
        assert configured["sms_url"] == app_server.url("/own")

        text_app(verbal, HANDSET, "first")
        [reply] = wait_for_texts(verbal, HANDSET, 1)
        assert (reply["body"], reply["from"]) == ("Own URL: first", FROM)
        [hit] = app_server.hits_for("/own")
        assert (hit.form["From"], hit.form["To"], hit.form["Body"]) == (HANDSET, FROM, "first")

        # An attached application answers instead of the number's own URL, until detached.
        shared = http.post(
            path(verbal, "Applications.json"),
            data={"FriendlyName": "shared", "RcmlUrl": app_server.url("/shared"), "Kind": "sms"},
        ).json()
        http.post(one, data={"SmsApplicationSid": shared["sid"]}).raise_for_status()
        text_app(verbal, HANDSET, "second")
        assert wait_for_texts(verbal, HANDSET, 2)[1]["body"] == "Shared app: second"
        http.post(one, data={"SmsApplicationSid": ""}).raise_for_status()
        text_app(verbal, HANDSET, "third")
        assert wait_for_texts(verbal, HANDSET, 3)[2]["body"] == "Own URL: third"


def test_numbers_list_by_number_over_pages(verbal: LiveVerbal) -> None:
    with verbal.http() as http:
        for last_digit in (6, 2, 5, 1, 4, 3):
            http.post(
                path(verbal, "IncomingPhoneNumbers"),
                data={
                    "PhoneNumber": f"+1555000100{last_digit}",
                    "FriendlyName": f"line {last_digit}",
                },
            ).raise_for_status()
        list_path = path(verbal, "IncomingPhoneNumbers.json")
        pages = follow(http, f"{list_path}?PageSize=2", "incomingPhoneNumbers")
        assert [n["phone_number"] for p in pages for n in p["incomingPhoneNumbers"]] == [
            f"+1555000100{d}" for d in range(7)
        ]
        assert [(p["page"], p["num_pages"], p["total"], p["start"], p["end"]) for p in pages] == [
            (0, 4, 7, "0", "1"),
            (1, 4, 7, "2", "3"),
            (2, 4, 7, "4", "5"),
            (3, 4, 7, "6", "6"),
        ]
        for number in pages[0]["incomingPhoneNumbers"]:
            assert list(number) == NUMBER_KEYS
        filtered = http.get(list_path, params={"FriendlyName": "line", "PageSize": 5}).json()
        assert filtered["total"] == 6 and filtered["num_pages"] == 2
        assert "FriendlyName=line" in filtered["next_page_uri"]
        by_number = http.get(list_path, params={"PhoneNumber": "0001003"}).json()
        assert [n["friendly_name"] for n in by_number["incomingPhoneNumbers"]] == ["line 3"]

        root = fromstring(
            http.get(path(verbal, "IncomingPhoneNumbers"), params={"Page": 1, "PageSize": 3}).text
        )
        [listed] = list(root)
        assert listed.tag == "IncomingPhoneNumbers"
        assert {k: listed.attrib[k] for k in ("page", "numpages", "pagesize", "total")} == {
            "page": "1",
            "numpages": "3",
            "pagesize": "3",
            "total": "7",
        }
        assert [child.findtext("PhoneNumber") for child in listed] == [
            "+15550001003",
            "+15550001004",
            "+15550001005",
        ]


# -- Applications -----------------------------------------------------------------------------


def test_applications_map_rcml_url_by_kind_and_show_back_in_restcomm_fields(
    verbal: LiveVerbal,
) -> None:
    client = verbal.twilio()
    apps_url = verbal.base_url + path(verbal, "Applications")
    created = client.request(
        "POST",
        apps_url,
        data={
            "FriendlyName": "Echo",
            "RcmlUrl": "http://127.0.0.1:9/echo",
            "Kind": "SMS",
            "VoiceCallerIdLookup": "true",
            "ApiVersion": "2012-04-24",
        },
        headers={"Accept": "application/xml"},
    )
    assert created.status_code == 200, created.text
    element = xml(created, "Application")
    assert [child.tag for child in element] == [
        "Sid", "DateCreated", "DateUpdated", "FriendlyName", "AccountSid", "ApiVersion",
        "VoiceCallerIdLookup", "Uri", "RcmlUrl", "Kind",
    ]  # fmt: skip
    fields = texts(element)
    sid = fields["Sid"] or ""
    assert SID.match(sid) and sid.startswith("AP")
    assert RESTCOMM_DATE.match(fields["DateCreated"] or "")
    assert (fields["FriendlyName"], fields["AccountSid"]) == ("Echo", verbal.account_sid)
    assert (fields["ApiVersion"], fields["VoiceCallerIdLookup"]) == ("2012-04-24", "true")
    assert fields["Uri"] == f"/2012-04-24/Accounts/{verbal.account_sid}/Applications/{sid}"
    assert (fields["RcmlUrl"], fields["Kind"]) == ("http://127.0.0.1:9/echo", "sms")
    stored = stored_application(verbal, sid)
    assert (stored.dialect, stored.sms_url, stored.voice_url) == (
        "rcml",
        "http://127.0.0.1:9/echo",
        None,
    )

    one = f"{apps_url}/{sid}.json"
    # Another kind moves the URL; no kind serves both channels; ussd is kept, not routed.
    for kind, sms_url, voice_url in (
        ("voice", None, "http://127.0.0.1:9/echo"),
        ("", "http://127.0.0.1:9/echo", "http://127.0.0.1:9/echo"),
        ("ussd", None, None),
    ):
        body = httpx.Response(
            200, content=client.request("PUT", one, data={"Kind": kind}).text
        ).json()
        assert list(body) == APPLICATION_KEYS
        assert (body["rcml_url"], body["kind"]) == ("http://127.0.0.1:9/echo", kind or None)
        stored = stored_application(verbal, sid)
        assert (stored.sms_url, stored.voice_url) == (sms_url, voice_url), kind
    renamed = client.request(
        "POST", one, data={"FriendlyName": "Echo 2", "Kind": "sms", "VoiceCallerIdLookup": "no"}
    )
    body = httpx.Response(200, content=renamed.text).json()
    assert (body["friendly_name"], body["kind"], body["voice_caller_id_lookup"]) == (
        "Echo 2",
        "sms",
        False,
    )
    assert RESTCOMM_DATE.match(body["date_updated"])

    with verbal.http() as http:
        numbers = http.get(path(verbal, "IncomingPhoneNumbers.json")).json()["incomingPhoneNumbers"]
        number_sid = numbers[0]["sid"]
        http.post(
            path(verbal, f"IncomingPhoneNumbers/{number_sid}"), data={"SmsApplicationSid": sid}
        ).raise_for_status()
        with_numbers = http.get(
            one.removeprefix(verbal.base_url), params={"includeNumbers": "true"}
        )
        assert with_numbers.json()["numbers"] == [
            {
                "sid": number_sid,
                "friendly_name": FROM,
                "phone_number": FROM,
                "voice_application_sid": None,
                "sms_application_sid": sid,
            }
        ]
        as_xml = xml(
            http.get(f"{path(verbal, 'Applications')}/{sid}?includeNumbers=true"), "Application"
        )
        [summary] = list(as_xml.find("Numbers"))  # type: ignore[arg-type]
        assert summary.tag == "Number"
        assert (summary.findtext("PhoneNumber"), summary.findtext("SmsApplicationSid")) == (
            FROM,
            sid,
        )
        assert "numbers" not in http.get(one.removeprefix(verbal.base_url)).json()

        for data in (
            {},
            {"FriendlyName": ""},
            {"FriendlyName": "x", "Kind": "fax"},
            {"FriendlyName": "x", "RcmlUrl": "nope"},
        ):
            assert restcomm_error(http.post(path(verbal, "Applications"), data=data))[0::2] == (
                400,
                20422,
            )

        deleted = http.delete(path(verbal, f"Applications/{sid}"))
        assert (deleted.status_code, deleted.text) == (204, "")
        assert http.get(one.removeprefix(verbal.base_url)).status_code == 404
        # The number it answered for is detached.
        number = http.get(path(verbal, f"IncomingPhoneNumbers/{number_sid}.json")).json()
        assert number["sms_application_sid"] is None


def test_applications_list_pages_and_hides_numbers_own_urls(verbal: LiveVerbal) -> None:
    with verbal.http() as http:
        created = [
            http.post(
                path(verbal, "Applications.json"),
                data={"FriendlyName": f"app {i}", "RcmlUrl": f"http://127.0.0.1:9/{i}"},
            ).json()["sid"]
            for i in range(5)
        ]
        # A number's own URLs live in an application of its own, which is not listed.
        numbers = http.get(path(verbal, "IncomingPhoneNumbers.json")).json()["incomingPhoneNumbers"]
        http.post(
            path(verbal, f"IncomingPhoneNumbers/{numbers[0]['sid']}"),
            data={"SmsUrl": "http://127.0.0.1:9/own"},
        ).raise_for_status()
        http.delete(path(verbal, f"Applications/{created[2]}")).raise_for_status()
        list_path = path(verbal, "Applications.json")
        pages = follow(http, f"{list_path}?PageSize=2&includeNumbers=true", "applications")
        assert [a["sid"] for p in pages for a in p["applications"]] == [
            created[0],
            created[1],
            created[3],
            created[4],
        ]
        assert [(p["page"], p["num_pages"], p["total"]) for p in pages] == [(0, 2, 4), (1, 2, 4)]
        assert pages[0]["next_page_uri"] == (
            f"{list_path}?Page=1&PageSize=2&includeNumbers=true&AfterSid={created[1]}"
        )
        assert all(a["numbers"] == [] for p in pages for a in p["applications"])
        one_each = follow(http, f"{list_path}?PageSize=1", "applications")
        assert [list(p["applications"][0]) for p in one_each] == [APPLICATION_KEYS] * 4

        root = fromstring(http.get(path(verbal, "Applications"), params={"PageSize": 3}).text)
        [listed] = list(root)
        assert (listed.tag, listed.attrib["total"], listed.attrib["numpages"]) == (
            "Applications",
            "4",
            "2",
        )
        assert [a.findtext("Sid") for a in listed] == [created[0], created[1], created[3]]
