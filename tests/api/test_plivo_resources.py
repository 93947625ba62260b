"""Plivo's Application and Number resources driven by the unmodified `plivo` SDK against a
live Verbal: every operation, each answer checked field by field, auto-paging over several
pages, errors in Plivo's shape, and an application made through the API answering texts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import phonenumbers
import plivo
import pytest
from phonenumbers import PhoneNumberType
from plivo import plivoxml
from plivo.exceptions import AuthenticationError, ResourceNotFoundError, ValidationError

from tests.conftest import AppHit, AppServer, LiveVerbal
from tests.engine.helpers import APP_NUMBER, text_app, wait_for_texts
from verbal.api.plivo_resources import country_name
from verbal.store.models import Account

HANDSET = "+15550002000"
NO_CHARGE = "0.00000"
# More than two pages of 20, the SDK's page size and Plivo's largest.
MANY = 45


def digits(number: str) -> str:
    return number.lstrip("+")


def app_uri(auth_id: str, app_id: str) -> str:
    return f"/v1/Account/{auth_id}/Application/{app_id}/"


def directory_call(verbal: LiveVerbal, method: str, *args: Any) -> Any:
    """Call a Directory method on the server's loop (the rows behind the API)."""

    async def call(runtime: Any) -> Any:
        return await getattr(runtime.directory, method)(*args)

    return verbal.call(call)


def sid_of(app_id: str) -> str:
    return f"AP{int(app_id):032x}"


def assert_plivo_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"api_id", "error"} and body["error"]
    assert uuid.UUID(body["api_id"])
    return str(body["error"])


@pytest.fixture
def stranger(verbal: LiveVerbal) -> dict[str, str]:
    """Another account on the same server, with a number and an application of its own."""

    async def make(runtime: Any) -> dict[str, str]:
        account: Account = await runtime.directory.create_account("stranger")
        await runtime.directory.add_number(account, "+15550009000")
        application = await runtime.directory.create_application(
            account, "theirs", dialect="plivo", sms_url="http://127.0.0.1:9/"
        )
        return {
            "auth_id": account.plivo_auth_id,
            "token": account.auth_token,
            "app_id": str(int(application.sid[2:], 16)),
            "number": "15550009000",
        }

    return dict(verbal.call(make))


# -- applications -------------------------------------------------------------------------------


def test_application_create_get_update_delete_field_by_field(
    verbal: LiveVerbal, auth_id: str, client: Any
) -> None:
    created = client.applications.create(
        app_name="Support line",
        answer_url="http://127.0.0.1:9/answer",
        answer_method="GET",
        hangup_url="http://127.0.0.1:9/hangup",
        hangup_method="GET",
        fallback_answer_url="http://127.0.0.1:9/fallback",
        fallback_method="GET",
        message_url="http://127.0.0.1:9/message",
        message_method="GET",
        default_number_app=True,
        default_endpoint_app=True,
        log_incoming_messages=False,
        public_uri=True,
    )
    assert created.message == "created"
    assert uuid.UUID(created.api_id).version == 4
    app_id = created.app_id
    assert app_id.isdigit()

    application = client.applications.get(app_id)
    assert application.id == app_id
    assert uuid.UUID(application.api_id)
    fields = {k: v for k, v in vars(application).items() if k not in ("client", "_name", "api_id")}
    assert fields == {
        "answer_method": "GET",
        "answer_url": "http://127.0.0.1:9/answer",
        "app_id": app_id,
        "app_name": "Support line",
        "application_type": "XML",
        "default_app": True,
        "default_endpoint_app": True,
        "enabled": True,
        "fallback_answer_url": "http://127.0.0.1:9/fallback",
        "fallback_method": "GET",
        "hangup_method": "GET",
        "hangup_url": "http://127.0.0.1:9/hangup",
        "log_incoming_message": False,
        "message_method": "GET",
        "message_url": "http://127.0.0.1:9/message",
        "public_uri": True,
        "resource_uri": app_uri(auth_id, app_id),
        "sip_uri": None,
        "sub_account": None,
    }
    # The same row every other door sees, in Verbal's own columns.
    row = directory_call(verbal, "application", sid_of(app_id))
    assert (row.dialect, row.friendly_name, row.sms_url, row.sms_method) == (
        "plivo",
        "Support line",
        "http://127.0.0.1:9/message",
        "GET",
    )
    assert (row.voice_url, row.voice_fallback_url, row.status_callback) == (
        "http://127.0.0.1:9/answer",
        "http://127.0.0.1:9/fallback",
        "http://127.0.0.1:9/hangup",
    )

    updated = client.applications.update(app_id, message_url="http://127.0.0.1:9/texts")
    assert updated.message == "changed" and uuid.UUID(updated.api_id)
    after = client.applications.get(app_id)
    assert after.message_url == "http://127.0.0.1:9/texts"
    assert after.answer_url == "http://127.0.0.1:9/answer"  # not sent: kept
    # The SDK sends its defaults for the methods and flags on every update, as Plivo gets them.
    assert (after.message_method, after.answer_method, after.hangup_method) == ("POST",) * 3
    assert (after.default_app, after.default_endpoint_app) == (False, False)
    assert (after.log_incoming_message, after.public_uri) == (True, True)
    # The resource's own methods work too.
    after.update(answer_url="http://127.0.0.1:9/answer2")
    assert client.applications.get(app_id).answer_url == "http://127.0.0.1:9/answer2"

    assert client.applications.delete(app_id) is None
    with pytest.raises(ResourceNotFoundError):
        client.applications.get(app_id)
    with pytest.raises(ResourceNotFoundError):
        client.applications.update(app_id, message_url="http://127.0.0.1:9/x")
    with pytest.raises(ResourceNotFoundError):
        client.applications.delete(app_id)
    assert [a.app_id for a in client.applications.list()] == []
    assert directory_call(verbal, "application", sid_of(app_id)) is None


def test_application_delete_detaches_its_numbers_and_checks_its_options(
    verbal: LiveVerbal, client: Any
) -> None:
    app_id = client.applications.create(app_name="doomed").app_id
    other = client.applications.create(app_name="stays").app_id
    client.numbers.update(digits(APP_NUMBER), app_id=app_id)
    with pytest.raises(ValidationError):
        client.applications.delete(app_id, new_endpoint_application="123")
    client.applications.get(app_id)  # still there after the refused delete
    client.applications.get(app_id).delete(cascade=False, new_endpoint_application=other)
    assert client.numbers.get(digits(APP_NUMBER)).application is None
    number = directory_call(verbal, "number", APP_NUMBER)
    assert (number.application_id, number.voice_application_id) == (None, None)


def test_an_application_sid_is_accepted_as_its_app_id(verbal: LiveVerbal, client: Any) -> None:
    application = verbal.add_app("rcml", "http://127.0.0.1:9/sms")
    by_sid = client.applications.get(application.sid)
    assert by_sid.app_id == str(int(application.sid[2:], 16))
    assert by_sid.app_name == "test app" and by_sid.message_url == "http://127.0.0.1:9/sms"
    assert client.applications.get(by_sid.app_id).resource_uri == by_sid.resource_uri


def test_applications_auto_page_over_three_pages_and_filter(
    verbal: LiveVerbal, auth_id: str, client: Any
) -> None:
    created = [client.applications.create(app_name=f"app {i:02}").app_id for i in range(MANY)]
    # Iterating the resource is the SDK's auto-paging: it follows meta.next, 20 at a time.
    assert [a.app_id for a in client.applications] == created

    path = f"/v1/Account/{auth_id}/Application/"
    first = client.applications.list()
    assert [a.app_id for a in first] == created[:20]
    assert first.meta.__dict__ == {
        "limit": 20,
        "offset": 0,
        "next": f"{path}?limit=20&offset=20",
        "previous": None,
        "total_count": MANY,
    }
    last = client.applications.list(limit=20, offset=40)
    assert [a.app_id for a in last] == created[40:]
    assert last.meta.next is None and last.meta.previous == f"{path}?limit=20&offset=20"
    small = client.applications.list(limit=7, offset=14)
    assert [a.app_id for a in small] == created[14:21]
    assert small.meta.next == f"{path}?limit=7&offset=21"
    assert small.meta.previous == f"{path}?limit=7&offset=7"

    named = client.applications.list(app_name="app 07")
    assert [a.app_id for a in named] == [created[7]] and named.meta.total_count == 1
    assert named.objects[0].app_name == "app 07"
    assert len(client.applications.list(app_name="nobody")) == 0
    assert len(client.applications.list(subaccount="SA" + "X" * 18)) == 0


def test_default_number_app_is_the_only_one_and_new_numbers_attach_to_it(
    verbal: LiveVerbal, auth_id: str, client: Any
) -> None:
    first = client.applications.create(app_name="first", default_number_app=True).app_id
    second = client.applications.create(app_name="second", default_number_app=True).app_id
    assert client.applications.get(first).default_app is False
    assert client.applications.get(second).default_app is True

    added = client.numbers.create(numbers="15550004000,15550004001", carrier="Own", region="US")
    assert added.message == "changed" and uuid.UUID(added.api_id)
    for number in ("15550004000", "15550004001"):
        assert client.numbers.get(number).application == app_uri(auth_id, second)
    # An explicit app_id wins over the default.
    client.numbers.create(numbers="15550004002", carrier="Own", region="US", app_id=first)
    assert client.numbers.get("15550004002").application == app_uri(auth_id, first)
    # Only numbers added afterwards: the one the account already had keeps no application.
    assert client.numbers.get(digits(APP_NUMBER)).application is None


# -- numbers ------------------------------------------------------------------------------------


def test_number_get_update_delete_field_by_field(
    verbal: LiveVerbal, auth_id: str, client: Any
) -> None:
    number = client.numbers.get(digits(APP_NUMBER))
    assert number.id == digits(APP_NUMBER)
    assert uuid.UUID(number.api_id)
    fields = {k: v for k, v in vars(number).items() if k not in ("client", "_name", "api_id")}
    assert fields == {
        "active": True,
        "added_on": datetime.now(UTC).date().isoformat(),
        "alias": None,
        "application": None,
        "carrier": "sandbox",
        "city": None,
        "cnam_lookup": "disabled",
        "compliance_application_id": None,
        "compliance_status": None,
        "country": None,  # +1555 numbers are fictional: no country claims them
        "mms_enabled": True,
        "mms_rate": NO_CHARGE,
        "monthly_rental_rate": NO_CHARGE,
        "number": digits(APP_NUMBER),
        "number_type": "local",
        "region": None,
        "renewal_date": None,
        "resource_uri": f"/v1/Account/{auth_id}/Number/{digits(APP_NUMBER)}/",
        "sms_enabled": True,
        "sms_rate": NO_CHARGE,
        "sub_account": None,
        "tendlc_campaign_id": None,
        "tendlc_registration_status": None,
        "toll_free_sms_verification": None,
        "voice_enabled": True,
        "voice_rate": NO_CHARGE,
    }
    # "+" and separators are read as Plivo reads them.
    assert client.numbers.get(APP_NUMBER).number == digits(APP_NUMBER)

    app_id = client.applications.create(app_name="attached").app_id
    changed = client.numbers.update(
        digits(APP_NUMBER), app_id=app_id, alias="front desk", subaccount="SA" + "X" * 18
    )
    assert changed.message == "changed" and uuid.UUID(changed.api_id)
    number = client.numbers.get(digits(APP_NUMBER))
    assert (number.alias, number.application) == ("front desk", app_uri(auth_id, app_id))
    row = directory_call(verbal, "number", APP_NUMBER)
    assert row.friendly_name == "front desk"
    assert row.application_id == row.voice_application_id is not None
    # Through the resource's own method; an empty app_id detaches, an empty alias resets.
    number.update(app_id="", alias="")
    number = client.numbers.get(digits(APP_NUMBER))
    assert (number.alias, number.application) == (None, None)

    assert number.delete() is None
    with pytest.raises(ResourceNotFoundError):
        client.numbers.get(digits(APP_NUMBER))
    with pytest.raises(ResourceNotFoundError):
        client.numbers.delete(digits(APP_NUMBER))
    assert directory_call(verbal, "number", APP_NUMBER) is None


def test_country_names_are_the_geocoders() -> None:
    # `country` is read from phonenumbers' table of region names alone; the geocoder would
    # import the place names of every prefix too (100 MiB). Both name the same countries,
    # and none where a country code is shared and the number is valid in several regions.
    from phonenumbers import geocoder

    kinds = (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE, PhoneNumberType.TOLL_FREE)
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in kinds:
            example = phonenumbers.example_number_for_type(region, kind)
            if example is not None:
                expected = geocoder.country_name_for_number(example, "en")
                assert country_name(example) == expected, (region, kind)
    # Not vacuous: a number of one country is named, a toll-free +1 number is not.
    assert country_name(phonenumbers.parse("+14155550100")) == "United States"
    assert country_name(phonenumbers.parse("+18005550100")) == ""


def test_own_numbers_are_added_and_described_by_the_numbering_plan(
    verbal: LiveVerbal, client: Any
) -> None:
    client.numbers.create(numbers=["18005550100", "+1 415 555 0100"], carrier="Own", region="US")
    toll_free = client.numbers.get("18005550100")
    # Toll-free numbers of +1 belong to no one country of the plan.
    assert (toll_free.number_type, toll_free.country) == ("tollfree", None)
    # Outside the sandbox's prefixes no carrier of this server reaches it.
    assert toll_free.carrier is None
    local = client.numbers.get("14155550100")
    assert (local.number_type, local.country) == ("local", "United States")
    owned = directory_call(verbal, "number", "+18005550100")
    assert owned is not None and owned.friendly_name == "+18005550100"

    assert [n.number for n in client.numbers.list(type="tollfree")] == ["18005550100"]
    assert [n.number for n in client.numbers.list(number_startswith="1415")] == ["14155550100"]
    assert len(client.numbers.list(services=["sms", "mms"])) == 3
    assert len(client.numbers.list(services="voice")) == 3  # every number takes calls
    assert len(client.numbers.list(subaccount="SA" + "X" * 18)) == 0
    client.numbers.update("14155550100", alias="west")
    assert [n.number for n in client.numbers.list(alias="west")] == ["14155550100"]


def test_numbers_auto_page_over_three_pages(verbal: LiveVerbal, auth_id: str, client: Any) -> None:
    added = [f"1555000{5000 + i}" for i in range(MANY)]
    client.numbers.create(numbers=added, carrier="Own", region="US")
    everything = [digits(APP_NUMBER), *added]
    assert [n.number for n in client.numbers] == everything

    path = f"/v1/Account/{auth_id}/Number/"
    middle = client.numbers.list(limit=20, offset=20)
    assert [n.number for n in middle] == everything[20:40]
    assert middle.meta.__dict__ == {
        "limit": 20,
        "offset": 20,
        "next": f"{path}?limit=20&offset=40",
        "previous": f"{path}?limit=20&offset=0",
        "total_count": MANY + 1,
    }
    # Filters ride along in next, so following it keeps filtering.
    filtered = client.numbers.list(limit=3, number_startswith="1555000500")
    assert [n.number for n in filtered] == added[:3]
    assert filtered.meta.next == f"{path}?limit=3&offset=3&number_startswith=1555000500"
    assert filtered.meta.total_count == 10


# -- end to end ---------------------------------------------------------------------------------


def test_an_application_made_through_the_api_answers_texts(
    verbal: LiveVerbal, app_server: AppServer, client: Any
) -> None:
    def reply(hit: AppHit) -> tuple[int, str, str]:
        form = hit.form
        document = plivoxml.ResponseElement().add(
            plivoxml.MessageElement("Got: " + form["Text"], src=form["To"], dst=form["From"])
        )
        return 200, "application/xml", document.to_string(False)

    app_server.routes["/message"] = reply
    app_id = client.applications.create(
        app_name="echo", message_url=app_server.url("/message")
    ).app_id
    client.numbers.update(digits(APP_NUMBER), app_id=app_id)

    text_app(verbal, HANDSET, "hello app")
    [answer] = wait_for_texts(verbal, HANDSET, 1)
    assert (answer["body"], answer["from"]) == ("Got: hello app", APP_NUMBER)
    [hit] = app_server.hits_for("/message")
    assert hit.method == "POST"
    assert (hit.form["From"], hit.form["To"], hit.form["Text"]) == (
        HANDSET,
        APP_NUMBER,
        "hello app",
    )


# -- errors -------------------------------------------------------------------------------------


def test_sdk_raises_plivo_exceptions(
    verbal: LiveVerbal, auth_id: str, client: Any, stranger: dict[str, str]
) -> None:
    theirs, their_number = stranger["app_id"], stranger["number"]
    # Another account's resources do not exist for this one.
    for call in (
        lambda: client.applications.get(theirs),
        lambda: client.applications.update(theirs, message_url="http://127.0.0.1:9/x"),
        lambda: client.applications.delete(theirs),
        lambda: client.numbers.get(their_number),
        lambda: client.numbers.update(their_number, alias="mine"),
        lambda: client.numbers.delete(their_number),
        lambda: client.applications.get("12345"),
        lambda: client.numbers.get("15550008888"),
    ):
        with pytest.raises(ResourceNotFoundError):
            call()
    # Pointing at another account's application through a parameter is a bad parameter.
    with pytest.raises(ValidationError):
        client.numbers.update(digits(APP_NUMBER), app_id=theirs)
    with pytest.raises(ValidationError):
        client.numbers.create(numbers="15550004444", carrier="c", region="r", app_id=theirs)
    with pytest.raises(ValidationError) as taken:
        client.numbers.create(numbers=their_number, carrier="c", region="r")
    assert their_number in str(taken.value)
    with pytest.raises(ValidationError):
        client.numbers.create(numbers="15550004444,not-a-number", carrier="c", region="r")
    assert directory_call(verbal, "number", "+15550004444") is None  # all or nothing
    with pytest.raises(ValidationError):
        client.applications.create(app_name="x" * 65)
    with pytest.raises(ValidationError):
        client.applications.create(app_name="async", callback_url="http://127.0.0.1:9/cb")

    # (A list is no use here: plivo-python 4.63 fails on any error answer to a list, as it
    # measures the error's `objects` before reading its status.)
    wrong = plivo.RestClient(auth_id, "not-the-token")
    with pytest.raises(AuthenticationError):
        wrong.applications.get(theirs)
    with pytest.raises(AuthenticationError):
        wrong.numbers.get(digits(APP_NUMBER))
    their_client = plivo.RestClient(stranger["auth_id"], stranger["token"])
    assert [a.app_id for a in their_client.applications.list()] == [theirs]
    assert [n.number for n in their_client.numbers.list()] == [their_number]
    assert [n.number for n in client.numbers.list()] == [digits(APP_NUMBER)]


def test_errors_have_plivo_shape_and_status(
    verbal: LiveVerbal, auth_id: str, stranger: dict[str, str]
) -> None:
    apps = f"/v1/Account/{auth_id}/Application/"
    numbers = f"/v1/Account/{auth_id}/Number/"
    with httpx.Client(base_url=verbal.base_url, timeout=10) as anonymous:
        for path in (apps, numbers, f"{numbers}{digits(APP_NUMBER)}/"):
            assert_plivo_error(anonymous.get(path), 401)
    with verbal.http() as http:
        app_id = http.post(apps, json={"app_name": "target"}).json()["app_id"]
        app = f"{apps}{app_id}/"
        number = f"{numbers}{digits(APP_NUMBER)}/"
        # Another account's auth id in the path: not yours, whatever the credentials.
        assert_plivo_error(http.get(f"/v1/Account/{stranger['auth_id']}/Application/"), 401)
        for path in (apps, numbers):
            assert_plivo_error(http.get(f"{path}?limit=21"), 400)
            assert_plivo_error(http.get(f"{path}?limit=0"), 400)
            assert_plivo_error(http.get(f"{path}?offset=-1"), 400)
        for bad in ("not-an-id", "AP" + "z" * 32, "9" * 40, str(1 << 128)):
            assert_plivo_error(http.get(f"{apps}{bad}/"), 404)
        assert_plivo_error(http.get(f"{numbers}not-a-number/"), 404)
        assert "app_name" in assert_plivo_error(http.post(apps, json={}), 400)
        # NUL is refused everywhere text reaches the database (PostgreSQL cannot store it).
        for query in ("app_name=%00", "alias=a%00", "number_startswith=%00"):
            assert_plivo_error(http.get(f"{apps if 'app' in query else numbers}?{query}"), 400)
        assert_plivo_error(http.get(f"{numbers}%2B1555%00/"), 404)
        for body in ({"app_name": 7}, {"app_name": ""}, {"app_name": ["x"]}, {"app_name": "a\x00"}):
            assert_plivo_error(http.post(apps, json=body), 400)
        refused_bodies: list[dict[str, Any]] = [
            {"app_name": "x", "message_url": "ftp://files"},
            {"app_name": "x", "message_url": "not a url"},
            {"app_name": "x", "message_url": "http://["},
            {"app_name": "x", "message_url": "http://host/a b"},
            {"app_name": "x", "answer_url": 5},
            {"app_name": "x", "message_method": "PUT"},
            {"app_name": "x", "default_number_app": "maybe"},
            {"app_name": "x", "public_uri": 1},
            {"app_name": "x", "message_url": "http://h/" + "a" * 2048},
        ]
        for body in refused_bodies:
            assert_plivo_error(http.post(apps, json=body), 400)
            assert_plivo_error(http.post(app, json=body), 400)
        assert_plivo_error(
            http.post(apps, content=b"[1, 2]", headers={"Content-Type": "application/json"}), 400
        )
        assert_plivo_error(
            http.post(apps, content=b"{oops", headers={"Content-Type": "application/json"}), 400
        )
        assert_plivo_error(http.request("DELETE", app, json={"cascade": "perhaps"}), 400)
        assert_plivo_error(http.get(f"{app}?callback_url=http://127.0.0.1:9/"), 400)
        assert_plivo_error(http.get(f"{numbers}?services=fax"), 400)
        assert_plivo_error(http.get(f"{numbers}?number_startswith=abc"), 400)
        for body in (
            {"carrier": "c", "region": "r"},
            {"numbers": "", "carrier": "c", "region": "r"},
            {"numbers": 15550004444, "carrier": "c", "region": "r"},
            {"numbers": [1, 2], "carrier": "c", "region": "r"},
            {"numbers": ",".join(["15550004444"] * 1001), "carrier": "c", "region": "r"},
            {"numbers": "15550004444", "region": "r"},
            {"numbers": "15550004444", "carrier": "c"},
            {"numbers": "15550004444", "carrier": 1, "region": "r"},
            {"numbers": "15550004444", "carrier": "c", "region": "r", "app_id": "nope"},
        ):
            assert_plivo_error(http.post(numbers, json=body), 400)
        for body in (
            {"app_id": 7},
            {"app_id": "nope"},
            {"app_id": stranger["app_id"]},
            {"alias": "x" * 65},
            {"alias": ["list"]},
            {"alias": "front\x00desk"},
        ):
            assert_plivo_error(http.post(number, json=body), 400)
        # cURL users send forms; those work as well as the SDK's JSON.
        response = http.post(
            apps,
            data={
                "app_name": "by form",
                "message_url": "http://127.0.0.1:9/m",
                "public_uri": "true",
            },
        )
        assert response.status_code == 201, response.text
        made = http.get(f"{apps}{response.json()['app_id']}/").json()
        assert (made["message_url"], made["public_uri"]) == ("http://127.0.0.1:9/m", True)
        response = http.post(
            numbers, data={"numbers": "15550004444", "carrier": "c", "region": "r"}
        )
        assert response.status_code == 202, response.text
        assert http.get(f"{numbers}15550004444/").json()["number"] == "15550004444"
    assert directory_call(verbal, "number", "+15550004444") is not None
