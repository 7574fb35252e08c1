"""Tag list pages: the next page comes from the Link header's `last` only, never from a URL the registry names."""

from __future__ import annotations

import pytest

from slimguard.core.errors import InspectionError
from slimguard.core.model.reference import ImageReference
from slimguard.registry.tags import next_last, parse_page

NODE = ImageReference.parse("registry.example.com/base/node:20-bookworm")


def test_the_next_page_starts_after_the_last_tag_the_link_names() -> None:
    assert next_last('</v2/base/node/tags/list?last=20-alpine&n=100>; rel="next"') == "20-alpine"
    assert next_last("<https://elsewhere.example/v2/x/tags/list?n=5&last=b>; rel=next") == "b"


def test_no_link_or_no_next_relation_is_the_last_page() -> None:
    assert next_last("") is None
    assert next_last('</v2/base/node/tags/list?last=z>; rel="prev"') is None
    assert next_last('</v2/base/node/tags/list?n=100>; rel="next"') is None


def test_a_page_lists_its_string_tags_and_a_garbled_one_is_an_error_naming_the_repository() -> None:
    assert parse_page(b'{"name": "base/node", "tags": ["20-bookworm", 7, "", "20-alpine"]}', NODE) == [
        "20-bookworm",
        "20-alpine",
    ]
    assert parse_page(b'{"name": "base/node", "tags": null}', NODE) == []
    for garbled in (b"<html>", b'["20"]', b'{"tags": "20"}'):
        with pytest.raises(InspectionError, match=r"garbled tag list of registry\.example\.com/base/node"):
            parse_page(garbled, NODE)
