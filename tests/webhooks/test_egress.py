"""The egress policy: outbound requests to denied places are refused before any connection.

"No packet left" is observed, not assumed: an audit hook records the address of every socket
`connect` the process makes, and each refusal is checked against it, beside a positive
control (a request that is allowed, and whose connection the hook does see).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiohttp import web
from pydantic import ValidationError

from tests.conftest import LiveVerbal, WebhookReceiver, wait_until
from verbal.config import Settings
from verbal.dialects.types import AppRequest
from verbal.engine.fetch import AppFetcher, FetchFailed
from verbal.webhooks.client import HttpClient
from verbal.webhooks.delivery import WebhookRequest, deliver
from verbal.webhooks.egress import EGRESS_REFUSED, EgressPolicy, EgressRefused

METADATA = "169.254.169.254"
APP_NUMBER = "+15550001000"
HANDSET = "+15550002000"

_connects: list[Any] | None = None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "socket.connect" and _connects is not None:
        _connects.append(args[1])


sys.addaudithook(_audit)


@pytest.fixture
def connects() -> Iterator[list[Any]]:
    """The addresses this process connects sockets to while the test runs."""
    global _connects
    _connects = []
    try:
        yield _connects
    finally:
        _connects = None


def hosts(addresses: list[Any]) -> set[str]:
    return {str(address[0]) for address in addresses if isinstance(address, tuple)}


async def fake_lookup(host: str, port: int, family: int) -> list[tuple[int, str]]:
    """A resolver with two names: one for the metadata service, one for loopback."""
    import socket

    names = {"metadata.example.test": METADATA, "app.example.test": "127.0.0.1"}
    if host not in names:
        raise OSError(f"unknown test name {host}")
    return [(socket.AF_INET, names[host])]


@pytest.fixture
async def loopback_app() -> AsyncIterator[str]:
    """An app on loopback: `/doc` answers a document, `/jump` redirects to the metadata
    service, `/hop` redirects to `/doc`."""

    async def doc(request: web.Request) -> web.Response:
        return web.Response(text="<Response/>", content_type="text/xml")

    async def jump(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://{METADATA}/latest/meta-data/")

    async def hop(request: web.Request) -> web.Response:
        raise web.HTTPFound("/doc")

    app = web.Application()
    app.router.add_route("*", "/doc", doc)
    app.router.add_route("*", "/jump", jump)
    app.router.add_route("*", "/hop", hop)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


# -- the rules ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        f"http://{METADATA}/latest/meta-data/",
        f"https://{METADATA}/",
        "http://[::ffff:169.254.169.254]/",
        "http://[::ffff:a9fe:a9fe]/",
        "http://[fe80::1]/",
        "http://[fd00:ec2::254]/",
        "http://100.100.100.200/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://METADATA.google.internal./",
        "http://metadata/",
        "http://0x7f000001/",
        "http://2130706433/",
        "http://0177.0.0.1/",
        "http://127.1/",
        "http://user:secret@127.0.0.1/",
        "http://user@example.com/",
        "ftp://example.com/",
        "file:///etc/passwd",
    ],
)
def test_the_default_policy_refuses_metadata_odd_forms_and_credentials(url: str) -> None:
    with pytest.raises(EgressRefused) as refused:
        EgressPolicy().check_url(url)
    assert refused.value.code == EGRESS_REFUSED == 7006
    assert str(refused.value).startswith("egress refused (7006): ")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/sms",
        "http://[::1]/",
        "http://10.1.2.3/",
        "http://192.168.1.20/",
        "http://[fd12::1]/",
        "https://example.com/sms?x=1",
        "http://localhost/",
        "http://169.254.example.com/",
    ],
)
def test_the_default_policy_allows_public_private_and_loopback(url: str) -> None:
    EgressPolicy().check_url(url)


def test_loopback_and_private_can_be_switched_off() -> None:
    closed = EgressPolicy(allow_loopback=False, allow_private=False)
    for address in ("127.0.0.1", "127.8.9.1", "::1", "0.0.0.0", "::ffff:127.0.0.1"):
        with pytest.raises(EgressRefused, match="loopback"):
            closed.check_address(address)
    for address in ("10.0.0.1", "172.20.1.1", "192.168.0.1", "100.64.0.1", "fd00::1"):
        with pytest.raises(EgressRefused, match="private"):
            closed.check_address(address)
    closed.check_address("93.184.216.34")
    closed.check_address("2606:2800:220:1::1")


def test_allow_entries_win_and_deny_entries_add_to_the_defaults() -> None:
    policy = EgressPolicy.from_entries(
        allow=["169.254.10.0/24", "apps.internal", "10.9.9.9"],
        deny=["0.0.0.0/0", "bad.example", "::/0"],
    )
    policy.check_address("169.254.10.7")  # allowed by name beats the built-in denial
    policy.check_address("10.9.9.9")  # a single address is a /32
    with pytest.raises(EgressRefused, match=r"denied network 0\.0\.0\.0/0"):
        policy.check_address("93.184.216.34")  # the allow list is now the only way out
    with pytest.raises(EgressRefused, match=r"169\.254\.0\.0/16"):
        EgressPolicy.from_entries(allow=["apps.internal"]).check_address(METADATA)
    policy.check_url("http://apps.internal/")
    policy.check_url("http://eu.apps.internal/")  # subdomains of an entry match it
    policy.check_url("http://notapps.internal/")  # ...but not names that merely end alike
    with pytest.raises(EgressRefused, match="deny list"):
        policy.check_url("http://www.bad.example/")
    # A host allowed by name is still judged by its addresses (see the resolver tests).
    EgressPolicy.from_entries(allow=["metadata.google.internal"]).check_url(
        "http://metadata.google.internal/"
    )


def test_a_bad_entry_fails_the_settings_at_start() -> None:
    with pytest.raises(ValidationError, match="neither a network nor a host name"):
        Settings(egress_deny=["10.0.0.0/8", "not a host/at all"])
    settings = Settings(egress_deny=["10.0.0.0/8", "evil.example"], egress_allow_private=False)
    policy = settings.egress_policy
    assert not policy.allow_private and policy.allow_loopback
    assert policy.deny_hosts == ("evil.example",)


def test_the_lists_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERBAL_EGRESS_DENY", '["203.0.113.0/24", "evil.example"]')
    monkeypatch.setenv("VERBAL_EGRESS_ALLOW_LOOPBACK", "false")
    policy = Settings().egress_policy
    with pytest.raises(EgressRefused):
        policy.check_address("203.0.113.9")
    with pytest.raises(EgressRefused):
        policy.check_address("127.0.0.1")


# -- refused before connecting ---------------------------------------------------------------


async def test_an_app_url_to_the_metadata_service_is_refused_before_connecting(
    loopback_app: str, connects: list[Any]
) -> None:
    client = HttpClient(5)
    fetcher = AppFetcher(client, 5)
    try:
        fetched = await fetcher.fetch(AppRequest("POST", f"{loopback_app}/doc", form=(("a", "b"),)))
        assert fetched.status == 200
        assert "127.0.0.1" in hosts(connects)  # the positive control: the hook sees connects
        for url in (f"http://{METADATA}/latest/meta-data/", "http://[::ffff:169.254.169.254]/"):
            with pytest.raises(FetchFailed) as failed:
                await fetcher.fetch(AppRequest("POST", url, form=(("a", "b"),)))
            assert failed.value.code == EGRESS_REFUSED
            assert "169.254.0.0/16" in failed.value.reason
    finally:
        await client.aclose()
    assert not hosts(connects) & {METADATA, "::ffff:169.254.169.254"}


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_a_callback_to_the_metadata_service_is_refused_before_connecting(
    scheme: str, loopback_app: str, connects: list[Any]
) -> None:
    client = HttpClient(5)
    try:
        allowed = await deliver(client, WebhookRequest(f"{loopback_app}/doc", "POST", []))
        assert allowed.ok and "127.0.0.1" in hosts(connects)
        result = await deliver(
            client, WebhookRequest(f"{scheme}://{METADATA}/status", "POST", [("a", "b")])
        )
    finally:
        await client.aclose()
    assert not result.ok and result.permanent and result.status is None
    assert result.error is not None and result.error.startswith("egress refused (7006): ")
    assert METADATA not in hosts(connects)


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_a_name_that_resolves_to_a_denied_address_is_refused(
    scheme: str, loopback_app: str, connects: list[Any]
) -> None:
    client = HttpClient(5, lookup=fake_lookup)
    fetcher = AppFetcher(client, 5)
    port = loopback_app.rsplit(":", 1)[1]
    try:
        # The same resolver, answering a loopback address, lets the request through.
        fetched = await fetcher.fetch(AppRequest("GET", f"http://app.example.test:{port}/doc"))
        assert fetched.status == 200 and "127.0.0.1" in hosts(connects)
        url = f"{scheme}://metadata.example.test/latest"
        with pytest.raises(FetchFailed) as failed:
            await fetcher.fetch(AppRequest("GET", url))
        assert failed.value.code == EGRESS_REFUSED
        assert METADATA in failed.value.reason
        result = await deliver(client, WebhookRequest(url, "POST", []))
        assert result.permanent and result.error is not None and METADATA in result.error
    finally:
        await client.aclose()
    assert METADATA not in hosts(connects)


async def test_localhost_is_refused_when_loopback_is_switched_off(
    loopback_app: str, connects: list[Any]
) -> None:
    """The system's own resolver, no test double: `localhost` resolves to loopback."""
    port = loopback_app.rsplit(":", 1)[1]
    open_client = HttpClient(5)
    closed_client = HttpClient(5, policy=EgressPolicy(allow_loopback=False))
    try:
        allowed = await deliver(
            open_client, WebhookRequest(f"http://localhost:{port}/doc", "GET", [])
        )
        assert allowed.ok
        seen = len(connects)
        for path in ("http", "https"):  # the lean client and aiohttp
            result = await deliver(
                closed_client, WebhookRequest(f"{path}://localhost:{port}/doc", "POST", [])
            )
            assert result.permanent and result.error is not None and "loopback" in result.error
        with pytest.raises(FetchFailed) as failed:
            await AppFetcher(closed_client, 5).fetch(AppRequest("GET", f"{loopback_app}/doc"))
        assert failed.value.code == EGRESS_REFUSED
    finally:
        await open_client.aclose()
        await closed_client.aclose()
    assert len(connects) == seen  # nothing connected after the allowed request


async def test_a_redirect_into_a_denied_network_is_refused(
    loopback_app: str, connects: list[Any]
) -> None:
    client = HttpClient(5)
    fetcher = AppFetcher(client, 5)
    try:
        followed = await fetcher.fetch(AppRequest("GET", f"{loopback_app}/hop"))
        assert followed.url == f"{loopback_app}/doc"  # redirects are followed when allowed
        with pytest.raises(FetchFailed) as failed:
            await fetcher.fetch(AppRequest("POST", f"{loopback_app}/jump", form=(("a", "b"),)))
    finally:
        await client.aclose()
    assert failed.value.code == EGRESS_REFUSED
    assert "169.254.0.0/16" in failed.value.reason
    assert "127.0.0.1" in hosts(connects) and METADATA not in hosts(connects)


async def test_a_redirect_carrying_credentials_is_refused(loopback_app: str) -> None:
    async def leak(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://user:secret@127.0.0.1:{request.url.port}/doc")

    app = web.Application()
    app.router.add_get("/leak", leak)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    client = HttpClient(5)
    try:
        with pytest.raises(FetchFailed) as failed:
            await AppFetcher(client, 5).fetch(AppRequest("GET", f"http://127.0.0.1:{port}/leak"))
    finally:
        await client.aclose()
        await runner.cleanup()
    assert failed.value.code == EGRESS_REFUSED and "credentials" in failed.value.reason


# -- end to end: the session log and the callback attempts -----------------------------------


def test_a_refused_app_url_is_a_coded_error_in_the_session_log(verbal: LiveVerbal) -> None:
    verbal.add_app("rcml", f"http://{METADATA}/latest/meta-data/", APP_NUMBER)
    with verbal.http() as http:
        sent = http.post(
            f"/sandbox/handsets/{HANDSET}/messages", json={"to": APP_NUMBER, "body": "hi"}
        )
        assert sent.status_code == 201

        def ended() -> dict[str, Any] | None:
            sessions = http.get("/verbal/v1/sessions").json()["sessions"]
            if not sessions or sessions[0]["state"] != "ended":
                return None
            return http.get(f"/verbal/v1/sessions/{sessions[0]['sid']}").json()  # type: ignore[no-any-return]

        log = wait_until(ended, timeout=15, what="the session to end")
    [error] = [event for event in log["events"] if event["kind"] == "error"]
    assert error["code"] == EGRESS_REFUSED
    assert "169.254.0.0/16" in error["message"]
    assert error["url"].startswith(f"http://{METADATA}/")


def test_a_refused_callback_is_a_coded_attempt_given_up_at_once(
    verbal: LiveVerbal, receiver: WebhookReceiver
) -> None:
    with verbal.http() as http:
        created = http.post(
            f"/2010-04-01/Accounts/{verbal.account_sid}/Messages.json",
            data={
                "To": HANDSET,
                "From": APP_NUMBER,
                "Body": "hello",
                "StatusCallback": f"http://{METADATA}/status",
            },
        )
        assert created.status_code == 201
        sid = created.json()["sid"]
        # The positive control: a second message's callbacks, to a receiver, arrive.
        control = http.post(
            f"/2010-04-01/Accounts/{verbal.account_sid}/Messages.json",
            data={"To": HANDSET, "From": APP_NUMBER, "Body": "x", "StatusCallback": receiver.url()},
        )
        assert control.status_code == 201
        receiver.wait_for(lambda requests: len(requests) == 3)

        def refused_three() -> list[dict[str, Any]] | None:
            callbacks = http.get(f"/verbal/v1/messages/{sid}/timeline").json()["callbacks"]
            return callbacks if len(callbacks) >= 3 else None

        callbacks = wait_until(refused_three, timeout=15, what="three refused callbacks")
    # One attempt per status: a refusal is not retried, it would be refused again.
    assert sorted(c["event"] for c in callbacks) == [
        "status:delivered",
        "status:queued",
        "status:sent",
    ]
    for callback in callbacks:
        assert callback["attempt"] == 1 and not callback["delivered"]
        assert callback["response_status"] is None
        assert callback["error"].startswith("egress refused (7006): ")
