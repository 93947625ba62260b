"""App round trip: a handset's text -> the app's document -> the reply in the handset's inbox.

    python bench/app_round_trip.py [--sessions 2000] [--dialects rcml,plivo,tropo]

Per dialect, a tiny app in a process of its own answers every request with one fixed reply
document (TwiML/RCML `<Message>`, Plivo XML `<Message>`, Tropo JSON `say`); a number of the
account runs it. Texts from distinct sandbox handsets are injected through the sandbox API
(`POST /sandbox/handsets/{number}/messages`), each starting a session: the inbound job, a
step that fetches the document and accepts the reply, the reply's submit. A session is done
when its reply is in the handset's inbox or it ended without one (an error), read from the
database read-only. Sessions/s is the done sessions over first text to last reply.
Texts go in as fast as the API takes them (--concurrency in flight), or open-loop at --rate.
Verbal runs as `verbal serve` does by default: on SQLite, the API process and the pipeline
process it forks, both counted in the CPU figures (`VERBAL_SQLITE_PROCESSES=1` in the
environment measures the one-process layout instead).
Targets (issue 17): ≥ 500 sessions/s per dialect on 2 cores with embedded SQLite, ≤ 3 ms of
Verbal's CPU per session.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from contextlib import AsyncExitStack

from _harness import (
    STALL_SECONDS,
    CpuMeter,
    LoadFigures,
    Pipeline,
    Shot,
    add_common_arguments,
    cli,
    database_label,
    handset,
    latency_line,
    offer,
    peer_json,
    print_header,
    run,
    start_peer,
    workdir,
)

DIALECTS = ("rcml", "plivo", "tropo")
NORMAL_END = "the document ended"
WARMUP_BASE = 900_000  # warm-up handsets are numbered from here, measured ones from 0


class Dialect:
    """One dialect's app, its number and the queries that follow its sessions."""

    def __init__(self, pipeline: Pipeline, name: str, index: int) -> None:
        self.pipeline = pipeline
        self.name = name
        self.number = f"+1555000110{index}"
        self.block = 4 + index  # its handsets: +1555{block}NNNNNN

    def setup(self) -> None:
        env, workdir, sid = self.pipeline.env, self.pipeline.workdir, self.pipeline.credentials
        self.app = start_peer(f"app-{self.name}", workdir, "app", "--dialect", self.name)
        cli(env, workdir, "numbers", "add", self.number, "--account", sid.account_sid)
        created = cli(
            env,
            workdir,
            *("apps", "create", "--dialect", self.name, "--sms-url", self.app.url("/app")),
            *("--name", f"bench {self.name}", "--account", sid.account_sid, "--json"),
        )
        application = json.loads(created)["sid"]
        cli(env, workdir, "numbers", "attach", self.number, "--app", application)

    def handsets(self, first: int, count: int) -> str:
        """SQL: the handsets numbered first … first + count - 1 (fixed width, so a range)."""
        low, high = handset(first, self.block), handset(first + count - 1, self.block)
        return f"BETWEEN '{low}' AND '{high}'"

    async def text(self, count: int, first: int, options: argparse.Namespace) -> list[Shot]:
        http = self.pipeline.http
        assert http is not None

        async def fire(i: int) -> tuple[int, str]:
            path = f"/sandbox/handsets/{handset(first + i, self.block)}/messages"
            status, text = await http.post_json(path, {"to": self.number, "body": "ping"})
            if status == 201:
                return 201, str(json.loads(text)["message_sid"])
            return status, text[:200]

        return await offer(fire, count, rate=options.rate, concurrency=options.concurrency)

    async def progress(self, first: int, count: int) -> tuple[int, int, int]:
        """Sessions ended, of them ended otherwise than normally, replies in inboxes."""
        database = self.pipeline.database
        [(ended, abnormal)] = await database.rows(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN end_reason = "
            f"'{NORMAL_END}' THEN 0 ELSE 1 END), 0) FROM sessions WHERE local_number = "
            f"'{self.number}' AND state = 'ended' AND remote_number " + self.handsets(first, count)
        )
        replies = await database.scalar(
            "SELECT COUNT(DISTINCT handset) FROM sandbox_deliveries WHERE sender = "
            f"'{self.number}' AND in_inbox AND handset " + self.handsets(first, count)
        )
        return int(ended), int(abnormal), int(replies)

    async def wait_done(self, first: int, count: int, expected: int) -> tuple[int, int, int]:
        """Wait until the `expected` sessions among handsets first … first + count - 1 are
        done; (ended, ended abnormally, replies) then."""
        last = await self.progress(first, count)
        moved = time.monotonic()
        while not (last[0] >= expected and last[2] + last[1] >= expected):
            self.pipeline.check_alive()
            await asyncio.sleep(0.2)
            now = await self.progress(first, count)
            if now != last:
                last, moved = now, time.monotonic()
            elif time.monotonic() - moved > STALL_SECONDS:
                raise SystemExit(
                    f"{self.name}: nothing moved for {STALL_SECONDS:.0f} s (ended, abnormal,"
                    f" replies) = {now} of {expected}\n{self.pipeline.api_tail()}"
                )
        return last

    async def reply_times(self, first: int, count: int) -> dict[str, float]:
        """Handset -> when the reply became visible in its inbox (epoch seconds)."""
        rows = await self.pipeline.database.rows(
            "SELECT handset, MIN(visible_at) FROM sandbox_deliveries WHERE sender = "
            f"'{self.number}' AND in_inbox AND handset "
            + self.handsets(first, count)
            + " GROUP BY handset"
        )
        return {str(h): float(t) for h, t in rows}


async def measure(options: argparse.Namespace) -> None:
    async with AsyncExitStack() as stack:
        pipeline = await Pipeline.start(
            stack,
            workdir(stack, options.workdir),
            database_url=options.database_url,
            workers=options.workers,
            receiver=False,
        )
        dialects = [Dialect(pipeline, name, DIALECTS.index(name)) for name in options.dialects]
        for dialect in dialects:
            dialect.setup()
            stack.callback(dialect.app.stop)
        how = f"at {options.rate:,.0f}/s" if options.rate else f"{options.concurrency} in flight"
        print(f"{options.sessions:,} sessions per dialect, texts injected {how}\n")
        print(
            f"{'dialect':8} {'sessions':>8} {'sessions/s':>10}  {'text due to reply in inbox':48}"
            f" {'errors':>6}  texts injected at"
        )
        notes = []
        for dialect in dialects:
            if options.warmup:
                warm = LoadFigures.of(await dialect.text(options.warmup, WARMUP_BASE, options), 201)
                await dialect.wait_done(WARMUP_BASE, options.warmup, warm.ok)
            before = (await peer_json(dialect.app, "/stats"))["requests"]
            meter = CpuMeter({**pipeline.processes(), "app": dialect.app})
            meter.start()
            shots = await dialect.text(options.sessions, 0, options)
            injected = LoadFigures.of(shots, 201)
            _, abnormal, _ = await dialect.wait_done(0, options.sessions, injected.ok)
            answered = (await peer_json(dialect.app, "/stats"))["requests"] - before
            replied = await dialect.reply_times(0, options.sessions)
            due = {handset(s.index, dialect.block): s.due for s in shots if s.status == 201}
            latencies = [replied[h] - due[h] for h in replied if h in due]
            span = max(replied.values(), default=0.0) - min(s.due for s in shots)
            rate = len(replied) / span if span > 0 else 0.0
            errors = abnormal + sum(injected.errors.values())
            print(
                f"{dialect.name:8} {len(replied):8,} {rate:10,.0f}  {latency_line(latencies):48}"
                f" {errors:6,}  {injected.achieved_per_second:,.0f}/s",
                flush=True,
            )
            cpu = meter.line(pipeline.servers, len(replied), "session")
            notes.append(
                f"{dialect.name}: the app answered {answered:,} requests; injection latency"
                f" {latency_line(injected.latencies)}; {cpu}"
            )
            if injected.errors:
                notes.append(f"{dialect.name}: texts refused: {injected.error_line()}")
            if abnormal:
                notes.append(f"{dialect.name}: {abnormal:,} sessions ended without a reply")
        print()
        for note in notes:
            print(note)
        print(
            "\ntargets: ≥ 500 sessions/s per dialect, ≤ 3 ms of Verbal's CPU per session"
            " (2 cores, embedded SQLite)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=2000, help="per dialect (default 2000)")
    parser.add_argument(
        "--dialects",
        type=lambda text: [d.strip() for d in text.split(",")],
        default=list(DIALECTS),
        help="comma-separated, run in this order (default rcml,plivo,tropo)",
    )
    parser.add_argument("--rate", type=float, help="inject texts open-loop at this rate")
    parser.add_argument(
        "--concurrency", type=int, default=32, help="texts in flight without --rate (32)"
    )
    parser.add_argument("--warmup", type=int, default=50, help="sessions per dialect first")
    add_common_arguments(parser)
    options = parser.parse_args()
    unknown = set(options.dialects) - set(DIALECTS)
    if unknown:
        parser.error(f"unknown dialect(s) {', '.join(sorted(unknown))}: use {', '.join(DIALECTS)}")
    print_header(
        "app round trip: text -> app document -> reply, per dialect", database_label(options)
    )
    run(measure(options))


if __name__ == "__main__":
    main()
