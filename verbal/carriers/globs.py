"""Number globs (``+1555*``, ``+1555[0-4]?``), parsed once and matched in bounded time.

Sandbox rules and the SMSC's ESMEs choose numbers with shell-style globs, and tenants write
the rules. `fnmatch` was the obvious tool, but it compiles a pattern the first time it meets
it, on the event loop, with a translation quadratic in the pattern's length: a 15 KB pattern
of ``[a-`` repeated stalled every request of every tenant for 5.6 s. So a pattern is parsed
here in one pass, when it is stored or loaded, and matched by stepping a set of positions
through the pattern (an NFA, never backtracking).

Each token but ``*`` consumes one character of the number, so after k characters every live
position lies within the first 2k + 1 tokens: matching costs O(len(number)²) whatever the
pattern's length, and numbers are at most 16 characters. Patterns tenants send are limited
to `MAX_PATTERN_LENGTH` as well, the width of the column that stores them.

The syntax is fnmatch's, case-sensitive: ``*`` any run, ``?`` one character, ``[...]`` one
of the characters or ranges (``a-z``) inside, ``[!...]`` none of them, and a ``[`` with no
``]`` after it stands for itself. (fnmatch's rarer corners, such as a ``]`` first in a set,
are not reproduced: they have no use in phone numbers.)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

__all__ = ["MAX_PATTERN_LENGTH", "NumberGlob", "number_glob"]

# The width of sandbox_rules.pattern (verbal/store/models.py), far more than a number needs.
MAX_PATTERN_LENGTH = 64


@dataclass(frozen=True, slots=True)
class _Star:
    pass


@dataclass(frozen=True, slots=True)
class _Char:
    """One character: any (``?``), or one of `ranges`, or (negated) none of them."""

    ranges: tuple[tuple[str, str], ...] = ()
    negated: bool = False
    anything: bool = False

    def accepts(self, char: str) -> bool:
        if self.anything:
            return True
        inside = any(low <= char <= high for low, high in self.ranges)
        return inside != self.negated


_Token = _Star | _Char
_STAR = _Star()
_ANY = _Char(anything=True)


@dataclass(frozen=True, slots=True)
class NumberGlob:
    pattern: str
    _tokens: tuple[_Token, ...]

    def matches(self, number: str) -> bool:
        tokens = self._tokens
        live = self._closure({0})
        for char in number:
            step = {
                position + (not isinstance(tokens[position], _Star))
                for position in live
                if position < len(tokens) and _consumes(tokens[position], char)
            }
            if not step:
                return False
            live = self._closure(step)
        return len(tokens) in live

    def _closure(self, positions: set[int]) -> set[int]:
        # A star may also match nothing: whoever stands on one stands after it as well.
        # Consecutive stars were merged when parsing, so one step ahead is enough.
        tokens = self._tokens
        return positions | {
            p + 1 for p in positions if p < len(tokens) and isinstance(tokens[p], _Star)
        }


def _consumes(token: _Token, char: str) -> bool:
    return isinstance(token, _Star) or token.accepts(char)


@lru_cache(maxsize=4096)
def number_glob(pattern: str) -> NumberGlob:
    """`pattern` parsed; cached, as the same few patterns are loaded again and again."""
    # Where the next "]" is, from every position: one pass from the right, so that a long
    # run of unclosed "[" costs no more than any other text (fnmatch rescans for each).
    next_close = [len(pattern)] * (len(pattern) + 1)
    for index in range(len(pattern) - 1, -1, -1):
        next_close[index] = index if pattern[index] == "]" else next_close[index + 1]
    tokens: list[_Token] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        index += 1
        if char == "*":
            if not tokens or tokens[-1] is not _STAR:
                tokens.append(_STAR)
        elif char == "?":
            tokens.append(_ANY)
        elif char == "[" and next_close[index] < len(pattern):
            close = next_close[index]
            tokens.append(_char_set(pattern[index:close]))
            index = close + 1
        else:
            tokens.append(_literal(char))
    return NumberGlob(pattern, tuple(tokens))


@lru_cache(maxsize=256)
def _literal(char: str) -> _Char:
    # Shared: a rule stored before patterns were limited may be long, and stays cached.
    return _Char(((char, char),))


def _char_set(inside: str) -> _Char:
    negated = inside.startswith("!")
    if negated:
        inside = inside[1:]
    ranges: list[tuple[str, str]] = []
    index = 0
    while index < len(inside):
        if index + 2 < len(inside) and inside[index + 1] == "-":
            ranges.append((inside[index], inside[index + 2]))
            index += 3
        else:
            ranges.append((inside[index], inside[index]))
            index += 1
    return _Char(tuple(ranges), negated)
