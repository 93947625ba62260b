"""Joining the parts of a long inbound message (MO), with no I/O and no clock.

A long text reaches us as several deliver_sm, each carrying its place in the message: a
concatenation UDH (8- or 16-bit reference) or the sar_* TLVs. Parts of one message share
a key, (sender, recipient, reference, total); the carrier is implicit, as each carrier
keeps its own `Reassembler`. Parts may come in any order, on any bind, and twice (an
SMSC repeats a deliver_sm whose response it did not get): the last copy of a part wins.

A message is handed over when its last part arrives. If a part never comes, the message
is handed over anyway once ``timeout`` seconds have passed since its first part, with a
marker such as ``[part 2/3 missing]`` where the missing text would be, so the recipient
sees what arrived and that something did not. Either way the parts stay here until the
caller `discard`s them, which it does once the message is recorded: a failure to record
it leaves the parts to be tried again.

The octets of consecutive parts are joined before decoding, so a character split across
two parts (a UCS-2 surrogate pair, a GSM-7 escape pair) by a careless sender is whole
again.
"""

from dataclasses import dataclass, field

from verbal.carriers.encoding import Alphabet, decode_text

__all__ = ["Assembled", "Fragment", "PartsKey", "Reassembler", "ReassemblyFull"]


@dataclass(frozen=True, slots=True)
class PartsKey:
    sender: str
    recipient: str
    reference: int
    total: int


@dataclass(frozen=True, slots=True)
class Fragment:
    """One received part: its key, its number (1-based), and its user data less the UDH."""

    key: PartsKey
    sequence: int
    alphabet: Alphabet | None  # None: binary, shown as Latin-1
    user_data: bytes


@dataclass(frozen=True, slots=True)
class Assembled:
    """A message to hand over: whole, or (after the timeout) with parts missing."""

    key: PartsKey
    text: str
    missing: tuple[int, ...]


@dataclass(slots=True)
class _Pending:
    started: float
    parts: dict[int, Fragment] = field(default_factory=dict)


class ReassemblyFull(Exception):
    """Too many incomplete messages, or too many octets, wait for parts; take no more now."""


def _text(fragments: list[Fragment]) -> str:
    """Decode consecutive parts of one alphabet as one run of octets."""
    runs: list[tuple[Alphabet | None, bytearray]] = []
    for fragment in fragments:
        if runs and runs[-1][0] is fragment.alphabet:
            runs[-1][1].extend(fragment.user_data)
        else:
            runs.append((fragment.alphabet, bytearray(fragment.user_data)))
    return "".join(decode_text(bytes(data), alphabet or Alphabet.LATIN1) for alphabet, data in runs)


class Reassembler:
    def __init__(
        self, timeout: float, max_messages: int = 10_000, max_octets: int = 16 * 1024 * 1024
    ) -> None:
        self.timeout = timeout
        # Both bound what a peer can make us hold: a part announcing 255 parts costs one
        # message, a message_payload part up to 64 KiB.
        self.max_messages = max_messages
        self.max_octets = max_octets
        self._pending: dict[PartsKey, _Pending] = {}
        self._octets = 0

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, fragment: Fragment, now: float) -> Assembled | None:
        """Keep ``fragment``; return its message if that made it whole.

        Raises `ReassemblyFull` when ``max_messages`` incomplete messages already wait, or
        keeping it would hold more than ``max_octets``.
        """
        pending = self._pending.get(fragment.key)
        if pending is None and len(self._pending) >= self.max_messages:
            raise ReassemblyFull(f"{len(self._pending)} incomplete messages are waiting")
        replaced = pending.parts.get(fragment.sequence) if pending is not None else None
        growth = len(fragment.user_data) - (len(replaced.user_data) if replaced else 0)
        if self._octets + growth > self.max_octets:
            raise ReassemblyFull(f"{self._octets} octets of incomplete messages are waiting")
        if pending is None:
            pending = self._pending[fragment.key] = _Pending(now)
        self._octets += growth
        pending.parts[fragment.sequence] = fragment
        if len(pending.parts) < fragment.key.total:
            return None
        return self._assemble(fragment.key, pending)

    def expired(self, now: float) -> list[Assembled]:
        """The incomplete messages whose first part came ``timeout`` seconds ago or more."""
        return [
            self._assemble(key, pending)
            for key, pending in self._pending.items()
            if now - pending.started >= self.timeout
        ]

    def next_expiry(self) -> float | None:
        """When the oldest incomplete message times out (on the caller's clock), if any."""
        started = min((p.started for p in self._pending.values()), default=None)
        return None if started is None else started + self.timeout

    def discard(self, key: PartsKey) -> None:
        pending = self._pending.pop(key, None)
        if pending is not None:
            self._octets -= sum(len(part.user_data) for part in pending.parts.values())

    @staticmethod
    def _assemble(key: PartsKey, pending: _Pending) -> Assembled:
        pieces: list[str] = []
        run: list[Fragment] = []
        missing = []
        for sequence in range(1, key.total + 1):
            fragment = pending.parts.get(sequence)
            if fragment is not None:
                run.append(fragment)
                continue
            if run:
                pieces.append(_text(run))
                run = []
            missing.append(sequence)
            pieces.append(f"[part {sequence}/{key.total} missing]")
        if run:
            pieces.append(_text(run))
        return Assembled(key, "".join(pieces), tuple(missing))
