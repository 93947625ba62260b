"""Conversation cookies end to end: a survey app that keeps its place only in a cookie.

The app is a real HTTP server on loopback that reads and sets cookies as a web framework's
session does; sandbox handsets text it. Each text starts a new session, so the only thing
that can carry the app's place from one text to the next is the cookie Verbal keeps for the
conversation (account, app number, handset) and sends back, as Twilio does.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape, quoteattr

import pytest

from tests.conftest import LiveVerbal
from tests.engine.helpers import text_app, wait_for_texts

APP_NUMBER = "+15550001000"
HANDSET = "+15550002000"
OTHER_HANDSET = "+15550003000"
QUESTIONS = (
    "Q1: your favourite colour?",
    "Q2: your favourite fruit?",
    "Q3: your favourite number?",
)


@dataclass(frozen=True)
class Visit:
    handset: str
    text: str
    cookie: str | None  # the Cookie header the request carried


class SurveyApp:
    """Three questions; the answers so far live in a `survey` cookie (`q.red.pear`), and
    nowhere else. A finished survey deletes its cookie, as a logout does."""

    def __init__(self, dialect: str) -> None:
        self.dialect = dialect
        self.visits: list[Visit] = []
        self._lock = threading.Lock()
        app = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                handset, text, app_number = app.read(body)
                header = self.headers.get("Cookie")
                with app._lock:
                    app.visits.append(Visit(handset, text, header))
                jar: SimpleCookie = SimpleCookie(header or "")
                answers = jar["survey"].value.split(".")[1:] if "survey" in jar else None
                if answers is None:
                    reply, cookie = QUESTIONS[0], "survey=q; Path=/; HttpOnly"
                else:
                    answers.append(text.strip().lower())
                    if len(answers) < len(QUESTIONS):
                        reply = QUESTIONS[len(answers)]
                        cookie = f"survey={'.'.join(['q', *answers])}; Path=/; HttpOnly"
                    else:
                        reply = "Thanks: " + ", ".join(answers)
                        cookie = "survey=; Path=/; Max-Age=0"
                content_type, document = app.document(reply, app_number, handset)
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Set-Cookie", cookie)
                self.send_header("Content-Length", str(len(document)))
                self.end_headers()
                self.wfile.write(document)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/survey"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def read(self, body: bytes) -> tuple[str, str, str]:
        """(handset, text, app number) from the dialect's request."""
        if self.dialect == "tropo":
            session = json.loads(body)["session"]
            # Tropo gives numbers as digits, without the `+`.
            handset, app_number = session["from"]["id"], session["to"]["id"]
            return f"+{handset}", session["initialText"], f"+{app_number}"
        form = dict(parse_qsl(body.decode(), keep_blank_values=True))
        text = form["Text"] if self.dialect == "plivo" else form["Body"]
        return form["From"], text, form["To"]

    def document(self, reply: str, app_number: str, handset: str) -> tuple[str, bytes]:
        if self.dialect == "tropo":
            return "application/json", json.dumps({"tropo": [{"say": [{"value": reply}]}]}).encode()
        if self.dialect == "plivo":
            message = (
                f"<Message src={quoteattr(app_number)} dst={quoteattr(handset)} "
                f'type="sms">{escape(reply)}</Message>'
            )
        else:
            message = f"<Message>{escape(reply)}</Message>"
        return "text/xml", f"<Response>{message}</Response>".encode()

    def cookies_from(self, handset: str) -> list[str | None]:
        with self._lock:
            return [visit.cookie for visit in self.visits if visit.handset == handset]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def survey_app() -> Iterator[Callable[[str], SurveyApp]]:
    apps: list[SurveyApp] = []

    def make(dialect: str) -> SurveyApp:
        apps.append(SurveyApp(dialect))
        return apps[-1]

    yield make
    for app in apps:
        app.close()


def answer(verbal: LiveVerbal, handset: str, text: str, texts_before: int) -> str:
    """The handset texts the app; the app's reply. (No opt-out keyword: START, say, would
    first bring the number's confirmation.)"""
    text_app(verbal, handset, text)
    return str(wait_for_texts(verbal, handset, texts_before + 1)[texts_before]["body"])


@pytest.mark.parametrize("dialect", ["rcml", "plivo", "tropo"])
def test_a_survey_keeping_its_place_in_a_cookie_runs_to_its_end_per_handset(
    dialect: str, verbal: LiveVerbal, survey_app: Callable[[str], SurveyApp]
) -> None:
    app = survey_app(dialect)
    verbal.add_app(dialect, app.url, APP_NUMBER)

    assert answer(verbal, HANDSET, "hello", 0) == QUESTIONS[0]
    # Another handset texting the same app starts its own survey: the first handset's
    # cookie is not sent with its requests.
    assert answer(verbal, OTHER_HANDSET, "hello", 0) == QUESTIONS[0]
    assert answer(verbal, HANDSET, "red", 1) == QUESTIONS[1]
    assert answer(verbal, HANDSET, "pear", 2) == QUESTIONS[2]
    assert answer(verbal, OTHER_HANDSET, "blue", 1) == QUESTIONS[1]
    assert answer(verbal, HANDSET, "seven", 3) == "Thanks: red, pear, seven"
    # The app deleted its cookie at the end: the next text starts over.
    assert answer(verbal, HANDSET, "again", 4) == QUESTIONS[0]

    assert app.cookies_from(HANDSET) == [
        None,
        "survey=q",
        "survey=q.red",
        "survey=q.red.pear",
        None,
    ]
    assert app.cookies_from(OTHER_HANDSET) == [None, "survey=q"]


def test_cookies_are_not_shared_across_numbers_or_accounts(
    verbal: LiveVerbal, survey_app: Callable[[str], SurveyApp]
) -> None:
    """One app on two numbers: each number's conversation with the handset has its own
    cookies. (Accounts own their numbers, so a conversation never spans two accounts; the
    store keys by account as well, tests/webhooks/test_cookies.py.)"""
    app = survey_app("rcml")
    second_number = "+15550001001"
    verbal.add_app("rcml", app.url, APP_NUMBER, second_number)

    assert answer(verbal, HANDSET, "hello", 0) == QUESTIONS[0]
    with verbal.http() as http:
        sent = http.post(
            f"/sandbox/handsets/{HANDSET}/messages", json={"to": second_number, "body": "hello"}
        )
        assert sent.status_code == 201
    texts = wait_for_texts(verbal, HANDSET, 2)
    assert texts[1]["body"] == QUESTIONS[0] and texts[1]["from"] == second_number
    assert answer(verbal, HANDSET, "red", 2) == QUESTIONS[1]  # the first number's survey goes on
    assert app.cookies_from(HANDSET) == [None, None, "survey=q"]


def test_a_restart_keeps_the_conversation_cookies(
    make_verbal: Callable[..., LiveVerbal],
    sqlite_url: str,
    survey_app: Callable[[str], SurveyApp],
) -> None:
    app = survey_app("rcml")
    first = make_verbal()
    first.add_app("rcml", app.url, APP_NUMBER)
    assert answer(first, HANDSET, "hello", 0) == QUESTIONS[0]
    assert answer(first, HANDSET, "red", 1) == QUESTIONS[1]
    first.stop()

    again = make_verbal(
        sqlite_url,
        bootstrap_account_sid=first.account_sid,
        bootstrap_auth_token=first.auth_token,
    )
    assert answer(again, HANDSET, "pear", 2) == QUESTIONS[2]
    assert app.cookies_from(HANDSET)[-1] == "survey=q.red"
