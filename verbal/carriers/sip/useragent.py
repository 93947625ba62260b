"""The SIP user agent the rest of Verbal codes against: calls in and out, registration.

::

    ua = UserAgent(Endpoint("0.0.0.0", 5060), on_invite=handle, advertise="198.51.100.7")
    await ua.start()                      # ua.bound: the address really listened on
    call = await ua.call("sip:bob@example.net", from_uri="sip:+15550001000@example.org",
                         offer=sdp.make_offer(...), proxy=Endpoint(...), credentials=...)
    async for progress in call.progress(): ...   # 180 / 183 with early SDP
    answer = await call.answered()               # or CallFailed(status, reason)
    await call.hangup()
    winner = await ua.fork(["sip:a@...", "sip:b@..."], from_uri=..., offer=...)
    registration = await ua.register(Endpoint(...), "sip:bob@example.org", credentials)
    await ua.close()

``on_invite`` is awaited in its own task with each new `IncomingCall`; it rings,
answers, rejects or redirects it (see `verbal.carriers.sip.calls`). An INVITE that no one
answers within `SipLimits.answer_timeout` is refused with 480.

This module is the shell around the sans-I/O parts: it owns the transport, the table of
transactions and their timers (`loop.call_later` per named timer), the table of dialogs,
and the limits. What it answers by itself, as RFC 3261 wants, so that no request from
the network goes unanswered and none can take the process down:

=====================================================  ===================================
malformed request (bad start line, missing or broken   400 Bad Request (when Via, From, To,
mandatory header, Content-Length past the body ...)    Call-ID and CSeq could be read)
larger than `MessageLimits.max_size`                   513 Message Too Large
Max-Forwards: 0                                        483 Too Many Hops
a second copy of a request on another branch           482 Loop Detected (§8.2.2.2)
Require: with an extension                             420 Bad Extension + Unsupported
OPTIONS                                                200 OK with Allow, Accept
a method other than INVITE, ACK, BYE, CANCEL, OPTIONS  405 Method Not Allowed with Allow
an INVITE whose body is not SDP / has no G.711         415 / 488 Not Acceptable Here
BYE, re-INVITE ... for a dialog we do not have         481 Call/Transaction Does Not Exist
CANCEL for no pending INVITE                           481
``max_calls`` calls up, INVITEs arriving faster than   503 Service Unavailable with
``invite_rate``, or ``max_transactions`` live          Retry-After: ``retry_after``
=====================================================  ===================================

Every table is bounded: transactions by ``max_transactions`` (past it new requests get a
stateless 503), calls by ``max_calls``, TCP connections by ``max_connections``, a message
by `MessageLimits`; transactions end on their own timers (at most 64*T1 after their last
message), calls by BYE, CANCEL, timers or `answer_timeout`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from verbal.carriers.sip import sdp
from verbal.carriers.sip.auth import AuthError, Challenge, Credentials, authorization
from verbal.carriers.sip.calls import (
    CallEnd,
    CallFailed,
    CallState,
    IncomingCall,
    OutgoingCall,
    Progress,
    new_tag,
)
from verbal.carriers.sip.dialog import Dialog, dialog_key
from verbal.carriers.sip.message import (
    Headers,
    MessageLimits,
    NameAddr,
    ParseError,
    Request,
    Response,
    SipUri,
    parse,
    response_to,
)
from verbal.carriers.sip.sdp import SessionDescription
from verbal.carriers.sip.transaction import (
    BRANCH_COOKIE,
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
from verbal.carriers.sip.transport import (
    Address,
    Endpoint,
    SipTransport,
    response_address,
    stamp_via,
)
from verbal.tasks import BackgroundTasks, cancel_and_wait

__all__ = [
    "CallEnd",
    "CallFailed",
    "CallState",
    "Credentials",
    "Endpoint",
    "IncomingCall",
    "OutgoingCall",
    "Progress",
    "Registration",
    "RegistrationFailed",
    "SipLimits",
    "Timers",
    "UserAgent",
]

log = logging.getLogger("verbal.carriers.sip")

Hop = tuple[Address, str]  # where to send: address and transport
InviteHandler = Callable[[IncomingCall], Awaitable[None]]
USER_AGENT = "Verbal"


@dataclass(frozen=True, slots=True)
class SipLimits:
    """How much the user agent takes on at once. See the module docstring."""

    message: MessageLimits = field(default_factory=MessageLimits)
    # Calls in progress, both ways; an INVITE past it gets 503.
    max_calls: int = 1000
    # New INVITEs per second from the network (a token bucket of `invite_burst`).
    invite_rate: float = 100.0
    invite_burst: int = 200
    # Live transactions (each lasts at most 64*T1 past its last message).
    max_transactions: int = 10_000
    max_connections: int = 1024
    # Seconds a caller is told to wait in a 503's Retry-After.
    retry_after: int = 5
    # Seconds an incoming call may ring without being answered before we send 480.
    answer_timeout: float = 180.0

    def __post_init__(self) -> None:
        if self.max_calls < 1 or self.invite_rate <= 0 or self.invite_burst < 1:
            msg = f"limits must be positive: {self}"
            raise ValueError(msg)


class RegistrationFailed(CallFailed):
    """A REGISTER refused or unanswered: its status and reason."""


class _Bucket:
    """A token bucket: at most ``burst`` at once, refilled at ``rate`` per second."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = float(burst)
        self.at = time.monotonic()

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


@dataclass(slots=True)
class _Txn:
    """One transaction as the shell drives it: the machine, its peer, timers and owner."""

    transaction: ClientInvite | ClientNonInvite | ServerInvite | ServerNonInvite
    key: tuple[str, ...]
    hop: Hop
    on_message: Callable[[Any], None]
    on_timeout: Callable[[str], None]
    timers: dict[str, asyncio.TimerHandle] = field(default_factory=dict)
    merge_key: tuple[str, ...] | None = None
    call: IncomingCall | None = None  # the call an INVITE server transaction started


def new_branch() -> str:
    return BRANCH_COOKIE + secrets.token_hex(8)


class UserAgent:
    ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS"

    def __init__(
        self,
        local: Endpoint,
        *,
        on_invite: InviteHandler | None = None,
        limits: SipLimits | None = None,
        timers: Timers | None = None,
        advertise: str | None = None,
    ) -> None:
        self.local = local
        self.on_invite = on_invite
        self.limits = limits or SipLimits()
        self.timers = timers or Timers()
        self._advertise = advertise
        self._transport = SipTransport(
            local,
            self._on_data,
            limits=self.limits.message,
            max_connections=self.limits.max_connections,
        )
        self._clients: dict[tuple[str, ...], _Txn] = {}
        self._servers: dict[tuple[str, ...], _Txn] = {}
        self._merge: dict[tuple[str, ...], tuple[str, ...]] = {}
        self._dialogs: dict[tuple[str, str, str], IncomingCall | OutgoingCall] = {}
        self._calls: set[IncomingCall | OutgoingCall] = set()
        self._registrations: list[Registration] = []
        self._tasks = BackgroundTasks(log)
        self._bucket = _Bucket(self.limits.invite_rate, self.limits.invite_burst)

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        await self._transport.start()
        log.info("SIP listening on %s:%s (UDP and TCP)", *self.bound.address)

    async def close(self) -> None:
        """Unregister, end the calls still up (BYE / CANCEL, briefly), stop listening."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(4 * self.timers.t1 + 1):
                for registration in self._registrations:
                    await registration.unregister()
                hangups = [call.hangup() for call in list(self._calls)]
                await asyncio.gather(*hangups, return_exceptions=True)
        await self._tasks.stop()
        for txn in [*self._clients.values(), *self._servers.values()]:
            for handle in txn.timers.values():
                handle.cancel()
        await self._transport.close()

    @property
    def bound(self) -> Endpoint:
        """The address listened on (the port the kernel chose when asked for port 0)."""
        return self._transport.bound

    @property
    def host(self) -> str:
        """The address put in Via, Contact and the SDP's defaults."""
        return self._advertise or self.bound.host

    @property
    def contact(self) -> str:
        transport = ";transport=tcp" if self.local.transport == "tcp" else ""
        return f"<sip:verbal@{self.host}:{self.bound.port}{transport}>"

    def _via(self, transport: str) -> str:
        return (
            f"SIP/2.0/{transport.upper()} {self.host}:{self.bound.port};branch={new_branch()};rport"
        )

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        self._tasks.spawn(coroutine, "SIP task")

    # --- the API: calls out ------------------------------------------------------------------

    async def call(
        self,
        to_uri: str,
        *,
        from_uri: str,
        offer: SessionDescription,
        proxy: Endpoint | None = None,
        credentials: Credentials | None = None,
        headers: dict[str, str] | None = None,
    ) -> OutgoingCall:
        """Send an INVITE to ``to_uri`` (through ``proxy`` if given) and return the call.

        Raises `CallFailed` (503) at once when the URI's host cannot be resolved.
        """
        try:
            hop = proxy_hop(proxy) if proxy else await self._resolve(SipUri.parse(to_uri))
        except OSError as exc:
            raise CallFailed(503, f"cannot resolve {to_uri}: {exc}") from exc
        lines = [
            ("Via", self._via(hop[1])),
            ("Max-Forwards", "70"),
            ("From", f"{_name_addr(from_uri)};tag={new_tag()}"),
            ("To", str(_name_addr(to_uri))),
            ("Call-ID", f"{secrets.token_hex(12)}@{self.host}"),
            ("CSeq", "1 INVITE"),
            ("Contact", self.contact),
            ("Allow", self.ALLOW),
            ("User-Agent", USER_AGENT),
            *(headers or {}).items(),
            ("Content-Type", "application/sdp"),
        ]
        invite = Request("INVITE", str(SipUri.parse(to_uri)), Headers.of(lines), bytes(offer))
        call = OutgoingCall(self, invite, offer, hop, credentials)
        self._calls.add(call)
        call.start()
        return call

    async def fork(
        self,
        targets: list[str],
        *,
        from_uri: str,
        offer: SessionDescription,
        proxy: Endpoint | None = None,
        credentials: Credentials | None = None,
        headers: dict[str, str] | None = None,
    ) -> OutgoingCall:
        """Call every target at once; the first to answer wins and is returned.

        The others are cancelled (a 2xx that crosses the CANCEL is ACKed, then BYEd). If
        none answers, raises the best `CallFailed`: a 6xx if any, else the lowest class.
        """
        if not targets:
            msg = "fork needs at least one target"
            raise ValueError(msg)
        calls = [
            await self.call(
                target,
                from_uri=from_uri,
                offer=offer,
                proxy=proxy,
                credentials=credentials,
                headers=headers,
            )
            for target in targets
        ]
        waiting = {asyncio.ensure_future(call.answered()): call for call in calls}
        failures: list[CallFailed] = []
        winner: OutgoingCall | None = None
        try:
            while waiting:
                done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                for future in done:
                    call = waiting.pop(future)
                    error = future.exception()
                    if error is None:
                        winner = call
                        for other in calls:
                            if other is not call:
                                other.cancel()
                        return call
                    if isinstance(error, CallFailed):
                        failures.append(error)
                    else:
                        raise error
        finally:
            if winner is None:  # everyone failed, or our caller gave up (cancelled us)
                for call in calls:
                    call.cancel()
            for future in waiting:
                future.cancel()
        raise min(failures, key=_failure_rank)

    # --- the API: registration -----------------------------------------------------------------

    async def register(
        self,
        registrar: Endpoint,
        aor: str,
        credentials: Credentials | None = None,
        expires: int = 3600,
    ) -> Registration:
        """Register ``aor`` (``sip:user@domain``) at ``registrar`` and keep it registered.

        Returns once the registrar accepted; raises `RegistrationFailed` otherwise. The
        binding is refreshed before it expires, and removed by `Registration.unregister`
        or `close`.
        """
        registration = Registration(self, registrar, aor, credentials, expires)
        await registration.refresh()
        self._registrations.append(registration)
        registration.keep()
        return registration

    # --- receiving ----------------------------------------------------------------------------

    def _on_data(self, data: bytes, source: Address, transport: str) -> None:
        try:
            message = parse(data, self.limits.message)
        except ParseError as exc:
            self._refuse_malformed(exc, source, transport)
            return
        if isinstance(message, Response):
            self._on_response(message)
        else:
            self._on_request(stamp_via(message, source), source, transport)

    def _refuse_malformed(self, exc: ParseError, source: Address, transport: str) -> None:
        reply = exc.reply()
        log.info("malformed SIP from %s:%s: %s", *source, exc.message)
        if reply is None:
            return
        with contextlib.suppress(ValueError, IndexError):
            via = stamp_via(Request("X", "sip:x", reply.headers), source).top_via
            self._transport.send(bytes(reply), response_address(via, source, transport), transport)

    def _on_response(self, response: Response) -> None:
        try:
            key = client_key(response)
        except (ValueError, IndexError):
            return
        txn = self._clients.get(key)
        if txn is not None:
            self._run(txn, txn.transaction.receive(response))  # type: ignore[union-attr, arg-type]
            return
        if response.cseq[1] == "INVITE" and 200 <= response.status < 300:
            self._stray_2xx(response)

    def _stray_2xx(self, response: Response) -> None:
        """A 2xx after its INVITE transaction ended: resend our ACK (§13.2.2.4)."""
        call = self._dialogs.get(
            dialog_key(response.call_id, response.from_.tag or "", response.to.tag or "")
        )
        if isinstance(call, OutgoingCall):
            call.on_2xx(response)

    def _on_request(self, request: Request, source: Address, transport: str) -> None:
        hop = (response_address(request.top_via, source, transport), transport)
        if request.method == "ACK":
            self._on_ack(request)
            return
        key = server_key(request)
        existing = self._servers.get(key)
        if existing is not None:  # a retransmission
            self._run(existing, existing.transaction.receive(request))  # type: ignore[union-attr, arg-type]
            return
        if len(self._servers) >= self.limits.max_transactions:
            self._stateless(request, hop, 503)
            return
        txn = self._server(request, key, hop)
        refusal = self._check(request)
        if refusal is not None:
            self._respond(txn, refusal)
            return
        to_tag = request.to.tag
        if to_tag is not None:
            dialog_owner = self._dialogs.get(
                dialog_key(request.call_id, to_tag, request.from_.tag or "")
            )
            if dialog_owner is None:
                self._respond(txn, response_to(request, 481))
            else:
                dialog_owner.on_request(request, txn)
        elif request.method == "INVITE":
            self._on_invite(request, txn)
        elif request.method == "CANCEL":
            self._on_cancel(request, txn)
        elif request.method == "OPTIONS":
            self._respond(txn, self._options_response(request))
        elif request.method == "BYE":
            self._respond(txn, response_to(request, 481))
        else:
            self._respond(txn, self._not_allowed(request))

    def _check(self, request: Request) -> Response | None:
        """The refusals every new request gets before its method is looked at."""
        max_forwards = request.headers.get("Max-Forwards")
        if max_forwards is not None and max_forwards.strip() == "0":
            return response_to(request, 483)
        if request.to.tag is None:
            other = self._merge.get(_merge_key(request))
            if other is not None and other != server_key(request):
                return response_to(request, 482)
        required = request.headers.values("Require")
        if required and request.method != "CANCEL":
            return response_to(request, 420, headers=[("Unsupported", ", ".join(required))])
        return None

    def _on_invite(self, request: Request, txn: _Txn) -> None:
        content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if not request.body:
            self._respond(txn, response_to(request, 488, "An SDP offer is required"))
            return
        if content_type != "application/sdp":
            self._respond(txn, response_to(request, 415, headers=[("Accept", "application/sdp")]))
            return
        try:
            offer = sdp.parse(request.body)
            sdp.make_answer(offer, "0.0.0.0", 0)  # can we answer it at all?
        except sdp.SdpError as exc:
            self._respond(txn, response_to(request, exc.code, exc.message[:100]))
            return
        if (
            self.on_invite is None
            or len(self._calls) >= self.limits.max_calls
            or not self._bucket.take(time.monotonic())
        ):
            retry = [("Retry-After", str(self.limits.retry_after))]
            self._respond(txn, response_to(request, 503, headers=retry))
            return
        call = IncomingCall(self, request, offer, txn)
        txn.call = call
        txn.on_timeout = call.timed_out
        self._calls.add(call)
        self._spawn(self._handle_invite(call))

    async def _handle_invite(self, call: IncomingCall) -> None:
        assert self.on_invite is not None
        try:
            async with asyncio.timeout(self.limits.answer_timeout):
                await self.on_invite(call)
                if call.state is CallState.RINGING:
                    await asyncio.wait([call.ended])
        except TimeoutError:
            if call.state is CallState.RINGING:
                call.reject(480, "No answer")
        except Exception:
            log.exception("the handler of call %s failed", call.call_id)
            if call.state is CallState.RINGING:
                call.reject(500)

    def _on_cancel(self, request: Request, txn: _Txn) -> None:
        invite_key = (*server_key(request)[:-1], "INVITE")
        invite = self._servers.get(invite_key)
        if invite is None:
            self._respond(txn, response_to(request, 481))
            return
        self._respond(txn, response_to(request, 200))
        if invite.call is not None:
            invite.call.cancelled()

    def _on_ack(self, request: Request) -> None:
        txn = self._servers.get(server_key(request))
        if txn is not None and txn.transaction.state is not State.ACCEPTED:
            self._run(txn, txn.transaction.receive(request))  # type: ignore[union-attr, arg-type]
            return
        to_tag = request.to.tag or ""
        owner = self._dialogs.get(dialog_key(request.call_id, to_tag, request.from_.tag or ""))
        if owner is not None:
            owner.on_ack(request)

    def _options_response(self, request: Request) -> Response:
        return response_to(
            request,
            200,
            headers=[
                ("Allow", self.ALLOW),
                ("Accept", "application/sdp"),
                ("Contact", self.contact),
            ],
        )

    def _not_allowed(self, request: Request) -> Response:
        return response_to(request, 405, headers=[("Allow", self.ALLOW)])

    def _stateless(self, request: Request, hop: Hop, status: int) -> None:
        response = response_to(
            request, status, headers=[("Retry-After", str(self.limits.retry_after))]
        )
        self._transport.send(bytes(response), *hop)

    # --- transactions -------------------------------------------------------------------------

    def _server(self, request: Request, key: tuple[str, ...], hop: Hop) -> _Txn:
        reliable = hop[1] == "tcp"
        machine: ServerInvite | ServerNonInvite
        if request.method == "INVITE":
            machine = ServerInvite(request, self.timers, reliable)
            txn = _Txn(machine, key, hop, lambda _m: None, lambda _t: None)
            actions = machine.start(response_to(request, 100))
        else:
            machine = ServerNonInvite(request, self.timers, reliable)
            txn = _Txn(machine, key, hop, lambda _m: None, lambda _t: None)
            actions = machine.start()
        self._servers[key] = txn
        if request.to.tag is None:
            txn.merge_key = _merge_key(request)
            self._merge.setdefault(txn.merge_key, key)
        self._run(txn, actions)
        return txn

    def _respond(self, txn: _Txn, response: Response) -> None:
        machine = txn.transaction
        assert isinstance(machine, ServerInvite | ServerNonInvite)
        self._run(txn, machine.respond(response))

    def _client(
        self,
        request: Request,
        hop: Hop,
        on_response: Callable[[Response], None],
        on_timeout: Callable[[str], None],
    ) -> _Txn:
        reliable = hop[1] == "tcp"
        machine = (ClientInvite if request.method == "INVITE" else ClientNonInvite)(
            request, self.timers, reliable
        )
        txn = _Txn(machine, client_key(request), hop, on_response, on_timeout)
        self._clients[txn.key] = txn
        self._run(txn, machine.start())
        return txn

    def _run(self, txn: _Txn, actions: list[Action]) -> None:
        loop = asyncio.get_running_loop()
        for action in actions:
            if isinstance(action, Send):
                self._transport.send(bytes(action.message), *txn.hop)
            elif isinstance(action, StartTimer):
                if (old := txn.timers.pop(action.name, None)) is not None:
                    old.cancel()
                txn.timers[action.name] = loop.call_later(
                    action.delay, self._fire, txn, action.name
                )
            elif isinstance(action, CancelTimer):
                if (handle := txn.timers.pop(action.name, None)) is not None:
                    handle.cancel()
            elif isinstance(action, Deliver):
                txn.on_message(action.message)
            elif isinstance(action, TimedOut):
                txn.on_timeout(action.timer)
            elif isinstance(action, Terminated):
                self._end_txn(txn)

    def _fire(self, txn: _Txn, name: str) -> None:
        txn.timers.pop(name, None)
        self._run(txn, txn.transaction.timer_fired(name))

    def _end_txn(self, txn: _Txn) -> None:
        for handle in txn.timers.values():
            handle.cancel()
        txn.timers.clear()
        table = (
            self._clients
            if isinstance(txn.transaction, ClientInvite | ClientNonInvite)
            else self._servers
        )
        if table.get(txn.key) is txn:
            del table[txn.key]
        if txn.merge_key is not None and self._merge.get(txn.merge_key) == txn.key:
            del self._merge[txn.merge_key]

    async def _transact(self, request: Request, hop: Hop) -> Response:
        """Send a non-INVITE request; its final response (a made-up 408 if none came)."""
        done: asyncio.Future[Response] = asyncio.get_running_loop().create_future()

        def on_response(response: Response) -> None:
            if response.status >= 200 and not done.done():
                done.set_result(response)

        def on_timeout(_timer: str) -> None:
            if not done.done():
                done.set_result(response_to(request, 408))

        self._client(request, hop, on_response, on_timeout)
        return await done

    # --- dialogs ------------------------------------------------------------------------------

    def _register_dialog(self, dialog: Dialog, owner: IncomingCall | OutgoingCall) -> None:
        self._dialogs[dialog.key] = owner

    def _forget_call(self, call: IncomingCall | OutgoingCall) -> None:
        self._calls.discard(call)
        if call.dialog is not None and self._dialogs.get(call.dialog.key) is call:
            # Keep the dialog a little longer: the BYE's retransmissions and late ACKs
            # still find it (answered, not 481), then it goes.
            key = call.dialog.key
            asyncio.get_running_loop().call_later(
                self.timers.timeout, lambda: self._dialogs.pop(key, None)
            )

    async def _next_hop(self, dialog: Dialog) -> Hop:
        return await self._resolve(dialog.next_hop())

    async def _in_dialog(self, dialog: Dialog, method: str) -> Response:
        hop = await self._next_hop(dialog)
        request = dialog.request(method, via=self._via(hop[1]), contact=self.contact)
        return await self._transact(request, hop)

    async def _ack(self, dialog: Dialog, cseq: int) -> tuple[Request, Hop]:
        """Send the ACK of the 2xx that made ``dialog`` (outside any transaction, §13.2.2.4)."""
        hop = await self._next_hop(dialog)
        ack = dialog.request("ACK", via=self._via(hop[1]), contact=self.contact, cseq=cseq)
        self._send(ack, hop)
        return ack, hop

    def _send(self, request: Request, hop: Hop) -> None:
        self._transport.send(bytes(request), *hop)

    async def _ack_and_bye(self, dialog: Dialog, cseq: int) -> None:
        """A 2xx we do not want (late fork, crossed CANCEL): confirm it, then end it."""
        await self._ack(dialog, cseq)
        response = await self._in_dialog(dialog, "BYE")
        log.info(
            "unwanted answer on %s ACKed and hung up: BYE got %s", dialog.call_id, response.status
        )

    def _authorized(
        self, request: Request, challenge: Response, credentials: Credentials
    ) -> Request | None:
        """``request`` again, with credentials for ``challenge`` (401/407), a new branch
        and the next CSeq; None if the challenge cannot be answered."""
        proxy = challenge.status == 407
        header = challenge.headers.get("Proxy-Authenticate" if proxy else "WWW-Authenticate")
        if header is None:
            return None
        try:
            value = authorization(Challenge.parse(header), credentials, request.method, request.uri)
        except AuthError as exc:
            log.warning("cannot answer the %s challenge: %s", challenge.status, exc.message)
            return None
        number, method = request.cseq
        via = request.top_via
        headers = (
            request.headers.with_("Via", str(_rebranched(via)))
            .with_("CSeq", f"{number + 1} {method}")
            .with_("Proxy-Authorization" if proxy else "Authorization", value)
        )
        return Request(request.method, request.uri, headers, request.body)

    async def _resolve(self, uri: SipUri) -> Hop:
        """The address and transport of a SIP URI (A records only; no NAPTR or SRV)."""
        transport = uri.transport if uri.transport in ("udp", "tcp") else "udp"
        port = uri.port or 5060
        try:
            ipaddress.ip_address(uri.host)
            return ((uri.host, port), transport)
        except ValueError:
            pass
        infos = await asyncio.get_running_loop().getaddrinfo(uri.host, port)
        host, port = infos[0][4][:2]
        return ((str(host), int(port)), transport)


class Registration:
    """One address of record kept registered at a registrar (RFC 3261 §10)."""

    def __init__(
        self,
        ua: UserAgent,
        registrar: Endpoint,
        aor: str,
        credentials: Credentials | None,
        expires: int,
    ) -> None:
        self.ua = ua
        self.registrar = registrar
        self.aor = aor
        self.credentials = credentials
        self.expires = expires
        self.call_id = f"{secrets.token_hex(12)}@{ua.host}"
        self.tag = new_tag()
        self.cseq = 0
        self.registered = False
        self.granted = 0  # seconds the registrar granted the last time
        self._task: asyncio.Task[None] | None = None

    async def refresh(self, expires: int | None = None) -> None:
        """Send one REGISTER (answering a challenge once); `RegistrationFailed` if refused."""
        expires = self.expires if expires is None else expires
        hop = proxy_hop(self.registrar)
        aor = SipUri.parse(self.aor)
        user = aor.user or "verbal"
        contact = f"<sip:{user}@{self.ua.host}:{self.ua.bound.port}>"
        self.cseq += 1
        lines = [
            ("Via", self.ua._via(hop[1])),
            ("Max-Forwards", "70"),
            ("From", f"<{self.aor}>;tag={self.tag}"),
            ("To", f"<{self.aor}>"),
            ("Call-ID", self.call_id),
            ("CSeq", f"{self.cseq} REGISTER"),
            ("Contact", contact),
            ("Expires", str(expires)),
            ("User-Agent", USER_AGENT),
        ]
        request = Request("REGISTER", f"sip:{aor.host}", Headers.of(lines))
        response = await self.ua._transact(request, hop)
        if response.status in (401, 407) and self.credentials is not None:
            retry = self.ua._authorized(request, response, self.credentials)
            if retry is not None:
                self.cseq += 1
                response = await self.ua._transact(retry, hop)
        if response.status >= 300:
            self.registered = False
            raise RegistrationFailed(response.status, response.reason)
        self.registered = expires > 0
        self.granted = _granted(response, contact, expires)
        log.info("registered %s at %s:%s for %ss", self.aor, *hop[0], self.granted)

    def keep(self) -> None:
        self._task = asyncio.ensure_future(self._keep())

    async def _keep(self) -> None:
        while True:
            # Refresh ahead of expiry; after a failure, try again in a minute.
            ahead = max(1.0, min(self.granted * 0.8, self.granted - 5.0))
            await asyncio.sleep(ahead if self.registered else 60.0)
            try:
                await self.refresh()
            except CallFailed as exc:
                log.warning("refreshing %s failed: %s", self.aor, exc)

    async def unregister(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        if self.registered:
            with contextlib.suppress(CallFailed):
                await self.refresh(expires=0)
            self.registered = False


def _name_addr(text: str) -> NameAddr:
    """A From or To for ``text``: a name-addr as given, or a bare URI put in brackets (so
    that its parameters, ``;transport=tcp`` say, stay the URI's)."""
    return NameAddr.parse(text) if "<" in text else NameAddr(text.strip())


def _merge_key(request: Request) -> tuple[str, ...]:
    """What two copies of one request share however they travelled (§8.2.2.2)."""
    number, method = request.cseq
    return (request.call_id, request.from_.tag or "", str(number), method)


def proxy_hop(endpoint: Endpoint) -> Hop:
    return (endpoint.address, endpoint.transport)


def _rebranched(via: Any) -> Any:
    params = {**via.params, "branch": new_branch()}
    params.pop("received", None)
    return type(via)(via.transport, via.host, via.port, params)


def _granted(response: Response, contact: str, asked: int) -> int:
    """The expiry the registrar granted our contact (Contact ;expires=, or Expires)."""
    ours = NameAddr.parse(contact).uri
    for value in response.headers.values("Contact"):
        with contextlib.suppress(ValueError):
            address = NameAddr.parse(value)
            if address.uri == ours and address.params.get("expires", "").isdigit():
                return int(address.params["expires"])
    expires = response.headers.get("Expires") or ""
    return int(expires) if expires.isdigit() else asked


def _failure_rank(error: CallFailed) -> tuple[int, int]:
    """RFC 3261 §16.7's choice among failures: any 6xx first, then the lowest class."""
    return (0 if error.status >= 600 else 1, error.status)
