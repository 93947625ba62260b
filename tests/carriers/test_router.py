"""Choosing carriers (verbal/carriers/base.py CarrierRouter): prefixes, senders, priority."""

from __future__ import annotations

from dataclasses import dataclass

from verbal.carriers.base import (
    Carrier,
    CarrierEvents,
    CarrierRouter,
    OutboundSms,
    RouteRule,
    SubmitResult,
)


@dataclass
class Fake:
    name: str
    reach: tuple[str, ...] = ("+",)

    def reaches(self, number: str) -> bool:
        return number.startswith(self.reach)

    async def start(self, events: CarrierEvents) -> None: ...

    async def stop(self) -> None: ...

    async def submit(self, sms: OutboundSms) -> SubmitResult:
        return SubmitResult("x")


def names(router: CarrierRouter, number: str, sender: str | None = None) -> list[str]:
    return [carrier.name for carrier in router.candidates(number, sender)]


def test_without_rules_carriers_are_tried_in_the_order_given() -> None:
    carriers: list[Carrier] = [Fake("a"), Fake("b", ("+44",))]
    router = CarrierRouter(carriers)
    assert names(router, "+4420") == ["a", "b"]
    assert names(router, "+1555") == ["a"]
    assert router.route("+1555") is not None


def test_the_longest_prefix_wins_among_equal_priorities() -> None:
    carriers: list[Carrier] = [Fake("sandbox"), Fake("world"), Fake("uk")]
    rules = {
        "sandbox": RouteRule(prefixes=("+1555",)),
        "world": RouteRule(),
        "uk": RouteRule(prefixes=("+44", "+447")),
    }
    router = CarrierRouter(carriers, rules)
    assert names(router, "+15550002000") == ["sandbox", "world"]
    assert names(router, "+447700900000") == ["uk", "world"]
    assert names(router, "+33612345678") == ["world"]


def test_priority_comes_before_prefixes() -> None:
    carriers: list[Carrier] = [Fake("cheap"), Fake("premium")]
    rules = {"cheap": RouteRule(("+44",), priority=200), "premium": RouteRule(priority=10)}
    router = CarrierRouter(carriers, rules)
    assert names(router, "+447700900000") == ["premium", "cheap"]


def test_sender_rules() -> None:
    carriers: list[Carrier] = [Fake("brand"), Fake("default")]
    rules = {"brand": RouteRule(senders=("+1800", "+15550001000"), priority=1)}
    router = CarrierRouter(carriers, rules)
    assert names(router, "+15550009999", "+15550001000") == ["brand", "default"]
    assert names(router, "+15550009999", "+18005550100") == ["brand", "default"]
    assert names(router, "+15550009999", "+15550001001") == ["default"]
    # Without a sender (a reachability check), sender rules don't exclude.
    assert names(router, "+15550009999") == ["brand", "default"]


def test_a_rule_never_widens_what_a_carrier_reaches() -> None:
    uk: list[Carrier] = [Fake("uk", ("+44",))]
    router = CarrierRouter(uk, {"uk": RouteRule(prefixes=("+",))})
    assert names(router, "+1555") == []
