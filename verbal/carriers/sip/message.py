"""SIP messages (RFC 3261 §7, §20, §25): parsed strictly, built from values, no I/O.

`parse` turns one datagram (or one framed TCP message, see `StreamFramer`) into a `Request`
or `Response`, or raises `ParseError`. The error carries the status the receiver should
answer a request with (400, or 513 when a limit of `MessageLimits` is crossed) and, when the
message got far enough, the headers needed to build that answer (`ParseError.salvaged`).
Strict means: a request line must have exactly a method token, a URI and ``SIP/2.0``
(``ACK  SIP/2.0``, with its empty URI, is refused); every header line is ``name: value``;
the mandatory headers are present once; CSeq and Content-Length are numbers; the body
is exactly Content-Length bytes.

Header names are kept in their canonical long form (compact forms such as ``v`` or ``i``
are expanded on the way in), so ``message.headers.get("Via")`` finds a compact ``v:``.
Multi-value headers (Via, Route, Record-Route, Contact ...) may come as several lines or
as one comma-separated line; `Headers.values` returns them one value each.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

__all__ = [
    "DEFAULT_LIMITS",
    "REASONS",
    "Headers",
    "Message",
    "MessageLimits",
    "NameAddr",
    "ParseError",
    "Request",
    "Response",
    "SipUri",
    "StreamFramer",
    "Via",
    "parse",
    "response_to",
]

SIP_VERSION = "SIP/2.0"

# RFC 3261 §7.3.3 and the registries since: compact form -> canonical name.
_COMPACT = {
    "i": "Call-ID",
    "m": "Contact",
    "e": "Content-Encoding",
    "l": "Content-Length",
    "c": "Content-Type",
    "f": "From",
    "s": "Subject",
    "k": "Supported",
    "t": "To",
    "v": "Via",
    "o": "Event",
    "r": "Refer-To",
    "u": "Allow-Events",
    "x": "Session-Expires",
    "b": "Referred-By",
}
# Names whose usual capitalisation is not plain title case.
_SPECIAL_CASE = {
    "call-id": "Call-ID",
    "cseq": "CSeq",
    "www-authenticate": "WWW-Authenticate",
    "mime-version": "MIME-Version",
    "rack": "RAck",
    "rseq": "RSeq",
}
# Headers whose values may be joined with commas on one line (RFC 3261 §7.3.1). The
# authentication headers are absent on purpose: their parameters are comma-separated.
_MULTI_VALUE = frozenset(
    {
        "Via",
        "Route",
        "Record-Route",
        "Contact",
        "Allow",
        "Supported",
        "Require",
        "Proxy-Require",
        "Unsupported",
        "Accept",
        "Accept-Encoding",
        "Accept-Language",
        "Allow-Events",
        "Content-Encoding",
    }
)
# A request without these cannot be answered or matched to a transaction (RFC 3261 §8.1.1).
_MANDATORY = ("Via", "From", "To", "Call-ID", "CSeq")
_TOKEN = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")

REASONS: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    415: "Unsupported Media Type",
    420: "Bad Extension",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    491: "Request Pending",
    500: "Server Internal Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    504: "Server Time-out",
    513: "Message Too Large",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}


def canonical_name(name: str) -> str:
    lower = name.strip().lower()
    if lower in _COMPACT:
        return _COMPACT[lower]
    if lower in _SPECIAL_CASE:
        return _SPECIAL_CASE[lower]
    return "-".join(part.capitalize() for part in lower.split("-"))


@dataclass(frozen=True, slots=True)
class MessageLimits:
    """What one message may be. Past a limit, a request is answered 513 (size) or 400."""

    # UDP datagrams bigger than this are refused; RFC 3261 §18.1.1 wants messages near the
    # path MTU over UDP, and 64 KiB is the largest datagram there is.
    max_size: int = 65_535
    max_headers: int = 128
    max_header_line: int = 8_192


DEFAULT_LIMITS = MessageLimits()


class ParseError(Exception):
    """A message that is not SIP. ``status`` is the answer a request deserves (400 or 513).

    ``salvaged`` holds the headers read before the fault, enough for `response_to` when
    they include Via, From, To, Call-ID and CSeq; ``method`` is the first word of a
    request's start line (a response is never answered). A malformed ACK is answered
    too: it is not an ACK until it parses, and a response cannot start a loop.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        salvaged: Headers | None = None,
        method: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = status
        self.status = status
        self.message = message
        self.more_info = "RFC 3261 §7, §25"
        self.salvaged = salvaged
        self.method = method

    def reply(self) -> Response | None:
        """The response to send back, when the message was a request with enough headers."""
        headers = self.salvaged
        if self.method is None or headers is None:
            return None
        if any(headers.get(name) is None for name in _MANDATORY):
            return None
        fake = Request(self.method, "sip:invalid", headers)
        reason = f"{REASONS.get(self.status, 'Bad Request')} ({self.message})"
        response = response_to(
            fake, self.status, reason[:120].replace("\r", " ").replace("\n", " ")
        )
        try:  # the headers it copies must be sound, or the response is garbage too
            parse(bytes(response))
        except ParseError:
            return None
        return response


# --- headers --------------------------------------------------------------------------------


def _split_commas(value: str) -> list[str]:
    """Split a header value at commas that are outside quotes and angle brackets."""
    parts: list[str] = []
    depth_angle = 0
    quoted = False
    start = 0
    i = 0
    while i < len(value):
        char = value[i]
        if quoted:
            if char == "\\":
                i += 1
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char == "<":
            depth_angle += 1
        elif char == ">":
            depth_angle = max(0, depth_angle - 1)
        elif char == "," and depth_angle == 0:
            parts.append(value[start:i].strip())
            start = i + 1
        i += 1
    parts.append(value[start:].strip())
    return [part for part in parts if part]


@dataclass(frozen=True, slots=True)
class Headers:
    """Header fields in wire order, names canonical. Immutable: methods return new values."""

    items: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, pairs: Iterable[tuple[str, str]]) -> Headers:
        return cls(tuple((canonical_name(name), value) for name, value in pairs))

    def get(self, name: str) -> str | None:
        """The first value of ``name`` (for a multi-value header, its first element)."""
        values = self.values(name)
        return values[0] if values else None

    def values(self, name: str) -> list[str]:
        wanted = canonical_name(name)
        found: list[str] = []
        for key, value in self.items:
            if key == wanted:
                found.extend(_split_commas(value) if key in _MULTI_VALUE else [value])
        return found

    def with_(self, name: str, value: str) -> Headers:
        """``name`` set to ``value``, replacing every earlier occurrence in place."""
        wanted = canonical_name(name)
        items: list[tuple[str, str]] = []
        placed = False
        for key, old in self.items:
            if key != wanted:
                items.append((key, old))
            elif not placed:
                items.append((key, value))
                placed = True
        if not placed:
            items.append((wanted, value))
        return Headers(tuple(items))

    def added(self, name: str, value: str, *, first: bool = False) -> Headers:
        item = ((canonical_name(name), value),)
        return Headers(item + self.items if first else self.items + item)

    def without(self, name: str) -> Headers:
        wanted = canonical_name(name)
        return Headers(tuple(item for item in self.items if item[0] != wanted))

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


# --- URIs, name-addrs, Via ------------------------------------------------------------------


def _parse_params(text: str) -> dict[str, str]:
    """``;a=1;b`` -> {"a": "1", "b": ""}; names lower-cased (RFC 3261 §19.1.4)."""
    params: dict[str, str] = {}
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        name, _, value = part.partition("=")
        params[name.strip().lower()] = value.strip()
    return params


def _format_params(params: dict[str, str]) -> str:
    return "".join(f";{name}={value}" if value else f";{name}" for name, value in params.items())


def _split_hostport(text: str) -> tuple[str, int | None]:
    if text.startswith("["):  # an IPv6 reference
        host, _, rest = text[1:].partition("]")
        if not rest:
            return host, None
        if not rest.startswith(":") or not rest[1:].isdigit():
            raise ValueError(f"bad host and port {text!r}")
        return host, int(rest[1:])
    host, colon, port = text.partition(":")
    if not host or any(c in host for c in ' <>"') or (colon and not port.isdigit()):
        raise ValueError(f"bad host and port {text!r}")
    number = int(port) if colon else None
    if number is not None and not 0 < number < 65536:
        raise ValueError(f"port out of range in {text!r}")
    return host, number


def _format_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


@dataclass(frozen=True, slots=True)
class SipUri:
    """``sip:user@host:port;params?headers`` (RFC 3261 §19.1)."""

    host: str
    user: str | None = None
    port: int | None = None
    params: dict[str, str] = field(default_factory=dict)
    headers: str = ""
    scheme: str = "sip"
    password: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, text: str) -> SipUri:
        scheme, colon, rest = text.strip().partition(":")
        scheme = scheme.lower()
        if not colon or scheme not in ("sip", "sips") or not rest:
            raise ValueError(f"not a SIP URI: {text!r}")
        rest, _, headers = rest.partition("?")
        user = password = None
        if "@" in rest:
            userinfo, _, rest = rest.rpartition("@")
            user, _, pw = userinfo.partition(":")
            password = pw or None
        hostport, _, params = rest.partition(";")
        host, port = _split_hostport(hostport)
        return cls(host, user, port, _parse_params(params), headers, scheme, password)

    @property
    def transport(self) -> str:
        return self.params.get("transport", "udp").lower()

    def __str__(self) -> str:
        userinfo = ""
        if self.user is not None:
            userinfo = self.user + (f":{self.password}" if self.password else "") + "@"
        port = f":{self.port}" if self.port is not None else ""
        headers = f"?{self.headers}" if self.headers else ""
        host = _format_host(self.host)
        return f"{self.scheme}:{userinfo}{host}{port}{_format_params(self.params)}{headers}"


@dataclass(frozen=True, slots=True)
class NameAddr:
    """A From, To, Contact, Route or Record-Route value: ``"Name" <uri>;params``.

    The URI is kept as text (it may be a tel: URI); `sip_uri` parses it when it is SIP.
    """

    uri: str
    display: str = ""
    params: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> NameAddr:
        text = text.strip()
        if "<" in text:
            display, _, rest = text.partition("<")
            uri, closing, params = rest.partition(">")
            if not closing or not uri.strip():
                raise ValueError(f"bad name-addr {text!r}")
            display = display.strip().strip('"')
        else:
            # addr-spec without brackets: parameters after the URI belong to the header
            # (RFC 3261 §20), so the URI ends at the first semicolon.
            uri, _, params = text.partition(";")
            display = ""
            if not uri or " " in uri:
                raise ValueError(f"bad addr-spec {text!r}")
        if ":" not in uri:
            raise ValueError(f"no URI scheme in {text!r}")
        return cls(uri.strip(), display, _parse_params(params))

    @property
    def tag(self) -> str | None:
        return self.params.get("tag") or None

    def with_tag(self, tag: str) -> NameAddr:
        return replace(self, params={**self.params, "tag": tag})

    def sip_uri(self) -> SipUri:
        return SipUri.parse(self.uri)

    def __str__(self) -> str:
        display = f'"{self.display}" ' if self.display else ""
        return f"{display}<{self.uri}>{_format_params(self.params)}"


@dataclass(frozen=True, slots=True)
class Via:
    """One Via value: ``SIP/2.0/UDP host:port;branch=z9hG4bK...;rport;received=...``."""

    transport: str
    host: str
    port: int | None = None
    params: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Via:
        protocol, _, rest = text.strip().partition(" ")
        parts = [p.strip() for p in protocol.split("/")]
        if len(parts) != 3 or parts[0].upper() != "SIP" or parts[1] != "2.0":
            raise ValueError(f"bad Via protocol in {text!r}")
        sent_by, _, params = rest.strip().partition(";")
        host, port = _split_hostport(sent_by.strip())
        return cls(parts[2].upper(), host, port, _parse_params(params))

    @property
    def branch(self) -> str | None:
        return self.params.get("branch") or None

    @property
    def sent_by(self) -> tuple[str, int]:
        default = 5061 if self.transport == "TLS" else 5060
        return self.host, self.port or default

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        params = _format_params(self.params)
        return f"SIP/2.0/{self.transport} {_format_host(self.host)}{port}{params}"


# --- messages -------------------------------------------------------------------------------


def _cseq(headers: Headers) -> tuple[int, str]:
    value = headers.get("CSeq") or ""
    number, _, method = value.strip().partition(" ")
    return int(number), method.strip()


class _Common:
    """What requests and responses share; each has ``headers`` and ``body``."""

    headers: Headers
    body: bytes

    @property
    def call_id(self) -> str:
        return self.headers.get("Call-ID") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        """(number, method) of the CSeq header."""
        return _cseq(self.headers)

    @property
    def vias(self) -> list[Via]:
        return [Via.parse(value) for value in self.headers.values("Via")]

    @property
    def top_via(self) -> Via:
        return Via.parse(self.headers.values("Via")[0])

    @property
    def from_(self) -> NameAddr:
        return NameAddr.parse(self.headers.get("From") or "")

    @property
    def to(self) -> NameAddr:
        return NameAddr.parse(self.headers.get("To") or "")

    def _encode(self, start_line: str) -> bytes:
        headers = self.headers.with_("Content-Length", str(len(self.body)))
        lines = [start_line, *(f"{name}: {value}" for name, value in headers)]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


@dataclass(frozen=True, slots=True)
class Request(_Common):
    method: str
    uri: str
    headers: Headers = Headers()
    body: bytes = b""

    def __bytes__(self) -> bytes:
        return self._encode(f"{self.method} {self.uri} {SIP_VERSION}")


@dataclass(frozen=True, slots=True)
class Response(_Common):
    status: int
    reason: str
    headers: Headers = Headers()
    body: bytes = b""

    def __bytes__(self) -> bytes:
        return self._encode(f"{SIP_VERSION} {self.status} {self.reason}")


Message = Request | Response


def response_to(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> Response:
    """A response with the request's Via, From, To, Call-ID and CSeq (RFC 3261 §8.2.6.2).

    ``to_tag`` is added to To unless the request's To already has one; a 100 never gets
    one (§8.2.6.2 leaves it optional, and a tag there would not be the dialog's).
    """
    copied: list[tuple[str, str]] = []
    for name, value in request.headers:
        if name == "To" and to_tag and status != 100 and "tag=" not in value.replace(" ", ""):
            value = f"{value};tag={to_tag}"
        if name in ("Via", "From", "To", "Call-ID", "CSeq"):
            copied.append((name, value))
        elif name == "Record-Route" and 100 < status < 300:
            copied.append((name, value))  # §12.1.1: the UAS copies it into dialog creators
    return Response(
        status, reason or REASONS.get(status, "Unknown"), Headers.of([*copied, *headers]), body
    )


def _start_line(line: str) -> tuple[str, str, str]:
    parts = line.split(" ")
    if line.startswith(SIP_VERSION + " "):
        code, _, reason = line[len(SIP_VERSION) + 1 :].partition(" ")
        if len(code) != 3 or not code.isdigit() or not 100 <= int(code) <= 699:
            raise ParseError(f"bad status code in {line[:80]!r}")
        return "response", code, reason
    if len(parts) != 3 or parts[2] != SIP_VERSION or not parts[1]:
        raise ParseError(f"bad request line {line[:80]!r}")
    if not _TOKEN.match(parts[0]):
        raise ParseError(f"bad method in {line[:80]!r}")
    return "request", parts[0], parts[1]


def parse(data: bytes, limits: MessageLimits = DEFAULT_LIMITS) -> Message:
    """One whole message, or `ParseError`. See the module docstring for what is strict."""
    method: str | None = None
    salvaged: list[tuple[str, str]] = []

    def fail(reason: str, status: int = 400) -> ParseError:
        return ParseError(reason, status=status, salvaged=Headers(tuple(salvaged)), method=method)

    head, separator, body = data.partition(b"\r\n\r\n")
    if not separator:
        raise fail("no blank line after the headers")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise fail("header bytes are not UTF-8") from exc
    # Unfold continuation lines (RFC 3261 §7.3.1) before splitting into header lines.
    lines = re.sub(r"\r\n[ \t]+", " ", text).split("\r\n")
    # A broken start line is reported after the headers are read: a request whose
    # headers can be salvaged still gets its 400 (``ACK  SIP/2.0`` among them).
    start_error: ParseError | None = None
    try:
        kind, first, second = _start_line(lines[0])
    except ParseError as exc:
        start_error, kind, first, second = exc, "request", lines[0].split(" ")[0], ""
    if kind == "request":
        method = first
    if len(lines) - 1 > limits.max_headers:
        raise fail(f"more than {limits.max_headers} header lines")
    for line in lines[1:]:
        if len(line) > limits.max_header_line:
            raise fail(f"a header line longer than {limits.max_header_line} bytes")
        name, colon, value = line.partition(":")
        if not colon or not name.strip() or not _TOKEN.match(name.strip()):
            raise fail(f"bad header line {line[:60]!r}")
        salvaged.append((canonical_name(name), value.strip()))
    if len(data) > limits.max_size:
        raise fail(f"larger than {limits.max_size} bytes", 513)
    if start_error is not None:
        raise fail(start_error.message)
    headers = Headers(tuple(salvaged))
    for name in _MANDATORY:
        if not headers.values(name):
            raise fail(f"no {name} header")
        if name != "Via" and len(headers.values(name)) != 1:
            raise fail(f"more than one {name} header")
    try:
        number, cseq_method = _cseq(headers)
    except ValueError as exc:
        raise fail("CSeq is not a number and a method") from exc
    if not 0 <= number < 2**31 or not _TOKEN.match(cseq_method or "-"):
        raise fail("bad CSeq")
    if method is not None and cseq_method != method:
        raise fail("CSeq method differs from the request method")
    try:
        for via in headers.values("Via"):
            Via.parse(via)
        for name in ("From", "To"):
            NameAddr.parse(headers.get(name) or "")
    except ValueError as exc:
        raise fail(str(exc)) from exc
    length_text = headers.get("Content-Length")
    if length_text is not None:
        if not length_text.isdigit():
            raise fail("Content-Length is not a number")
        length = int(length_text)
        if length > len(body):
            raise fail("body shorter than Content-Length")
        body = body[:length]  # §18.3: bytes past Content-Length in a datagram are dropped
    if kind == "response":
        return Response(int(first), second, headers, body)
    if method is not None and not _uri_ok(second):
        raise fail(f"bad Request-URI {second[:80]!r}")
    return Request(first, second, headers, body)


def _uri_ok(uri: str) -> bool:
    scheme, colon, rest = uri.partition(":")
    return bool(colon and rest and re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*$", scheme))


class StreamFramer:
    """Cuts a TCP byte stream into messages by Content-Length (RFC 3261 §18.3).

    `feed` returns the complete messages' bytes; parse each with `parse`. A head that
    grows past the size limit without ending, or a Content-Length past it, raises
    `ParseError`: the stream cannot be followed any more and the connection must close.
    """

    def __init__(self, limits: MessageLimits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        messages: list[bytes] = []
        while True:
            # Keep-alive CRLFs between messages (RFC 5626 §3.5.1) are skipped.
            while self._buffer[:2] == b"\r\n":
                del self._buffer[:2]
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > self.limits.max_size:
                    raise ParseError("headers never end", status=513)
                return messages
            head = bytes(self._buffer[:end])
            match = re.search(rb"(?im)^(?:content-length|l)[ \t]*:[ \t]*(\d+)[ \t]*$", head)
            length = int(match.group(1)) if match else 0
            total = end + 4 + length
            if total > self.limits.max_size:
                raise ParseError(f"message larger than {self.limits.max_size} bytes", status=513)
            if len(self._buffer) < total:
                return messages
            messages.append(bytes(self._buffer[:total]))
            del self._buffer[:total]
