"""How a provider's JSON body is decoded: UTF-8 (with or without a byte order mark), a
declared other charset honoured, anything unreadable reported as the source unavailable."""

from __future__ import annotations

import codecs

import pytest

from connectors.base import SourceUnavailable
from connectors.http import Response, read_json

pytestmark = pytest.mark.unit

BODY = '{"name": "Øyepoliklinikken, Haukeland", "n": 1}'


def response(content: bytes, content_type: str = "application/fhir+json") -> Response:
    return Response(200, {"Content-Type": content_type}, content)


@pytest.mark.parametrize(("content", "content_type"), [
    (BODY.encode(), "application/fhir+json"),
    (codecs.BOM_UTF8 + BODY.encode(), "application/json"),
    (BODY.encode(), "application/json; charset=UTF-8"),
    (BODY.encode("latin-1"), "application/json; charset=ISO-8859-1"),
    (BODY.encode("utf-16"), "application/json; charset=utf-16"),
    (BODY.encode(), "application/json; charset=no-such-charset"),
], ids=["utf-8", "byte-order-mark", "declared-utf-8", "declared-latin-1", "declared-utf-16",
        "unknown-charset-as-utf-8"])
def test_the_body_is_read_in_its_encoding(content: bytes, content_type: str) -> None:
    assert read_json("helse-vest", response(content, content_type)) == {"name": "Øyepoliklinikken, Haukeland", "n": 1}


@pytest.mark.parametrize(("content", "content_type"), [
    (b'{"resourceType": "Bundle", "entry": [', "application/fhir+json"),
    (BODY.encode("latin-1"), "application/fhir+json"),
    (b"NaN", "application/json"),
    (b"", "application/json"),
], ids=["truncated", "latin-1-without-saying-so", "nan", "empty"])
def test_an_unreadable_body_makes_the_source_unavailable(content: bytes, content_type: str) -> None:
    with pytest.raises(SourceUnavailable) as raised:
        read_json("helse-vest", response(content, content_type))
    assert raised.value.kind == "malformed"
