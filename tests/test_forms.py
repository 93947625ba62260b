"""`verbal.forms.encode_form` writes what `urllib.parse.urlencode` writes, byte for byte:
the signatures of status callbacks and app requests cover these bytes (as received)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from hypothesis import given
from hypothesis import strategies as st

from verbal.forms import encode_form

pairs = st.lists(st.tuples(st.text(), st.one_of(st.text(), st.integers())), max_size=8)


@given(pairs)
def test_the_form_is_urlencodes_and_reads_back(form: list[tuple[str, str | int]]) -> None:
    encoded = encode_form(form)
    assert encoded == urlencode(form)
    assert parse_qsl(encoded, keep_blank_values=True) == [(k, str(v)) for k, v in form]


def test_plain_and_special_values() -> None:
    form = [("To", "+15550002000"), ("Body", "Hi & bye = 100% ~ ok_.-"), ("Empty", "")]
    assert encode_form(form) == "To=%2B15550002000&Body=Hi+%26+bye+%3D+100%25+~+ok_.-&Empty="
