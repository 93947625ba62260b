"""Concurrent calls' media in one process: RTP sessions in pairs over loopback.

    python bench/calls.py [--calls 200] [--seconds 20] [--warmup 2] [--codec PCMU]

Each call is two RTP sessions of `verbal.media` talking to each other on 127.0.0.1, both
ticking on the process's one media clock: each side plays a speech prompt (espeak-ng,
synthesised once) in a loop and records what the other side sends, so every tick encodes,
sends, receives, decodes and places on a recording timeline one 20 ms frame per session,
which is what an answered call costs the media engine whatever the app does. There is no
SIP: `open_call` sets up one call's media as the call controller will after its offer and
answer, and is the unit to put SIP in front of.

After `--warmup` seconds the counters start; over `--seconds` it prints the calls, frames
due and sent, **late frames** (sent more than 10 ms after their tick was due, or skipped
after a stall; see verbal/media/clock.py), packets sent and received, the CPU the process
used in % of one core, and its resident memory. The target (issue 18): at least 200
concurrent calls with under 1 % late frames on a 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # measure this checkout

import psutil
from _harness import mib, print_header, run

from verbal.media.clock import TICK, shared_clock
from verbal.media.g711 import Codec
from verbal.media.prompts import synthesise
from verbal.media.recorder import Recorder
from verbal.media.session import PortPool, RtpSession

PROMPT = "Thank you for calling. All our agents are busy. Please stay on the line."
TARGET_CALLS = 200
TARGET_LATE = 0.01


@dataclass
class Call:
    """One call's media: the caller's leg and the callee's, each playing to the other."""

    caller: RtpSession
    callee: RtpSession
    players: list[asyncio.Task[None]]

    @property
    def sessions(self) -> tuple[RtpSession, RtpSession]:
        return self.caller, self.callee

    def close(self) -> None:
        for task in self.players:
            task.cancel()
        self.caller.close()
        self.callee.close()


async def play_forever(session: RtpSession, pcm: bytes) -> None:
    while True:
        await session.player.play(pcm)


async def open_call(prompt: bytes, codec: Codec, ports: PortPool, record_seconds: float) -> Call:
    """Both legs of one call, as after SDP offer and answer: bound, pointed at each other,
    playing and recording."""
    caller = await RtpSession.open(codec=codec, ports=ports)
    callee = await RtpSession.open(codec=codec, ports=ports, remote=caller.local_address)
    caller.update(remote=callee.local_address)
    players = []
    for session in (caller, callee):
        session.recorder = Recorder(max_seconds=record_seconds)
        players.append(asyncio.create_task(play_forever(session, prompt)))
    return Call(caller, callee, players)


@dataclass
class Counters:
    frames: int
    late: int
    sent: int
    received: int
    dropped: int
    cpu: float
    machine_busy: float  # CPU seconds every process of the machine used, all cores
    at: float

    @classmethod
    def now(cls, calls: list[Call], process: psutil.Process) -> Counters:
        clock = shared_clock()
        sessions = [s for call in calls for s in call.sessions]
        times = process.cpu_times()
        machine = psutil.cpu_times()
        return cls(
            frames=clock.frames,
            late=clock.late_frames,
            sent=sum(s.stats.packets_sent for s in sessions),
            received=sum(s.stats.packets_received for s in sessions),
            dropped=sum(s.stats.dropped for s in sessions),
            cpu=times.user + times.system,
            machine_busy=sum(machine) - machine.idle - getattr(machine, "iowait", 0.0),
            at=time.monotonic(),
        )


async def main(options: argparse.Namespace) -> None:
    process = psutil.Process()
    prompt = await synthesise(PROMPT)
    codec = Codec[options.codec]
    first, last = (int(port) for port in options.ports.split("-"))
    ports = PortPool(first, last)
    rss_before = process.memory_info().rss
    calls = [
        await open_call(prompt, codec, ports, options.record_seconds) for _ in range(options.calls)
    ]
    try:
        await asyncio.sleep(options.warmup)
        clock = shared_clock()
        clock.max_lateness = 0.0  # the worst of the measurement, not of the start
        before = Counters.now(calls, process)
        await asyncio.sleep(options.seconds)
        after = Counters.now(calls, process)
        rss = process.memory_info().rss
    finally:
        for call in calls:
            call.close()

    seconds = after.at - before.at
    frames = after.frames - before.frames
    late = after.late - before.late
    sent, received = after.sent - before.sent, after.received - before.received
    cpu = after.cpu - before.cpu
    sessions = 2 * options.calls
    due = round(sessions * seconds / TICK)
    late_ratio = late / frames if frames else 1.0
    others = (after.machine_busy - before.machine_busy) - cpu
    cores = psutil.cpu_count() or 1
    loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
    print(
        f"calls     {options.calls} ({sessions} RTP sessions, {codec.name}, {loop}),"
        f" {seconds:.1f} s measured after {options.warmup:g} s of warm-up"
    )
    print(
        f"frames    {due:,} due, {frames:,} counted ({sent:,} sent, the rest skipped after"
        f" stalls); late (> 10 ms) {late:,} ({late_ratio * 100:.3f} %),"
        f" worst {clock.max_lateness * 1000:.1f} ms"
    )
    print(
        f"packets   sent {sent:,}, received {received:,}"
        f" ({received / sent * 100 if sent else 0:.2f} %), dropped {after.dropped - before.dropped}"
    )
    print(
        f"cpu       {cpu / seconds * 100:.1f} % of one core ({cpu:.1f} s in {seconds:.1f} s),"
        f" {cpu / seconds * 100 / sessions:.3f} % per RTP session; the machine's other"
        f" processes used {others / seconds * 100:.0f} % of a core (of {cores})"
    )
    print(f"memory    RSS {mib(rss)} ({mib(rss_before)} before the calls)")
    met = options.calls >= TARGET_CALLS and late_ratio < TARGET_LATE
    print(
        f"target    >= {TARGET_CALLS} calls with < {TARGET_LATE:.0%} late frames:"
        f" {'met' if met else 'NOT met'}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=TARGET_CALLS)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--codec", choices=[codec.name for codec in Codec], default="PCMU")
    parser.add_argument(
        "--ports", default="20000-29999", help="the RTP port range (two ports a call)"
    )
    parser.add_argument(
        "--record-seconds",
        type=float,
        default=10.0,
        help="each recording's limit: beyond it packets are still received and counted",
    )
    parser.add_argument(
        "--asyncio",
        action="store_true",
        help="run on asyncio's own loop rather than uvloop (which `verbal serve` uses)",
    )
    options = parser.parse_args()
    print_header("calls.py: RTP media of concurrent calls in one process", "none (media only)")
    if options.asyncio:
        asyncio.run(main(options))
    else:
        run(main(options))
