"""Conversation cookies: what an app sets, kept per conversation as Twilio keeps them.

Twilio stores the cookies an app's answer sets, keyed by the conversation's From/To pair, and
sends them back with the next requests of that conversation; they expire after four hours
(sooner if the cookie says so), which lets an app keep its place between texts. Verbal does
the same for every dialect (docs/apps.md, "Conversation cookies"), keyed by account, app
number and handset, so that no cookie crosses accounts, numbers or handsets.

A `Jar` holds one conversation's cookies; it is a value (each change makes a new one) with the
clock passed in. It follows RFC 6265's rules for what a user agent stores and sends back
(domain and path matching, `Secure`, `Max-Age` over `Expires`), within bounds: at most
`MAX_COOKIES` cookies and `MAX_BYTES` of names and values per conversation, the oldest
dropped first, as browsers do.

Written here rather than taken from a library: aiohttp's `CookieJar` is one per client
session and can be saved only with pickle, and the standard library's `http.cookiejar` works
on urllib request objects; a conversation's jar must be small, per key and stored as JSON.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from http.cookiejar import http2time
from urllib.parse import urlsplit

# Twilio: a cookie expires four hours after it was set, or sooner if it says so; longer
# lifetimes are capped to four hours.
MAX_AGE_SECONDS = 4 * 60 * 60
# Per conversation: more cookies, or more bytes of names and values, drop the oldest.
# 4096 bytes is what RFC 6265 (section 6.1) asks user agents to keep per cookie at least;
# a conversation needs no more (Twilio kept one cookie per conversation).
MAX_COOKIES = 20
MAX_BYTES = 4096


@dataclass(frozen=True, slots=True)
class Conversation:
    """Whose cookies: an account's app number talking with one handset."""

    account_id: int
    app_number: str
    handset: str


def conversation(
    account_id: int, app_number: str | None, handset: str | None
) -> Conversation | None:
    """The conversation of a session; None when it has no party (a token launch), so that
    its requests carry no cookies and keep none."""
    if not app_number or not handset:
        return None
    return Conversation(account_id, app_number, handset)


@dataclass(frozen=True, slots=True)
class Cookie:
    name: str
    value: str
    domain: str  # lower case, no leading dot
    host_only: bool  # no Domain attribute: only the host that set it gets it back
    path: str
    secure: bool
    expires: float  # epoch seconds
    created: float

    @property
    def size(self) -> int:
        return len(self.name) + len(self.value)


@dataclass(frozen=True, slots=True)
class Jar:
    cookies: tuple[Cookie, ...] = ()

    @property
    def expires(self) -> float:
        """When the last of its cookies expires (0 for an empty jar)."""
        return max((cookie.expires for cookie in self.cookies), default=0.0)

    def live(self, now: float) -> Jar:
        return Jar(tuple(cookie for cookie in self.cookies if cookie.expires > now))

    def header(self, url: str, now: float) -> str | None:
        """The `Cookie` header a request to `url` carries, if any cookie matches it."""
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".")
        path = parts.path or "/"
        matching = [
            cookie
            for cookie in self.cookies
            if cookie.expires > now
            and (not cookie.secure or parts.scheme == "https")
            and _host_matches(host, cookie)
            and _path_matches(path, cookie.path)
        ]
        if not matching:
            return None
        # RFC 6265 5.4: longer paths first, then the older cookie first.
        matching.sort(key=lambda cookie: (-len(cookie.path), cookie.created))
        return "; ".join(f"{cookie.name}={cookie.value}" for cookie in matching)

    def received(self, set_cookies: Iterable[str], url: str, now: float) -> Jar:
        """The jar after an answer from `url` with these `Set-Cookie` header values."""
        cookies = list(self.live(now).cookies)
        for header in set_cookies:
            cookie = _parse(header, url, now)
            if cookie is None:
                continue
            same = [
                index
                for index, kept in enumerate(cookies)
                if (kept.name, kept.domain, kept.path) == (cookie.name, cookie.domain, cookie.path)
            ]
            if same:
                # A replaced cookie keeps its age (RFC 6265 5.3 step 11.3).
                cookie = replace(cookie, created=cookies[same[0]].created)
                del cookies[same[0]]
            if cookie.expires > now:  # an expired one only deletes (how apps log out)
                cookies.append(cookie)
        cookies.sort(key=lambda cookie: cookie.created)
        while len(cookies) > MAX_COOKIES or sum(c.size for c in cookies) > MAX_BYTES:
            cookies.pop(0)
        return Jar(tuple(cookies))

    def dumps(self) -> str:
        return json.dumps([asdict(cookie) for cookie in self.cookies], separators=(",", ":"))

    @classmethod
    def loads(cls, text: str) -> Jar:
        return cls(tuple(Cookie(**fields) for fields in json.loads(text)))


def _parse(header: str, url: str, now: float) -> Cookie | None:
    """One `Set-Cookie` value as RFC 6265 section 5.2 reads it; None when it is ignored."""
    pair, _, attributes = header.partition(";")
    name, equals, value = pair.partition("=")
    name, value = name.strip(), value.strip()
    if not equals or not name or len(name) + len(value) > MAX_BYTES:
        return None
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".")
    domain, path, secure = "", "", False
    max_age: float | None = None
    expires: float | None = None
    for attribute in attributes.split(";"):
        key, _, argument = attribute.partition("=")
        key, argument = key.strip().lower(), argument.strip()
        if key == "max-age":
            try:
                max_age = float(int(argument))
            except ValueError:
                continue
        elif key == "expires":
            parsed = http2time(argument)
            expires = float(parsed) if parsed is not None else expires
        elif key == "domain" and argument:
            domain = argument.lstrip(".").lower()
        elif key == "path" and argument.startswith("/"):
            path = argument
        elif key == "secure":
            secure = True
    if domain:
        # A Domain attribute must cover the host that set it, and name more than a top-level
        # domain (`Domain=com` would hand the cookie to every .com app of the conversation).
        if not _domain_matches(host, domain) or "." not in domain:
            return None
        host_only = False
    else:
        domain, host_only = host.lower(), True
    lifetime = now + MAX_AGE_SECONDS
    if max_age is not None:
        lifetime = min(lifetime, now + max_age)
    elif expires is not None:
        lifetime = min(lifetime, expires)
    return Cookie(
        name=name,
        value=value,
        domain=domain,
        host_only=host_only,
        path=path or _default_path(parts.path),
        secure=secure,
        expires=lifetime,
        created=now,
    )


def _host_matches(host: str, cookie: Cookie) -> bool:
    host = host.lower()
    return host == cookie.domain if cookie.host_only else _domain_matches(host, cookie.domain)


def _domain_matches(host: str, domain: str) -> bool:
    """RFC 6265 5.1.3: the same host, or a host name ending in `.domain` (never an IP)."""
    host = host.lower()
    if host == domain:
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host.endswith("." + domain)
    return False


def _path_matches(path: str, cookie_path: str) -> bool:
    """RFC 6265 5.1.4."""
    if path == cookie_path:
        return True
    if not path.startswith(cookie_path):
        return False
    return cookie_path.endswith("/") or path[len(cookie_path)] == "/"


def _default_path(path: str) -> str:
    """RFC 6265 5.1.4: the request path up to, not including, its last slash."""
    if not path.startswith("/") or path.count("/") == 1:
        return "/"
    return path[: path.rindex("/")]
