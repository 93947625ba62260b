"""The HTTP server closes connections that idle or dawdle (they were held for ever).

Raw sockets, as an attacker holding connections open would use. Each timeout differs from
the others, so that a connection closed by the wrong timer fails the test.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from tests.conftest import LiveVerbal
from verbal.api.serving import MAX_HEADER_BYTES

KEEP_ALIVE = 0.5
HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 3.5
# Generous: a busy machine may run the timer late, never early.
SLACK = 3.0
# The server may start a timer a moment before the test starts its watch (its thread ran
# first); far less than the gaps between the timeouts, so the right timer is still told.
EARLY = 0.1


@pytest.fixture
def limited(make_verbal: Callable[..., LiveVerbal]) -> LiveVerbal:
    return make_verbal(
        http_keep_alive_seconds=KEEP_ALIVE,
        http_header_timeout_seconds=HEADER_TIMEOUT,
        http_body_timeout_seconds=BODY_TIMEOUT,
    )


@contextmanager
def connection(server: LiveVerbal) -> Iterator[socket.socket]:
    with socket.create_connection((server.settings.host, server.settings.port)) as sock:
        sock.settimeout(HEADER_TIMEOUT + BODY_TIMEOUT + 2 * SLACK)
        yield sock


def seconds_until_closed(sock: socket.socket, started: float) -> float:
    """Reads (and drops) whatever comes until the server closes the connection."""
    while sock.recv(65536):
        pass
    return time.monotonic() - started


def health_check(sock: socket.socket) -> bytes:
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: verbal\r\n\r\n")
    answer = b""
    while not answer.endswith(b'{"status":"ok"}'):
        chunk = sock.recv(65536)
        assert chunk, answer
        answer += chunk
    return answer


def test_an_idle_connection_is_closed_after_the_keep_alive_timeout(limited: LiveVerbal) -> None:
    with connection(limited) as sock:
        started = time.monotonic()
        assert KEEP_ALIVE - EARLY <= seconds_until_closed(sock, started) < KEEP_ALIVE + SLACK


def test_a_connection_idle_after_a_response_is_closed_too(limited: LiveVerbal) -> None:
    with connection(limited) as sock:
        # Positive control: the connection serves several requests while they keep coming.
        for _ in range(3):
            assert health_check(sock).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert KEEP_ALIVE - EARLY <= seconds_until_closed(sock, started) < KEEP_ALIVE + SLACK


def test_a_half_sent_head_is_closed_after_the_header_timeout_however_it_trickles(
    limited: LiveVerbal,
) -> None:
    with connection(limited) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: verbal\r\n")
        # A header line every so often, as a slowloris sends them: each would reset an idle
        # timer, and together they outlast the keep-alive timeout many times over.
        sock.settimeout(KEEP_ALIVE / 2)
        closed = False
        while not closed and time.monotonic() - started < HEADER_TIMEOUT + SLACK:
            try:
                sock.sendall(b"X-Slow: 1\r\n")
                closed = sock.recv(65536) == b""
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                closed = True
        elapsed = time.monotonic() - started
    assert closed, "the connection outlived the header timeout"
    assert HEADER_TIMEOUT - EARLY <= elapsed < HEADER_TIMEOUT + SLACK


def test_a_half_sent_body_is_closed_after_the_body_timeout(limited: LiveVerbal) -> None:
    with connection(limited) as sock:
        sock.sendall(
            b"POST /sandbox/rules HTTP/1.1\r\nHost: verbal\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{"
        )
        started = time.monotonic()
        elapsed = seconds_until_closed(sock, started)
    assert BODY_TIMEOUT - EARLY <= elapsed < BODY_TIMEOUT + SLACK


def test_a_request_head_beyond_the_limit_is_refused(limited: LiveVerbal) -> None:
    with connection(limited) as sock:
        assert health_check(sock).startswith(b"HTTP/1.1 200")
        filler = b"X-Filler: " + b"a" * 1000 + b"\r\n"
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: verbal\r\n")
        answer = b""
        try:
            for _ in range(MAX_HEADER_BYTES // len(filler) + 2):
                sock.sendall(filler)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
