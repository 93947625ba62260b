"""The console without a browser: sign-in, CSRF, redirects, every page's forms, errors in words.

A live Verbal serves the console; httpx plays the browser. The browser tests
(test_browser.py) show the same pages working in Chromium.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from markupsafe import escape
from twilio.request_validator import RequestValidator

from tests.conftest import LiveVerbal, WebhookReceiver, wait_until
from tests.console.conftest import APP_NUMBER, ConsoleClient, csrf_token_in, unlabelled_controls
from verbal.console import live
from verbal.messaging.optouts import DEFAULT_REPLIES, Keyword

HANDSET = "+15550002000"


def send(verbal: LiveVerbal, body: str = "Hello", to: str = HANDSET, **extra: str) -> str:
    with verbal.http() as http:
        response = http.post(
            f"/2010-04-01/Accounts/{verbal.account_sid}/Messages.json",
            data={"To": to, "From": APP_NUMBER, "Body": body, **extra},
        )
    assert response.status_code == 201, response.text
    return str(response.json()["sid"])


def status_of(verbal: LiveVerbal, sid: str) -> str:
    with verbal.http() as http:
        path = f"/2010-04-01/Accounts/{verbal.account_sid}/Messages/{sid}.json"
        return str(http.get(path).json()["status"])


def wait_for_status(verbal: LiveVerbal, sid: str, status: str) -> None:
    wait_until(lambda: status_of(verbal, sid) == status, timeout=10, what=f"{sid} {status}")


# -- signing in ------------------------------------------------------------------------------


def test_pages_send_a_signed_out_visitor_to_the_login_form(verbal: LiveVerbal) -> None:
    with httpx.Client(base_url=verbal.base_url) as http:
        response = http.get("/console/messages?status=delivered")
        assert response.status_code == 303
        assert response.headers["location"] == (
            "/console/login?next=%2Fconsole%2Fmessages%3Fstatus%3Ddelivered"
        )
        # htmx fragments and the live stream cannot show a form: htmx is told where to go.
        fragment = http.get("/console/messages/rows", headers={"HX-Request": "true"})
        assert (fragment.status_code, fragment.headers["hx-redirect"]) == (401, "/console/login")
        stream = http.get("/console/live?after=0.0.0")
        assert stream.status_code == 401
        # A form posted without a session goes to the login form too, and changes nothing.
        posted = http.post("/console/numbers", data={"number": "+15550007777"})
        assert posted.status_code == 303 and posted.headers["location"].startswith("/console/login")


def test_signing_in_sets_a_signed_session_cookie_and_follows_next(verbal: LiveVerbal) -> None:
    client = ConsoleClient(verbal)
    form = client.get("/console/login?next=/console/sessions")
    assert 'name="next" value="/console/sessions"' in form.text
    response = client.http.post(
        "/console/login",
        data={
            "csrf_token": csrf_token_in(form.text),
            "account_sid": verbal.account_sid,
            "auth_token": verbal.auth_token,
            "next": "/console/sessions",
        },
    )
    assert (response.status_code, response.headers["location"]) == (303, "/console/sessions")
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith("verbal_console=")
    )
    assert "HttpOnly" in cookie and "Path=/console" in cookie and "SameSite=lax" in cookie
    # Signed, not secret: the SID and a CSRF token, never the auth token.
    assert verbal.account_sid in cookie and verbal.auth_token not in cookie
    page = client.get("/console/sessions")
    assert page.status_code == 200 and verbal.account_sid in page.text
    assert verbal.auth_token not in page.text
    client.close()


@pytest.mark.parametrize(
    "target",
    ["//evil.example/console", "https://evil.example/console", "/elsewhere", "/console\\@evil"],
)
def test_next_never_leads_off_the_console(verbal: LiveVerbal, target: str) -> None:
    client = ConsoleClient(verbal)
    form = client.get("/console/login", params={"next": target})
    response = client.http.post(
        "/console/login",
        data={
            "csrf_token": csrf_token_in(form.text),
            "account_sid": verbal.account_sid,
            "auth_token": verbal.auth_token,
            "next": target,
        },
    )
    assert response.headers["location"] == "/console/handsets"
    client.close()


def test_wrong_credentials_are_refused_in_words_without_echoing_the_token(
    verbal: LiveVerbal,
) -> None:
    client = ConsoleClient(verbal)
    wrong = client.sign_in(auth_token="not-the-token-" + verbal.auth_token[:4])
    assert wrong.status_code == 401
    assert "The account SID or the auth token is wrong" in wrong.text
    assert "not-the-token-" not in wrong.text
    assert verbal.account_sid in wrong.text  # kept, so only the token needs retyping
    assert 'aria-invalid="true"' in wrong.text
    empty = client.sign_in(auth_token=" ")
    assert empty.status_code == 400 and "Enter both" in empty.text
    assert client.get("/console/handsets").status_code == 303
    client.close()


def test_the_plivo_auth_id_signs_in_too(verbal: LiveVerbal) -> None:
    async def auth_id(runtime: Any) -> str:
        return (await runtime.directory.account(verbal.account_sid)).plivo_auth_id

    client = ConsoleClient(verbal)
    assert client.sign_in(account_sid=verbal.call(auth_id)).status_code == 303
    assert client.get("/console/handsets").status_code == 200
    client.close()


def test_login_without_its_csrf_cookie_is_refused(verbal: LiveVerbal) -> None:
    with httpx.Client(base_url=verbal.base_url) as http:
        response = http.post(
            "/console/login",
            data={
                "csrf_token": "made-up",
                "account_sid": verbal.account_sid,
                "auth_token": verbal.auth_token,
            },
        )
    assert response.status_code == 403
    assert "sent from another site" in response.text
    assert "verbal_console=" not in response.headers.get("set-cookie", "")


def test_a_tampered_session_cookie_signs_out(verbal: LiveVerbal, console: ConsoleClient) -> None:
    cookie = console.http.cookies["verbal_console"]
    console.http.cookies.set("verbal_console", cookie[:-2] + "xx", path="/console")
    assert console.get("/console/handsets").status_code == 303


def test_signing_out_ends_the_session(console: ConsoleClient) -> None:
    response = console.post("/console/logout")
    assert (response.status_code, response.headers["location"]) == (303, "/console/login")
    assert console.get("/console/handsets").status_code == 303


def test_posts_need_the_sessions_csrf_token(verbal: LiveVerbal, console: ConsoleClient) -> None:
    forged = console.http.post("/console/numbers", data={"number": "+15550007777"})
    assert forged.status_code == 403
    assert "Go back, reload the page and try again" in forged.text
    stolen = console.http.post(
        "/console/numbers", data={"number": "+15550007777", "csrf_token": "guess"}
    )
    assert stolen.status_code == 403
    assert "+15550007777" not in console.get("/console/numbers").text
    # htmx sends it as a header instead.
    header = console.http.post(
        "/console/numbers",
        data={"number": "+15550007777"},
        headers={"X-CSRF-Token": console.csrf_token},
    )
    assert header.status_code == 303


# -- every page ----------------------------------------------------------------------------


def test_every_page_labels_its_inputs(
    verbal: LiveVerbal, console: ConsoleClient, echo_app: Any
) -> None:
    sid = send(verbal, "labels", StatusCallback="http://127.0.0.1:9/none")
    with verbal.http() as http:
        http.post(f"/sandbox/handsets/{HANDSET}/messages", json={"to": APP_NUMBER, "body": "hi"})
    session_sid = _first_session(verbal)
    anonymous = httpx.get(f"{verbal.base_url}/console/login")
    pages = {
        "login": anonymous,
        "handsets": console.get("/console/handsets"),
        "handset": console.get(f"/console/handsets/{HANDSET}"),
        "messages": console.get("/console/messages"),
        "messages with errors": console.get("/console/messages?number=x&since=y&until=z"),
        "message": console.get(f"/console/messages/{sid}"),
        "sessions": console.get("/console/sessions"),
        "session": console.get(f"/console/sessions/{session_sid}"),
        "numbers": console.get("/console/numbers"),
        "numbers with an error": console.post("/console/numbers", {"number": "nope"}),
        "not found": console.get("/console/no-such-page"),
    }
    for name, page in pages.items():
        assert page.headers["content-type"].startswith("text/html"), name
        assert unlabelled_controls(page.text) == [], name
        assert "Skip to content" in page.text, name
        assert verbal.auth_token not in page.text, name


def _first_session(verbal: LiveVerbal) -> str:
    def find() -> str | None:
        with verbal.http() as http:
            sessions = http.get("/verbal/v1/sessions").json()["sessions"]
        return sessions[0]["sid"] if sessions else None

    return str(wait_until(find, timeout=10, what="a session"))


def test_errors_are_pages_in_words(verbal: LiveVerbal, console: ConsoleClient) -> None:
    cases = {
        "/console/no-such-page": (404, "There is no console page at /console/no-such-page"),
        "/console/messages/SM0000": (404, "This account has no message SM0000"),
        "/console/sessions/abc": (404, "This account has no session abc"),
        "/console/handsets/+442079460000": (404, "is not a sandbox handset"),
        "/console/messages?before=x": (400, "is not a message position"),
        "/console/static/secrets.txt": (404, "The console has no file secrets.txt"),
    }
    for path, (status, words) in cases.items():
        page = console.get(path)
        assert page.status_code == status, path
        assert words in page.text, path
        assert 'role="alert"' in page.text, path


def test_static_files_are_served_from_the_package(verbal: LiveVerbal) -> None:
    with httpx.Client(base_url=verbal.base_url) as http:
        htmx = http.get("/console/static/htmx.min.js")
        assert htmx.status_code == 200
        assert htmx.headers["content-type"].startswith("text/javascript")
        assert http.get("/console/static/htmx-ext-sse.min.js").status_code == 200
        assert (
            http.get("/console/static/console.css").headers["content-type"].startswith("text/css")
        )
        assert http.get("/console/static/..%2fweb.py").status_code != 200
    assert "/console" not in str(httpx.get(f"{verbal.base_url}/openapi.json").json()["paths"])


# -- handsets --------------------------------------------------------------------------------


def test_creating_a_handset_opens_a_new_number_or_the_one_typed(console: ConsoleClient) -> None:
    random = console.post("/console/handsets", {"number": ""})
    assert random.status_code == 303
    number = random.headers["location"].removeprefix("/console/handsets/")
    assert number.startswith("+1555") and len(number) == 12
    typed = console.post("/console/handsets", {"number": "(555) 000-4242"})
    assert typed.headers["location"] == "/console/handsets/+15550004242"
    refused = console.post("/console/handsets", {"number": "+442079460000"})
    assert refused.status_code == 400
    assert "is not a sandbox handset; handsets start with +1555" in refused.text


def test_a_handset_texts_through_the_sandbox_path(
    verbal: LiveVerbal, console: ConsoleClient
) -> None:
    response = console.post(
        f"/console/handsets/{HANDSET}/messages",
        {"to": APP_NUMBER, "body": "from the console", "media_urls": "https://example.com/a.png"},
    )
    assert (response.status_code, response.headers["location"]) == (
        303,
        f"/console/handsets/{HANDSET}",
    )
    with verbal.http() as http:
        listed = http.get(
            f"/2010-04-01/Accounts/{verbal.account_sid}/Messages.json", params={"From": HANDSET}
        ).json()["messages"]
    assert [(m["body"], m["direction"], m["status"]) for m in listed] == [
        ("from the console", "inbound", "received")
    ]
    page = console.get(f"/console/handsets/{HANDSET}").text
    assert "from the console" in page
    assert '<img src="https://example.com/a.png"' in page


@pytest.mark.parametrize(
    ("form", "words"),
    [
        ({"to": "+15550009999", "body": "x"}, "+15550009999 is not one of this account&#39;s"),
        ({"to": "nonsense", "body": "x"}, "is not a phone number"),
        ({"to": APP_NUMBER, "body": ""}, "Message body is required."),
        ({"to": APP_NUMBER, "body": "x" * 1601}, "exceeds the 1600 character limit"),
        (
            {"to": APP_NUMBER, "body": "x", "media_urls": "javascript:alert(1)"},
            "is not an http(s) URL",
        ),
    ],
)
def test_a_refused_handset_text_says_why_and_keeps_the_draft(
    console: ConsoleClient, form: dict[str, str], words: str
) -> None:
    response = console.post(f"/console/handsets/{HANDSET}/messages", form)
    assert response.status_code == 400
    assert words in response.text
    assert 'id="compose-error"' in response.text and 'aria-invalid="true"' in response.text
    if form["body"] == "x":
        assert ">x</textarea>" in response.text


def test_the_sandbox_api_refuses_the_same_way(verbal: LiveVerbal) -> None:
    with verbal.http() as http:
        response = http.post(
            f"/sandbox/handsets/{HANDSET}/messages",
            json={"to": APP_NUMBER, "body": "x", "media_urls": ["ftp://example.com/a.png"]},
        )
    assert (response.status_code, response.json()["code"]) == (400, 21620)


# -- the message log ------------------------------------------------------------------------


def test_the_log_filters_by_number_status_direction_and_date(
    verbal: LiveVerbal, console: ConsoleClient
) -> None:
    delivered = send(verbal, "to be delivered")
    other = send(verbal, "to another", to="+15550003000")
    wait_for_status(verbal, delivered, "delivered")
    wait_for_status(verbal, other, "delivered")
    with verbal.http() as http:
        http.post(f"/sandbox/handsets/{HANDSET}/messages", json={"to": APP_NUMBER, "body": "in"})

    def sids(**filters: str) -> set[str]:
        page = console.get("/console/messages", params=filters)
        assert page.status_code == 200, page.text
        return {sid for sid in (delivered, other) if sid in page.text} | (
            {"inbound"} if "<td>inbound</td>" in page.text else set()
        )

    assert sids() == {delivered, other, "inbound"}
    assert sids(number="+1 555 000 3000") == {other}
    assert sids(number=HANDSET) == {delivered, "inbound"}
    assert sids(direction="inbound") == {"inbound"}
    assert sids(status="delivered", direction="outbound-api") == {delivered, other}
    today = datetime.now(UTC).date()
    assert sids(since=today.isoformat(), until=today.isoformat()) == {delivered, other, "inbound"}
    assert sids(until=(today - timedelta(days=1)).isoformat()) == set()
    assert sids(since=(today + timedelta(days=1)).isoformat()) == set()


def test_log_filters_in_error_say_which_and_why(console: ConsoleClient) -> None:
    page = console.get(
        "/console/messages",
        params={"number": "abc", "status": "lost", "since": "2026-13-01", "until": "yesterday"},
    )
    assert page.status_code == 400
    assert "&#39;abc&#39; is not a phone number." in page.text
    assert "There is no status &#39;lost&#39;." in page.text
    assert "&#39;2026-13-01&#39; is not a date; write it as YYYY-MM-DD" in page.text
    assert 'aria-describedby="since-error"' in page.text
    backwards = console.get(
        "/console/messages", params={"since": "2026-11-22", "until": "2026-11-01"}
    )
    assert "The end date is before the start date." in backwards.text


def test_the_log_pages_back_through_older_messages(
    verbal: LiveVerbal, console: ConsoleClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from verbal.console import messages

    monkeypatch.setattr(messages, "PAGE_SIZE", 2)
    sids = [send(verbal, f"number {i}") for i in range(3)]
    first = console.get("/console/messages").text
    assert sids[2] in first and sids[1] in first and sids[0] not in first
    older = first.split('href="/console/messages?before=')[1].split('"')[0]
    second = console.get(f"/console/messages?before={older}").text
    assert sids[0] in second and sids[1] not in second
    assert "hx-trigger" not in second.split("<tbody")[1].split(">")[0]


def test_a_message_page_tells_its_whole_story(
    verbal: LiveVerbal, console: ConsoleClient, receiver: WebhookReceiver
) -> None:
    sid = send(verbal, "Story time 📖", StatusCallback=receiver.url())
    wait_for_status(verbal, sid, "delivered")
    # The third attempt is recorded just after its request arrives.
    page = wait_until(
        lambda: (
            page
            if (page := console.get(f"/console/messages/{sid}").text).count("Redeliver<span") == 3
            else None
        ),
        timeout=10,
        what="three callback attempts",
    )
    for words in (
        "<dt>Encoding</dt><dd>UCS-2</dd>",  # what the emoji needs
        "<dt>Segments</dt><dd>1</dd>",
        "Accepted by the sandbox",
        "outcome <strong>deliver</strong>",
        "status:queued, attempt 1: delivered",
        "status:delivered, attempt 1: delivered",
        "HTTP 200",
        "&#34;MessageStatus&#34;: &#34;delivered&#34;",
    ):
        assert words in page, words
    for status in ("queued", "sending", "sent", "delivered"):
        assert f'<span class="status status-{status}">{status}</span>' in page


def test_redeliver_sends_the_same_callback_again_signed(
    verbal: LiveVerbal, console: ConsoleClient, receiver: WebhookReceiver
) -> None:
    sid = send(verbal, "again", StatusCallback=receiver.url())
    receiver.wait_for(lambda requests: len(requests) == 3)
    page = wait_until(
        lambda: (
            page if "/redeliver" in (page := console.get(f"/console/messages/{sid}").text) else None
        ),
        timeout=10,
        what="a callback attempt",
    )
    attempt_id = page.split("/callbacks/")[1].split("/redeliver")[0]  # the "queued" callback
    response = console.post(f"/console/messages/{sid}/callbacks/{attempt_id}/redeliver")
    assert response.headers["location"] == f"/console/messages/{sid}?notice=redelivery"
    requests = receiver.wait_for(lambda requests: len(requests) == 4)
    first, again = requests[0], requests[3]
    assert again.params == first.params and again.params["MessageStatus"] == "queued"
    validator = RequestValidator(verbal.auth_token)
    assert validator.validate(again.url, again.params, again.headers["X-Twilio-Signature"])
    # A new delivery the developer asked for: receivers must not drop it as a repeat.
    token = "I-Twilio-Idempotency-Token"
    assert again.headers[token] != first.headers[token]
    shown = console.get(f"/console/messages/{sid}?notice=redelivery").text
    assert "The callback is queued for delivery again" in shown
    wait_until(
        lambda: console.get(f"/console/messages/{sid}").text.count("Redeliver<span") == 4,
        timeout=5,
        what="the redelivery's attempt on the page",
    )
    unknown = console.post(f"/console/messages/{sid}/callbacks/999999/redeliver")
    assert unknown.status_code == 404 and "has no callback attempt 999999" in unknown.text


# -- numbers and apps -----------------------------------------------------------------------


def test_numbers_and_apps_are_managed_in_words(verbal: LiveVerbal, console: ConsoleClient) -> None:
    assert console.post("/console/numbers", {"number": "+1 555 000 7000"}).status_code == 303
    duplicate = console.post("/console/numbers", {"number": "+15550007000"})
    assert "+15550007000 already belongs to an account." in duplicate.text
    created = console.post(
        "/console/apps",
        {"friendly_name": "Echo", "dialect": "plivo", "sms_url": "https://example.com/sms"},
    )
    assert created.headers["location"] == "/console/numbers?notice=app-created"
    page = console.get("/console/numbers?notice=app-created").text
    assert "The app was created." in page
    app_sid = page.split('id="app-AP')[1][:32]
    app_sid = "AP" + app_sid
    number_sid = page.split("/console/numbers/PN")[1][:32]
    routed = console.post(f"/console/numbers/PN{number_sid}/app", {"application": app_sid})
    assert routed.status_code == 303
    bad = console.post(
        f"/console/apps/{app_sid}",
        {"friendly_name": "Echo", "dialect": "rcml", "sms_url": "ftp://example.com/sms"},
    )
    assert bad.status_code == 400
    assert "The SMS URL &#39;ftp://example.com/sms&#39; is not an http:// or https://" in bad.text
    assert 'value="ftp://example.com/sms"' in bad.text  # the form keeps what was typed
    saved = console.post(
        f"/console/apps/{app_sid}",
        {
            "friendly_name": "Echo 2",
            "dialect": "rcml",
            "sms_url": "https://example.com/v2",
            "sms_method": "GET",
            "voice_url": "https://example.com/voice",
            "voice_method": "GET",
        },
    )
    assert saved.status_code == 303
    assert 'value="https://example.com/voice"' in console.get("/console/numbers").text
    bad_voice = console.post(
        f"/console/apps/{app_sid}",
        {"friendly_name": "Echo", "dialect": "rcml", "sms_url": "https://x/s", "voice_url": "x:y"},
    )
    assert "The voice URL &#39;x:y&#39; is not an http:// or https://" in bad_voice.text

    async def stored(runtime: Any) -> tuple[Any, ...]:
        app = await runtime.directory.application(app_sid)
        number = await runtime.directory.number("+15550001000")
        return (
            app.friendly_name,
            app.dialect,
            app.sms_method,
            app.voice_url,
            app.voice_method,
            number.application_id == app.id,
        )

    assert verbal.call(stored) == (
        "Echo 2",
        "rcml",
        "GET",
        "https://example.com/voice",
        "GET",
        True,
    )
    detached = console.post(f"/console/numbers/PN{number_sid}/app", {"application": ""})
    assert detached.status_code == 303
    foreign = console.post(f"/console/numbers/PN{number_sid}/app", {"application": "AP" + "0" * 32})
    assert foreign.status_code == 400 and "This account has no app AP000" in foreign.text


def test_a_test_message_is_sent_or_refused_in_words(
    verbal: LiveVerbal, console: ConsoleClient
) -> None:
    sent = console.post(
        "/console/test-message", {"from": APP_NUMBER, "to": HANDSET, "body": "testing"}
    )
    assert sent.status_code == 303
    sid = sent.headers["location"].removeprefix("/console/messages/")
    wait_for_status(verbal, sid, "delivered")
    refused = console.post(
        "/console/test-message", {"from": APP_NUMBER, "to": "+442079460000", "body": "x"}
    )
    assert refused.status_code == 400
    assert "is not reachable by any carrier" in refused.text
    assert 'id="test-error"' in refused.text


def test_opt_outs_are_listed_added_and_removed_in_words(console: ConsoleClient) -> None:
    assert "Nobody has opted out." in console.get("/console/numbers").text
    added = console.post("/console/numbers/optouts", {"number": APP_NUMBER, "recipient": HANDSET})
    assert added.headers["location"] == "/console/numbers?notice=optout-added"
    page = console.get("/console/numbers?notice=optout-added").text
    assert "The recipient was opted out" in page
    assert f"<td>{APP_NUMBER}</td>\n        <td>{HANDSET}</td>" in page
    refused = console.post(
        "/console/test-message", {"from": APP_NUMBER, "to": HANDSET, "body": "still there?"}
    )
    assert refused.status_code == 400
    assert "Attempt to send to unsubscribed recipient" in refused.text

    not_ours = console.post(
        "/console/numbers/optouts", {"number": "+15550009999", "recipient": HANDSET}
    )
    assert not_ours.status_code == 400
    assert "+15550009999 is not one of this account&#39;s numbers." in not_ours.text
    assert 'id="optout-error"' in not_ours.text
    garbled = console.post("/console/numbers/optouts", {"number": APP_NUMBER, "recipient": "x"})
    assert garbled.status_code == 400 and "is not a phone number" in garbled.text

    removed = console.post(
        "/console/numbers/optouts/remove", {"number": APP_NUMBER, "recipient": HANDSET}
    )
    assert removed.headers["location"] == "/console/numbers?notice=optout-removed"
    assert "Nobody has opted out." in console.get("/console/numbers").text
    sent = console.post("/console/test-message", {"from": APP_NUMBER, "to": HANDSET, "body": "hi"})
    assert sent.status_code == 303


def test_the_replies_to_keywords_are_changed_switched_off_and_reset(
    verbal: LiveVerbal, console: ConsoleClient
) -> None:
    page = console.get("/console/numbers").text
    assert unlabelled_controls(page) == []
    assert '<option value="default" selected>the default reply</option>' in page
    assert str(escape(DEFAULT_REPLIES[Keyword.OPT_OUT])) in page

    form = {
        "opt_out-mode": "custom",
        "opt_out-text": "Acme: unsubscribed. START to return.",
        "opt_in-mode": "off",
        "opt_in-text": "",
        "help-mode": "default",
        "help-text": "ignored while the default is chosen",
    }
    saved = console.post("/console/numbers/optouts/replies", form)
    assert saved.headers["location"] == "/console/numbers?notice=replies-saved"
    with verbal.http() as http:
        replies = http.get("/verbal/v1/opt-outs/replies").json()
    assert replies == {
        "opt_out": {"mode": "custom", "text": "Acme: unsubscribed. START to return."},
        "opt_in": {"mode": "off", "text": None},
        "help": {"mode": "default", "text": DEFAULT_REPLIES[Keyword.HELP]},
    }
    page = console.get("/console/numbers?notice=replies-saved").text
    assert "The replies to STOP, START and HELP were saved." in page
    assert '<option value="off" selected>no reply</option>' in page

    # A custom reply needs its text; the form comes back with what was typed.
    refused = console.post(
        "/console/numbers/optouts/replies", {**form, "help-mode": "custom", "help-text": " "}
    )
    assert refused.status_code == 400
    assert "Write the reply to HELP, or choose no reply." in refused.text
    assert 'id="replies-error"' in refused.text

    reset = {**form, "opt_out-mode": "default", "opt_in-mode": "default"}
    console.post("/console/numbers/optouts/replies", reset)
    with verbal.http() as http:
        replies = http.get("/verbal/v1/opt-outs/replies").json()
    assert {kind: r["mode"] for kind, r in replies.items()} == {
        "opt_out": "default",
        "opt_in": "default",
        "help": "default",
    }


def test_an_opt_out_of_a_messaging_service_is_listed_and_lifted_by_its_sid(
    verbal: LiveVerbal, console: ConsoleClient
) -> None:
    client = verbal.twilio()
    client.messaging.base_url = verbal.base_url
    service = client.messaging.v1.services.create(friendly_name="Console")
    [number] = client.incoming_phone_numbers.list(phone_number=APP_NUMBER)
    client.messaging.v1.services(service.sid).phone_numbers.create(phone_number_sid=number.sid)

    # Naming a pool number opts the recipient out of the service.
    console.post("/console/numbers/optouts", {"number": APP_NUMBER, "recipient": HANDSET})
    page = console.get("/console/numbers").text
    assert f"<td>{service.sid}</td>\n        <td>{HANDSET}</td>" in page
    assert f'name="number" value="{service.sid}"' in page
    removed = console.post(
        "/console/numbers/optouts/remove", {"number": service.sid, "recipient": HANDSET}
    )
    assert removed.headers["location"] == "/console/numbers?notice=optout-removed"
    assert "Nobody has opted out." in console.get("/console/numbers").text
    stranger = console.post(
        "/console/numbers/optouts", {"number": "MG" + "0" * 32, "recipient": HANDSET}
    )
    assert stranger.status_code == 400
    assert "is not one of this account&#39;s services." in stranger.text


# -- live updates ---------------------------------------------------------------------------


def read_events(response: httpx.Response, until: float) -> tuple[list[tuple[str, str, str]], bool]:
    """(id, event, data) of each SSE event, read until the stream ends or `until`; and
    whether the stream ended by itself."""
    events: list[tuple[str, str, str]] = []
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if line == "":
            if "event" in fields:
                events.append((fields.get("id", ""), fields["event"], fields.get("data", "")))
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value
        if time.monotonic() > until:
            return events, False
    return events, True


def test_the_live_stream_reports_changes_since_its_cursor(
    verbal: LiveVerbal, console: ConsoleClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live, "STREAM_SECONDS", 1.5)
    page = console.get(f"/console/handsets/{HANDSET}").text
    url = page.split('sse-connect="')[1].split('"')[0].replace("&amp;", "&")
    sid = send(verbal, "live")
    other = send(verbal, "elsewhere", to="+15550003000")
    wait_for_status(verbal, sid, "delivered")
    started = time.monotonic()
    with console.http.stream("GET", url) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events, ended = read_events(response, until=started + 30)
    # The stream ended by itself, so a server can stop while a console tab is open.
    assert ended
    assert events and {e[1] for e in events} == {"message"}
    assert any(sid in data for _, _, data in events)
    assert not any(other in data for _, _, data in events)
    # Reconnecting from the last id sent reports nothing twice.
    last_id = events[-1][0]
    with console.http.stream("GET", url, headers={"Last-Event-ID": last_id}) as response:
        assert read_events(response, until=time.monotonic() + 30) == ([], True)


def test_the_live_stream_needs_a_cursor(console: ConsoleClient) -> None:
    response = console.get("/console/live?after=bogus")
    assert response.status_code == 400
    assert "needs the position to start from" in response.text


# A Tropo app's JSON and an RCML app's XML nested far deeper than the engines allow (they
# refuse them, 7004 and 12100) and than Python's recursion limit.
DEEP_DOCUMENTS = {
    "tropo": ("application/json", '{"tropo": ' + "[" * 50_000 + "]" * 50_000 + "}"),
    "rcml": ("text/xml", "<Response>" + "<a>" * 5_000 + "</a>" * 5_000 + "</Response>"),
}


@pytest.mark.parametrize("dialect", DEEP_DOCUMENTS)
def test_a_session_page_shows_a_document_nested_beyond_any_limit(
    verbal: LiveVerbal, console: ConsoleClient, app_server: Any, dialect: str
) -> None:
    content_type, document = DEEP_DOCUMENTS[dialect]
    app_server.routes["/deep"] = lambda hit: (200, content_type, document)
    verbal.add_app(dialect, app_server.url("/deep"), APP_NUMBER)
    with verbal.http() as http:
        sent = http.post(
            f"/sandbox/handsets/{HANDSET}/messages", json={"to": APP_NUMBER, "body": "hi"}
        )
        assert sent.status_code == 201, sent.text
    session_sid = _first_session(verbal)
    wait_until(
        lambda: verbal.session_log(session_sid)["state"] == "ended",
        what="the session to end on the refused document",
    )
    for path in (f"/console/sessions/{session_sid}", f"/console/sessions/{session_sid}/story"):
        page = console.get(path)
        assert page.status_code == 200, (path, page.text[-2000:])
        # Shown as it came: the stored document, escaped, not re-indented.
        assert str(escape(document[:40])) in page.text
