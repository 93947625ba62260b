"""The sandbox's SMSC: submit_sm/s from an ESME, receipts back, and handset texts out.

    python bench/smsc.py [--count 5000] [--windows 1,10,50] [--database-url URL]

A real `verbal serve` with its SMSC enabled, and node-smpp (`tests/peers/esme.js`, an
SMPP implementation independent of Verbal's) as the ESME on loopback, binding as a
transceiver. For each window it submits `--count` messages to sandbox handsets with
registered_delivery 1 and reports two rates: submit_sm answered per second (each
answer is a committed delivery and a queued receipt), and receipts arrived per second,
counted from the first submit. Then handsets text the ESME `--count` times through the
sandbox API, and it reports deliver_sm per second. The figures depend on the load
generator too: it shares the machine with the server.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import subprocess
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
from _harness import (
    NODE_PEERS,
    Credentials,
    Database,
    database_label,
    free_port,
    node_peers_missing,
    print_header,
    run,
    server_env,
    start_server,
    workdir,
)

SYSTEM_ID, PASSWORD = "bench", "bench"
ESME_NUMBER = "+15557700001"
# Longest wait for any one event of the ESME.
WAIT_SECONDS = 600.0


class Esme:
    """esme.js in a process of its own, spoken to in JSON lines."""

    def __init__(self, port: int) -> None:
        self.process = subprocess.Popen(
            ["node", str(NODE_PEERS / "esme.js"), json.dumps({"port": port})],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def send(self, **command: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    async def until(self, kind: str) -> dict[str, Any]:
        """The next event of ``kind`` (the ones before it are skipped)."""
        assert self.process.stdout is not None
        stdout = self.process.stdout

        def read() -> dict[str, Any]:
            for line in stdout:
                event = json.loads(line)
                if event.get("event") == kind:
                    return event  # type: ignore[no-any-return]
            raise SystemExit(f"esme.js ended before {kind}")

        return await asyncio.wait_for(asyncio.to_thread(read), WAIT_SECONDS)

    def stop(self) -> None:
        self.send(cmd="stop")
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


async def measure(options: argparse.Namespace) -> None:
    async with AsyncExitStack() as stack:
        work = workdir(stack, options.workdir)
        database = (
            await Database.postgres(options.database_url)
            if options.database_url
            else Database.sqlite(work)
        )
        stack.push_async_callback(database.close)
        credentials = Credentials.random()
        port = free_port()
        env = {
            **server_env(database, credentials),
            "VERBAL_LOG_LEVEL": "warning",
            "VERBAL_SMSC_ENABLED": "true",
            "VERBAL_SMSC_PORT": str(port),
            "VERBAL_SMSC_WINDOW": str(max(options.windows)),
            "VERBAL_SMSC_ESMES": json.dumps(
                [{"system_id": SYSTEM_ID, "password": PASSWORD, "numbers": [ESME_NUMBER]}]
            ),
        }
        server = start_server("verbal", work, env)
        stack.callback(server.stop)
        esme = Esme(port)
        stack.callback(esme.stop)
        esme.send(cmd="bind", system_id=SYSTEM_ID, password=PASSWORD, mode="transceiver")
        bound = await esme.until("bind_resp")
        if bound["status"] != 0:
            raise SystemExit(f"bind refused: {bound}")
        esme.send(cmd="quiet", on=True)

        print(
            f"{'window':>6} {'submits':>8} {'submit_sm/s':>12} {'receipts/s':>11} "
            f"{'server CPU ms/message':>22}"
        )
        for window in options.windows:
            cpu = server.cpu_seconds()
            esme.send(
                cmd="flood",
                count=options.count,
                window=window,
                source="15557700001",
                dest="15550002000",
                text="bench",
                registered_delivery=1,
            )
            done = await esme.until("flood_done")
            receipts = await esme.until("flood_receipts")
            per_message = (server.cpu_seconds() - cpu) * 1000 / options.count
            print(
                f"{window:>6} {done['accepted']:>8} {done['count'] / done['seconds']:>12.0f} "
                f"{options.count / receipts['seconds']:>11.0f} {per_message:>22.2f}",
                flush=True,
            )

        # Handsets text the ESME: POSTs at a bounded concurrency, then wait for them all.
        url = f"{server.url('')}/sandbox/handsets/+15550002000/messages"
        token = f"{credentials.account_sid}:{credentials.auth_token}".encode()
        headers = {"Authorization": "Basic " + base64.b64encode(token).decode()}
        esme.send(cmd="quiet", on=False)
        started = time.perf_counter()
        cpu = server.cpu_seconds()
        async with aiohttp.ClientSession(headers=headers) as http:
            gate = asyncio.Semaphore(16)

            async def text(n: int) -> None:
                async with gate, http.post(url, json={"to": ESME_NUMBER, "body": f"mo {n}"}) as r:
                    if r.status != 201:
                        raise SystemExit(f"handset text refused: {r.status} {await r.text()}")

            await asyncio.gather(*(text(n) for n in range(options.count)))
        posted = time.perf_counter() - started
        for _ in range(options.count):
            await esme.until("deliver_sm")
        arrived = time.perf_counter() - started
        per_message = (server.cpu_seconds() - cpu) * 1000 / options.count
        print(
            f"handset texts: {options.count} posted in {posted:.1f}s "
            f"({options.count / posted:.0f}/s), all delivered to the ESME in {arrived:.1f}s "
            f"({options.count / arrived:.0f} deliver_sm/s), server CPU {per_message:.2f} ms each"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument(
        "--windows",
        type=lambda text: [int(w) for w in text.split(",")],
        default=[1, 10, 50],
        help="submit windows of the ESME, comma-separated",
    )
    parser.add_argument("--database-url")
    parser.add_argument("--workdir", type=Path)
    options = parser.parse_args()
    if missing := node_peers_missing():
        raise SystemExit(f"esme.js cannot run: {missing}")
    print_header(
        "Sandbox SMSC: node-smpp ESME -> submit_sm -> receipts, and handset texts -> deliver_sm",
        database_label(options),
    )
    run(measure(options))


if __name__ == "__main__":
    main()
