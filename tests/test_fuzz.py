"""Property-based fuzzing over real HTTP: generated GraphQL documents, variables, raw
bodies and webhook requests never get a 5xx and never hang."""

from __future__ import annotations

import json
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Bff

FIELDS = ["me", "appointments", "appointment", "sources", "node", "cancellationRequest", "nodes", "edges", "id",
          "title", "start", "status", "source", "patient", "name", "mayActFor", "totalCount", "pageInfo",
          "__typename", "__schema", "types", "bogus", "location", "cancellation", "requestCancellation"]
ARGS = ["first", "after", "id", "filter", "onBehalfOf", "input", "includePast", "from", "x"]
SCALARS = st.one_of(st.integers(-2**40, 2**40), st.text(max_size=30).map(json.dumps), st.sampled_from(
    ["true", "false", "null", "BOOKED", "$v", "[]", "{}", '{includePast: true}', "1e999", '"\\u0000"']))
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def selections(draw: Any, depth: int = 0) -> str:
    parts = []
    for _ in range(draw(st.integers(1, 4))):
        name = draw(st.sampled_from(FIELDS))
        alias = f"{draw(st.sampled_from(['a', 'b', 'x']))}{draw(st.integers(0, 50))}: " if draw(st.booleans()) else ""
        args = ""
        if draw(st.booleans()):
            pairs = [f"{draw(st.sampled_from(ARGS))}: {draw(SCALARS)}" for _ in range(draw(st.integers(1, 3)))]
            args = "(" + ", ".join(pairs) + ")"
        sub = " { " + draw(selections(depth + 1)) + " }" if depth < 12 and draw(st.booleans()) else ""
        parts.append(f"{alias}{name}{args}{sub}")
    return " ".join(parts)


DOCUMENTS = st.one_of(
    selections().map(lambda s: "{ " + s + " }"),
    selections().map(lambda s: "query Q($v: Int) { " + s + " }"),
    selections().map(lambda s: "mutation { " + s + " }"),
    selections().map(lambda s: "subscription { " + s + " }"),
    st.text(max_size=300),
)
FINITE = st.floats(allow_nan=False, allow_infinity=False)
LEAVES = st.none() | st.booleans() | st.integers() | FINITE | st.text(max_size=20)
JSON = st.recursive(LEAVES, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=4), max_leaves=20)


def assert_sane(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text[:500]


@FUZZ
@given(document=DOCUMENTS, variables=JSON)
async def test_generated_documents_and_variables(bff: Bff, document: str, variables: Any) -> None:
    response = await bff.http.post(f"{bff.url}/graphql", json={"query": document, "variables": variables},
                                   headers={"Authorization": f"Bearer {bff.token('asane')}"}, timeout=15)
    assert_sane(response)


@FUZZ
@given(body=st.one_of(st.binary(max_size=2000), st.text(max_size=2000).map(str.encode),
                      JSON.map(lambda v: json.dumps(v).encode()),
                      st.integers(1, 40).map(lambda n: ("[" * n * 50 + "]" * n * 50).encode()),
                      st.integers(60, 90).map(lambda k: b'{"query": "' + b"a" * k * 1024 + b'"}')),
       content_type=st.sampled_from(["application/json", "application/graphql", "text/plain",
                                     "application/x-www-form-urlencoded", "multipart/form-data", ""]),
       method=st.sampled_from(["POST", "GET"]))
async def test_raw_bodies(bff: Bff, body: bytes, content_type: str, method: str) -> None:
    headers = {"Authorization": f"Bearer {bff.token('asane')}"}
    if content_type:
        headers["content-type"] = content_type
    if method == "GET":
        response = await bff.http.get(f"{bff.url}/graphql", params={"query": body.decode("latin-1")[:1500]},
                                      headers=headers, timeout=15)
    else:
        response = await bff.http.post(f"{bff.url}/graphql", content=body, headers=headers, timeout=15)
    assert_sane(response)


HEADER_VALUES = st.one_of(st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=60),
                          st.sampled_from(["v1,", "v1,AAAA", "0", "-1", "1e20", "nan", "v1,==== v2,x"]))


@FUZZ
@given(body=st.one_of(st.binary(max_size=500), JSON.map(lambda v: json.dumps(v).encode())),
       headers=st.dictionaries(st.sampled_from(["webhook-id", "webhook-timestamp", "webhook-signature",
                                                "content-type", "content-length-x"]), HEADER_VALUES, max_size=4),
       source=st.sampled_from(["bergen-kommune", "helse-vest", "x", "..%2F"]))
async def test_webhook_requests(bff: Bff, body: bytes, headers: dict[str, str], source: str) -> None:
    response = await bff.http.post(f"{bff.url}/webhooks/{source}", content=body, headers=headers, timeout=15)
    assert_sane(response)
    if "%" not in source:
        assert response.status_code in (400, 401, 404, 413)
