"""A CPU profile of `verbal serve` that charges SQLAlchemy's work to the Verbal code asking.

    PYTHONPATH=$PWD/bench/profiler BENCH_PROFILE=/tmp/verbal-profile \\
        python bench/end_to_end.py --count 1000
    cat /tmp/verbal-profile.*

py-spy shows that most of the server's CPU goes to SQLAlchemy, but not for whom: the ORM
runs in greenlets, whose stacks end at the greenlet and not at the coroutine that awaited
it, so every Verbal caller of the ORM vanishes from the profile. This sampler, loaded by
Python into every process started with this directory on PYTHONPATH (the benchmarks pass
PYTHONPATH on to the server), runs only in `verbal serve` processes when BENCH_PROFILE is
set. Every 5 ms of the process's CPU time it walks the current stack and then, greenlet by
greenlet, the stacks of the parents suspended beneath it; at exit it writes, to
BENCH_PROFILE.<pid>, the library of the innermost frame and the inclusive share of every
Verbal function. (A sitecustomize of the installation would be shadowed by this one.)

It also counts what the server asks of the database, by SQLAlchemy's engine events: every
statement sent to the driver by its verb and table (savepoints included), and every
transaction begun, committed and rolled back (a rollback also ends a transaction that only
read, when its connection goes back to the pool); divided by the messages of the run, they
say how many round trips to the database a message costs.
"""

from __future__ import annotations

import atexit
import functools
import os
import re
import signal
import sys
from collections import Counter
from collections.abc import Iterator
from types import FrameType
from typing import Any

INTERVAL_SECONDS = 0.005


_TABLE = re.compile(r"\b(?:FROM|INTO|UPDATE)\s+\"?(\w+)", re.IGNORECASE)


def _statement_kind(statement: str) -> str:
    """`SELECT accounts`, `INSERT jobs`, …: the verb and the first table it names."""
    verb = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "?"
    table = _TABLE.search(statement)
    return f"{verb} {table.group(1)}" if table else verb


def _frames(frame: FrameType | None) -> Iterator[FrameType]:
    while frame is not None:
        yield frame
        frame = frame.f_back


def _library(path: str) -> str:
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0]
    return "verbal" if "/verbal/" in path else "stdlib and other"


class Sampler:
    def __init__(self, output: str, getcurrent: Any) -> None:
        self.output = output
        self.getcurrent = getcurrent  # greenlet's, imported only where the sampler runs
        self.samples = 0
        self.innermost: Counter[str] = Counter()
        self.inclusive: Counter[str] = Counter()
        self.database: Counter[str] = Counter()

    def count(self, what: str, *_event_args: Any) -> None:
        self.database[what] += 1

    def statement(self, _conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        self.database[_statement_kind(statement)] += 1

    def sample(self, _signum: int, frame: FrameType | None) -> None:
        stack = list(_frames(frame))
        current = self.getcurrent()
        while current.parent is not None:
            current = current.parent
            stack.extend(_frames(current.gr_frame))
        self.samples += 1
        if stack:
            self.innermost[_library(stack[0].f_code.co_filename)] += 1
        seen = set()
        for each in stack:
            path = each.f_code.co_filename
            if "/verbal/" in path and "site-packages" not in path:
                name = f"{each.f_code.co_qualname} (verbal/{path.rsplit('/verbal/', 1)[1]})"
                if name not in seen:  # recursion must not count a sample twice
                    seen.add(name)
                    self.inclusive[name] += 1

    def write(self) -> None:
        if not self.samples:
            return
        lines = [f"{self.samples} samples, one per {INTERVAL_SECONDS * 1000:g} ms of CPU"]
        lines.append("== the library of the innermost frame")
        lines += [f"{n / self.samples:6.1%} {k}" for k, n in self.innermost.most_common()]
        lines.append("== Verbal functions, inclusive (ORM work charged to its caller)")
        lines += [f"{n / self.samples:6.1%} {k}" for k, n in self.inclusive.most_common(80)]
        lines.append("== database: statements by verb and table, and transactions")
        lines += [f"{n:8,} {k}" for k, n in self.database.most_common()]
        with open(f"{self.output}.{os.getpid()}", "w") as out:
            out.write("\n".join(lines) + "\n")


def _install() -> None:
    output = os.environ.get("BENCH_PROFILE")
    if not output or "verbal" not in sys.orig_argv or "serve" not in sys.orig_argv:
        return
    import greenlet  # type: ignore[import-untyped]  # stubs are a separate package

    sampler = Sampler(output, greenlet.getcurrent)
    # ITIMER_PROF counts the process's CPU time, so an idle server is not sampled and a
    # busy machine does not stretch the intervals.
    signal.signal(signal.SIGPROF, sampler.sample)
    signal.setitimer(signal.ITIMER_PROF, INTERVAL_SECONDS, INTERVAL_SECONDS)
    atexit.register(sampler.write)
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    # Listening on the class reaches every engine, the async ones' sync cores included.
    event.listen(Engine, "before_cursor_execute", sampler.statement)
    # Savepoints and their releases reach the driver as statements and are counted as such.
    for name in ("begin", "commit", "rollback"):
        event.listen(Engine, name, functools.partial(sampler.count, f"transaction {name}"))


_install()
