"""Matching a text answer against an ask's choices, as Tropo's simple grammar reads them.

Forms understood: `[ANY]`; `[N DIGITS]` and `[N-M DIGITS]`; a comma list of options, each
either a word (`1,2,3`) or a concept with synonyms (`yes(yes,y,1), no(no,n,2)`). Matching
ignores case and surrounding spaces. Grammar files (URLs) cannot be evaluated on text: they
match nothing, which the app sees as a no-match.

`choices.mode` and `choices.terminator` are keypad notions; on text they read as Verbal
decided (docs/apps.md): `dtmf` accepts only answers made of keypad keys (digits, `*`, `#`),
`speech` and `any` accept any text, and a terminator ends the answer where it first appears.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DIGITS = re.compile(r"^\[\s*(\d+)(?:\s*-\s*(\d+))?\s+DIGITS?\s*\]$", re.IGNORECASE)
_CONCEPT = re.compile(r"^\s*([^()]+?)\s*\(([^)]*)\)\s*$")
_KEYPAD = re.compile(r"^[0-9*#]+$")


@dataclass(frozen=True, slots=True)
class Match:
    value: str  # the concept, or the answer itself
    interpretation: str  # the answer as matched


def answer_text(answer: str, mode: str | None, terminator: str | None) -> str | None:
    """What of a text answer the grammar sees, or None when `mode` refuses it."""
    if terminator:
        answer = answer.split(terminator, 1)[0]
    text = answer.strip()
    if mode == "dtmf" and not _KEYPAD.match(text):
        return None
    return text


def match(grammar: str, answer: str) -> Match | None:
    text = answer.strip()
    rule = grammar.strip()
    if rule.upper() == "[ANY]":
        return Match(text, text)
    digits = _DIGITS.match(rule)
    if digits:
        low = int(digits.group(1))
        high = int(digits.group(2) or low)
        return Match(text, text) if text.isdigit() and low <= len(text) <= high else None
    if rule.lower().startswith(("http://", "https://")):
        return None
    for option in _split_options(rule):
        concept = _CONCEPT.match(option)
        if concept:
            name = concept.group(1).strip()
            synonyms = [s.strip() for s in concept.group(2).split(",")] + [name]
        else:
            name = option.strip()
            synonyms = [name]
        if any(s and s.lower() == text.lower() for s in synonyms):
            return Match(name, text)
    return None


def _split_options(rule: str) -> list[str]:
    """Split on commas that are not inside a concept's parentheses."""
    options, depth, current = [], 0, []
    for char in rule:
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(0, depth - 1)
        if char == "," and depth == 0:
            options.append("".join(current))
            current = []
        else:
            current.append(char)
    options.append("".join(current))
    return [o for o in options if o.strip()]
