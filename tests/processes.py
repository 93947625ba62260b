"""Real `verbal` processes for end-to-end tests: started, watched, stopped or killed.

One harness for every test that runs the command as users do (the CLI tests, the kill -9
recovery test, the scale-out test), with each process's output kept in files so that a
failure shows what the server said.
"""

from __future__ import annotations

import random
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import httpx

# Ports handed out by `free_port`, each held by this process until it exits.
_RESERVATIONS: list[socket.socket] = []
# Below this the kernel never picks a port on its own (for bind(0) or an outgoing connection).
_EPHEMERAL_LOW = 32768
_RESERVED_LOW = 20000


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return _EPHEMERAL_LOW


def free_port() -> int:
    """A loopback port for a server that binds it itself later (a child process, Jasmin).

    Binding port 0 and closing it races: until the server binds the port, the kernel may hand
    it to anyone else, such as another test worker's server or any outgoing connection. So
    the port is taken below the kernel's ephemeral range, where nothing gets a port it did not
    ask for by number, and is reserved for as long as this process lives by an abstract Unix
    socket named after it: every test process on the machine (pytest-xdist's workers, another
    run) skips the ports another one holds. Where that cannot be done, bind(0) as before.
    A server started in-process binds its socket itself instead (see `LiveVerbal`).
    """
    low, high = _RESERVED_LOW, min(_ephemeral_low(), 65536)
    if high - low < 1000 or not hasattr(socket, "AF_UNIX"):
        return _ephemeral_port()
    for _ in range(200):
        port = random.randrange(low, high)
        reservation = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            # An abstract name (leading NUL): no file, gone when the process ends (Linux).
            reservation.bind(f"\0verbal-tests-port-{port}")
        except OSError:
            reservation.close()
            continue  # another test process holds it
        if _bindable(port):
            _RESERVATIONS.append(reservation)
            return port
        reservation.close()  # something outside the tests listens there
    return _ephemeral_port()


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ephemeral_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class VerbalProcess:
    """One `python -m verbal <command>` run serving HTTP on a free loopback port."""

    def __init__(
        self,
        name: str,
        env: dict[str, str],
        workdir: Path,
        *,
        command: str = "serve",
        args: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.stdout_path = workdir / f"{name}.stdout"
        self.stderr_path = workdir / f"{name}.stderr"
        self._files: list[IO[bytes]] = [self.stdout_path.open("wb"), self.stderr_path.open("wb")]
        address = ["--host", "127.0.0.1", "--port", str(self.port)]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "verbal", command, *address, *args],
            env=env,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=self._files[0],
            stderr=self._files[1],
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def pids(self) -> list[int]:
        """The server's process and those it forked (on SQLite, its pipeline process)."""
        import psutil

        try:
            children = psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return [self.pid]
        return [self.pid, *(child.pid for child in children)]

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def tail(self, lines: int = 40) -> str:
        parts = []
        for path in (self.stdout_path, self.stderr_path):
            text = path.read_text(errors="replace") if path.exists() else ""
            parts.append(f"--- {path.name} (last {lines} lines) ---")
            parts.extend(text.splitlines()[-lines:])
        return "\n".join(parts)

    def wait_healthy(self, timeout: float = 30.0) -> VerbalProcess:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with {self.process.returncode}\n{self.tail()}"
                )
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{self.name} did not answer /healthz in {timeout}s\n{self.tail()}")

    def assert_alive(self) -> None:
        assert self.process.poll() is None, (
            f"{self.name} died with {self.process.returncode}\n{self.tail()}"
        )

    def stop(self) -> int:
        """SIGTERM, as a service manager would; SIGKILL if it does not go. The exit code."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        for file in self._files:
            file.close()  # closing twice is harmless
        return self.process.returncode


def run_cli(env: dict[str, str], workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "verbal", *args],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
