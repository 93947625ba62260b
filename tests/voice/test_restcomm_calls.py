"""Restcomm's Calls API: the `twilio` SDK pointed at /restcomm (as Restcomm users did) places
a call to a sandbox handset; the XML and JSON answers carry Restcomm's call fields."""

from __future__ import annotations

from xml.etree.ElementTree import fromstring

from tests.conftest import AppServer, LiveVerbal, wait_until
from tests.voice.helpers import APP_NUMBER, HANDSET, ended_call

BASE = "/restcomm/2012-04-24/Accounts"


def test_a_call_through_restcomm_paths_runs_rcml_and_reads_back(
    verbal: LiveVerbal, app_server: AppServer
) -> None:
    app_server.routes["/rcml"] = lambda hit: (
        200,
        "text/xml",
        "<Response><Say>Restcomm says hello</Say></Response>",
    )
    client = verbal.twilio()
    client.api.base_url = verbal.base_url + "/restcomm"
    client.api.v2010.version = "2012-04-24"
    call = client.calls.create(to=HANDSET, from_=APP_NUMBER, url=app_server.url("/rcml"))
    assert call.sid.startswith("CA") and call.api_version == "2012-04-24"
    heard = ended_call(verbal, HANDSET, call.sid)
    assert [h["detail"] for h in heard["heard"]] == ["Restcomm says hello"]
    [hit] = app_server.hits_for("/rcml")
    assert (hit.form["CallSid"], hit.form["Direction"]) == (call.sid, "outbound-api")

    one = f"{BASE}/{verbal.account_sid}/Calls/{call.sid}"
    with verbal.http() as http:
        element = wait_until(
            lambda: (e := fromstring(http.get(one).text)[0]).findtext("EndTime") and e
        )
        assert element.tag == "Call"
        fields = {child.tag: child.text for child in element}
        assert (fields["Sid"], fields["Status"], fields["Direction"]) == (
            call.sid,
            "completed",
            "outbound-api",
        )
        assert (fields["From"], fields["To"]) == (APP_NUMBER, HANDSET)
        assert fields["EndTime"].endswith("+0000") and int(fields["Duration"]) >= 1
        assert fields["Uri"] == f"/2012-04-24/Accounts/{verbal.account_sid}/Calls/{call.sid}"
        listed = http.get(f"{BASE}/{verbal.account_sid}/Calls.json").json()
        assert [c["sid"] for c in listed["calls"]] == [call.sid]
        assert (listed["total"], listed["page"], listed["next_page_uri"]) == (1, 0, "null")
        assert listed["calls"][0]["uri"].endswith(f"/Calls/{call.sid}.json")


def test_a_restcomm_call_is_hung_up_and_refusals_use_twilios_numbers(
    verbal: LiveVerbal, app_server: AppServer
) -> None:
    app_server.routes["/hold"] = lambda hit: (
        200,
        "text/xml",
        '<Response><Pause length="30"/></Response>',
    )
    calls = f"{BASE}/{verbal.account_sid}/Calls.json"
    with verbal.http() as http:
        placed = http.post(
            calls, data={"From": APP_NUMBER, "To": HANDSET, "Url": app_server.url("/hold")}
        )
        assert placed.status_code == 200, placed.text
        sid = placed.json()["sid"]
        one = f"{BASE}/{verbal.account_sid}/Calls/{sid}.json"
        wait_until(lambda: http.get(one).json()["status"] == "in-progress")
        hung_up = http.post(one, data={"Status": "completed"})
        assert hung_up.json()["status"] == "completed"
        assert ended_call(verbal, HANDSET, sid)["cause"] == "hung up through the API"

        missing = http.post(calls, data={"From": APP_NUMBER, "To": HANDSET})
        assert (missing.status_code, missing.json()) == (
            400,
            {"message": "Url can not be null.", "error": 21205},
        )
        foreign = http.post(
            calls, data={"From": "+15550009999", "To": HANDSET, "Url": app_server.url("/hold")}
        )
        assert (foreign.status_code, foreign.json()["error"]) == (400, 21210)
        unknown = http.get(f"{BASE}/{verbal.account_sid}/Calls/CA{'0' * 32}.json")
        assert (unknown.status_code, unknown.json()["error"]) == (404, 20404)
