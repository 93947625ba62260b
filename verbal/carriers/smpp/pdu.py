"""SMPP 3.4 PDUs as frozen dataclasses, and their encoding to and from bytes.

Every PDU is a 16-octet header (command_length, command_id, command_status,
sequence_number: big-endian unsigned 32-bit each, the length counting the header itself),
then the command's mandatory fields in a fixed order, then optional TLVs (SMPP 3.4 §3.2,
§5.3). Mandatory fields come in three shapes only:

* Integer(1): one octet (TON, NPI, esm_class, data_coding ...);
* C-Octet String: characters ending in a NUL, with a maximum size that counts the NUL
  (``source_addr`` is "Var. max 21", so 20 characters);
* ``sm_length`` + ``short_message``: one length octet, then 0-254 octets.

So each PDU class declares its fields with those shapes (`_cstring`, `_octet`,
`_short_message`) and one generic codec, compiled once per class into a short list of
steps, reads and writes them all. Runs of consecutive one-octet fields become a single
`struct` call, which keeps a submit_sm to about a dozen steps.

Validation happens at the edges of the wire: `encode` refuses what can't be sent (a
C-string too long for its field, an out-of-range octet, a 255-octet short_message), and
decoding refuses what the peer can't have meant, raising `PduError` with the
command_status that describes the problem, so the session can answer with it. Decoding
never raises anything else on hostile bytes.
"""

import enum
import struct
from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import Any, ClassVar, Self

__all__ = [
    "DEFAULT_MAX_PDU_SIZE",
    "ESM_CLASS_UDHI",
    "HEADER_SIZE",
    "INTERFACE_VERSION",
    "MAX_SEQUENCE_NUMBER",
    "RESPONSE_BIT",
    "BindReceiver",
    "BindReceiverResp",
    "BindRequest",
    "BindResponse",
    "BindTransceiver",
    "BindTransceiverResp",
    "BindTransmitter",
    "BindTransmitterResp",
    "CommandId",
    "CommandStatus",
    "DataSm",
    "DataSmResp",
    "DeliverSm",
    "DeliverSmResp",
    "EnquireLink",
    "EnquireLinkResp",
    "GenericNack",
    "MessageState",
    "Outbind",
    "Pdu",
    "PduError",
    "PduReader",
    "Request",
    "Response",
    "ShortMessageRequest",
    "SubmitSm",
    "SubmitSmResp",
    "Tag",
    "Tlv",
    "Unbind",
    "UnbindResp",
    "UnknownPdu",
    "decode",
    "pdu_class",
]

HEADER_SIZE = 16
# SMPP 3.4 puts no upper bound on command_length, so a peer could announce 4 GiB and have
# us buffer it. The largest PDU anyone has a use for is a submit_sm or deliver_sm whose
# message_payload TLV is full (its length is 16 bits, so under 64 KiB); 2 KiB more covers
# the header, the mandatory fields and a few other TLVs.
DEFAULT_MAX_PDU_SIZE = 66 * 1024
# A response's command_id is its request's with the top bit set (SMPP 3.4 §5.1.2.1).
RESPONSE_BIT = 0x80000000
# sequence_number runs 0x00000001-0x7FFFFFFF (SMPP 3.4 §5.1.4).
MAX_SEQUENCE_NUMBER = 0x7FFFFFFF
INTERFACE_VERSION = 0x34
# esm_class bit 6: short_message begins with a User Data Header (SMPP 3.4 §5.2.12).
ESM_CLASS_UDHI = 0x40


class CommandId(enum.IntEnum):
    """command_id values (SMPP 3.4 §5.1.2.1)."""

    GENERIC_NACK = 0x80000000
    BIND_RECEIVER = 0x00000001
    BIND_RECEIVER_RESP = 0x80000001
    BIND_TRANSMITTER = 0x00000002
    BIND_TRANSMITTER_RESP = 0x80000002
    QUERY_SM = 0x00000003
    QUERY_SM_RESP = 0x80000003
    SUBMIT_SM = 0x00000004
    SUBMIT_SM_RESP = 0x80000004
    DELIVER_SM = 0x00000005
    DELIVER_SM_RESP = 0x80000005
    UNBIND = 0x00000006
    UNBIND_RESP = 0x80000006
    REPLACE_SM = 0x00000007
    REPLACE_SM_RESP = 0x80000007
    CANCEL_SM = 0x00000008
    CANCEL_SM_RESP = 0x80000008
    BIND_TRANSCEIVER = 0x00000009
    BIND_TRANSCEIVER_RESP = 0x80000009
    OUTBIND = 0x0000000B
    ENQUIRE_LINK = 0x00000015
    ENQUIRE_LINK_RESP = 0x80000015
    SUBMIT_MULTI = 0x00000021
    SUBMIT_MULTI_RESP = 0x80000021
    ALERT_NOTIFICATION = 0x00000102
    DATA_SM = 0x00000103
    DATA_SM_RESP = 0x80000103


class CommandStatus(enum.IntEnum):
    """command_status values (SMPP 3.4 §5.1.3, Table 5-2).

    Peers also send values outside this table (0x400-0x4FF are vendor-specific), so PDUs
    carry the status as a plain int; `CommandStatus.name_of` names any of them.
    """

    ESME_ROK = 0x00
    ESME_RINVMSGLEN = 0x01
    ESME_RINVCMDLEN = 0x02
    ESME_RINVCMDID = 0x03
    ESME_RINVBNDSTS = 0x04
    ESME_RALYBND = 0x05
    ESME_RINVPRTFLG = 0x06
    ESME_RINVREGDLVFLG = 0x07
    ESME_RSYSERR = 0x08
    ESME_RINVSRCADR = 0x0A
    ESME_RINVDSTADR = 0x0B
    ESME_RINVMSGID = 0x0C
    ESME_RBINDFAIL = 0x0D
    ESME_RINVPASWD = 0x0E
    ESME_RINVSYSID = 0x0F
    ESME_RCANCELFAIL = 0x11
    ESME_RREPLACEFAIL = 0x13
    ESME_RMSGQFUL = 0x14
    ESME_RINVSERTYP = 0x15
    ESME_RINVNUMDESTS = 0x33
    ESME_RINVDLNAME = 0x34
    ESME_RINVDESTFLAG = 0x40
    ESME_RINVSUBREP = 0x42
    ESME_RINVESMCLASS = 0x43
    ESME_RCNTSUBDL = 0x44
    ESME_RSUBMITFAIL = 0x45
    ESME_RINVSRCTON = 0x48
    ESME_RINVSRCNPI = 0x49
    ESME_RINVDSTTON = 0x50
    ESME_RINVDSTNPI = 0x51
    ESME_RINVSYSTYP = 0x53
    ESME_RINVREPFLAG = 0x54
    ESME_RINVNUMMSGS = 0x55
    ESME_RTHROTTLED = 0x58
    ESME_RINVSCHED = 0x61
    ESME_RINVEXPIRY = 0x62
    ESME_RINVDFTMSGID = 0x63
    ESME_RX_T_APPN = 0x64
    ESME_RX_P_APPN = 0x65
    ESME_RX_R_APPN = 0x66
    ESME_RQUERYFAIL = 0x67
    ESME_RINVOPTPARSTREAM = 0xC0
    ESME_ROPTPARNOTALLWD = 0xC1
    ESME_RINVPARLEN = 0xC2
    ESME_RMISSINGOPTPARAM = 0xC3
    ESME_RINVOPTPARAMVAL = 0xC4
    ESME_RDELIVERYFAILURE = 0xFE
    ESME_RUNKNOWNERR = 0xFF

    @classmethod
    def name_of(cls, status: int) -> str:
        """The symbolic name of ``status``, or its hex value when the table has none."""
        try:
            return cls(status).name
        except ValueError:
            return f"0x{status:08X}"


class Tag(enum.IntEnum):
    """Optional parameter (TLV) tags (SMPP 3.4 §5.3.2)."""

    DEST_ADDR_SUBUNIT = 0x0005
    DEST_NETWORK_TYPE = 0x0006
    DEST_BEARER_TYPE = 0x0007
    DEST_TELEMATICS_ID = 0x0008
    SOURCE_ADDR_SUBUNIT = 0x000D
    SOURCE_NETWORK_TYPE = 0x000E
    SOURCE_BEARER_TYPE = 0x000F
    SOURCE_TELEMATICS_ID = 0x0010
    QOS_TIME_TO_LIVE = 0x0017
    PAYLOAD_TYPE = 0x0019
    ADDITIONAL_STATUS_INFO_TEXT = 0x001D
    RECEIPTED_MESSAGE_ID = 0x001E
    MS_MSG_WAIT_FACILITIES = 0x0030
    PRIVACY_INDICATOR = 0x0201
    SOURCE_SUBADDRESS = 0x0202
    DEST_SUBADDRESS = 0x0203
    USER_MESSAGE_REFERENCE = 0x0204
    USER_RESPONSE_CODE = 0x0205
    SOURCE_PORT = 0x020A
    DESTINATION_PORT = 0x020B
    SAR_MSG_REF_NUM = 0x020C
    LANGUAGE_INDICATOR = 0x020D
    SAR_TOTAL_SEGMENTS = 0x020E
    SAR_SEGMENT_SEQNUM = 0x020F
    SC_INTERFACE_VERSION = 0x0210
    CALLBACK_NUM_PRES_IND = 0x0302
    CALLBACK_NUM_ATAG = 0x0303
    NUMBER_OF_MESSAGES = 0x0304
    CALLBACK_NUM = 0x0381
    DPF_RESULT = 0x0420
    SET_DPF = 0x0421
    MS_AVAILABILITY_STATUS = 0x0422
    NETWORK_ERROR_CODE = 0x0423
    MESSAGE_PAYLOAD = 0x0424
    DELIVERY_FAILURE_REASON = 0x0425
    MORE_MESSAGES_TO_SEND = 0x0426
    MESSAGE_STATE = 0x0427
    USSD_SERVICE_OP = 0x0501
    DISPLAY_TIME = 0x1201
    SMS_SIGNAL = 0x1203
    MS_VALIDITY = 0x1204
    ALERT_ON_MESSAGE_DELIVERY = 0x130C
    ITS_REPLY_TYPE = 0x1380
    ITS_SESSION_INFO = 0x1383


class MessageState(enum.IntEnum):
    """Values of the message_state TLV, as delivery receipts carry it (SMPP 3.4 §5.2.28)."""

    ENROUTE = 1
    DELIVERED = 2
    EXPIRED = 3
    DELETED = 4
    UNDELIVERABLE = 5
    ACCEPTED = 6
    UNKNOWN = 7
    REJECTED = 8


class PduError(ValueError):
    """A PDU that can't be encoded, or bytes that are not a valid PDU.

    ``command_status`` is the SMPP error that describes the problem (ESME_RINVCMDLEN for a
    bad length, ESME_RINVSRCADR for an over-long source_addr ...), which is what the
    response to a bad request should carry. ``command_id`` and ``sequence_number`` are the
    offending PDU's, when its header could be read. ``fatal`` means the byte stream can't
    be followed any further (the frame length itself is wrong); otherwise only this one
    PDU was bad and the ones after it can still be read.
    """

    def __init__(
        self,
        message: str,
        *,
        command_status: int,
        command_id: int | None = None,
        sequence_number: int | None = None,
        fatal: bool = False,
    ) -> None:
        super().__init__(message)
        self.command_status = command_status
        self.command_id = command_id
        self.sequence_number = sequence_number
        self.fatal = fatal


_HEADER = struct.Struct(">IIII")
_TLV_HEADER = struct.Struct(">HH")
_U8 = struct.Struct(">B")


@dataclass(frozen=True, slots=True)
class Tlv:
    """One optional parameter: a 16-bit tag and its raw value (at most 65,535 octets).

    TLVs are kept as raw bytes, in the order received, so that any tag, known or not,
    survives a decode and re-encode unchanged; the constructors and accessors below do the
    typing for the tags Verbal reads and writes.
    """

    tag: int
    value: bytes

    @classmethod
    def integer(cls, tag: int, value: int, size: int) -> "Tlv":
        """An unsigned big-endian integer of ``size`` octets (sar_msg_ref_num is 2, ...)."""
        return cls(tag, value.to_bytes(size, "big"))

    @classmethod
    def cstring(cls, tag: int, value: str) -> "Tlv":
        """A C-Octet String value (receipted_message_id ...): the text and its NUL."""
        return cls(tag, value.encode("latin-1") + b"\0")

    def as_integer(self) -> int:
        return int.from_bytes(self.value, "big")

    def as_cstring(self) -> str:
        # Tolerate a missing NUL: some SMSCs send receipted_message_id without one.
        return self.value.split(b"\0", 1)[0].decode("latin-1")


# --- field shapes -------------------------------------------------------------------------

_SHAPE = "smpp"


class _Octets:
    """A run of consecutive one-octet integer fields, packed with one struct call."""

    __slots__ = ("_get", "_names", "_struct")

    def __init__(self, names: tuple[str, ...]) -> None:
        self._names = names
        self._struct = struct.Struct(">" + "B" * len(names))
        getter = attrgetter(*names)
        # attrgetter of one name returns the bare value, of several a tuple: normalise.
        self._get = getter if len(names) > 1 else (lambda pdu: (getter(pdu),))

    def encode(self, pdu: "Pdu", out: list[bytes]) -> None:
        values = self._get(pdu)
        try:
            out.append(self._struct.pack(*values))
        except struct.error:
            bad = next(
                name
                for name, value in zip(self._names, values, strict=True)
                if not (isinstance(value, int) and 0 <= value <= 255)
            )
            msg = f"{bad} must be an integer from 0 to 255, got {getattr(pdu, bad)!r}"
            raise PduError(msg, command_status=CommandStatus.ESME_RSYSERR) from None

    def decode(self, buf: bytes | bytearray, pos: int, end: int, values: dict[str, Any]) -> int:
        stop = pos + self._struct.size
        if stop > end:
            msg = f"body ends before {self._names[0]}"
            raise PduError(msg, command_status=CommandStatus.ESME_RINVCMDLEN)
        values.update(zip(self._names, self._struct.unpack_from(buf, pos), strict=True))
        return stop


class _CString:
    """A C-Octet String field; ``size`` counts the terminating NUL, as the spec does."""

    __slots__ = ("_name", "_size", "_status")

    def __init__(self, name: str, size: int, status: int) -> None:
        self._name = name
        self._size = size
        self._status = status

    def encode(self, pdu: "Pdu", out: list[bytes]) -> None:
        value = getattr(pdu, self._name)
        try:
            # The spec says ASCII; Latin-1 maps each octet to one character and back, so a
            # peer's odd octets (national letters in system_type, say) survive unchanged.
            raw = value.encode("latin-1")
        except (AttributeError, UnicodeEncodeError):
            msg = f"{self._name} must be a str of Latin-1 characters, got {value!r}"
            raise PduError(msg, command_status=self._status) from None
        if len(raw) >= self._size or b"\0" in raw:
            msg = f"{self._name} {value!r} does not fit: at most {self._size - 1} octets and no NUL"
            raise PduError(msg, command_status=self._status)
        out.append(raw + b"\0")

    def decode(self, buf: bytes | bytearray, pos: int, end: int, values: dict[str, Any]) -> int:
        nul = buf.find(b"\0", pos, min(end, pos + self._size))
        if nul < 0:
            if end - pos >= self._size:
                msg = f"{self._name} is longer than {self._size - 1} octets"
                raise PduError(msg, command_status=self._status)
            msg = f"body ends inside {self._name} (no NUL)"
            raise PduError(msg, command_status=CommandStatus.ESME_RINVCMDLEN)
        values[self._name] = buf[pos:nul].decode("latin-1")
        return nul + 1


# short_message is "Octet String, Var. 0-254" (SMPP 3.4 §5.2.22).
_MAX_SHORT_MESSAGE = 254


class _ShortMessage:
    """sm_length and short_message: the length lives only on the wire, not in the PDU."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def encode(self, pdu: "Pdu", out: list[bytes]) -> None:
        value = getattr(pdu, self._name)
        if not isinstance(value, bytes | bytearray):
            msg = f"{self._name} must be bytes, got {type(value).__name__}"
            raise PduError(msg, command_status=CommandStatus.ESME_RINVMSGLEN)
        if len(value) > _MAX_SHORT_MESSAGE:
            msg = (
                f"{self._name} is {len(value)} octets; at most {_MAX_SHORT_MESSAGE} fit "
                "(longer texts go in the message_payload TLV or in several parts)"
            )
            raise PduError(msg, command_status=CommandStatus.ESME_RINVMSGLEN)
        out.append(_U8.pack(len(value)))
        out.append(bytes(value))

    def decode(self, buf: bytes | bytearray, pos: int, end: int, values: dict[str, Any]) -> int:
        if pos >= end:
            msg = "body ends before sm_length"
            raise PduError(msg, command_status=CommandStatus.ESME_RINVCMDLEN)
        length = buf[pos]
        start = pos + 1
        if length > _MAX_SHORT_MESSAGE or start + length > end:
            msg = f"sm_length {length} does not match the {end - start} octets that follow"
            raise PduError(msg, command_status=CommandStatus.ESME_RINVMSGLEN)
        values[self._name] = bytes(buf[start : start + length])
        return start + length


_Step = _Octets | _CString | _ShortMessage


def _octet(default: int = 0) -> Any:
    return field(default=default, metadata={_SHAPE: ("octet",)})


def _cstring(size: int, status: int = CommandStatus.ESME_RINVCMDLEN) -> Any:
    return field(default="", metadata={_SHAPE: ("cstring", size, status)})


def _short_message() -> Any:
    return field(default=b"", metadata={_SHAPE: ("short_message",)})


def _compile(cls: type) -> tuple[_Step, ...]:
    """Turn the shapes declared on ``cls``'s fields, in order, into codec steps."""
    steps: list[_Step] = []
    octets: list[str] = []
    for f in fields(cls):
        shape = f.metadata.get(_SHAPE)
        if shape is None:
            continue  # header fields and tlvs
        if shape[0] == "octet":
            octets.append(f.name)
            continue
        if octets:
            steps.append(_Octets(tuple(octets)))
            octets = []
        if shape[0] == "cstring":
            steps.append(_CString(f.name, shape[1], shape[2]))
        else:
            steps.append(_ShortMessage(f.name))
    if octets:
        steps.append(_Octets(tuple(octets)))
    return tuple(steps)


def _decode_tlvs(buf: bytes | bytearray, pos: int, end: int) -> tuple[Tlv, ...]:
    tlvs = []
    while pos < end:
        if end - pos < _TLV_HEADER.size:
            msg = f"{end - pos} stray octets after the last TLV"
            raise PduError(msg, command_status=CommandStatus.ESME_RINVOPTPARSTREAM)
        tag, length = _TLV_HEADER.unpack_from(buf, pos)
        pos += _TLV_HEADER.size
        if pos + length > end:
            msg = f"TLV 0x{tag:04X} claims {length} octets, {end - pos} remain"
            raise PduError(msg, command_status=CommandStatus.ESME_RINVOPTPARSTREAM)
        tlvs.append(Tlv(tag, bytes(buf[pos : pos + length])))
        pos += length
    return tuple(tlvs)


# --- PDUs ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Pdu:
    """What every PDU has: the header's status and sequence number, and its TLVs.

    Requests carry command_status 0 ("unused, set to NULL" in the spec); it is a field on
    every PDU anyway so that whatever a peer sent survives a decode and re-encode.
    """

    command_id: ClassVar[int]
    _steps: ClassVar[tuple[_Step, ...]] = ()

    command_status: int = 0  # ESME_ROK
    sequence_number: int = 0
    tlvs: tuple[Tlv, ...] = ()

    def tlv(self, tag: int) -> Tlv | None:
        """The first TLV with ``tag``, or None."""
        for tlv in self.tlvs:
            if tlv.tag == tag:
                return tlv
        return None

    def _has_body(self) -> bool:
        return True

    def encode(self) -> bytes:
        """The PDU on the wire. Raises `PduError` if a field can't be sent as it is."""
        out = [b""]  # the header goes here once the body's length is known
        try:
            if self._has_body():
                for step in self._steps:
                    step.encode(self, out)
                for tlv in self.tlvs:
                    out.append(_TLV_HEADER.pack(tlv.tag, len(tlv.value)))
                    out.append(tlv.value)
            length = sum(map(len, out)) + HEADER_SIZE
            header = (length, self.command_id, self.command_status, self.sequence_number)
            out[0] = _HEADER.pack(*header)
            return b"".join(out)
        except PduError as exc:
            raise _in_context(exc, self.command_id, self.sequence_number) from None
        except (struct.error, TypeError):
            msg = (
                f"{type(self).__name__}: command_status, sequence_number and TLV tags and "
                "lengths must fit their fields"
            )
            raise PduError(
                msg, command_status=CommandStatus.ESME_RSYSERR, command_id=self.command_id
            ) from None

    @classmethod
    def _decode_body(
        cls, buf: bytes | bytearray, pos: int, end: int, command_status: int, sequence_number: int
    ) -> Self:
        values: dict[str, Any] = {}
        tlvs: tuple[Tlv, ...] = ()
        if pos < end or not issubclass(cls, Response):
            # SMPP 3.4 leaves the body out of an error response (§4.4.2), and some SMSCs
            # leave it out of others too: an empty response body means "all defaults".
            for step in cls._steps:
                pos = step.decode(buf, pos, end, values)
            if pos < end:
                tlvs = _decode_tlvs(buf, pos, end)
        return cls(
            command_status=command_status, sequence_number=sequence_number, tlvs=tlvs, **values
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Response(Pdu):
    """A PDU answering a request; its command_id is the request's | 0x80000000."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Request(Pdu):
    """A PDU that the peer answers (all but outbind) with a `Response` of its own type."""

    response_class: ClassVar[type[Response] | None]

    def response(self, command_status: int = CommandStatus.ESME_ROK, **values: Any) -> Response:
        """The response to this request, with its sequence number and ``command_status``."""
        if self.response_class is None:
            msg = f"{type(self).__name__} has no response"
            raise TypeError(msg)
        return self.response_class(
            command_status=command_status, sequence_number=self.sequence_number, **values
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class GenericNack(Response):
    """The answer to a PDU that can't be processed at all (bad length, unknown command)."""

    command_id: ClassVar[int] = CommandId.GENERIC_NACK


# Bind (SMPP 3.4 §4.1). The three binds and their responses share a layout.


@dataclass(frozen=True, slots=True, kw_only=True)
class BindResponse(Response):
    system_id: str = _cstring(16, CommandStatus.ESME_RINVSYSID)


@dataclass(frozen=True, slots=True, kw_only=True)
class BindTransmitterResp(BindResponse):
    command_id: ClassVar[int] = CommandId.BIND_TRANSMITTER_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class BindReceiverResp(BindResponse):
    command_id: ClassVar[int] = CommandId.BIND_RECEIVER_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class BindTransceiverResp(BindResponse):
    command_id: ClassVar[int] = CommandId.BIND_TRANSCEIVER_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class BindRequest(Request):
    system_id: str = _cstring(16, CommandStatus.ESME_RINVSYSID)
    password: str = _cstring(9, CommandStatus.ESME_RINVPASWD)
    system_type: str = _cstring(13, CommandStatus.ESME_RINVSYSTYP)
    interface_version: int = _octet(INTERFACE_VERSION)
    addr_ton: int = _octet()
    addr_npi: int = _octet()
    address_range: str = _cstring(41)

    def __repr__(self) -> str:
        # Keep the password out of logs and tracebacks.
        return (
            f"{type(self).__name__}(sequence_number={self.sequence_number}, "
            f"system_id={self.system_id!r}, password='***', system_type={self.system_type!r})"
        )


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class BindTransmitter(BindRequest):
    command_id: ClassVar[int] = CommandId.BIND_TRANSMITTER
    response_class: ClassVar[type[Response] | None] = BindTransmitterResp


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class BindReceiver(BindRequest):
    command_id: ClassVar[int] = CommandId.BIND_RECEIVER
    response_class: ClassVar[type[Response] | None] = BindReceiverResp


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class BindTransceiver(BindRequest):
    command_id: ClassVar[int] = CommandId.BIND_TRANSCEIVER
    response_class: ClassVar[type[Response] | None] = BindTransceiverResp


@dataclass(frozen=True, slots=True, kw_only=True)
class Outbind(Request):
    """The SMSC asking the ESME to bind as a receiver (SMPP 3.4 §4.1.7); never answered."""

    command_id: ClassVar[int] = CommandId.OUTBIND
    response_class: ClassVar[type[Response] | None] = None

    system_id: str = _cstring(16, CommandStatus.ESME_RINVSYSID)
    password: str = _cstring(9, CommandStatus.ESME_RINVPASWD)

    def __repr__(self) -> str:
        return (
            f"Outbind(sequence_number={self.sequence_number}, system_id={self.system_id!r}, "
            "password='***')"
        )


# Session upkeep (SMPP 3.4 §4.2, §4.11): no bodies.


@dataclass(frozen=True, slots=True, kw_only=True)
class UnbindResp(Response):
    command_id: ClassVar[int] = CommandId.UNBIND_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class Unbind(Request):
    command_id: ClassVar[int] = CommandId.UNBIND
    response_class: ClassVar[type[Response] | None] = UnbindResp


@dataclass(frozen=True, slots=True, kw_only=True)
class EnquireLinkResp(Response):
    command_id: ClassVar[int] = CommandId.ENQUIRE_LINK_RESP


@dataclass(frozen=True, slots=True, kw_only=True)
class EnquireLink(Request):
    command_id: ClassVar[int] = CommandId.ENQUIRE_LINK
    response_class: ClassVar[type[Response] | None] = EnquireLinkResp


# Messages (SMPP 3.4 §4.4, §4.6, §4.7).


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitSmResp(Response):
    command_id: ClassVar[int] = CommandId.SUBMIT_SM_RESP

    message_id: str = _cstring(65, CommandStatus.ESME_RINVMSGID)

    def _has_body(self) -> bool:
        # "The submit_sm_resp PDU Body is not returned if the command_status field
        # contains a non-zero value" (SMPP 3.4 §4.4.2).
        return self.command_status == CommandStatus.ESME_ROK


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliverSmResp(Response):
    command_id: ClassVar[int] = CommandId.DELIVER_SM_RESP

    # "This field is unused and is set to NULL" (SMPP 3.4 §4.6.2).
    message_id: str = _cstring(1, CommandStatus.ESME_RINVMSGID)


@dataclass(frozen=True, slots=True, kw_only=True)
class ShortMessageRequest(Request):
    """submit_sm and deliver_sm: the same fields in the same order (SMPP 3.4 §4.4.1, §4.6.1).

    In a deliver_sm, schedule_delivery_time, validity_period, replace_if_present_flag and
    sm_default_msg_id are unused and stay at their defaults.
    """

    service_type: str = _cstring(6, CommandStatus.ESME_RINVSERTYP)
    source_addr_ton: int = _octet()
    source_addr_npi: int = _octet()
    source_addr: str = _cstring(21, CommandStatus.ESME_RINVSRCADR)
    dest_addr_ton: int = _octet()
    dest_addr_npi: int = _octet()
    destination_addr: str = _cstring(21, CommandStatus.ESME_RINVDSTADR)
    esm_class: int = _octet()
    protocol_id: int = _octet()
    priority_flag: int = _octet()
    schedule_delivery_time: str = _cstring(17, CommandStatus.ESME_RINVSCHED)
    validity_period: str = _cstring(17, CommandStatus.ESME_RINVEXPIRY)
    registered_delivery: int = _octet()
    replace_if_present_flag: int = _octet()
    data_coding: int = _octet()
    sm_default_msg_id: int = _octet()
    short_message: bytes = _short_message()


@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitSm(ShortMessageRequest):
    command_id: ClassVar[int] = CommandId.SUBMIT_SM
    response_class: ClassVar[type[Response] | None] = SubmitSmResp


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliverSm(ShortMessageRequest):
    command_id: ClassVar[int] = CommandId.DELIVER_SM
    response_class: ClassVar[type[Response] | None] = DeliverSmResp


@dataclass(frozen=True, slots=True, kw_only=True)
class DataSmResp(Response):
    command_id: ClassVar[int] = CommandId.DATA_SM_RESP

    message_id: str = _cstring(65, CommandStatus.ESME_RINVMSGID)


@dataclass(frozen=True, slots=True, kw_only=True)
class DataSm(Request):
    """data_sm (SMPP 3.4 §4.7.1): either direction; the text travels in message_payload."""

    command_id: ClassVar[int] = CommandId.DATA_SM
    response_class: ClassVar[type[Response] | None] = DataSmResp

    service_type: str = _cstring(6, CommandStatus.ESME_RINVSERTYP)
    source_addr_ton: int = _octet()
    source_addr_npi: int = _octet()
    # data_sm addresses are "Var. max 65", unlike submit_sm's 21.
    source_addr: str = _cstring(65, CommandStatus.ESME_RINVSRCADR)
    dest_addr_ton: int = _octet()
    dest_addr_npi: int = _octet()
    destination_addr: str = _cstring(65, CommandStatus.ESME_RINVDSTADR)
    esm_class: int = _octet()
    registered_delivery: int = _octet()
    data_coding: int = _octet()


@dataclass(frozen=True, slots=True)
class UnknownPdu:
    """A PDU whose command_id Verbal does not implement, kept raw.

    A request of this kind gets a generic_nack with ESME_RINVCMDID; the body is kept so
    that the PDU can still be logged or passed on unchanged.
    """

    command_id: int
    command_status: int
    sequence_number: int
    body: bytes

    def encode(self) -> bytes:
        header = _HEADER.pack(
            HEADER_SIZE + len(self.body), self.command_id, self.command_status, self.sequence_number
        )
        return header + self.body


_CLASSES: dict[int, type[Request] | type[Response]] = {}
for _cls in (
    GenericNack,
    BindTransmitter,
    BindTransmitterResp,
    BindReceiver,
    BindReceiverResp,
    BindTransceiver,
    BindTransceiverResp,
    Outbind,
    Unbind,
    UnbindResp,
    EnquireLink,
    EnquireLinkResp,
    SubmitSm,
    SubmitSmResp,
    DeliverSm,
    DeliverSmResp,
    DataSm,
    DataSmResp,
):
    _cls._steps = _compile(_cls)
    _CLASSES[_cls.command_id] = _cls
del _cls


def pdu_class(command_id: int) -> type[Request] | type[Response] | None:
    """The class that decodes ``command_id``, or None for a command Verbal doesn't implement."""
    return _CLASSES.get(command_id)


def _in_context(exc: PduError, command_id: int, sequence_number: int) -> PduError:
    return PduError(
        str(exc),
        command_status=exc.command_status,
        command_id=command_id,
        sequence_number=sequence_number,
        fatal=exc.fatal,
    )


def _decode_frame(buf: bytes | bytearray, start: int, end: int) -> Request | Response | UnknownPdu:
    """Decode the frame ``buf[start:end]``, whose length field has already been checked."""
    _, command_id, command_status, sequence_number = _HEADER.unpack_from(buf, start)
    cls = _CLASSES.get(command_id)
    if cls is None:
        body = bytes(buf[start + HEADER_SIZE : end])
        return UnknownPdu(command_id, command_status, sequence_number, body)
    try:
        return cls._decode_body(buf, start + HEADER_SIZE, end, command_status, sequence_number)
    except PduError as exc:
        raise _in_context(exc, command_id, sequence_number) from None


def decode(frame: bytes) -> Request | Response | UnknownPdu:
    """Decode exactly one PDU. Raises `PduError` if ``frame`` is not one well-formed PDU."""
    if len(frame) < HEADER_SIZE:
        msg = f"{len(frame)} octets are not even a PDU header"
        raise PduError(msg, command_status=CommandStatus.ESME_RINVCMDLEN, fatal=True)
    length, command_id, _, sequence_number = _HEADER.unpack_from(frame)
    if length != len(frame):
        msg = f"command_length {length} does not match the frame's {len(frame)} octets"
        raise PduError(
            msg,
            command_status=CommandStatus.ESME_RINVCMDLEN,
            command_id=command_id,
            sequence_number=sequence_number,
            fatal=True,
        )
    return _decode_frame(frame, 0, len(frame))


class PduReader:
    """Cuts a byte stream into PDUs, however the bytes arrive.

    Feed it whatever a read returned, then call `next_pdu` until it returns None ("need
    more data"). One read may hold many PDUs or part of one; nothing assumes otherwise.

    command_length is checked as soon as a header is in, before its body is buffered, so
    a peer can't make us hold more than ``max_pdu_size`` octets for one PDU. A length out
    of range is fatal: the next frame's start can't be known, so the reader raises the
    same `PduError` from then on. A PDU whose body is malformed raises a non-fatal
    `PduError`; its frame has been consumed and the next call reads on.
    """

    def __init__(self, max_pdu_size: int = DEFAULT_MAX_PDU_SIZE) -> None:
        if max_pdu_size < HEADER_SIZE:
            msg = f"max_pdu_size must be at least {HEADER_SIZE}, got {max_pdu_size}"
            raise ValueError(msg)
        self._max_pdu_size = max_pdu_size
        self._buffer = bytearray()
        self._start = 0
        self._failure: PduError | None = None

    def feed(self, data: bytes) -> None:
        # Drop the PDUs already read once per feed rather than once per PDU, so that a read
        # holding many PDUs costs time linear in its size.
        if self._start:
            del self._buffer[: self._start]
            self._start = 0
        self._buffer += data

    def next_pdu(self) -> Request | Response | UnknownPdu | None:
        """The next complete PDU, or None until more bytes are fed. See the class doc."""
        if self._failure is not None:
            raise self._failure
        buf = self._buffer
        start = self._start
        if len(buf) - start < HEADER_SIZE:
            return None
        length, command_id, _, sequence_number = _HEADER.unpack_from(buf, start)
        if not HEADER_SIZE <= length <= self._max_pdu_size:
            # SMPP 3.4 §4.3 (generic_nack): an invalid command_length is answered with
            # ESME_RINVCMDLEN; there is no way to find the next PDU, so the session ends.
            self._failure = PduError(
                f"command_length {length} is outside {HEADER_SIZE}..{self._max_pdu_size}",
                command_status=CommandStatus.ESME_RINVCMDLEN,
                command_id=command_id,
                sequence_number=sequence_number,
                fatal=True,
            )
            self._buffer = bytearray()
            self._start = 0
            raise self._failure
        end = start + length
        if end > len(buf):
            return None
        self._start = end
        return _decode_frame(buf, start, end)
