"""The egress policy inside aiohttp: a middleware that checks each request's URL, and a
resolver that checks every address before the connector may use it (`egress.py` says what
is checked and why). Imported with aiohttp, on first use of `HttpClient.session`."""

from __future__ import annotations

import socket

from aiohttp import ClientHandlerType, ClientMiddlewareType, ClientRequest, ClientResponse, hdrs
from aiohttp.abc import AbstractResolver, ResolveResult

from verbal.webhooks.egress import EgressPolicy, EgressRefused, Lookup, resolve

_NUMERIC = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV


class CheckedResolver(AbstractResolver):
    """Resolves as the system does, then refuses the name if any address is denied. The
    connector connects only to addresses a resolver gave it, and IP literals skip the
    resolver (the middleware checks those), so every connection is to a checked address."""

    def __init__(self, policy: EgressPolicy, lookup: Lookup) -> None:
        self._policy = policy
        self._lookup = lookup

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        pairs = await resolve(self._policy, host, port, family, self._lookup)
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=address_family,
                proto=0,
                flags=_NUMERIC,
            )
            for address_family, address in pairs
        ]

    async def close(self) -> None:
        pass


def checking(policy: EgressPolicy) -> ClientMiddlewareType:
    """A middleware refusing requests whose URL the policy refuses: the first request and
    every redirect, whoever follows it."""

    async def check(request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        policy.check_url(str(request.url))
        # aiohttp moves a URL's credentials into this header before middlewares run; Verbal
        # sends no Authorization header of its own.
        if hdrs.AUTHORIZATION in request.headers:
            raise EgressRefused("credentials in a URL are refused (they would be logged)")
        return await handler(request)

    return check
