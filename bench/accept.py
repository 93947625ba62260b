"""Accepting messages: `POST Messages.json` requests/s and latency at fixed offered loads.

    python bench/accept.py [--rates 250,500,1000] [--seconds 10] [--database-url URL]

A real `verbal serve` (a temp SQLite file, or a scratch database on the PostgreSQL server
of --database-url) takes Twilio-API sends from this process, an aiohttp client offering
each rate open-loop: requests start on a fixed schedule however slowly the server answers,
and latency counts from when each was due, so a queue in front of the server shows.
The server also dispatches what it accepts, as it would in use (the sandbox delivers each
message), so between two rates the benchmark waits for it to drain. Target (issue 8):
p99 ≤ 20 ms at 1,000 requests/s on 2 cores with embedded SQLite.
"""

from __future__ import annotations

import argparse
import time
from contextlib import AsyncExitStack

from _harness import (
    CpuMeter,
    LoadFigures,
    Pipeline,
    add_common_arguments,
    database_label,
    latency_line,
    print_header,
    run,
    workdir,
)


async def measure(options: argparse.Namespace) -> None:
    async with AsyncExitStack() as stack:
        pipeline = await Pipeline.start(
            stack,
            workdir(stack, options.workdir),
            database_url=options.database_url,
            workers=options.workers,
            receiver=False,
            connections=options.connections,
        )
        # A first short burst pays for imports, compiled statements and connections, so
        # that the first rate is not charged for them.
        if options.warmup:
            await pipeline.send(options.warmup, rate=None, concurrency=8, first=900_000)
            if pipeline.dispatching:
                await pipeline.settle()

        print(
            f"{'offered/s':>9} {'achieved/s':>10} {'ok':>7}  latency from due to answer"
            f"{'':22} errors"
        )
        notes = []
        first = 0
        for rate in options.rates:
            count = round(rate * options.seconds)
            meter = CpuMeter(pipeline.processes())
            meter.start()
            shots = await pipeline.send(count, rate=rate, first=first)
            figures = LoadFigures.of(shots, 201)
            first += count
            print(
                f"{rate:9,.0f} {figures.achieved_per_second:10,.1f} {figures.ok:7,}  "
                f"{latency_line(figures.latencies):48} {figures.error_line()}",
                flush=True,
            )
            drain = ""
            if pipeline.dispatching:
                answered = max((s.due + s.latency for s in shots), default=time.time())
                settled_at, _ = await pipeline.settle()
                drain = f"; drained {max(0.0, settled_at - answered):.1f} s after the last answer"
            unit = "message, accepted and dispatched" if pipeline.dispatching else "message"
            cpu = meter.line(pipeline.servers, figures.ok, unit)
            notes.append(f"at {rate:,.0f}/s: {cpu}{drain}")
            if warning := figures.lag_warning(rate):
                notes.append(f"at {rate:,.0f}/s: {warning}")
        print()
        for note in notes:
            print(note)
        print("\ntarget: p99 ≤ 20 ms at 1,000 requests/s (2 cores, embedded SQLite)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rates",
        type=lambda text: [float(r) for r in text.split(",")],
        default=[250.0, 500.0, 1000.0],
        help="offered loads in requests/s, comma-separated (default 250,500,1000)",
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="per rate (default 10)")
    add_common_arguments(parser)
    parser.add_argument(
        "--connections", type=int, default=256, help="client connection pool (default 256)"
    )
    parser.add_argument("--warmup", type=int, default=200, help="messages sent before measuring")
    options = parser.parse_args()
    print_header("accept: POST Messages.json at fixed offered loads", database_label(options))
    run(measure(options))


if __name__ == "__main__":
    main()
