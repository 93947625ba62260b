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
    "UCS2_MULTIPART_UNITS",
    "UCS2_SINGLE_UNITS",
    "Encoding",
    "TextInfo",
    "analyze",
    "gsm7_length",
    "is_gsm7",
    "split",
    "split_gsm7",
    "split_ucs2",
]

GSM7_SINGLE_SEPTETS = 160
GSM7_MULTIPART_SEPTETS = 153
UCS2_SINGLE_UNITS = 70
UCS2_MULTIPART_UNITS = 67


class Encoding(enum.StrEnum):
    """The data coding a text will be sent with."""

    GSM7 = "GSM-7"
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
