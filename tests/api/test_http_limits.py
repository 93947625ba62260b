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


# -- requests in flight, and /healthz under load -------------------------------------------------


# A request the server cannot finish until its body is whole: the Messages resource reads its
# form before it answers (here 401: no credentials).
HALF_SENT = (
    b"POST /2010-04-01/Accounts/AC0/Messages.json HTTP/1.1\r\nHost: verbal\r\n"
    b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 10\r\n\r\nTo=1"
)
REST_OF_BODY = b"234567"


def read_response(sock: socket.socket) -> bytes:
    """One whole response (its head and a Content-Length body)."""
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(65536)
        assert chunk, answer
        answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    length = int(
        next(
            line for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")
        ).split(b":")[1]
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, answer
        body += chunk
    return head + b"\r\n\r\n" + body


def test_beyond_the_requests_in_flight_a_request_waits_and_healthz_does_not(
    make_verbal: Callable[..., LiveVerbal],
) -> None:
    server = make_verbal(http_requests_in_flight=1)
    with connection(server) as busy, connection(server) as waiting, connection(server) as probe:
        # The one request in flight: its body is half sent, so it cannot finish.
        busy.sendall(HALF_SENT)
        time.sleep(0.3)
        waiting.sendall(b"GET /readyz HTTP/1.1\r\nHost: verbal\r\n\r\n")
        waiting.settimeout(1.0)
        with pytest.raises(TimeoutError):
            waiting.recv(65536)
        # The probe is answered at once, although the gate is full.
        started = time.monotonic()
        assert health_check(probe).startswith(b"HTTP/1.1 200")
        assert time.monotonic() - started < 1.0
        # The request in flight finishes; the one held goes on and is answered.
        busy.sendall(REST_OF_BODY)
        assert read_response(busy).startswith(b"HTTP/1.1 401")
        waiting.settimeout(10)
        answer = read_response(waiting)
        assert answer.startswith(b"HTTP/1.1 200") and b'"status":"ready"' in answer
        # The held connection carries on as any other.
        assert health_check(waiting).startswith(b"HTTP/1.1 200")


def test_a_held_connection_that_goes_away_frees_its_place(
    make_verbal: Callable[..., LiveVerbal],
) -> None:
    server = make_verbal(http_requests_in_flight=1)
    with connection(server) as busy, connection(server) as later:
        busy.sendall(HALF_SENT)
        time.sleep(0.3)
        with connection(server) as gone:
            gone.sendall(b"GET /readyz HTTP/1.1\r\nHost: verbal\r\n\r\n")
            time.sleep(0.3)
        later.sendall(b"GET /readyz HTTP/1.1\r\nHost: verbal\r\n\r\n")
        time.sleep(0.3)
        busy.sendall(REST_OF_BODY)
        assert read_response(busy).startswith(b"HTTP/1.1 401")
        later.settimeout(10)
        assert read_response(later).startswith(b"HTTP/1.1 200")
