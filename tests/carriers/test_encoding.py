"""Tests for verbal.carriers.encoding: SMS encoding choice and segmentation.

Counts are checked at every carrier boundary (160/161, 306/307 septets;
70/71, 134/135 UTF-16 code units), and the split is checked against an
oracle that encodes with the gsm0338 codec / UTF-16 directly, so the module's
precomputed tables cannot drift from the codec unnoticed.
"""

from itertools import pairwise

import gsm0338
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verbal.carriers.encoding import (
    Encoding,
    TextInfo,
    analyze,
    gsm7_length,
    is_gsm7,
    split,
    split_gsm7,
    split_ucs2,
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
