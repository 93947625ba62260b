"""The lean client status callbacks use (verbal/webhooks/keepalive.py), against real servers."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from verbal.webhooks.keepalive import KeepAliveClient


class Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    peers: list[tuple[str, int]] = []
    requests: list[tuple[str, str, bytes]] = []
    mode = "plain"

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        type(self).peers.append(self.client_address)
        type(self).requests.append((self.command, self.path, body))
        if type(self).mode == "chunked":
            self.send_response(202)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for chunk in (b"hello ", b"chunked ", b"world"):
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
            return
        payload = b"x" * 5000
        self.send_response(200)
        self.send_header("Content-Length", str(len(payload)))
        if type(self).mode == "close":
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _handle

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, type[Recorder]]]:
    handler = type("Handler", (Recorder,), {"peers": [], "requests": [], "mode": "plain"})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    httpd.shutdown()
    httpd.server_close()


async def post(
    client: KeepAliveClient, url: str, body: bytes = b"a=1", time_limit: float = 10.0
) -> Any:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    return await client.request(
        "POST", url, headers, body, excerpt_limit=100, time_limit=time_limit
    )


async def test_requests_to_one_origin_share_a_kept_alive_connection(
    server: tuple[str, type[Recorder]],
) -> None:
    base, handler = server
    client = KeepAliveClient()
    answers = [await post(client, f"{base}/status?n={i}") for i in range(5)]
    client.close()
    assert [a.status for a in answers] == [200] * 5
    assert all(a.body == b"x" * 100 for a in answers)  # the excerpt only, the rest drained
    assert len(set(handler.peers)) == 1  # one connection carried all five
    assert [path for _, path, _ in handler.requests] == [f"/status?n={i}" for i in range(5)]
    assert {body for *_, body in handler.requests} == {b"a=1"}


async def test_a_server_that_closes_after_answering_gets_a_new_connection(
    server: tuple[str, type[Recorder]],
) -> None:
    base, handler = server
    handler.mode = "close"
    client = KeepAliveClient()
    statuses = [(await post(client, f"{base}/s")).status for _ in range(3)]
    client.close()
    assert statuses == [200, 200, 200]
    assert len(set(handler.peers)) == 3


async def test_a_chunked_answer_is_read_whole(server: tuple[str, type[Recorder]]) -> None:
    base, handler = server
    handler.mode = "chunked"
    client = KeepAliveClient()
    first = await post(client, f"{base}/c")
    second = await post(client, f"{base}/c")
    client.close()
    assert (first.status, first.body) == (202, b"hello chunked world")
    assert second.body == first.body
    assert len(set(handler.peers)) == 1


async def test_a_refused_connection_raises() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(OSError, match="Connect"):
        await post(KeepAliveClient(), f"http://127.0.0.1:{port}/")


async def test_a_server_that_never_answers_is_given_up_at_the_time_limit() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    client = KeepAliveClient()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
    try:
        # The outer bound only keeps a broken client from hanging the test.
        async with asyncio.timeout(30):
            with pytest.raises(TimeoutError):
                await post(client, url, time_limit=0.3)
            # The connection that timed out is not kept for the next request.
            assert not client._idle.get(("127.0.0.1", listener.getsockname()[1]))
    finally:
        client.close()
        listener.close()
