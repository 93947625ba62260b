"""SMS text encoding and segmentation, counted the way carriers and Twilio count.

Verbal has to tell a user, before anything is sent, how many SMS parts a text
will cost, and the sending side has to cut long texts into parts that each fit
one concatenated SMS.  Both must agree exactly with what the SMSC does, so the
rules of GSM 03.38 / 3GPP TS 23.038 (alphabet) and GSM 03.40 / TS 23.040
(concatenation) are applied here:

* A text is sent in the GSM 7-bit default alphabet (GSM-7) if *every*
  character is in the basic table or its extension table; otherwise the whole
  text is sent as UCS-2 (UTF-16 on the wire, in practice).
* One SMS carries 140 octets: 160 septets of GSM-7 or 70 UTF-16 code units.
  A multipart SMS spends 6 octets of every part on the concatenation UDH,
  which leaves 153 septets or 67 code units per part.
* An extension-table character (``€ [ ] { } ~ ^ \\ |`` and form feed) is sent
  as ESC + septet, so it costs 2 septets, and the two septets must travel in
  the same part: a handset cannot join an ESC at the end of one part to the
  septet at the start of the next.  A part may therefore end one septet short.
* A character outside the BMP (most emoji) is a UTF-16 surrogate pair, 2 code
  units, and the pair must not be split across parts for the same reason.

Carriers also need the octets themselves, for any of the three alphabets an
SMPP SMSC takes (`Alphabet`: GSM-7, Latin-1, UCS-2), and the concatenation
header that holds the parts together:

* GSM-7 goes out one septet per octet ("unpacked"), as SMPP sends it with
  data_coding 0, or packed 8 septets to 7 octets (TS 23.038 §6.1.2.1) for the
  carriers that want that; text after a UDH starts on a septet boundary.
* The part capacities follow from 140 octets less the UDH: 153 / 134 / 67 per
  part with an 8-bit reference (6 octets), 152 / 133 / 66 with a 16-bit one
  (7 octets), for GSM-7 / Latin-1 / UCS-2; `split_text` cuts accordingly.
* The concatenation UDH (TS 23.040 §9.2.3.24.1 and .8) is written by
  `concat_udh` and read back by `parse_udh`.

Everything here is pure (no I/O), and :func:`analyze` is on the API hot path,
so it works with precomputed tables and C-level string operations instead of
encoding character by character.
"""

import contextlib
import enum
import re
from bisect import bisect_left
from dataclasses import dataclass

# Importing gsm0338 registers the "gsm03.38" codec with Python's codec
# registry; its tables are the authority on which characters are GSM-7.
import gsm0338

__all__ = [
    "GSM7_MULTIPART_SEPTETS",
    "GSM7_SINGLE_SEPTETS",
    "MAX_PARTS",
    "SMS_OCTETS",
    "UCS2_MULTIPART_UNITS",
    "UCS2_SINGLE_UNITS",
    "UDH_CONCAT_8BIT_OCTETS",
    "UDH_CONCAT_16BIT_OCTETS",
    "Alphabet",
    "Concat",
    "Encoding",
    "TextInfo",
    "analyze",
    "choose_alphabet",
    "concat_udh",
    "decode_text",
    "encode_text",
    "gsm7_length",
    "is_gsm7",
    "is_latin1",
    "pack_gsm7",
    "parse_udh",
    "part_capacity",
    "split",
    "split_gsm7",
    "split_text",
    "split_ucs2",
    "text_length",
    "unpack_gsm7",
]

GSM7_SINGLE_SEPTETS = 160
GSM7_MULTIPART_SEPTETS = 153
UCS2_SINGLE_UNITS = 70
UCS2_MULTIPART_UNITS = 67


class Encoding(enum.StrEnum):
    """The data coding a text will be sent with."""

    GSM7 = "GSM-7"
    UCS2 = "UCS-2"


class Alphabet(enum.StrEnum):
    """The character set a carrier puts on the wire.

    `Encoding` is what Verbal reports and prices a message in, GSM-7 or UCS-2 as
    Twilio does; a carrier may also be set to send Latin-1 (SMPP data_coding 3).
    """

    GSM7 = "GSM-7"
    LATIN1 = "Latin-1"
    UCS2 = "UCS-2"


@dataclass(frozen=True, slots=True)
class TextInfo:
    """How a text will be sent: its encoding, size and number of SMS parts."""

    encoding: Encoding
    # Number of SMS parts; an empty text still costs 1 segment.
    segments: int
    # Septets for GSM-7 (extension characters count 2), UTF-16 code units for UCS-2.
    units: int
    # The per-part capacity that applies to this text: 160/153 or 70/67.
    units_per_segment: int


_CODEC: str = gsm0338.Codec.NAME  # "gsm03.38"
_ESC = 0x1B
_SEPTET_VALUES = range(0x80)


def _build_septet_table() -> dict[str, int]:
    """Map every GSM-7 encodable character to the septets it costs (1 or 2).

    The candidates come from decoding every basic-table septet and every
    ESC-prefixed septet with the codec, and the cost from encoding each
    candidate back, so the table agrees with the codec in both directions
    without reaching into the package's private attributes.
    """
    candidates: set[str] = set()
    for value in _SEPTET_VALUES:
        if value == _ESC:
            # gsm0338 decodes/encodes septet 0x1B as the Unicode ESC control
            # character, but on the air 0x1B is the escape to the extension
            # table, not a character: a literal "\x1b" sent as GSM-7 would be
            # merged by the handset with the next septet (ESC + "e" shows
            # "€").  So ESC is not GSM-7 for us; a text containing it goes out
            # as UCS-2, which carries it verbatim.
            continue
        candidates.add(bytes((value,)).decode(_CODEC))
        # Most ESC-prefixed septets are unassigned in the extension table.
        with contextlib.suppress(UnicodeDecodeError):
            candidates.add(bytes((_ESC, value)).decode(_CODEC))
    # Decided by the table, not by guesswork: septet 0x09 is capital "Ç" in
    # the 3GPP table and the codec (the original GSM 03.38 showed "ç"), so a
    # lowercase "ç" makes a text UCS-2, as it does at Twilio.
    table = {char: len(char.encode(_CODEC)) for char in candidates}
    if any(cost not in (1, 2) for cost in table.values()):  # pragma: no cover
        # Guard against a future gsm0338 with national shift tables or
        # another layout that this module's 1-or-2 septet logic can't handle.
        msg = f"unexpected septet costs from the {_CODEC!r} codec"
        raise RuntimeError(msg)
    return table


# Built once at import: the codec's own encode() is far too slow for the hot
# path (it raises and catches per unmapped character and grows a bytes object
# one character at a time), and its IncrementalEncoder is broken in gsm0338
# 1.1.0 (AttributeError: no '_encoding_map').
_SEPTETS: dict[str, int] = _build_septet_table()
_GSM7_CHARS: frozenset[str] = frozenset(_SEPTETS)
_EXTENSION_CHARS: tuple[str, ...] = tuple(
    sorted(char for char, cost in _SEPTETS.items() if cost == 2)
)

# Character classes compiled from the tables above.  A regex scan runs in C
# and stops at the first hit, which measured about twice as fast as
# frozenset.issuperset(text) (that one builds a temporary set of the text).
_NON_GSM7 = re.compile("[^" + "".join(map(re.escape, sorted(_GSM7_CHARS))) + "]")
# "Wide" characters cost 2 units: extension characters in GSM-7 (ESC + septet),
# characters outside the BMP in UCS-2 (a surrogate pair).
_GSM7_WIDE = re.compile("[" + "".join(map(re.escape, _EXTENSION_CHARS)) + "]")
_UCS2_WIDE = re.compile("[\U00010000-\U0010ffff]")
_NON_LATIN1 = re.compile("[^\x00-\xff]")

# Septets as Latin-1 characters (code points 0-127), so that str.translate, a
# C loop, maps a whole text at once: each GSM-7 character to its one or two
# septets, and back.  Built from the codec like _SEPTETS.
_GSM7_ENCODE: dict[int, str] = {
    ord(char): char.encode(_CODEC).decode("latin-1") for char in _GSM7_CHARS
}
_GSM7_DECODE: dict[int, str] = {
    # Octets 0x80-0xFF are not septets; a peer that sends them gets U+FFFD.
    value: "\ufffd"
    for value in range(0x100)
}
_GSM7_DECODE.update(
    (ord(septets), chr(code)) for code, septets in _GSM7_ENCODE.items() if len(septets) == 1
)
_GSM7_EXTENSION_DECODE: dict[str, str] = {
    septets[1]: chr(code) for code, septets in _GSM7_ENCODE.items() if len(septets) == 2
}


def is_gsm7(text: str) -> bool:
    """Return True if every character of ``text`` is in the GSM-7 alphabet."""
    # An empty text is GSM-7 (and costs one GSM-7 segment).
    return _NON_GSM7.search(text) is None


def _septets_unchecked(text: str) -> int:
    # Each extension character costs one extra septet (its ESC).  Ten
    # str.count scans in C beat a per-character Python loop by far.
    return len(text) + sum(map(text.count, _EXTENSION_CHARS))


def _require_gsm7(text: str) -> None:
    bad = _NON_GSM7.search(text)
    if bad is not None:
        msg = f"character {bad.group()!r} at position {bad.start()} is not in the GSM-7 alphabet"
        raise ValueError(msg)


def gsm7_length(text: str) -> int:
    """Return the number of septets ``text`` takes in GSM-7.

    Extension-table characters count 2.  Raises ``ValueError`` if ``text``
    contains a character GSM-7 cannot carry.
    """
    _require_gsm7(text)
    return _septets_unchecked(text)


def _utf16_units(text: str) -> int:
    # "surrogatepass" so a stray lone surrogate in a str counts as the single
    # code unit it is instead of raising; real astral characters count 2.
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _part_ends(text: str, wide: re.Pattern[str], limit: int) -> list[int]:
    """Greedy cut: the end index of each part holding at most ``limit`` units.

    Every character costs 1 unit except those matching ``wide``, which cost 2.
    Cutting only between characters is what keeps escape pairs and surrogate
    pairs whole: a part that would end halfway through one ends just before
    it instead.  Only the wide characters are visited in Python, so a long
    text with few of them costs little more than the all-narrow fast path.
    """
    wide_at = [match.start() for match in wide.finditer(text)]
    n = len(text)
    ends: list[int] = []
    start = 0
    while start < n:
        # units(start, end) = characters + wide characters in text[start:end].
        # No end beyond start + limit can fit, so start there and back off.
        end = min(start + limit, n)
        first_wide = bisect_left(wide_at, start)
        excess = end - start + bisect_left(wide_at, end, lo=first_wide) - first_wide - limit
        while excess > 0:
            # Dropping d characters drops between d and 2d units.  With
            # d = ceil(excess / 2) every end skipped over still held more than
            # `limit` units, so the first end that fits is the largest one.
            end -= (excess + 1) // 2
            excess = end - start + bisect_left(wide_at, end, lo=first_wide) - first_wide - limit
        # limit >= 2 and no character costs more than 2, so end > start.
        ends.append(end)
        start = end
    return ends


def _split(text: str, units: int, wide: re.Pattern[str], limit: int) -> list[str]:
    if limit < 2:
        # A 2-unit character could never fit, and silently splitting it is
        # exactly what this module exists to prevent.
        msg = f"limit must be at least 2, got {limit}"
        raise ValueError(msg)
    if units <= limit:
        # Also covers the empty text: sending it still sends one empty part.
        return [text]
    if units == len(text):
        # No wide characters: plain slicing.
        return [text[i : i + limit] for i in range(0, len(text), limit)]
    parts: list[str] = []
    start = 0
    for end in _part_ends(text, wide, limit):
        parts.append(text[start:end])
        start = end
    return parts


def split_gsm7(text: str, limit: int = GSM7_MULTIPART_SEPTETS) -> list[str]:
    """Split a GSM-7 text into parts of at most ``limit`` septets each.

    An extension character and its ESC always stay in the same part.  Raises
    ``ValueError`` if ``text`` is not GSM-7 or ``limit`` is below 2.  An empty
    text gives one empty part.
    """
    return _split(text, gsm7_length(text), _GSM7_WIDE, limit)


def split_ucs2(text: str, limit: int = UCS2_MULTIPART_UNITS) -> list[str]:
    """Split a text into parts of at most ``limit`` UTF-16 code units each.

    A surrogate pair (a character outside the BMP) is never split.  Raises
    ``ValueError`` if ``limit`` is below 2.  An empty text gives one empty part.
    """
    return _split(text, _utf16_units(text), _UCS2_WIDE, limit)


def _segments(text: str, units: int, wide: re.Pattern[str], single: int, multi: int) -> int:
    if units <= single:
        return 1
    if units == len(text):
        # No wide characters, so every part but the last is full: a plain
        # ceiling division, no per-character work.
        return -(-units // multi)
    # Wide characters can leave a part one unit short, so count the actual
    # greedy cuts; this must agree with split() part for part.
    return len(_part_ends(text, wide, multi))


def analyze(text: str) -> TextInfo:
    """Choose the encoding for ``text`` and count its units and segments.

    GSM-7 is chosen when every character is encodable in it, UCS-2 otherwise.
    ``segments`` always equals ``len(split(text))``.
    """
    if is_gsm7(text):
        units = _septets_unchecked(text)
        segments = _segments(text, units, _GSM7_WIDE, GSM7_SINGLE_SEPTETS, GSM7_MULTIPART_SEPTETS)
        per_segment = GSM7_SINGLE_SEPTETS if segments == 1 else GSM7_MULTIPART_SEPTETS
        return TextInfo(Encoding.GSM7, segments, units, per_segment)
    units = _utf16_units(text)
    segments = _segments(text, units, _UCS2_WIDE, UCS2_SINGLE_UNITS, UCS2_MULTIPART_UNITS)
    per_segment = UCS2_SINGLE_UNITS if segments == 1 else UCS2_MULTIPART_UNITS
    return TextInfo(Encoding.UCS2, segments, units, per_segment)


def split(text: str) -> list[str]:
    """Split ``text`` into the SMS parts it will be sent as.

    A text that fits one SMS (160 septets / 70 code units) is returned as a
    single part; a longer one is cut into 153-septet / 67-unit parts.  The
    parts always join back to ``text`` and there are ``analyze(text).segments``
    of them.
    """
    info = analyze(text)
    if info.segments == 1:
        return [text]
    if info.encoding is Encoding.GSM7:
        return split_gsm7(text, GSM7_MULTIPART_SEPTETS)
    return split_ucs2(text, UCS2_MULTIPART_UNITS)


# --- on the wire ------------------------------------------------------------------------

# One SMS carries 140 octets of user data, UDH included (TS 23.040 §9.2.3.16).
SMS_OCTETS = 140
# UDHL + IEI + IEDL + reference + total + sequence, with a 1- or 2-octet reference.
UDH_CONCAT_8BIT_OCTETS = 6
UDH_CONCAT_16BIT_OCTETS = 7
# The concatenation IE counts parts in one octet.
MAX_PARTS = 255

_IEI_CONCAT_8BIT = 0x00
_IEI_CONCAT_16BIT = 0x08
_CR = 0x0D


def is_latin1(text: str) -> bool:
    """Return True if Latin-1 (ISO 8859-1, SMPP data_coding 3) can carry ``text``."""
    return _NON_LATIN1.search(text) is None


def choose_alphabet(
    text: str, preference: tuple[Alphabet, ...] = (Alphabet.GSM7, Alphabet.UCS2)
) -> Alphabet:
    """The first alphabet in ``preference`` that can carry all of ``text``.

    The default is the automatic choice (GSM-7, else UCS-2); a carrier overrides
    it, say with ``(GSM7, LATIN1, UCS2)`` or ``(UCS2,)``.  Raises ``ValueError``
    if none of them can.
    """
    for alphabet in preference:
        if (
            alphabet is Alphabet.UCS2
            or (alphabet is Alphabet.GSM7 and is_gsm7(text))
            or (alphabet is Alphabet.LATIN1 and is_latin1(text))
        ):
            return alphabet
    msg = f"none of {', '.join(preference)} can carry this text"
    raise ValueError(msg)


def part_capacity(alphabet: Alphabet, udh_octets: int = 0) -> int:
    """Units (septets, octets or UTF-16 code units) one SMS holds after a UDH.

    160 / 140 / 70 with no header; 153 / 134 / 67 after an 8-bit-reference
    concatenation UDH; 152 / 133 / 66 after a 16-bit one.
    """
    free = SMS_OCTETS - udh_octets
    if alphabet is Alphabet.GSM7:
        return free * 8 // 7
    if alphabet is Alphabet.LATIN1:
        return free
    return free // 2


def text_length(text: str, alphabet: Alphabet) -> int:
    """The size of ``text`` in ``alphabet``'s units: septets, octets or UTF-16 code units.

    Raises ``ValueError`` if ``alphabet`` can't carry the text.
    """
    if alphabet is Alphabet.GSM7:
        return gsm7_length(text)
    if alphabet is Alphabet.LATIN1:
        bad = _NON_LATIN1.search(text)
        if bad is not None:
            msg = f"character {bad.group()!r} at position {bad.start()} is not in Latin-1"
            raise ValueError(msg)
        return len(text)
    return _utf16_units(text)


# The characters that cost 2 units in each alphabet; Latin-1 has none.
_WIDE: dict[Alphabet, re.Pattern[str] | None] = {
    Alphabet.GSM7: _GSM7_WIDE,
    Alphabet.LATIN1: None,
    Alphabet.UCS2: _UCS2_WIDE,
}


def split_text(
    text: str, alphabet: Alphabet, udh_octets: int = UDH_CONCAT_8BIT_OCTETS
) -> list[str]:
    """Split ``text`` into the SMS parts it goes out as in ``alphabet``.

    A text that fits one SMS is one part; a longer one is cut into parts that
    each fit beside a ``udh_octets`` concatenation header, never inside an
    escape pair or a surrogate pair.  Raises ``ValueError`` if ``alphabet``
    can't carry the text or it would take more than 255 parts.
    """
    units = text_length(text, alphabet)
    if units <= part_capacity(alphabet):
        return [text]
    limit = part_capacity(alphabet, udh_octets)
    wide = _WIDE[alphabet]
    if wide is None:
        parts = [text[i : i + limit] for i in range(0, len(text), limit)]
    else:
        parts = _split(text, units, wide, limit)
    if len(parts) > MAX_PARTS:
        msg = f"the text needs {len(parts)} parts; a concatenated SMS has at most {MAX_PARTS}"
        raise ValueError(msg)
    return parts


def encode_text(text: str, alphabet: Alphabet) -> bytes:
    """``text`` as octets: unpacked GSM-7 septets, Latin-1, or UTF-16BE for UCS-2.

    Raises ``ValueError`` if ``alphabet`` can't carry the text.
    """
    if alphabet is Alphabet.GSM7:
        _require_gsm7(text)
        return text.translate(_GSM7_ENCODE).encode("latin-1")
    if alphabet is Alphabet.LATIN1:
        text_length(text, alphabet)  # for its error message
        return text.encode("latin-1")
    # "surrogatepass": a lone surrogate (1 unit, as counted above) goes out as is.
    return text.encode("utf-16-be", "surrogatepass")


def decode_text(data: bytes, alphabet: Alphabet) -> str:
    """Octets from a carrier back to text; never raises.

    Carrier input is not ours to reject, so what can't be decoded becomes
    U+FFFD.  GSM-7 follows TS 23.038 §6.2.1.1 for the extension table: an
    escape followed by an unassigned septet shows that septet's basic
    character, and an escape with nothing usable after it shows a space.
    """
    if alphabet is Alphabet.LATIN1:
        return data.decode("latin-1")
    if alphabet is Alphabet.UCS2:
        return data.decode("utf-16-be", "replace")
    septets = data.decode("latin-1")
    if "\x1b" not in septets:
        return septets.translate(_GSM7_DECODE)
    first, *escaped = septets.split("\x1b")
    out = [first.translate(_GSM7_DECODE)]
    for piece in escaped:
        if not piece:
            # ESC ESC ("reserved for another extension table") or a final ESC.
            out.append(" ")
            continue
        extension = _GSM7_EXTENSION_DECODE.get(piece[0])
        out.append(piece[0].translate(_GSM7_DECODE) if extension is None else extension)
        out.append(piece[1:].translate(_GSM7_DECODE))
    return "".join(out)


def _fill_bits(udh_octets: int) -> int:
    # Text after a UDH starts on a septet boundary (TS 23.040 §9.2.3.24).
    return -udh_octets * 8 % 7


def pack_gsm7(septets: bytes, udh_octets: int = 0) -> bytes:
    """Pack unpacked septets 8 into 7 octets, first septet in the low bits.

    ``udh_octets`` is the length of the UDH these septets will follow, whose
    fill bits then lead the result.

    A receiver that only knows the octet count (SMPP's sm_length) can't tell 7
    spare bits from a last septet, and zeros would read as "@".  So, as TS
    23.038 §6.1.2.3.1 has it for USSD, which has the same problem, 7 spare
    bits hold a CR, which `unpack_gsm7` drops again; and a text that really
    ends in CR on an octet boundary gets a second CR, so that the one it meant
    survives (CR CR displays as CR).
    """
    if max(septets, default=0) > 0x7F:
        msg = "septets must be 0x00-0x7F"
        raise ValueError(msg)
    if not septets:
        return b""
    fill = _fill_bits(udh_octets)
    spare = (fill + 7 * len(septets)) % 8
    if spare == 1 or (spare == 0 and septets[-1] == _CR):
        septets += bytes((_CR,))
    value = 0
    for septet in reversed(septets):
        value = value << 7 | septet
    bits = fill + 7 * len(septets)
    return (value << fill).to_bytes((bits + 7) // 8, "little")


def unpack_gsm7(data: bytes, udh_octets: int = 0, count: int | None = None) -> bytes:
    """The septets packed in ``data``, one per octet; the reverse of `pack_gsm7`.

    ``count`` is the number of septets when known; otherwise every whole
    septet is read, less a CR that only pads the last octet.
    """
    fill = _fill_bits(udh_octets)
    bits = len(data) * 8 - fill
    available = max(bits, 0) // 7
    value = int.from_bytes(data, "little") >> fill
    septets = bytes(value >> (7 * i) & 0x7F for i in range(available))
    if count is not None:
        return septets[:count]
    if septets and bits % 7 == 0 and septets[-1] == _CR:
        return septets[:-1]
    return septets


@dataclass(frozen=True, slots=True)
class Concat:
    """Which part of which concatenated message an SMS is (TS 23.040 §9.2.3.24.1)."""

    reference: int  # the same in every part of one message
    total: int  # 1-255
    sequence: int  # 1-total


def concat_udh(concat: Concat, *, wide_reference: bool = False) -> bytes:
    """The UDH for one part: ``05 00 03 ref total seq``, or ``06 08 04 ref ref total seq``.

    ``wide_reference`` picks the 16-bit reference (IEI 0x08).  Raises
    ``ValueError`` for a reference, total or sequence out of range.
    """
    if not 1 <= concat.sequence <= concat.total <= MAX_PARTS:
        msg = f"need 1 <= sequence <= total <= {MAX_PARTS}, got {concat}"
        raise ValueError(msg)
    tail = bytes((concat.total, concat.sequence))
    if wide_reference:
        return bytes((6, _IEI_CONCAT_16BIT, 4)) + concat.reference.to_bytes(2, "big") + tail
    return bytes((5, _IEI_CONCAT_8BIT, 3)) + concat.reference.to_bytes(1, "big") + tail


def parse_udh(user_data: bytes) -> tuple[Concat | None, int]:
    """Read the UDH at the start of ``user_data``: its concatenation info and length.

    The length counts the UDHL octet, so the text starts at ``user_data[length:]``.
    Other information elements are skipped.  A concatenation IE whose sequence
    is 0 or beyond its total is ignored, as TS 23.040 §9.2.3.24.1 says.  Raises
    ``ValueError`` if the header overruns the data.
    """
    if not user_data:
        msg = "UDHI is set but the user data is empty"
        raise ValueError(msg)
    end = 1 + user_data[0]
    if end > len(user_data):
        msg = f"UDH length {user_data[0]} overruns the {len(user_data) - 1} octets after it"
        raise ValueError(msg)
    concat = None
    pos = 1
    while pos < end:
        if pos + 2 > end:
            msg = "UDH ends inside an information element header"
            raise ValueError(msg)
        iei, length = user_data[pos], user_data[pos + 1]
        if pos + 2 + length > end:
            msg = f"UDH information element 0x{iei:02X} overruns the header"
            raise ValueError(msg)
        value = user_data[pos + 2 : pos + 2 + length]
        if (iei, length) in ((_IEI_CONCAT_8BIT, 3), (_IEI_CONCAT_16BIT, 4)):
            reference = int.from_bytes(value[:-2], "big")
            total, sequence = value[-2], value[-1]
            if 1 <= sequence <= total:
                concat = Concat(reference, total, sequence)
        pos += 2 + length
    return concat, end
