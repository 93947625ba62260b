"""End to end: messages/s from API accept to the final status callback at a real receiver.

    python bench/end_to_end.py [--rate 2000] [--seconds 60]        sustained, open-loop
    python bench/end_to_end.py --count 10000 [--concurrency 64]     a fixed count, flat out
    python bench/end_to_end.py --messaging-service 4 ...            through a Messaging Service

Each message goes in through the Twilio API with a StatusCallback, out through the sandbox
carrier (which delivers it at once), and is done when its final callback ("delivered") reaches
a receiver in a process of its own, which notes the moment. With --messaging-service N, the
messages name a Messaging Service (`MessagingServiceSid`, no `From`) whose pool holds N
numbers, created before the warm-up; each picks its sender from the pool. Sustained mode
offers --rate messages/s for --seconds and reports what came out within that window, the
backlog at its end and how long the rest took to drain; a fixed count is sent as fast as the
API takes it.
Either way the run ends with every message final, checked in the database (read-only).
SQLite by default; --database-url for PostgreSQL, with --workers N for an api process and N
workers. While the load runs, `/healthz` is asked every 100 ms on a connection of its own, and
the latency of its answers is reported: a server under overload must still answer it.

Targets (issue 16): ≥ 1,500 msg/s sustained for 60 s on 2 cores with embedded SQLite, every
message reaching a final state; offered 5x that, 429s with Twilio's 20429, `/healthz` p99
≤ 50 ms and an in-window final rate ≥ 80 % of the sustained one, nothing accepted lost.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from contextlib import AsyncExitStack

from _harness import (
    CpuMeter,
    LoadFigures,
    Pipeline,
    RssSampler,
    add_common_arguments,
    database_label,
    end_to_end,
    latency_line,
    mib,
    print_header,
    run,
    workdir,
)

from verbal.webhooks.keepalive import KeepAliveClient, RequestFailed

HEALTH_INTERVAL_SECONDS = 0.1


class HealthProbe:
    """Asks `/healthz` every `HEALTH_INTERVAL_SECONDS` while it runs; notes each answer's
    latency (a probe with no answer within 5 s counts as 5 s)."""

    def __init__(self, base_url: str) -> None:
        self.url = base_url.rstrip("/") + "/healthz"
        self.latencies: list[float] = []
        self.failures = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._probe())

    async def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _probe(self) -> None:
        client = KeepAliveClient()
        try:
            while True:
                started = time.perf_counter()
                try:
                    answer = await client.request(
                        "GET", self.url, {}, None, excerpt_limit=256, time_limit=5.0
                    )
                    if answer.status != 200:
                        self.failures += 1
                except (RequestFailed, OSError, TimeoutError):
                    self.failures += 1
                self.latencies.append(time.perf_counter() - started)
                await asyncio.sleep(HEALTH_INTERVAL_SECONDS)
        finally:
            client.close()

    def line(self) -> str:
        failed = f", {self.failures} not 200" if self.failures else ""
        return f"healthz   {len(self.latencies)} probes: {latency_line(self.latencies)}{failed}"


async def measure(options: argparse.Namespace) -> None:
    async with AsyncExitStack() as stack:
        pipeline = await Pipeline.start(
            stack,
            workdir(stack, options.workdir),
            database_url=options.database_url,
            workers=options.workers,
            connections=options.connections,
        )
        if not pipeline.dispatching:
            raise SystemExit("--workers 0 dispatches nothing: end to end needs a worker")
        if options.messaging_service:
            service = await pipeline.send_through_service(options.messaging_service)
            print(f"sender    Messaging Service {service}, {options.messaging_service} numbers")
        if options.warmup:
            await end_to_end(pipeline, options.warmup, rate=None, concurrency=8, first=900_000)
        meter = CpuMeter(pipeline.processes())
        memory = RssSampler(pipeline.servers, interval=1.0)
        health = HealthProbe(pipeline.api.base_url)  # type: ignore[union-attr]
        meter.start()
        memory.start()
        health.start()
        if options.count:
            rate = None
            count = options.count
            print(f"offered   {count:,} messages, {options.concurrency} requests in flight")
        else:
            rate = options.rate
            count = round(options.rate * options.seconds)
            print(f"offered   {rate:,.0f} msg/s for {options.seconds:g} s ({count:,} messages)")
        result = await end_to_end(pipeline, count, rate=rate, concurrency=options.concurrency)
        await memory.stop()
        await health.stop()

        api = LoadFigures.of(result.shots, 201)
        window = result.window_end - result.first_due
        accepted = len(result.accepted)
        print(
            f"accepted  {api.ok:,} at {api.achieved_per_second:,.0f}/s; API latency"
            f" {latency_line(api.latencies)}; errors {api.error_line()}"
        )
        if rate is not None:
            done = result.done_by(result.window_end)
            print(
                f"in window {done:,} final callbacks in {window:,.1f} s ="
                f" {done / window:,.0f} msg/s"
            )
            backlog = result.backlog
            print(
                f"backlog   at the window's end: {backlog.not_final:,} messages not final,"
                f" {backlog.work:,} with work left"
            )
        last = result.last_final()
        print(
            f"drained   last final callback {last - result.window_end:,.1f} s after the"
            f" {'window' if rate is not None else 'last answer'}"
            f" (database settled {result.settled_at - result.window_end:,.1f} s after)"
        )
        overall = accepted / (last - result.first_due) if accepted else 0.0
        print(health.line())
        print(
            f"overall   {accepted:,} messages from first send to last final callback in"
            f" {last - result.first_due:,.1f} s = {overall:,.0f} msg/s"
        )
        print("\n".join(await result.outcome(pipeline.database)))
        peak = max(rss for _, rss in memory.samples)
        print(f"memory    server RSS peak {mib(peak)}")
        print(meter.line(pipeline.servers, accepted, "message"))
        if warning := api.lag_warning(rate):
            print(warning)
        print(
            "\ntargets: ≥ 1,500 msg/s sustained for 60 s, every message final (2 cores,"
            " embedded SQLite); at 5x overload /healthz p99 ≤ 50 ms and in-window ≥ 80 % of"
            " the sustained rate"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=2000.0, help="offered msg/s (default 2000)")
    parser.add_argument("--seconds", type=float, default=60.0, help="window (default 60)")
    parser.add_argument(
        "--count", type=int, help="send this many as fast as the API takes them instead"
    )
    parser.add_argument(
        "--concurrency", type=int, default=64, help="requests in flight with --count (64)"
    )
    add_common_arguments(parser)
    parser.add_argument(
        "--connections", type=int, default=256, help="client connection pool (default 256)"
    )
    parser.add_argument("--warmup", type=int, default=200, help="messages sent before measuring")
    parser.add_argument(
        "--messaging-service",
        type=int,
        metavar="N",
        help="send with MessagingServiceSid through a service of N pool numbers (1 to 99)",
    )
    options = parser.parse_args()
    print_header("end to end: API accept to final status callback", database_label(options))
    run(measure(options))


if __name__ == "__main__":
    main()
