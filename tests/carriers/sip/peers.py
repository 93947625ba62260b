"""Real SIP peers for tests: sipp, baresip (headless, JSON over ctrl_tcp) and kamailio.

Every peer runs as a child process on 127.0.0.1 with ports from `free_port`, is bounded
in time (sipp's ``-timeout``, a deadline on every wait) and is killed by the test that
started it (`stop`). A test whose peer's binary is missing is skipped, not failed
(`need`). Other voice tests reuse these: ``from tests.carriers.sip.peers import Sipp``.

sipp scenario files live in ``scenarios/``; some are templates whose ``@NAME@``
placeholders (an expected status, a delay) `Sipp` fills in from its ``values``.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

from tests.processes import free_port

SCENARIOS = Path(__file__).parent / "scenarios"


def need(binary: str) -> str:
    """The path of ``binary``; the test is skipped when it is not installed."""
    path = shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/sbin")
    if path is None:
        pytest.skip(f"{binary} is not installed")
    return path


def free_udp_pair() -> int:
    """A free port ``p`` with ``p + 2`` free too (sipp's audio and video RTP ports)."""
    for _ in range(50):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(("127.0.0.1", port + 2))
            except OSError:
                continue
        return port
    raise RuntimeError("no free pair of UDP ports")


async def _kill(process: asyncio.subprocess.Process, *, group: bool = False) -> None:
    """SIGKILL ``process``; with ``group``, its whole process group (a peer started in a
    session of its own, whose children would otherwise outlive it)."""
    with contextlib.suppress(ProcessLookupError):
        if group:
            os.killpg(process.pid, signal.SIGKILL)
        elif process.returncode is None:
            process.kill()
    await process.wait()


class Sipp:
    """One sipp run: a scenario file of ``scenarios/`` (or a built-in: ``uac``, ``uas``).

    A UAC is started with `start` and awaited with `wait`; a UAS is started first and
    then waited for the same way. `messages` is its ``-trace_msg`` log and `stats` the
    last row of its ``-trace_stat`` CSV, for assertions beyond the exit status.
    """

    def __init__(
        self,
        scenario: str,
        workdir: Path,
        *,
        remote: str | None = None,
        calls: int = 1,
        timeout: float = 30.0,
        values: dict[str, str] | None = None,
        args: Sequence[str] = (),
    ) -> None:
        self.binary = need("sipp")
        self.workdir = workdir
        self.port = free_port()
        self.name = f"{scenario}-{self.port}"
        self.messages_path = workdir / f"{self.name}.messages"
        self.stats_path = workdir / f"{self.name}.csv"
        self.timeout = timeout
        if scenario in ("uac", "uas"):
            source = ["-sn", scenario]
        else:
            text = (SCENARIOS / f"{scenario}.xml").read_text()
            for key, value in (values or {}).items():
                text = text.replace(f"@{key}@", escape(value, {'"': "&quot;"}))
            path = workdir / f"{self.name}.xml"
            path.write_text(text)
            source = ["-sf", str(path)]
        self.command = [
            self.binary,
            *([remote] if remote else []),
            *source,
            "-i", "127.0.0.1",
            "-p", str(self.port),
            "-mi", "127.0.0.1",
            "-mp", str(free_udp_pair()),
            "-cp", str(free_port()),
            "-m", str(calls),
            "-timeout", f"{int(timeout)}s",
            "-timeout_error",
            "-nostdin",
            "-trace_msg", "-message_file", str(self.messages_path),
            "-trace_stat", "-stf", str(self.stats_path),
            "-trace_err", "-error_file", str(workdir / f"{self.name}.errors"),
            *args,
        ]  # fmt: skip
        self.process: asyncio.subprocess.Process | None = None

    @property
    def uri_host(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> Sipp:
        with (self.workdir / f"{self.name}.stdout").open("wb") as output:
            self.process = await asyncio.create_subprocess_exec(
                *self.command,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        await asyncio.sleep(0.2)  # let it bind before anyone sends to it
        return self

    async def wait(self) -> int:
        """sipp's exit status (0: every call succeeded); killed after its own timeout."""
        assert self.process is not None
        try:
            async with asyncio.timeout(self.timeout + 10):
                return await self.process.wait()
        except TimeoutError:
            await _kill(self.process)
            raise AssertionError(f"sipp {self.name} overran\n{self.messages()}") from None

    async def run(self) -> int:
        await self.start()
        return await self.wait()

    async def stop(self) -> None:
        if self.process is not None:
            await _kill(self.process)

    def messages(self) -> str:
        return self.messages_path.read_text(errors="replace") if self.messages_path.exists() else ""

    def report(self) -> str:
        """What sipp said and logged, for an assertion message."""
        parts = []
        for suffix in ("stdout", "errors", "messages"):
            path = self.workdir / f"{self.name}.{suffix}"
            if path.exists():
                parts.append(f"--- {path.name} ---\n{path.read_text(errors='replace')[-4000:]}")
        return "\n".join(parts)

    def received(self, start: str) -> int:
        """How many messages sipp received whose first line starts with ``start``."""
        pattern = r"message received \[\d+\] bytes :\s*" + re.escape(start)
        return len(re.findall(pattern, self.messages()))

    def sent(self, start: str) -> int:
        """How many messages sipp sent whose first line starts with ``start``."""
        pattern = r"message sent \(\d+ bytes\):\s*" + re.escape(start)
        return len(re.findall(pattern, self.messages()))

    def stats(self) -> dict[str, str]:
        with self.stats_path.open() as file:
            rows = list(csv.reader(file, delimiter=";"))
        return dict(zip(rows[0], rows[-1], strict=False))


class Baresip:
    """A headless baresip (auto-answer, no sound device) driven over ctrl_tcp.

    Its account is ``sip:{user}@127.0.0.1:{port}``; `command` sends one JSON command and
    `event` waits for an event (``CALL_ESTABLISHED``, ``REGISTER_OK`` ...).
    """

    def __init__(self, workdir: Path, user: str = "bob", *, record: bool = False) -> None:
        self.binary = need("baresip")
        self.sox = need("sox")
        self.user = user
        self.port = free_port()
        self.control_port = free_port()
        self.dir = workdir / f"baresip-{self.port}"
        self.dir.mkdir()
        # Debian keeps the modules beside the binary's prefix: <prefix>/lib/baresip/modules.
        modules = Path(self.binary).resolve().parent.parent / "lib" / "baresip" / "modules"
        rtp = free_port()
        silence = self.dir / "silence.wav"
        subprocess.run(
            [self.sox, "-n", "-r", "8000", "-c", "1", "-b", "16", str(silence), "trim", "0", "60"],
            check=True,
            timeout=30,
        )
        (self.dir / "config").write_text(
            "\n".join(
                [
                    "poll_method epoll",
                    f"sip_listen 127.0.0.1:{self.port}",
                    "net_interface 127.0.0.1",
                    "call_local_timeout 60",
                    "call_max_calls 4",
                    "audio_player aubridge,nil",
                    f"audio_source aufile,{silence}",
                    "audio_alert aubridge,nil",
                    "audio_srate 8000",
                    "audio_channels 1",
                    f"rtp_ports {rtp}-{rtp + 9}",
                    f"module_path {modules}",
                    "module g711.so",
                    "module aufile.so",
                    "module aubridge.so",
                    # `record`: what the phone hears, decoded, in dump-*-dec.wav (`heard`).
                    *(["module sndfile.so", f"snd_path {self.dir}"] if record else []),
                    "module_app account.so",
                    "module_app menu.so",
                    "module_app ctrl_tcp.so",
                    f"ctrl_tcp_listen 127.0.0.1:{self.control_port}",
                    "",
                ]
            )
        )
        (self.dir / "accounts").write_text(
            f"<sip:{user}@127.0.0.1:{self.port}>;regint=0;answermode=auto;audio_codecs=PCMU,PCMA\n"
        )
        (self.dir / "contacts").write_text("")
        self.process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self.events: list[dict[str, object]] = []
        self._token = 0

    @property
    def uri(self) -> str:
        return f"sip:{self.user}@127.0.0.1:{self.port}"

    async def start(self) -> Baresip:
        with (self.dir / "log").open("wb") as output:
            self.process = await asyncio.create_subprocess_exec(
                self.binary,
                "-f",
                str(self.dir),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            async with asyncio.timeout(15):
                while True:
                    try:
                        self._reader, self._writer = await asyncio.open_connection(
                            "127.0.0.1", self.control_port
                        )
                        return self
                    except OSError:
                        await asyncio.sleep(0.1)
        except TimeoutError:
            await self.stop()
            raise AssertionError(f"baresip did not start\n{self.log()}") from None

    async def command(self, command: str, params: str = "") -> None:
        assert self._writer is not None
        self._token += 1
        body = json.dumps({"command": command, "params": params, "token": str(self._token)})
        data = body.encode()
        self._writer.write(f"{len(data)}:".encode() + data + b",")
        await self._writer.drain()

    async def event(self, kind: str, within: float = 15.0) -> dict[str, object]:
        """The next event of ``kind`` (events seen before are kept in `events`)."""
        assert self._reader is not None
        async with asyncio.timeout(within):
            while True:
                length = await self._reader.readuntil(b":")
                payload = await self._reader.readexactly(int(length[:-1]))
                await self._reader.readexactly(1)  # the netstring's trailing comma
                message = json.loads(payload)
                self.events.append(message)
                if message.get("event") and message.get("type") == kind:
                    return message

    def heard(self) -> list[Path]:
        """The recordings of what the phone heard, one per call (with ``record=True``)."""
        return sorted(self.dir.glob("dump-*-dec.wav"))

    def log(self) -> str:
        path = self.dir / "log"
        return path.read_text(errors="replace") if path.exists() else ""

    async def stop(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(5):
                    await self.process.wait()
            except TimeoutError:
                await _kill(self.process, group=True)


KAMAILIO_CFG = """#!KAMAILIO
debug=2
log_stderror=yes
fork=yes
children=2
listen=udp:127.0.0.1:{port}
alias="127.0.0.1:{port}"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
modparam("usrloc", "db_mode", 0)
modparam("rr", "enable_full_lr", 1)
request_route {{
    if (!mf_process_maxfwd_header("10")) {{ sl_send_reply("483", "Too Many Hops"); exit; }}
    if (has_totag()) {{
        if (loose_route()) {{ t_relay(); exit; }}
        if (is_method("ACK")) {{ if (t_check_trans()) {{ t_relay(); }} exit; }}
        sl_send_reply("404", "Not here"); exit;
    }}
    if (is_method("CANCEL")) {{ if (t_check_trans()) {{ t_relay(); }} exit; }}
    if (is_method("REGISTER")) {{ save("location"); exit; }}
    if (is_method("INVITE")) {{ record_route(); }}
    if (!lookup("location")) {{ sl_send_reply("404", "Not Found"); exit; }}
    xlog("L_INFO", "relaying $rm $ru\\n");
    t_relay();
}}
"""


class Kamailio:
    """kamailio as an in-memory registrar and record-routing proxy on UDP."""

    def __init__(self, workdir: Path) -> None:
        self.binary = need("kamailio")
        self.port = free_port()
        self.dir = workdir / f"kamailio-{self.port}"
        self.dir.mkdir()
        self.config = self.dir / "kamailio.cfg"
        self.config.write_text(KAMAILIO_CFG.format(port=self.port))
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> Kamailio:
        # -DD: stay in the foreground (children still forked), so stopping this process
        # stops them all; -E: log to stderr, kept in a file.
        with (self.dir / "log").open("wb") as output:
            self.process = await asyncio.create_subprocess_exec(
                self.binary,
                "-f",
                str(self.config),
                "-DD",
                "-E",
                "-w",
                str(self.dir),
                "-P",
                str(self.dir / "pid"),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        async with asyncio.timeout(15):
            while "INFO" not in self.log() or not self._listening():
                if self.process.returncode is not None:
                    raise AssertionError(f"kamailio exited\n{self.log()}")
                await asyncio.sleep(0.1)
        return self

    def _listening(self) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(("127.0.0.1", self.port))
            except OSError:
                return True
        return False

    def heard(self) -> list[Path]:
        """The recordings of what the phone heard, one per call (with ``record=True``)."""
        return sorted(self.dir.glob("dump-*-dec.wav"))

    def log(self) -> str:
        path = self.dir / "log"
        return path.read_text(errors="replace") if path.exists() else ""

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(10):
                    await self.process.wait()
            except TimeoutError:
                await _kill(self.process, group=True)
