"""One call each way: `IncomingCall` (we are the UAS) and `OutgoingCall` (the UAC).

These are the objects the rest of Verbal holds while a call lasts. They keep the call's
state and its dialog and ask their `UserAgent` to send; the user agent hands them the
messages of their transactions and dialog. Everything here runs on the event loop's thread.

Life of an incoming call: ``ring()`` / ``pre_answer(sdp)`` (optional) → ``answer(sdp)``
→ ``confirmed`` (the ACK came) → ``hangup()`` or the caller's BYE; or ``reject(status)``,
``redirect(contact)``, or the caller's CANCEL (answered 487). ``ended`` resolves once,
with a `CallEnd`, however it ends.

Life of an outgoing call: `UserAgent.call` sends the INVITE; ``progress()`` yields the
180/183s (with early SDP); ``answered()`` returns the far end's SDP or raises
`CallFailed`; ``cancel()`` gives up before the answer (and hangs up if the 2xx crossed
the CANCEL), ``hangup()`` ends an answered call with BYE.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from verbal.carriers.sip import sdp
from verbal.carriers.sip.auth import Credentials
from verbal.carriers.sip.dialog import Dialog, DialogError
from verbal.carriers.sip.message import Headers, NameAddr, Request, Response, response_to
from verbal.carriers.sip.sdp import SessionDescription
from verbal.carriers.sip.transaction import ServerInvite

if TYPE_CHECKING:
    from verbal.carriers.sip.useragent import UserAgent, _Txn

__all__ = ["CallEnd", "CallFailed", "CallState", "IncomingCall", "OutgoingCall", "Progress"]

log = logging.getLogger("verbal.carriers.sip")


class CallFailed(Exception):
    """An outgoing call that was not answered: the final status and reason.

    ``contacts`` are the Contact URIs of a 3xx redirect; 408 stands for no answer at all
    (timer B) and 487 for a call we cancelled.
    """

    def __init__(self, status: int, reason: str, contacts: tuple[str, ...] = ()) -> None:
        super().__init__(f"{status} {reason}")
        self.code = status
        self.status = status
        self.reason = reason
        self.message = f"{status} {reason}"
        self.more_info = "RFC 3261 §21"
        self.contacts = contacts


class CallState(enum.Enum):
    CALLING = "calling"  # outgoing: INVITE sent, no answer yet
    RINGING = "ringing"  # incoming: not answered yet (1xx sent or not)
    ANSWERED = "answered"  # 2xx sent or received; incoming: waiting for the ACK
    CONFIRMED = "confirmed"  # ACK sent or received: media flows
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class CallEnd:
    """How a call ended. ``by``: "local" (we hung up, cancelled or rejected), "remote"
    (BYE, CANCEL or a failure from the far end), or "timeout" (no ACK, no answer, no
    response to our BYE). ``status`` is the final SIP status that ended it (200 for BYE)."""

    by: str
    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class Progress:
    """A provisional response to our INVITE: 180 Ringing, 183 with early media ..."""

    status: int
    reason: str
    sdp: SessionDescription | None


def new_tag() -> str:
    return secrets.token_hex(6)


class _Call:
    """What both directions share: a dialog once answered, in-dialog requests, the end."""

    def __init__(self, ua: UserAgent, call_id: str) -> None:
        self.ua = ua
        self.call_id = call_id
        self.state = CallState.CALLING
        self.dialog: Dialog | None = None
        self.local_sdp: SessionDescription | None = None
        self.remote_sdp: SessionDescription | None = None
        self.ended: asyncio.Future[CallEnd] = asyncio.get_running_loop().create_future()
        # The INVITE (or re-INVITE) whose 2xx is resent until its ACK comes.
        self._unacked: _Txn | None = None
        # Called with the far end's new SDP after each re-INVITE we answered (hold,
        # unhold, a new media address): the media side follows it.
        self.on_update: Callable[[SessionDescription], None] | None = None

    @property
    def on_hold(self) -> bool:
        """True while the far end has put us on hold (its SDP is sendonly or inactive)."""
        return self.remote_sdp is not None and self.remote_sdp.on_hold

    def _end(self, by: str, status: int, reason: str) -> None:
        if self.ended.done():
            return
        self.state = CallState.ENDED
        self.ended.set_result(CallEnd(by, status, reason))
        self.ua._forget_call(self)
        log.info("call %s ended by %s: %s %s", self.call_id, by, status, reason)

    async def _bye(self) -> None:
        assert self.dialog is not None
        self.state = CallState.ENDED
        response = await self.ua._in_dialog(self.dialog, "BYE")
        by = "timeout" if response.status == 408 else "local"
        self._end(by, response.status, response.reason)

    # Requests from the far end inside the dialog (the user agent routes them here).

    def on_request(self, request: Request, txn: _Txn) -> None:
        assert self.dialog is not None
        try:
            self.dialog.receive(request)
        except DialogError as exc:
            self.ua._respond(txn, response_to(request, exc.code))
            return
        if request.method == "BYE":
            self.ua._respond(txn, response_to(request, 200))
            self._acked()
            self._end("remote", 200, "BYE")
        elif request.method == "INVITE":
            self._reinvite(request, txn)
        elif request.method == "OPTIONS":
            self.ua._respond(txn, self.ua._options_response(request))
        else:
            self.ua._respond(txn, self.ua._not_allowed(request))

    def on_ack(self, request: Request) -> None:
        """The ACK of a 2xx (ours or a re-INVITE's) in this dialog."""
        self._acked()

    def _acked(self) -> None:
        """Stop resending our 2xx. A BYE proves it arrived too, even if its ACK did not."""
        txn, self._unacked = self._unacked, None
        if txn is not None and isinstance(txn.transaction, ServerInvite):
            self.ua._run(txn, txn.transaction.ack_received())

    def _reinvite(self, request: Request, txn: _Txn) -> None:
        """A target refresh or hold/unhold: answer from our current SDP, in a new version."""
        assert self.dialog is not None and self.local_sdp is not None
        ours = self.local_sdp
        body = ours
        if request.body:
            try:
                offer = sdp.parse(request.body)
                body = sdp.make_answer(
                    offer, ours.address, ours.port, codecs=ours.codecs, session_id=ours.session_id
                )
            except sdp.SdpError as exc:
                self.ua._respond(txn, response_to(request, exc.code))
                return
            self.remote_sdp = offer
        self.local_sdp = body = sdp.with_version(body, ours.version + 1)
        response = response_to(
            request,
            200,
            headers=[("Contact", self.ua.contact), ("Content-Type", "application/sdp")],
            body=bytes(body),
        )
        self._unacked = txn
        self.ua._respond(txn, response)
        if self.on_update is not None and self.remote_sdp is not None:
            self.on_update(self.remote_sdp)
        log.info(
            "call %s re-INVITEd: %s", self.call_id, self.remote_sdp and self.remote_sdp.direction
        )


class IncomingCall(_Call):
    """An INVITE we received. See the module docstring for its life."""

    def __init__(self, ua: UserAgent, request: Request, offer: SessionDescription, txn: _Txn):
        super().__init__(ua, request.call_id)
        self.state = CallState.RINGING
        self.request = request
        self.uri = request.uri
        self.from_: NameAddr = request.from_
        self.to: NameAddr = request.to
        self.headers = request.headers
        self.offer = offer
        self.remote_sdp = offer
        self.confirmed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._txn = txn
        self._tag = new_tag()

    def ring(self) -> None:
        """Send 180 Ringing."""
        self._provisional(180, None)

    def pre_answer(self, answer: SessionDescription) -> None:
        """Send 183 Session Progress with ``answer``: early media, before the call is billed."""
        self.local_sdp = answer
        self._provisional(183, answer)

    def _provisional(self, status: int, body: SessionDescription | None) -> None:
        if self.state is not CallState.RINGING:
            return
        headers = [("Contact", self.ua.contact)]
        if body is not None:
            headers.append(("Content-Type", "application/sdp"))
        response = response_to(
            self.request,
            status,
            to_tag=self._tag,
            headers=headers,
            body=bytes(body) if body else b"",
        )
        self.ua._respond(self._txn, response)

    def answer(self, answer: SessionDescription) -> None:
        """Send 200 OK with ``answer``; `confirmed` resolves when the caller's ACK comes.

        The 2xx is resent until then; with no ACK after 64*T1 the call is hung up (BYE)
        and ends with "timeout" 408.
        """
        if self.state is not CallState.RINGING:
            msg = f"cannot answer a call that is {self.state.value}"
            raise RuntimeError(msg)
        self.state = CallState.ANSWERED
        self.local_sdp = answer
        self.dialog = Dialog.for_uas(self.request, self._tag)
        self.ua._register_dialog(self.dialog, self)
        self._unacked = self._txn
        response = response_to(
            self.request,
            200,
            to_tag=self._tag,
            headers=[
                ("Contact", self.ua.contact),
                ("Allow", self.ua.ALLOW),
                ("Content-Type", "application/sdp"),
            ],
            body=bytes(answer),
        )
        self.ua._respond(self._txn, response)

    def reject(self, status: int = 486, reason: str | None = None) -> None:
        """Refuse the call: 486 Busy Here, 603 Decline, 480, 404 ... (any 300-699)."""
        if not 300 <= status <= 699:
            msg = f"a rejection is a status from 300 to 699, got {status}"
            raise ValueError(msg)
        self._final(status, reason, [])
        self._end("local", status, reason or response_to(self.request, status).reason)

    def redirect(self, contact: str, status: int = 302) -> None:
        """Send the caller elsewhere: 302 Moved Temporarily with ``contact`` (a SIP URI)."""
        self._final(status, None, [("Contact", f"<{contact}>")])
        self._end("local", status, "redirected")

    def _final(self, status: int, reason: str | None, headers: list[tuple[str, str]]) -> None:
        if self.state is not CallState.RINGING:
            msg = f"cannot answer a call that is {self.state.value}"
            raise RuntimeError(msg)
        response = response_to(self.request, status, reason, to_tag=self._tag, headers=headers)
        self.ua._respond(self._txn, response)

    async def hangup(self) -> None:
        """End the call: decline it (603) if unanswered, else BYE once the ACK has come."""
        if self.state is CallState.RINGING:
            self.reject(603)
        elif self.state is CallState.ANSWERED:
            # §15: no BYE before the ACK, or before the 2xx has timed out.
            self.state = CallState.ENDED
            await asyncio.wait([self.confirmed, self.ended], return_when=asyncio.FIRST_COMPLETED)
            if not self.ended.done():
                await self._bye()
        elif self.state is CallState.CONFIRMED:
            await self._bye()
        await asyncio.shield(self.ended)

    def cancelled(self) -> None:
        """The caller sent CANCEL before we answered: 487 to the INVITE."""
        if self.state is CallState.RINGING:
            self._final(487, None, [])
            self._end("remote", 487, "cancelled")

    def _acked(self) -> None:
        super()._acked()
        if self.state is CallState.ANSWERED:
            self.state = CallState.CONFIRMED
        if not self.confirmed.done():
            self.confirmed.set_result(None)
            log.info("call %s from %s confirmed", self.call_id, self.from_.uri)

    def timed_out(self, timer: str) -> None:
        """The INVITE transaction gave up: no ACK for our 2xx (L) or our failure (H)."""
        if timer == "L" and not self.confirmed.done():
            log.info("call %s: no ACK for the 200, hanging up", self.call_id)
            self.ua._spawn(self._no_ack())

    async def _no_ack(self) -> None:
        assert self.dialog is not None
        self._end("timeout", 408, "no ACK")
        await self.ua._in_dialog(self.dialog, "BYE")

    def __repr__(self) -> str:
        return f"<IncomingCall {self.call_id} from {self.from_.uri} {self.state.value}>"


class OutgoingCall(_Call):
    """An INVITE we sent. See the module docstring for its life."""

    def __init__(
        self,
        ua: UserAgent,
        invite: Request,
        offer: SessionDescription,
        destination: tuple[tuple[str, int], str],
        credentials: Credentials | None,
    ) -> None:
        super().__init__(ua, invite.call_id)
        self.invite = invite
        self.local_sdp = offer
        self.destination = destination
        self.credentials = credentials
        self._answer: asyncio.Future[SessionDescription] = (
            asyncio.get_running_loop().create_future()
        )
        # A failure nobody awaits (a fork's loser) must not be reported as never retrieved.
        self._answer.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._progress: asyncio.Queue[Progress | None] = asyncio.Queue()
        self._txn: _Txn | None = None
        self._ack: Request | None = None
        self._ack_destination: tuple[tuple[str, int], str] | None = None
        self._provisional_seen = False
        self._cancel_wanted = False
        self._cancel_sent = False
        self._auth_tries = 0
        self.status: int | None = None  # the last response's status

    def start(self) -> None:
        self._txn = self.ua._client(
            self.invite, self.destination, self._on_response, self._on_timeout
        )

    async def answered(self) -> SessionDescription:
        """The far end's SDP once it answers; `CallFailed` if it does not."""
        return await asyncio.shield(self._answer)

    async def progress(self) -> AsyncIterator[Progress]:
        """The provisional responses (status > 100) until the call is answered or fails."""
        while (item := await self._progress.get()) is not None:
            yield item
        self._progress.put_nowait(None)  # the end, for whoever iterates next

    def cancel(self) -> None:
        """Give up the call: CANCEL it if unanswered (once a provisional response came,
        §9.1), hang up if it was answered meanwhile. `answered` raises `CallFailed` (487)."""
        if self.state is CallState.CONFIRMED:
            self.ua._spawn(self.hangup())
            return
        if self._cancel_wanted or self.state is CallState.ENDED:
            return
        self._cancel_wanted = True
        if self._provisional_seen:
            self._send_cancel()

    async def hangup(self) -> None:
        """End the call: BYE if answered, CANCEL if not. Returns when it has ended."""
        if self.state is CallState.CONFIRMED:
            await self._bye()
        else:
            self.cancel()
        await asyncio.shield(self.ended)

    def _send_cancel(self) -> None:
        if self._cancel_sent or self._txn is None:
            return
        self._cancel_sent = True
        invite = self._txn.transaction.request
        headers = [
            ("Via", invite.headers.values("Via")[0]),
            ("Max-Forwards", "70"),
            *((name, value) for name, value in invite.headers if name == "Route"),
            ("From", invite.headers.get("From") or ""),
            ("To", invite.headers.get("To") or ""),
            ("Call-ID", invite.call_id),
            ("CSeq", f"{invite.cseq[0]} CANCEL"),
        ]
        cancel = Request("CANCEL", invite.uri, Headers.of(headers))
        self.ua._client(cancel, self.destination, lambda _r: None, lambda _t: None)
        # §9.1: if no final response comes within 64*T1 of the CANCEL, give up the INVITE.
        loop = asyncio.get_running_loop()
        loop.call_later(self.ua.timers.timeout, self._fail, 487, "Request Terminated", "local")

    def _on_response(self, response: Response) -> None:
        self.status = response.status
        if response.status < 200:
            self._provisional_seen = True
            if self._cancel_wanted:
                self._send_cancel()
            if response.status > 100 and self.state is CallState.CALLING:
                early = _sdp_of(response)
                self._progress.put_nowait(Progress(response.status, response.reason, early))
        elif response.status < 300:
            self.on_2xx(response)
        elif response.status in (401, 407) and self._retry_with_auth(response):
            return
        else:
            by = "local" if self._cancel_wanted else "remote"
            contacts = tuple(NameAddr.parse(c).uri for c in response.headers.values("Contact"))
            self._fail(response.status, response.reason, by, contacts)

    def on_2xx(self, response: Response) -> None:
        """A 2xx to our INVITE: from its transaction, or later, a repeat the UA routed here."""
        tag = response.to.tag or ""
        if self.dialog is not None and tag == self.dialog.remote_tag:
            if self._ack is not None and self._ack_destination is not None:
                self.ua._send(self._ack, self._ack_destination)  # the 2xx again: ACK lost
            return
        invite = self._txn.transaction.request if self._txn else self.invite
        dialog = Dialog.for_uac(invite, response)
        if self.dialog is not None or self.state is CallState.ENDED or self._cancel_wanted:
            # A second fork answered, or the 2xx crossed our CANCEL: ACK it, then BYE.
            self.ua._spawn(self.ua._ack_and_bye(dialog, invite.cseq[0]))
            if self.dialog is None:
                self._fail(487, "Request Terminated", "local")
            return
        self.dialog = dialog
        self.ua._register_dialog(dialog, self)
        self.ua._spawn(self._send_ack(invite.cseq[0]))
        try:
            self.remote_sdp = sdp.parse(response.body)
        except sdp.SdpError as exc:
            log.warning("call %s answered with unusable SDP: %s", self.call_id, exc.message)
            self.state = CallState.CONFIRMED
            self._answer.set_exception(CallFailed(488, "Not Acceptable Here"))
            self._progress.put_nowait(None)
            self.ua._spawn(self._bye())
            return
        self.state = CallState.CONFIRMED
        self._answer.set_result(self.remote_sdp)
        self._progress.put_nowait(None)
        log.info("call %s to %s answered", self.call_id, self.invite.uri)

    async def _send_ack(self, cseq: int) -> None:
        assert self.dialog is not None
        self._ack, self._ack_destination = await self.ua._ack(self.dialog, cseq)

    def _retry_with_auth(self, response: Response) -> bool:
        """Send the INVITE again with credentials, once per call (RFC 3261 §22.2)."""
        if self.credentials is None or self._auth_tries >= 1 or self._txn is None:
            return False
        request = self.ua._authorized(self._txn.transaction.request, response, self.credentials)
        if request is None:
            return False
        self._auth_tries += 1
        self._txn = self.ua._client(request, self.destination, self._on_response, self._on_timeout)
        return True

    def _on_timeout(self, timer: str) -> None:
        self._fail(408, "Request Timeout", "timeout")

    def _fail(self, status: int, reason: str, by: str, contacts: tuple[str, ...] = ()) -> None:
        if self._answer.done():
            return
        self._answer.set_exception(CallFailed(status, reason, contacts))
        self._progress.put_nowait(None)
        self._end(by, status, reason)

    def __repr__(self) -> str:
        return f"<OutgoingCall {self.call_id} to {self.invite.uri} {self.state.value}>"


def _sdp_of(message: Response | Request) -> SessionDescription | None:
    if not message.body:
        return None
    try:
        return sdp.parse(message.body)
    except sdp.SdpError:
        return None
