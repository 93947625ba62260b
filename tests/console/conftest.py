"""Fixtures the console tests share: a signed-in browser-less client, an echo app, Chromium."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from twilio.twiml.messaging_response import MessagingResponse

from tests.conftest import AppHit, AppServer, LiveVerbal

APP_NUMBER = "+15550001000"
CHROMIUM = Path("/usr/bin/chromium")
# The README's pictures: the browser tests write them there only when asked to refresh them
# (VERBAL_REFRESH_SCREENSHOTS=1), and otherwise into a temporary folder.
# Read at import: the tests themselves run without VERBAL_* variables (`clean_environ`).
README_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
REFRESH_SCREENSHOTS = os.environ.get("VERBAL_REFRESH_SCREENSHOTS") == "1"


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if REFRESH_SCREENSHOTS:
        README_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return README_SCREENSHOTS
    return tmp_path_factory.mktemp("screenshots")


def csrf_token_in(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no CSRF token"
    return found.group(1)


class ConsoleClient:
    """An httpx client that signs in through the login form, as a browser would."""

    def __init__(self, verbal: LiveVerbal) -> None:
        self.verbal = verbal
        self.http = httpx.Client(base_url=verbal.base_url, timeout=10)
        self.csrf_token = ""

    def sign_in(
        self, account_sid: str | None = None, auth_token: str | None = None
    ) -> httpx.Response:
        form = self.http.get("/console/login")
        response = self.http.post(
            "/console/login",
            data={
                "csrf_token": csrf_token_in(form.text),
                "account_sid": account_sid or self.verbal.account_sid,
                "auth_token": auth_token or self.verbal.auth_token,
                "next": "",
            },
        )
        if response.status_code == 303:
            self.csrf_token = csrf_token_in(self.http.get("/console/numbers").text)
        return response

    def get(self, path: str, **options: Any) -> httpx.Response:
        return self.http.get(path, **options)

    def post(self, path: str, data: dict[str, str] | None = None) -> httpx.Response:
        """A form POST carrying the session's CSRF token."""
        return self.http.post(path, data={"csrf_token": self.csrf_token, **(data or {})})

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def console(verbal: LiveVerbal) -> Iterator[ConsoleClient]:
    client = ConsoleClient(verbal)
    assert client.sign_in().status_code == 303
    yield client
    client.close()


def echo(hit: AppHit) -> tuple[int, str, str]:
    """A TwiML app, as a Flask view would write it: answers every text with what it said."""
    response = MessagingResponse()
    response.message(f"You said: {hit.form.get('Body', '')}")
    return 200, "text/xml", response.to_xml()


@pytest.fixture
def echo_app(verbal: LiveVerbal, app_server: AppServer) -> Any:
    """A TwiML echo app attached to the account's number."""
    app_server.routes["/sms"] = echo
    return verbal.add_app("rcml", app_server.url("/sms"), APP_NUMBER)


# -- page structure --------------------------------------------------------------------------


class FormControls(HTMLParser):
    """Collects a page's form controls, its labels and its ids."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: list[dict[str, str | None]] = []
        self.label_targets: set[str] = set()
        self.ids: list[str] = []
        self.open_labels = 0
        self.positive_tabindex: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if attributes.get("id"):
            self.ids.append(str(attributes["id"]))
        if int(attributes.get("tabindex") or 0) > 0:
            self.positive_tabindex.append(tag)
        if tag == "label":
            self.open_labels += 1
            if attributes.get("for"):
                self.label_targets.add(str(attributes["for"]))
        elif tag in ("input", "select", "textarea") and attributes.get("type") not in (
            "hidden",
            "submit",
            "button",
        ):
            self.controls.append({**attributes, "tag": tag, "wrapped": str(self.open_labels)})

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self.open_labels -= 1


def unlabelled_controls(html: str) -> list[str]:
    """Form controls a screen reader could not name, and other structural faults."""
    page = FormControls()
    page.feed(html)
    faults = [
        f"{control['tag']} name={control.get('name')!r} has no label"
        for control in page.controls
        if control.get("wrapped") == "0"
        and control.get("id") not in page.label_targets
        and not control.get("aria-label")
    ]
    duplicates = {i for i in page.ids if page.ids.count(i) > 1}
    faults += [f"id {i!r} is used twice" for i in sorted(duplicates)]
    faults += [f"{tag} has a positive tabindex" for tag in page.positive_tabindex]
    return faults
