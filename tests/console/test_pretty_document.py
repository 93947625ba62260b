"""Documents apps answered, as the console shows them: indented when they parse, else as
they came, however deep (json and minidom recurse once per level)."""

from __future__ import annotations

import pytest

from verbal.console.web import pretty_document

DEEP = {
    "json": ("application/json", '{"tropo": ' + "[" * 50_000 + "]" * 50_000 + "}"),
    "xml": ("text/xml", "<Response>" + "<a>" * 5_000 + "</a>" * 5_000 + "</Response>"),
}


@pytest.mark.parametrize("name", DEEP)
def test_a_document_nested_beyond_the_recursion_limit_is_shown_as_it_came(name: str) -> None:
    content_type, document = DEEP[name]
    assert pretty_document(document, content_type) == document


def test_documents_that_parse_are_indented() -> None:
    assert pretty_document('{"a": [1]}', "application/json") == '{\n  "a": [\n    1\n  ]\n}'
    assert pretty_document("<Response><Message>hi</Message></Response>", "text/xml") == (
        '<?xml version="1.0" ?>\n<Response>\n  <Message>hi</Message>\n</Response>'
    )
