"""Bad apps on Verbal: every way an app can fail is a readable error in its session log.

Malformed JSON or XML, unknown verbs, hostile XML (entity expansion, external entities),
documents over the size limits, redirect loops (HTTP and in-document), apps that do not answer
in time or answer with an error status or the wrong content type: each ends the session with
the dialect's error code and a message an app's developer can act on, and the server keeps
serving. Everything runs end to end: a sandbox handset texts the app's number (or a Tropo
token launches it), the app is a real HTTP server on loopback, the log is read over the API.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.conftest import (
    POSTGRES_ADMIN_DSN,
    AppHit,
    AppServer,
    LiveVerbal,
    _postgres_available,
    fast_settings,
    wait_until,
)
from verbal.dialects import plivo, rcml, tropo
from verbal.dialects.types import ErrorCodes
from verbal.engine.fetch import MAX_DOCUMENT_BYTES, MAX_REDIRECTS
from verbal.engine.interpreter import MAX_DOCUMENTS
from verbal.store.models import Job, Session

HANDSET = "+15550002000"

DIALECTS = ("tropo", "rcml", "plivo")
XML_DIALECTS = ("rcml", "plivo")
ERRORS: dict[str, ErrorCodes] = {
    "tropo": tropo.ERRORS,
    "rcml": rcml.ERRORS,
    "plivo": plivo.ERRORS,
}
CONTENT_TYPES = {
    "tropo": "application/json",
    "rcml": "text/xml",
    "plivo": "application/xml",
}

Route = Callable[[AppHit], tuple[int, str, bytes | str]]

# -- documents in each dialect's syntax --------------------------------------------------------


def document(dialect: str, body: str | bytes) -> Route:
    """A route answering `body` with the dialect's own content type."""
    return lambda hit: (200, CONTENT_TYPES[dialect], body)


def reply(dialect: str, text: str) -> str:
    """A document that texts `text` back to whoever started the session."""
    if dialect == "tropo":
        return json.dumps({"tropo": [{"say": {"value": text}}]})
    return f"<Response><Message>{text}</Message></Response>"


def continue_at(dialect: str, url: str) -> str:
    """A document whose only effect is to fetch the next document from `url`."""
    if dialect == "tropo":
        return json.dumps({"tropo": [{"on": {"event": "continue", "next": url}}]})
    return f"<Response><Redirect>{url}</Redirect></Response>"


MALFORMED = {
    "tropo": '{"tropo": [{"say": {"value": "hi"}}',  # the closing ] and } are missing
    "rcml": "<Response><Message>hi</Response>",
    "plivo": "<Response><Message>hi</Response>",
}
MALFORMED_WORDS = {
    "tropo": ("not valid JSON",),
    "rcml": ("malformed XML", "mismatched tag"),
    "plivo": ("not well-formed XML", "mismatched tag"),
}

UNKNOWN_VERB = {
    "tropo": json.dumps({"tropo": [{"sya": {"value": "hi"}}]}),
    "rcml": "<Response><Shout>hi</Shout></Response>",
    "plivo": "<Response><Shout>hi</Shout></Response>",
}
UNKNOWN_VERB_CODES = {
    "tropo": tropo.ERRORS.parse_failed,
    "rcml": rcml.SCHEMA_INVALID,
    "plivo": plivo.ERRORS.parse_failed,
}
UNKNOWN_VERB_WORDS = {
    "tropo": ("'sya'", "not a Tropo verb", "did you mean 'say'"),
    "rcml": ("<Shout>", "not an RCML/TwiML verb"),
    "plivo": ("unknown element <Shout>",),
}

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE Response [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
  <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
  <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
  <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
  <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
  <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<Response><Message>&lol9;</Message></Response>"""


def external_entity(url: str) -> str:
    return f"""<?xml version="1.0"?>
<!DOCTYPE Response [<!ENTITY xxe SYSTEM "{url}">]>
<Response><Message>&xxe;</Message></Response>"""


def external_parameter_entity(url: str) -> str:
    return f"""<?xml version="1.0"?>
<!DOCTYPE Response [<!ENTITY % xxe SYSTEM "{url}"> %xxe;]>
<Response><Message>hi</Message></Response>"""


def oversized(dialect: str, size: int) -> str:
    """A well-formed document of at least `size` bytes that would text one huge body."""
    filler = "x" * size
    if dialect == "tropo":
        return json.dumps({"tropo": [{"say": {"value": filler}}]})
    return f"<Response><Message>{filler}</Message></Response>"


# -- driving the server -------------------------------------------------------------------------


def start_server(database_url: str, **overrides: Any) -> LiveVerbal:
    with pytest.MonkeyPatch.context() as patch:  # as conftest's clean_environ does per test
        for name in list(os.environ):
            if name.startswith("VERBAL_") and name != "VERBAL_TEST_POSTGRES":
                patch.delenv(name)
        server = LiveVerbal(fast_settings(database_url, **overrides))
        server.start()
    return server


@pytest.fixture(scope="module")
def shared_verbal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveVerbal]:
    """One server for the module: starting one per test would cost more than the tests.

    Tests stay apart by numbers: each gets its own app number and its own good app's number.
    """
    database = tmp_path_factory.mktemp("bad-apps") / "verbal.db"
    server = start_server(f"sqlite+aiosqlite:///{database}")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def impatient_verbal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveVerbal]:
    """A server that waits 1 s for an app's answer (the default is 15 s)."""
    database = tmp_path_factory.mktemp("bad-apps-impatient") / "verbal.db"
    server = start_server(f"sqlite+aiosqlite:///{database}", app_timeout_seconds=1.0)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def postgres_verbal() -> Iterator[LiveVerbal]:
    """One server on a throw-away PostgreSQL database, which enforces column lengths."""
    if not _postgres_available():
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    import asyncpg

    name = f"verbal_test_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        connection = await asyncpg.connect(POSTGRES_ADMIN_DSN)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        server = start_server(f"{POSTGRES_ADMIN_DSN.rsplit('/', 1)[0]}/{name}")
        yield server
        server.stop()
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


_serial = itertools.count(1000)


@dataclass
class Bench:
    """A test's server and app server, with numbers and paths no other test uses."""

    verbal: LiveVerbal
    app_server: AppServer
    app_number: str = field(init=False)
    good_number: str = field(init=False)
    prefix: str = field(init=False)
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        serial = next(_serial)
        self.app_number = f"+1555001{serial:04d}"
        self.good_number = f"+1555003{serial:04d}"
        self.prefix = f"/t{serial}"
        self.http = self.verbal.http()

    def close(self) -> None:
        self.http.close()

    def path(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    def url(self, name: str) -> str:
        return self.app_server.url(self.path(name))

    def route(self, name: str, route: Route) -> None:
        self.app_server.routes[self.path(name)] = route

    def hits(self, name: str) -> list[AppHit]:
        return self.app_server.hits_for(self.path(name))

    def text(self, to: str, body: str = "hi") -> None:
        response = self.http.post(
            f"/sandbox/handsets/{HANDSET}/messages", json={"to": to, "body": body}
        )
        assert response.status_code == 201, response.text

    def inbox(self, sender: str | None = None) -> list[dict[str, Any]]:
        """The handset's messages (from `sender`, or from any number)."""
        messages = self.http.get(f"/sandbox/handsets/{HANDSET}/inbox").json()["messages"]
        return [m for m in messages if sender is None or m["from"] == sender]

    def session_log(self, sid: str) -> dict[str, Any]:
        response = self.http.get(f"/verbal/v1/sessions/{sid}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def sessions(self, application_id: int) -> list[tuple[str, str, list[str]]]:
        """The app's sessions: SID, state, and errors the engine raised running its steps.

        Those errors are the dispatcher's record of a step that crashed (and will be retried):
        a bad app must end its session, never crash the engine.
        """

        async def query(runtime: Any) -> list[tuple[str, str, list[str]]]:
            async with runtime.sessions() as db:
                rows = (
                    await db.execute(
                        select(Session.sid, Session.state)
                        .where(Session.application_id == application_id)
                        .order_by(Session.id)
                    )
                ).all()
                jobs = list(await db.scalars(select(Job).where(Job.last_error.is_not(None))))
            return [
                (
                    sid,
                    state,
                    [
                        f"{job.kind} attempt {job.attempts}: {job.last_error}"
                        for job in jobs
                        if job.payload.get("session_sid") == sid
                    ],
                )
                for sid, state in rows
            ]

        return list(self.verbal.call(query))

    def ended_log(self, application: Any, timeout: float = 15.0) -> dict[str, Any]:
        """The log of the app's one session, once it has ended; fails fast on a crash."""

        def settled() -> tuple[str, str, list[str]] | None:
            sessions = self.sessions(application.id)
            assert len(sessions) <= 1, sessions
            if sessions and (sessions[0][1] == "ended" or sessions[0][2]):
                return sessions[0]
            return None

        try:
            sid, _, crashes = wait_until(settled, timeout=timeout, what="the session to end")
        except AssertionError:
            sids = [sid for sid, _, _ in self.sessions(application.id)]
            raise AssertionError(
                json.dumps([self.session_log(sid) for sid in sids], indent=1)
            ) from None
        # A bad app is the app's problem: the engine itself never raised over it.
        assert not crashes, f"the engine crashed on session {sid}: {crashes}"
        return self.session_log(sid)

    def run_bad_app(self, dialect: str, route: Route, timeout: float = 15.0) -> dict[str, Any]:
        """Serve `route` as the app on the test's number, text it, return the ended log."""
        self.route("app", route)
        application = self.verbal.add_app(dialect, self.url("app"), self.app_number)
        self.text(self.app_number)
        return self.ended_log(application, timeout)

    def assert_still_serves(self, dialect: str) -> None:
        """Health checks pass and a good app, texted from the same handset, still answers."""
        assert self.http.get("/healthz").status_code == 200
        self.route("good", document(dialect, reply(dialect, "still serving")))
        self.verbal.add_app(dialect, self.url("good"), self.good_number)
        self.text(self.good_number, "hello again")
        wait_until(
            lambda: any(m["body"] == "still serving" for m in self.inbox(self.good_number)),
            what="the good app's reply",
        )


@pytest.fixture(scope="module")
def shared_app_server() -> Iterator[AppServer]:
    """One app server for the module too (each test has its own paths on it)."""
    server = AppServer()
    yield server
    server.close()


@pytest.fixture
def make_bench(shared_app_server: AppServer) -> Iterator[Callable[[LiveVerbal], Bench]]:
    benches: list[Bench] = []

    def make(verbal: LiveVerbal) -> Bench:
        benches.append(Bench(verbal, shared_app_server))
        return benches[-1]

    yield make
    for bench in benches:
        bench.close()


@pytest.fixture
def bench(shared_verbal: LiveVerbal, make_bench: Callable[[LiveVerbal], Bench]) -> Bench:
    return make_bench(shared_verbal)


def assert_failed(log: dict[str, Any], code: int, *words: str) -> str:
    """An `error` or `ended` event carries `code` and a message with all of `words`."""
    assert log["state"] == "ended" and log["end_reason"], log
    problems = [
        event
        for event in log["events"]
        if event["kind"] in ("error", "ended") and event.get("code") == code
    ]
    assert problems, f"no error or ended event with code {code}: {json.dumps(log, indent=1)}"
    text = " | ".join(str(event.get("message") or event.get("reason")) for event in problems)
    for word in words:
        assert word in text, f"{word!r} not in {text!r}"
    # A bad app ran nothing: no verb ran and no message went out on its behalf.
    assert not [e for e in log["events"] if e["kind"] in ("message", "verb")], log
    return text


# -- documents that cannot be understood -------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
def test_malformed_document_is_a_readable_parse_error(bench: Bench, dialect: str) -> None:
    log = bench.run_bad_app(dialect, document(dialect, MALFORMED[dialect]))
    assert_failed(
        log,
        ERRORS[dialect].parse_failed,
        "the app's document is not valid",
        *MALFORMED_WORDS[dialect],
    )
    # The document that broke is in the log, so its author sees what the app answered.
    [fetched] = [e for e in log["events"] if e["kind"] == "document"]
    assert fetched["body"] == MALFORMED[dialect] and fetched["status"] == 200
    assert not bench.inbox(bench.app_number)
    bench.assert_still_serves(dialect)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_unknown_verb_names_the_verb(bench: Bench, dialect: str) -> None:
    log = bench.run_bad_app(dialect, document(dialect, UNKNOWN_VERB[dialect]))
    assert_failed(log, UNKNOWN_VERB_CODES[dialect], *UNKNOWN_VERB_WORDS[dialect])
    assert not bench.inbox(bench.app_number)
    bench.assert_still_serves(dialect)


# -- hostile XML --------------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", XML_DIALECTS)
def test_billion_laughs_is_refused_before_expansion(bench: Bench, dialect: str) -> None:
    log = bench.run_bad_app(dialect, document(dialect, BILLION_LAUGHS))
    assert_failed(log, ERRORS[dialect].parse_failed, "entit", "expansion")
    # Nothing was expanded: the log quotes the document as sent, never a run of laughs.
    assert "lollol" not in json.dumps(log)
    assert not bench.inbox(bench.app_number)
    bench.assert_still_serves(dialect)


def passwd_line() -> str:
    """A line of /etc/passwd, which must never show up anywhere."""
    try:
        lines = Path("/etc/passwd").read_text().splitlines()
    except OSError:
        return ""
    return next((line for line in lines if line.count(":") >= 6), "")


@pytest.mark.parametrize("dialect", XML_DIALECTS)
@pytest.mark.parametrize(
    ("payload", "target"),
    [(external_entity, "passwd"), (external_parameter_entity, "secret")],
    ids=["entity-passwd", "parameter-entity-secret"],
)
def test_external_entity_is_refused_and_reads_nothing(
    bench: Bench,
    tmp_path: Path,
    dialect: str,
    payload: Callable[[str], str],
    target: str,
) -> None:
    if target == "passwd":
        url, secret = "file:///etc/passwd", passwd_line()
    else:
        secret = "top-secret-4f9c2a"
        (tmp_path / "secret.txt").write_text(f"{secret}\n")
        url = (tmp_path / "secret.txt").as_uri()
    log = bench.run_bad_app(dialect, document(dialect, payload(url)))
    text = assert_failed(log, ERRORS[dialect].parse_failed, "entit")
    assert "not allowed" in text or "refused" in text, text
    bench.assert_still_serves(dialect)
    # The file's contents reach neither a handset nor the log (which may quote the URL).
    assert not bench.inbox(bench.app_number)
    if secret:
        assert secret not in json.dumps(log)
        assert not [m for m in bench.inbox() if secret in m["body"]]


@pytest.mark.parametrize("dialect", XML_DIALECTS)
def test_external_dtd_is_never_fetched(bench: Bench, dialect: str) -> None:
    bench.route("evil.dtd", lambda hit: (200, "application/xml-dtd", '<!ENTITY x "y">'))
    body = (
        f'<?xml version="1.0"?><!DOCTYPE Response SYSTEM "{bench.url("evil.dtd")}">'
        "<Response><Message>hi</Message></Response>"
    )
    log = bench.run_bad_app(dialect, document(dialect, body))
    assert_failed(log, ERRORS[dialect].parse_failed, "DTD")
    assert not bench.hits("evil.dtd")
    bench.assert_still_serves(dialect)


# -- documents too large ----------------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
def test_document_over_the_fetch_limit_is_not_read(bench: Bench, dialect: str) -> None:
    body = oversized(dialect, MAX_DOCUMENT_BYTES + 1024)
    log = bench.run_bad_app(dialect, document(dialect, body))
    assert_failed(
        log, ERRORS[dialect].fetch_failed, "larger than", f"{MAX_DOCUMENT_BYTES // 1024} KiB"
    )
    assert log["end_reason"] == "the app's document could not be fetched"
    assert not [e for e in log["events"] if e["kind"] == "document"]
    assert not bench.inbox(bench.app_number)
    bench.assert_still_serves(dialect)


@pytest.mark.parametrize(
    ("dialect", "limit", "code"),
    [
        ("rcml", rcml.MAX_DOCUMENT_BYTES, rcml.DOCUMENT_TOO_LARGE),
        ("plivo", plivo.MAX_DOCUMENT_BYTES, plivo.ERRORS.parse_failed),
    ],
)
def test_document_over_the_dialect_limit_is_refused(
    bench: Bench, dialect: str, limit: int, code: int
) -> None:
    # Under Verbal's fetch limit, over the platform's own (Twilio 64 kB, Plivo 100 KB).
    body = oversized(dialect, limit + 1)
    assert len(body) < MAX_DOCUMENT_BYTES
    log = bench.run_bad_app(dialect, document(dialect, body))
    assert_failed(log, code, f"{len(body)} bytes", f"limit is {limit}")
    assert not bench.inbox(bench.app_number)
    bench.assert_still_serves(dialect)


# -- redirect loops ---------------------------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
def test_http_redirect_loop_gives_up(bench: Bench, dialect: str) -> None:
    log = bench.run_bad_app(dialect, lambda hit: (302, hit.url, b""))
    assert_failed(log, ERRORS[dialect].fetch_failed, f"more than {MAX_REDIRECTS} redirects", "loop")
    assert len(bench.hits("app")) == MAX_REDIRECTS + 1
    bench.assert_still_serves(dialect)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_document_that_continues_into_itself_forever_is_stopped(bench: Bench, dialect: str) -> None:
    route = document(dialect, continue_at(dialect, bench.path("app")))
    log = bench.run_bad_app(dialect, route, timeout=40)
    assert_failed(
        log, ERRORS[dialect].fetch_failed, f"more than {MAX_DOCUMENTS} documents", "redirect loop"
    )
    assert len(bench.hits("app")) == MAX_DOCUMENTS
    bench.assert_still_serves(dialect)


# -- apps that do not answer properly ---------------------------------------------------------


@pytest.mark.parametrize("dialect", DIALECTS)
def test_app_that_does_not_answer_in_time(
    impatient_verbal: LiveVerbal, make_bench: Callable[[LiveVerbal], Bench], dialect: str
) -> None:
    bench = make_bench(impatient_verbal)
    released = threading.Event()

    def slow(hit: AppHit) -> tuple[int, str, str]:
        released.wait(3)
        return 200, CONTENT_TYPES[dialect], reply(dialect, "too late")

    try:
        log = bench.run_bad_app(dialect, slow)
        assert_failed(log, ERRORS[dialect].fetch_failed, "no answer within 1 s")
        assert log["end_reason"] == "the app's document could not be fetched"
        bench.assert_still_serves(dialect)
    finally:
        released.set()
    assert not bench.inbox(bench.app_number)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_app_answering_http_500(bench: Bench, dialect: str) -> None:
    log = bench.run_bad_app(dialect, lambda hit: (500, "text/html", "<h1>Server Error</h1>"))
    assert_failed(log, ERRORS[dialect].bad_status, "HTTP 500")
    assert not bench.inbox(bench.app_number)
    bench.assert_still_serves(dialect)


WRONG_CONTENT_TYPE = {
    "tropo": ("text/html", "<html><body>Hello</body></html>", ("text/html", "not Tropo JSON")),
    "rcml": ("application/json", json.dumps({"tropo": []}), ("application/json", "text/xml")),
    "plivo": ("application/json", json.dumps({"tropo": []}), ("application/json", "text/xml")),
}


@pytest.mark.parametrize("dialect", DIALECTS)
def test_wrong_content_type(bench: Bench, dialect: str) -> None:
    content_type, body, words = WRONG_CONTENT_TYPE[dialect]
    log = bench.run_bad_app(dialect, lambda hit: (200, content_type, body))
    assert_failed(log, ERRORS[dialect].bad_content_type, *words)
    assert not bench.inbox(bench.app_number)
    bench.assert_still_serves(dialect)


# -- Tropo token launches ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("route", "code", "words"),
    [
        (document("tropo", MALFORMED["tropo"]), tropo.ERRORS.parse_failed, ("not valid JSON",)),
        (lambda hit: (500, "text/plain", "boom"), tropo.ERRORS.bad_status, ("HTTP 500",)),
    ],
    ids=["malformed-json", "http-500"],
)
def test_token_launched_bad_app_is_logged(
    bench: Bench, route: Route, code: int, words: tuple[str, ...]
) -> None:
    bench.route("app", route)
    application = bench.verbal.add_app("tropo", bench.url("app"), bench.app_number)
    response = httpx.get(
        f"{bench.verbal.base_url}/1.0/sessions",
        params={"action": "create", "token": application.messaging_token},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 200 and response.json()["success"] is True
    log = bench.ended_log(application)
    assert log["sid"] == response.json()["id"] and log["launch"] == "token"
    assert_failed(log, code, *words)
    bench.assert_still_serves("tropo")


# -- the Sessions API's own XML ---------------------------------------------------------------


def as_session(xml: str) -> bytes:
    return (
        xml.replace("Response", "session")
        .replace("<Message>", "<token>")
        .replace("</Message>", "</token>")
        .encode()
    )


@pytest.mark.parametrize(
    ("body", "words", "accept"),
    [
        (b"<session><token>abc</session>", ("mismatched tag",), "application/json"),
        (as_session(BILLION_LAUGHS), ("Entit", "lol"), "text/xml"),
        (as_session(external_entity("file:///etc/passwd")), ("Entit", "xxe"), "application/json"),
    ],
    ids=["malformed", "billion-laughs", "external-entity"],
)
def test_sessions_api_refuses_bad_xml_bodies(
    bench: Bench, body: bytes, words: tuple[str, ...], accept: str
) -> None:
    verbal = bench.verbal
    launched = json.dumps(
        {"tropo": [{"message": {"to": HANDSET, "say": {"value": "launched"}, "network": "SMS"}}]}
    )
    bench.route("app", document("tropo", launched))
    application = verbal.add_app("tropo", bench.url("app"), bench.app_number)
    response = httpx.post(
        f"{verbal.base_url}/1.0/sessions",
        content=body,
        headers={"Content-Type": "text/xml", "Accept": accept},
    )
    assert response.status_code == 400, response.text
    if accept == "application/json":
        answer = response.json()
        assert answer["success"] is False
        reason = answer["reason"]
    else:
        assert response.headers["content-type"].startswith("text/xml")
        assert "<success>false</success>" in response.text
        reason = response.text
    for word in ("could not be read", *words):
        assert word in reason, reason
    secret = passwd_line()
    assert not secret or secret not in response.text
    assert not bench.sessions(application.id)
    assert not bench.hits("app")

    # The server still serves: health, and a well-formed XML launch runs the app.
    assert httpx.get(f"{verbal.base_url}/healthz").status_code == 200
    good = httpx.post(
        f"{verbal.base_url}/1.0/sessions",
        content=f"<session><token>{application.messaging_token}</token></session>".encode(),
        headers={"Content-Type": "text/xml", "Accept": "application/json"},
    )
    assert good.status_code == 200 and good.json()["success"] is True, good.text
    wait_until(
        lambda: any(m["body"] == "launched" for m in bench.inbox(bench.app_number)),
        what="the launched text",
    )


# -- beyond the usual suspects ---------------------------------------------------------------


class TrickleApp:
    """An app that sends its headers at once and then its document a byte at a time.

    Every single read is fast, so only a deadline on the whole answer stops it.
    """

    def __init__(self, content_type: str, body: bytes, drip: int, interval: float) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}/"
        self._head = (
            f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        self._body, self._drip, self._interval = body, drip, interval
        self._closed = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: socket.socket) -> None:
        with connection:
            try:
                connection.recv(65536)
                connection.sendall(self._head)
                for byte in self._body[: self._drip]:
                    if self._closed.wait(self._interval):
                        return
                    connection.sendall(bytes([byte]))
                connection.sendall(self._body[self._drip :])
            except OSError:
                return

    def close(self) -> None:
        self._closed.set()
        self._listener.close()


def test_app_that_trickles_its_answer_times_out(
    impatient_verbal: LiveVerbal, make_bench: Callable[[LiveVerbal], Bench]
) -> None:
    bench = make_bench(impatient_verbal)
    body = reply("rcml", "too late").encode()
    # 20 bytes 0.2 s apart: 4 s in all, though no read waits more than 0.2 s. The answer
    # would be whole after 4 s, so a failure at all is the timeout giving up before that.
    app = TrickleApp("text/xml", body, drip=20, interval=0.2)
    try:
        application = bench.verbal.add_app("rcml", app.url, bench.app_number)
        bench.text(bench.app_number)
        log = bench.ended_log(application)
        assert_failed(log, rcml.ERRORS.fetch_failed, "within 1 s")
    finally:
        app.close()
    assert not bench.inbox(bench.app_number)


def test_auto_app_with_hostile_document_is_classified_in_linear_time(bench: Bench) -> None:
    # 48 KB: a linear scan takes microseconds, the quadratic one seconds.
    log = bench.run_bad_app("auto", lambda hit: (200, "text/xml", b"<Message" * 6000), 60)
    assert_failed(log, rcml.DOCUMENT_PARSE_FAILED, "malformed XML")
    at = {event["kind"]: datetime.fromisoformat(event["at"]) for event in log["events"]}
    stalled = (at["document"] - at["request"]).total_seconds()
    assert stalled < 1.0, f"fetching and classifying a 48 KB document took {stalled:.1f} s"
    bench.assert_still_serves("rcml")


def test_token_launch_of_an_app_that_cannot_start_that_way(bench: Bench) -> None:
    bench.route("app", document("plivo", reply("plivo", "hi")))
    application = bench.verbal.add_app("plivo", bench.url("app"), bench.app_number)
    response = httpx.get(
        f"{bench.verbal.base_url}/1.0/sessions",
        params={"action": "create", "token": application.messaging_token},
        headers={"Accept": "application/json"},
    )
    # Either refused up front, readably, or started and ended with a readable error.
    if response.status_code != 200:
        assert 400 <= response.status_code < 500 and response.json()["success"] is False
        assert response.json()["reason"]
    else:
        log = bench.ended_log(application, timeout=5)
        assert [e for e in log["events"] if e["kind"] in ("error", "ended") and e.get("code")]
    bench.assert_still_serves("plivo")


# Each app answers with a document that has an unknown verb, so each session should end with
# Restcomm's 12200; what differs is a value longer than its column in the sessions table.
LONG_VALUES: dict[str, Callable[[Bench], tuple[int, str, str | bytes]]] = {
    # The error names the unknown verb: a long name makes a long end_reason.
    "unknown-verb-name": lambda bench: (
        200,
        "text/xml",
        f"<Response><{'Shout' * 120}/></Response>",
    ),
    "content-type": lambda bench: (
        200,
        "text/xml; x=" + "y" * 200,
        "<Response><Shout/></Response>",
    ),
    "redirected-url": lambda bench: (302, bench.url("next") + "?state=" + "z" * 2100, b""),
}


@pytest.mark.parametrize("case", list(LONG_VALUES))
def test_long_values_from_the_app_are_logged_on_postgres(
    postgres_verbal: LiveVerbal, make_bench: Callable[[LiveVerbal], Bench], case: str
) -> None:
    bench = make_bench(postgres_verbal)
    bench.route("next", lambda hit: (200, "text/xml", "<Response><Shout/></Response>"))
    log = bench.run_bad_app("rcml", lambda hit: LONG_VALUES[case](bench), timeout=10)
    assert_failed(log, rcml.SCHEMA_INVALID, "<Shout", "is not an RCML/TwiML verb")
    bench.assert_still_serves("rcml")
