"""The console in a real headless Chromium: sign in, handsets, live updates, every main page.

Playwright drives Debian's `chromium` (/usr/bin/chromium); nothing is downloaded at run time.
The tests skip when it is not installed. They also take the screenshots the README shows,
into docs/screenshots/ only with VERBAL_REFRESH_SCREENSHOTS=1 (tests/console/conftest.py).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.conftest import AppHit, AppServer, LiveVerbal, WebhookReceiver
from tests.console.conftest import APP_NUMBER, CHROMIUM, echo

pytestmark = [
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason=f"no Chromium at {CHROMIUM}: install Debian's package (apt-get install -y chromium)",
    ),
    # One worker runs them all, so Chromium starts once (the `browser` fixture).
    pytest.mark.xdist_group("chromium"),
]

# Longest wait for anything a page shows; things normally take well under a second.
WAIT_MS = 8000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, verbal: LiveVerbal) -> Iterator[Page]:
    # Closed before the server stops (it depends on `verbal`), which ends its live streams.
    context = browser.new_context(
        base_url=verbal.base_url, viewport={"width": 1280, "height": 900}, locale="en-US"
    )
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    expect.set_options(timeout=WAIT_MS)
    yield page
    context.close()


def screenshot(page: Page, path: Path) -> None:
    page.screenshot(path=path, full_page=True)


def sign_in(page: Page, verbal: LiveVerbal, *, shot: Path | None = None) -> None:
    page.goto("/console")
    expect(page).to_have_url(re.compile(r"/console/login\?next="))
    if shot is not None:
        screenshot(page, shot)
    page.get_by_label("Account SID").fill(verbal.account_sid)
    page.get_by_label("Auth token").fill(verbal.auth_token)
    page.get_by_label("Auth token").press("Enter")
    expect(page).to_have_url(re.compile(r"/console/handsets$"))


def send(verbal: LiveVerbal, to: str, body: str, **extra: str) -> str:
    """A message sent through the Messages API, as an app's code would send it."""
    with verbal.http() as http:
        response = http.post(
            f"/2010-04-01/Accounts/{verbal.account_sid}/Messages.json",
            data={"To": to, "From": APP_NUMBER, "Body": body, **extra},
        )
    assert response.status_code == 201, response.text
    return str(response.json()["sid"])


def mark_page(page: Page) -> None:
    """Tag the loaded document; a reload would lose the tag."""
    page.evaluate("window.verbalNotReloaded = true")


def assert_not_reloaded(page: Page) -> None:
    assert page.evaluate("window.verbalNotReloaded === true"), "the page was reloaded"


def slow_echo(hit: AppHit) -> tuple[int, str, str]:
    # Long enough that the page has settled after its form post before the answer exists,
    # so the answer can only arrive through a live update.
    time.sleep(0.6)
    return echo(hit)


def test_a_handset_conversation_updates_live(
    page: Page,
    verbal: LiveVerbal,
    app_server: AppServer,
    receiver: WebhookReceiver,
    screenshots: Path,
) -> None:
    app_server.routes["/sms"] = slow_echo
    verbal.add_app("rcml", app_server.url("/sms"), APP_NUMBER)
    sign_in(page, verbal, shot=screenshots / "login.png")

    page.get_by_role("button", name="Create handset").click()
    expect(page).to_have_url(re.compile(r"/console/handsets/\+1555\d{7}$"))
    handset = page.url.rsplit("/", 1)[1]
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Handset {handset}")
    mark_page(page)

    sid = send(verbal, handset, "Hello from the API", StatusCallback=receiver.url())
    bubble = page.locator(f'li[data-sid="{sid}"]')
    expect(bubble).to_contain_text("Hello from the API")
    expect(bubble.locator(".status")).to_have_text("delivered")
    assert_not_reloaded(page)

    page.get_by_label("Message", exact=True).fill("Hi back")
    page.get_by_role("button", name="Send from handset").click()
    expect(page.locator("li.from-handset")).to_contain_text("Hi back")
    mark_page(page)
    answer = page.locator("li.to-handset").filter(has_text="You said: Hi back")
    expect(answer).to_be_visible()
    expect(answer.locator(".status")).to_have_text("delivered")
    assert_not_reloaded(page)
    screenshot(page, screenshots / "handset.png")


def test_the_log_a_message_a_session_and_the_numbers_page(
    page: Page, verbal: LiveVerbal, echo_app: Any, receiver: WebhookReceiver, screenshots: Path
) -> None:
    handset = "+15550002000"
    sid = send(verbal, handset, "Your code is 123456", StatusCallback=receiver.url())
    receiver.wait_for(lambda requests: len(requests) == 3)
    with verbal.http() as http:
        http.post(f"/sandbox/handsets/{handset}/messages", json={"to": APP_NUMBER, "body": "Hi"})
    sign_in(page, verbal)

    page.get_by_role("link", name="Messages").click()
    expect(page.locator("#rows")).to_contain_text("You said: Hi")
    screenshot(page, screenshots / "messages.png")
    page.get_by_label("Status").select_option("delivered")
    page.get_by_label("Direction").select_option("outbound-api")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#rows")).to_contain_text(sid)
    expect(page.locator("#rows")).not_to_contain_text("You said")

    page.get_by_role("link", name=sid).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Message {sid}")
    expect(page.locator("article.attempt")).to_have_count(3)
    screenshot(page, screenshots / "message.png")
    page.get_by_role("button", name="Redeliver status:queued attempt 1").click()
    expect(page.get_by_role("status")).to_contain_text("queued for delivery again")
    mark_page(page)
    # The redelivered attempt shows up by itself once the receiver has answered.
    expect(page.locator("article.attempt")).to_have_count(4)
    assert_not_reloaded(page)

    page.get_by_role("link", name="Sessions").click()
    page.locator("#rows a").first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Session")
    document = page.locator(".kind-document pre").first
    expect(document).to_contain_text("<Message>You said: Hi</Message>")
    expect(page.locator(".kind-ended")).to_contain_text("the document ended")
    screenshot(page, screenshots / "session.png")

    page.get_by_role("link", name="Numbers and apps").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Numbers and apps")
    screenshot(page, screenshots / "numbers.png")


def test_the_console_works_from_the_keyboard(page: Page, verbal: LiveVerbal) -> None:
    page.goto("/console/login")
    # The SID field has the focus on arrival; Tab and Enter do the rest.
    page.keyboard.type(verbal.account_sid)
    page.keyboard.press("Tab")
    page.keyboard.type(verbal.auth_token)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/console/handsets$"))

    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none", "keyboard focus must be visible"
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Handset number")).to_be_focused()
    page.keyboard.type("+15550004444")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/console/handsets/\+15550004444$"))

    # The message box has the focus; Tab past the picture URLs to the button.
    page.keyboard.type("typed, not clicked")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Send from handset")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("li.from-handset")).to_contain_text("typed, not clicked")


@pytest.mark.parametrize("path", ["/console/messages?since=someday", "/console/nowhere"])
def test_errors_show_in_words(page: Page, verbal: LiveVerbal, path: str) -> None:
    sign_in(page, verbal)
    page.goto(path)
    expect(page.get_by_role("alert")).to_have_text(
        re.compile(r"is not a date|There is no console page")
    )
