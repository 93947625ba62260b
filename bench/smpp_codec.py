"""Cost of the SMPP core per PDU: codec, text coding, and a session pair with no I/O.

    python bench/smpp_codec.py [--number 20000] [--rounds 3]

Prints the best of ``--rounds`` runs of each case, in microseconds per operation and
operations per second. "session pair" is one submit_sm and its submit_sm_resp through an
ESME and an SMSC session in memory, window 50: every encode, frame read, decode, legality
check and match on both sides, which bounds what one bind can do before any socket work.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from verbal.carriers.smpp.pdu import (
    BindTransceiver,
    PduReader,
    SubmitSm,
    SubmitSmResp,
    decode,
)
from verbal.carriers.smpp.session import RequestReceived, Role, Session, SessionConfig
from verbal.carriers.smpp.text import decode_message, encode_message

SUBMIT = SubmitSm(
    sequence_number=7,
    source_addr_ton=5,
    source_addr="Verbal",
    dest_addr_ton=1,
    dest_addr_npi=1,
    destination_addr="15550002000",
    registered_delivery=1,
    short_message=b"Your code is 493021. It expires in 10 minutes.",
)
SUBMIT_FRAME = SUBMIT.encode()
RESP_FRAME = SubmitSmResp(sequence_number=7, message_id="2f1c9e0a-5d6b").encode()
TEXT = "Your code is 493021. It expires in 10 minutes."


def read_batch_of_100() -> None:
    reader = PduReader()
    reader.feed(SUBMIT_FRAME * 100)
    while reader.next_pdu() is not None:
        pass


def session_pair(window: int) -> Callable[[], None]:
    esme = Session(Role.ESME, SessionConfig(window=window), now=0)
    smsc = Session(Role.SMSC, SessionConfig(window=window), now=0)
    [bind] = smsc.receive_data(esme.send(BindTransceiver(), now=0), now=0)
    esme.receive_data(smsc.send(bind.request.response(), now=0), now=0)  # type: ignore[union-attr]

    def one_window() -> None:
        wire = b"".join(esme.send(SubmitSm(short_message=b"x"), now=0) for _ in range(window))
        answers = []
        for event in smsc.receive_data(wire, now=0):
            if isinstance(event, RequestReceived):
                answers.append(smsc.send(event.request.response(message_id="m"), now=0))
        esme.receive_data(b"".join(answers), now=0)

    return one_window


def measure(function: Callable[[], None], number: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(number):
            function()
        best = min(best, (time.perf_counter() - start) / number)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    window = 50
    long_text = "a" * 400
    cases: list[tuple[str, Callable[[], None], int]] = [
        ("encode submit_sm", SUBMIT.encode, 1),
        ("decode submit_sm", lambda: decode(SUBMIT_FRAME), 1),
        ("decode submit_sm_resp", lambda: decode(RESP_FRAME), 1),
        ("read 100 submit_sm from one buffer", read_batch_of_100, 100),
        ("encode_message, 1 part", lambda: encode_message(TEXT), 1),
        ("encode_message, 3 parts", lambda: encode_message(long_text), 1),
        ("decode_message", lambda: decode_message(SUBMIT), 1),
        (f"session pair, submit + resp (window {window})", session_pair(window), window),
    ]
    for name, function, per_call in cases:
        seconds = measure(function, max(args.number // per_call, 1), args.rounds) / per_call
        print(f"{name:48} {seconds * 1e6:8.2f} µs  {1 / seconds:12,.0f} /s")


if __name__ == "__main__":
    main()
