"""Run the node-smpp peers in this directory and follow what they say.

Each peer script prints one JSON object per line on stdout (``{"event": ...}``) and takes
commands as JSON lines on stdin (``{"cmd": ...}``). `NodePeer` starts one as a process of
its own, collects its events in a thread, and lets a test wait for them.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PEERS = Path(__file__).resolve().parent

Event = dict[str, Any]


def install(timeout: float = 180.0) -> str | None:
    """Make sure the peers' npm packages are installed; return why not, or None when ready."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node and npm are not installed"
    # One `npm ci` at a time: each pytest-xdist worker comes here on its first node peer.
    directory = os.open(PEERS, os.O_RDONLY)
    try:
        fcntl.flock(directory, fcntl.LOCK_EX)
        return _install(timeout)
    finally:
        os.close(directory)  # and with it the lock


def _install(timeout: float) -> str | None:
    if (PEERS / "node_modules" / "smpp").is_dir():
        return None
    try:
        done = subprocess.run(
            ["npm", "ci", "--prefix", str(PEERS), "--no-audit", "--no-fund"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"npm ci took longer than {timeout:.0f}s"
    if done.returncode != 0:
        return f"npm ci failed: {done.stderr.strip()[-500:]}"
    return None


class NodePeer:
    """One running peer script; ``config`` is passed to it as its JSON argument."""

    def __init__(self, script: str, config: dict[str, Any] | None = None) -> None:
        self.script = script
        self.config = dict(config or {})
        self.events: list[Event] = []
        self._lock = threading.Condition()
        self._stderr: list[str] = []
        self.process = subprocess.Popen(
            ["node", str(PEERS / script), json.dumps(self.config)],
            cwd=PEERS,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._read_events, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_events(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                event = {"event": "output", "line": line.rstrip("\n")}
            with self._lock:
                self.events.append(event)
                self._lock.notify_all()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._stderr.append(line)

    def send(self, cmd: str, **args: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"cmd": cmd, **args}) + "\n")
        self.process.stdin.flush()

    def of(self, kind: str) -> list[Event]:
        """The events of one kind so far, in order."""
        with self._lock:
            return [e for e in self.events if e.get("event") == kind]

    def wait_for(
        self, predicate: Callable[[list[Event]], Any], timeout: float = 10.0, what: str = ""
    ) -> Any:
        """Wait until ``predicate(events)`` is truthy and return its value."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                value = predicate(self.events)
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"{self.script}: timed out waiting for {what or predicate}; "
                        f"last events {self.events[-5:]}, stderr {''.join(self._stderr)[-800:]}"
                    )
                if self.process.poll() is not None:
                    # It has exited: wait only for its reader thread to drain the output.
                    deadline = min(deadline, time.monotonic() + 0.5)
                self._lock.wait(min(left, 0.2))

    def wait_event(self, kind: str, /, timeout: float = 10.0, **fields: Any) -> Event:
        """The first event of ``kind`` whose fields include ``fields``."""

        def find(events: list[Event]) -> Event | None:
            for event in events:
                if event.get("event") == kind and all(event.get(k) == v for k, v in fields.items()):
                    return event
            return None

        return self.wait_for(find, timeout, f"{kind} {fields}")  # type: ignore[no-any-return]

    # From async tests: wait in a thread, so the event loop (and Verbal's binds on it) runs.

    async def until(
        self, predicate: Callable[[list[Event]], Any], within: float = 10.0, what: str = ""
    ) -> Any:
        return await asyncio.to_thread(self.wait_for, predicate, within, what)

    async def event(self, kind: str, /, within: float = 10.0, **fields: Any) -> Event:
        return await asyncio.to_thread(self.wait_event, kind, within, **fields)

    def kill(self) -> None:
        """End the process at once, as a crash would (SIGKILL)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the peer to finish what it answered and exit; kill it if it does not."""
        if self.process.poll() is None:
            try:
                self.send("stop")
                self.process.wait(timeout=timeout)
            except (BrokenPipeError, OSError, subprocess.TimeoutExpired):
                self.kill()
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


class NodeSmsc(NodePeer):
    """`smsc.js`: an SMSC on 127.0.0.1 (see the script's header for events and commands)."""

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__("smsc.js", config)
        self.port: int = self.wait_event("listening")["port"]

    def restarted(self, **changes: Any) -> NodeSmsc:
        """A new SMSC process on the same port (this one must be gone)."""
        return NodeSmsc({**self.config, "port": self.port, **changes})

    def submits(self) -> list[Event]:
        return self.of("submit")

    async def accepted(self, count: int, within: float = 10.0) -> list[Event]:
        """The submit_sm it accepted, once there are at least ``count``.

        A submit is printed before it is answered, but read from the pipe by a thread of
        ours, so the answer can reach Verbal before the line reaches the test.
        """
        await self.until(lambda events: len(self.submits()) >= count, within, f"{count} submits")
        return self.submits()


class NodeEsme(NodePeer):
    """`esme.js`: one ESME connection to 127.0.0.1:``port`` (see the script's header)."""

    def __init__(self, port: int) -> None:
        super().__init__("esme.js", {"port": port})
        self._tags = 0

    def request(self, cmd: str, answer: str, timeout: float = 10.0, **args: Any) -> Event:
        """Send a command and wait for the ``answer`` event carrying its tag."""
        self._tags += 1
        self.send(cmd, tag=self._tags, **args)
        return self.wait_event(answer, timeout, tag=self._tags)

    def bind(self, system_id: str, password: str, mode: str = "transceiver", **args: Any) -> int:
        """Bind; returns the bind_resp's command_status."""
        event = self.request(
            "bind", "bind_resp", system_id=system_id, password=password, mode=mode, **args
        )
        return int(event["status"])

    def submit(self, **args: Any) -> Event:
        """Submit one short message; returns its submit_resp event (status, message_id)."""
        return self.request("submit", "submit_resp", **args)
