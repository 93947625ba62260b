"""Number globs: fnmatch's answers on the patterns rules use, in bounded time on any other."""

from __future__ import annotations

from fnmatch import fnmatchcase

from hypothesis import given, settings
from hypothesis import strategies as st

from verbal.carriers.globs import number_glob

DIGITS = "0123456789"
_digit = st.sampled_from(DIGITS)
_range = st.tuples(_digit, _digit).map(lambda pair: "-".join(sorted(pair)))
_set = st.tuples(
    st.sampled_from(["", "!"]), st.lists(st.one_of(_digit, _range), min_size=1, max_size=3)
).map(lambda parts: "[" + parts[0] + "".join(parts[1]) + "]")
_token = st.one_of(_digit, st.just("+"), st.just("?"), st.just("*"), _set, st.just("["))
patterns = st.lists(_token, max_size=12).map("".join)
numbers = st.text(alphabet="+" + DIGITS, max_size=16)


@settings(max_examples=500, deadline=None)
@given(patterns, numbers)
def test_globs_answer_as_fnmatch_does(pattern: str, number: str) -> None:
    assert number_glob(pattern).matches(number) == fnmatchcase(number, pattern)


@settings(deadline=None)
@given(numbers)
def test_a_pattern_matching_the_number_itself_matches_it(number: str) -> None:
    assert number_glob(number).matches(number)
    assert not number_glob(number + "0").matches(number)


def test_unclosed_sets_stand_for_themselves_however_many() -> None:
    # The shape that made fnmatch's translation quadratic (15 KB of it stalled the server).
    pattern = "[a-" * 5_000
    assert number_glob(pattern).matches(pattern)
    assert not number_glob(pattern).matches("+15550002000")
    assert number_glob("+1555[0-").matches("+1555[0-")


def test_sets_ranges_and_negation() -> None:
    glob = number_glob("+1555[0-4]00[!5]?")
    assert glob.matches("+155530069")
    assert not glob.matches("+155550069")
    assert not glob.matches("+155530059")
    assert not glob.matches("+15553006")
