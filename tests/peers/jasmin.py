"""Jasmin 0.11.0 as an independent SMPP server between Verbal's ESME and Verbal's SMSC.

Jasmin invents no receipts: it relays them from an upstream SMSC. So the chain is
(../shared/spec/smpp.md §2a)

    Verbal's SmppCarrier -> Jasmin's SMPP server -> MT route -> Jasmin's smppc connector
        -> Verbal's sandbox SMSC -> receipt -> Jasmin -> deliver_sm -> Verbal's SmppCarrier

Jasmin lives in its own virtualenv, never the project's: `tests/peers/install_jasmin.sh`
makes it (pinned to 0.11.0: 0.11.1 drops every receipt, jookies/jasmin#1236). It needs the
machine's RabbitMQ (127.0.0.1:5672) and Redis (127.0.0.1:6379). Every Jasmin listener is
bound to 127.0.0.1 on a free port, and its store, logs and config live in the test's tmp dir.
"""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from tests.processes import free_port

HOME = Path(os.environ.get("VERBAL_JASMIN_HOME", Path.home() / ".cache/verbal-peers"))
VENV = HOME / "jasmin-0.11.0"
RESOURCES = HOME / "resource"


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def jasmin_missing() -> str | None:
    """Why Jasmin cannot run here, or None."""
    if not (VENV / "bin" / "jasmind.py").exists() or not (RESOURCES / "amqp0-9-1.xml").exists():
        return f"Jasmin 0.11.0 is not installed in {HOME} (run tests/peers/install_jasmin.sh)"
    if not _listening(5672):
        return "RabbitMQ is not running on 127.0.0.1:5672"
    if not _listening(6379):
        return "Redis is not running on 127.0.0.1:6379"
    return None


@dataclass
class Jasmin:
    """One jasmind, configured over jcli once it is up."""

    workdir: Path
    smpp_port: int = field(default_factory=free_port)
    jcli_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    _turn: IO[bytes] | None = field(default=None, init=False, repr=False)

    def _wait_for_turn(self, timeout: float) -> None:
        """Take the machine's one Jasmin turn: every jasmind uses the same RabbitMQ queues
        and Redis keys, so two at once (two test workers, or two runs) take each other's
        messages. Held until `stop`; the lock goes with the process if it dies."""
        self._turn = (HOME / "jasmin.lock").open("ab")
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(self._turn, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    self._turn.close()
                    self._turn = None
                    raise AssertionError(
                        f"another Jasmin held {HOME / 'jasmin.lock'} for {timeout:.0f}s"
                    ) from None
                time.sleep(0.2)

    def start(self, timeout: float = 20.0) -> None:
        self._wait_for_turn(timeout=300)
        etc = self.workdir / "etc"
        for sub in ("store", "resource"):
            (etc / sub).mkdir(parents=True, exist_ok=True)
        (self.workdir / "log").mkdir(exist_ok=True)
        for xml in RESOURCES.glob("*.xml"):
            (etc / "resource" / xml.name).write_bytes(xml.read_bytes())
        # Every listener defaults to 0.0.0.0, so each is pinned to loopback and a free port.
        sections = {
            "smpp-server": {"port": self.smpp_port},
            "smpp-server-pb": {"port": free_port()},
            "client-management": {"port": free_port()},
            "router": {"port": free_port()},
            "http-api": {"port": free_port()},
            "jcli": {"port": self.jcli_port},
            "interceptor": {"port": free_port()},
        }
        lines = []
        for name, values in sections.items():
            lines += [f"[{name}]", "bind = 127.0.0.1"]
            lines += [f"{key} = {value}" for key, value in values.items()]
        lines += ["[amqp-broker]", "host = 127.0.0.1", "[redis-client]", "host = 127.0.0.1"]
        (etc / "jasmin.cfg").write_text("\n".join(lines) + "\n")
        env = dict(
            os.environ,
            ROOT_PATH=str(self.workdir),
            CONFIG_PATH=str(etc),
            RESOURCE_PATH=str(etc / "resource"),
            STORE_PATH=str(etc / "store"),
            LOG_PATH=str(self.workdir / "log"),
            API_BIND="127.0.0.1",
        )
        with (self.workdir / "jasmind.out").open("wb") as out:
            self.process = subprocess.Popen(
                [
                    str(VENV / "bin" / "python"),
                    str(VENV / "bin" / "jasmind.py"),
                    "-c",
                    str(etc / "jasmin.cfg"),
                    "--enable-dlr-thrower",
                    "--enable-dlr-lookup",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not (_listening(self.jcli_port) and _listening(self.smpp_port)):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"jasmind did not come up:\n{self.logs()}")
            time.sleep(0.1)

    def jcli(self, *commands: str, timeout: float = 10.0) -> str:
        """Run jcli commands (one line each) and return everything jcli said."""
        prompt = b"jcli : "
        said = b""
        with socket.create_connection(("127.0.0.1", self.jcli_port), timeout=timeout) as sock:

            def until(*marks: bytes) -> None:
                nonlocal said
                start = len(said)
                while not any(mark in said[start:] for mark in marks):
                    chunk = sock.recv(4096)
                    if not chunk:
                        raise AssertionError(f"jcli closed: {said.decode(errors='replace')}")
                    said += chunk

            # jcli asks for no username in so many words: it says this, then takes one.
            until(b"Authentication required")
            sock.sendall(b"jcliadmin\r\n")
            until(b"Password: ")
            sock.sendall(b"jclipwd\r\n")
            until(prompt)
            for command in commands:
                sock.sendall(command.encode() + b"\r\n")
                # Inside a block (-a / -u) jcli prompts with "> " until "ok".
                until(prompt, b"> ")
            sock.sendall(b"quit\r\n")
        return said.decode(errors="replace")

    def logs(self, chars: int = 4000) -> str:
        parts = []
        for path in [self.workdir / "jasmind.out", *sorted((self.workdir / "log").glob("*.log"))]:
            if path.exists():
                parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-chars:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self._turn is not None:
            self._turn.close()  # and with it the lock
            self._turn = None
