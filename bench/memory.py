"""Resident memory of the server: idle, under end-to-end load, per 10,000 stored messages.

    python bench/memory.py [--rate 500] [--seconds 30] [--store 10000] [--steps 3]
    python bench/memory.py --soak-minutes [10] [--rate 500] [--sample-seconds 5]

The load is end_to_end.py's: Twilio-API sends with status callbacks to a receiver in its own
process, the sandbox delivering every message. RSS is that of the Verbal server processes
(summed, with --workers), read with psutil.

Default mode: RSS at idle; its peak and mean while --rate msg/s are offered for --seconds;
then --steps batches of --store messages, with RSS and the database's size after each, and
the change per 10,000 stored messages (messages live in the database, so RSS should not
follow them). Soak mode: --rate msg/s for --soak-minutes, RSS sampled every
--sample-seconds; start (after --warmup-seconds of load, once caches and pools have filled),
peak, end and the growth. Target (issue 8): no growth beyond 10 % over a 10-minute soak.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from contextlib import AsyncExitStack

from _harness import (
    Pipeline,
    RssSampler,
    add_common_arguments,
    database_label,
    end_to_end,
    mib,
    print_header,
    run,
    workdir,
)


async def idle(pipeline: Pipeline, seconds: float) -> int:
    """RSS once the server has sat idle for `seconds`: the median of a sample a second."""
    sampler = RssSampler(pipeline.servers, interval=1.0)
    cpu = sum(p.cpu_seconds() for p in pipeline.servers)
    sampler.start()
    await asyncio.sleep(seconds)
    await sampler.stop()
    cpu = sum(p.cpu_seconds() for p in pipeline.servers) - cpu
    rss = int(statistics.median(r for _, r in sampler.samples))
    pss = sum(p.pss() for p in pipeline.servers)
    processes = sum(p.processes() for p in pipeline.servers)
    print(
        f"idle      RSS {mib(rss)} after {seconds:g} s (PSS {mib(pss)},"
        f" {processes} processes); CPU while idle {cpu / seconds:.1%}"
    )
    return rss


async def profile(pipeline: Pipeline, options: argparse.Namespace) -> None:
    await idle(pipeline, options.idle_seconds)

    count = round(options.rate * options.seconds)
    sampler = RssSampler(pipeline.servers, interval=0.5)
    sampler.start()
    result = await end_to_end(pipeline, count, rate=options.rate)
    await sampler.stop()
    # The sampler ran on while the backlog drained: the peak counts that, the mean not.
    window = result.window_end - result.first_due
    offered = [rss for t, rss in sampler.samples if t <= window] or [sampler.samples[0][1]]
    peak = max(rss for _, rss in sampler.samples)
    print(
        f"load      RSS mean {mib(statistics.mean(offered))} while {options.rate:,.0f} msg/s"
        f" were offered for {options.seconds:g} s; peak {mib(peak)} (load and drain)"
    )
    print(f"          {result.summary(options.rate)}")

    print(f"\n{'stored messages':>15} {'RSS':>12} {'database':>12}")
    points: list[tuple[int, int, int]] = []
    for step in range(options.steps + 1):
        if step:
            await end_to_end(pipeline, options.store, rate=None, concurrency=options.concurrency)
        await asyncio.sleep(2)  # let the last callbacks' buffers go before reading RSS
        stored = (await pipeline.database.progress()).messages
        rss = RssSampler(pipeline.servers, 1).sample()
        size = await pipeline.database.size_bytes()
        points.append((stored, rss, size))
        print(f"{stored:15,} {mib(rss):>12} {mib(size):>12}", flush=True)
    (first, rss0, size0), (last, rss1, size1) = points[0], points[-1]
    if last > first:
        per = 10_000 / (last - first)
        print(
            f"per 10,000 stored messages: RSS {(rss1 - rss0) * per / 2**20:+,.1f} MiB,"
            f" database {(size1 - size0) * per / 2**20:+,.1f} MiB"
        )


async def soak(pipeline: Pipeline, options: argparse.Namespace) -> None:
    idle_rss = await idle(pipeline, options.idle_seconds)
    seconds = options.soak_minutes * 60
    print(
        f"soak      {options.rate:,.0f} msg/s for {options.soak_minutes:g} min,"
        f" RSS every {options.sample_seconds:g} s:"
    )
    sampler = RssSampler(pipeline.servers, interval=options.sample_seconds, echo=True)
    sampler.start()
    result = await end_to_end(pipeline, round(options.rate * seconds), rate=options.rate)
    await sampler.stop()
    # Only samples taken while load was offered: the drain afterwards is another regime.
    window = result.window_end - result.first_due
    during = [(t, rss) for t, rss in sampler.samples if t <= window + options.sample_seconds]
    settled = [(t, rss) for t, rss in during if t >= options.warmup_seconds] or during
    start, end = settled[0][1], settled[-1][1]
    peak = max(rss for _, rss in settled)
    growth = (end - start) / start
    print(f"          {result.summary(options.rate)}")
    print(
        f"RSS       idle {mib(idle_rss)}; start {mib(start)} (at {settled[0][0]:,.0f} s),"
        f" peak {mib(peak)}, end {mib(end)} (at {settled[-1][0]:,.0f} s)"
    )
    print(f"growth    {growth:+.1%} from start to end, {(peak - start) / start:+.1%} to the peak")
    print("\ntarget: no growth of resident memory beyond 10 % over a 10-minute soak")


async def measure(options: argparse.Namespace) -> None:
    async with AsyncExitStack() as stack:
        pipeline = await Pipeline.start(
            stack,
            workdir(stack, options.workdir),
            database_url=options.database_url,
            workers=options.workers,
        )
        if not pipeline.dispatching:
            raise SystemExit("--workers 0 dispatches nothing: the load needs a worker")
        if options.soak_minutes:
            await soak(pipeline, options)
        else:
            await profile(pipeline, options)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=500.0, help="offered msg/s (default 500)")
    parser.add_argument(
        "--seconds", type=float, default=30.0, help="load phase of the default mode (30)"
    )
    parser.add_argument(
        "--store", type=int, default=10_000, help="messages per storage step (10000)"
    )
    parser.add_argument("--steps", type=int, default=3, help="storage steps (default 3)")
    parser.add_argument(
        "--concurrency", type=int, default=64, help="requests in flight in storage steps (64)"
    )
    parser.add_argument("--idle-seconds", type=float, default=5.0, help="idle phase (default 5)")
    parser.add_argument(
        "--soak-minutes",
        type=float,
        nargs="?",
        const=10.0,
        default=0.0,
        help="soak instead: offer --rate for this long (alone: 10, the issue's soak)",
    )
    parser.add_argument(
        "--sample-seconds", type=float, default=5.0, help="soak: RSS sample interval (5)"
    )
    parser.add_argument(
        "--warmup-seconds",
        type=float,
        default=60.0,
        help="soak: growth counts from this far into the load (default 60)",
    )
    add_common_arguments(parser)
    options = parser.parse_args()
    print_header("memory: resident set size of the server", database_label(options))
    run(measure(options))


if __name__ == "__main__":
    main()
