"""Verbal over SMPP, and Kannel beside it: HTTP in, submit_sm, receipt, HTTP callback out.

    python bench/smpp.py [--count 10000] [--window 10] [--binds 1] [--receipt-delay-ms 20]

One SMSC for both: node-smpp (`tests/peers/smsc.js`, an SMPP implementation independent of
Verbal's and Kannel's) on 127.0.0.1, answering every submit_sm at once and sending its
delivery receipt `--receipt-delay-ms` later on the same bind (`--response-delay-ms` delays
the answers too, which shows how full each gateway keeps its window).

1. Verbal: a real `verbal serve` (SQLite temp file) with one SMPP carrier declared through
   `VERBAL_CARRIERS`, `--binds` transceivers with `--window` submit_sm in flight each and no
   throughput cap, and the numbers +4479… routed to it. `--count` messages go in through the
   Twilio API (`--concurrency` requests in flight) with a StatusCallback; a message is done
   when its `delivered` callback reaches the receiver.
2. Kannel 1.4.5 (Debian `kannel`): bearerbox with as many binds and the same window, and
   smsbox; the same count goes in through smsbox's `cgi-bin/sendsms` with dlr-mask 1
   (delivered) and a dlr-url at the receiver; a message is done when that report arrives.

The two run one after the other, each on an otherwise idle machine, and the run ends with
both rates and their ratio. Kannel's boxes may listen on every interface, so the script
re-executes itself in a new network namespace that has only loopback (`unshare --net`, as
root; otherwise a user namespace, where the kernel allows it) before it starts anything, and
runs Kannel nowhere else. Without a namespace, or without Kannel, only part 1 runs.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import defaultdict
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import psutil
from _harness import (
    NODE_PEERS,
    SENDER,
    CpuMeter,
    LoadFigures,
    Metered,
    Pipeline,
    Process,
    end_to_end,
    free_port,
    latency_line,
    machine_notes,
    node_peers_missing,
    offer,
    peer_json,
    run,
    start_peer,
    workdir,
)
from yarl import URL

# Set in the re-executed script's environment: it is the copy inside the namespace.
IN_NAMESPACE = "BENCH_SMPP_NAMESPACE"
SYSTEM_ID, PASSWORD = "bench", "bench"
CARRIER = "bench-smsc"
# Destinations routed to the SMPP carrier: outside the sandbox's +1555, so the sandbox
# carrier never takes them.
PREFIX = "+4479"
# How long nothing may arrive (submits, receipts, callbacks) before a wait gives up.
STALL_SECONDS = 60.0
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


def destination(i: int) -> str:
    return f"{PREFIX}{i % 100_000_000:08d}"


# -- the loopback-only network namespace ------------------------------------------------------


def reexec_in_namespace() -> str:
    """Replace this process with itself under `unshare --net`; if that cannot be done,
    return why (the caller then runs without Kannel, in the machine's own namespace)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return "unshare (util-linux) is not installed"
    # As root a network namespace alone; otherwise a user namespace mapping us to root in
    # it, which unprivileged users may make on most kernels.
    tried = [["--net"]] if os.geteuid() == 0 else [["--user", "--map-root-user", "--net"]]
    why = ""
    for flags in tried:
        probe = subprocess.run([unshare, *flags, "true"], capture_output=True, text=True)
        if probe.returncode == 0:
            argv = [unshare, *flags, "--", sys.executable, str(Path(__file__).resolve())]
            os.execve(unshare, [*argv, *sys.argv[1:]], {**os.environ, IN_NAMESPACE: "1"})
        why = probe.stderr.strip() or f"exit status {probe.returncode}"
    return f"cannot make a network namespace (`unshare {' '.join(tried[-1])}`: {why})"


def bring_up_loopback() -> None:
    """A new namespace's `lo` is down; up it with an ioctl (no iproute2 needed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        if not flags & IFF_UP:
            fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | IFF_UP))


def only_loopback() -> bool:
    """Whether this process sees no network interface but `lo`: then nothing it or its
    children start can reach, or be reached from, any real network."""
    return [name for _, name in socket.if_nameindex()] == ["lo"]


# -- what must be installed -------------------------------------------------------------------


def kannel_box(name: str) -> str | None:
    return shutil.which(name) or next(
        (str(path) for path in [Path("/usr/sbin", name)] if path.exists()), None
    )


def kannel_missing() -> str | None:
    for box in ("bearerbox", "smsbox"):
        if kannel_box(box) is None:
            return f"Kannel's {box} is not installed (apt-get install kannel)"
    return None


def versions() -> str:
    """node's version and Kannel's, for the header."""

    def first_line(argv: list[str]) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        except OSError:
            return ""
        return (done.stdout or done.stderr).strip().splitlines()[0] if done.returncode == 0 else ""

    node = first_line(["node", "--version"]) or "?"
    bearerbox = kannel_box("bearerbox")
    kannel = first_line([bearerbox, "--version"]) if bearerbox else ""
    # "Kannel bearerbox version `1.4.5'." -> "1.4.5"
    kannel = kannel.split("`")[-1].rstrip("'.") if "`" in kannel else "not installed"
    return f"{node} (node-smpp, tests/peers/smsc.js), Kannel {kannel}"


# -- the SMSC ---------------------------------------------------------------------------------


class NodeSmsc:
    """smsc.js in a process of its own. A thread reads its event lines and notes when each
    submit_sm, receipt and bind arrived, so that the rates are the SMSC's own view."""

    name = "smsc.js"

    def __init__(self, settings: dict[str, Any]) -> None:
        self.process = subprocess.Popen(
            ["node", str(NODE_PEERS / "smsc.js"), json.dumps({"port": 0, **settings})],
            cwd=NODE_PEERS,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.ps = psutil.Process(self.process.pid)
        # Arrival times (time.time(), comparable with the receiver's) per kind of event.
        self.times: dict[str, list[float]] = defaultdict(list)
        self.refused: list[dict[str, Any]] = []
        self.sessions: list[str] = []  # of the binds accepted, in order
        self.stats: dict[str, Any] | None = None
        self.port = 0
        self._changed = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        self.wait(lambda: self.port != 0, "listening")

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            now = time.time()
            # Three lines a message: classify the common ones without parsing them, since
            # this thread shares the load generator's process.
            if line.startswith('{"event":"submit",'):
                kind = "submit"
            elif line.startswith('{"event":"deliver_resp","kind":"receipt"'):
                kind = "receipt answered"
            elif line.startswith('{"event":"receipt",'):
                continue
            else:
                event = json.loads(line)
                kind = str(event.get("event"))
                if kind == "listening":
                    self.port = int(event["port"])
                elif kind == "bind" and event.get("status") != 0:
                    kind = "bind refused"
                elif kind == "bind":
                    self.sessions.append(str(event["session"]))
                elif kind == "stats":
                    self.stats = event
                elif kind == "submit_refused":
                    self.refused.append(event)
            with self._changed:
                self.times[kind].append(now)
                self._changed.notify_all()

    def count(self, kind: str) -> int:
        with self._changed:
            return len(self.times[kind])

    def wait(self, ready: Any, what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not ready():
                if self.process.poll() is not None or time.monotonic() > deadline:
                    assert self.process.stderr is not None
                    raise SystemExit(f"smsc.js: no {what}; {self.process.stderr.read()[-800:]}")
                self._changed.wait(0.2)

    async def wait_binds(self, total: int) -> None:
        """Until `total` binds have been accepted since the SMSC started."""
        await asyncio.to_thread(self.wait, lambda: self.count("bind") >= total, f"{total} binds")
        if self.count("bind refused"):
            raise SystemExit("smsc.js refused a bind: wrong system_id or password")

    async def quiet(self) -> None:
        """Until every receipt sent has been answered: a gateway may report a delivery
        before it answers the receipt's deliver_sm, and the warm-up's last answers must not
        count in the measurement that follows."""
        await asyncio.to_thread(
            self.wait,
            lambda: self.count("receipt answered") >= self.count("submit"),
            "answers to every receipt",
        )

    def send(self, **command: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    async def max_outstanding(self, binds: int) -> list[int]:
        """The most submit_sm each of the last `binds` binds ever had awaiting a response at
        once: how much of its window the ESME really used."""
        self.stats = None
        self.send(cmd="stats")
        await asyncio.to_thread(self.wait, lambda: self.stats is not None, "stats")
        assert self.stats is not None
        most = self.stats["max_outstanding"]
        return [int(most.get(session, 0)) for session in self.sessions[-binds:]]

    def cpu_seconds(self) -> float:
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                self.send(cmd="stop")
                self.process.wait(timeout=10)
            except (BrokenPipeError, OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait(timeout=10)


@dataclass(frozen=True)
class SmscFigures:
    """What the SMSC saw of one run: counts and rates, first to last of each kind."""

    submits: int
    submit_rate: float
    receipts: int
    receipt_rate: float
    refused: int

    @classmethod
    def since(cls, smsc: NodeSmsc, mark: dict[str, int]) -> SmscFigures:
        def rate(kind: str) -> tuple[int, float]:
            with smsc._changed:
                times = smsc.times[kind][mark.get(kind, 0) :]
            span = times[-1] - times[0] if len(times) > 1 else 0.0
            return len(times), (len(times) / span if span > 0 else float("nan"))

        (submits, submit_rate), (receipts, receipt_rate) = rate("submit"), rate("receipt answered")
        return cls(submits, submit_rate, receipts, receipt_rate, rate("submit_refused")[0])

    @staticmethod
    def mark(smsc: NodeSmsc) -> dict[str, int]:
        with smsc._changed:
            return {kind: len(times) for kind, times in smsc.times.items()}

    def line(self, outstanding: list[int]) -> str:
        window = ", ".join(f"{n}" for n in outstanding)
        return (
            f"smsc      {self.submits:,} submit_sm at {self.submit_rate:,.0f}/s,"
            f" {self.receipts:,} receipts answered at {self.receipt_rate:,.0f}/s"
            f" (first to last of each, as the SMSC saw them); {self.refused} refused;"
            f" most submit_sm awaiting a response at once, per bind: {window}"
        )


# -- part 1: Verbal ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Rate:
    messages: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0


async def verbal_part(options: argparse.Namespace, work: Path, smsc: NodeSmsc) -> Rate:
    carrier = {
        "name": CARRIER,
        "host": "127.0.0.1",
        "port": smsc.port,
        "system_id": SYSTEM_ID,
        "password": PASSWORD,
        "binds": options.binds,
        "window": options.window,
        "throughput": options.throughput,
        "prefixes": [PREFIX],
    }
    settings = {
        "VERBAL_CARRIERS": json.dumps([carrier]),
        "VERBAL_LOG_LEVEL": os.environ.get("VERBAL_LOG_LEVEL", "warning"),
    }
    async with AsyncExitStack() as stack:  # Verbal stops before Kannel starts
        binds_before = smsc.count("bind")
        pipeline = await Pipeline.start(
            stack, work, database_url=None, connections=options.concurrency, settings=settings
        )
        await smsc.wait_binds(binds_before + options.binds)
        # The warm-up runs at full concurrency so that the load's connections are open before
        # the measurement: the same for both gateways.
        if options.warmup:
            await end_to_end(
                pipeline,
                options.warmup,
                rate=None,
                concurrency=options.concurrency,
                first=90_000_000,
                to=destination,
            )
        await smsc.quiet()
        processes: dict[str, Metered] = {**pipeline.processes(), smsc.name: smsc}
        meter = CpuMeter(processes)
        mark = SmscFigures.mark(smsc)
        meter.start()
        result = await end_to_end(
            pipeline, options.count, rate=None, concurrency=options.concurrency, to=destination
        )
        api = LoadFigures.of(result.shots, 201)
        accepted = len(result.accepted)
        print(
            f"accepted  {api.ok:,} at {api.achieved_per_second:,.0f}/s; API latency"
            f" {latency_line(api.latencies)}; errors {api.error_line()}"
        )
        print(SmscFigures.since(smsc, mark).line(await smsc.max_outstanding(options.binds)))
        last = result.last_final()
        overall = Rate(accepted, last - result.first_due)
        print(
            f"overall   {accepted:,} messages from first send to last delivered callback in"
            f" {overall.seconds:,.2f} s = {overall.per_second:,.0f} msg/s"
        )
        print("\n".join(await result.outcome(pipeline.database, "delivered")))
        print(meter.line(pipeline.servers, accepted, "message"), flush=True)
        return overall


# -- part 2: Kannel ---------------------------------------------------------------------------


class Kannel:
    """bearerbox (`binds` SMPP transceivers to the SMSC) and smsbox, one config file."""

    USER, USER_PASSWORD, ADMIN_PASSWORD = "bench", "bench", "bench"

    def __init__(self, work: Path, smsc_port: int, *, binds: int, window: int) -> None:
        self.work = work
        self.sendsms_port = free_port()
        self.smsbox_port = free_port()
        self.config = work / "kannel.conf"
        self.boxes: list[Process] = []
        # Several smsc groups with one smsc-id are Kannel's way to several binds to one
        # SMSC; sendsms's smsc=bench spreads the messages over them.
        smsc_groups = "".join(
            f"""
group = smsc
smsc = smpp
smsc-id = bench
host = 127.0.0.1
port = {smsc_port}
our-host = 127.0.0.1
transceiver-mode = true
smsc-username = {SYSTEM_ID}
smsc-password = {PASSWORD}
system-type = ""
max-pending-submits = {window}
reconnect-delay = 1
enquire-link-interval = 30
"""
            for _ in range(binds)
        )
        # Every listener is pinned to 127.0.0.1, belt and braces with the namespace. Logs at
        # warning, as Verbal's are: Kannel's debug log would cost it a write per PDU.
        self.config.write_text(
            f"""group = core
admin-port = {free_port()}
admin-interface = 127.0.0.1
admin-password = {self.ADMIN_PASSWORD}
admin-allow-ip = 127.0.0.1
smsbox-port = {self.smsbox_port}
smsbox-interface = 127.0.0.1
box-allow-ip = 127.0.0.1
dlr-storage = internal
log-file = "{work / "bearerbox.log"}"
log-level = 2
{smsc_groups}
group = smsbox
bearerbox-host = 127.0.0.1
sendsms-port = {self.sendsms_port}
sendsms-interface = 127.0.0.1
log-file = "{work / "smsbox.log"}"
log-level = 2

group = sendsms-user
username = {self.USER}
password = {self.USER_PASSWORD}

group = sms-service
keyword = default
text = ""
max-messages = 0
"""
        )
        self.url = f"http://127.0.0.1:{self.sendsms_port}/cgi-bin/sendsms"

    def start(self) -> None:
        """bearerbox, then smsbox once bearerbox takes boxes (smsbox gives up at once if it
        cannot connect), then until smsbox's sendsms port answers."""
        for box, port in (("bearerbox", self.smsbox_port), ("smsbox", self.sendsms_port)):
            # A Process for its logs, CPU and stop; it serves no port of its own choosing.
            binary = kannel_box(box)
            assert binary is not None
            self.boxes.append(Process(box, [binary, str(self.config)], self.work, {**os.environ}))
            self._wait_port(port, f"{box}'s port {port}")

    def _wait_port(self, port: int, what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            for box in self.boxes:
                box.check_alive()
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{what} never opened") from None
                time.sleep(0.1)

    def stop(self) -> None:
        # smsbox first, so that bearerbox does not queue for a box that is going.
        for box in reversed(self.boxes):
            box.stop()


async def kannel_load(
    http: aiohttp.ClientSession,
    kannel: Kannel,
    receiver: Process,
    count: int,
    *,
    concurrency: int,
    first: int,
) -> tuple[list[Any], dict[str, float]]:
    """Send `count` messages through sendsms, wait for every delivered report (or for
    nothing to arrive for STALL_SECONDS); the shots and each message's report time."""
    dlr = receiver.url("/kannel-dlr")

    async def fire(i: int) -> tuple[int, str]:
        tag = f"k{first + i}"
        query = urlencode(
            {
                "username": Kannel.USER,
                "password": Kannel.USER_PASSWORD,
                "smsc": "bench",
                "from": SENDER.lstrip("+"),
                "to": destination(first + i).lstrip("+"),
                "text": f"bench {first + i}",
                "dlr-mask": "1",
                # smsbox decodes the query once, then fills in %d (the report's type).
                "dlr-url": f"{dlr}?id={tag}&type=%d",
            }
        )
        async with http.get(URL(f"{kannel.url}?{query}", encoded=True)) as response:
            text = await response.text()
        return response.status, tag if response.status == 202 else text[:200]

    before = int((await peer_json(receiver, "/stats"))["final"])
    shots = await offer(fire, count, rate=None, concurrency=concurrency)
    expected = {s.value for s in shots if s.status == 202}
    # Poll the small /stats; the moment of each report is the receiver's, not the poll's.
    seen, moved = -1, time.monotonic()
    while seen < before + len(expected) and time.monotonic() - moved < STALL_SECONDS:
        for box in kannel.boxes:
            box.check_alive()
        await asyncio.sleep(0.1)
        final = int((await peer_json(receiver, "/stats"))["final"])
        if final != seen:
            seen, moved = final, time.monotonic()
    got = await peer_json(receiver, "/finals")
    return shots, {sid: float(t) for sid, t in got.items() if sid in expected}


async def kannel_part(options: argparse.Namespace, work: Path, smsc: NodeSmsc) -> Rate:
    async with AsyncExitStack() as stack:
        receiver = start_peer("dlr-receiver", work, "callbacks")
        stack.callback(receiver.stop)
        binds_before = smsc.count("bind")
        kannel = Kannel(work, smsc.port, binds=options.binds, window=options.window)
        stack.callback(kannel.stop)
        await asyncio.to_thread(kannel.start)
        await smsc.wait_binds(binds_before + options.binds)
        http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=options.concurrency),
            timeout=aiohttp.ClientTimeout(total=120),
        )
        stack.push_async_callback(http.close)
        # At full concurrency, as Verbal's: opening the connections (and the 1 s a SYN
        # dropped from a short listen backlog costs) is paid before the measurement.
        if options.warmup:
            await kannel_load(
                http,
                kannel,
                receiver,
                options.warmup,
                concurrency=options.concurrency,
                first=90_000_000,
            )
        await smsc.quiet()
        processes: dict[str, Metered] = {
            **{box.name: box for box in kannel.boxes},
            "receiver": receiver,
            smsc.name: smsc,
        }
        meter = CpuMeter(processes)
        mark = SmscFigures.mark(smsc)
        meter.start()
        shots, finals = await kannel_load(
            http, kannel, receiver, options.count, concurrency=options.concurrency, first=0
        )
        api = LoadFigures.of(shots, 202)
        accepted = [s for s in shots if s.status == 202]
        print(
            f"accepted  {api.ok:,} at {api.achieved_per_second:,.0f}/s; sendsms latency"
            f" {latency_line(api.latencies)}; errors {api.error_line()}"
        )
        print(SmscFigures.since(smsc, mark).line(await smsc.max_outstanding(options.binds)))
        first_due = min(s.due for s in shots)
        last = max(finals.values(), default=first_due)
        overall = Rate(len(finals), last - first_due)
        print(
            f"overall   {len(finals):,} messages from first send to last delivered report in"
            f" {overall.seconds:,.2f} s = {overall.per_second:,.0f} msg/s"
        )
        latencies = [finals[s.value] - s.due for s in accepted if s.value in finals]
        print(f"latency   due to delivered report: {latency_line(latencies)}")
        stats = await peer_json(receiver, "/stats")
        missing = len(accepted) - len(finals)
        print(
            f"reports   {stats['callbacks']:,} received, by status: "
            + ", ".join(f"{k} {v:,}" for k, v in sorted(stats["statuses"].items()))
            + f" (warm-up included); delivered reports missing for {missing:,}"
            + (" (waits ended: nothing arrived for 60 s)" if missing else "")
        )
        print(meter.line(kannel.boxes, len(accepted), "message", label="Kannel"), flush=True)
        return overall


# -- the run ----------------------------------------------------------------------------------


async def measure(options: argparse.Namespace, kannel_skipped: str | None) -> None:
    async with AsyncExitStack() as stack:
        work = workdir(stack, options.workdir)
        smsc = NodeSmsc(
            {
                "system_id": SYSTEM_ID,
                "password": PASSWORD,
                "receipt_delay_ms": options.receipt_delay_ms,
                "resp_delay_ms": options.response_delay_ms,
            }
        )
        stack.callback(smsc.stop)
        delay = options.response_delay_ms
        answers = f"{delay} ms after each submit_sm" if delay else "at once"
        print(
            f"settings  {options.count:,} messages each ({options.warmup} warm-up first),"
            f" {options.concurrency} HTTP requests in flight; {options.binds} transceiver"
            f" bind(s), window {options.window} submit_sm each, throughput cap"
            f" {options.throughput:g} msg/s (0: none); smsc.js answers {answers},"
            f" receipt {options.receipt_delay_ms} ms after, on the same bind",
            flush=True,
        )
        print("\nVerbal: Twilio API -> SMPP carrier -> submit_sm -> receipt -> status callback")
        verbal = await verbal_part(options, work, smsc)
        if kannel_skipped:
            print(f"\nKannel: skipped, {kannel_skipped}")
            return
        print(
            "\nKannel: smsbox sendsms -> bearerbox -> submit_sm -> receipt -> dlr-url"
            f" (same SMSC process, {options.binds} bind(s), max-pending-submits {options.window})"
        )
        kannel = await kannel_part(options, work, smsc)
        ratio = verbal.per_second / kannel.per_second if kannel.per_second else float("nan")
        print(
            f"\nside by side: Verbal {verbal.per_second:,.0f} msg/s, Kannel"
            f" {kannel.per_second:,.0f} msg/s, Verbal / Kannel = {ratio:.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000, help="messages per gateway (10000)")
    parser.add_argument("--window", type=int, default=10, help="submit_sm in flight per bind (10)")
    parser.add_argument("--binds", type=int, default=1, help="SMPP binds per gateway (1)")
    parser.add_argument(
        "--throughput", type=float, default=0.0, help="Verbal's msg/s cap on the carrier (0: none)"
    )
    parser.add_argument(
        "--receipt-delay-ms", type=int, default=20, help="SMSC's delay before a receipt (20)"
    )
    parser.add_argument(
        "--response-delay-ms",
        type=int,
        default=0,
        help="SMSC's delay before each submit_sm_resp (0): with a delay, the window shows"
        " (an SMSC that answers at once never has two submits awaiting an answer)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=64, help="HTTP requests in flight, both gateways (64)"
    )
    parser.add_argument("--warmup", type=int, default=200, help="messages sent before measuring")
    parser.add_argument("--no-kannel", action="store_true", help="measure Verbal only")
    parser.add_argument(
        "--workdir",
        type=Path,
        help="keep the logs (Verbal's, Kannel's, the receivers') and the SQLite file here",
    )
    options = parser.parse_args()
    if missing := node_peers_missing():
        raise SystemExit(f"smsc.js cannot run: {missing}")
    skipped = "--no-kannel" if options.no_kannel else kannel_missing()
    if os.environ.get(IN_NAMESPACE):
        bring_up_loopback()
        network = "a network namespace of its own, with only lo (unshare)"
    else:
        why = reexec_in_namespace()  # returns only when it could not
        network = f"the machine's own ({why})"
        skipped = skipped or f"it runs only in a loopback-only network namespace, and {why}"
    if not only_loopback() and not skipped:
        skipped = "this network namespace has interfaces besides lo"
    print("SMPP: Verbal and Kannel through one node-smpp SMSC, HTTP in to HTTP callback out")
    for line in machine_notes("SQLite (temp file)"):
        print("  " + line)
    print(f"  peers     node {versions()}")
    print(f"  network   {network}", flush=True)
    run(measure(options, skipped))


if __name__ == "__main__":
    main()
