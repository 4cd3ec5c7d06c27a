"""OpenTelemetry, as an operator turns it on: a real `bff.asgi` process configured only by
the standard OTEL_* variables sends its spans over OTLP/HTTP to a collector (here, one
the test runs). One list request makes one trace: the HTTP request (continuing the
caller's traceparent), the GraphQL operation, a span per source with its cache outcome,
each provider call (which receives the traceparent), and the Redis round trips — with no
national identity number or person's name in any attribute, and the trace id in the
request's log lines."""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bff.web.serving import start_server
from tests.clients.asgi_process import bff_asgi
from tests.conftest import PEOPLE, Bff, Sandbox, redis_url_for_tests

LIST = "query Liste { appointments(first: 20) { totalCount nodes { id title } sources { state } } }"


def collector(spans: list[Any]) -> Starlette:
    async def traces(request: Request) -> Response:
        export = ExportTraceServiceRequest.FromString(await request.body())
        spans.extend(span for resource in export.resource_spans for scope in resource.scope_spans
                     for span in scope.spans)
        return Response(ExportTraceServiceResponse().SerializeToString(), media_type="application/x-protobuf")

    return Starlette(routes=[Route("/v1/traces", traces, methods=["POST"])])


def attributes(span: Any) -> dict[str, Any]:
    def value(v: Any) -> Any:
        kind = v.WhichOneof("value")
        return [value(x) for x in v.array_value.values] if kind == "array_value" else getattr(v, kind)

    return {a.key: value(a.value) for a in span.attributes}


async def test_one_list_request_is_one_trace_from_the_caller_to_each_provider(bff: Bff, sandbox: Sandbox) -> None:
    spans: list[Any] = []
    otlp = await start_server(collector(spans))
    env = {"REDIS_URL": redis_url_for_tests(), "BFF_SANDBOX_URL": sandbox.url, "BFF_DEV_KEY_FILE": str(bff.key_file),
           "BFF_REDIS_PREFIX": f"{bff.settings.redis_prefix}-otel", "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.url,
           "OTEL_BSP_SCHEDULE_DELAY": "100"}
    trace_id, caller = secrets.token_hex(16), secrets.token_hex(8)
    try:
        async with bff_asgi(env) as running, httpx.AsyncClient(timeout=10) as http:
            await sandbox.clear()
            answer = await http.post(f"{running.url}/graphql", json={"query": LIST, "operationName": "Liste"},
                                     headers={"Authorization": f"Bearer {bff.token('asane')}",
                                              "traceparent": f"00-{trace_id}-{caller}-01"})
            assert answer.status_code == 200 and answer.json()["data"]["appointments"]["totalCount"] > 0
            for _ in range(100):
                if any(s.name == "graphql.operation" and s.trace_id.hex() == trace_id for s in spans):
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)  # the rest of the batch
    finally:
        await otlp.stop()
    ours = [s for s in spans if s.trace_id.hex() == trace_id]
    by_id = {s.span_id: s for s in ours}

    def parents(span: Any) -> list[str]:
        chain = []
        while span.parent_span_id in by_id:
            span = by_id[span.parent_span_id]
            chain.append(span.name)
        return chain

    server = next(s for s in ours if s.name == "POST /graphql")
    assert server.parent_span_id.hex() == caller  # the caller's traceparent continued
    assert attributes(server)["http.response.status_code"] == 200
    operation = next(s for s in ours if s.name == "graphql.operation")
    assert parents(operation) == ["POST /graphql"]
    assert attributes(operation)["graphql.operation.type"] == "query"
    assert attributes(operation)["graphql.operation.name"] == "Liste"
    sources = {attributes(s)["bff.source"]: s for s in ours if s.name == "source"}
    assert {"helse-vest", "bergen-kommune"} <= set(sources)
    assert all("graphql.operation" in parents(s) for s in sources.values())
    assert attributes(sources["helse-vest"])["bff.cache.miss"] == 1
    calls = [s for s in ours if s.name.startswith("GET ")]
    assert {attributes(s)["bff.source"] for s in calls} >= {"helse-vest", "bergen-kommune"}
    assert all("upstream.attempt" in parents(s) and attributes(s)["http.response.status_code"] == 200
               for s in calls if attributes(s)["bff.source"] != "person-directory")
    assert any(s.name in ("EVALSHA", "MGET", "EVAL", "GET") for s in ours), {s.name for s in ours}
    # The providers received the traceparent: every call of this request names the trace.
    received = dict((await sandbox.http.get(f"{sandbox.url}/_admin/calls")).json()["traces"])
    assert received.get(trace_id, 0) >= len(calls)
    # Nothing that names a person.
    secrets_of_people = {p.pid for p in PEOPLE.values()} | {p.name for p in PEOPLE.values()}
    texts = [str(v) for s in spans for v in attributes(s).values()] + [s.name for s in spans]
    assert not [t for t in texts if any(x in t for x in secrets_of_people)]
    # The request's log lines carry its trace id.
    lines = [json.loads(line) for line in running.output.splitlines() if line.startswith("{")]
    assert any(line.get("trace_id") == trace_id for line in lines), (  # what there was, should it ever fail
        trace_id, [(line.get("logger"), str(line.get("event"))[:80], line.get("trace_id")) for line in lines][-20:])
