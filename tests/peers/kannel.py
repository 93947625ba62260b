"""Kannel (Debian `kannel`) as an independent ESME, run in a loopback-only network namespace.

Kannel's boxes may listen on every interface (see ../shared/spec/smpp.md §2b), so they never
run in the machine's own network namespace. `loopback_namespace` moves the *calling thread*
into a fresh namespace that has only `lo`: network namespaces are per thread on Linux, and
every socket, thread and child process the thread creates from then on lives in it. The test
thread enters it before it starts Verbal (whose server thread and SMSC socket then live there
too), Kannel's processes and the HTTP receiver, and leaves it afterwards. Nothing in the
namespace can reach, or be reached from, any real network.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import http.server
import os
import shutil
import socket
import struct
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.processes import free_port  # a port in the calling thread's network namespace

CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def kannel_missing() -> str | None:
    """Why Kannel cannot run here, or None."""
    for box in ("bearerbox", "smsbox"):
        if shutil.which(box) is None and not Path("/usr/sbin", box).exists():
            return f"Kannel's {box} is not installed (apt-get install kannel)"
    return None


def _box(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


class NamespaceUnavailable(Exception):
    """The calling thread cannot get a network namespace of its own (needs CAP_SYS_ADMIN)."""


def _bring_up_loopback() -> None:
    # ioctl rather than `ip link set lo up`: one fewer tool that must be installed.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | IFF_UP))


@contextlib.contextmanager
def loopback_namespace() -> Iterator[None]:
    """Run the calling thread in a new network namespace with only loopback, then return it."""
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    except OSError as error:
        raise NamespaceUnavailable(
            f"cannot open this thread's network namespace: {error}"
        ) from error
    try:
        if libc.unshare(CLONE_NEWNET) != 0:
            code = ctypes.get_errno()
            raise NamespaceUnavailable(
                f"unshare(CLONE_NEWNET) failed: {errno.errorcode.get(code, code)} "
                "(network namespaces need root or CAP_SYS_ADMIN)"
            )
        try:
            _bring_up_loopback()
            yield
        finally:
            if libc.setns(home, CLONE_NEWNET) != 0:
                # A test thread stuck in the namespace would break every later test.
                raise OSError(ctypes.get_errno(), "cannot return to the original namespace")
    finally:
        os.close(home)


@dataclass
class Hit:
    """One request Kannel made to the receiver: its path and decoded query."""

    path: str
    query: dict[str, str]


class Receiver:
    """A small HTTP server that records Kannel's DLR-URL and sms-service get-url calls."""

    def __init__(self) -> None:
        self.hits: list[Hit] = []
        self._changed = threading.Condition()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
                with receiver._changed:
                    receiver.hits.append(Hit(url.path, query))
                    receiver._changed.notify_all()
                # An empty body: for the sms-service that means "no reply" to the handset.
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        # Bound in the calling thread's namespace; the serving thread only accepts on it.
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait(self, predicate: Callable[[Hit], bool], timeout: float = 15.0) -> Hit:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for hit in self.hits:
                    if predicate(hit):
                        return hit
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"Kannel never called back as expected; got {self.hits}")
                self._changed.wait(left)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class Kannel:
    """bearerbox + smsbox, one config, bound as an ESME to an SMSC on 127.0.0.1:``smsc_port``."""

    workdir: Path
    smsc_port: int
    system_id: str
    password: str
    mo_url: str
    admin_port: int = field(default_factory=free_port)
    smsbox_port: int = field(default_factory=free_port)
    sendsms_port: int = field(default_factory=free_port)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    ADMIN_PASSWORD = "adminpw"
    USER = "tester"
    USER_PASSWORD = "foobar"

    @property
    def config(self) -> Path:
        return self.workdir / "kannel.conf"

    def write_config(self) -> None:
        # Every listener is pinned to 127.0.0.1 as well, belt and braces with the namespace.
        # The sms-service's get-url is how Kannel hands us an MO; max-messages 0 sends no reply.
        self.config.write_text(
            f"""group = core
admin-port = {self.admin_port}
admin-interface = 127.0.0.1
admin-password = {self.ADMIN_PASSWORD}
smsbox-port = {self.smsbox_port}
smsbox-interface = 127.0.0.1
box-allow-ip = 127.0.0.1
admin-allow-ip = 127.0.0.1
dlr-storage = internal
log-file = "{self.workdir / "bearerbox.log"}"
log-level = 0

group = smsc
smsc = smpp
smsc-id = verbal
host = 127.0.0.1
port = {self.smsc_port}
transceiver-mode = true
smsc-username = {self.system_id}
smsc-password = {self.password}
system-type = ""
our-host = 127.0.0.1
reconnect-delay = 1
enquire-link-interval = 30

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {self.smsbox_port}
sendsms-port = {self.sendsms_port}
sendsms-interface = 127.0.0.1
log-file = "{self.workdir / "smsbox.log"}"
log-level = 0

group = sendsms-user
username = {self.USER}
password = {self.USER_PASSWORD}
concatenation = true
max-messages = 5

group = sms-service
keyword = default
get-url = "{self.mo_url}?from=%p&to=%P&text=%a&coding=%c"
max-messages = 0
catch-all = true
"""
        )

    def start(self, timeout: float = 20.0) -> None:
        self.write_config()
        for box in ("bearerbox", "smsbox"):
            with (self.workdir / f"{box}.out").open("wb") as out:
                self.processes.append(
                    subprocess.Popen(
                        [_box(box), str(self.config)],
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        cwd=self.workdir,
                        start_new_session=True,
                    )
                )
            if box == "bearerbox":
                self._wait(lambda: "online" in self._smsc_line(), timeout, "bearerbox's SMPP bind")
        self._wait(self._sendsms_up, timeout, "smsbox's sendsms port")

    def _wait(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            for process in self.processes:
                if process.poll() is not None:
                    raise AssertionError(f"Kannel exited while waiting for {what}:\n{self.logs()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}:\n{self.logs()}")
            time.sleep(0.1)

    def status(self) -> str:
        """bearerbox's status page (plain text), or "" while it is not answering."""
        url = f"http://127.0.0.1:{self.admin_port}/status.txt?password={self.ADMIN_PASSWORD}"
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                return str(answer.read().decode())
        except OSError:
            return ""

    def _smsc_line(self) -> str:
        return next((ln for ln in self.status().splitlines() if "verbal[" in ln), "")

    def _sendsms_up(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.sendsms_port), timeout=1):
                return True
        except OSError:
            return False

    def sendsms(self, **params: str) -> tuple[int, str]:
        """Kannel's HTTP sendsms: the HTTP status and body."""
        query = {"username": self.USER, "password": self.USER_PASSWORD, "smsc": "verbal"}
        query.update(params)
        url = f"http://127.0.0.1:{self.sendsms_port}/cgi-bin/sendsms?" + urllib.parse.urlencode(
            query
        )
        try:
            with urllib.request.urlopen(url, timeout=10) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def logs(self, chars: int = 3000) -> str:
        parts = []
        for name in ("bearerbox.out", "smsbox.out", "bearerbox.log", "smsbox.log"):
            path = self.workdir / name
            if path.exists():
                parts.append(f"--- {name}\n{path.read_text(errors='replace')[-chars:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        # smsbox first, so bearerbox does not keep re-queueing for a box that is going.
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)
