"""Conversation cookies: the jar's rules (RFC 6265 within Twilio's limits) and their store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from sqlalchemy import text

from verbal.store import create_engine, migrate, session_factory
from verbal.store.directory import Directory
from verbal.store.journal import Journal, backend_for
from verbal.webhooks.conversations import ConversationCookies
from verbal.webhooks.cookies import (
    MAX_AGE_SECONDS,
    MAX_BYTES,
    MAX_COOKIES,
    Conversation,
    Jar,
    conversation,
)

NOW = 1_800_000_000.0
APP = "https://app.example.com/sms/start"


def jar_after(*set_cookies: str, url: str = APP, now: float = NOW) -> Jar:
    return Jar().received(set_cookies, url, now)


# -- the jar -----------------------------------------------------------------------------------


def test_a_cookie_comes_back_for_four_hours_at_most() -> None:
    jar = jar_after(
        "plain=1",
        "short=2; Max-Age=60",
        "long=3; Max-Age=86400",
        "dated=4; Expires=Wed, 21 Oct 2099 07:28:00 GMT",
    )
    assert jar.header(APP, NOW) == "plain=1; short=2; long=3; dated=4"
    assert jar.header(APP, NOW + 61) == "plain=1; long=3; dated=4"
    assert jar.header(APP, NOW + MAX_AGE_SECONDS - 1) == "plain=1; long=3; dated=4"
    assert jar.header(APP, NOW + MAX_AGE_SECONDS) is None
    assert jar.expires == NOW + MAX_AGE_SECONDS


def test_max_age_zero_or_a_past_date_deletes_a_cookie() -> None:
    jar = jar_after("a=1", "b=2")
    jar = jar.received(["a=; Max-Age=0", "b=x; Expires=Thu, 01 Jan 1970 00:00:00 GMT"], APP, NOW)
    assert jar.cookies == () and jar.header(APP, NOW) is None


def test_a_new_value_replaces_the_old_and_keeps_its_age() -> None:
    jar = jar_after("step=1").received(["step=2"], APP, NOW + 10)
    [cookie] = jar.cookies
    assert (cookie.value, cookie.created) == ("2", NOW)
    assert cookie.expires == NOW + 10 + MAX_AGE_SECONDS  # each answer renews it


def test_domain_path_and_secure_decide_where_a_cookie_goes() -> None:
    jar = jar_after(
        "host=1",  # host-only, default path /sms
        "wide=2; Domain=.Example.com; Path=/",
        "safe=3; Secure; Path=/",
        "deep=4; Path=/sms/start/more",
    )
    assert jar.header("https://app.example.com/sms/next", NOW) == "host=1; wide=2; safe=3"
    assert jar.header("http://app.example.com/sms", NOW) == "host=1; wide=2"
    assert jar.header("https://app.example.com/smsx", NOW) == "wide=2; safe=3"
    assert jar.header("https://other.example.com/sms/x", NOW) == "wide=2"
    assert jar.header("https://app.example.com/sms/start/more/x", NOW) == (
        "deep=4; host=1; wide=2; safe=3"
    )
    assert jar.header("https://example.org/sms/x", NOW) is None
    assert jar.header("https://status.example.net/", NOW) is None


def test_a_cookie_for_a_domain_the_host_is_not_in_is_ignored() -> None:
    assert jar_after("a=1; Domain=evil.example").cookies == ()
    assert jar_after("a=1; Domain=com").cookies == ()  # a top-level domain
    # An IP address matches only itself.
    ip = jar_after("a=1", url="http://127.0.0.1:8080/sms")
    assert ip.header("http://127.0.0.1:9000/x", NOW) == "a=1"
    assert ip.header("http://127.0.0.2/x", NOW) is None
    assert jar_after("no-equals-sign", "=novalue").cookies == ()


def test_a_conversation_keeps_at_most_its_bounds_dropping_the_oldest() -> None:
    jar = Jar()
    for index in range(MAX_COOKIES + 5):
        jar = jar.received([f"c{index}=v"], APP, NOW + index)
    assert len(jar.cookies) == MAX_COOKIES
    assert jar.cookies[0].name == "c5"

    big = "x" * (MAX_BYTES // 2)
    jar = jar_after(f"a={big}").received([f"b={big}"], APP, NOW + 1)
    assert [cookie.name for cookie in jar.cookies] == ["b"]  # both would not fit
    assert jar_after(f"huge={'x' * MAX_BYTES}").cookies == ()


def test_a_jar_survives_json() -> None:
    jar = jar_after("a=1; Secure; Domain=example.com; Path=/x", "b=two words")
    assert Jar.loads(jar.dumps()) == jar


def test_a_session_without_a_party_has_no_conversation() -> None:
    assert conversation(1, "+15550001000", None) is None
    assert conversation(1, None, "+15550002000") is None
    assert conversation(1, "+15550001000", "+15550002000") == Conversation(
        1, "+15550001000", "+15550002000"
    )


# -- the store ---------------------------------------------------------------------------------


@dataclass
class Store:
    url: str
    accounts: tuple[int, int]


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    engine = create_engine(database_url)
    await migrate(engine)
    directory = Directory(session_factory(engine))
    first = await directory.create_account("one")
    second = await directory.create_account("two")
    await engine.dispose()
    yield Store(database_url, (first.id, second.id))


class Process:
    """One process's view of the store: its own engine, journal and cache."""

    def __init__(self, url: str, *, shared: bool, now: float = NOW, **options: int) -> None:
        self.engine = create_engine(url)
        self.journal = Journal(backend_for(self.engine))
        self.now = now
        self.cookies = ConversationCookies(
            session_factory(self.engine),
            self.journal,
            shared_database=shared,
            clock=lambda: self.now,
            **options,
        )

    async def close(self) -> None:
        await self.journal.close()
        await self.engine.dispose()


async def rows(url: str) -> int:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            count = await connection.scalar(text("SELECT count(*) FROM conversation_cookies"))
    finally:
        await engine.dispose()
    return int(count or 0)


@pytest.mark.parametrize("shared", [False, True])
async def test_cookies_survive_a_restart_and_stay_in_their_conversation(
    store: Store, shared: bool
) -> None:
    one, two = store.accounts
    mine = Conversation(one, "+15550001000", "+15550002000")
    others = [
        Conversation(two, "+15550001000", "+15550002000"),  # another account
        Conversation(one, "+15550001001", "+15550002000"),  # another app number
        Conversation(one, "+15550001000", "+15550003000"),  # another handset
    ]
    before = Process(store.url, shared=shared)
    try:
        assert await before.cookies.jar(mine) == Jar()
        await before.cookies.keep(mine, jar_after("survey=q.red"))
        assert (await before.cookies.jar(mine)).header(APP, NOW) == "survey=q.red"
    finally:
        await before.close()

    after = Process(store.url, shared=shared)
    try:
        assert (await after.cookies.jar(mine)).header(APP, NOW) == "survey=q.red"
        for other in others:
            assert (await after.cookies.jar(other)).cookies == ()
        # Four hours on, the cookie is gone, in memory and for a process starting then.
        after.now = NOW + MAX_AGE_SECONDS
        assert (await after.cookies.jar(mine)).cookies == ()
    finally:
        await after.close()
    later = Process(store.url, shared=shared, now=NOW + MAX_AGE_SECONDS)
    try:
        assert (await later.cookies.jar(mine)).cookies == ()
    finally:
        await later.close()


async def test_workers_sharing_a_database_see_each_others_cookies(store: Store) -> None:
    one, _ = store.accounts
    talk = Conversation(one, "+15550001000", "+15550002000")
    first, second = Process(store.url, shared=True), Process(store.url, shared=True)
    try:
        await first.cookies.keep(talk, jar_after("step=1"))
        assert (await second.cookies.jar(talk)).header(APP, NOW) == "step=1"
        await second.cookies.keep(talk, jar_after("step=2"))
        assert (await first.cookies.jar(talk)).header(APP, NOW) == "step=2"
    finally:
        await first.close()
        await second.close()


async def test_a_full_cache_reads_what_it_evicted_and_expired_rows_are_purged(
    store: Store,
) -> None:
    one, _ = store.accounts
    talks = [Conversation(one, "+15550001000", f"+1555000200{n}") for n in range(3)]
    process = Process(store.url, shared=False, max_cached=2)
    try:
        for index, talk in enumerate(talks):
            await process.cookies.keep(talk, jar_after(f"n={index}"))
        # talks[0] was evicted from memory: it is read back from its row.
        for index, talk in enumerate(talks):
            assert (await process.cookies.jar(talk)).header(APP, NOW) == f"n={index}"
        assert await rows(store.url) == 3
        # Four hours and ten minutes later, the next write also deletes the dead rows.
        process.now = NOW + MAX_AGE_SECONDS + 600
        fresh = Conversation(one, "+15550001000", "+15550009999")
        await process.cookies.keep(fresh, jar_after("n=new", now=process.now))
        assert await rows(store.url) == 1
    finally:
        await process.close()


# -- the fetcher -------------------------------------------------------------------------------


async def test_a_fetch_sends_and_keeps_cookies_on_every_hop_they_match(sqlite_url: str) -> None:
    """A login that sets a cookie and redirects: the next hop carries it, another host does
    not, and the next fetch of the conversation starts with it."""
    from aiohttp import web

    from verbal.dialects.types import AppRequest
    from verbal.engine.fetch import AppFetcher
    from verbal.webhooks.client import HttpClient

    seen: list[tuple[str, str | None]] = []

    async def login(request: web.Request) -> web.Response:
        seen.append((request.path, request.headers.get("Cookie")))
        response = web.HTTPFound("/doc")
        response.set_cookie("sid", "abc", path="/")
        raise response

    async def doc(request: web.Request) -> web.Response:
        seen.append((request.path, request.headers.get("Cookie")))
        return web.Response(text="<Response/>", content_type="text/xml")

    app = web.Application()
    app.router.add_post("/login", login)
    app.router.add_get("/doc", doc)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    engine = create_engine(sqlite_url)
    await migrate(engine)
    account = await Directory(session_factory(engine)).create_account("one")
    journal = Journal(backend_for(engine))
    client = HttpClient(5)
    cookies = ConversationCookies(session_factory(engine), journal, shared_database=False)
    fetcher = AppFetcher(client, 5, cookies)
    talk = Conversation(account.id, "+15550001000", "+15550002000")
    try:
        login_url = f"http://127.0.0.1:{port}/login"
        await fetcher.fetch(AppRequest("POST", login_url, form=(("a", "b"),)), talk)
        # The same server under another name is another host: no cookie goes there.
        await fetcher.fetch(AppRequest("GET", f"http://localhost:{port}/doc"), talk)
        await fetcher.fetch(AppRequest("GET", f"http://127.0.0.1:{port}/doc"), talk)
        # A request outside any conversation carries none.
        await fetcher.fetch(AppRequest("GET", f"http://127.0.0.1:{port}/doc"))
    finally:
        await client.aclose()
        await journal.close()
        await engine.dispose()
        await runner.cleanup()
    assert seen == [
        ("/login", None),
        ("/doc", "sid=abc"),
        ("/doc", None),
        ("/doc", "sid=abc"),
        ("/doc", None),
    ]
