"""Tests for verbal.carriers.encoding: SMS encoding choice, segmentation and octets.

Counts are checked at every carrier boundary (160/161, 306/307 septets;
70/71, 134/135 UTF-16 code units), and the split is checked against an
oracle that encodes with the gsm0338 codec / UTF-16 directly, so the module's
precomputed tables cannot drift from the codec unnoticed.  The octets are
checked against independent encoders: the gsm0338 codec, Kannel's output for
the same text (../shared/spec/smpp.md §1.5) and the textbook packed-GSM-7
example.
"""

from itertools import pairwise

import gsm0338
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verbal.carriers.encoding import (
    Alphabet,
    Concat,
    Encoding,
    TextInfo,
    analyze,
    choose_alphabet,
    concat_udh,
    decode_text,
    encode_text,
    gsm7_length,
    is_gsm7,
    is_latin1,
    pack_gsm7,
    parse_udh,
    part_capacity,
    split,
    split_gsm7,
    split_text,
    split_ucs2,
    text_length,
    unpack_gsm7,
)

CODEC = gsm0338.Codec.NAME
EXTENSION = "€[]{}~^\\|\f"
NON_GSM = "ł"  # a BMP letter outside the GSM-7 tables: 1 UTF-16 code unit
EMOJI = "😀"  # outside the BMP: a surrogate pair, 2 UTF-16 code units


def codec_septets(text: str) -> int | None:
    """Septets per the codec itself, or None when GSM-7 cannot carry the text."""
    if "\x1b" in text:
        # The codec maps ESC to a bare escape septet; the module rejects it.
        return None
    try:
        return len(text.encode(CODEC))
    except UnicodeEncodeError:
        return None


def utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def oracle_size(text: str, encoding: Encoding) -> int:
    if encoding is Encoding.GSM7:
        return len(text.encode(CODEC))
    return utf16_units(text)


GSM_ALPHABET = [c for c in map(chr, range(0x2500)) if codec_septets(c) is not None]


# --- assumptions about the gsm0338 dependency --------------------------------


def test_codec_encodes_extension_chars_as_escape_pairs() -> None:
    assert "€".encode(CODEC) == b"\x1be"
    assert "[".encode(CODEC) == b"\x1b<"
    assert "\f".encode(CODEC) == b"\x1b\n"


def test_codec_raises_for_unmapped_chars() -> None:
    for char in (NON_GSM, "✓", EMOJI, "`", "ç"):
        with pytest.raises(UnicodeEncodeError):
            char.encode(CODEC)


def test_tables_agree_with_codec_over_the_whole_bmp() -> None:
    for code in range(0x10000):
        char = chr(code)
        expected = codec_septets(char)
        assert is_gsm7(char) is (expected is not None), repr(char)
        if expected is not None:
            assert gsm7_length(char) == expected, repr(char)


# --- alphabet ------------------------------------------------------------------


def test_extension_chars_cost_two_septets() -> None:
    for char in EXTENSION:
        assert is_gsm7(char)
        assert gsm7_length(char) == 2, repr(char)
    assert gsm7_length(EXTENSION) == 2 * len(EXTENSION)


def test_basic_table_letters_are_decided_by_the_table() -> None:
    assert is_gsm7("@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà\n\r")
    assert not is_gsm7("ç")  # only capital Ç is at septet 0x09
    assert not is_gsm7("`")
    assert not is_gsm7("\t")


def test_escape_control_char_is_not_gsm7() -> None:
    # A literal ESC would merge with the next septet on the handset.
    assert not is_gsm7("\x1b")
    assert analyze("a\x1be").encoding is Encoding.UCS2


def test_gsm7_length_rejects_non_gsm_text() -> None:
    with pytest.raises(ValueError, match=r"'✓' at position 6"):
        gsm7_length("Done! ✓")


def test_empty_text_is_one_gsm7_segment() -> None:
    assert is_gsm7("")
    assert gsm7_length("") == 0
    assert analyze("") == TextInfo(Encoding.GSM7, 1, 0, 160)
    assert split("") == [""]
    assert split_gsm7("") == [""]
    assert split_ucs2("") == [""]


def test_one_non_gsm_char_forces_ucs2() -> None:
    text = "Your order has shipped " + NON_GSM
    info = analyze(text)
    assert info == TextInfo(Encoding.UCS2, 1, len(text), 70)
    assert analyze("Grüße aus Köln").encoding is Encoding.GSM7
    assert analyze("Done ✓").encoding is Encoding.UCS2


def test_encoding_is_a_str_enum() -> None:
    assert Encoding.GSM7 == "GSM-7"
    assert Encoding.UCS2 == "UCS-2"
    assert f"{Encoding.UCS2}" == "UCS-2"


# --- GSM-7 boundaries ---------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "segments", "per_segment", "part_lengths"),
    [
        (1, 1, 160, [1]),
        (153, 1, 160, [153]),
        (160, 1, 160, [160]),
        (161, 2, 153, [153, 8]),
        (306, 2, 153, [153, 153]),
        (307, 3, 153, [153, 153, 1]),
    ],
)
def test_gsm7_boundaries(
    length: int, segments: int, per_segment: int, part_lengths: list[int]
) -> None:
    text = "a" * length
    assert analyze(text) == TextInfo(Encoding.GSM7, segments, length, per_segment)
    parts = split(text)
    assert [len(p) for p in parts] == part_lengths
    assert "".join(parts) == text


def test_extension_chars_count_double_towards_the_limit() -> None:
    assert analyze("€" * 80) == TextInfo(Encoding.GSM7, 1, 160, 160)
    assert analyze("€" * 81) == TextInfo(Encoding.GSM7, 2, 162, 153)
    # 153 septets hold 76 escape pairs (152 septets); the 77th doesn't fit.
    assert [len(p) for p in split("€" * 81)] == [76, 5]


def test_escape_pair_at_the_boundary_moves_whole_to_the_next_part() -> None:
    text = "a" * 152 + "€" + "b" * 10  # 164 septets: multipart
    parts = split(text)
    assert parts == ["a" * 152, "€" + "b" * 10]
    assert [gsm7_length(p) for p in parts] == [152, 12]
    assert analyze(text) == TextInfo(Encoding.GSM7, 2, 164, 153)


def test_escape_pair_that_fits_exactly_stays_in_the_part() -> None:
    text = "a" * 151 + "€" + "b" * 10  # the pair fills septets 152-153
    assert split(text) == ["a" * 151 + "€", "b" * 10]


def test_escape_pair_shortfall_can_add_a_segment() -> None:
    # 306 septets would be 2 full parts, but the pair can't straddle 153|154.
    text = "a" * 152 + "€" + "b" * 152
    assert gsm7_length(text) == 306
    parts = split(text)
    assert [gsm7_length(p) for p in parts] == [152, 153, 1]
    assert analyze(text).segments == 3


def test_plain_parts_stay_full_when_an_extension_char_comes_later() -> None:
    text = "a" * 200 + "€"
    assert [gsm7_length(p) for p in split(text)] == [153, 49]


def test_extension_char_at_the_single_segment_limit() -> None:
    assert analyze("a" * 158 + "€").segments == 1  # exactly 160 septets
    assert analyze("a" * 159 + "€").segments == 2  # 161 septets


def test_split_gsm7_custom_limit_and_errors() -> None:
    assert split_gsm7("abcdef", limit=4) == ["abcd", "ef"]
    assert split_gsm7("ab€cd", limit=3) == ["ab", "€c", "d"]
    assert split_gsm7("short") == ["short"]
    with pytest.raises(ValueError, match="GSM-7"):
        split_gsm7("naïve")
    with pytest.raises(ValueError, match="at least 2"):
        split_gsm7("abc", limit=1)


# --- UCS-2 boundaries ---------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "segments", "per_segment", "part_lengths"),
    [
        (1, 1, 70, [1]),
        (70, 1, 70, [70]),
        (71, 2, 67, [67, 4]),
        (134, 2, 67, [67, 67]),
        (135, 3, 67, [67, 67, 1]),
    ],
)
def test_ucs2_boundaries(
    length: int, segments: int, per_segment: int, part_lengths: list[int]
) -> None:
    text = NON_GSM * length
    assert analyze(text) == TextInfo(Encoding.UCS2, segments, length, per_segment)
    parts = split(text)
    assert [len(p) for p in parts] == part_lengths
    assert "".join(parts) == text


def test_emoji_count_as_two_code_units() -> None:
    assert analyze(EMOJI * 35) == TextInfo(Encoding.UCS2, 1, 70, 70)
    assert analyze(EMOJI * 36) == TextInfo(Encoding.UCS2, 2, 72, 67)
    # 67 code units hold 33 surrogate pairs (66 units); the 34th doesn't fit.
    assert [len(p) for p in split(EMOJI * 36)] == [33, 3]


def test_surrogate_pair_at_the_boundary_moves_whole_to_the_next_part() -> None:
    text = NON_GSM * 66 + EMOJI + NON_GSM * 5  # 73 units: multipart
    parts = split(text)
    assert parts == [NON_GSM * 66, EMOJI + NON_GSM * 5]
    assert [utf16_units(p) for p in parts] == [66, 7]


def test_surrogate_pair_that_fits_exactly_stays_in_the_part() -> None:
    text = NON_GSM * 65 + EMOJI + NON_GSM * 5
    assert split(text) == [NON_GSM * 65 + EMOJI, NON_GSM * 5]


def test_surrogate_shortfall_can_add_a_segment() -> None:
    text = NON_GSM * 66 + EMOJI + NON_GSM * 66  # 134 units
    assert [utf16_units(p) for p in split(text)] == [66, 67, 1]
    assert analyze(text) == TextInfo(Encoding.UCS2, 3, 134, 67)


def test_plain_parts_stay_full_when_an_emoji_comes_later() -> None:
    text = NON_GSM * 100 + EMOJI
    assert [utf16_units(p) for p in split(text)] == [67, 35]


def test_gsm_text_with_emoji_goes_ucs2() -> None:
    text = "See you soon " + EMOJI
    assert analyze(text) == TextInfo(Encoding.UCS2, 1, len(text) + 1, 70)


def test_lone_surrogate_counts_as_one_code_unit() -> None:
    assert analyze("\ud83d" * 70) == TextInfo(Encoding.UCS2, 1, 70, 70)


def test_split_ucs2_custom_limit_and_errors() -> None:
    assert split_ucs2("ab" + EMOJI + "c", limit=3) == ["ab", EMOJI + "c"]
    assert split_ucs2("abc") == ["abc"]
    with pytest.raises(ValueError, match="at least 2"):
        split_ucs2("abc", limit=1)


# --- properties -------------------------------------------------------------------

# Sizes are pushed past the single-segment limits so that most examples are
# multipart and the wide characters land on part boundaries.
texts = st.one_of(
    st.text(max_size=80),
    st.text(min_size=60, max_size=300),
    st.text(alphabet=GSM_ALPHABET, min_size=140, max_size=500),
    st.text(alphabet=st.sampled_from("ab€[\n"), min_size=70, max_size=500),
    st.text(alphabet=st.sampled_from("ab" + EMOJI + NON_GSM), min_size=30, max_size=300),
    # Long narrow runs between wide characters: parts that are full of
    # 1-unit characters even though the text has 2-unit ones elsewhere.
    st.lists(
        st.one_of(
            st.integers(min_value=1, max_value=320).map(lambda n: "a" * n),
            st.sampled_from("€[ł" + EMOJI),
        ),
        max_size=8,
    ).map("".join),
)


@settings(max_examples=400)
@given(texts)
def test_split_is_lossless_within_limits_and_matches_analyze(text: str) -> None:
    info = analyze(text)
    parts = split(text)

    assert "".join(parts) == text
    assert len(parts) == info.segments
    assert parts

    septets = codec_septets(text)
    encoding = Encoding.UCS2 if septets is None else Encoding.GSM7
    assert info.encoding is encoding
    single, multi = (160, 153) if encoding is Encoding.GSM7 else (70, 67)
    assert info.units == oracle_size(text, encoding)

    limit = single if len(parts) == 1 else multi
    assert info.units_per_segment == limit
    sizes = [oracle_size(p, encoding) for p in parts]
    assert sum(sizes) == info.units
    assert all(size <= limit for size in sizes)
    # Greedy like the carriers: a part is only cut short when the next
    # character (an escape pair or surrogate pair) would not fit in it.
    for part, following in pairwise(parts):
        assert oracle_size(part + following[0], encoding) > limit


# --- alphabets on the wire ------------------------------------------------------------------

LATIN1_ONLY = "ça"  # "ç" is Latin-1 but not GSM-7


def test_choose_alphabet_automatically_and_per_carrier() -> None:
    assert choose_alphabet("Grüße aus Köln") is Alphabet.GSM7
    assert choose_alphabet(LATIN1_ONLY) is Alphabet.UCS2
    assert choose_alphabet("Привет") is Alphabet.UCS2
    with_latin1 = (Alphabet.GSM7, Alphabet.LATIN1, Alphabet.UCS2)
    assert choose_alphabet("café", with_latin1) is Alphabet.GSM7
    assert choose_alphabet(LATIN1_ONLY, with_latin1) is Alphabet.LATIN1
    assert choose_alphabet("€", with_latin1) is Alphabet.GSM7
    assert choose_alphabet("€" + LATIN1_ONLY, with_latin1) is Alphabet.UCS2
    assert choose_alphabet("plain", (Alphabet.UCS2,)) is Alphabet.UCS2
    with pytest.raises(ValueError, match="none of GSM-7, Latin-1 can carry"):
        choose_alphabet(EMOJI, (Alphabet.GSM7, Alphabet.LATIN1))


def test_is_latin1() -> None:
    assert is_latin1("") and is_latin1("ÿçé\x00")
    assert not is_latin1("€") and not is_latin1(EMOJI)


def test_gsm7_octets_match_independent_encoders() -> None:
    # Kannel produced exactly these bytes for the same text.
    assert encode_text("café €5 {x}", Alphabet.GSM7) == b"caf\x05 \x1be5 \x1b(x\x1b)"
    sample = "Hello @£$¥ {€} [~] ^|\\"
    assert encode_text(sample, Alphabet.GSM7) == sample.encode(CODEC)
    assert len(encode_text(sample, Alphabet.GSM7)) == 31


def test_gsm7_octets_agree_with_the_codec_for_the_whole_alphabet() -> None:
    everything = "".join(GSM_ALPHABET)
    octets = encode_text(everything, Alphabet.GSM7)
    assert octets == everything.encode(CODEC)
    assert decode_text(octets, Alphabet.GSM7) == everything


def test_gsm7_encoding_refuses_what_it_cannot_carry() -> None:
    with pytest.raises(ValueError, match="'ç' at position 0"):
        encode_text(LATIN1_ONLY, Alphabet.GSM7)
    with pytest.raises(ValueError, match="GSM-7"):
        encode_text("a\x1be", Alphabet.GSM7)  # a literal ESC would merge with the "e"


def test_gsm7_decoding_tolerates_what_carriers_send() -> None:
    assert decode_text(b"\x1b\x0a", Alphabet.GSM7) == "\f"
    # An unassigned extension septet shows as its basic character (TS 23.038 §6.2.1.1).
    assert decode_text(b"\x1bA", Alphabet.GSM7) == "A"
    assert decode_text(b"\x1b\x00", Alphabet.GSM7) == "@"
    # ESC ESC is reserved and shows as a space; so does a final ESC.
    assert decode_text(b"a\x1b\x1bb", Alphabet.GSM7) == "a b"
    assert decode_text(b"ab\x1b", Alphabet.GSM7) == "ab "
    # Octets above 0x7F are not septets.
    assert decode_text(b"a\x80b", Alphabet.GSM7) == "a\ufffdb"
    assert decode_text(b"", Alphabet.GSM7) == ""


def test_latin1_octets() -> None:
    assert encode_text("café ÿ", Alphabet.LATIN1) == b"caf\xe9 \xff"
    assert decode_text(b"caf\xe9 \xff", Alphabet.LATIN1) == "café ÿ"
    with pytest.raises(ValueError, match="'€' at position 2 is not in Latin-1"):
        encode_text("ab€", Alphabet.LATIN1)


def test_ucs2_octets() -> None:
    assert encode_text("Ał", Alphabet.UCS2) == b"\x00A\x01\x42"
    assert encode_text(EMOJI, Alphabet.UCS2) == bytes.fromhex("D83D DE00")
    assert decode_text(bytes.fromhex("D83D DE00 0041"), Alphabet.UCS2) == EMOJI + "A"
    # Carrier input that isn't valid UTF-16 degrades instead of raising.
    assert decode_text(b"\x00A\x00", Alphabet.UCS2) == "A\ufffd"
    assert decode_text(bytes.fromhex("D83D 0041"), Alphabet.UCS2) == "\ufffdA"


# --- packed GSM-7 -------------------------------------------------------------------------


def test_packing_matches_the_textbook_example() -> None:
    # "hellohello": the worked example of packing found throughout the GSM literature.
    assert pack_gsm7(encode_text("hellohello", Alphabet.GSM7)) == bytes.fromhex(
        "E8329BFD4697D9EC37"
    )
    assert unpack_gsm7(bytes.fromhex("E8329BFD4697D9EC37")) == b"hellohello"


def test_160_septets_pack_into_140_octets() -> None:
    assert len(pack_gsm7(b"a" * 160)) == 140
    assert len(pack_gsm7(b"a" * 153, udh_octets=6)) == 134
    assert len(pack_gsm7(b"a" * 152, udh_octets=7)) == 133


def test_text_after_a_udh_starts_on_a_septet_boundary() -> None:
    # After 6 octets (48 bits), one fill bit brings the text to bit 49 = 7 septets.
    assert pack_gsm7(b"\x01", udh_octets=6) == b"\x02"
    assert unpack_gsm7(b"\x02", udh_octets=6) == b"\x01"
    # After 7 octets (56 bits) no fill is needed.
    assert pack_gsm7(b"\x01", udh_octets=7) == b"\x01"


def test_seven_spare_bits_are_filled_with_cr() -> None:
    # 7 septets leave 7 spare bits in the 7th octet: zeros would read as "@".
    packed = pack_gsm7(b"1234567")
    assert len(packed) == 7
    assert packed[-1] >> 1 == 0x0D
    assert unpack_gsm7(packed) == b"1234567"
    assert unpack_gsm7(packed, count=8) == b"1234567\r"


def test_a_final_cr_on_an_octet_boundary_is_doubled() -> None:
    # Otherwise a receiver would take the wanted CR for padding and drop it.
    packed = pack_gsm7(b"1234567\r")
    assert len(packed) == 8
    assert unpack_gsm7(packed) == b"1234567\r\r"
    assert unpack_gsm7(packed, count=8) == b"1234567\r"


def test_nothing_packs_to_nothing() -> None:
    assert pack_gsm7(b"") == pack_gsm7(b"", udh_octets=6) == b""
    assert unpack_gsm7(b"", udh_octets=6) == b""


def test_pack_refuses_octets_that_are_not_septets() -> None:
    with pytest.raises(ValueError, match="septets"):
        pack_gsm7(b"\x80")


septet_strings = st.binary(max_size=170).map(lambda data: bytes(b & 0x7F for b in data))


@settings(max_examples=300)
@given(septet_strings, st.sampled_from([0, 6, 7]))
def test_pack_then_unpack_gives_the_septets_back(septets: bytes, udh_octets: int) -> None:
    packed = pack_gsm7(septets, udh_octets)
    bits = _fill(udh_octets) + 7 * len(septets) if septets else 0
    wanted_cr_on_boundary = bits % 8 == 0 and septets.endswith(b"\r")
    assert len(packed) == -(-(bits + 7 * wanted_cr_on_boundary) // 8)
    assert unpack_gsm7(packed, udh_octets, count=len(septets)) == septets
    if wanted_cr_on_boundary:
        # The one case the octet count can't settle: the CR is doubled (see below).
        assert unpack_gsm7(packed, udh_octets) == septets + b"\r"
    else:
        assert unpack_gsm7(packed, udh_octets) == septets


def _fill(udh_octets: int) -> int:
    return (7 - udh_octets * 8 % 7) % 7


# --- capacities and splitting per alphabet and header ---------------------------------------


@pytest.mark.parametrize(
    ("alphabet", "single", "udh8", "udh16"),
    [
        (Alphabet.GSM7, 160, 153, 152),
        (Alphabet.LATIN1, 140, 134, 133),
        (Alphabet.UCS2, 70, 67, 66),
    ],
)
def test_part_capacities(alphabet: Alphabet, single: int, udh8: int, udh16: int) -> None:
    # ../shared/spec/smpp.md §4.4.
    assert part_capacity(alphabet) == single
    assert part_capacity(alphabet, 6) == udh8
    assert part_capacity(alphabet, 7) == udh16


@pytest.mark.parametrize(
    ("alphabet", "char", "single", "udh8", "udh16"),
    [
        (Alphabet.GSM7, "a", 160, 153, 152),
        (Alphabet.LATIN1, "ç", 140, 134, 133),
        (Alphabet.UCS2, NON_GSM, 70, 67, 66),
    ],
)
def test_split_text_boundaries(
    alphabet: Alphabet, char: str, single: int, udh8: int, udh16: int
) -> None:
    assert split_text(char * single, alphabet) == [char * single]
    over = char * (single + 1)
    assert [len(p) for p in split_text(over, alphabet, 6)] == [udh8, single + 1 - udh8]
    assert [len(p) for p in split_text(over, alphabet, 7)] == [udh16, single + 1 - udh16]


def test_split_text_keeps_pairs_whole_at_the_16bit_boundary() -> None:
    gsm = "a" * 151 + "€" + "b" * 10
    assert [gsm7_length(p) for p in split_text(gsm, Alphabet.GSM7, 7)] == [151, 12]
    ucs2 = NON_GSM * 65 + EMOJI + NON_GSM * 5
    assert [utf16_units(p) for p in split_text(ucs2, Alphabet.UCS2, 7)] == [65, 7]


def test_split_text_agrees_with_split_for_the_automatic_choice() -> None:
    for text in ("a" * 400, "€" * 81, NON_GSM * 135, EMOJI * 36, ""):
        alphabet = Alphabet.GSM7 if is_gsm7(text) else Alphabet.UCS2
        assert split_text(text, alphabet) == split(text)


def test_at_most_255_parts() -> None:
    assert len(split_text("a" * 153 * 255, Alphabet.GSM7)) == 255
    with pytest.raises(ValueError, match="256 parts"):
        split_text("a" * (153 * 255 + 1), Alphabet.GSM7)


def test_text_length_per_alphabet() -> None:
    assert text_length("a€", Alphabet.GSM7) == 3
    assert text_length("a€", Alphabet.UCS2) == 2
    assert text_length("aç", Alphabet.LATIN1) == 2
    assert text_length(EMOJI, Alphabet.UCS2) == 2
    with pytest.raises(ValueError, match="Latin-1"):
        text_length(EMOJI, Alphabet.LATIN1)


# --- the concatenation header ---------------------------------------------------------------


def test_concat_udh_layouts() -> None:
    assert concat_udh(Concat(0x2A, 3, 1)) == bytes.fromhex("05 00 03 2A 03 01")
    assert concat_udh(Concat(0xBEEF, 3, 2), wide_reference=True) == bytes.fromhex(
        "06 08 04 BE EF 03 02"
    )
    for bad in (Concat(1, 2, 0), Concat(1, 2, 3), Concat(1, 256, 1)):
        with pytest.raises(ValueError, match="sequence <= total"):
            concat_udh(bad)
    with pytest.raises(OverflowError):
        concat_udh(Concat(256, 2, 1))


def test_parse_udh() -> None:
    assert parse_udh(bytes.fromhex("05 00 03 2A 03 01") + b"text") == (Concat(0x2A, 3, 1), 6)
    assert parse_udh(bytes.fromhex("06 08 04 BE EF 03 02")) == (Concat(0xBEEF, 3, 2), 7)
    # Other elements (here application port addressing, IEI 0x05) are skipped.
    ports_then_concat = bytes.fromhex("0B 05 04 0B 84 23 F0 00 03 07 02 02")
    assert parse_udh(ports_then_concat + b"x") == (Concat(7, 2, 2), 12)
    assert parse_udh(bytes.fromhex("06 05 04 0B 84 23 F0")) == (None, 7)
    # A sequence of 0 or beyond the total: the element is ignored (TS 23.040).
    assert parse_udh(bytes.fromhex("05 00 03 01 02 00")) == (None, 6)
    assert parse_udh(bytes.fromhex("05 00 03 01 02 03")) == (None, 6)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "empty"),
        (bytes.fromhex("05 00 03 2A"), "overruns the 3 octets"),
        (bytes.fromhex("01 00"), "inside an information element header"),
        (bytes.fromhex("03 00 05 2A"), "0x00 overruns"),
    ],
)
def test_parse_udh_refuses_broken_headers(data: bytes, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_udh(data)


# --- properties of the wire split -----------------------------------------------------------

alphabet_texts = st.one_of(
    st.tuples(st.just(Alphabet.GSM7), st.text(alphabet=GSM_ALPHABET, max_size=700)),
    st.tuples(st.just(Alphabet.GSM7), st.text(alphabet="ab€[\n", min_size=100, max_size=500)),
    st.tuples(st.just(Alphabet.LATIN1), st.text(alphabet=st.characters(max_codepoint=255))),
    st.tuples(
        st.just(Alphabet.LATIN1),
        st.text(alphabet=st.characters(max_codepoint=255), min_size=130, max_size=600),
    ),
    st.tuples(st.just(Alphabet.UCS2), st.text(min_size=60, max_size=400)),
    st.tuples(
        st.just(Alphabet.UCS2),
        st.text(alphabet=st.sampled_from("ab" + EMOJI + NON_GSM), min_size=30, max_size=300),
    ),
)


def air_octets(part: str, alphabet: Alphabet, udh_octets: int) -> int:
    """What the part occupies over the air, beside its UDH, with GSM-7 packed."""
    octets = encode_text(part, alphabet)
    if alphabet is Alphabet.GSM7:
        octets = pack_gsm7(octets, udh_octets)
    return udh_octets + len(octets)


@settings(max_examples=400)
@given(alphabet_texts, st.sampled_from([6, 7]))
def test_split_text_parts_fit_and_stand_alone(case: tuple[Alphabet, str], udh_octets: int) -> None:
    alphabet, text = case
    parts = split_text(text, alphabet, udh_octets)
    assert "".join(parts) == text
    header = udh_octets if len(parts) > 1 else 0
    for part in parts:
        assert air_octets(part, alphabet, header) <= 140
        # Each part decodes on its own: no escape or surrogate pair was cut.
        assert decode_text(encode_text(part, alphabet), alphabet) == part
        if alphabet is Alphabet.GSM7:
            assert not encode_text(part, alphabet).endswith(b"\x1b")
        if alphabet is Alphabet.UCS2 and part:
            assert not "\ud800" <= part[-1] <= "\udbff"
