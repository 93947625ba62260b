"""Tests for verbal.carriers.sip.transaction: the four RFC 3261 §17 machines, with RFC 6026.

`Clock` plays the shell: it carries out a machine's actions, keeps its named timers on a
fake clock and fires them as the test moves time on. Nothing sleeps or opens a socket.
"""

import ast
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import verbal.carriers.sip as sip_package
from verbal.carriers.sip.message import Headers, Request, response_to
from verbal.carriers.sip.transaction import (
    Action,
    CancelTimer,
    ClientInvite,
    ClientNonInvite,
    Deliver,
    Send,
    ServerInvite,
    ServerNonInvite,
    StartTimer,
    State,
    Terminated,
    TimedOut,
    Timers,
    client_key,
    server_key,
)

TIMERS = Timers(t1=0.5, t2=4.0, t4=5.0)


def request(method: str, branch: str = "z9hG4bKabc") -> Request:
    return Request(
        method,
        "sip:bob@127.0.0.1",
        Headers.of(
            [
                ("Via", f"SIP/2.0/UDP 127.0.0.1:5070;branch={branch}"),
                ("Route", "<sip:proxy;lr>"),
                ("From", "<sip:alice@h>;tag=a"),
                ("To", "<sip:bob@h>"),
                ("Call-ID", "c1"),
                ("CSeq", f"1 {method}"),
            ]
        ),
    )


@dataclass
class Clock:
    machine: object
    now: float = 0.0
    timers: dict[str, float] = field(default_factory=dict)
    sent: list[tuple[float, object]] = field(default_factory=list)
    delivered: list[object] = field(default_factory=list)
    timed_out: list[str] = field(default_factory=list)
    terminated: bool = False

    def do(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                self.sent.append((self.now, action.message))
            elif isinstance(action, StartTimer):
                self.timers[action.name] = self.now + action.delay
            elif isinstance(action, CancelTimer):
                self.timers.pop(action.name, None)
            elif isinstance(action, Deliver):
                self.delivered.append(action.message)
            elif isinstance(action, TimedOut):
                self.timed_out.append(action.timer)
            elif isinstance(action, Terminated):
                self.terminated = True

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while self.timers and min(self.timers.values()) <= end:
            name = min(self.timers, key=self.timers.__getitem__)
            self.now = self.timers.pop(name)
            self.do(self.machine.timer_fired(name))  # type: ignore[attr-defined]
        self.now = end

    def send_times(self) -> list[float]:
        return [round(at, 3) for at, _ in self.sent]


def test_client_invite_resends_on_timer_a_doubling_then_times_out_on_b() -> None:
    invite = request("INVITE")
    clock = Clock(ClientInvite(invite, TIMERS, reliable=False))
    clock.do(clock.machine.start())
    clock.advance(40)
    # Timer A: 0.5, 1, 2, 4, 8, 16 s apart, until timer B at 64*T1 = 32 s.
    assert clock.send_times() == [0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert clock.timed_out == ["B"]
    assert clock.terminated


def test_client_invite_stops_resending_on_a_provisional_response() -> None:
    invite = request("INVITE")
    clock = Clock(ClientInvite(invite, TIMERS, reliable=False))
    clock.do(clock.machine.start())
    clock.advance(0.7)
    clock.do(clock.machine.receive(response_to(invite, 180, to_tag="b")))
    clock.advance(100)
    assert len(clock.sent) == 2
    assert clock.machine.state is State.PROCEEDING
    assert [r.status for r in clock.delivered] == [180]


def test_client_invite_acks_a_failure_on_the_same_branch_and_absorbs_its_repeats() -> None:
    invite = request("INVITE")
    clock = Clock(ClientInvite(invite, TIMERS, reliable=False))
    clock.do(clock.machine.start())
    busy = response_to(invite, 486, to_tag="b")
    clock.do(clock.machine.receive(busy))
    clock.do(clock.machine.receive(busy))
    acks = [message for _, message in clock.sent[1:]]
    assert len(acks) == 2 and acks[0] == acks[1]
    ack = acks[0]
    assert (ack.method, ack.uri, ack.cseq) == ("ACK", invite.uri, (1, "ACK"))
    assert ack.top_via.branch == invite.top_via.branch
    assert ack.to.tag == "b"
    assert ack.headers.values("Route") == ["<sip:proxy;lr>"]
    assert [r.status for r in clock.delivered] == [486]  # the repeat is not delivered
    clock.advance(32)  # timer D
    assert clock.terminated and clock.timed_out == []


def test_client_invite_accepts_2xx_from_every_fork_for_64_t1() -> None:
    invite = request("INVITE")
    clock = Clock(ClientInvite(invite, TIMERS, reliable=False))
    clock.do(clock.machine.start())
    clock.do(clock.machine.receive(response_to(invite, 200, to_tag="one")))
    assert clock.machine.state is State.ACCEPTED
    clock.do(clock.machine.receive(response_to(invite, 200, to_tag="two")))
    assert [r.to.tag for r in clock.delivered] == ["one", "two"]
    assert len(clock.sent) == 1  # the TU ACKs 2xx, not the transaction
    clock.advance(32)
    assert clock.terminated


def test_over_tcp_nothing_is_resent_and_d_is_zero() -> None:
    invite = request("INVITE")
    clock = Clock(ClientInvite(invite, TIMERS, reliable=True))
    clock.do(clock.machine.start())
    clock.advance(10)
    assert len(clock.sent) == 1
    clock.do(clock.machine.receive(response_to(invite, 404, to_tag="b")))
    clock.advance(0)
    assert clock.terminated


def test_client_non_invite_resends_on_e_capped_at_t2_and_times_out_on_f() -> None:
    bye = request("BYE")
    clock = Clock(ClientNonInvite(bye, TIMERS, reliable=False))
    clock.do(clock.machine.start())
    clock.advance(40)
    intervals = [b - a for a, b in zip(clock.send_times(), clock.send_times()[1:], strict=False)]
    assert intervals[:5] == [0.5, 1.0, 2.0, 4.0, 4.0]  # T1, doubling, capped at T2
    assert max(intervals) == 4.0
    assert clock.timed_out == ["F"]


def test_client_non_invite_completes_and_waits_k() -> None:
    bye = request("BYE")
    clock = Clock(ClientNonInvite(bye, TIMERS, reliable=False))
    clock.do(clock.machine.start())
    clock.do(clock.machine.receive(response_to(bye, 200)))
    clock.do(clock.machine.receive(response_to(bye, 200)))
    assert [r.status for r in clock.delivered] == [200]
    clock.advance(4.9)
    assert not clock.terminated
    clock.advance(0.2)
    assert clock.terminated


def test_server_invite_answers_retransmissions_with_the_last_provisional() -> None:
    invite = request("INVITE")
    clock = Clock(ServerInvite(invite, TIMERS, reliable=False))
    clock.do(clock.machine.start(response_to(invite, 100)))
    assert [r.status for _, r in clock.sent] == [100]
    assert clock.delivered == [invite]
    clock.do(clock.machine.respond(response_to(invite, 180, to_tag="t")))
    clock.do(clock.machine.receive(invite))
    assert [r.status for _, r in clock.sent] == [100, 180, 180]
    assert clock.delivered == [invite]  # the retransmission never reaches the TU


def test_server_invite_resends_its_2xx_until_the_ack() -> None:
    invite = request("INVITE")
    clock = Clock(ServerInvite(invite, TIMERS, reliable=False))
    clock.do(clock.machine.start(response_to(invite, 100)))
    clock.do(clock.machine.respond(response_to(invite, 200, to_tag="t")))
    clock.advance(3.6)
    assert [round(t, 3) for t, r in clock.sent if r.status == 200] == [0, 0.5, 1.5, 3.5]
    clock.do(clock.machine.ack_received())
    clock.advance(10)
    assert len([r for _, r in clock.sent if r.status == 200]) == 4
    clock.advance(32)
    assert clock.terminated and clock.timed_out == []


def test_server_invite_reports_a_2xx_never_acked_after_64_t1() -> None:
    invite = request("INVITE")
    clock = Clock(ServerInvite(invite, TIMERS, reliable=False))
    clock.do(clock.machine.start(response_to(invite, 100)))
    clock.do(clock.machine.respond(response_to(invite, 200, to_tag="t")))
    clock.advance(40)
    intervals = [
        round(b - a, 3)
        for a, b in zip(clock.send_times()[1:], clock.send_times()[2:], strict=False)
    ]
    assert max(intervals) == 4.0  # T2 caps it
    assert clock.timed_out == ["L"]
    assert clock.terminated
    with pytest.raises(ValueError, match="already answered"):
        clock.machine.respond(response_to(invite, 486))


def test_server_invite_failure_waits_for_the_ack_then_absorbs_for_t4() -> None:
    invite = request("INVITE")
    clock = Clock(ServerInvite(invite, TIMERS, reliable=False))
    clock.do(clock.machine.start(response_to(invite, 100)))
    clock.do(clock.machine.respond(response_to(invite, 486, to_tag="t")))
    clock.advance(1.6)
    assert [r.status for _, r in clock.sent] == [100, 486, 486, 486]
    clock.do(clock.machine.receive(invite))  # a retransmitted INVITE gets the 486 again
    ack = request("ACK")
    clock.do(clock.machine.receive(ack))
    assert clock.machine.state is State.CONFIRMED
    sent = len(clock.sent)
    clock.advance(4.9)
    assert len(clock.sent) == sent and not clock.terminated
    clock.advance(0.2)
    assert clock.terminated and clock.timed_out == []


def test_server_invite_failure_without_ack_times_out_on_h() -> None:
    invite = request("INVITE")
    clock = Clock(ServerInvite(invite, TIMERS, reliable=False))
    clock.do(clock.machine.start(response_to(invite, 100)))
    clock.do(clock.machine.respond(response_to(invite, 603, to_tag="t")))
    clock.advance(33)
    assert clock.timed_out == ["H"]


def test_server_non_invite_absorbs_retransmissions_until_j() -> None:
    options = request("OPTIONS")
    clock = Clock(ServerNonInvite(options, TIMERS, reliable=False))
    clock.do(clock.machine.start())
    clock.do(clock.machine.receive(options))  # nothing to resend yet
    clock.do(clock.machine.respond(response_to(options, 200)))
    clock.do(clock.machine.receive(options))
    assert [r.status for _, r in clock.sent] == [200, 200]
    assert clock.delivered == [options]
    clock.advance(31.9)
    assert not clock.terminated
    clock.advance(0.2)
    assert clock.terminated


def test_keys_match_acks_to_invites_and_keep_cancels_apart() -> None:
    invite, ack, cancel = request("INVITE"), request("ACK"), request("CANCEL")
    assert server_key(invite) == server_key(ack)
    assert server_key(cancel) != server_key(invite)
    assert server_key(request("INVITE", "z9hG4bKother")) != server_key(invite)
    assert client_key(response_to(invite, 180)) == client_key(invite)
    assert client_key(response_to(cancel, 200)) != client_key(invite)


def test_timers_are_validated() -> None:
    with pytest.raises(ValueError, match="t1"):
        Timers(t1=5, t2=4)
    assert Timers(t1=0.01).timeout == pytest.approx(0.64)


@pytest.mark.parametrize("module", ["message", "sdp", "transaction", "dialog", "auth"])
def test_the_core_modules_do_no_io(module: str) -> None:
    """The sans-I/O core imports no event loop, socket or clock (the shell owns those)."""
    path = Path(sip_package.__file__).parent / f"{module}.py"
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported & {"asyncio", "socket", "time", "selectors", "threading"} == set()
    assert imported <= {
        "__future__",
        "re",
        "enum",
        "dataclasses",
        "collections",
        "hashlib",
        "secrets",
        "verbal",
        "typing",
    }


def test_over_tcp_a_2xx_is_still_resent_until_the_ack_but_a_failure_is_not() -> None:
    invite = request("INVITE")
    clock = Clock(ServerInvite(invite, TIMERS, reliable=True))
    clock.do(clock.machine.start(response_to(invite, 100)))
    clock.do(clock.machine.respond(response_to(invite, 200, to_tag="t")))
    clock.advance(2)
    assert len([r for _, r in clock.sent if r.status == 200]) == 3
    failing = Clock(ServerInvite(invite, TIMERS, reliable=True))
    failing.do(failing.machine.start(response_to(invite, 100)))
    failing.do(failing.machine.respond(response_to(invite, 486, to_tag="t")))
    failing.advance(10)
    assert [r.status for _, r in failing.sent] == [100, 486]
