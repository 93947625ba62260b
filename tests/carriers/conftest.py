"""Fixtures for the carrier tests: the node-smpp peers, installed once per run."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.peers.node import NodeEsme, NodeSmsc, install
from tests.processes import free_port


@pytest.fixture(scope="session")
def node_peers() -> None:
    """The npm packages of tests/peers, installed with `npm ci` when missing.

    Tests that use a node peer are skipped when node or npm is not installed.
    """
    problem = install()
    if problem is not None:
        pytest.skip(f"node-smpp peers unavailable: {problem}")


class Smscs:
    """The node-smpp SMSCs (`tests/peers/smsc.js`) of one test; all stopped after it."""

    def __init__(self) -> None:
        self.started: list[NodeSmsc] = []

    def start(self, **config: Any) -> NodeSmsc:
        # A reserved port rather than the kernel's choice: `restart` listens on it again, and
        # the kernel could hand a port it chose to some other socket in between.
        config.setdefault("port", free_port())
        smsc = NodeSmsc(config)
        self.started.append(smsc)
        return smsc

    def restart(self, old: NodeSmsc, **changes: Any) -> NodeSmsc:
        """A new SMSC process on ``old``'s port, once ``old`` has been stopped or killed."""
        smsc = old.restarted(**changes)
        self.started.append(smsc)
        return smsc


@pytest.fixture
def smscs(node_peers: None) -> Iterator[Smscs]:
    peers = Smscs()
    yield peers
    for smsc in peers.started:
        smsc.stop()


class Esmes:
    """The node-smpp ESMEs (`tests/peers/esme.js`) of one test; all stopped after it."""

    def __init__(self) -> None:
        self.started: list[NodeEsme] = []

    def connect(self, port: int) -> NodeEsme:
        esme = NodeEsme(port)
        self.started.append(esme)
        esme.wait_event("connected", timeout=30)  # node starts slowly on a busy machine
        return esme


@pytest.fixture
def esmes(node_peers: None) -> Iterator[Esmes]:
    peers = Esmes()
    yield peers
    for esme in peers.started:
        esme.stop()


async def eventually(predicate: Callable[[], Any], within: float = 10.0) -> Any:
    """Poll ``predicate`` without blocking the event loop until it is truthy; its value."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {within}s waiting for {predicate}")
