"""The one ASGI layer every request passes before routing (`Edge`): its request id, the
security headers, the body limit, CORS — and, for the GraphQL endpoint's POSTs, the
endpoint itself without Starlette's router.

These were four middlewares, each wrapping `send` (and two `receive`) in a closure of its
own: a reused answer (about 0.5 ms of CPU) spent a fifth of it passing through them
(bench/results/NOTES.md). Here a response start is rewritten once, and CORS — which only
a request with an `Origin` header needs — is Starlette's `CORSMiddleware`, asked only by
those requests (every other response gets the `Vary: Origin` it would have added)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import structlog
from opentelemetry import propagate
from opentelemetry.trace import SpanKind, get_current_span
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bff.runtime import tracing
from bff.web.logs import PID_PATTERN, REQUEST_ID_HEADER, VALID_REQUEST_ID, new_request_id
from bff.web.security import API_CSP, API_HEADERS, DEFAULT_MAX_BODY, too_large

CORS_HEADERS = ["Authorization", "Content-Type", "X-Request-ID"]
_PRESENT_CHECKED = frozenset({n for n, _ in API_HEADERS} | {b"cache-control", b"content-security-policy",
                                                            b"content-type", b"vary"})


def finished(given: Iterable[tuple[bytes, bytes]] | None, request_id: bytes,
             vary_origin: bool) -> list[tuple[bytes, bytes]]:
    """A response's headers with the security headers it does not set itself
    (`Cache-Control: no-store` unless it says otherwise; a CSP unless it is HTML, which
    sets its own), the request id, and — for a request without `Origin` — `Vary: Origin`."""
    headers = list(given or ())
    present: dict[bytes, int] = {}
    for at, (name, _) in enumerate(headers):
        lowered = name.lower()
        if lowered in _PRESENT_CHECKED:
            present[lowered] = at
    headers += [(n, v) for n, v in API_HEADERS if n not in present]
    if b"cache-control" not in present:
        headers.append((b"cache-control", b"no-store"))
    if b"content-security-policy" not in present:
        typed = present.get(b"content-type")
        if typed is None or not headers[typed][1].startswith(b"text/html"):
            headers.append((b"content-security-policy", API_CSP))
    if vary_origin:
        vary = present.get(b"vary")
        if vary is None:
            headers.append((b"vary", b"Origin"))
        else:
            headers[vary] = (headers[vary][0], headers[vary][1] + b", Origin")
    headers.append((REQUEST_ID_HEADER, request_id))
    return headers


class Edge:
    """See the module. `graphql`: the endpoint a POST to `/graphql` goes to directly."""

    def __init__(self, app: ASGIApp, *, cors_origins: Sequence[str] = (), max_bytes: int = DEFAULT_MAX_BODY,
                 graphql: ASGIApp | None = None) -> None:
        self.app = app
        self.graphql = graphql
        self.max_bytes = max_bytes
        self.cors = CORSMiddleware(self._inner, allow_origins=cors_origins, allow_methods=["GET", "POST"],
                                   allow_headers=CORS_HEADERS, max_age=600)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        given = headers.get(REQUEST_ID_HEADER, b"").decode("latin-1")
        request_id = given if VALID_REQUEST_ID.match(given) and not PID_PATTERN.search(given) else new_request_id()
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        if kind == "websocket":
            await self._traced(self._inner, scope, receive, send, request_id)
            return
        stamp, vary_origin = request_id.encode(), b"origin" not in headers

        async def finish(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = finished(message.get("headers"), stamp, vary_origin)
                if tracing.on():
                    get_current_span().set_attribute("http.response.status_code", message["status"])
            await send(message)

        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await too_large(finish)
            return
        # The body limit: a body that grows past `max_bytes` is cut off, and the request
        # answered 413 instead of whatever the app would have said.
        seen = 0
        refused = started = False

        async def limited_receive() -> Message:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    refused = True
                    return {"type": "http.disconnect"}
            return message

        async def sender(message: Message) -> None:
            nonlocal started
            if refused:
                if not started:
                    started = True
                    await too_large(finish)
                return
            started = True
            await finish(message)

        await self._traced(self._inner if vary_origin else self.cors, scope, limited_receive, sender, request_id)
        if refused and not started:
            await too_large(finish)

    @staticmethod
    async def _traced(app: ASGIApp, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        if not tracing.on():
            await app(scope, receive, send)
            return
        # The caller's W3C traceparent, if any, makes this request part of its trace.
        parent = propagate.extract({k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers") or []})
        method = scope.get("method", "WS")
        with tracing.tracer.start_as_current_span(f"{method} {scope.get('path', '')}", context=parent,
                                                  kind=SpanKind.SERVER,
                                                  attributes={"http.request.method": method,
                                                              "url.path": scope.get("path", ""),
                                                              "bff.request_id": request_id}):
            await app(scope, receive, send)

    async def _inner(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.graphql is not None and scope["type"] == "http" and scope["method"] == "POST" and \
                scope["path"] == "/graphql":
            await self.graphql(scope, receive, send)
        else:
            await self.app(scope, receive, send)
