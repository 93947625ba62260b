"""Dialogs (RFC 3261 §12): who is talking to whom, in what order, along which route.

A `Dialog` is created from the INVITE and the 2xx that answered it, on either side, and
then builds every in-dialog request (ACK, BYE, re-INVITE) and checks every one received.
It keeps:

* the Call-ID and both tags, which identify it (`Dialog.key`);
* our CSeq, incremented per request (ACK and CANCEL reuse the INVITE's number), and the
  peer's, which must grow (§12.2.2: an older one is answered 500);
* the remote target, the peer's Contact, updated by a re-INVITE or its 2xx (target
  refresh, §12.2);
* the route set, from Record-Route: reversed on the caller's side, as received on the
  callee's. Requests are loose-routed (RFC 3261 §16.12, ``;lr``): the Request-URI is the
  remote target and Route lists the route set; a first hop without ``lr`` is a strict
  router, which gets the remote target as the last Route and becomes the Request-URI.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from verbal.carriers.sip.message import Headers, NameAddr, Request, Response, SipUri

__all__ = ["Dialog", "DialogError", "Side", "dialog_key"]


class Side(enum.Enum):
    UAC = "uac"
    UAS = "uas"


class DialogError(Exception):
    """A request that does not fit the dialog; ``code`` is the status to answer with."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.more_info = "RFC 3261 §12.2.2"


def dialog_key(call_id: str, local_tag: str, remote_tag: str) -> tuple[str, str, str]:
    return (call_id, local_tag, remote_tag)


@dataclass(slots=True)
class Dialog:
    side: Side
    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: str  # our From in requests we send (a NameAddr's text, without tag)
    remote_uri: str
    remote_target: str
    route_set: list[str] = field(default_factory=list)
    local_seq: int = 0
    remote_seq: int | None = None

    @classmethod
    def for_uac(cls, invite: Request, response: Response) -> Dialog:
        """Our INVITE answered by ``response`` (a 2xx, or a 1xx with a To tag)."""
        contact = response.headers.get("Contact")
        return cls(
            Side.UAC,
            invite.call_id,
            invite.from_.tag or "",
            response.to.tag or "",
            _without_tag(invite.from_),
            _without_tag(response.to),
            NameAddr.parse(contact).uri if contact else invite.uri,
            list(reversed(response.headers.values("Record-Route"))),
            invite.cseq[0],
            None,
        )

    @classmethod
    def for_uas(cls, invite: Request, local_tag: str) -> Dialog:
        """The INVITE we answer with a To tag of ``local_tag``."""
        contact = invite.headers.get("Contact")
        return cls(
            Side.UAS,
            invite.call_id,
            local_tag,
            invite.from_.tag or "",
            _without_tag(invite.to),
            _without_tag(invite.from_),
            NameAddr.parse(contact).uri if contact else "",
            invite.headers.values("Record-Route"),
            0,
            invite.cseq[0],
        )

    @property
    def key(self) -> tuple[str, str, str]:
        return dialog_key(self.call_id, self.local_tag, self.remote_tag)

    def next_hop(self) -> SipUri:
        """Where an in-dialog request goes first: the first route, or the remote target."""
        first = NameAddr.parse(self.route_set[0]).uri if self.route_set else self.remote_target
        return SipUri.parse(first)

    def request(
        self,
        method: str,
        *,
        via: str,
        contact: str,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
        cseq: int | None = None,
    ) -> Request:
        """An in-dialog request. ACK must pass the INVITE's ``cseq``; others take the next."""
        if cseq is None:
            self.local_seq += 1
            cseq = self.local_seq
        uri, routes = self.remote_target, list(self.route_set)
        if routes and "lr" not in NameAddr.parse(routes[0]).sip_uri().params:
            uri = NameAddr.parse(routes[0]).uri  # §12.2.1.1: a strict router first
            routes = [*routes[1:], f"<{self.remote_target}>"]
        lines = [
            ("Via", via),
            ("Max-Forwards", "70"),
            *(("Route", route) for route in routes),
            ("From", f"{self.local_uri};tag={self.local_tag}"),
            ("To", f"{self.remote_uri};tag={self.remote_tag}"),
            ("Call-ID", self.call_id),
            ("CSeq", f"{cseq} {method}"),
        ]
        if method in ("INVITE", "UPDATE", "SUBSCRIBE", "REFER", "NOTIFY"):
            lines.append(("Contact", contact))
        lines += headers or []
        return Request(method, uri, Headers.of(lines), body)

    def receive(self, request: Request) -> None:
        """Check an in-dialog request and note its CSeq; refresh the target on re-INVITE.

        Raises `DialogError` (500) for a CSeq lower than the last one (§12.2.2). ACK and
        CANCEL carry the INVITE's number and are not checked.
        """
        number, method = request.cseq
        if method not in ("ACK", "CANCEL"):
            if self.remote_seq is not None and number < self.remote_seq:
                msg = f"CSeq {number} is lower than {self.remote_seq}"
                raise DialogError(msg, 500)
            self.remote_seq = number
        if method == "INVITE":
            self.refresh_target(request.headers.get("Contact"))

    def refresh_target(self, contact: str | None) -> None:
        if contact:
            self.remote_target = NameAddr.parse(contact).uri


def _without_tag(address: NameAddr) -> str:
    params = {name: value for name, value in address.params.items() if name != "tag"}
    return str(NameAddr(address.uri, address.display, params))
